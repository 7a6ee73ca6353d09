// Plain ATen references of the custom ops, for tests and benchmarks only: they materialise the [N, V]
// logits (weighted_logprob) and compute the gate as whole-tensor expressions in f64, written apart from
// gate_math.h so that the two can check each other.
#include <ATen/ATen.h>

#include <cmath>

#include "gaft/ops.h"

namespace gaft::ops::reference {

WeightedLogprob weighted_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                 const at::Tensor& weights, double softcap) {
  const at::ScalarType acc = h.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor z = at::mm(h, W.t()).to(acc);                    // [N, V]
  if (softcap > 0) z = at::tanh(z / softcap) * softcap;       // [N, V]
  at::Tensor logsm = at::log_softmax(z, 1);                   // [N, V]
  at::Tensor valid = targets != kIgnoreIndex;                 // [N]
  at::Tensor safe = at::where(valid, targets, at::zeros_like(targets));
  at::Tensor picked = logsm.gather(1, safe.unsqueeze(1)).squeeze(1);  // [N]
  at::Tensor logp = at::where(valid, picked, at::zeros_like(picked));
  at::Tensor loss = (weights.to(acc) * logp).sum();
  at::Tensor entropy;
  {
    at::NoGradGuard no_grad;
    at::Tensor ls = logsm.detach();
    at::Tensor prob = ls.exp();
    at::Tensor plogp = at::where(prob > 0, prob * ls, at::zeros_like(ls));
    entropy = at::where(valid, -plogp.sum(1), at::zeros_like(picked.detach()));
  }
  return {loss, logp, entropy};
}

static at::Tensor clamp01(const at::Tensor& x) {  // non-finite -> 0
  return at::where(at::isfinite(x), x.clamp(0.0, 1.0), at::zeros_like(x));
}

GateOutputs gate_weights(const GateInputs& in, const GateParams& prm) {
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor r = in.rollout_scores.to(at::kCPU, at::kDouble);  // [B, K]
  at::Tensor s = in.reference_scores.to(at::kCPU, at::kDouble);  // [B]
  at::Tensor seq = in.token_seq.to(at::kCPU);                  // [N]
  const int64_t B = r.size(0), K = r.size(1);
  at::Tensor valid = at::isfinite(r);                          // [B, K]
  at::Tensor rv = at::where(valid, r, at::zeros_like(r));
  at::Tensor n = valid.sum(1).to(at::kDouble);                 // [B]
  at::Tensor has = n > 0;
  at::Tensor sum = rv.sum(1);
  at::Tensor mean = at::where(has, sum / n.clamp_min(1), at::zeros_like(sum));
  at::Tensor dev = at::where(valid, r - mean.unsqueeze(1), at::zeros_like(r));
  at::Tensor ss = (dev * dev).sum(1);
  at::Tensor s_valid = at::isfinite(s);
  at::Tensor sv = at::where(s_valid, s, at::zeros_like(s));
  at::Tensor zero = at::zeros({B}, f64), one = at::ones({B}, f64);

  at::Tensor m = at::where(has.logical_and(s_valid), 1 - at::minimum(mean, sv),
                           at::where(has, 1 - mean, at::where(s_valid, 1 - sv, zero)));
  at::Tensor u;
  if (prm.uncertainty == UncertaintyMode::kEntropy) {
    at::Tensor pc = mean.clamp(0.0, 1.0);
    u = -(at::xlogy(pc, pc) + at::xlogy(1 - pc, 1 - pc)) / std::log(2.0);
  } else if (prm.uncertainty == UncertaintyMode::kStd) {
    u = (2 * (ss / n.clamp_min(1)).sqrt()).clamp(0.0, 1.0);
  } else {
    u = clamp01(in.scorer_uncertainty.to(at::kCPU, at::kDouble));
  }
  if (prm.uncertainty != UncertaintyMode::kScorer) u = at::where(has, u, zero);
  at::Tensor g;
  if (prm.mode == GateMode::kFixed) g = at::full({B}, prm.g0, f64);
  else if (prm.mode == GateMode::kUncertainty) g = at::sigmoid((prm.w_m * m + prm.w_u * u - prm.tau) / prm.temperature);
  else g = clamp01(in.learned_gate.to(at::kCPU, at::kDouble));
  g = at::where(has, g, zero);

  at::Tensor low_s = s_valid.logical_and(sv < prm.delta).logical_and(has);
  at::Tensor abstain = low_s.logical_and(mean < prm.delta);
  if (!prm.abstention) abstain = at::zeros_like(abstain);
  at::Tensor drop = low_s.logical_and(mean >= prm.delta).logical_or(s_valid.logical_not());
  at::Tensor kept = prm.sft_coef == SftCoefficient::kComplement ? 1 - g : 1 - g * (1 - sv.clamp(0.0, 1.0));
  at::Tensor sft = at::where(abstain, one, at::where(drop, zero, kept));
  at::Tensor flags = abstain.to(at::kInt) * 1 + drop.to(at::kInt) * 2 + s_valid.logical_not().to(at::kInt) * 4 +
                     has.logical_not().to(at::kInt) * 8;

  at::Tensor n1 = (n - 1).clamp_min(1).unsqueeze(1);  // [B, 1]
  at::Tensor adv;
  if (prm.advantage == AdvantageMode::kRloo) {
    adv = r - (sum.unsqueeze(1) - r) / n1;
  } else {
    at::Tensor sd = (ss.unsqueeze(1) / n1).sqrt().clamp_min(prm.std_floor);
    adv = (r - mean.unsqueeze(1)) / sd;
  }
  adv = at::where(valid.logical_and((n > 1).unsqueeze(1)), adv, at::zeros_like(adv));  // [B, K]
  at::Tensor num_invalid = valid.logical_not().sum() + s_valid.logical_not().sum();

  // Token weights.
  const double b_norm = prm.norm_examples > 0 ? prm.norm_examples : (double)std::max<int64_t>(B, 1);
  const int64_t S = B + B * K;
  at::Tensor trained = seq >= 0;
  at::Tensor len = at::bincount(seq.masked_select(trained), {}, S).to(at::kDouble);  // [S]
  const double t_local = (double)seq.ge(0).logical_and(seq.lt(B)).sum().item<int64_t>();
  const double t_norm = prm.norm_tokens > 0 ? prm.norm_tokens : t_local;
  at::Tensor ref_coef = prm.sft_norm == SftNorm::kSequence ? -sft / (b_norm * len.narrow(0, 0, B))
                                                          : -sft / t_norm;  // [B]
  at::Tensor roll_len = len.narrow(0, B, B * K).view({B, K});
  at::Tensor roll_coef = -prm.lambda * g.unsqueeze(1) * adv / (b_norm * n.clamp_min(1).unsqueeze(1) * roll_len);
  at::Tensor coef = at::cat({ref_coef, roll_coef.reshape({B * K})});  // [S]
  at::Tensor picked = coef.index_select(0, seq.clamp_min(0));
  at::Tensor w = at::where(trained, picked, at::zeros_like(picked));

  auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat); };
  return {f32(g), f32(adv), f32(mean), f32(u), flags, num_invalid, f32(w)};
}

}  // namespace gaft::ops::reference
