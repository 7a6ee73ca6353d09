// The training objective against the loss of METHOD.md written out by hand on a tiny random model:
// equal gradients (SFT + policy gradient, abstention and drop, KL as loss and as reward shaping), the sft
// objective equal to gaft with every g = 0, the learned gate, the schedule and the optimizer groups.
#include "gaft/objective.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <utility>

#include "core/test_util.h"
#include "gaft/optim.h"
#include "gaft/recovery.h"
#include "gaft/rollout.h"

namespace {

gaft::ModelConfig tiny_config() {
  gaft::ModelConfig c;
  c.source = "tiny";
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 40;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

gaft::Llama tiny_model(uint64_t seed) {
  torch::manual_seed(seed);
  gaft::Llama m(tiny_config());
  torch::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.3);
  return m;
}

gaft::TrainSequence seq(const std::vector<int64_t>& prompt, const std::vector<int64_t>& response) {
  gaft::TrainSequence s;
  s.ids = prompt;
  s.trained.assign(prompt.size(), 0);
  s.ids.insert(s.ids.end(), response.begin(), response.end());
  s.trained.insert(s.trained.end(), response.size(), 1);
  return s;
}

// log p of each trained token of one sequence, computed alone (no batching, no padding): [n]
at::Tensor seq_logp(gaft::Llama& m, const gaft::TrainSequence& s) {
  const at::Tensor ids = at::tensor(s.ids, at::kLong).view({1, -1});
  const at::Tensor logp = m->logits(m->forward(ids)).squeeze(0).log_softmax(-1);  // [T, V]
  std::vector<at::Tensor> out;
  for (size_t t = 1; t < s.ids.size(); ++t)
    if (s.trained[t]) out.push_back(logp[static_cast<int64_t>(t) - 1][s.ids[t]]);
  return at::stack(out);
}

// A micro-batch of B = 2 examples, K = 3 rollouts each.
gaft::MicroBatch batch(const std::vector<float>& r, const std::vector<float>& s) {
  gaft::MicroBatch mb;
  mb.B = 2;
  mb.K = 3;
  mb.references = {seq({1, 5, 6, 7}, {8, 9, 2}), seq({1, 11, 12}, {13, 14, 15, 16, 2})};
  mb.rollouts = {seq({1, 5, 6, 7}, {20, 2}),         seq({1, 5, 6, 7}, {21, 22, 23, 2}), seq({1, 5, 6, 7}, {8, 2}),
                 seq({1, 11, 12}, {30, 31, 32, 2}), seq({1, 11, 12}, {33, 2}),          seq({1, 11, 12}, {13, 14, 2})};
  mb.rollout_scores = at::tensor(r).view({2, 3});
  mb.reference_scores = at::tensor(s);
  return mb;
}

std::vector<at::Tensor> grads(gaft::Llama& m) {
  std::vector<at::Tensor> g;
  for (auto& p : m->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  return g;
}

void zero(gaft::Llama& m) {
  for (auto& p : m->parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
}

// The objective on `mb` against the frozen reference `ref`: backward once, returns the loss (with its logged
// parts) and m's gradients, and leaves m's gradients zero for the hand-written loss.
std::pair<gaft::LossResult, std::vector<at::Tensor>> loss_against(gaft::Llama& m, gaft::Llama& ref,
                                                                 const gaft::MicroBatch& mb,
                                                                 const gaft::ObjectiveParams& p) {
  for (auto& q : ref->parameters()) q.set_requires_grad(false);
  gaft::LossResult lr = gaft::compute_loss(m, &ref, mb, gaft::decide_gate(mb, p.gate), p);
  lr.loss.backward();
  auto g = grads(m);
  zero(m);
  return {std::move(lr), std::move(g)};
}

void expect_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max(1e-3, b[i].abs().max().item<double>());
    EXPECT_LE((a[i] - b[i]).abs().max().item<double>() / scale, tol) << "parameter " << i;
  }
}

gaft::ObjectiveParams params(double g0, double lambda, double delta) {
  gaft::ObjectiveParams p;
  p.gate.mode = gaft::ops::GateMode::kFixed;
  p.gate.g0 = g0;
  p.gate.lambda = lambda;
  p.gate.delta = delta;
  p.gate.abstention = true;
  p.gate.advantage = gaft::ops::AdvantageMode::kRloo;
  p.pad_id = 0;
  return p;
}

// The loss of METHOD.md by hand: (1/B) sum_i [c_i l_SFT,i + lambda g l_PG,i] with RLOO advantages of `r`.
at::Tensor hand_loss(gaft::Llama& m, const gaft::MicroBatch& mb, double g, double lambda, const std::vector<double>& c,
                     const at::Tensor& r) {
  at::Tensor total = at::zeros({});
  for (int64_t i = 0; i < mb.B; ++i) {
    const at::Tensor sft = -seq_logp(m, mb.references[i]).mean();
    at::Tensor pg = at::zeros({});
    for (int64_t k = 0; k < mb.K; ++k) {
      double others = 0;
      for (int64_t j = 0; j < mb.K; ++j)
        if (j != k) others += r[i][j].item<double>();
      const double a = r[i][k].item<double>() - others / static_cast<double>(mb.K - 1);
      pg = pg - a * seq_logp(m, mb.rollouts[i * mb.K + k]).mean() / static_cast<double>(mb.K);
    }
    total = total + c[i] * sft + lambda * g * pg;
  }
  return total / static_cast<double>(mb.B);
}

// SFT coefficients of the kept references {0.8, 0.9} of the batches below: 1 - g (1 - s) by default,
// 1 - g under `complement`.
std::vector<double> kept_coefs(double g, gaft::ops::SftCoefficient mode = gaft::ops::SftCoefficient::kReference) {
  if (mode == gaft::ops::SftCoefficient::kComplement) return {1 - g, 1 - g};
  return {1 - g * (1 - 0.8), 1 - g * (1 - 0.9)};
}

}  // namespace

TEST(Objective, GradientEqualsHandWrittenLoss) {
  for (auto mode : {gaft::ops::SftCoefficient::kReference, gaft::ops::SftCoefficient::kComplement}) {
    SCOPED_TRACE(static_cast<int>(mode));
    gaft::Llama m = tiny_model(1);
    const gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
    const double g = 0.3, lambda = 0.7;
    auto p = params(g, lambda, 0.0);
    p.gate.sft_coef = mode;
    const auto decision = gaft::decide_gate(mb, p.gate);
    const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, decision, p);
    lr.loss.backward();
    const auto ours = grads(m);
    zero(m);
    const at::Tensor hand = hand_loss(m, mb, g, lambda, kept_coefs(g, mode), mb.rollout_scores);
    hand.backward();
    EXPECT_NEAR(lr.loss.item<double>(), hand.item<double>(), 1e-5);
    EXPECT_NEAR(lr.loss_sft + lr.loss_pg, hand.item<double>(), 1e-5);
    expect_close(ours, grads(m), 1e-4);
    EXPECT_EQ(lr.sequences, 8);  // 2 references + 6 rollouts (no advantage is 0)
  }
}

// The same on Gemma 2 (soft-capped logits, through the fused op's cap), Granite (logits_scaling, through
// head_input) and Phi-3 (gradients through the fused qkv / gate_up projections and longrope): the fused loss
// equals the hand-written loss over logits().
TEST(Objective, GradientEqualsHandWrittenLossForGemmaGraniteAndPhi3) {
  for (const std::string family : {"gemma2", "granite", "phi3"}) {
    SCOPED_TRACE(family);
    gaft::Llama m = gaft::load_llama(gaft_test::kModelData + "/" + family);
    const gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
    const double g = 0.3, lambda = 0.7;
    const auto p = params(g, lambda, 0.0);
    const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
    lr.loss.backward();
    const auto ours = grads(m);
    zero(m);
    const at::Tensor hand = hand_loss(m, mb, g, lambda, kept_coefs(g), mb.rollout_scores);
    hand.backward();
    EXPECT_NEAR(lr.loss.item<double>(), hand.item<double>(), 1e-5 * std::max(1.0, std::abs(hand.item<double>())));
    expect_close(ours, grads(m), 1e-4);
  }
}

// The case the reference-aware coefficient exists for: an aligned reference whose rollouts all fail. With
// g = 1 the complement switches imitation off (and every advantage is 0: nothing trains); the default
// imitates the reference in full.
TEST(Objective, AlignedReferenceIsImitatedWhenEveryRolloutFails) {
  gaft::Llama m = tiny_model(13);
  const gaft::MicroBatch mb = batch({0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}, {1.0f, 1.0f});
  auto p = params(1.0, 1.0, 0.5);
  const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
  lr.loss.backward();
  const auto ours = grads(m);
  zero(m);
  hand_loss(m, mb, 1.0, 1.0, {1.0, 1.0}, mb.rollout_scores).backward();
  expect_close(ours, grads(m), 1e-4);
  EXPECT_EQ(lr.sequences, 2);
  zero(m);
  p.gate.sft_coef = gaft::ops::SftCoefficient::kComplement;
  const gaft::LossResult off = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
  EXPECT_EQ(off.sequences, 0);
  EXPECT_EQ(off.loss.item<float>(), 0.0f);
}

TEST(Objective, AbstainAndDropSetTheSftCoefficient) {
  gaft::Llama m = tiny_model(2);
  // Example 0: s and every rollout below delta -> abstain (c = 1); example 1: s < delta <= p -> drop (c = 0).
  const gaft::MicroBatch mb = batch({0.1f, 0.2f, 0.05f, 0.9f, 0.7f, 0.8f}, {0.2f, 0.3f});
  const double g = 0.4, lambda = 1.0;
  const auto p = params(g, lambda, 0.5);
  const auto decision = gaft::decide_gate(mb, p.gate);
  EXPECT_EQ(decision.flags[0].item<int>() & gaft::ops::kFlagAbstain, gaft::ops::kFlagAbstain);
  EXPECT_EQ(decision.flags[1].item<int>() & gaft::ops::kFlagDropSft, gaft::ops::kFlagDropSft);
  const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, decision, p);
  lr.loss.backward();
  const auto ours = grads(m);
  zero(m);
  hand_loss(m, mb, g, lambda, {1.0, 0.0}, mb.rollout_scores).backward();
  expect_close(ours, grads(m), 1e-4);
  EXPECT_EQ(lr.sequences, 7);  // the dropped reference is not forwarded
}

TEST(Objective, SftEqualsGaftWithZeroGateExactly) {
  gaft::Llama a = tiny_model(3), b = tiny_model(3);
  gaft::MicroBatch with = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
  gaft::MicroBatch sft = with;
  sft.K = 0;
  sft.rollouts.clear();
  sft.rollout_scores = at::zeros({2, 0});
  const auto pg = params(0.0, 1.0, 0.5);
  auto ps = params(0.0, 1.0, 0.0);
  ps.gate.mode = gaft::ops::GateMode::kUncertainty;  // irrelevant without rollouts: g = 0
  const gaft::LossResult la = gaft::compute_loss(a, nullptr, with, gaft::decide_gate(with, pg.gate), pg);
  const gaft::LossResult lb = gaft::compute_loss(b, nullptr, sft, gaft::decide_gate(sft, ps.gate), ps);
  la.loss.backward();
  lb.loss.backward();
  EXPECT_EQ(la.loss.item<float>(), lb.loss.item<float>());
  const auto ga = grads(a), gb = grads(b);
  for (size_t i = 0; i < ga.size(); ++i) EXPECT_TRUE(at::equal(ga[i], gb[i])) << "parameter " << i;
}

TEST(Objective, KlAsLossMatchesK3ByHand) {
  gaft::Llama m = tiny_model(4), ref = tiny_model(5);
  const gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
  const double g = 0.3, lambda = 0.7, beta = 0.2;
  auto p = params(g, lambda, 0.0);
  p.kl = gaft::KlMode::kLoss;
  p.kl_beta = beta;
  const auto [lr, ours] = loss_against(m, ref, mb, p);
  at::Tensor hand = hand_loss(m, mb, g, lambda, kept_coefs(g), mb.rollout_scores);
  double kl_k1 = 0;
  for (int64_t i = 0; i < mb.B; ++i)
    for (int64_t k = 0; k < mb.K; ++k) {
      const auto& s = mb.rollouts[i * mb.K + k];
      const at::Tensor lp = seq_logp(m, s);
      const at::Tensor lr_ref = [&] {
        torch::NoGradGuard ng;
        return seq_logp(ref, s);
      }();
      const at::Tensor d = lr_ref - lp;
      hand = hand + beta * (d.exp() - d - 1).mean() / static_cast<double>(mb.K * mb.B);
      kl_k1 += (lp - lr_ref).sum().item<double>();
    }
  hand.backward();
  expect_close(ours, grads(m), 1e-4);
  EXPECT_NEAR(lr.kl, kl_k1 / 6.0, 1e-4);
}

TEST(Objective, KlAsRewardShapesTheAdvantages) {
  gaft::Llama m = tiny_model(6), ref = tiny_model(7);
  const gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
  const double g = 0.5, lambda = 1.0, beta = 0.05;
  auto p = params(g, lambda, 0.0);
  p.kl = gaft::KlMode::kReward;
  p.kl_beta = beta;
  const auto [lr, ours] = loss_against(m, ref, mb, p);
  at::Tensor shaped = mb.rollout_scores.clone();
  {
    torch::NoGradGuard ng;
    for (int64_t i = 0; i < mb.B; ++i)
      for (int64_t k = 0; k < mb.K; ++k) {
        const auto& s = mb.rollouts[i * mb.K + k];
        shaped[i][k] -= beta * (seq_logp(m, s) - seq_logp(ref, s)).sum();
      }
  }
  hand_loss(m, mb, g, lambda, kept_coefs(g), shaped).backward();
  expect_close(ours, grads(m), 1e-4);
}

TEST(Objective, NothingToTrainGivesZeroGradients) {
  gaft::Llama m = tiny_model(8);
  // Every reference dropped, g = 0: no sequence carries a weight.
  const gaft::MicroBatch mb = batch({0.9f, 0.8f, 0.7f, 0.9f, 0.8f, 0.7f}, {0.1f, 0.1f});
  const auto p = params(0.0, 1.0, 0.5);
  const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
  lr.loss.backward();
  EXPECT_EQ(lr.sequences, 0);
  for (const auto& gr : grads(m)) EXPECT_EQ(gr.abs().max().item<double>(), 0.0);
}

TEST(Objective, ClassifierLossIsCrossEntropyOfTheLastToken) {
  gaft::ModelConfig c = tiny_config();
  c.head = gaft::ModelHead::kSequenceClassification;
  c.architecture = "LlamaForSequenceClassification";
  c.num_labels = 3;
  torch::manual_seed(9);
  gaft::Llama m(c);
  const std::vector<std::vector<int64_t>> seqs = {{1, 4, 5, 6}, {1, 7}};
  const gaft::ClassifierLoss cl = gaft::classifier_loss(m, seqs, {2, 0}, 0);
  at::Tensor expected = at::zeros({});
  int64_t correct = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const at::Tensor ids = at::tensor(seqs[i], at::kLong).view({1, -1});
    const at::Tensor logits = m->classify(m->forward(ids)).squeeze(0);  // [3]
    const int64_t y = i == 0 ? 2 : 0;
    expected = expected - logits.log_softmax(-1)[y] / 2.0;
    correct += logits.argmax().item<int64_t>() == y;
  }
  EXPECT_NEAR(cl.loss.item<double>(), expected.item<double>(), 1e-5);
  EXPECT_EQ(cl.correct, correct);
  EXPECT_EQ(cl.count, 2);
}

TEST(LearnedGate, LearnsToPredictTheTeacherGate) {
  gaft::LearnedGate gate;
  EXPECT_DOUBLE_EQ(gate.predict({1, 0.5, 1, 1}), 0.5);
  // Teacher: high gate for low reference scores, low gate for high ones.
  for (int it = 0; it < 3000; ++it) {
    const double s = (it % 10) / 9.0;
    gate.update({1.0, s, 1.0, 0.5}, s < 0.5 ? 0.9 : 0.05, 0.5);
  }
  EXPECT_GT(gate.predict({1.0, 0.0, 1.0, 0.5}), 0.8);
  EXPECT_LT(gate.predict({1.0, 1.0, 1.0, 0.5}), 0.1);
}

TEST(Optim, ScheduleWarmupThenDecay) {
  gaft::ScheduleSection s;
  s.kind = gaft::Schedule::kCosine;
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(gaft::lr_at(0, 110, 1.0, s), 0.1);
  EXPECT_DOUBLE_EQ(gaft::lr_at(9, 110, 1.0, s), 1.0);
  EXPECT_DOUBLE_EQ(gaft::lr_at(10, 110, 1.0, s), 1.0);
  EXPECT_NEAR(gaft::lr_at(60, 110, 1.0, s), 0.55, 1e-12);
  EXPECT_NEAR(gaft::lr_at(110, 110, 1.0, s), 0.1, 1e-12);
  s.kind = gaft::Schedule::kLinear;
  EXPECT_NEAR(gaft::lr_at(60, 110, 1.0, s), 0.55, 1e-12);
  s.kind = gaft::Schedule::kConstant;
  EXPECT_DOUBLE_EQ(gaft::lr_at(100, 110, 1.0, s), 1.0);
}

TEST(Optim, NoWeightDecayOnNormsAndBiases) {
  gaft::ModelConfig c = tiny_config();
  c.attention_bias = true;
  c.o_proj_bias = true;
  gaft::Llama m(c);
  gaft::OptimizerSection o;
  o.weight_decay = 0.1;
  auto opt = gaft::make_adamw(m->named_parameters(true).pairs(), o);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  for (const auto& p : opt->param_groups()[0].params()) EXPECT_EQ(p.dim(), 2);
  for (const auto& p : opt->param_groups()[1].params()) EXPECT_EQ(p.dim(), 1);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[0].options()).weight_decay(), 0.1);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[1].options()).weight_decay(), 0.0);
  EXPECT_EQ(opt->param_groups()[0].params().size() + opt->param_groups()[1].params().size(), m->parameters().size());
}

// The fused step equals LibTorch's AdamW (the reference) over several steps with weight decay, a changing lr and
// parameters without a gradient in a step; the state it leaves is AdamW's (step count and moments).
TEST(Optim, FusedStepEqualsLibTorchAdamW) {
  gaft::ModelConfig c = tiny_config();
  c.attention_bias = true;
  gaft::Llama a(c), b(c);
  {
    torch::NoGradGuard g;
    for (auto& p : a->parameters()) p.normal_(0.0, 0.3);
    auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  }
  gaft::OptimizerSection o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  auto fused = gaft::make_adamw(a->named_parameters(true).pairs(), o);
  // The reference: the same two groups over b's parameters.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& [name, p] : b->named_parameters(true).pairs()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(0.1)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(0.0)));
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(o.lr));
  torch::manual_seed(3);
  for (int step = 0; step < 5; ++step) {
    const double lr = 1e-2 * (1.0 - 0.15 * step);
    gaft::set_lr(*fused, lr);
    gaft::set_lr(reference, lr);
    fused->zero_grad();
    reference.zero_grad();
    auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      if (step == 2 && i % 3 == 0) continue;  // no gradient this step: neither optimizer moves it
      const at::Tensor g = at::randn_like(pa[i]);
      pa[i].mutable_grad() = g.clone();
      pb[i].mutable_grad() = g.clone();
    }
    fused->step();
    reference.step();
    for (size_t i = 0; i < pa.size(); ++i)
      ASSERT_TRUE(at::allclose(pa[i], pb[i], 1e-5, 1e-6)) << "step " << step << " parameter " << i << ": "
                                                           << (pa[i] - pb[i]).abs().max().item<double>();
  }
  auto pa = a->parameters();
  const auto& st = static_cast<const torch::optim::AdamWParamState&>(*fused->state().at(pa[1].unsafeGetTensorImpl()));
  const auto& ref = static_cast<const torch::optim::AdamWParamState&>(*reference.state().at(b->parameters()[1].unsafeGetTensorImpl()));
  EXPECT_EQ(st.step(), ref.step());
  EXPECT_TRUE(at::allclose(st.exp_avg(), ref.exp_avg(), 1e-5, 1e-7));
  EXPECT_TRUE(at::allclose(st.exp_avg_sq(), ref.exp_avg_sq(), 1e-5, 1e-9));
}

TEST(Objective, MicroBatchesWithGlobalCountsSumToTheBatch) {
  for (auto norm : {gaft::ops::SftNorm::kSequence, gaft::ops::SftNorm::kToken}) {
    gaft::Llama m = tiny_model(12);
    const gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
    auto p = params(0.3, 0.7, 0.0);
    p.gate.sft_norm = norm;
    gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p).loss.backward();
    const auto whole = grads(m);
    zero(m);
    // The same two examples as two micro-batches of one, with the step's counts: B = 2, T = 3 + 5 tokens.
    p.gate.norm_examples = 2;
    p.gate.norm_tokens = 8;
    for (int64_t i = 0; i < 2; ++i) {
      gaft::MicroBatch half;
      half.B = 1;
      half.K = 3;
      half.references = {mb.references[i]};
      half.rollouts.assign(mb.rollouts.begin() + i * 3, mb.rollouts.begin() + i * 3 + 3);
      half.rollout_scores = mb.rollout_scores.narrow(0, i, 1).contiguous();
      half.reference_scores = mb.reference_scores.narrow(0, i, 1).contiguous();
      gaft::compute_loss(m, nullptr, half, gaft::decide_gate(half, p.gate), p).loss.backward();
    }
    expect_close(grads(m), whole, 1e-5);
  }
}

// Gemma's soft-capped logits: the KL of the capped distributions and its gradient through the cap.
TEST(VocabKl, SoftCappedLogits) {
  torch::manual_seed(12);
  const int64_t N = 6, H = 4, V = 11;
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor h0 = 3 * at::randn({N, H}, opt), W0 = at::randn({V, H}, opt);
  const at::Tensor r = 3 * at::randn({N, H}, opt), R = at::randn({V, H}, opt), a = at::rand({N}, opt);
  const double cap = 2.0;
  const auto capped = [&](const at::Tensor& x, const at::Tensor& w) { return at::tanh(at::matmul(x, w.t()) / cap) * cap; };
  at::Tensor h = h0.clone().requires_grad_(true), W = W0.clone().requires_grad_(true);
  const at::Tensor ours = gaft::vocab_kl(h, W, r, R, a, 4, cap);
  ours.backward();
  at::Tensor h2 = h0.clone().requires_grad_(true), W2 = W0.clone().requires_grad_(true);
  const at::Tensor lp = at::log_softmax(capped(h2, W2), -1), lq = at::log_softmax(capped(r, R), -1);
  const at::Tensor ref = (a * (lp.exp() * (lp - lq)).sum(-1)).sum();
  ref.backward();
  EXPECT_NEAR(ours.item<double>(), ref.item<double>(), 1e-5 * std::abs(ref.item<double>()));
  EXPECT_LE((h.grad() - h2.grad()).abs().max().item<double>(), 1e-5);
  EXPECT_LE((W.grad() - W2.grad()).abs().max().item<double>(), 1e-5);
  // Not the uncapped KL.
  EXPECT_GT(std::abs(gaft::vocab_kl(h0, W0, r, R, a, 4).item<double>() - ref.item<double>()), 1e-3);
}

TEST(VocabKl, EqualsTheFullSoftmaxKlAndItsGradient) {
  // Against the same KL written with full [N, V] logits through autograd, in double, on odd shapes, with
  // chunks that do not divide N; and the gradient against finite differences.
  torch::manual_seed(11);
  const int64_t N = 7, H = 5, V = 13;
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor h0 = at::randn({N, H}, opt), W0 = at::randn({V, H}, opt);
  const at::Tensor r = at::randn({N, H}, opt), R = at::randn({V, H}, opt), a = at::rand({N}, opt);
  for (const int64_t chunk : {1, 3, 7, 100}) {
    SCOPED_TRACE(chunk);
    at::Tensor h = h0.clone().requires_grad_(true), W = W0.clone().requires_grad_(true);
    const at::Tensor ours = gaft::vocab_kl(h, W, r, R, a, chunk);
    ours.backward();
    at::Tensor h2 = h0.clone().requires_grad_(true), W2 = W0.clone().requires_grad_(true);
    const at::Tensor lp = at::log_softmax(at::matmul(h2, W2.t()), -1), lq = at::log_softmax(at::matmul(r, R.t()), -1);
    const at::Tensor ref = (a * (lp.exp() * (lp - lq)).sum(-1)).sum();
    ref.backward();
    EXPECT_NEAR(ours.item<double>(), ref.item<double>(), 1e-5 * std::abs(ref.item<double>()));  // float32 inside
    EXPECT_LE((h.grad() - h2.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LE((W.grad() - W2.grad()).abs().max().item<double>(), 1e-5);
  }
  // Finite differences of the reference in double, at a few coordinates of h and W.
  at::Tensor h = h0.clone().requires_grad_(true), W = W0.clone().requires_grad_(true);
  gaft::vocab_kl(h, W, r, R, a, 2).backward();
  const auto kl_at = [&](const at::Tensor& hh, const at::Tensor& WW) {
    const at::Tensor lp = at::log_softmax(at::matmul(hh, WW.t()), -1), lq = at::log_softmax(at::matmul(r, R.t()), -1);
    return (a * (lp.exp() * (lp - lq)).sum(-1)).sum().item<double>();
  };
  const double eps = 1e-6;
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {3, 2}, {6, 4}}) {
    at::Tensor hp = h0.clone(), hm = h0.clone();
    hp[n][k] += eps;
    hm[n][k] -= eps;
    EXPECT_NEAR(h.grad()[n][k].item<double>(), (kl_at(hp, W0) - kl_at(hm, W0)) / (2 * eps), 1e-4);
    at::Tensor Wp = W0.clone(), Wm = W0.clone();
    Wp[n + 5][k] += eps;
    Wm[n + 5][k] -= eps;
    EXPECT_NEAR(W.grad()[n + 5][k].item<double>(), (kl_at(h0, Wp) - kl_at(h0, Wm)) / (2 * eps), 1e-4);
  }
  // KL of a distribution with itself is 0, with zero gradient.
  at::Tensor hs = r.clone().requires_grad_(true);
  const at::Tensor same = gaft::vocab_kl(hs, R, r, R, a);
  same.backward();
  EXPECT_NEAR(same.item<double>(), 0.0, 1e-6);
  EXPECT_LE(hs.grad().abs().max().item<double>(), 1e-6);
}

TEST(Objective, SftWithKlAddsTheFullVocabularyKlAtReferenceTokens) {
  // sft (K = 0) with kl: loss adds beta * sum_n a_n KL(pi || pi_ref) at the trained reference tokens, each
  // token weighted as the SFT term normalises it (1 / (B |y_i|)); checked by hand with full softmaxes.
  gaft::Llama m = tiny_model(21), ref = tiny_model(22);
  gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {1.0f, 1.0f});
  mb.K = 0;
  mb.rollouts.clear();
  mb.rollout_scores = at::zeros({2, 0});
  const double beta = 0.3;
  auto p = params(0.0, 1.0, 0.0);
  p.gate.mode = gaft::ops::GateMode::kUncertainty;
  p.kl = gaft::KlMode::kLoss;
  p.kl_beta = beta;
  const auto [lr, ours] = loss_against(m, ref, mb, p);
  at::Tensor hand = at::zeros({});
  double kl_weighted = 0, weight = 0;
  for (int64_t i = 0; i < mb.B; ++i) {
    const gaft::TrainSequence& s = mb.references[i];
    const at::Tensor ids = at::tensor(s.ids, at::kLong).view({1, -1});
    const at::Tensor lp = m->logits(m->forward(ids)).squeeze(0).log_softmax(-1);  // [T, V]
    const at::Tensor lq = [&] {
      torch::NoGradGuard ng;
      return ref->logits(ref->forward(ids)).squeeze(0).log_softmax(-1);
    }();
    const at::Tensor sft = -seq_logp(m, s).mean();
    int64_t n = 0;
    at::Tensor kl = at::zeros({});
    for (size_t t = 1; t < s.ids.size(); ++t)
      if (s.trained[t]) {
        const at::Tensor row = lp[static_cast<int64_t>(t) - 1], q = lq[static_cast<int64_t>(t) - 1];
        kl = kl + (row.exp() * (row - q)).sum();
        ++n;
      }
    hand = hand + (sft + beta * kl / static_cast<double>(n)) / static_cast<double>(mb.B);
    kl_weighted += kl.item<double>() / static_cast<double>(n * mb.B);
    weight += 1.0 / static_cast<double>(mb.B);
  }
  EXPECT_NEAR(lr.loss.item<double>(), hand.item<double>(), 1e-4);
  hand.backward();
  expect_close(ours, grads(m), 1e-4);
  EXPECT_GT(lr.kl, 0.01);
  EXPECT_NEAR(lr.kl, kl_weighted / weight, 1e-4);  // the logged KL: the weighted mean per token
}

TEST(Objective, AbstentionCategoryPriority) {
  // A harmful reference that both heads rate below delta: safety first, whatever the factuality head says.
  const std::vector<std::string> cats = {"factuality", "safety"};
  const std::vector<std::string> prio = {"safety", "factuality"};
  EXPECT_EQ(gaft::abstention_head({0.0001, 0.02}, cats, prio, 0.5), 1);
  // Only the factuality head below delta: factuality.
  EXPECT_EQ(gaft::abstention_head({0.1, 0.9}, cats, prio, 0.5), 0);
  // Priority reversed: factuality first.
  EXPECT_EQ(gaft::abstention_head({0.3, 0.02}, cats, {"factuality", "safety"}, 0.5), 0);
  // Unlisted categories come after listed ones, then the lowest score.
  EXPECT_EQ(gaft::abstention_head({0.1, 0.2, 0.05}, {"toxicity", "safety", "other"}, prio, 0.5), 1);
  EXPECT_EQ(gaft::abstention_head({0.1, 0.05}, {"toxicity", "other"}, prio, 0.5), 1);
  // No head below delta (a product of two 0.6 scores is 0.36 < 0.5): the lowest-scoring head.
  EXPECT_EQ(gaft::abstention_head({0.6, 0.55}, cats, prio, 0.5), 1);
  // Two heads of the same category: the lower score.
  EXPECT_EQ(gaft::abstention_head({0.3, 0.1}, {"safety", "safety"}, prio, 0.5), 1);
}

// Rollouts (gaft/rollout.h): the K samples of a prompt are the same whatever else is generated beside them
// (rollout.batch_size, skipped prompts), and differ between seeds.
TEST(Rollouts, SamplesDoNotDependOnBatchSizeOrSkips) {
  const std::string dir = gaft_test::kStories + "/hf";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared folder";
  gaft::Llama model = gaft::load_llama(dir);
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir);
  const std::vector<std::vector<int64_t>> prompts = {tok.encode("Once upon a time"), tok.encode("The dog"),
                                                     tok.encode("Lily went to the big")};
  gaft::RolloutOptions o;
  o.num_samples = 3;
  o.max_new_tokens = 8;
  o.stop_tokens = {tok.eos_id()};
  const gaft::Rollouts all = gaft::sample_rollouts(model, tok, prompts, {false, false, false}, o, 17);
  o.batch_size = 1;
  const gaft::Rollouts one_by_one = gaft::sample_rollouts(model, tok, prompts, {false, false, false}, o, 17);
  EXPECT_EQ(one_by_one.ids, all.ids);
  EXPECT_EQ(one_by_one.texts, all.texts);
  o.batch_size = 0;
  const gaft::Rollouts skipped = gaft::sample_rollouts(model, tok, prompts, {true, false, false}, o, 17);
  for (int64_t row = 0; row < 9; ++row) {
    EXPECT_EQ(skipped.present[row], row >= 3);
    if (row >= 3) EXPECT_EQ(skipped.ids[row], all.ids[row]) << row;
  }
  EXPECT_GT(all.decode_steps, 0);
  EXPECT_NE(gaft::sample_rollouts(model, tok, prompts, {false, false, false}, o, 18).ids, all.ids);
}

// Recovery rollouts (gaft/recovery.h, docs/method.md): R = 2 recovery rollouts of example 0 continue a forced
// prefix {25, 26, 27}; example 1 has none (NaN). By hand: the forced tokens carry no weight, the
// continuation of recovery rollout r carries -lambda_rec A_r / (B R |continuation|) with the leave-one-out
// advantage within the R (A = 0.2 - 0.9 = -0.7 and +0.7), beside the plain objective; with recovery.target
// abstention, prompt + prefix -> template adds -w / (B |template|) on the template's tokens only.
TEST(Objective, RecoveryRolloutsTrainTheContinuationWithItsOwnAdvantage) {
  gaft::Llama m = tiny_model(21);
  gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
  const auto forced = [](const std::vector<int64_t>& prompt, const std::vector<int64_t>& prefix,
                         const std::vector<int64_t>& continuation) {
    gaft::TrainSequence s = seq(prompt, prefix);
    std::fill(s.trained.begin(), s.trained.end(), 0);  // prompt and forced prefix: not trained
    s.ids.insert(s.ids.end(), continuation.begin(), continuation.end());
    s.trained.insert(s.trained.end(), continuation.size(), 1);
    return s;
  };
  mb.R = 2;
  mb.recovery = {forced({1, 5, 6, 7}, {25, 26, 27}, {36, 37, 2}), forced({1, 5, 6, 7}, {25, 26, 27}, {38, 2}), {}, {}};
  mb.recovery_scores = at::tensor({0.2f, 0.9f, NAN, NAN}).view({2, 2});
  const double g = 0.3, lambda = 0.7, lambda_rec = 1.5;
  auto p = params(g, lambda, 0.0);
  p.recovery_lambda = lambda_rec;
  // The continuation only: log p of the forced tokens must not enter.
  const auto hand_recovery = [&](gaft::Llama& model) {
    const std::vector<double> adv = {0.2 - 0.9, 0.9 - 0.2};
    at::Tensor pg = at::zeros({});
    for (int r = 0; r < 2; ++r) pg = pg - adv[r] * seq_logp(model, mb.recovery[r]).mean() / 2.0;
    return lambda_rec * pg / 2.0;  // / B
  };
  {
    const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
    lr.loss.backward();
    const auto ours = grads(m);
    zero(m);
    const at::Tensor rec = hand_recovery(m);
    const at::Tensor hand = hand_loss(m, mb, g, lambda, kept_coefs(g), mb.rollout_scores) + rec;
    hand.backward();
    EXPECT_NEAR(lr.loss.item<double>(), hand.item<double>(), 1e-5);
    EXPECT_NEAR(lr.loss_recovery, rec.item<double>(), 1e-5);
    EXPECT_NEAR(lr.loss_sft + lr.loss_pg + lr.loss_recovery, hand.item<double>(), 1e-5);
    expect_close(ours, grads(m), 1e-4);
    EXPECT_EQ(lr.sequences, 10);  // 2 references + 6 rollouts + 2 recovery rollouts
    EXPECT_EQ(lr.tokens, 8 + 17 + 3 + 2);  // references, rollouts, the recovery continuations (not the prefixes)
    EXPECT_NEAR(lr.recovery_advantages[0][0].item<float>(), -0.7f, 1e-6);
    EXPECT_NEAR(lr.recovery_advantages[0][1].item<float>(), 0.7f, 1e-6);
    EXPECT_EQ(lr.recovery_advantages[1][0].item<float>(), 0.0f);
    zero(m);
  }
  // recovery.target abstention: prompt + prefix -> template {17, 18, 2}, weight 0.5.
  mb.recovery_targets = {forced({1, 5, 6, 7}, {25, 26, 27}, {17, 18, 2}), {}};
  p.recovery_target_weight = 0.5;
  const gaft::LossResult lr = gaft::compute_loss(m, nullptr, mb, gaft::decide_gate(mb, p.gate), p);
  lr.loss.backward();
  const auto ours = grads(m);
  zero(m);
  const at::Tensor target = -0.5 * seq_logp(m, mb.recovery_targets[0]).mean() / 2.0;
  const at::Tensor rec = hand_recovery(m) + target;
  const at::Tensor hand = hand_loss(m, mb, g, lambda, kept_coefs(g), mb.rollout_scores) + rec;
  hand.backward();
  EXPECT_NEAR(lr.loss.item<double>(), hand.item<double>(), 1e-5);
  EXPECT_NEAR(lr.loss_recovery, rec.item<double>(), 1e-5);
  expect_close(ours, grads(m), 1e-4);
  EXPECT_EQ(lr.sequences, 11);
}

// The shared-prefix layout (ObjectiveParams::share_prefixes: each example's prompt once in the forward) against
// every sequence whole: the same loss and gradients, with fewer tokens forwarded; with a reference policy (KL as a
// loss), recovery rollouts and a recovery target, on a tiny Llama and on Gemma 2 (sliding window 4, shorter than
// the rows; soft-capped attention and logits).
TEST(Objective, SharedPrefixesGiveTheSameLossAndGradients) {
  for (const std::string family : {"tiny", "gemma2"}) {
    SCOPED_TRACE(family);
    const auto load = [&](uint64_t seed) {
      return family == "tiny" ? tiny_model(seed) : gaft::load_llama(gaft_test::kModelData + "/" + family);
    };
    gaft::Llama m = load(31), ref = load(32);
    if (family != "tiny") {
      torch::NoGradGuard no_grad;  // a reference that differs from the policy, so that the KL term is not 0
      for (auto& q : ref->parameters()) q.add_(at::randn_like(q) * 0.05);
    }
    gaft::MicroBatch mb = batch({0.9f, 0.2f, 0.6f, 0.1f, 0.7f, 0.4f}, {0.8f, 0.9f});
    const auto forced = [](const std::vector<int64_t>& continuation) {  // prompt and forced prefix: not trained
      gaft::TrainSequence r = seq({1, 5, 6, 7, 25, 26, 27}, continuation);
      std::fill(r.trained.begin(), r.trained.begin() + 7, 0);
      return r;
    };
    mb.R = 2;
    mb.recovery = {forced({36, 37, 2}), forced({38, 2}), {}, {}};
    mb.recovery_scores = at::tensor({0.2f, 0.9f, NAN, NAN}).view({2, 2});
    mb.recovery_targets = {{}, seq({1, 11, 12, 13}, {17, 18, 2})};
    auto p = params(0.4, 0.7, 0.0);
    p.kl = gaft::KlMode::kLoss;
    p.kl_beta = 0.1;
    p.share_prefixes = false;
    const auto [whole, g_whole] = loss_against(m, ref, mb, p);
    p.share_prefixes = true;
    const auto [shared, g_shared] = loss_against(m, ref, mb, p);
    EXPECT_NEAR(shared.loss.item<double>(), whole.loss.item<double>(), 1e-6 * std::max(1.0, std::abs(whole.loss_value)));
    EXPECT_NEAR(shared.kl, whole.kl, 1e-5 * std::max(1.0, std::abs(whole.kl)));
    EXPECT_GT(std::abs(whole.kl), 1e-4);
    EXPECT_EQ(shared.tokens, whole.tokens);
    EXPECT_EQ(whole.sequences, 11);
    EXPECT_EQ(whole.padded_tokens, 11 * 10);  // 11 rows of at most 10 tokens
    // 2 rows, the longest: example 0's prompt (4 tokens) once, then its reference, rollouts and recovery rollouts
    EXPECT_EQ(shared.padded_tokens, 2 * (4 + 3 + 2 + 4 + 2 + 6 + 5));
    expect_close(g_shared, g_whole, 1e-5);
    // Switched off, or for a model that cannot run packed rows, the plain layout.
    p.share_prefixes = false;
    const auto [again, g_again] = loss_against(m, ref, mb, p);
    EXPECT_EQ(again.loss.item<double>(), whole.loss.item<double>());
  }
}

// Which examples get a recovery start, and which tokens are forced (gaft/recovery.h).
TEST(Recovery, PrefixLengthIsDrawnInRangeAndLeavesContentToContinue) {
  const std::vector<int64_t> stops = {2};
  const std::vector<int64_t> response = {10, 11, 12, 13, 14, 15, 2};  // 6 content tokens, then the stop
  for (uint64_t draw = 0; draw < 50; ++draw) {
    const auto p = gaft::misaligned_prefix(response, stops, 2, 4, draw);
    ASSERT_GE(p.size(), 2u);
    ASSERT_LE(p.size(), 4u);
    EXPECT_EQ(p, std::vector<int64_t>(response.begin(), response.begin() + static_cast<int64_t>(p.size())));
  }
  EXPECT_EQ(gaft::misaligned_prefix(response, stops, 2, 4, 0).size(), 2u);
  EXPECT_EQ(gaft::misaligned_prefix(response, stops, 2, 4, 2).size(), 4u);
  // Capped at len - 1 = 5: one content token is always left.
  EXPECT_EQ(gaft::misaligned_prefix(response, stops, 16, 16, 7).size(), 5u);
  EXPECT_TRUE(gaft::misaligned_prefix({10, 2}, stops, 1, 4, 0).empty());  // one content token: no prefix
  EXPECT_TRUE(gaft::misaligned_prefix({2, 10, 11}, stops, 1, 4, 0).empty());
}

TEST(Recovery, SourceIsTheMisalignedReferenceElseTheWorstRollout) {
  gaft::RecoveryOptions o;
  o.min_prefix = 2;
  o.max_prefix = 2;
  o.threshold = 0.5;
  const std::vector<std::vector<int64_t>> refs = {{10, 11, 12, 2}, {20, 21, 22, 2}, {30, 31, 32, 2}, {40, 41, 2}};
  const std::vector<std::vector<int64_t>> rollouts = {{50, 51, 52, 2}, {53, 54, 55},  // example 0
                                                      {60, 61, 62, 2}, {63, 64, 65},  // example 1
                                                      {70, 71, 72, 2}, {73, 74, 75},  // example 2
                                                      {80, 81, 82, 2}, {83, 84, 85}};
  const at::Tensor ref_scores = at::tensor({0.1f, 0.9f, 0.9f, NAN});
  const at::Tensor roll_scores = at::tensor({0.0f, 0.9f, 0.4f, 0.3f, 0.8f, NAN, 0.2f, 0.9f}).view({4, 2});
  const auto starts = gaft::plan_recovery(o, ref_scores, refs, roll_scores, rollouts, {2}, 5);
  ASSERT_EQ(starts.size(), 4u);
  EXPECT_EQ(starts[0].from, gaft::RecoveryFrom::kReference);  // the reference first, even with a worse rollout
  EXPECT_EQ(starts[0].prefix, (std::vector<int64_t>{10, 11}));
  EXPECT_EQ(starts[1].from, gaft::RecoveryFrom::kRollout);    // reference aligned: the lowest rollout (0.3)
  EXPECT_EQ(starts[1].rollout, 1);
  EXPECT_EQ(starts[1].prefix, (std::vector<int64_t>{63, 64}));
  EXPECT_EQ(starts[2].from, gaft::RecoveryFrom::kNone);       // 0.8 and NaN: nothing below the threshold
  EXPECT_TRUE(starts[2].prefix.empty());
  EXPECT_EQ(starts[3].from, gaft::RecoveryFrom::kRollout);    // a NaN reference is no evidence; rollout 0.2
  EXPECT_EQ(starts[3].prefix, (std::vector<int64_t>{80, 81}));
  o.from_rollout = false;
  const auto only_ref = gaft::plan_recovery(o, ref_scores, refs, roll_scores, rollouts, {2}, 5);
  EXPECT_EQ(only_ref[0].from, gaft::RecoveryFrom::kReference);
  EXPECT_EQ(only_ref[1].from, gaft::RecoveryFrom::kNone);
  o.from_rollout = true;
  o.from_reference = false;
  const auto only_roll = gaft::plan_recovery(o, ref_scores, refs, roll_scores, rollouts, {2}, 5);
  EXPECT_EQ(only_roll[0].from, gaft::RecoveryFrom::kRollout);
  EXPECT_EQ(only_roll[0].prefix, (std::vector<int64_t>{50, 51}));
}
