// gaft::weighted_logprob on the CPU against the plain ATen reference (materialised logits + autograd):
// loss, log p, entropy and the gradients w.r.t. h, W and w; fp32 (1e-5 relative), bf16 (2e-2), odd shapes,
// several chunks, non-contiguous inputs, zero weights, ignored targets, huge logits; and finite
// differences in double on tiny shapes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "gaft/ops.h"

namespace {

using namespace gaft::ops;

struct Case {
  int64_t N, H, V, chunk;
};

struct Grads {
  at::Tensor loss, logp, entropy, dh, dW, dw;
};

// Random inputs: some weights zero, some targets ignored.
struct Inputs {
  at::Tensor h, W, targets, weights;
};

Inputs make_inputs(const Case& c, at::ScalarType dtype, double scale = 1.0) {
  Inputs in;
  in.h = (torch::randn({c.N, c.H}) * scale).to(dtype);
  in.W = (torch::randn({c.V, c.H}) / std::sqrt((double)c.H)).to(dtype);
  in.targets = torch::randint(0, c.V, {c.N}, torch::kLong);
  in.weights = torch::randn({c.N});
  if (c.N > 3) {
    in.weights.index_put_({torch::indexing::Slice(0, torch::indexing::None, 3)}, 0.0);  // every third weight 0
    in.targets.index_put_({torch::indexing::Slice(1, torch::indexing::None, 5)}, kIgnoreIndex);
  }
  return in;
}

Grads run(bool ours, const Inputs& in, int64_t chunk, double grad_scale = 1.0, double softcap = 0) {
  at::Tensor h = in.h.detach().clone().requires_grad_(true);
  at::Tensor W = in.W.detach().clone().requires_grad_(true);
  at::Tensor w = in.weights.detach().clone().requires_grad_(true);
  WeightedLogprob r = ours ? weighted_logprob(h, W, in.targets, w, {chunk, true, true, softcap})
                           : reference::weighted_logprob(h, W, in.targets, w, softcap);
  (r.loss * grad_scale).backward();
  return {r.loss.detach(), r.logp.detach(), r.entropy.detach(), h.grad(), W.grad(), w.grad()};
}

// max |a - b| <= rtol * max |b| + atol (a norm-wise relative check, robust to cancellation in sums).
void expect_close(const at::Tensor& a, const at::Tensor& b, double rtol, const char* what, double atol = 1e-7) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  at::Tensor x = a.to(torch::kDouble), y = b.to(torch::kDouble);
  EXPECT_TRUE(at::isfinite(x).all().item<bool>()) << what;
  const double err = (x - y).abs().max().item<double>();
  const double ref = y.abs().max().item<double>();
  EXPECT_LE(err, rtol * ref + atol) << what << ": max error " << err << " vs max |ref| " << ref;
}

void compare(const Inputs& in, int64_t chunk, double rtol, double grad_scale = 1.0, double softcap = 0) {
  Grads a = run(true, in, chunk, grad_scale, softcap), b = run(false, in, chunk, grad_scale, softcap);
  at::Tensor computed = in.targets != kIgnoreIndex;  // w requires grad here, so w = 0 rows are computed too
  auto masked = [&](const at::Tensor& t) { return at::where(computed, t, at::zeros_like(t)); };
  expect_close(a.loss, b.loss, rtol, "loss");
  expect_close(a.logp, masked(b.logp), rtol, "logp");
  expect_close(a.entropy, masked(b.entropy), rtol, "entropy");
  expect_close(a.dh, b.dh, rtol, "dh");
  expect_close(a.dW, b.dW, rtol, "dW");
  expect_close(a.dw, b.dw, rtol, "dw");
  EXPECT_EQ(a.dh.scalar_type(), in.h.scalar_type());
  EXPECT_EQ(a.dW.scalar_type(), in.W.scalar_type());
}

const Case kCases[] = {
    {1, 8, 5, 0},        // N = 1
    {123, 17, 37, 16},   // N = 123, 8 chunks, the last partial
    {64, 1, 50, 7},      // H = 1
    {40, 32, 5, 3},      // V = 5
    {33, 64, 1000, 0},   // one chunk
    {200, 48, 333, 64},  // V not a multiple of anything
};

TEST(WeightedLogprob, Fp32MatchesReference) {
  torch::manual_seed(0);
  for (const Case& c : kCases) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " H " << c.H << " V " << c.V << " chunk " << c.chunk);
    compare(make_inputs(c, torch::kFloat), c.chunk, 1e-5);
  }
}

TEST(WeightedLogprob, Bf16MatchesReference) {
  torch::manual_seed(1);
  for (const Case& c : kCases) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " H " << c.H << " V " << c.V << " chunk " << c.chunk);
    compare(make_inputs(c, torch::kBFloat16), c.chunk, 2e-2);
  }
}

// Gemma 2's soft-capped logits c tanh(z / c): with logits scaled up so that the cap bites (|z| up to ~4c).
TEST(WeightedLogprob, SoftCappedLogitsMatchReference) {
  torch::manual_seed(11);
  for (const Case& c : kCases) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " H " << c.H << " V " << c.V << " chunk " << c.chunk);
    compare(make_inputs(c, torch::kFloat, 8.0), c.chunk, 1e-5, 1.0, 3.0);
    compare(make_inputs(c, torch::kBFloat16, 8.0), c.chunk, 2e-2, 1.0, 3.0);
  }
  // The cap changes the result (the inputs reach it) and token_logprob applies it too.
  Inputs in = make_inputs({50, 16, 40, 0}, torch::kFloat, 8.0);
  const at::Tensor capped = token_logprob(in.h, in.W, in.targets, false, 7, 3.0).logp;
  const at::Tensor plain = token_logprob(in.h, in.W, in.targets, false, 7).logp;
  expect_close(capped, reference::weighted_logprob(in.h, in.W, in.targets, in.weights, 3.0).logp, 1e-5, "capped logp");
  EXPECT_GT((capped - plain).abs().max().item<double>(), 0.1);
  EXPECT_THROW(weighted_logprob(in.h, in.W, in.targets, in.weights, {0, false, false, -1.0}), c10::Error);
}

TEST(WeightedLogprob, GradOutputScalesGradients) {
  torch::manual_seed(2);
  compare(make_inputs({50, 16, 70, 8}, torch::kFloat), 8, 1e-5, -3.5);
}

TEST(WeightedLogprob, NonContiguousInputs) {
  torch::manual_seed(3);
  Inputs in = make_inputs({60, 24, 90, 16}, torch::kFloat);
  Inputs nc;
  nc.h = torch::randn({60, 48}).narrow(1, 0, 24);       // row stride 48
  nc.h.copy_(in.h);
  nc.W = torch::randn({24, 90}).t();                     // [90, 24] transposed view
  nc.W.copy_(in.W);
  nc.targets = torch::stack({in.targets, in.targets}, 1).select(1, 0);  // stride 2
  nc.weights = torch::stack({in.weights, in.weights}, 1).select(1, 1);
  ASSERT_FALSE(nc.h.is_contiguous());
  ASSERT_FALSE(nc.W.is_contiguous());
  ASSERT_FALSE(nc.targets.is_contiguous());
  compare(nc, 16, 1e-5);
}

TEST(WeightedLogprob, AllZeroWeights) {
  torch::manual_seed(4);
  Inputs in = make_inputs({20, 8, 30, 4}, torch::kFloat);
  in.weights.zero_();
  Grads a = run(true, in, 4);
  EXPECT_EQ(a.loss.item<float>(), 0.0f);
  EXPECT_EQ(a.dh.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(a.dW.abs().max().item<float>(), 0.0f);
  // d/dw is still log p (weights require grad, so every valid target is computed).
  Grads b = run(false, in, 4);
  expect_close(a.dw, b.dw, 1e-5, "dw");
}

TEST(WeightedLogprob, IgnoredTargetsContributeNothing) {
  torch::manual_seed(5);
  Inputs in = make_inputs({30, 8, 20, 8}, torch::kFloat);
  in.targets.fill_(kIgnoreIndex);
  in.targets[3] = 7;
  Grads a = run(true, in, 8);
  at::Tensor others = torch::ones({30}, torch::kBool);
  others[3] = false;
  EXPECT_EQ(a.dh.index({others}).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(a.logp.index({others}).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(a.dw.index({others}).abs().max().item<float>(), 0.0f);
  compare(in, 8, 1e-5);
  in.targets[5] = 20;  // out of range
  EXPECT_THROW(weighted_logprob(in.h, in.W, in.targets, in.weights), c10::Error);
}

TEST(WeightedLogprob, HugeLogitsDoNotOverflow) {
  torch::manual_seed(6);
  Inputs in = make_inputs({25, 16, 40, 8}, torch::kFloat, 1e4);  // logits ~ 1e4..1e5
  Grads a = run(true, in, 8), b = run(false, in, 8);
  EXPECT_TRUE(at::isfinite(a.loss).item<bool>());
  EXPECT_TRUE(at::isfinite(a.dh).all().item<bool>());
  EXPECT_TRUE(at::isfinite(a.dW).all().item<bool>());
  EXPECT_TRUE(at::isfinite(a.entropy).all().item<bool>());
  compare(in, 8, 1e-5);
}

TEST(WeightedLogprob, NoGradAndInferenceMode) {
  torch::manual_seed(7);
  Inputs in = make_inputs({40, 16, 50, 8}, torch::kFloat);
  WeightedLogprob ref = reference::weighted_logprob(in.h, in.W, in.targets, in.weights);
  {
    c10::InferenceMode guard;
    WeightedLogprob r = weighted_logprob(in.h, in.W, in.targets, in.weights, {8, true, true});
    expect_close(r.loss, ref.loss, 1e-5, "loss (inference mode)");
  }
  {
    torch::NoGradGuard no_grad;
    at::Tensor h = in.h.clone().requires_grad_(true);
    WeightedLogprob n = weighted_logprob(h, in.W, in.targets, in.weights, {8});
    expect_close(n.loss, ref.loss, 1e-5, "loss (no_grad)");
    EXPECT_FALSE(n.loss.requires_grad());
  }
  WeightedLogprob r = weighted_logprob(in.h, in.W, in.targets, in.weights, {8, false, false});
  expect_close(r.loss, ref.loss, 1e-5, "loss");
  EXPECT_FALSE(r.logp.defined());
  EXPECT_FALSE(r.loss.requires_grad());
  // Without grad on w, tokens with w = 0 are skipped before the projection: log p and entropy are 0 there.
  WeightedLogprob s = weighted_logprob(in.h, in.W, in.targets, in.weights, {8, true, true});
  at::Tensor computed = (in.weights != 0).logical_and(in.targets != kIgnoreIndex);
  EXPECT_EQ(s.logp.masked_select(computed.logical_not()).abs().max().item<float>(), 0.0f);
  expect_close(s.logp, at::where(computed, ref.logp, at::zeros_like(ref.logp)), 1e-5, "logp");
  expect_close(s.entropy, at::where(computed, ref.entropy, at::zeros_like(ref.entropy)), 1e-5, "entropy");
}

TEST(TokenLogprob, MatchesReferenceOnEveryToken) {
  torch::manual_seed(8);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    Inputs in = make_inputs({77, 20, 45, 0}, dtype);
    TokenLogprob t = token_logprob(in.h.requires_grad_(true), in.W, in.targets, true, 10);
    WeightedLogprob ref = reference::weighted_logprob(in.h.detach(), in.W, in.targets, in.weights);
    const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;
    expect_close(t.logp, ref.logp, tol, "logp");
    expect_close(t.entropy, ref.entropy, tol, "entropy");
    EXPECT_FALSE(t.logp.requires_grad());
  }
}

TEST(WeightedLogprob, DoubleFiniteDifferences) {
 for (const double softcap : {0.0, 1.5}) {  // plain, and soft-capped logits (1.5: about |z| here)
  SCOPED_TRACE(testing::Message() << "softcap " << softcap);
  torch::manual_seed(9);
  Inputs in = make_inputs({6, 3, 5, 2}, torch::kDouble, softcap > 0 ? 3.0 : 1.0);
  in.weights = in.weights.to(torch::kDouble);
  in.weights[0] = 0.7;  // keep all but the ignored token in play
  Grads a = run(true, in, 2, 1.0, softcap);
  auto loss_of = [&](const at::Tensor& h, const at::Tensor& W, const at::Tensor& w) {
    return weighted_logprob(h, W, in.targets, w, {2, false, false, softcap}).loss.item<double>();
  };
  const double eps = 1e-6;
  auto check = [&](const at::Tensor& x, const at::Tensor& grad, int which, const char* what) {
    at::Tensor flat = x.view(-1);
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double x0 = flat[j].item<double>();
      flat[j] = x0 + eps;
      double up = which == 0 ? loss_of(x, in.W, in.weights) : which == 1 ? loss_of(in.h, x, in.weights) : loss_of(in.h, in.W, x);
      flat[j] = x0 - eps;
      double down = which == 0 ? loss_of(x, in.W, in.weights) : which == 1 ? loss_of(in.h, x, in.weights) : loss_of(in.h, in.W, x);
      flat[j] = x0;
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(grad.view(-1)[j].item<double>(), fd, 1e-7 + 1e-6 * std::abs(fd)) << what << "[" << j << "]";
    }
  };
  // Zero weights are skipped, which is a kink of the op at w = 0 for d/dh and d/dW only; none here but
  // the ignored target. d/dw at w = 0 is still exact since weights are perturbed with grad tracking off:
  // the op then skips w = 0 rows, so perturb only where w != 0.
  check(in.h, a.dh, 0, "dh");
  check(in.W, a.dW, 1, "dW");
  at::Tensor fdw = in.weights.clone();
  for (int64_t j = 0; j < fdw.numel(); ++j) {
    // d loss / d w_j = log p_j exactly (loss is linear in w): check against one-sided differences.
    const double w0 = in.weights[j].item<double>();
    in.weights[j] = w0 + 1.0;
    const double up = loss_of(in.h, in.W, in.weights);
    in.weights[j] = w0 + 2.0;
    const double up2 = loss_of(in.h, in.W, in.weights);
    in.weights[j] = w0;
    EXPECT_NEAR(a.dw[j].item<double>(), up2 - up, 1e-10) << "dw[" << j << "]";
  }
 }
}

}  // namespace
