// CUDA kernel of gaft::gate_weights: the whole gate in ONE launch of one thread block.
//   phase 0: zero the per-sequence lengths                                   (block-stride over sequences)
//   phase 1: per example: statistics, gate, flags, advantages, sequence coefficients (gate_math.h),
//            and per token: sequence lengths and the number of reference tokens (shared/global atomics)
//   phase 2: per token: weight = coefficient / (norm * length)
// B, K and N are small (a batch), so one block is plenty and saves launches and synchronisation.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "gate_math.h"
#include "ops_internal.h"

namespace gaft::ops::detail {

namespace {

constexpr int kGateThreads = 1024;

__global__ void gate_kernel(const float* __restrict__ r,        // [B, K]
                            const float* __restrict__ s,        // [B]
                            const float* __restrict__ unc,      // [B]
                            const float* __restrict__ learned,  // [B]
                            const int64_t* __restrict__ seq,    // [N]
                            int64_t B, int64_t K, int64_t N, gate::GateConsts c,
                            float* g, float* adv, float* p, float* u, int32_t* flags,  // [B], [B, K], [B] x 3
                            int64_t* num_invalid,                                       // []
                            float* weights,                                             // [N]
                            float* seq_coef,                                            // [S] scratch
                            int* seq_len) {                                             // [S] scratch
  __shared__ unsigned long long invalid_count;
  __shared__ unsigned long long ref_tokens;
  const int64_t S = B + B * K;
  if (threadIdx.x == 0) {
    invalid_count = 0;
    ref_tokens = 0;
  }
  for (int64_t q = threadIdx.x; q < S; q += blockDim.x) seq_len[q] = 0;
  __syncthreads();

  for (int64_t i = threadIdx.x; i < B; i += blockDim.x) {
    gate::GateExample e =
        gate::gate_example(r + i * K, K, s[i], unc[i], learned[i], c, adv + i * K, &seq_coef[i], &seq_coef[B + i * K]);
    g[i] = e.g;
    p[i] = e.p;
    u[i] = e.u;
    flags[i] = e.flags;
    if (e.num_invalid > 0) atomicAdd(&invalid_count, (unsigned long long)e.num_invalid);
  }
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const int64_t q = seq[n];
    if (q >= 0 && q < S) {
      atomicAdd(&seq_len[q], 1);
      if (q < B) atomicAdd(&ref_tokens, 1ULL);
    }
  }
  __syncthreads();

  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const int64_t q = seq[n];  // out-of-range ids (checked on the CPU path) get weight 0 here
    weights[n] = (q >= 0 && q < S) ? gate::gate_token_weight(q, B, seq_coef[q], seq_len[q], (int64_t)ref_tokens, c)
                                   : 0.0f;
  }
  if (threadIdx.x == 0) *num_invalid = (int64_t)invalid_count;
}

}  // namespace

GateResult gate_weights_cuda(const GatePrepared& in) {
  TORCH_CHECK(in.r.is_cuda(), "gate_weights_cuda: expected CUDA tensors");
  const c10::cuda::CUDAGuard device_guard(in.r.device());
  const int64_t B = in.B, K = in.K, N = in.N, S = B + B * K;
  auto f32 = in.r.options();
  at::Tensor g = at::empty({B}, f32), adv = at::empty({B, K}, f32), p = at::empty({B}, f32),
             u = at::empty({B}, f32), flags = at::empty({B}, f32.dtype(at::kInt)),
             num_invalid = at::empty({}, f32.dtype(at::kLong)), weights = at::empty({N}, f32);
  at::Tensor seq_coef = at::empty({S}, f32);                  // [S] scratch
  at::Tensor seq_len = at::empty({S}, f32.dtype(at::kInt));   // [S] scratch, zeroed in the kernel
  gate_kernel<<<1, kGateThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      in.r.data_ptr<float>(), in.s.data_ptr<float>(), in.unc.data_ptr<float>(), in.learned.data_ptr<float>(),
      in.seq.data_ptr<int64_t>(), B, K, N, in.c, g.data_ptr<float>(), adv.data_ptr<float>(), p.data_ptr<float>(),
      u.data_ptr<float>(), flags.data_ptr<int32_t>(), num_invalid.data_ptr<int64_t>(), weights.data_ptr<float>(),
      seq_coef.data_ptr<float>(), seq_len.data_ptr<int>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g, adv, p, u, flags, num_invalid, weights};
}

}  // namespace gaft::ops::detail
