// Batched, KV-cached text generation: greedy at temperature 0, else temperature / top-k / top-p sampling
// with a seeded generator. Prompts of different lengths are left-padded and masked.
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
  std::vector<int64_t> stop_tokens;  // generation of a row ends when it emits one (not returned)
  int64_t pad_id = 0;                // filler for left padding and finished rows (always masked)
};

// New tokens of each prompt (prompts are token ids, each non-empty), without the stop token. Row b generates
// at most min(its budget, max_position_embeddings - its prompt length) tokens.
std::vector<std::vector<int64_t>> generate(Llama& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& options);

// One token per row of logits [B, V] (fp32 on CPU for sampling), following options.
at::Tensor sample_next(const at::Tensor& logits, const GenerationOptions& options, at::Generator& generator);

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
