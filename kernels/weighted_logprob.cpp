// gaft::weighted_logprob: sum_n w_n log p(y_n | h_n) with p = softmax(h W^T), fused and chunked over tokens
// (Liger-Kernel's fused linear cross-entropy), so at most one [C, V] chunk of logits exists at a time.
//
//   z = h W^T;  log p_n = z_n[y_n] - lse(z_n);  loss = sum_n w_n log p_n;  H_n = lse_n - sum_v softmax z
//   dz_n = w_n (onehot(y_n) - softmax(z_n));  dh = dz W;  dW = dz^T h;  d loss / d w_n = log p_n
//
// With a soft cap c > 0 (Gemma 2's final_logit_softcapping) the logits are c tanh(z / c): the row op sees the
// capped logits and its dz is multiplied by 1 - tanh^2(z / c) before the matmuls (ATen element-wise ops on the
// chunk, so CPU and CUDA alike).
//
// This file holds: the CPU row kernel (gaft::fused_logsoftmax_rows), the device-agnostic chunked driver
// (gaft::weighted_logprob_fwd: ATen matmuls + the row op through the dispatcher, so it serves CPU and
// CUDA alike) and the autograd function behind gaft::weighted_logprob. Gradients are computed during the
// forward when an input requires grad and saved; backward scales them by the scalar grad_output.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "gaft/ops.h"
#include "ops_internal.h"

namespace gaft::ops {

int64_t default_chunk_tokens(int64_t vocab, const at::Device& device) {
  // A budget of fp32 logits per chunk; on the CPU at least 1024 tokens, so that the three matmuls per chunk
  // stay efficient for large vocabularies (W is read three times per chunk).
  const int64_t budget = device.is_cuda() ? (int64_t(1) << 30) : (int64_t(128) << 20);  // bytes
  const int64_t min_tokens = device.is_cuda() ? 1 : 1024;
  int64_t c = budget / (std::max<int64_t>(vocab, 1) * 4);
  return std::max<int64_t>(c, min_tokens);
}

namespace detail {

// ---------------------------------------------------------------------------------------------------
// CPU row kernel: blocks of rows through ATen's element-wise and reduction operators, which run in the widest
// vector instructions of the CPU they find at run time (a hand-written loop in this baseline x86-64 build calls
// the scalar std::exp once per element: ~20% of the whole op at V = 32000, measured with perf). Per block of
// ~1 MiB, while it is in the cache: the max m, d = z - m, e = e^d, sum e, log p = d[y] - log sum e,
// H = log sum e - sum(e d) / sum e and, for grads, dz = w (onehot(y) - e / sum e) written over z.
// ---------------------------------------------------------------------------------------------------
static void logsoftmax_rows_blocked(at::Tensor& z, const at::Tensor& y, const at::Tensor& w, at::Tensor& logp,
                                    at::Tensor& ent, bool want_grad) {
  const int64_t C = z.size(0), V = z.size(1);
  const int64_t rows = std::clamp<int64_t>((int64_t(1) << 18) / V, 1, std::max<int64_t>(C, 1));  // [rows, V] ~ 1 MiB
  at::Tensor e_buf = at::empty({rows, V}, z.options()), ed_buf = at::empty({rows, V}, z.options());
  const double lowest =
      z.scalar_type() == at::kDouble ? std::numeric_limits<double>::lowest() : std::numeric_limits<float>::lowest();
  for (int64_t r0 = 0; r0 < C; r0 += rows) {
    const int64_t b = std::min(rows, C - r0);
    at::Tensor zb = z.narrow(0, r0, b), eb = e_buf.narrow(0, 0, b);  // [b, V]
    const at::Tensor yb = y.narrow(0, r0, b).unsqueeze(1);            // [b, 1]
    zb.sub_(zb.amax(1, true));                                         // d = z - m
    at::exp_out(eb, zb);                                               // e
    const at::Tensor sum = eb.sum(1, true);                            // [b, 1]
    const at::Tensor log_sum = sum.log();
    logp.narrow(0, r0, b).copy_((zb.gather(1, yb) - log_sum).squeeze(1));
    zb.clamp_min_(lowest);  // e d = 0 where e = 0 (d = -inf), not NaN
    at::Tensor edb = ed_buf.narrow(0, 0, b);
    const at::Tensor sum_ed = at::mul_out(edb, eb, zb).sum(1, true);  // [b, 1] sum e d
    ent.narrow(0, r0, b).copy_((log_sum - sum_ed / sum).squeeze(1));
    if (want_grad) {
      const at::Tensor wb = w.narrow(0, r0, b).unsqueeze(1);  // [b, 1]
      at::mul_out(zb, eb, -wb / sum);                         // dz = -w e / sum e
      zb.scatter_add_(1, yb, wb);                             //    + w at the target
    }
  }
}

std::tuple<at::Tensor, at::Tensor> fused_logsoftmax_rows_cpu(at::Tensor& z, const at::Tensor& targets,
                                                             const at::Tensor& weights, bool want_grad) {
  TORCH_CHECK(z.dim() == 2 && z.is_contiguous(), "fused_logsoftmax_rows: z must be a contiguous [C, V] tensor");
  TORCH_CHECK(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble,
              "fused_logsoftmax_rows: z must be float32 or float64, got ", z.scalar_type());
  const int64_t C = z.size(0), V = z.size(1);
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == C && targets.scalar_type() == at::kLong,
              "fused_logsoftmax_rows: targets must be int64 [", C, "]");
  TORCH_CHECK(weights.dim() == 1 && weights.size(0) == C && weights.scalar_type() == z.scalar_type(),
              "fused_logsoftmax_rows: weights must be [", C, "] of z's dtype");
  TORCH_CHECK(V > 0, "fused_logsoftmax_rows: empty vocabulary");
  at::Tensor y = targets.contiguous(), w = weights.contiguous();
  at::Tensor logp = at::empty({C}, z.options()), ent = at::empty({C}, z.options());
  if (C > 0) logsoftmax_rows_blocked(z, y, w, logp, ent, want_grad);
  return {logp, ent};
}

// ---------------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------------
static std::tuple<at::Tensor, at::Tensor> call_rows(at::Tensor& z, const at::Tensor& y, const at::Tensor& w,
                                                    bool want_grad) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gaft::fused_logsoftmax_rows", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, bool)>();
  return op.call(z, y, w, want_grad);
}

WlpForward weighted_logprob_fwd(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                                const at::Tensor& weights, int64_t chunk_tokens, bool grad_h, bool grad_W,
                                bool grad_w, double softcap) {
  TORCH_CHECK(h.dim() == 2 && W.dim() == 2 && h.size(1) == W.size(1),
              "weighted_logprob: expected h [N, H] and W [V, H], got ", h.sizes(), " and ", W.sizes());
  const int64_t N = h.size(0), H = h.size(1), V = W.size(0);
  TORCH_CHECK(h.scalar_type() == W.scalar_type(), "weighted_logprob: h and W must share a dtype, got ",
              h.scalar_type(), " and ", W.scalar_type());
  TORCH_CHECK(h.is_floating_point(), "weighted_logprob: h must be floating point, got ", h.scalar_type());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == N && targets.scalar_type() == at::kLong,
              "weighted_logprob: targets must be int64 [", N, "], got ", targets.scalar_type(), " ", targets.sizes());
  TORCH_CHECK(weights.dim() == 1 && weights.size(0) == N && weights.is_floating_point(),
              "weighted_logprob: weights must be floating point [", N, "], got ", weights.sizes());
  TORCH_CHECK(W.device() == h.device() && targets.device() == h.device() && weights.device() == h.device(),
              "weighted_logprob: all inputs must be on ", h.device());
  TORCH_CHECK(V > 0, "weighted_logprob: empty vocabulary (W is ", W.sizes(), ")");
  TORCH_CHECK(chunk_tokens >= 0, "weighted_logprob: chunk_tokens must be >= 0, got ", chunk_tokens);
  TORCH_CHECK(softcap >= 0 && std::isfinite(softcap), "weighted_logprob: softcap must be >= 0, got ", softcap);

  const at::ScalarType acc = h.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::TensorOptions acc_opts = h.options().dtype(acc);
  const bool want_dz = grad_h || grad_W;

  at::Tensor valid = targets != kIgnoreIndex;  // [N]
  if (N > 0 && targets.is_cpu()) {  // read in place: no operator, no copy
    const at::Tensor t = targets.contiguous();
    const int64_t* y = t.data_ptr<int64_t>();
    for (int64_t n = 0; n < N; ++n)
      TORCH_CHECK(y[n] == kIgnoreIndex || (y[n] >= 0 && y[n] < V), "weighted_logprob: targets must be in [0, ", V,
                  ") or ", kIgnoreIndex, ", got ", y[n], " at ", n);
  } else if (N > 0) {  // checked on the device, without waiting for it
    const at::Tensor in_range = (targets >= 0).logical_and(targets < V).logical_or(valid.logical_not());
    at::_assert_async(in_range.all(), "weighted_logprob: targets must be in [0, vocabulary) or the ignore index");
  }
  at::Tensor w_acc = weights.to(acc);                                 // [N]
  at::Tensor mask = grad_w ? valid : valid.logical_and(w_acc != 0);   // [N] rows to compute
  at::Tensor idx = mask.nonzero().squeeze(1);                         // [M]
  const int64_t M = idx.size(0);

  at::Tensor logp = at::zeros({N}, acc_opts), entropy = at::zeros({N}, acc_opts);  // [N]
  at::Tensor dh = grad_h ? at::zeros({N, H}, h.options()) : at::Tensor();         // [N, H]
  at::Tensor dW_acc = grad_W ? at::zeros({V, H}, acc_opts) : at::Tensor();        // [V, H] accumulator
  const bool low_precision = h.scalar_type() != acc;
  at::Tensor dW_buf = grad_W && low_precision ? at::empty({V, H}, W.options()) : at::Tensor();  // [V, H]
  if (M == 0) {
    at::Tensor dW = grad_W ? (low_precision ? dW_buf.copy_(dW_acc) : dW_acc) : at::Tensor();
    return {at::zeros({}, acc_opts), logp, entropy, dh, dW};
  }

  at::Tensor h_sel = h.index_select(0, idx);                      // [M, H] contiguous
  at::Tensor y_sel = targets.index_select(0, idx).contiguous();   // [M]
  at::Tensor w_sel = w_acc.index_select(0, idx).contiguous();     // [M]
  at::Tensor logp_sel = at::empty({M}, acc_opts), ent_sel = at::empty({M}, acc_opts);
  at::Tensor dh_sel = grad_h ? at::empty({M, H}, h.options()) : at::Tensor();  // [M, H]

  const int64_t C = std::min<int64_t>(chunk_tokens > 0 ? chunk_tokens : default_chunk_tokens(V, h.device()), M);
  at::Tensor Wt = W.t();                                                             // [H, V]
  at::Tensor z_acc = at::empty({C, V}, acc_opts);                                   // [C, V] fp32 logits / dz
  at::Tensor z_low = low_precision ? at::empty({C, V}, h.options()) : at::Tensor();  // [C, V] input dtype
  const bool capped = softcap > 0;
  at::Tensor t_acc = capped ? at::empty({C, V}, acc_opts) : at::Tensor();            // [C, V] tanh(z / c)

  for (int64_t start = 0; start < M; start += C) {
    const int64_t c = std::min(C, M - start);
    at::Tensor h_c = h_sel.narrow(0, start, c);  // [c, H]
    at::Tensor z = z_acc.narrow(0, 0, c);        // [c, V]
    if (low_precision) {
      at::Tensor zl = z_low.narrow(0, 0, c);
      at::mm_out(zl, h_c, Wt);
      z.copy_(zl);
    } else {
      at::mm_out(z, h_c, Wt);
    }
    at::Tensor t;  // [c, V]
    if (capped) {
      t = t_acc.narrow(0, 0, c);
      at::tanh_out(t, z.div_(softcap));
      at::mul_out(z, t, softcap);
    }
    auto [lp, en] = call_rows(z, y_sel.narrow(0, start, c), w_sel.narrow(0, start, c), want_dz);
    logp_sel.narrow(0, start, c).copy_(lp);
    ent_sel.narrow(0, start, c).copy_(en);
    if (!want_dz) continue;
    at::Tensor dz = z;  // [c, V], already scaled by w
    if (capped) dz.mul_(1 - t * t);  // through the cap: d(c tanh(z / c)) / dz = 1 - tanh^2(z / c)
    if (low_precision) {
      dz = z_low.narrow(0, 0, c);
      dz.copy_(z);
    }
    if (grad_h) {
      at::Tensor dh_c = dh_sel.narrow(0, start, c);
      at::mm_out(dh_c, dz, W);  // [c, V] x [V, H]
    }
    if (grad_W) {
      if (low_precision) {
        at::mm_out(dW_buf, dz.t(), h_c);  // [V, c] x [c, H] in the input dtype
        dW_acc.add_(dW_buf);
      } else {
        dW_acc.addmm_(dz.t(), h_c);
      }
    }
  }

  at::Tensor loss = (w_sel * logp_sel).sum();
  logp.index_copy_(0, idx, logp_sel);
  entropy.index_copy_(0, idx, ent_sel);
  if (grad_h) dh.index_copy_(0, idx, dh_sel);
  at::Tensor dW;
  if (grad_W) {
    if (low_precision) {
      dW = dW_buf.copy_(dW_acc);
      dW_acc.reset();
    } else {
      dW = dW_acc;
    }
  }
  return {loss, logp, entropy, dh, dW};
}

// ---------------------------------------------------------------------------------------------------
// Autograd
// ---------------------------------------------------------------------------------------------------
static WlpForward call_fwd(const at::Tensor& h, const at::Tensor& W, const at::Tensor& targets,
                           const at::Tensor& weights, int64_t chunk_tokens, bool grad_h, bool grad_W, bool grad_w,
                           double softcap) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gaft::weighted_logprob_fwd", "")
                       .typed<WlpForward(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, int64_t, bool, bool, bool, double)>();
  return op.call(h, W, targets, weights, chunk_tokens, grad_h, grad_W, grad_w, softcap);
}

// Gradient times the scalar grad_output, without a copy in the common case grad_output == 1 (read in place
// on the CPU; on a device the product is taken rather than waiting for the device to read the value).
static at::Tensor scale_grad(const at::Tensor& g, const at::Tensor& grad_output) {
  if (!g.defined() || !grad_output.defined()) return at::Tensor();
  if (grad_output.is_cpu() && grad_output.numel() == 1) {
    const at::Tensor go = grad_output.to(at::kDouble);
    if (*go.data_ptr<double>() == 1.0) return g;
  }
  return g * grad_output.to(g.scalar_type());
}

struct WeightedLogprobFunction : public torch::autograd::Function<WeightedLogprobFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h,
                                                const at::Tensor& W, const at::Tensor& targets,
                                                const at::Tensor& weights, int64_t chunk_tokens, double softcap) {
    const bool grad_h = h.requires_grad(), grad_W = W.requires_grad(), grad_w = weights.requires_grad();
    auto [loss, logp, entropy, dh, dW] =
        call_fwd(h, W, targets, weights, chunk_tokens, grad_h, grad_W, grad_w, softcap);
    at::Tensor dw = grad_w ? logp.to(weights.scalar_type()) : at::Tensor();  // [N] d loss / d w
    ctx->save_for_backward({dh, dW, dw});
    ctx->mark_non_differentiable({logp, entropy});
    return {loss, logp, entropy};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& go = grad_outputs[0];  // [] d out / d loss
    return {scale_grad(saved[0], go), scale_grad(saved[1], go), at::Tensor(), scale_grad(saved[2], go),
            at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_logprob_plain(const at::Tensor& h, const at::Tensor& W,
                                                                      const at::Tensor& targets,
                                                                      const at::Tensor& weights,
                                                                      int64_t chunk_tokens, double softcap) {
  auto [loss, logp, entropy, dh, dW] = call_fwd(h, W, targets, weights, chunk_tokens, false, false, false, softcap);
  return {loss, logp, entropy};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_logprob_autograd(const at::Tensor& h, const at::Tensor& W,
                                                                         const at::Tensor& targets,
                                                                         const at::Tensor& weights,
                                                                         int64_t chunk_tokens, double softcap) {
  // Under no_grad nothing will be differentiated: skip computing the gradients in the forward.
  if (!at::GradMode::is_enabled()) return weighted_logprob_plain(h, W, targets, weights, chunk_tokens, softcap);
  auto out = WeightedLogprobFunction::apply(h, W, targets, weights, chunk_tokens, softcap);
  return {out[0], out[1], out[2]};
}

}  // namespace detail
}  // namespace gaft::ops
