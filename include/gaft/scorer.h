// The frozen alignment scorer S of METHOD.md: one or more heads, each a Hugging Face model with its own
// tokenizer, returning a(x, y) in [0, 1] = P(aligned). Batched, no grad, never trained.
//
//   classifier: a *ForSequenceClassification folder; input = the head's chat template applied to
//               [user: prompt, assistant: response]; a = softmax(logits)[aligned_label].
//   lm_judge:   a causal LM; input = prompt_template with {prompt} and {response} filled in; a = P(safe)
//               from the next-token logits of the two label tokens, normalised over the two.
// Heads combine by min, mean or weighted product (prod a_h^w_h).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "gaft/config.h"
#include "gaft/llama.h"
#include "gaft/tokenizer.h"

namespace gaft {

// On the CPU: a call copies its scores from the device once, at its end.
struct ScoreResult {
  at::Tensor combined;     // [N] f32 a(x, y)
  at::Tensor per_head;     // [H, N] f32
  at::Tensor uncertainty;  // [N] f32 in [0, 1]: mean over heads of the head's normalised entropy
};

// One head; implementation in scorer.cpp.
class ScorerHeadModel {
 public:
  virtual ~ScorerHeadModel() = default;
  // P(aligned) [N] and normalised entropy [N] of each (prompt, response) pair, on the head's device: inputs
  // run in batches of batch_size, longest first (similar lengths share a batch, so little padding is computed).
  virtual std::pair<at::Tensor, at::Tensor> score(const std::vector<std::string>& prompts,
                                                  const std::vector<std::string>& responses, int64_t batch_size) = 0;
  // Heads with the same non-empty key give the same scores (one folder configured under several names or
  // categories): the scorer runs the first of them only.
  virtual std::string shared_key() const { return ""; }
  ScorerHead spec;
};

class Scorer {
 public:
  // Loads every head onto `device` in `dtype`. DataError when a folder lacks what its kind needs (e.g. a
  // classifier without a classification head), naming the folder and the config key.
  static Scorer load(const ScorerSection& section, at::Device device, at::ScalarType dtype);
  // Adds a head that exists in memory (tests; a head shared with the policy's process).
  void add(std::unique_ptr<ScorerHeadModel> head) { heads_.push_back(std::move(head)); }

  ScoreResult score(const std::vector<std::string>& prompts, const std::vector<std::string>& responses);
  // P(aligned) [N] of head `h` alone on the CPU (gaft eval's judges run each head only where it is needed).
  at::Tensor score_head(int64_t h, const std::vector<std::string>& prompts, const std::vector<std::string>& responses);
  // a(x, y) [N] from per-head scores [H, N] by `combine`.
  at::Tensor combine_heads(const at::Tensor& per_head) const;

  int64_t num_heads() const { return static_cast<int64_t>(heads_.size()); }
  const ScorerHead& head(int64_t h) const { return heads_[h]->spec; }
  ScoreCombine combine = ScoreCombine::kMin;
  int64_t batch_size = 16;

 private:
  std::vector<std::unique_ptr<ScorerHeadModel>> heads_;
};

// A classifier head over an already-loaded model and tokenizer (the scorer's own code path).
std::unique_ptr<ScorerHeadModel> make_classifier_head(const ScorerHead& spec, Llama model, Tokenizer tok,
                                                      ChatTemplate tmpl);

// Ids that a classifier (scorer or the classifier objective) reads for a pair: the chat template over
// [user: prompt, assistant: response], cut from the front to max_length (keeping the first token).
std::vector<int64_t> classifier_input_ids(const Tokenizer& tok, ChatTemplate tmpl, const std::string& prompt,
                                          const std::string& response, int64_t max_length);

// The filler id of `model`'s batches: config.json's pad_token_id, else the tokenizer's pad, else EOS, else 0
// (always masked).
int64_t pad_id_for(const Llama& model, const Tokenizer& tok);

// Right-padded batch of sequences: ids [B, T] (pad = pad_id) and attention mask [B, T] (1 = token).
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id);

}  // namespace gaft
