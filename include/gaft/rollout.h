// Rollouts (METHOD.md step 1): K sampled responses per prompt from the current policy, through the batched
// KV-cache generation engine, reproducible from a seed. No gradient.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/generate.h"
#include "gaft/tokenizer.h"

namespace gaft {

struct RolloutOptions {
  int64_t num_samples = 4;          // K
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t max_new_tokens = 64;
  int64_t batch_size = 0;           // prompts per generation call; 0 = all at once
  std::vector<int64_t> stop_tokens; // end-of-turn / EOS ids; the first one closes a finished response
  std::vector<std::string> stop;    // stop strings: the response is cut where its text first contains one
  int64_t pad_id = 0;
};

struct Rollouts {
  // [B * K], row i * K + k: response ids, ending with the stop token when the sample finished
  // (stop_tokens[0] after a stop string), empty for a skipped prompt.
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::string> texts;  // [B * K] decoded responses, without the stop token
  std::vector<bool> present;       // [B * K] false for skipped prompts
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;        // sampling steps of the generation calls
};

// `prompts` [B] token ids; skip[i] = true leaves prompt i without rollouts. Generation runs in eval mode
// under no_grad; each prompt is prefilled once for its K samples; the sample of (prompt i, k) depends only on
// `seed`, i and k, not on rollout.batch_size, skipped prompts or timing.
Rollouts sample_rollouts(Llama& policy, const Tokenizer& tok, const std::vector<std::vector<int64_t>>& prompts,
                         const std::vector<bool>& skip, const RolloutOptions& options, uint64_t seed);

// Cuts `ids` before the first token at which the decoded text contains one of `stops`; true if cut.
bool cut_at_stop_string(const Tokenizer& tok, const std::vector<std::string>& stops, std::vector<int64_t>* ids);

}  // namespace gaft
