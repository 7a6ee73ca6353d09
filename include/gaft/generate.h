// Batched, KV-cached text generation: greedy at temperature 0, else temperature / top-k / top-p sampling.
// Prompts of different lengths are left-padded and masked; each prompt is prefilled once and its cache
// serves its num_samples continuations; rows that finish leave the batch.
//
// Sampling draws no random numbers per vocabulary entry: top-k and top-p select candidates by a partial sort
// (topk), and one uniform per row and token picks a candidate by inverse CDF. The uniform is a counter-based
// hash of (seed, the row's stream, the token's index), so a row's sample depends on its own stream only, not
// on which other rows share its batch or when rows leave it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/llama.h"

namespace gaft {

struct GenerationOptions {
  int64_t max_new_tokens = 256;      // 256
  std::vector<int64_t> max_new_tokens_per_row;  // empty: max_new_tokens for every row; else one budget per prompt
  double temperature = 0.0;          // 0: greedy (argmax)
  int64_t top_k = 0;                 // 0: off
  double top_p = 1.0;                // 1: off
  uint64_t seed = 0;                 // sampling seed
  // Stream of each prompt (empty: its index in the call). Continuation k of prompt b draws from stream
  // (streams[b], k): give a prompt the same stream in any batch to get the same samples.
  std::vector<uint64_t> streams;
  int64_t num_samples = 1;           // continuations per prompt (K), sharing the prompt's prefill
  std::vector<int64_t> stop_tokens;  // generation of a row ends when it emits one (not returned)
  int64_t pad_id = 0;                // filler for left padding and finished rows (always masked)
  int64_t* decode_steps = nullptr;   // if set, increased by the sampling steps run (one host read each)
};

// New tokens of each prompt (prompts are token ids, each non-empty), without the stop token: [B * K] rows,
// row b * K + k the k-th continuation of prompt b (K = options.num_samples). Row b generates at most
// min(its budget, max_position_embeddings - its prompt length) tokens.
std::vector<std::vector<int64_t>> generate(Llama& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& options);

// Uniform in [0, 1) from (seed, stream, counter): 53 bits of a splitmix64-style hash, the same on every
// platform and in any order of calls.
double counter_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

// One token per row of logits [R, V] (any device; returned [R] int64 on the CPU), following temperature,
// top_k and top_p of `options`; row r draws counter_uniform(options.seed, streams[r], step).
at::Tensor sample_tokens(const at::Tensor& logits, const GenerationOptions& options,
                         const std::vector<uint64_t>& streams, int64_t step);

// ---- What the CLI commands do (gaft generate / logits) ----

// Loads config.json, the weights and tokenizer.model from `model_dir`, continues `prompt` (empty: from BOS)
// and returns the completion alone. Without options.stop_tokens, EOS and BOS stop generation.
// chat: the prompt becomes one user turn in the model's chat template (recognised from its
// tokenizer_config.json, else plain), with the assistant header appended; the end-of-turn token stops.
std::string complete_text(const std::string& model_dir, const std::string& prompt, GenerationOptions options,
                          bool chat = false);

// "1 2 3" -> {1, 2, 3}; a UsageError for anything else.
std::vector<int64_t> parse_token_ids(const std::string& text);

// Float32 logits [T, V] of `ids` (one sequence) written to `out` as the tensor "logits".
void write_logits(const std::string& model_dir, const std::vector<int64_t>& ids, const std::string& out);

}  // namespace gaft
