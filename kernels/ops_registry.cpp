// The one place where gaft's custom ops meet the dispatcher (pytorch/extension-cpp's pattern):
// schemas in TORCH_LIBRARY(gaft, m), kernels per dispatch key, and the plain C++ functions of
// include/gaft/ops.h that call through the dispatcher.
//
//   gaft::gate_weights            CPU (gate_cpu.cpp), CUDA (gate.cu)
//   gaft::fused_logsoftmax_rows   CPU (weighted_logprob.cpp), CUDA (weighted_logprob.cu)
//   gaft::weighted_logprob_fwd    CompositeExplicitAutograd: the chunked driver, any device
//   gaft::weighted_logprob        Autograd (torch::autograd::Function) + CompositeExplicitAutograd (no grad)
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "gaft/ops.h"
#include "ops_internal.h"

TORCH_LIBRARY(gaft, m) {
  m.def(
      "gate_weights(Tensor rollout_scores, Tensor reference_scores, Tensor token_seq, Tensor? scorer_uncertainty, "
      "Tensor? learned_gate, int mode, int uncertainty, int advantage, int sft_norm, int sft_coef, float w_m, float w_u, "
      "float tau, float temperature, float g0, float lam, float delta, bool abstention, float std_floor, "
      "float norm_examples, float norm_tokens) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("fused_logsoftmax_rows(Tensor(a!) z, Tensor targets, Tensor weights, bool want_grad) -> (Tensor, Tensor)");
  m.def(
      "weighted_logprob_fwd(Tensor h, Tensor W, Tensor targets, Tensor weights, int chunk_tokens, bool grad_h, "
      "bool grad_W, bool grad_w, float softcap=0) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("weighted_logprob(Tensor h, Tensor W, Tensor targets, Tensor weights, int chunk_tokens=0, float softcap=0) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gaft, CPU, m) {
  m.impl("gate_weights", &gaft::ops::detail::gate_weights_kernel);
  m.impl("fused_logsoftmax_rows", &gaft::ops::detail::fused_logsoftmax_rows_cpu);
}

#if GAFT_WITH_CUDA
TORCH_LIBRARY_IMPL(gaft, CUDA, m) {
  m.impl("gate_weights", &gaft::ops::detail::gate_weights_kernel);
  m.impl("fused_logsoftmax_rows", &gaft::ops::detail::fused_logsoftmax_rows_cuda);
}
#endif

TORCH_LIBRARY_IMPL(gaft, CompositeExplicitAutograd, m) {
  m.impl("weighted_logprob_fwd", &gaft::ops::detail::weighted_logprob_fwd);
  m.impl("weighted_logprob", &gaft::ops::detail::weighted_logprob_plain);
}

TORCH_LIBRARY_IMPL(gaft, Autograd, m) {
  m.impl("weighted_logprob", &gaft::ops::detail::weighted_logprob_autograd);
}

namespace gaft::ops {

GateOutputs gate_weights(const GateInputs& in, const GateParams& p) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gaft::gate_weights", "")
                       .typed<detail::GateResult(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                 const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                                                 int64_t, int64_t, int64_t, int64_t, int64_t, double, double, double,
                                                 double, double, double, double, bool, double, double, double)>();
  auto opt = [](const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; };
  auto [g, adv, pm, u, flags, num_invalid, weights] =
      op.call(in.rollout_scores, in.reference_scores, in.token_seq, opt(in.scorer_uncertainty),
              opt(in.learned_gate), static_cast<int64_t>(p.mode), static_cast<int64_t>(p.uncertainty),
              static_cast<int64_t>(p.advantage), static_cast<int64_t>(p.sft_norm),
              static_cast<int64_t>(p.sft_coef), p.w_m, p.w_u, p.tau,
              p.temperature, p.g0, p.lambda, p.delta, p.abstention, p.std_floor, p.norm_examples, p.norm_tokens);
  return {g, adv, pm, u, flags, num_invalid, weights};
}

WeightedLogprob weighted_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                 const at::Tensor& weights, const WeightedLogprobOptions& options) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gaft::weighted_logprob", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                           double)>();
  auto [loss, logp, entropy] = op.call(h, W, targets, weights, options.chunk_tokens, options.softcap);
  return {loss, options.want_logp ? logp : at::Tensor(), options.want_entropy ? entropy : at::Tensor()};
}

TokenLogprob token_logprob(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets, bool want_entropy,
                           int64_t chunk_tokens, double softcap) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gaft::weighted_logprob_fwd", "")
                       .typed<detail::WlpForward(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, int64_t, bool, bool, bool, double)>();
  at::NoGradGuard no_grad;
  at::Tensor ones = at::ones({h.size(0)}, h.options().dtype(at::kFloat));  // every valid target is computed
  auto [loss, logp, entropy, dh, dW] = op.call(h.detach(), W.detach(), targets, ones, chunk_tokens, false, false, false, softcap);
  return {logp, want_entropy ? entropy : at::Tensor()};
}

}  // namespace gaft::ops
