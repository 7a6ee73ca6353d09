// Per-example gate math, shared by the CPU kernel (gate_cpu.cpp) and the CUDA kernel (gate.cu).
//
// Semantics (METHOD.md steps 3-8; the loss is sum_n w_n log p_n over all tokens):
//   token_seq [N] int64: -1 = not trained (prompt, pad); i in [0, B) = reference response of example i;
//     B + i*K + k = rollout k of example i. Lengths |y| are counted from this map.
//   valid rollouts: finite r_i^k; the others get A = 0, weight 0 and are counted in num_invalid (as is a
//     non-finite s_i). K_i = number of valid rollouts of example i.
//   p_i = mean of the valid r_i^k;  m_i = 1 - min(p_i, s_i) (p_i alone when s_i is invalid).
//   u_i: entropy -> H(p_i) / ln 2 with H(0) = H(1) = 0;  std -> 2 * population std of the valid r,
//     clamped to [0, 1];  scorer -> the given uncertainty, clamped to [0, 1] (non-finite -> 0).
//   g_i: fixed -> g0;  uncertainty -> sigmoid((w_m m_i + w_u u_i - tau) / t);  learned -> the given gate,
//     clamped to [0, 1] (non-finite -> 0). No valid rollout -> g_i = 0 (plain SFT).
//   SFT coefficient c_i:
//     abstain (abstention on, p_i < delta and s_i < delta)      -> 1           flag 1
//     reference-only misaligned (s_i < delta <= p_i)             -> 0           flag 2
//     s_i invalid                                                -> 0           flags 4|2
//     otherwise (also: no valid rollout, s_i valid)              -> reference: 1 - g_i (1 - s_i)
//                                                                   complement: 1 - g_i (METHOD.md)
//     delta = 0 disables abstention and dropping. `reference` lowers imitation only by the reference's own
//     misalignment, so an aligned reference (s_i = 1) is always imitated in full (docs/method.md).
//   advantages: rloo A_k = r_k - mean_{j != k, valid} r_j;  grpo A_k = (r_k - mean) / max(std_unbiased,
//     std_floor); both 0 when K_i < 2.
//   token weights: reference token of example i: -c_i / (B_norm |y_i|) (sft_norm sequence) or -c_i / T_norm
//     (sft_norm token, T_norm = number of reference tokens); rollout token: -lambda g_i A_i^k /
//     (B_norm K_i |y_i^k|). B_norm, T_norm = local counts unless overridden (> 0).
//   With these, sum_n w_n log p_n = (1/B) sum_i [c_i l_SFT,i + lambda g_i l_PG,i] (METHOD.md step 8 with
//   c_i = 1 - g_i under `complement`).
//
// Each example writes a per-sequence numerator (seq_coef) first; the token pass divides by the norm
// and the length (gate_token_weight), so that T_norm can be counted in the same pass as the lengths.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define GAFT_HD __host__ __device__
#else
#define GAFT_HD
#endif

namespace gaft::ops::gate {

// Mirror gaft::ops::GateMode etc. as plain ints, usable in device code.
constexpr int kModeFixed = 0, kModeUncertainty = 1, kModeLearned = 2;
constexpr int kUncEntropy = 0, kUncStd = 1, kUncScorer = 2;
constexpr int kAdvRloo = 0, kAdvGrpo = 1;
constexpr int kNormSequence = 0, kNormToken = 1;
constexpr int kCoefReference = 0, kCoefComplement = 1;
constexpr int kFlagAbstain = 1, kFlagDropSft = 2, kFlagInvalidReference = 4, kFlagNoValidRollout = 8;

struct GateConsts {
  int mode, uncertainty, advantage, sft_norm, sft_coef;
  double w_m, w_u, tau, temperature, g0, lambda, delta, std_floor;
  bool abstention;
  double norm_examples;  // B_norm (already resolved: > 0)
  double norm_tokens;    // T_norm override (> 0) or 0 = count reference tokens
};

struct GateExample {
  float g, p, u;
  int flags;
  int num_invalid;  // non-finite scores of this example
};

GAFT_HD inline bool gate_isfinite(double x) { return x == x && x - x == 0.0; }

GAFT_HD inline double gate_clamp01(double x) {
  if (!gate_isfinite(x)) return 0.0;
  return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x);
}

// Binary entropy in bits; 0 at p = 0 and p = 1.
GAFT_HD inline double gate_entropy_bits(double p) {
  p = gate_clamp01(p);
  if (p <= 0.0 || p >= 1.0) return 0.0;
  return -(p * log(p) + (1.0 - p) * log(1.0 - p)) / log(2.0);
}

// One example. r: its K rollout scores (stride 1). Writes adv[0..K) and seq_coef for its reference
// (seq_coef_ref) and its rollouts (seq_coef_rollout[0..K)): the token weight before dividing by the norm
// and the sequence length.
GAFT_HD inline GateExample gate_example(const float* r, int64_t K, float s_in, float scorer_unc,
                                        float learned, const GateConsts& c, float* adv,
                                        float* seq_coef_ref, float* seq_coef_rollout) {
  GateExample out;
  out.flags = 0;
  out.num_invalid = 0;
  // Statistics of the valid rollouts.
  int64_t n = 0;
  double sum = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    double x = r[k];
    if (gate_isfinite(x)) {
      ++n;
      sum += x;
    } else {
      ++out.num_invalid;
    }
  }
  double mean = n > 0 ? sum / (double)n : 0.0;
  double ss = 0.0;  // sum of squared deviations
  for (int64_t k = 0; k < K; ++k) {
    double x = r[k];
    if (gate_isfinite(x)) ss += (x - mean) * (x - mean);
  }
  const double s = s_in;
  const bool s_valid = gate_isfinite(s);
  if (!s_valid) {
    ++out.num_invalid;
    out.flags |= kFlagInvalidReference | kFlagDropSft;
  }
  if (n == 0) out.flags |= kFlagNoValidRollout;

  // Misalignment, uncertainty, gate.
  double m = 0.0;
  if (n > 0 && s_valid) m = 1.0 - (mean < s ? mean : s);
  else if (n > 0) m = 1.0 - mean;
  else if (s_valid) m = 1.0 - s;
  double u = 0.0;
  if (c.uncertainty == kUncEntropy) u = n > 0 ? gate_entropy_bits(mean) : 0.0;
  else if (c.uncertainty == kUncStd) u = n > 0 ? gate_clamp01(2.0 * sqrt(ss / (double)n)) : 0.0;
  else u = gate_clamp01(scorer_unc);
  double g = 0.0;
  if (n > 0) {
    if (c.mode == kModeFixed) g = c.g0;
    else if (c.mode == kModeUncertainty)
      g = 1.0 / (1.0 + exp(-(c.w_m * m + c.w_u * u - c.tau) / c.temperature));
    else g = gate_clamp01(learned);
  }

  // SFT coefficient.
  double sft = c.sft_coef == kCoefComplement ? 1.0 - g : 1.0 - g * (1.0 - gate_clamp01(s));
  if (!s_valid) {
    sft = 0.0;
  } else if (n > 0 && s < c.delta) {
    if (mean < c.delta && c.abstention) {
      sft = 1.0;
      out.flags |= kFlagAbstain;
    } else if (mean >= c.delta) {
      sft = 0.0;
      out.flags |= kFlagDropSft;
    }
  }

  // Advantages and rollout coefficients.
  double pg = n > 0 ? c.lambda * g / ((double)n * c.norm_examples) : 0.0;
  double std_unbiased = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
  double denom = std_unbiased > c.std_floor ? std_unbiased : c.std_floor;
  for (int64_t k = 0; k < K; ++k) {
    double x = r[k];
    double a = 0.0;
    if (n > 1 && gate_isfinite(x)) {
      if (c.advantage == kAdvRloo) a = x - (sum - x) / (double)(n - 1);
      else a = (x - mean) / denom;
    }
    adv[k] = (float)a;
    seq_coef_rollout[k] = (float)(-pg * a);
  }
  *seq_coef_ref = (float)(-sft);

  out.g = (float)g;
  out.p = (float)mean;
  out.u = (float)u;
  return out;
}

// Weight of one token of sequence `seq` (>= 0) with length `len` (>= 1); B examples; T = number of
// reference tokens in the batch.
GAFT_HD inline float gate_token_weight(int64_t seq, int64_t B, float seq_coef, int64_t len, int64_t T,
                                       const GateConsts& c) {
  if (seq < B && c.sft_norm == kNormToken) {
    double t_norm = c.norm_tokens > 0 ? c.norm_tokens : (double)T;
    return (float)((double)seq_coef / t_norm);
  }
  if (seq < B) return (float)((double)seq_coef / (c.norm_examples * (double)len));
  return (float)((double)seq_coef / (double)len);  // rollout: B_norm and K_i are in seq_coef
}

}  // namespace gaft::ops::gate
