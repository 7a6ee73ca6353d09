// gaft::gate_weights on the CPU: hand-computed cases for each mode and edge case (exact numbers written
// here), and random batches against the vectorised ATen reference (gaft::ops::reference::gate_weights).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "gaft/ops.h"

namespace {

using namespace gaft::ops;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

at::Tensor f32(std::vector<float> v, std::vector<int64_t> shape) {
  return torch::tensor(v, torch::kFloat).reshape(shape);
}
at::Tensor i64(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// One example (B = 1), K = 4 rollouts. token_seq: 2 prompt tokens, reference of length 4, rollouts of
// length 2, 3, 1, 2, then a pad.
GateInputs one_example(std::vector<float> r, float s) {
  GateInputs in;
  in.rollout_scores = f32(r, {1, 4});
  in.reference_scores = f32({s}, {1});
  in.token_seq = i64({-1, -1, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, -1});
  return in;
}

TEST(Gate, AlignedCertainSampleTrainsAsSft) {
  GateParams p;  // uncertainty mode, entropy, rloo, sequence norm
  p.tau = 0.5;
  p.temperature = 0.05;
  GateOutputs o = gate_weights(one_example({1, 1, 1, 1}, 1.0f), p);
  const double g = sigmoid((0.0 + 0.0 - 0.5) / 0.05);  // m = 0, u = H(1) = 0 -> sigmoid(-10) = 4.54e-5
  EXPECT_NEAR(o.g.item<float>(), g, 1e-9);
  EXPECT_LT(o.g.item<float>(), 1e-4);
  EXPECT_EQ(o.flags.item<int>(), 0);
  EXPECT_EQ(o.num_invalid.item<int64_t>(), 0);
  auto w = o.weights.accessor<float, 1>();
  EXPECT_FLOAT_EQ(w[0], 0.0f);
  for (int n = 2; n < 6; ++n) EXPECT_FLOAT_EQ(w[n], -1.0 / 4.0);  // -c / (B |y|), c = 1 - g (1 - s) = 1
  for (int n = 6; n < 14; ++n) EXPECT_EQ(w[n], 0.0f);  // constant rewards: A = 0
  EXPECT_EQ(w[14], 0.0f);
  EXPECT_EQ(o.advantages.abs().max().item<float>(), 0.0f);
}

TEST(Gate, ExactWeightsUncertaintyMode) {
  // r = [1, 0, 0.5, 0.5]: p = 0.5, s = 0.8: m = 0.5, u = H(0.5) = 1 bit.
  GateParams p;
  p.w_m = 2.0;
  p.w_u = 1.0;
  p.tau = 1.0;
  p.temperature = 0.5;
  p.lambda = 0.5;
  p.delta = 0.3;
  GateOutputs o = gate_weights(one_example({1, 0, 0.5f, 0.5f}, 0.8f), p);
  const double g = sigmoid((2.0 * 0.5 + 1.0 * 1.0 - 1.0) / 0.5);  // sigmoid(2)
  EXPECT_NEAR(o.g.item<float>(), g, 1e-6);
  EXPECT_NEAR(o.p.item<float>(), 0.5, 1e-7);
  EXPECT_NEAR(o.u.item<float>(), 1.0, 1e-7);
  // RLOO: A_k = r_k - mean of the other three.
  const double A[4] = {1 - 1.0 / 3, 0 - 2.0 / 3, 0.5 - 1.5 / 3, 0.5 - 1.5 / 3};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(o.advantages[0][k].item<float>(), A[k], 1e-6);
  auto w = o.weights.accessor<float, 1>();
  EXPECT_NEAR(w[2], -(1 - g * (1 - 0.8)) / 4.0, 1e-7);  // c = 1 - g (1 - s)
  const int len[4] = {2, 3, 1, 2};
  const int first[4] = {6, 8, 11, 12};
  for (int k = 0; k < 4; ++k)  // -lambda g A / (B K |y^k|)
    EXPECT_NEAR(w[first[k]], -0.5 * g * A[k] / (1.0 * 4 * len[k]), 1e-7) << "rollout " << k;
}

TEST(Gate, FixedModeAndGrpo) {
  GateParams p;
  p.mode = GateMode::kFixed;
  p.g0 = 0.25;
  p.advantage = AdvantageMode::kGrpo;
  p.delta = 0.0;
  GateOutputs o = gate_weights(one_example({1, 0, 1, 0}, 0.9f), p);
  EXPECT_FLOAT_EQ(o.g.item<float>(), 0.25f);
  // mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
  const double sd = std::sqrt(1.0 / 3.0);
  EXPECT_NEAR(o.advantages[0][0].item<float>(), 0.5 / sd, 1e-6);
  EXPECT_NEAR(o.advantages[0][1].item<float>(), -0.5 / sd, 1e-6);
  EXPECT_NEAR(o.weights[2].item<float>(), -(1 - 0.25 * 0.1) / 4.0, 1e-7);  // c = 1 - g0 (1 - s)
  EXPECT_NEAR(o.weights[6].item<float>(), -1.0 * 0.25 * (0.5 / sd) / (4 * 2), 1e-7);
}

TEST(Gate, StdAndScorerUncertaintyAndLearnedGate) {
  GateParams p;
  p.uncertainty = UncertaintyMode::kStd;
  p.w_m = 0;
  p.w_u = 1;
  p.tau = 0;
  p.temperature = 1;
  GateOutputs o = gate_weights(one_example({1, 0, 1, 0}, 0.9f), p);
  EXPECT_NEAR(o.u.item<float>(), 1.0, 1e-7);  // 2 * population std 0.5
  EXPECT_NEAR(o.g.item<float>(), sigmoid(1.0), 1e-6);

  p.uncertainty = UncertaintyMode::kScorer;
  GateInputs in = one_example({1, 0, 1, 0}, 0.9f);
  in.scorer_uncertainty = f32({1.7f}, {1});  // clamped to 1
  EXPECT_NEAR(gate_weights(in, p).u.item<float>(), 1.0, 1e-7);
  in.scorer_uncertainty = f32({0.3f}, {1});
  EXPECT_NEAR(gate_weights(in, p).g.item<float>(), sigmoid(0.3), 1e-6);

  p.mode = GateMode::kLearned;
  in.learned_gate = f32({0.4f}, {1});
  GateOutputs l = gate_weights(in, p);
  EXPECT_FLOAT_EQ(l.g.item<float>(), 0.4f);
  EXPECT_NEAR(l.weights[2].item<float>(), -(1 - 0.4 * 0.1) / 4, 1e-7);
  in.learned_gate = at::Tensor();
  EXPECT_THROW(gate_weights(in, p), c10::Error);  // learned mode needs the gate
}

TEST(Gate, MisalignedReferenceIsDropped) {
  GateParams p;
  p.delta = 0.5;
  GateOutputs o = gate_weights(one_example({0.9f, 0.8f, 0.9f, 0.8f}, 0.1f), p);
  EXPECT_EQ(o.flags.item<int>(), kFlagDropSft);
  for (int n = 2; n < 6; ++n) EXPECT_EQ(o.weights[n].item<float>(), 0.0f);
  EXPECT_NE(o.weights[6].item<float>(), 0.0f);  // the policy-gradient term is unchanged
}

TEST(Gate, FullyMisalignedSampleAbstains) {
  GateParams p;
  p.delta = 0.5;
  GateOutputs o = gate_weights(one_example({0.1f, 0.2f, 0.1f, 0.2f}, 0.2f), p);
  EXPECT_EQ(o.flags.item<int>(), kFlagAbstain);
  for (int n = 2; n < 6; ++n) EXPECT_FLOAT_EQ(o.weights[n].item<float>(), -1.0f / 4);  // SFT coefficient 1
  p.abstention = false;  // then the ordinary c = 1 - g (1 - s)
  GateOutputs q = gate_weights(one_example({0.1f, 0.2f, 0.1f, 0.2f}, 0.2f), p);
  EXPECT_EQ(q.flags.item<int>(), 0);
  EXPECT_NEAR(q.weights[2].item<float>(), -(1 - q.g.item<float>() * 0.8) / 4, 1e-7);
}

// c_i = 1 - g_i (1 - s_i) by default: an aligned reference is imitated in full however high the gate (here
// every rollout fails: m = 1, g = sigmoid(3)); `complement` (METHOD.md as written) gives 1 - g.
TEST(Gate, SftCoefficientModes) {
  GateParams p;
  p.w_m = 6;
  p.w_u = 6;
  p.tau = 3;
  p.temperature = 1;
  GateOutputs o = gate_weights(one_example({0, 0, 0, 0}, 1.0f), p);
  const double g = sigmoid(3.0);
  EXPECT_NEAR(o.g.item<float>(), g, 1e-6);
  EXPECT_EQ(o.flags.item<int>(), 0);  // s >= delta: neither abstain nor drop
  EXPECT_FLOAT_EQ(o.weights[2].item<float>(), -1.0f / 4);
  EXPECT_EQ(o.advantages.abs().max().item<float>(), 0.0f);
  GateOutputs h = gate_weights(one_example({0, 0, 0, 0}, 0.6f), p);
  EXPECT_NEAR(h.weights[2].item<float>(), -(1 - g * 0.4) / 4, 1e-7);
  p.sft_coef = SftCoefficient::kComplement;
  EXPECT_NEAR(gate_weights(one_example({0, 0, 0, 0}, 1.0f), p).weights[2].item<float>(), -(1 - g) / 4, 1e-7);
  EXPECT_NEAR(gate_weights(one_example({0, 0, 0, 0}, 0.6f), p).weights[2].item<float>(), -(1 - g) / 4, 1e-7);
  // Scores above 1 are clamped for the coefficient: never more than full imitation.
  p.sft_coef = SftCoefficient::kReference;
  EXPECT_FLOAT_EQ(gate_weights(one_example({0, 0, 0, 0}, 1.5f), p).weights[2].item<float>(), -1.0f / 4);
}

TEST(Gate, RlooOfConstantRewardsIsZero) {
  GateInputs in;
  in.rollout_scores = f32({0.3f, 0.3f, 0.3f, 0.7f, 0.7f, 0.7f}, {2, 3});
  in.reference_scores = f32({0.9f, 0.9f}, {2});
  in.token_seq = i64({0, 1, 2, 3, 4, 5, 6, 7});
  GateOutputs o = gate_weights(in, GateParams{});
  EXPECT_EQ(o.advantages.abs().max().item<float>(), 0.0f);
  GateParams grpo;
  grpo.advantage = AdvantageMode::kGrpo;
  EXPECT_EQ(gate_weights(in, grpo).advantages.abs().max().item<float>(), 0.0f);
}

TEST(Gate, NonFiniteScoresNeverPropagate) {
  GateParams p;
  // Rollout 1 NaN, rollout 3 inf: valid r = [1, 0.5], K_i = 2.
  GateOutputs o = gate_weights(one_example({1, kNaN, 0.5f, kInf}, 0.9f), p);
  EXPECT_EQ(o.num_invalid.item<int64_t>(), 2);
  EXPECT_TRUE(at::isfinite(o.weights).all().item<bool>());
  EXPECT_TRUE(at::isfinite(o.advantages).all().item<bool>());
  EXPECT_NEAR(o.p.item<float>(), 0.75, 1e-7);
  EXPECT_EQ(o.advantages[0][1].item<float>(), 0.0f);
  EXPECT_EQ(o.advantages[0][3].item<float>(), 0.0f);
  EXPECT_NEAR(o.advantages[0][0].item<float>(), 0.5, 1e-7);
  EXPECT_EQ(o.weights[8].item<float>(), 0.0f);   // rollout 1
  EXPECT_EQ(o.weights[12].item<float>(), 0.0f);  // rollout 3
  const double g = o.g.item<float>();
  EXPECT_NEAR(o.weights[6].item<float>(), -g * 0.5 / (2 * 2), 1e-7);  // K_i = 2

  // Invalid reference: SFT weight 0, flags 4|2, m from p alone.
  GateOutputs q = gate_weights(one_example({1, 1, 0, 0}, kNaN), p);
  EXPECT_EQ(q.flags.item<int>(), kFlagInvalidReference | kFlagDropSft);
  EXPECT_EQ(q.num_invalid.item<int64_t>(), 1);
  EXPECT_EQ(q.weights[2].item<float>(), 0.0f);
  const double m = 0.5, u = 1.0;
  EXPECT_NEAR(q.g.item<float>(), sigmoid((m + u - 0.5) / 0.1), 1e-6);

  // No valid rollout: g = 0, plain SFT.
  GateOutputs r = gate_weights(one_example({kNaN, kNaN, -kInf, kNaN}, 0.9f), p);
  EXPECT_EQ(r.flags.item<int>(), kFlagNoValidRollout);
  EXPECT_EQ(r.g.item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(r.weights[2].item<float>(), -0.25f);
  EXPECT_EQ(r.weights.narrow(0, 6, 9).abs().max().item<float>(), 0.0f);

  // Both missing: everything 0.
  GateOutputs z = gate_weights(one_example({kNaN, kNaN, kNaN, kNaN}, kInf), p);
  EXPECT_EQ(z.num_invalid.item<int64_t>(), 5);
  EXPECT_EQ(z.weights.abs().max().item<float>(), 0.0f);
}

TEST(Gate, TokenNormalisationAndGlobalCounts) {
  GateInputs in;
  in.rollout_scores = f32({0.9f, 0.9f, 0.8f, 0.8f}, {2, 2});
  in.reference_scores = f32({0.95f, 0.95f}, {2});
  in.token_seq = i64({-1, 0, 0, 0, -1, 1, 2, 3, 4, 5});  // references of length 3 and 1: T = 4
  GateParams p;
  p.mode = GateMode::kFixed;
  p.g0 = 0.2;
  p.sft_coef = SftCoefficient::kComplement;  // c = 0.8 for both
  p.sft_norm = SftNorm::kToken;
  GateOutputs o = gate_weights(in, p);
  EXPECT_FLOAT_EQ(o.weights[1].item<float>(), -0.8f / 4);
  EXPECT_FLOAT_EQ(o.weights[5].item<float>(), -0.8f / 4);
  p.norm_tokens = 100;
  EXPECT_FLOAT_EQ(gate_weights(in, p).weights[5].item<float>(), -0.8f / 100);
  p.sft_norm = SftNorm::kSequence;
  p.norm_examples = 8;
  GateOutputs q = gate_weights(in, p);
  EXPECT_FLOAT_EQ(q.weights[1].item<float>(), -0.8f / (8 * 3));
  EXPECT_FLOAT_EQ(q.weights[5].item<float>(), -0.8f / (8 * 1));
}

TEST(Gate, RejectsBadTokenMap) {
  GateInputs in = one_example({1, 1, 1, 1}, 1.0f);
  in.token_seq = i64({0, 5});  // S = 1 + 4 = 5
  EXPECT_THROW(gate_weights(in, GateParams{}), c10::Error);
  in.token_seq = i64({-2});
  EXPECT_THROW(gate_weights(in, GateParams{}), c10::Error);
}

// Random batches, every mode combination, against the vectorised reference.
TEST(Gate, MatchesReferenceOnRandomBatches) {
  torch::manual_seed(0);
  const int64_t B = 7, K = 5;
  GateInputs in;
  at::Tensor r = torch::rand({B, K});
  r[0] = 0.05;                        // fully misaligned with s below
  r[1][2] = kNaN;
  r[2] = kNaN;                        // no valid rollout
  r[3][0] = kInf;
  r[4] = 0.6;                         // constant
  at::Tensor s = torch::rand({B});
  s[0] = 0.01;
  s[5] = kNaN;
  s[6] = 0.1;                         // reference-only misaligned if p >= delta
  in.rollout_scores = r;
  in.reference_scores = s;
  // Random map: each token belongs to a random sequence or is untrained.
  const int64_t S = B + B * K, N = 300;
  in.token_seq = torch::randint(-1, S, {N}, torch::kLong);
  in.scorer_uncertainty = torch::rand({B});
  in.learned_gate = torch::rand({B});
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
          p.lambda = 0.7;
          p.delta = 0.3;
          p.norm_examples = norm % 2 == 1 ? 0 : 3;
          GateOutputs a = gate_weights(in, p), b = reference::gate_weights(in, p);
          SCOPED_TRACE(testing::Message() << "mode " << mode << " unc " << unc << " adv " << adv << " norm " << norm);
          EXPECT_TRUE(at::allclose(a.g, b.g, 1e-5, 1e-7));
          EXPECT_TRUE(at::allclose(a.advantages, b.advantages, 1e-5, 1e-6));
          EXPECT_TRUE(at::allclose(a.p, b.p, 1e-5, 1e-7));
          EXPECT_TRUE(at::allclose(a.u, b.u, 1e-5, 1e-7));
          EXPECT_TRUE(at::equal(a.flags, b.flags)) << a.flags << b.flags;
          EXPECT_EQ(a.num_invalid.item<int64_t>(), b.num_invalid.item<int64_t>());
          EXPECT_TRUE(at::allclose(a.weights, b.weights, 1e-5, 1e-8)) << (a.weights - b.weights).abs().max();
        }
}

// The weights reproduce the loss L = (1/B) sum_i [c_i l_SFT,i + lambda g_i l_PG,i], c_i = 1 - g_i (1 - s_i)
// (default) or 1 - g_i (complement, METHOD.md step 8).
TEST(Gate, WeightsReproduceTheObjective) {
  for (int coef = 0; coef < 2; ++coef) {
    torch::manual_seed(1);
    const int64_t B = 3, K = 4, S = B + B * K;
    GateInputs in;
    in.rollout_scores = torch::rand({B, K}) * 0.5 + 0.5;
    in.reference_scores = torch::rand({B}) * 0.5 + 0.5;
    in.token_seq = at::cat({torch::full({3}, -1, torch::kLong), torch::arange(S).repeat_interleave(3),
                            torch::arange(S).narrow(0, 0, 5)});  // lengths 4 for the first 5, 3 after
    GateParams p;
    p.lambda = 0.8;
    p.delta = 0.1;  // no abstention, no dropping
    p.sft_coef = SftCoefficient(coef);
    GateOutputs o = gate_weights(in, p);
    at::Tensor logp = -torch::rand({in.token_seq.size(0)}, torch::kDouble);  // fake log p per token
    at::Tensor seq = in.token_seq;
    double L = 0;
    for (int64_t i = 0; i < B; ++i) {
      auto seq_mean = [&](int64_t q) {
        at::Tensor sel = seq == q;
        return (logp.masked_select(sel).sum() / sel.sum()).item<double>();
      };
      const double g = o.g[i].item<float>();
      double pg = 0;
      for (int64_t k = 0; k < K; ++k) pg -= o.advantages[i][k].item<float>() * seq_mean(B + i * K + k);
      const double s = in.reference_scores[i].item<float>();
      const double c = coef == 0 ? 1 - g * (1 - s) : 1 - g;
      L += c * -seq_mean(i) + p.lambda * g * pg / K;
    }
    L /= B;
    const double ours = (o.weights.to(torch::kDouble) * logp).sum().item<double>();
    EXPECT_NEAR(ours, L, 1e-6 * std::abs(L) + 1e-9) << "sft_coef " << coef;
  }
}

}  // namespace
