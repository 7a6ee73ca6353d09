// bench_memory: peak memory and step time of a training step (forward, fused weighted log-likelihood,
// backward, AdamW) for full fine-tuning against LoRA, with and without activation checkpointing, in fp32 and
// bf16 autocast, on the CPU; and the memory that the same accounting projects for 1B, 8B and 70B models on
// a GPU (docs/benchmarks.md, section "Memory").
//
//   build/bench_memory                       the ~110M model (stories110M's shape, random weights), fp32
//   build/bench_memory --precision fp32,bf16 --modes full --checkpointing off --steps 40 \
//       --text README.md --text docs/method.md --tokenizer ../shared/tokenizers/llama2/tokenizer.model
//                                            loss curves of both precisions side by side on real text
//
// Every configuration runs in child processes of its own (this executable with --one), so no allocator
// state carries over: one for time and losses, one (2 steps, every large allocation its own mapping; see
// run_child) for memory. The peak is VmHWM minus the resident size before the model was built: weights,
// gradients, optimizer state, activations. Step time is the median of the steps after the first (which
// allocates the optimizer state).
#include <CLI/CLI.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gaft/autocast.h"
#include "gaft/config.h"
#include "gaft/llama.h"
#include "gaft/lora.h"
#include "gaft/memory_plan.h"
#include "gaft/distributed.h"
#include "gaft/sharding.h"
#include "gaft/ops.h"
#include "gaft/optim.h"
#include "gaft/read_file.h"
#include "gaft/tokenizer.h"
#include "proc_memory.h"

namespace {

struct Shape {
  std::string name;
  int64_t layers, hidden, heads, kv_heads, intermediate, vocab;
  bool tied;
};

struct Run {
  std::string mode = "full";  // full | lora
  bool checkpointing = false;
  std::string precision = "fp32";  // fp32 | bf16 (autocast; fp32 master weights and optimizer state)
  std::string sharding;            // none | optimizer | gradients: a rank of a Gloo job (RANK, WORLD_SIZE, ...)
};

struct Options {
  Shape shape{"bench", 12, 768, 12, 12, 2048, 32000, true};
  int64_t batch = 4, seq = 256, steps = 3, lora_rank = 16, threads = 0;
  int64_t accum = 1;  // micro-batches per optimizer step (per rank under --sharding)
  double lora_dropout = 0.0;  // > 0 keeps a dropped copy of each adapted projection's input (not modelled)
  double lr = 3e-4;
  std::vector<std::string> text;
  std::string tokenizer;
};

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

gaft::ModelConfig model_config(const Shape& s) {
  const nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                            {"model_type", "llama"},
                            {"hidden_size", s.hidden},
                            {"intermediate_size", s.intermediate},
                            {"num_hidden_layers", s.layers},
                            {"num_attention_heads", s.heads},
                            {"num_key_value_heads", s.kv_heads},
                            {"vocab_size", s.vocab},
                            {"max_position_embeddings", 4096},
                            {"rms_norm_eps", 1e-5},
                            {"tie_word_embeddings", s.tied},
                            {"bos_token_id", 1},
                            {"eos_token_id", 2}};
  return gaft::parse_model_config(j, "bench_memory");
}

// ---- the accounting model (gaft/memory_plan.h) -----------------------------------------------------

gaft::MemoryPlan account(const Shape& s, const Run& run, int64_t tokens, int64_t lora_rank, int64_t chunk_tokens,
                         int64_t world = 1, gaft::Sharding sharding = gaft::Sharding::kNone) {
  gaft::MemoryRun r;
  r.lora = run.mode == "lora";
  r.lora_rank = lora_rank;
  r.bf16 = run.precision == "bf16";
  r.checkpointing = run.checkpointing;
  r.tokens = tokens;
  r.chunk_tokens = chunk_tokens;
  r.world = world;
  r.sharding = sharding;
  return gaft::plan_memory(model_config(s), r);
}

gaft::Sharding sharding_level(const std::string& s) {
  if (s == "optimizer") return gaft::Sharding::kOptimizer;
  if (s == "gradients") return gaft::Sharding::kGradients;
  if (s == "full") return gaft::Sharding::kFull;
  return gaft::Sharding::kNone;
}

// ---- one configuration, in this process -------------------------------------------------------------

std::vector<int64_t> corpus(const Options& o) {
  if (o.text.empty()) return {};
  const gaft::Tokenizer tok = gaft::Tokenizer::load(o.tokenizer);
  std::vector<int64_t> ids;
  for (const std::string& f : o.text) {
    const std::vector<int64_t> part = tok.encode(gaft::read_text_file(f));
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

nlohmann::json run_one(const Options& o, const Run& run) {
  if (o.threads > 0) at::set_num_threads(static_cast<int>(o.threads));
  const std::vector<int64_t> text = corpus(o);
  torch::manual_seed(1);
  const int64_t rss0 = gaft_tools::status_kb("VmRSS");
  const bool bf16 = run.precision == "bf16", lora = run.mode == "lora";
  gaft::Llama model(model_config(o.shape));
  {
    torch::NoGradGuard no_grad;  // transformers' initialisation: N(0, 0.02) matrices, unit norms
    for (auto& p : model->parameters())
      if (p.dim() == 2) p.normal_(0.0, 0.02);
  }
  std::vector<std::pair<std::string, at::Tensor>> trainable;
  if (lora) {
    if (bf16) model->to(at::kBFloat16);
    gaft::LoraOptions lo;
    lo.rank = o.lora_rank;
    lo.alpha = 2.0 * static_cast<double>(o.lora_rank);
    lo.dropout = o.lora_dropout;
    gaft::add_lora(*model, lo, at::kFloat, 1);
    trainable = gaft::lora_parameters(*model);
  } else {
    trainable = model->named_parameters(true).pairs();
  }
  // The peak counts from here: the fp32 construction before a cast to bf16 is not part of a step.
  if (!gaft_tools::reset_peak())
    std::fprintf(stderr, "warning: cannot write /proc/self/clear_refs; the peak includes the model's construction\n");
  model->train();
  model->model->checkpoint_layers = run.checkpointing;
  gaft::OptimizerSection os;
  os.lr = o.lr;
  // A rank of a data-parallel job: one micro-batch per rank and step, gradients summed (none) or sharded.
  std::unique_ptr<gaft::Dist> dist;
  std::unique_ptr<gaft::ShardedAdamW> sharded;
  std::unique_ptr<torch::optim::AdamW> opt;
  if (!run.sharding.empty()) {
    dist = std::make_unique<gaft::Dist>(gaft::resolve_launch(), at::kCPU, gaft::DistOptions{});
    if (run.sharding != "none")
      sharded = std::make_unique<gaft::ShardedAdamW>(trainable, os, sharding_level(run.sharding), *dist, 25 << 20);
    if (run.sharding == "full") {  // as the trainer: checkpointing on, the layers gathered by the hooks
      model->model->checkpoint_layers = true;
      model->model->layer_hooks = sharded->layer_hooks();
    }
    // The peak counts from here: under full the whole model, built on every rank, is freed again above.
    gaft_tools::reset_peak();
  }
  if (!sharded) opt = gaft::make_adamw(trainable, os);
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : trainable) params.push_back(p);
  const int64_t rss_model = gaft_tools::status_kb("VmRSS");

  const int64_t B = o.batch, T = o.seq, N = B * (T - 1);
  std::vector<double> times, losses;
  for (int64_t step = 0; step < o.steps; ++step) {
    at::Tensor ids;  // [B, T]
    if (text.empty()) {
      ids = at::randint(3, o.shape.vocab, {B, T}, at::kLong);
    } else {
      ids = at::empty({B, T}, at::kLong);
      const int64_t span = static_cast<int64_t>(text.size()) - T;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t start = ((step * B + b) * 7919 * T) % std::max<int64_t>(1, span);
        for (int64_t t = 0; t < T; ++t) ids[b][t] = text[static_cast<size_t>(start + t)];
      }
    }
    if (dist) ids = (ids + dist->rank() * 7) % o.shape.vocab;  // each rank its own batch
    const auto t0 = std::chrono::steady_clock::now();
    if (!sharded) opt->zero_grad();
    at::Tensor loss;
    // --accum micro-batches per rank and step (the same tokens again: memory and time are what count here).
    for (int64_t micro = 0; micro < o.accum; ++micro) {
      if (sharded) sharded->begin_micro(sharded->reduces(micro, o.accum));
      {
        gaft::AutocastScope ac(at::kCPU, at::kBFloat16, bf16);
        const at::Tensor h = model->forward(ids).narrow(1, 0, T - 1).reshape({N, -1});  // [N, H]
        const at::Tensor W = model->lm_head_weight();
        const at::Tensor targets = ids.narrow(1, 1, T - 1).reshape({N});
        // Mean token NLL through the fused op (logits in fp32 chunks), as the trainer's loss.
        loss = -gaft::ops::weighted_logprob(h, W.scalar_type() == h.scalar_type() ? W : W.to(h.scalar_type()), targets,
                                           at::full({N}, 1.0 / static_cast<double>(N)))
                    .loss;
      }
      loss.backward();
      if (sharded) sharded->end_micro();
    }
    if (sharded) {
      sharded->clip(1.0);
      sharded->step(o.lr);
    } else {
      if (dist && dist->active()) {
        std::vector<at::Tensor> grads;
        for (auto& p : params) grads.push_back(p.grad());
        dist->sum(grads);
      }
      if (dist) torch::nn::utils::clip_grad_norm_(params, 1.0);
      opt->step();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step > 0 || o.steps == 1) times.push_back(dt);
    losses.push_back(loss.item<double>());
  }
  std::sort(times.begin(), times.end());
  const int64_t hwm = gaft_tools::status_kb("VmHWM");
  int64_t n_trainable = 0;
  for (const auto& [name, p] : trainable) n_trainable += p.numel();
  return {{"mode", run.mode},
          {"sharding", run.sharding},
          {"rank", dist ? dist->rank() : 0},
          {"checkpointing", run.checkpointing},
          {"precision", run.precision},
          {"trainable", n_trainable},
          {"model_mib", (rss_model - rss0) / 1024.0},
          {"peak_mib", (hwm - rss0) / 1024.0},
          {"step_s", times[times.size() / 2]},
          {"tokens_per_s", static_cast<double>(N) / times[times.size() / 2]},
          {"losses", losses}};
}

// ---- the parent: every configuration in a child, then the tables ------------------------------------

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = std::min(s.find(',', a), s.size());
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

// `fixed_mmap`: glibc gives every allocation above 64 KiB its own mapping and unmaps it when freed, so the
// resident high-water mark is the peak of live tensors. With glibc's default (a threshold that rises up to
// 32 MiB after the first large frees) freed blocks stay resident in the heap, and the peak of the 110M LoRA
// step read 2302 MiB instead of 1298. Step times come from runs with the default, which the trainer uses.
nlohmann::json run_child(const std::string& args, bool fixed_mmap) {
  const std::string cmd = std::string(fixed_mmap ? "MALLOC_MMAP_THRESHOLD_=65536 " : "") + "/proc/" +
                          std::to_string(::getpid()) + "/exe --one " + args;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot start " + cmd);
  std::string out;
  std::array<char, 4096> buf{};
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  if (::pclose(p) != 0) throw std::runtime_error("failed: " + cmd + "\n" + out);
  return nlohmann::json::parse(out.substr(out.rfind("\n{") == std::string::npos ? 0 : out.rfind("\n{") + 1));
}

// `world` children as the ranks of one Gloo job on this machine (a free port from the pid), each with its JSON.
std::vector<nlohmann::json> run_ranks(const std::string& args, bool fixed_mmap, int64_t world) {
  const std::string port = std::to_string(20000 + ::getpid() % 20000);
  std::vector<std::FILE*> pipes;
  std::vector<std::string> cmds;
  for (int64_t r = 0; r < world; ++r) {
    cmds.push_back("RANK=" + std::to_string(r) + " WORLD_SIZE=" + std::to_string(world) + " LOCAL_RANK=" +
                   std::to_string(r) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " +
                   (fixed_mmap ? "MALLOC_MMAP_THRESHOLD_=65536 " : "") + "/proc/" + std::to_string(::getpid()) +
                   "/exe --one " + args);
    pipes.push_back(::popen(cmds.back().c_str(), "r"));
    if (!pipes.back()) throw std::runtime_error("cannot start " + cmds.back());
  }
  std::vector<nlohmann::json> out;
  for (size_t r = 0; r < pipes.size(); ++r) {
    std::string text;
    std::array<char, 4096> buf{};
    for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipes[r])) > 0;) text.append(buf.data(), n);
    if (::pclose(pipes[r]) != 0) throw std::runtime_error("failed: " + cmds[r] + "\n" + text);
    out.push_back(nlohmann::json::parse(text.substr(text.rfind("\n{") == std::string::npos ? 0 : text.rfind("\n{") + 1)));
  }
  return out;
}

// Projected GPU memory per rank of full fine-tuning (bf16 autocast, checkpointing) by sharding level.
void print_sharding_projection(int64_t tokens) {
  const std::vector<Shape> shapes = {{"8B (Llama-3.1-8B)", 32, 4096, 32, 8, 14336, 128256, false},
                                     {"70B (Llama-3.1-70B)", 80, 8192, 64, 8, 28672, 128256, false}};
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const int64_t gpu_chunk = static_cast<int64_t>(gib / (4.0 * 128256));
  std::printf("\nProjected GPU memory per rank (GiB) of full fine-tuning, bf16 autocast over fp32 master weights, "
              "activation checkpointing, %lld tokens per micro-batch, 25 MiB buckets; policy only.\n\n"
              "| model | ranks | none | optimizer (ZeRO-1) | gradients (ZeRO-2) | full (ZeRO-3) |\n|---|---|---|---|---|---|\n",
              static_cast<long long>(tokens));
  for (const Shape& s : shapes)
    for (const int64_t world : {8, 16}) {
      std::printf("| %s | %lld |", s.name.c_str(), static_cast<long long>(world));
      for (const auto level : {gaft::Sharding::kNone, gaft::Sharding::kOptimizer, gaft::Sharding::kGradients, gaft::Sharding::kFull})
        std::printf(" %.1f |", account(s, Run{"full", true, "bf16"}, tokens, 16, gpu_chunk, world, level).total() / gib);
      std::printf("\n");
    }
}

void print_projection(int64_t tokens, int64_t lora_rank) {
  // Llama 3.2 1B, Llama 3.1 8B, Llama 3.1 70B (their config.json shapes).
  const std::vector<Shape> shapes = {{"1B (Llama-3.2-1B)", 16, 2048, 32, 8, 8192, 128256, true},
                                     {"8B (Llama-3.1-8B)", 32, 4096, 32, 8, 14336, 128256, false},
                                     {"70B (Llama-3.1-70B)", 80, 8192, 64, 8, 28672, 128256, false}};
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const int64_t gpu_chunk = static_cast<int64_t>(gib / (4.0 * 128256));  // the fused op's CUDA chunk: 1 GiB of logits
  std::printf("\nProjected GPU memory of one training step (GiB), %lld tokens per micro-batch, bf16 autocast with "
              "fp32 master weights and AdamW state; LoRA r = %lld on q,k,v,o,gate,up,down with the base in bf16.\n"
              "Policy only: gaft adds the frozen scorer (bf16: 2 bytes per parameter) and, for full fine-tuning with "
              "a KL term, a bf16 reference copy (2 bytes per policy parameter); under LoRA the reference is the base "
              "itself.\n\n",
              static_cast<long long>(tokens), static_cast<long long>(lora_rank));
  std::printf("| model | params | full | full + ckpt | LoRA | LoRA + ckpt | KL reference (full only) |\n|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    std::printf("| %s |", s.name.c_str());
    bool first = true;
    for (const std::string mode : {"full", "lora"})
      for (bool ck : {false, true}) {
        const gaft::MemoryPlan a = account(s, Run{mode, ck, "bf16"}, tokens, lora_rank, gpu_chunk);
        if (first) std::printf(" %.2fB |", a.params / 1e9);
        first = false;
        std::printf(" %.1f |", a.total() / gib);
      }
    const gaft::MemoryPlan a = account(s, Run{"full", false, "bf16"}, tokens, lora_rank, gpu_chunk);
    std::printf(" +%.1f |\n", 2 * a.params / gib);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Peak memory and step time: full fine-tuning vs LoRA, +- activation checkpointing, fp32 vs bf16"};
  Options o;
  std::string modes = "full,lora", ckpts = "off,on", precisions = "fp32";
  bool one = false, curves = false, project_only = false;
  Run run;
  std::string ckpt_one = "off";
  app.add_option("--layers", o.shape.layers);
  app.add_option("--hidden", o.shape.hidden);
  app.add_option("--heads", o.shape.heads);
  app.add_option("--kv-heads", o.shape.kv_heads);
  app.add_option("--intermediate", o.shape.intermediate);
  app.add_option("--vocab", o.shape.vocab);
  app.add_option("--batch", o.batch);
  app.add_option("--seq", o.seq);
  app.add_option("--steps", o.steps, "optimizer steps per configuration (the first is not timed)");
  app.add_option("--lora-rank", o.lora_rank);
  app.add_option("--lora-dropout", o.lora_dropout, "adapter dropout (the trainer's default is 0.05; the accounting assumes 0)");
  app.add_option("--lr", o.lr);
  app.add_option("--threads", o.threads, "intra-op threads; 0: LibTorch's default");
  app.add_option("--modes", modes, "full,lora");
  app.add_option("--checkpointing", ckpts, "off,on");
  app.add_option("--precision", precisions, "fp32,bf16");
  app.add_option("--text", o.text, "train on this text (repeat); default: random tokens");
  app.add_option("--tokenizer", o.tokenizer, "tokenizer for --text");
  app.add_flag("--curves", curves, "print every step's loss per configuration");
  app.add_flag("--project-only", project_only, "print the GPU projection and exit");
  app.add_flag("--one", one, "(internal) run one configuration and print its JSON");
  app.add_option("--mode", run.mode);
  app.add_option("--ckpt", ckpt_one);
  app.add_option("--precision-one", run.precision);
  app.add_option("--sharding-one", run.sharding);
  std::string shardings;
  int64_t world = 2;
  app.add_option("--sharding", shardings, "none,optimizer,gradients,full: full fine-tuning on --world Gloo ranks per level");
  app.add_option("--world", world, "ranks for --sharding");
  app.add_option("--accum", o.accum, "micro-batches per step (per rank); the accounting counts one micro-batch's activations");
  CLI11_PARSE(app, argc, argv);
  o.shape.tied = true;
  if (!o.text.empty() && o.tokenizer.empty()) {
    std::fprintf(stderr, "--text needs --tokenizer\n");
    return 2;
  }
  if (one) {
    run.checkpointing = ckpt_one == "on";
    std::printf("\n%s\n", run_one(o, run).dump().c_str());
    return 0;
  }
  const int64_t tokens = o.batch * (o.seq - 1);
  if (project_only) {
    print_projection(4096, o.lora_rank);
    return 0;
  }
  std::string common = "--layers " + std::to_string(o.shape.layers) + " --hidden " + std::to_string(o.shape.hidden) +
                       " --heads " + std::to_string(o.shape.heads) + " --kv-heads " + std::to_string(o.shape.kv_heads) +
                       " --intermediate " + std::to_string(o.shape.intermediate) + " --vocab " +
                       std::to_string(o.shape.vocab) + " --batch " + std::to_string(o.batch) + " --seq " +
                       std::to_string(o.seq) + " --lora-rank " +
                       std::to_string(o.lora_rank) + " --lora-dropout " + std::to_string(o.lora_dropout) + " --lr " + std::to_string(o.lr) + " --threads " +
                       std::to_string(o.threads) + " --accum " + std::to_string(o.accum);
  for (const std::string& t : o.text) common += " --text " + t;
  if (!o.tokenizer.empty()) common += " --tokenizer " + o.tokenizer;

  if (!shardings.empty()) {
    const std::string prec = split(precisions).front(), ck = split(ckpts).front();
    std::printf("Model: %lld layers, hidden %lld, vocab %lld; full fine-tuning, %s, checkpointing %s; %lld Gloo ranks, "
                "each %lld micro-batch(es) of %lld x %lld tokens per step, %lld steps.\n\n",
                static_cast<long long>(o.shape.layers), static_cast<long long>(o.shape.hidden),
                static_cast<long long>(o.shape.vocab), prec.c_str(), ck.c_str(), static_cast<long long>(world),
                static_cast<long long>(o.accum), static_cast<long long>(o.batch), static_cast<long long>(o.seq),
                static_cast<long long>(o.steps));
    std::printf("| sharding | rank | step s | peak MiB | predicted peak MiB | measured / predicted |\n"
                "|---|---|---|---|---|---|\n");
    const int64_t cpu_chunk = gaft::ops::default_chunk_tokens(o.shape.vocab, at::kCPU);
    for (const std::string& level : split(shardings)) {
      const std::string args = common + " --mode full --ckpt " + ck + " --precision-one " + prec + " --sharding-one " + level;
      const auto timed = run_ranks(args + " --steps " + std::to_string(o.steps), false, world);
      const auto mem = run_ranks(args + " --steps 2", true, world);
      const gaft::MemoryPlan a = account(o.shape, Run{"full", ck == "on" || level == "full", prec}, tokens, o.lora_rank,
                                         cpu_chunk, world, sharding_level(level));
      for (int64_t r = 0; r < world; ++r) {
        const double peak = mem[static_cast<size_t>(r)]["peak_mib"].get<double>();
        std::printf("| %s | %lld | %.2f | %.0f | %.0f | %.2f |\n", level.c_str(), static_cast<long long>(r),
                    timed[static_cast<size_t>(r)]["step_s"].get<double>(), peak, mib(a.total()), peak / mib(a.total()));
        std::fflush(stdout);
      }
    }
    print_sharding_projection(4096);
    return 0;
  }
  const gaft::MemoryPlan shape_info = account(o.shape, Run{}, tokens, o.lora_rank, 1);
  std::printf("Model: %lld layers, hidden %lld, %lld heads (%lld KV), SwiGLU %lld, vocab %lld, tied: %.1fM parameters. "
              "Batch %lld x %lld tokens, %lld steps per configuration, %d threads, %s.\n\n",
              static_cast<long long>(o.shape.layers), static_cast<long long>(o.shape.hidden),
              static_cast<long long>(o.shape.heads), static_cast<long long>(o.shape.kv_heads),
              static_cast<long long>(o.shape.intermediate), static_cast<long long>(o.shape.vocab),
              shape_info.params / 1e6, static_cast<long long>(o.batch), static_cast<long long>(o.seq),
              static_cast<long long>(o.steps), o.threads > 0 ? static_cast<int>(o.threads) : at::get_num_threads(),
              o.text.empty() ? "random tokens" : "text");
  std::printf("| mode | checkpointing | precision | trainable | step s | tokens/s | peak MiB | weights MiB | "
              "predicted peak MiB | measured / predicted |\n|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<nlohmann::json> results;
  const int64_t cpu_chunk = gaft::ops::default_chunk_tokens(o.shape.vocab, at::kCPU);
  for (const std::string& prec : split(precisions))
    for (const std::string& mode : split(modes))
      for (const std::string& ck : split(ckpts)) {
        const std::string args = " --mode " + mode + " --ckpt " + ck + " --precision-one " + prec;
        nlohmann::json r = run_child(common + args + " --steps " + std::to_string(o.steps), false);  // time, losses
        const nlohmann::json m = run_child(common + args + " --steps 2", true);                      // memory
        r["peak_mib"] = m["peak_mib"];
        r["model_mib"] = m["model_mib"];
        const gaft::MemoryPlan a = account(o.shape, Run{mode, ck == "on", prec}, tokens, o.lora_rank, cpu_chunk);
        std::printf("| %s | %s | %s | %lld | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f |\n", mode.c_str(), ck.c_str(),
                    prec.c_str(), static_cast<long long>(r["trainable"].get<int64_t>()), r["step_s"].get<double>(),
                    r["tokens_per_s"].get<double>(), r["peak_mib"].get<double>(), r["model_mib"].get<double>(),
                    mib(a.total()), r["peak_mib"].get<double>() / mib(a.total()));
        std::fflush(stdout);
        results.push_back(r);
      }
  if (curves) {
    std::printf("\nLoss per step:\n\n| step |");
    for (const auto& r : results)
      std::printf(" %s%s %s |", r["mode"].get<std::string>().c_str(), r["checkpointing"].get<bool>() ? "+ckpt" : "",
                  r["precision"].get<std::string>().c_str());
    std::printf("\n|---|");
    for (size_t i = 0; i < results.size(); ++i) std::printf("---|");
    std::printf("\n");
    for (int64_t s = 0; s < o.steps; ++s) {
      std::printf("| %lld |", static_cast<long long>(s + 1));
      for (const auto& r : results) std::printf(" %.4f |", r["losses"][s].get<double>());
      std::printf("\n");
    }
  }
  print_projection(4096, o.lora_rank);
  return 0;
}
