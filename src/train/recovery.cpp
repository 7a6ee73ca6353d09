// Which examples continue a misaligned prefix, and which tokens are forced. See gaft/recovery.h.
#include "gaft/recovery.h"

#include <algorithm>
#include <cmath>

#include "gaft/dataset.h"

namespace gaft {

int64_t content_length(const std::vector<int64_t>& response, const std::vector<int64_t>& stop_tokens) {
  const auto stop = std::find_first_of(response.begin(), response.end(), stop_tokens.begin(), stop_tokens.end());
  return static_cast<int64_t>(stop - response.begin());
}

std::vector<int64_t> misaligned_prefix(const std::vector<int64_t>& response, const std::vector<int64_t>& stop_tokens,
                                       int64_t min_tokens, int64_t max_tokens, uint64_t draw) {
  TORCH_CHECK(min_tokens >= 1 && max_tokens >= min_tokens, "misaligned_prefix: expected 1 <= min <= max, got ",
              min_tokens, ", ", max_tokens);
  const int64_t len = content_length(response, stop_tokens);
  if (len < 2) return {};
  const uint64_t span = static_cast<uint64_t>(max_tokens - min_tokens) + 1;
  const int64_t n = std::min(min_tokens + static_cast<int64_t>(draw % span), len - 1);
  return std::vector<int64_t>(response.begin(), response.begin() + n);
}

std::vector<RecoveryStart> plan_recovery(const RecoveryOptions& o, const at::Tensor& reference_scores,
                                         const std::vector<std::vector<int64_t>>& references,
                                         const at::Tensor& rollout_scores,
                                         const std::vector<std::vector<int64_t>>& rollouts,
                                         const std::vector<int64_t>& stop_tokens, uint64_t seed) {
  const int64_t B = reference_scores.size(0), K1 = rollout_scores.size(1);
  TORCH_CHECK(rollout_scores.dim() == 2 && rollout_scores.size(0) == B &&
                  static_cast<int64_t>(references.size()) == B && static_cast<int64_t>(rollouts.size()) == B * K1,
              "plan_recovery: expected [B] references and scores, [B, K1] rollout scores and B * K1 rollouts");
  const at::Tensor s = reference_scores.to(at::kFloat).contiguous(), r = rollout_scores.to(at::kFloat).contiguous();
  const float* sp = s.data_ptr<float>();
  const float* rp = r.data_ptr<float>();
  std::vector<RecoveryStart> out(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    RecoveryStart& st = out[static_cast<size_t>(i)];
    const std::vector<int64_t>* source = nullptr;
    // NaN is not below the threshold: a reference the scorer could not rate is no evidence of harm.
    if (o.from_reference && sp[i] < o.threshold) {
      st.from = RecoveryFrom::kReference;
      source = &references[static_cast<size_t>(i)];
    } else if (o.from_rollout) {
      int64_t best = -1;
      for (int64_t k = 0; k < K1; ++k)
        if (std::isfinite(rp[i * K1 + k]) && (best < 0 || rp[i * K1 + k] < rp[i * K1 + best])) best = k;
      if (best >= 0 && rp[i * K1 + best] < o.threshold) {
        st.from = RecoveryFrom::kRollout;
        st.rollout = best;
        source = &rollouts[static_cast<size_t>(i * K1 + best)];
      }
    }
    if (source == nullptr) continue;
    st.prefix = misaligned_prefix(*source, stop_tokens, o.min_prefix, o.max_prefix,
                                  mix_seed(seed, static_cast<uint64_t>(i), 0x9e3f));
    if (st.prefix.empty()) st = RecoveryStart{};
  }
  return out;
}

}  // namespace gaft
