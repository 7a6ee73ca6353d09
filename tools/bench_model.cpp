// bench_model: forward and KV-cached decode throughput of a gaft model on the CPU, the C++ half of
// tools/bench_model.py (which runs transformers on the same folder, threads and dtype, and prints the table in
// docs/benchmarks.md, section "Model forward and decode").
//
//   build/bench_model --model /tmp/llama20m --dtype fp32 --threads 2 --batch 8 --seq 512 \
//       --decode-batch 1,8 --prompt 8 --new-tokens 32
//
// Forward: logits of a [batch, seq] batch of random ids (every position, as transformers' forward returns).
// Decode: gaft::generate (greedy, no stop token) of --new-tokens after a --prompt-token prompt per row; the
// rate is new tokens of all rows per second, prefill included (as timing transformers' generate includes it).
// One warm-up run of each precedes the timed ones (median of --forward-repeats and --repeats runs). Prints one
// JSON object per measurement.
//
// Rollouts (--rollout P,K): P prompts of --prompt tokens, K sampled continuations each (temperature 1, no
// top-k/top-p, no stop token) through gaft::generate with num_samples K: each prompt prefilled once; the rate is
// new tokens of all P * K rows per second.
//
// Eval throughput (--eval-file prompts.json, a JSON list of token-id lists): every prompt answered with
// --new-tokens greedy tokens through gaft::eval::generate_batched, the batching of `gaft eval`, in batches of
// --eval-batch; prints prompts per second (one timed run after a warm-up batch).
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "gaft/error.h"
#include "gaft/evaluator.h"
#include "gaft/generate.h"
#include "gaft/read_file.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int64_t> split_ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

// Median of `repeats` runs of f, in seconds.
template <typename F>
double median_seconds(int repeats, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Forward and decode tokens/s of a gaft model on the CPU (JSON lines)"};
  std::string model_dir, dtype = "fp32", decode_batches = "1,8";
  int64_t batch = 8, seq = 512, prompt = 8, new_tokens = 32;
  int threads = 0, repeats = 3, forward_repeats = 1;
  app.add_option("--model", model_dir, "model folder (config.json + safetensors)")->required();
  app.add_option("--dtype", dtype, "compute dtype")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--threads", threads, "intra-op threads (0 = LibTorch's default)");
  app.add_option("--batch", batch, "forward: rows (0 = skip the forward)");
  app.add_option("--seq", seq, "forward: tokens per row");
  app.add_option("--decode-batch", decode_batches, "decode: comma-separated batch sizes (empty = skip)");
  app.add_option("--prompt", prompt, "decode: prompt tokens per row")->check(CLI::PositiveNumber);
  app.add_option("--new-tokens", new_tokens, "decode: generated tokens per row")->check(CLI::PositiveNumber);
  app.add_option("--forward-repeats", forward_repeats, "timed forward runs (median)")->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "timed decode runs per batch size (median)")->check(CLI::PositiveNumber);
  std::string eval_file, rollout;
  int64_t eval_batch = 16;
  app.add_option("--rollout", rollout, "rollouts: P,K = prompts and samples per prompt (empty = skip)");
  app.add_option("--eval-file", eval_file, "eval throughput: JSON list of prompts (token-id lists)");
  app.add_option("--eval-batch", eval_batch, "eval throughput: prompts per generation batch")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(threads);
  try {
    gaft::LoadOptions lo;
    lo.dtype = dtype == "bf16" ? at::kBFloat16 : at::kFloat;
    gaft::Llama model = gaft::load_llama(model_dir, lo);
    const int64_t V = model->config.vocab_size;
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    if (batch > 0) {
      const at::Tensor warm = torch::randint(3, V, {1, std::min<int64_t>(seq, 16)}, torch::kLong);
      model->logits(model->forward(warm));
      const at::Tensor ids = torch::randint(3, V, {batch, seq}, torch::kLong);  // [B, T]
      const double s = median_seconds(forward_repeats, [&] { model->logits(model->forward(ids)); });
      std::printf("{\"impl\": \"gaft\", \"what\": \"forward\", \"dtype\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                  "\"tokens\": %lld, \"seconds\": %.4f, \"tokens_per_s\": %.1f}\n",
                  dtype.c_str(), torch::get_num_threads(), (long long)batch, (long long)seq, s, batch * seq / s);
      std::fflush(stdout);
    }
    for (const int64_t b : split_ints(decode_batches)) {
      std::vector<std::vector<int64_t>> prompts(b);
      for (auto& p : prompts) {
        const at::Tensor r = torch::randint(3, V, {prompt}, torch::kLong);
        p.assign(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + prompt);
      }
      gaft::GenerationOptions o;
      o.max_new_tokens = 2;
      gaft::generate(model, prompts, o);  // warm-up
      o.max_new_tokens = new_tokens;
      int64_t produced = 0;
      const double s = median_seconds(repeats, [&] {
        produced = 0;
        for (const auto& row : gaft::generate(model, prompts, o)) produced += static_cast<int64_t>(row.size());
      });
      std::printf("{\"impl\": \"gaft\", \"what\": \"decode\", \"dtype\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                  "\"prompt\": %lld, \"tokens\": %lld, \"seconds\": %.4f, \"tokens_per_s\": %.1f}\n",
                  dtype.c_str(), torch::get_num_threads(), (long long)b, (long long)prompt, (long long)produced, s,
                  produced / s);
      std::fflush(stdout);
    }
    if (!rollout.empty()) {
      const std::vector<int64_t> pk = split_ints(rollout);
      if (pk.size() != 2 || pk[0] < 1 || pk[1] < 1) throw gaft::UsageError("--rollout: expected P,K, got " + rollout);
      std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(pk[0]));
      for (auto& p : prompts) {
        const at::Tensor r = torch::randint(3, V, {prompt}, torch::kLong);
        p.assign(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + prompt);
      }
      gaft::GenerationOptions o;
      o.temperature = 1.0;
      o.num_samples = pk[1];
      o.max_new_tokens = 2;
      gaft::generate(model, prompts, o);  // warm-up
      o.max_new_tokens = new_tokens;
      int64_t produced = 0, run = 0;
      const double s = median_seconds(repeats, [&] {
        produced = 0;
        o.seed = static_cast<uint64_t>(run++);
        for (const auto& row : gaft::generate(model, prompts, o)) produced += static_cast<int64_t>(row.size());
      });
      std::printf("{\"impl\": \"gaft\", \"what\": \"rollout\", \"dtype\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                  "\"samples\": %lld, \"prompt\": %lld, \"tokens\": %lld, \"seconds\": %.4f, \"tokens_per_s\": %.1f}\n",
                  dtype.c_str(), torch::get_num_threads(), (long long)pk[0], (long long)pk[1], (long long)prompt,
                  (long long)produced, s, produced / s);
      std::fflush(stdout);
    }
    if (!eval_file.empty()) {
      const auto prompts = gaft::read_json_file(eval_file).get<std::vector<std::vector<int64_t>>>();
      gaft::GenerationOptions o;
      o.max_new_tokens = 2;
      gaft::eval::generate_batched(model, {prompts.begin(), prompts.begin() + std::min<size_t>(prompts.size(), eval_batch)}, o,
                                   eval_batch);  // warm-up
      o.max_new_tokens = new_tokens;
      int64_t produced = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& row : gaft::eval::generate_batched(model, prompts, o, eval_batch)) produced += static_cast<int64_t>(row.size());
      const double s = seconds_since(t0);
      std::printf("{\"impl\": \"gaft\", \"what\": \"eval\", \"dtype\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                  "\"prompts\": %zu, \"tokens\": %lld, \"seconds\": %.4f, \"prompts_per_s\": %.2f, \"tokens_per_s\": %.1f}\n",
                  dtype.c_str(), torch::get_num_threads(), (long long)eval_batch, prompts.size(), (long long)produced, s,
                  prompts.size() / s, produced / s);
      std::fflush(stdout);
    }
  } catch (const gaft::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return static_cast<int>(e.exit_code());
  }
  return 0;
}
