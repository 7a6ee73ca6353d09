// CUDA kernel of gaft::fused_logsoftmax_rows, the row op of the chunked weighted log-likelihood
// (weighted_logprob.cpp drives it between cuBLAS matmuls through ATen).
//
// One block per row z [V]: each thread keeps an online (max m, sum e^{z-m}, sum e^{z-m}(z-m)) over a
// strided slice, the block combines them (warp shuffles, then shared memory), thread 0 writes log p and the
// entropy, and (for gradients) a second pass overwrites the row with dz = w (onehot(y) - softmax(z)).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "ops_internal.h"

namespace gaft::ops::detail {

namespace {

constexpr int kRowThreads = 512;
constexpr int kWarps = kRowThreads / 32;

template <typename T>
struct RowStats {
  T m;    // running max
  T s;    // sum e^{z - m}
  T ezd;  // sum e^{z - m} (z - m)
};

template <typename T>
__device__ __forceinline__ RowStats<T> combine(RowStats<T> a, RowStats<T> b) {
  if (a.s == T(0)) return b;
  if (b.s == T(0)) return a;
  const T M = a.m > b.m ? a.m : b.m;
  const T ea = exp(a.m - M), eb = exp(b.m - M);
  RowStats<T> o;
  o.m = M;
  o.s = a.s * ea + b.s * eb;
  // A side whose max is far below (e.g. -inf) has weight 0; skip it rather than form 0 * inf.
  o.ezd = (ea > T(0) ? (a.ezd + a.s * (a.m - M)) * ea : T(0)) + (eb > T(0) ? (b.ezd + b.s * (b.m - M)) * eb : T(0));
  return o;
}

template <typename T>
__global__ void logsoftmax_rows_kernel(T* __restrict__ z,               // [C, V], dz on exit (want_grad)
                                       const int64_t* __restrict__ y,   // [C]
                                       const T* __restrict__ w,         // [C]
                                       T* __restrict__ logp,            // [C]
                                       T* __restrict__ ent,             // [C]
                                       int64_t V, bool want_grad) {
  __shared__ RowStats<T> warp_stats[kWarps];
  __shared__ T row_lse;
  const int64_t row = blockIdx.x;
  T* zr = z + row * V;

  RowStats<T> st{T(0), T(0), T(0)};
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const T x = zr[j];
    if (st.s == T(0)) {
      st.m = x;
      st.s = T(1);
      st.ezd = T(0);
    } else if (x <= st.m) {
      const T d = x - st.m;
      const T e = exp(d);
      st.s += e;
      st.ezd += e > T(0) ? e * d : T(0);
    } else {
      const T d = st.m - x;  // < 0
      const T e = exp(d);
      st.ezd = e > T(0) ? (st.ezd + st.s * d) * e : T(0);
      st.s = e > T(0) ? st.s * e + T(1) : T(1);
      st.m = x;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    RowStats<T> o;
    o.m = __shfl_xor_sync(0xffffffff, st.m, offset);
    o.s = __shfl_xor_sync(0xffffffff, st.s, offset);
    o.ezd = __shfl_xor_sync(0xffffffff, st.ezd, offset);
    st = combine(st, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_stats[warp] = st;
  __syncthreads();
  if (threadIdx.x == 0) {
    RowStats<T> total = warp_stats[0];
    for (int k = 1; k < kWarps; ++k) total = combine(total, warp_stats[k]);
    const T log_sum = log(total.s);
    const T lse = total.m + log_sum;
    logp[row] = zr[y[row]] - lse;
    ent[row] = log_sum - total.ezd / total.s;
    row_lse = lse;
  }
  __syncthreads();
  if (!want_grad) return;
  const T lse = row_lse, wr = w[row];
  const int64_t target = y[row];
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const T d = -wr * exp(zr[j] - lse);
    zr[j] = j == target ? d + wr : d;
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> fused_logsoftmax_rows_cuda(at::Tensor& z, const at::Tensor& targets,
                                                              const at::Tensor& weights, bool want_grad) {
  TORCH_CHECK(z.is_cuda() && z.dim() == 2 && z.is_contiguous(),
              "fused_logsoftmax_rows: z must be a contiguous [C, V] CUDA tensor");
  TORCH_CHECK(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble,
              "fused_logsoftmax_rows: z must be float32 or float64, got ", z.scalar_type());
  const int64_t C = z.size(0), V = z.size(1);
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == C && targets.scalar_type() == at::kLong && targets.is_cuda(),
              "fused_logsoftmax_rows: targets must be int64 [", C, "] on the GPU");
  TORCH_CHECK(weights.dim() == 1 && weights.size(0) == C && weights.scalar_type() == z.scalar_type() &&
                  weights.is_cuda(),
              "fused_logsoftmax_rows: weights must be [", C, "] of z's dtype on the GPU");
  TORCH_CHECK(V > 0, "fused_logsoftmax_rows: empty vocabulary");
  const c10::cuda::CUDAGuard device_guard(z.device());
  at::Tensor y = targets.contiguous(), w = weights.contiguous();
  at::Tensor logp = at::empty({C}, z.options()), ent = at::empty({C}, z.options());
  if (C == 0) return {logp, ent};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "fused_logsoftmax_rows_cuda", [&] {
    logsoftmax_rows_kernel<scalar_t><<<C, kRowThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        z.data_ptr<scalar_t>(), y.data_ptr<int64_t>(), w.data_ptr<scalar_t>(), logp.data_ptr<scalar_t>(),
        ent.data_ptr<scalar_t>(), V, want_grad);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {logp, ent};
}

}  // namespace gaft::ops::detail
