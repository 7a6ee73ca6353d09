// The training objective of one micro-batch (METHOD.md steps 3-8, docs/method.md): reference and rollout
// sequences in one right-padded batch, one forward, per-token weights from the gate op, and the loss
// sum_n w_n log p_n through the fused weighted_logprob op. The sft objective is the same code with no
// rollouts (every g = 0); the classifier objective trains a sequence-classification head.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <cstdint>
#include <vector>

#include "gaft/config.h"
#include "gaft/dataset.h"
#include "gaft/llama.h"
#include "gaft/ops.h"

namespace gaft {

// One sequence of the batch: ids [T] and which positions are trained targets (predicted from t - 1).
struct TrainSequence {
  std::vector<int64_t> ids;      // [T]
  std::vector<uint8_t> trained;  // [T]; trained[0] is ignored
};

struct MicroBatch {
  int64_t B = 0, K = 0;
  std::vector<TrainSequence> references;  // [B]; reference i (abstention target already substituted)
  std::vector<TrainSequence> rollouts;    // [B * K]; row i * K + k; empty ids = no such rollout
  at::Tensor rollout_scores;              // [B, K] f32 on CPU; NaN for missing rollouts
  at::Tensor reference_scores;            // [B] f32 on CPU
  at::Tensor scorer_uncertainty;          // [B] f32 (gate.uncertainty: scorer) or undefined
  // Recovery rollouts (gaft/recovery.h, docs/method.md): R per example, row i * R + r: prompt ++ forced prefix
  // (untrained: weight 0) ++ the sampled continuation (trained); empty ids = none. They take their own
  // advantages (rloo or grpo within the example's R), with gate 1 and weight params.recovery_lambda.
  int64_t R = 0;
  std::vector<TrainSequence> recovery;          // [B * R]
  at::Tensor recovery_scores;                   // [B, R] f32 on CPU, of prefix + continuation; NaN = none
  // recovery.target abstention: prompt ++ prefix (untrained) ++ the abstention template (trained); empty = none.
  std::vector<TrainSequence> recovery_targets;  // [B] or empty
};

struct ObjectiveParams {
  ops::GateParams gate;
  KlMode kl = KlMode::kNone;
  double kl_beta = 0.0;
  int64_t pad_id = 0;
  double recovery_lambda = 1.0;         // weight of the recovery rollouts' policy-gradient term
  double recovery_target_weight = 1.0;  // weight of a recovery target (per sequence, normalised like a reference)
  // The sequences of one example (reference, rollouts, recovery rollouts and target) run their common prefix, the
  // prompt, once in the forward (PackedLayout) when that costs less; false: every sequence whole.
  bool share_prefixes = true;
};

struct LossResult {
  at::Tensor loss;            // [] f32, differentiable: L of METHOD.md for this micro-batch
  double loss_value = 0.0;    // its value (read back with the parts below in one host copy)
  double loss_sft = 0.0;      // reference-token part of L
  double loss_pg = 0.0;       // plain-rollout-token part of L (KL loss term included)
  double loss_recovery = 0.0; // recovery-rollout and recovery-target part of L
  double kl = 0.0;            // mean over rollouts of sum_t (log pi - log pi_ref); 0 without KL
  int64_t sequences = 0;      // sequences in the forward (those with a non-zero weight)
  int64_t tokens = 0;         // trained tokens in the forward
  int64_t padded_tokens = 0;  // S * T of the forward
  ops::GateOutputs gate;      // g, advantages, p, u, flags, weights of this micro-batch
  at::Tensor recovery_advantages;  // [B, R] f32 (empty without recovery rollouts)
};

// The gate's decisions (g, p, u, flags, advantages) from the scores alone, before any sequence is built;
// the trainer uses the flags to substitute abstention targets.
ops::GateOutputs decide_gate(const MicroBatch& mb, const ops::GateParams& params);

// The loss of a micro-batch. `reference`: the frozen initial policy, needed when params.kl != kNone; under
// LoRA it is `policy` itself, whose base (adapters disabled) is the initial policy. Host reads (gaft/host_sync.h):
// one copy of the loss and its parts, plus the fused op's one (it sizes its work by the non-zero weights);
// the KL term adds one copy of the rollout log-probabilities (kl: reward or loss).
LossResult compute_loss(Llama& policy, Llama* reference, const MicroBatch& mb, const ops::GateOutputs& decision,
                        const ObjectiveParams& params);

// Classifier objective: mean cross-entropy of classify() on sequences [B] with labels [B].
struct ClassifierLoss {
  at::Tensor loss;   // [] differentiable
  int64_t correct = 0;
  int64_t count = 0;
};
ClassifierLoss classifier_loss(Llama& model, const std::vector<std::vector<int64_t>>& sequences,
                               const std::vector<int64_t>& labels, int64_t pad_id);

// The learned gate (gate.mode: learned): logistic regression over features known before rollouts,
// trained online to predict the uncertainty gate of the examples that were rolled out.
// Features: [1, s_i (reference score), reference NLL per token, policy entropy per reference token].
class LearnedGate {
 public:
  static constexpr int kFeatures = 4;
  using Features = std::array<double, kFeatures>;
  double predict(const Features& x) const;                       // sigmoid(w . x)
  void update(const Features& x, double target, double lr);      // one SGD step on the logistic loss
  std::array<double, kFeatures> w{{0.0, 0.0, 0.0, 0.0}};        // starts at g = 0.5: everything is rolled out
};

// The full-vocabulary KL term of sft/filter with objective.kl (the "SFT + KL" baseline):
//   sum_n a_n KL(p_n || q_n),  p_n = softmax(h_n W^T) (the policy), q_n = softmax(r_n R^T) (the reference),
// computed in chunks of tokens in float32, so that no [N, V] tensor lives beyond one chunk in forward or in
// backward (backward recomputes the chunk's logits). h [N, H] and W [V, H] get gradients
// (dKL_n/dlogit = p (log p - log q - KL_n)); r [N, H], R [V, H] and a [N] do not. `chunk`: tokens per chunk,
// 0 = as many as keep a chunk's logits near 2^22 values. softcap > 0: both models' logits are softcap *
// tanh(z / softcap) (Gemma), and the gradient goes through the cap.
at::Tensor vocab_kl(const at::Tensor& h, const at::Tensor& W, const at::Tensor& r, const at::Tensor& R,
                    const at::Tensor& a, int64_t chunk = 0, double softcap = 0);

// The scorer head whose category picks the abstention template of a fully misaligned example, from its
// per-head reference scores [H]: among the heads that score it below `delta`, the one whose category comes
// first in `priority`; unlisted categories after every listed one, ties by the lower score, then the lower
// index; with no head below delta (possible with mean or product combining), the lowest-scoring head.
// The run's priority puts safety first, so a harmful reference that a factuality head also rates low gets the
// refusal, not "I don't know." (docs/method.md).
int64_t abstention_head(const std::vector<double>& scores, const std::vector<std::string>& categories,
                        const std::vector<std::string>& priority, double delta);

// An example's reference as one trained sequence: prompt ++ response, trained on the response and on earlier
// assistant turns of the prompt (prompt_mask).
TrainSequence reference_sequence(const Example& ex);

// Per-reference mean NLL and entropy per token [B] of the policy (no grad), the learned gate's features.
std::pair<at::Tensor, at::Tensor> reference_nll_entropy(Llama& policy, const std::vector<TrainSequence>& refs,
                                                        int64_t pad_id);

}  // namespace gaft
