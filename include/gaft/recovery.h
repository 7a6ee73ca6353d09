// Recovery rollouts against shallow alignment (docs/method.md, "Recovery rollouts"): for an example whose
// reference, or else one of its own plain rollouts, the scorer rates misaligned, R of its K rollouts continue a
// prefix of that misaligned response instead of starting from the bare prompt. This file decides, per example,
// whether it has such a start and which tokens are forced; the trainer generates, scores and weighs them.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace gaft {

struct RecoveryOptions {
  int64_t min_prefix = 4;      // forced prefix length drawn per example in [min_prefix, max_prefix]
  int64_t max_prefix = 16;
  bool from_reference = true;  // a reference scoring below `threshold` is a source
  bool from_rollout = true;    // else the lowest-scored plain rollout, when it scores below `threshold`
  double threshold = 0.5;
};

enum class RecoveryFrom : int8_t { kNone = 0, kReference = 1, kRollout = 2 };

struct RecoveryStart {
  RecoveryFrom from = RecoveryFrom::kNone;
  int64_t rollout = -1;          // k of the source rollout (from == kRollout)
  std::vector<int64_t> prefix;   // the forced response tokens; empty when from == kNone
};

// The tokens of a response before its first stop token (its content, without end-of-turn): [0, n).
int64_t content_length(const std::vector<int64_t>& response, const std::vector<int64_t>& stop_tokens);

// The forced start of a misaligned response: its first n tokens, n = min_tokens + draw % (max_tokens -
// min_tokens + 1), capped at len - 1, where len counts the tokens before the first stop token (so that at least
// one token of the misaligned content is left for the policy to continue or abandon). Empty when len < 2.
std::vector<int64_t> misaligned_prefix(const std::vector<int64_t>& response, const std::vector<int64_t>& stop_tokens,
                                       int64_t min_tokens, int64_t max_tokens, uint64_t draw);

// One start per example i of a micro-batch of B examples with K1 plain rollouts each:
//   reference_scores [B] f32 (combined), references [B] response ids (the data's, before any abstention target),
//   rollout_scores [B, K1] f32 (NaN = no rollout), rollouts [B * K1] response ids.
// Source: the reference if options.from_reference and its score < threshold; else, if options.from_rollout, the
// rollout with the lowest finite score if it is < threshold (ties: the lower k); else none. An example whose
// source is too short for a prefix (misaligned_prefix empty) has none. The prefix length of example i is drawn
// from mix_seed(seed, i): the same for any batch composition, rank count or resume.
std::vector<RecoveryStart> plan_recovery(const RecoveryOptions& options, const at::Tensor& reference_scores,
                                         const std::vector<std::vector<int64_t>>& references,
                                         const at::Tensor& rollout_scores,
                                         const std::vector<std::vector<int64_t>>& rollouts,
                                         const std::vector<int64_t>& stop_tokens, uint64_t seed);

}  // namespace gaft
