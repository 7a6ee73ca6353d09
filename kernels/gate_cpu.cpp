// CPU kernel of gaft::gate_weights, and the argument checks shared with the CUDA kernel (gate.cu).
// The per-example math lives in gate_math.h; this file loops over examples, then over tokens.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <vector>

#include "gate_math.h"
#include "ops_internal.h"

namespace gaft::ops::detail {

GatePrepared prepare_gate(const at::Tensor& rollout_scores, const at::Tensor& reference_scores,
                          const at::Tensor& token_seq, const std::optional<at::Tensor>& scorer_uncertainty,
                          const std::optional<at::Tensor>& learned_gate, int64_t mode, int64_t uncertainty,
                          int64_t advantage, int64_t sft_norm, int64_t sft_coef, double w_m, double w_u,
                          double tau, double temperature, double g0, double lam, double delta, bool abstention,
                          double std_floor, double norm_examples, double norm_tokens) {
  TORCH_CHECK(rollout_scores.dim() == 2, "gate_weights: rollout_scores must be [B, K], got ",
              rollout_scores.sizes());
  TORCH_CHECK(reference_scores.dim() == 1 && reference_scores.size(0) == rollout_scores.size(0),
              "gate_weights: reference_scores must be [B] = [", rollout_scores.size(0), "], got ",
              reference_scores.sizes());
  TORCH_CHECK(token_seq.dim() == 1 && token_seq.scalar_type() == at::kLong,
              "gate_weights: token_seq must be a 1-D int64 tensor, got ", token_seq.scalar_type(), " ",
              token_seq.sizes());
  TORCH_CHECK(rollout_scores.is_floating_point() && reference_scores.is_floating_point(),
              "gate_weights: scores must be floating point");
  const at::Device dev = rollout_scores.device();
  TORCH_CHECK(reference_scores.device() == dev && token_seq.device() == dev,
              "gate_weights: all inputs must be on one device, got ", dev, ", ", reference_scores.device(),
              ", ", token_seq.device());
  TORCH_CHECK(mode >= 0 && mode <= 2, "gate_weights: mode must be 0 (fixed), 1 (uncertainty) or 2 (learned), got ", mode);
  TORCH_CHECK(uncertainty >= 0 && uncertainty <= 2,
              "gate_weights: uncertainty must be 0 (entropy), 1 (std) or 2 (scorer), got ", uncertainty);
  TORCH_CHECK(advantage == 0 || advantage == 1, "gate_weights: advantage must be 0 (rloo) or 1 (grpo), got ", advantage);
  TORCH_CHECK(sft_norm == 0 || sft_norm == 1, "gate_weights: sft_norm must be 0 (sequence) or 1 (token), got ", sft_norm);
  TORCH_CHECK(sft_coef == 0 || sft_coef == 1,
              "gate_weights: sft_coef must be 0 (reference) or 1 (complement), got ", sft_coef);
  TORCH_CHECK(!(mode == gate::kModeUncertainty) || temperature > 0,
              "gate_weights: temperature must be > 0, got ", temperature);
  TORCH_CHECK(g0 >= 0 && g0 <= 1, "gate_weights: g0 must be in [0, 1], got ", g0);
  TORCH_CHECK(std::isfinite(lam) && std::isfinite(w_m) && std::isfinite(w_u) && std::isfinite(tau),
              "gate_weights: lambda, w_m, w_u and tau must be finite");
  TORCH_CHECK(std_floor > 0, "gate_weights: std_floor must be > 0, got ", std_floor);
  TORCH_CHECK(norm_examples >= 0 && norm_tokens >= 0, "gate_weights: norm counts must be >= 0 (0 = local), got ",
              norm_examples, " and ", norm_tokens);

  GatePrepared out;
  out.B = rollout_scores.size(0);
  out.K = rollout_scores.size(1);
  out.N = token_seq.size(0);
  out.r = rollout_scores.to(at::kFloat).contiguous();
  out.s = reference_scores.to(at::kFloat).contiguous();
  out.seq = token_seq.contiguous();
  auto per_example = [&](const std::optional<at::Tensor>& t, bool needed, const char* name) {
    if (!needed) return at::zeros({out.B}, rollout_scores.options().dtype(at::kFloat));
    TORCH_CHECK(t.has_value() && t->defined(), "gate_weights: ", name, " [B] is required by this mode");
    TORCH_CHECK(t->dim() == 1 && t->size(0) == out.B && t->device() == dev, "gate_weights: ", name,
                " must be [B] = [", out.B, "] on ", dev, ", got ", t->sizes(), " on ", t->device());
    return t->to(at::kFloat).contiguous();
  };
  out.unc = per_example(scorer_uncertainty, uncertainty == gate::kUncScorer, "scorer_uncertainty");
  out.learned = per_example(learned_gate, mode == gate::kModeLearned, "learned_gate");

  gate::GateConsts& c = out.c;
  c.mode = (int)mode;
  c.uncertainty = (int)uncertainty;
  c.advantage = (int)advantage;
  c.sft_norm = (int)sft_norm;
  c.sft_coef = (int)sft_coef;
  c.w_m = w_m;
  c.w_u = w_u;
  c.tau = tau;
  c.temperature = temperature > 0 ? temperature : 1.0;
  c.g0 = g0;
  c.lambda = lam;
  c.delta = delta;
  c.std_floor = std_floor;
  c.abstention = abstention;
  c.norm_examples = norm_examples > 0 ? norm_examples : (double)(out.B > 0 ? out.B : 1);
  c.norm_tokens = norm_tokens;
  return out;
}

GateResult gate_weights_kernel(const at::Tensor& rollout_scores, const at::Tensor& reference_scores,
                               const at::Tensor& token_seq, const std::optional<at::Tensor>& scorer_uncertainty,
                               const std::optional<at::Tensor>& learned_gate, int64_t mode, int64_t uncertainty,
                               int64_t advantage, int64_t sft_norm, int64_t sft_coef, double w_m, double w_u,
                               double tau, double temperature, double g0, double lam, double delta, bool abstention,
                               double std_floor, double norm_examples, double norm_tokens) {
  GatePrepared in = prepare_gate(rollout_scores, reference_scores, token_seq, scorer_uncertainty, learned_gate,
                                 mode, uncertainty, advantage, sft_norm, sft_coef, w_m, w_u, tau, temperature, g0,
                                 lam, delta, abstention, std_floor, norm_examples, norm_tokens);
#if GAFT_WITH_CUDA
  if (in.r.is_cuda()) return gate_weights_cuda(in);
#endif
  return gate_weights_cpu(in);
}

GateResult gate_weights_cpu(const GatePrepared& in) {
  TORCH_CHECK(in.r.device().is_cpu(), "gate_weights_cpu: expected CPU tensors");
  const int64_t B = in.B, K = in.K, N = in.N, S = B + B * K;  // S sequences
  auto f32 = in.r.options();
  at::Tensor g = at::empty({B}, f32), adv = at::empty({B, K}, f32), p = at::empty({B}, f32),
             u = at::empty({B}, f32), flags = at::empty({B}, f32.dtype(at::kInt)),
             weights = at::empty({N}, f32);
  std::vector<float> seq_coef(S);
  std::vector<int64_t> seq_len(S, 0);

  // Examples.
  const float* r = in.r.data_ptr<float>();
  const float* s = in.s.data_ptr<float>();
  const float* unc = in.unc.data_ptr<float>();
  const float* learned = in.learned.data_ptr<float>();
  int64_t num_invalid = 0;
  for (int64_t i = 0; i < B; ++i) {
    gate::GateExample e = gate::gate_example(r + i * K, K, s[i], unc[i], learned[i], in.c,
                                             adv.data_ptr<float>() + i * K, &seq_coef[i], &seq_coef[B + i * K]);
    g.data_ptr<float>()[i] = e.g;
    p.data_ptr<float>()[i] = e.p;
    u.data_ptr<float>()[i] = e.u;
    flags.data_ptr<int32_t>()[i] = e.flags;
    num_invalid += e.num_invalid;
  }

  // Sequence lengths and the number of reference tokens.
  const int64_t* seq = in.seq.data_ptr<int64_t>();
  int64_t ref_tokens = 0;
  for (int64_t n = 0; n < N; ++n) {
    TORCH_CHECK(seq[n] >= -1 && seq[n] < S, "gate_weights: token_seq[", n, "] = ", seq[n],
                " is outside [-1, B + B*K) = [-1, ", S, ")");
    if (seq[n] >= 0) ++seq_len[seq[n]];
    if (seq[n] >= 0 && seq[n] < B) ++ref_tokens;
  }

  // Token weights.
  float* w = weights.data_ptr<float>();
  for (int64_t n = 0; n < N; ++n) {
    int64_t q = seq[n];
    w[n] = q < 0 ? 0.0f : gate::gate_token_weight(q, B, seq_coef[q], seq_len[q], ref_tokens, in.c);
  }
  at::Tensor invalid = at::full({}, num_invalid, f32.dtype(at::kLong));
  return {g, adv, p, u, flags, invalid, weights};
}

}  // namespace gaft::ops::detail
