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
};

struct Options {
  Shape shape{"bench", 12, 768, 12, 12, 2048, 32000, true};
  int64_t batch = 4, seq = 256, steps = 3, lora_rank = 16, threads = 0;
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

// ---- the accounting model ---------------------------------------------------------------------------
// Bytes of one training step, from the shapes alone. Activations are the tensors autograd keeps per token
// and layer in gaft's decoder layer (counted from src/core/llama.cpp; SDPA's flash kernel keeps q, k, v,
// the output and the log-sum-exp, never the T x T scores):
//   two RMSNorms: input, normalised, weighted output (3H each)   q, k, v after RoPE / repeat (3H)
//   attention output and its transposed copy (2H)                gate, silu(gate), up, silu*up (4I)
// Under bf16 autocast with fp32 weights the residual stream and norms stay fp32 and the matmul inputs get a
// bf16 copy; under LoRA the frozen base is bf16, so the whole stream is bf16.
struct Account {
  double params = 0, trainable = 0;
  double weights = 0, grads = 0, optimizer = 0, activations = 0, logits = 0;
  double total() const { return weights + grads + optimizer + activations + logits; }
};

double linear_params(const Shape& s) {
  const double H = s.hidden, D = s.hidden / s.heads, I = s.intermediate;
  return H * s.heads * D + 2 * H * s.kv_heads * D + s.heads * D * H + 3 * H * I;
}

double lora_params(const Shape& s, int64_t r) {
  const double H = s.hidden, D = s.hidden / s.heads, I = s.intermediate;
  const double q = H + s.heads * D, kv = H + s.kv_heads * D;
  return static_cast<double>(s.layers) * r * (q + 2 * kv + q + 3 * (H + I));
}

Account account(const Shape& s, const Run& run, int64_t tokens, int64_t lora_rank, int64_t chunk_tokens) {
  Account a;
  const double H = s.hidden, I = s.intermediate, L = s.layers, N = static_cast<double>(tokens);
  const double lin = L * linear_params(s);
  a.params = lin + static_cast<double>(s.vocab) * H * (s.tied ? 1 : 2) + L * 2 * H + H;
  const bool bf16 = run.precision == "bf16", lora = run.mode == "lora";
  a.trainable = lora ? lora_params(s, lora_rank) : a.params;
  // Weights: fp32 master; a frozen LoRA base in the compute dtype. Autocast keeps a bf16 copy of every
  // matmul weight for the step (its cache), which backward also reads.
  a.weights = lora ? (bf16 ? 2 : 4) * a.params + 4 * a.trainable : 4 * a.params + (bf16 ? 2 * lin : 0);
  a.grads = 4 * a.trainable;
  a.optimizer = 8 * a.trainable;  // AdamW: two fp32 moments
  double per_token_layer;         // bytes kept per token and layer
  double stream;                  // bytes of one element of the residual stream
  if (!bf16) {
    per_token_layer = 4 * (11 * H + 4 * I);
    stream = 4;
  } else if (lora) {
    per_token_layer = 2 * (11 * H + 4 * I);
    stream = 2;
  } else {
    per_token_layer = 4 * 6 * H + 2 * (2 * H + 5 * H + 4 * I);
    stream = 4;
  }
  // Checkpointing keeps each layer's input, plus one layer's activations while it is recomputed.
  a.activations = run.checkpointing ? N * (L * stream * H + per_token_layer) : N * L * per_token_layer;
  // Final norm and hidden states with their gradient, plus one chunk of fp32 logits and their gradient.
  a.logits = N * H * (3 * stream + 4) + 2.0 * 4 * std::min<double>(chunk_tokens, N) * s.vocab;
  return a;
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
  auto opt = gaft::make_adamw(trainable, os);
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
    const auto t0 = std::chrono::steady_clock::now();
    opt->zero_grad();
    at::Tensor loss;
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
    opt->step();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step > 0 || o.steps == 1) times.push_back(dt);
    losses.push_back(loss.item<double>());
  }
  std::sort(times.begin(), times.end());
  const int64_t hwm = gaft_tools::status_kb("VmHWM");
  int64_t n_trainable = 0;
  for (const auto& [name, p] : trainable) n_trainable += p.numel();
  return {{"mode", run.mode},
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
        const Account a = account(s, Run{mode, ck, "bf16"}, tokens, lora_rank, gpu_chunk);
        if (first) std::printf(" %.2fB |", a.params / 1e9);
        first = false;
        std::printf(" %.1f |", a.total() / gib);
      }
    const Account a = account(s, Run{"full", false, "bf16"}, tokens, lora_rank, gpu_chunk);
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
                       std::to_string(o.threads);
  for (const std::string& t : o.text) common += " --text " + t;
  if (!o.tokenizer.empty()) common += " --tokenizer " + o.tokenizer;

  const Account shape_info = account(o.shape, Run{}, tokens, o.lora_rank, 1);
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
        const Account a = account(o.shape, Run{mode, ck == "on", prec}, tokens, o.lora_rank, cpu_chunk);
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
