// The custom ops of gaft: the per-example gate (scores -> gate, advantages, per-token weights) and the
// fused, chunked weighted log-likelihood (hidden states + output projection -> sum_n w_n log p_n).
//
// Plain functions over tensors with typed arguments; no config types. The ops are registered with the
// dispatcher as gaft::gate_weights, gaft::weighted_logprob (autograd), gaft::weighted_logprob_fwd and
// gaft::fused_logsoftmax_rows (kernels/ops_registry.cpp), with CPU and (when built) CUDA kernels.
// The `reference` namespace holds plain ATen versions that materialise everything; tests and
// benchmarks only. Semantics of the gate: kernels/gate_math.h (top comment) and docs/method.md.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace gaft::ops {

// ---------------------------------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------------------------------
enum class GateMode : int64_t { kFixed = 0, kUncertainty = 1, kLearned = 2 };
enum class UncertaintyMode : int64_t { kEntropy = 0, kStd = 1, kScorer = 2 };
enum class AdvantageMode : int64_t { kRloo = 0, kGrpo = 1 };
enum class SftNorm : int64_t { kSequence = 0, kToken = 1 };
// SFT coefficient c_i of an example whose reference is kept: kReference = 1 - g_i (1 - s_i) (an aligned
// reference is always imitated; docs/method.md), kComplement = 1 - g_i (METHOD.md step 8 as written).
enum class SftCoefficient : int64_t { kReference = 0, kComplement = 1 };

// Bits of GateOutputs::flags.
constexpr int32_t kFlagAbstain = 1;           // p < delta and s < delta: SFT coefficient 1 (abstention target)
constexpr int32_t kFlagDropSft = 2;           // reference misaligned (or its score invalid): SFT coefficient 0
constexpr int32_t kFlagInvalidReference = 4;  // s_i is NaN or infinite
constexpr int32_t kFlagNoValidRollout = 8;    // no finite rollout score: g = 0, A = 0

struct GateParams {
  GateMode mode = GateMode::kUncertainty;
  UncertaintyMode uncertainty = UncertaintyMode::kEntropy;
  AdvantageMode advantage = AdvantageMode::kRloo;
  SftNorm sft_norm = SftNorm::kSequence;
  SftCoefficient sft_coef = SftCoefficient::kReference;
  double w_m = 1.0;          // weight of the misalignment m in the uncertainty gate, e.g. 1.0
  double w_u = 1.0;          // weight of the uncertainty u, e.g. 1.0
  double tau = 0.5;          // gate threshold, e.g. 0.5
  double temperature = 0.1;  // gate temperature t > 0, e.g. 0.1
  double g0 = 0.5;           // fixed-mode gate in [0, 1]
  double lambda = 1.0;       // weight of the policy-gradient term, e.g. 1.0
  double delta = 0.5;        // misalignment threshold; 0 disables abstention and dropping
  bool abstention = true;    // fully misaligned examples train on their (abstention) target with weight 1
  double std_floor = 1e-6;   // GRPO: advantages divide by max(std, std_floor)
  double norm_examples = 0;  // B_norm override (> 0), e.g. the global batch size; 0 = local B
  double norm_tokens = 0;    // T_norm override (> 0) for SftNorm::kToken; 0 = local reference tokens
};

struct GateInputs {
  at::Tensor rollout_scores;      // [B, K] float, r_i^k in [0, 1]; NaN/inf = invalid sample
  at::Tensor reference_scores;    // [B] float, s_i
  at::Tensor token_seq;           // [N] int64: -1 untrained, i < B reference of example i, B + i*K + k rollout
  at::Tensor scorer_uncertainty;  // [B] float, UncertaintyMode::kScorer only (else undefined)
  at::Tensor learned_gate;        // [B] float, GateMode::kLearned only (else undefined)
};

struct GateOutputs {
  at::Tensor g;            // [B] f32 gate
  at::Tensor advantages;   // [B, K] f32 (0 for invalid samples)
  at::Tensor p;            // [B] f32 mean valid rollout score (0 without valid rollouts)
  at::Tensor u;            // [B] f32 uncertainty used by the gate
  at::Tensor flags;        // [B] int32 bitmask of kFlag*
  at::Tensor num_invalid;  // [] int64 count of non-finite scores (rollouts and references)
  at::Tensor weights;      // [N] f32 per-token weights: loss = sum_n weights_n * log p_n
};

// On the device of the inputs (CPU, or CUDA in one kernel launch).
GateOutputs gate_weights(const GateInputs& inputs, const GateParams& params);

// ---------------------------------------------------------------------------------------------------
// Weighted log-likelihood
// ---------------------------------------------------------------------------------------------------
constexpr int64_t kIgnoreIndex = -100;

struct WeightedLogprobOptions {
  int64_t chunk_tokens = 0;  // tokens per chunk; 0 = default_chunk_tokens(V, device)
  bool want_logp = false;    // return per-token log p
  bool want_entropy = false; // return per-token entropy of the predicted distribution
  double softcap = 0;        // > 0: logits soft-capped as softcap * tanh(z / softcap) (Gemma 2); 0 = none
};

struct WeightedLogprob {
  at::Tensor loss;     // [] f32 (f64 for f64 inputs): sum_n w_n log p_n, differentiable w.r.t. h, W, w
  at::Tensor logp;     // [N] (if wanted) log p(y_n), 0 for skipped tokens (w = 0 or ignored); no grad
  at::Tensor entropy;  // [N] (if wanted) entropy, 0 for skipped tokens; no grad
};

// h [N, H], W [V, H] (same dtype: f32, bf16, f16 or f64), targets [N] int64 (kIgnoreIndex = skip),
// weights [N] float. Logits are never materialised beyond one chunk.
WeightedLogprob weighted_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                 const at::Tensor& weights, const WeightedLogprobOptions& options = {});

// Selective log p of every token with a valid target, no gradient (rollouts, KL, scoring).
struct TokenLogprob {
  at::Tensor logp;     // [N] f32 (f64 for f64 inputs), 0 for ignored targets
  at::Tensor entropy;  // [N] (if wanted)
};
TokenLogprob token_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                           bool want_entropy = false, int64_t chunk_tokens = 0, double softcap = 0);

// Tokens per chunk used when chunk_tokens == 0: C x V fp32 logits within 128 MiB on the CPU (at least 1024
// tokens), 1 GiB on CUDA.
int64_t default_chunk_tokens(int64_t vocab, const at::Device& device);

// ---------------------------------------------------------------------------------------------------
// Plain ATen references (materialise [N, V] logits); tests and benchmarks only.
// ---------------------------------------------------------------------------------------------------
namespace reference {

// Differentiable through ordinary autograd; logp and entropy are [N], 0 for ignored targets.
WeightedLogprob weighted_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                 const at::Tensor& weights, double softcap = 0);

// Vectorised formulation of the same gate semantics, in f64, on the CPU.
GateOutputs gate_weights(const GateInputs& inputs, const GateParams& params);

}  // namespace reference

}  // namespace gaft::ops
