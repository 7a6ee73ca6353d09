// CUDA parity of the custom ops: the CUDA gate against the CPU gate, and the CUDA weighted log-likelihood
// (chunked driver + fused row kernel) against the reference on the same GPU, forward and gradients.
// Compiled in every build (only ATen calls on CUDA tensors); skipped when no GPU is present.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "gaft/ops.h"

namespace {

using namespace gaft::ops;

#define SKIP_WITHOUT_GPU() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

void expect_close(const at::Tensor& a, const at::Tensor& b, double rtol, const std::string& what, double atol = 1e-7) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  at::Tensor x = a.to(torch::kCPU, torch::kDouble), y = b.to(torch::kCPU, torch::kDouble);
  EXPECT_TRUE(at::isfinite(x).all().item<bool>()) << what;
  const double err = (x - y).abs().max().item<double>();
  const double ref = y.abs().max().item<double>();
  EXPECT_LE(err, rtol * ref + atol) << what << ": max error " << err << " vs max |ref| " << ref;
}

TEST(CudaGate, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t B = 37, K = 6, S = B + B * K, N = 5000;  // more examples and tokens than one pass of threads
  GateInputs cpu;
  cpu.rollout_scores = torch::rand({B, K});
  cpu.rollout_scores[1][2] = nan;
  cpu.rollout_scores[2] = nan;
  cpu.rollout_scores[0] = 0.05;
  cpu.reference_scores = torch::rand({B});
  cpu.reference_scores[0] = 0.01;
  cpu.reference_scores[3] = nan;
  cpu.token_seq = torch::randint(-1, S, {N}, torch::kLong);
  cpu.scorer_uncertainty = torch::rand({B});
  cpu.learned_gate = torch::rand({B});
  GateInputs gpu;
  gpu.rollout_scores = cpu.rollout_scores.cuda();
  gpu.reference_scores = cpu.reference_scores.cuda();
  gpu.token_seq = cpu.token_seq.cuda();
  gpu.scorer_uncertainty = cpu.scorer_uncertainty.cuda();
  gpu.learned_gate = cpu.learned_gate.cuda();
  for (int mode = 0; mode < 3; ++mode)
    for (int unc = 0; unc < 3; ++unc)
      for (int adv = 0; adv < 2; ++adv)
        for (int norm = 0; norm < 4; ++norm) {  // sft_norm x sft_coef
          GateParams p;
          p.mode = GateMode(mode);
          p.uncertainty = UncertaintyMode(unc);
          p.advantage = AdvantageMode(adv);
          p.sft_norm = SftNorm(norm % 2);
          p.sft_coef = SftCoefficient(norm / 2);
          p.delta = 0.3;
          GateOutputs a = gate_weights(gpu, p), b = gate_weights(cpu, p);
          const std::string tag = "mode " + std::to_string(mode) + " unc " + std::to_string(unc) + " adv " +
                                  std::to_string(adv) + " norm " + std::to_string(norm);
          EXPECT_TRUE(a.weights.is_cuda());
          expect_close(a.g, b.g, 1e-6, tag + " g");
          expect_close(a.advantages, b.advantages, 1e-6, tag + " advantages");
          expect_close(a.p, b.p, 1e-6, tag + " p");
          expect_close(a.u, b.u, 1e-6, tag + " u");
          expect_close(a.weights, b.weights, 1e-6, tag + " weights", 1e-10);
          EXPECT_TRUE(at::equal(a.flags.cpu(), b.flags)) << tag;
          EXPECT_EQ(a.num_invalid.item<int64_t>(), b.num_invalid.item<int64_t>()) << tag;
        }
}

struct Case {
  int64_t N, H, V, chunk;
};

void compare_on_gpu(const Case& c, at::ScalarType dtype, double rtol, double scale = 1.0, double softcap = 0) {
  auto opts = torch::TensorOptions().device(torch::kCUDA);
  at::Tensor h0 = (torch::randn({c.N, c.H}, opts) * scale).to(dtype);
  at::Tensor W0 = (torch::randn({c.V, c.H}, opts) / std::sqrt((double)c.H)).to(dtype);
  at::Tensor targets = torch::randint(0, c.V, {c.N}, opts.dtype(torch::kLong));
  at::Tensor w0 = torch::randn({c.N}, opts);
  if (c.N > 3) {
    w0.index_put_({torch::indexing::Slice(0, torch::indexing::None, 3)}, 0.0);
    targets.index_put_({torch::indexing::Slice(1, torch::indexing::None, 5)}, kIgnoreIndex);
  }
  at::Tensor out[2][6];
  for (int which = 0; which < 2; ++which) {
    at::Tensor h = h0.clone().requires_grad_(true), W = W0.clone().requires_grad_(true),
               w = w0.clone().requires_grad_(true);
    WeightedLogprob r = which == 0 ? weighted_logprob(h, W, targets, w, {c.chunk, true, true, softcap})
                                   : reference::weighted_logprob(h, W, targets, w, softcap);
    r.loss.backward();
    at::Tensor lp = r.logp.detach(), en = r.entropy.detach();
    out[which][0] = r.loss.detach();
    out[which][1] = lp;
    out[which][2] = en;
    out[which][3] = h.grad();
    out[which][4] = W.grad();
    out[which][5] = w.grad();
  }
  const char* names[6] = {"loss", "logp", "entropy", "dh", "dW", "dw"};
  const std::string tag = "N " + std::to_string(c.N) + " H " + std::to_string(c.H) + " V " + std::to_string(c.V) +
                          " " + std::string(c10::toString(dtype)) + " ";
  for (int k = 0; k < 6; ++k) {
    EXPECT_TRUE(out[0][k].is_cuda()) << names[k];
    expect_close(out[0][k], out[1][k], rtol, tag + names[k]);
  }
}

const Case kCases[] = {{1, 8, 5, 0}, {123, 17, 37, 16}, {64, 1, 50, 7}, {40, 32, 5, 3}, {200, 48, 3333, 64}};

TEST(CudaWeightedLogprob, Fp32MatchesReference) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(1);
  for (const Case& c : kCases) compare_on_gpu(c, torch::kFloat, 1e-5);
}

TEST(CudaWeightedLogprob, Bf16MatchesReference) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(2);
  for (const Case& c : kCases) compare_on_gpu(c, torch::kBFloat16, 2e-2);
}

TEST(CudaWeightedLogprob, DoubleAndHugeLogits) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(3);
  compare_on_gpu({50, 16, 70, 8}, torch::kDouble, 1e-10);
  compare_on_gpu({50, 16, 70, 8}, torch::kFloat, 1e-5, 1e4);
}

TEST(CudaWeightedLogprob, SoftCappedLogits) {  // Gemma 2's final_logit_softcapping
  SKIP_WITHOUT_GPU();
  torch::manual_seed(5);
  compare_on_gpu({123, 17, 37, 16}, torch::kFloat, 1e-5, 8.0, 3.0);
  compare_on_gpu({200, 48, 3333, 64}, torch::kBFloat16, 2e-2, 8.0, 3.0);
}

TEST(CudaTokenLogprob, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(4);
  at::Tensor h = torch::randn({300, 64}), W = torch::randn({1000, 64}) / 8;
  at::Tensor y = torch::randint(0, 1000, {300}, torch::kLong);
  TokenLogprob a = token_logprob(h.cuda(), W.cuda(), y.cuda(), true, 32);
  TokenLogprob b = token_logprob(h, W, y, true, 32);
  expect_close(a.logp, b.logp, 1e-5, "logp");
  expect_close(a.entropy, b.entropy, 1e-5, "entropy");
}

}  // namespace
