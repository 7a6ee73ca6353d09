// Declarations shared by the files of kernels/: the dispatcher kernels of each op (CPU in *.cpp, CUDA in
// *.cu) and the gate's argument checks. Not a public header: callers use include/gaft/ops.h.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "gate_math.h"

namespace gaft::ops::detail {

// gaft::gate_weights -> (g [B], advantages [B, K], p [B], u [B], flags [B] i32, num_invalid [] i64,
// weights [N]).
using GateResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The gate's inputs after checks: contiguous f32 scores on one device, resolved constants.
struct GatePrepared {
  at::Tensor r;        // [B, K] f32 contiguous
  at::Tensor s;        // [B] f32
  at::Tensor seq;      // [N] i64
  at::Tensor unc;      // [B] f32 (zeros when unused)
  at::Tensor learned;  // [B] f32 (zeros when unused)
  int64_t B = 0, K = 0, N = 0;
  gate::GateConsts c{};
};

GatePrepared prepare_gate(const at::Tensor& rollout_scores, const at::Tensor& reference_scores,
                          const at::Tensor& token_seq, const std::optional<at::Tensor>& scorer_uncertainty,
                          const std::optional<at::Tensor>& learned_gate, int64_t mode, int64_t uncertainty,
                          int64_t advantage, int64_t sft_norm, int64_t sft_coef, double w_m, double w_u,
                          double tau, double temperature, double g0, double lam, double delta, bool abstention,
                          double std_floor, double norm_examples, double norm_tokens);

// The dispatcher kernel of gaft::gate_weights (the op's schema signature), registered for CPU and CUDA:
// checks the arguments once (prepare_gate), then runs the device's loop below.
GateResult gate_weights_kernel(const at::Tensor& rollout_scores, const at::Tensor& reference_scores,
                               const at::Tensor& token_seq, const std::optional<at::Tensor>& scorer_uncertainty,
                               const std::optional<at::Tensor>& learned_gate, int64_t mode, int64_t uncertainty,
                               int64_t advantage, int64_t sft_norm, int64_t sft_coef, double w_m, double w_u,
                               double tau, double temperature, double g0, double lam, double delta, bool abstention,
                               double std_floor, double norm_examples, double norm_tokens);

GateResult gate_weights_cpu(const GatePrepared& in);

GateResult gate_weights_cuda(const GatePrepared& in);  // kernels/gate.cu

// gaft::fused_logsoftmax_rows: z [C, V] f32/f64 logits (modified in place into dz = w (onehot - softmax)
// when want_grad), targets [C] i64 (valid), weights [C] (z's dtype) -> (logp [C], entropy [C]).
std::tuple<at::Tensor, at::Tensor> fused_logsoftmax_rows_cpu(at::Tensor& z, const at::Tensor& targets,
                                                             const at::Tensor& weights, bool want_grad);
std::tuple<at::Tensor, at::Tensor> fused_logsoftmax_rows_cuda(at::Tensor& z, const at::Tensor& targets,
                                                              const at::Tensor& weights, bool want_grad);

// gaft::weighted_logprob_fwd (device-agnostic driver) -> (loss [], logp [N], entropy [N], dh [N, H] or
// empty, dW [V, H] or empty); gradients of the loss for grad_output = 1.
using WlpForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
WlpForward weighted_logprob_fwd(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                const at::Tensor& weights, int64_t chunk_tokens, bool grad_h, bool grad_W,
                                bool grad_w, double softcap);

// gaft::weighted_logprob -> (loss, logp, entropy): without autograd (CompositeExplicitAutograd) and with it.
std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_logprob_plain(const at::Tensor& h, const at::Tensor& W,
                                                                      const at::Tensor& targets,
                                                                      const at::Tensor& weights,
                                                                      int64_t chunk_tokens, double softcap);
std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_logprob_autograd(const at::Tensor& h, const at::Tensor& W,
                                                                         const at::Tensor& targets,
                                                                         const at::Tensor& weights,
                                                                         int64_t chunk_tokens, double softcap);

}  // namespace gaft::ops::detail
