// bench_ops: time and peak memory of gaft::weighted_logprob forward + backward against the reference that
// materialises the [N, V] logits, on the CPU (docs/benchmarks.md, section "Custom ops").
//
//   build/bench_ops --tokens 4096,8192 --hidden 2048 --vocab 32000,128256 --dtype bf16,fp32 --repeats 3
//   build/bench_ops --device cuda     (scripts/gpu_check.sh: both ops on the GPU, CUDA-event timing)
//
// Peak memory: the process high-water mark is reset (writing "5" to /proc/self/clear_refs) before each
// run, and VmHWM minus the resident size before the run is the run's peak. Inputs exist before; the
// gradients each run produces count. A reference run whose logits would not fit --max-reference-gb is
// skipped and printed as "skipped".
#include <CLI/CLI.hpp>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gaft/ops.h"
#include "proc_memory.h"

namespace {

using gaft_tools::reset_peak;
using gaft_tools::status_kb;

struct Measure {
  double median_ms = 0;
  double peak_mib = 0;
  bool skipped = false;
};

struct Problem {
  at::Tensor h, W, targets, weights;
};

Measure measure(bool ours, Problem& p, int repeats, int64_t chunk) {
  Measure m;
  std::vector<double> times;
  for (int rep = 0; rep < repeats; ++rep) {
    p.h.mutable_grad().reset();
    p.W.mutable_grad().reset();
    const int64_t rss_before = status_kb("VmRSS");
    reset_peak();
    auto t0 = std::chrono::steady_clock::now();
    {
      at::Tensor loss = ours ? gaft::ops::weighted_logprob(p.h, p.W, p.targets, p.weights, {chunk}).loss
                             : gaft::ops::reference::weighted_logprob(p.h, p.W, p.targets, p.weights).loss;
      loss.backward();
    }
    auto t1 = std::chrono::steady_clock::now();
    const int64_t hwm = status_kb("VmHWM");
    times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    m.peak_mib = std::max(m.peak_mib, (hwm - rss_before) / 1024.0);
  }
  p.h.mutable_grad().reset();
  p.W.mutable_grad().reset();
  std::sort(times.begin(), times.end());
  m.median_ms = times[times.size() / 2];
  return m;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}


// ---------------------------------------------------------------------------------------------------
// GPU: median of `iters` CUDA-event timings of fn on the current stream (after one warm-up call).
// ---------------------------------------------------------------------------------------------------
double cuda_median_ms(const std::function<void()>& fn, int iters) {
  c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
  const c10::Stream stream = impl.getStream(c10::Device(c10::DeviceType::CUDA, 0));
  fn();
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    c10::Event start(c10::DeviceType::CUDA, c10::EventFlag::BACKEND_DEFAULT);
    c10::Event stop(c10::DeviceType::CUDA, c10::EventFlag::BACKEND_DEFAULT);
    start.record(stream);
    fn();
    stop.record(stream);
    stop.synchronize();
    times.push_back(start.elapsedTime(stop));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int run_gpu(int iters, int64_t N, int64_t H, int64_t V) {
  if (!torch::cuda::is_available()) {
    std::printf("bench_ops --device cuda: no CUDA device\n");
    return 1;
  }
  torch::manual_seed(0);
  auto cuda = torch::TensorOptions().device(torch::kCUDA);
  std::printf("| op | variant | shape | median ms | achieved | device (measured) |\n|---|---|---|---|---|---|\n");

  // Device ceilings: a 1 GiB copy (read + write) and a bf16 8192^3 matmul.
  at::Tensor src = torch::empty({int64_t(1) << 28}, cuda.dtype(torch::kFloat)), dst = torch::empty_like(src);
  const double copy_ms = cuda_median_ms([&] { dst.copy_(src); }, iters);
  const double copy_gbs = 2.0 * src.nbytes() / (copy_ms * 1e6);
  src.reset();
  dst.reset();
  at::Tensor a = torch::randn({8192, 8192}, cuda.dtype(torch::kBFloat16)), b = torch::randn_like(a);
  const double mm_ms = cuda_median_ms([&] { at::mm(a, b); }, iters);
  const double mm_tflops = 2.0 * 8192.0 * 8192.0 * 8192.0 / (mm_ms * 1e9);
  a.reset();
  b.reset();
  std::printf("| copy 1 GiB | ATen | - | %.3f | %.0f GB/s | %.0f GB/s |\n", copy_ms, copy_gbs, copy_gbs);
  std::printf("| mm bf16 8192^3 | cuBLAS | - | %.3f | %.0f TFLOP/s | %.0f TFLOP/s |\n", mm_ms, mm_tflops, mm_tflops);

  // Gate: B examples, K rollouts, 256 tokens per sequence.
  {
    const int64_t B = 256, K = 8, L = 256, S = B + B * K;
    gaft::ops::GateInputs in;
    in.rollout_scores = torch::rand({B, K}, cuda);
    in.reference_scores = torch::rand({B}, cuda);
    in.token_seq = torch::arange(S, cuda.dtype(torch::kLong)).repeat_interleave(L);  // [S * L]
    gaft::ops::GateInputs cpu{in.rollout_scores.cpu(), in.reference_scores.cpu(), in.token_seq.cpu(), {}, {}};
    gaft::ops::GateParams p;
    const double bytes = (double)in.token_seq.numel() * (8 + 4) + B * K * 4 * 2 + B * 4 * 6;
    const double ours = cuda_median_ms([&] { gaft::ops::gate_weights(in, p); }, iters);
    const double ref = cuda_median_ms([&] { gaft::ops::reference::gate_weights(cpu, p); }, std::min(iters, 5));
    std::printf("| gate_weights | ours (1 launch) | B %lld K %lld N %lld | %.3f | %.1f GB/s | %.0f GB/s |\n",
                (long long)B, (long long)K, (long long)in.token_seq.numel(), ours, bytes / (ours * 1e6), copy_gbs);
    std::printf("| gate_weights | reference (ATen, CPU f64) | same | %.3f | %.1f GB/s | - |\n", ref,
                bytes / (ref * 1e6));
  }

  // weighted_logprob forward + backward, and the selective forward.
  for (auto dtype : {torch::kBFloat16, torch::kFloat}) {
    const char* dn = dtype == torch::kBFloat16 ? "bf16" : "fp32";
    at::Tensor h = torch::randn({N, H}, cuda).to(dtype).requires_grad_(true);
    at::Tensor W = (torch::randn({V, H}, cuda) / std::sqrt((double)H)).to(dtype).requires_grad_(true);
    at::Tensor y = torch::randint(0, V, {N}, cuda.dtype(torch::kLong));
    at::Tensor w = torch::rand({N}, cuda) + 0.5;
    const double flop = 6.0 * N * H * V;
    auto fwd_bwd = [&](bool ours) {
      h.mutable_grad().reset();
      W.mutable_grad().reset();
      at::Tensor loss = ours ? gaft::ops::weighted_logprob(h, W, y, w).loss
                             : gaft::ops::reference::weighted_logprob(h, W, y, w).loss;
      loss.backward();
    };
    const double ours = cuda_median_ms([&] { fwd_bwd(true); }, iters);
    const double ref = cuda_median_ms([&] { fwd_bwd(false); }, iters);
    const double sel = cuda_median_ms([&] { gaft::ops::token_logprob(h, W, y); }, iters);
    char shape[96];
    std::snprintf(shape, sizeof(shape), "%s N %lld H %lld V %lld", dn, (long long)N, (long long)H, (long long)V);
    std::printf("| weighted_logprob fwd+bwd | ours (fused, chunked) | %s | %.2f | %.0f TFLOP/s | %.0f TFLOP/s |\n", shape,
                ours, flop / (ours * 1e9), mm_tflops);
    std::printf("| weighted_logprob fwd+bwd | reference | %s | %.2f | %.0f TFLOP/s | %.0f TFLOP/s |\n", shape, ref,
                flop / (ref * 1e9), mm_tflops);
    std::printf("| token_logprob fwd | ours | %s | %.2f | %.0f TFLOP/s | %.0f TFLOP/s |\n", shape, sel,
                flop / 3 / (sel * 1e9), mm_tflops);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time and peak memory of gaft::weighted_logprob (fused, chunked) vs the materialising reference"};
  std::string tokens = "4096,8192", vocab = "32000,128256", dtypes = "bf16,fp32";
  int64_t hidden = 2048, chunk = 0;
  int repeats = 3, threads = 0;
  double max_reference_gb = 20.0, zero_fraction = 0.0;
  app.add_option("--tokens", tokens, "comma-separated token counts N");
  app.add_option("--hidden", hidden, "hidden size H");
  app.add_option("--vocab", vocab, "comma-separated vocabulary sizes V");
  app.add_option("--dtype", dtypes, "comma-separated dtypes: bf16, fp32");
  app.add_option("--repeats", repeats, "runs per variant (median time, max peak)")->check(CLI::PositiveNumber);
  app.add_option("--chunk", chunk, "tokens per chunk of the fused op (0 = default budget)");
  app.add_option("--threads", threads, "intra-op threads (0 = LibTorch's default)");
  app.add_option("--max-reference-gb", max_reference_gb,
                 "skip the reference where its estimated peak (N*V*14 bytes bf16, *16 fp32) exceeds this");
  app.add_option("--zero-fraction", zero_fraction, "share of tokens with weight 0 (prompt, pad)");
  std::string device = "cpu";
  int iters = 20;
  app.add_option("--device", device, "cpu (memory and time table) or cuda (CUDA-event timings, gpu_check.sh)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--iters", iters, "CUDA: timed runs per variant (median)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (device == "cuda") {
    // One shape per run on the GPU: the first of --tokens and the last of --vocab.
    return run_gpu(iters, std::stoll(split(tokens).front()), hidden, std::stoll(split(vocab).back()));
  }
  if (threads > 0) torch::set_num_threads(threads);
  if (!reset_peak()) std::printf("warning: cannot write /proc/self/clear_refs; peaks include earlier runs\n");

  std::printf("weighted_logprob forward+backward on the CPU, %d threads, median of %d run(s); peak = VmHWM - RSS "
              "before the run\n\n",
              torch::get_num_threads(), repeats);
  std::printf("| dtype | N | H | V | ours ms | reference ms | time ratio | ours peak MiB | reference peak MiB | peak ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const std::string& dt : split(dtypes)) {
    if (dt != "bf16" && dt != "fp32") {
      std::fprintf(stderr, "unknown --dtype %s (expected bf16 or fp32)\n", dt.c_str());
      return 2;
    }
    const at::ScalarType dtype = dt == "bf16" ? at::kBFloat16 : at::kFloat;
    for (const std::string& vs : split(vocab)) {
      for (const std::string& ns : split(tokens)) {
        const int64_t N = std::stoll(ns), V = std::stoll(vs);
        torch::manual_seed(0);
        Problem p;
        p.h = torch::randn({N, hidden}).to(dtype).requires_grad_(true);
        p.W = (torch::randn({V, hidden}) / std::sqrt((double)hidden)).to(dtype).requires_grad_(true);
        p.targets = torch::randint(0, V, {N}, torch::kLong);
        p.weights = torch::rand({N}) + 0.5;
        if (zero_fraction > 0) p.weights.masked_fill_(torch::rand({N}) < zero_fraction, 0.0);
        Measure ours = measure(true, p, repeats, chunk);
        const double ref_gb = (double)N * V * (dtype == at::kBFloat16 ? 14 : 16) / 1e9;
        Measure ref;
        ref.skipped = ref_gb > max_reference_gb;
        if (!ref.skipped) ref = measure(false, p, repeats, chunk);
        if (ref.skipped) {
          std::printf("| %s | %lld | %lld | %lld | %.0f | skipped | - | %.0f | skipped (~%.0f GB) | - |\n", dt.c_str(),
                      (long long)N, (long long)hidden, (long long)V, ours.median_ms, ours.peak_mib, ref_gb);
        } else {
          std::printf("| %s | %lld | %lld | %lld | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", dt.c_str(), (long long)N,
                      (long long)hidden, (long long)V, ours.median_ms, ref.median_ms, ours.median_ms / ref.median_ms,
                      ours.peak_mib, ref.peak_mib, ours.peak_mib / ref.peak_mib);
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
