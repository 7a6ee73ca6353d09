// Training data: JSONL records validated line by line, rendered with the chat template, tokenized, cut to
// the configured lengths, and served in deterministic, optionally length-bucketed batches.
//
// Records (one JSON object per line):
//   {"prompt": "...", "response": "...", "category": "safety"?, "label": 1?}
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...], "category"?, "label"?}
//   {"text": "...", "label": 0}                                   (classifier objective only)
// A chat record must end with an assistant message: it is the reference response y_i; earlier assistant
// turns are trained too (assistant-only loss mask) but only the last one is resampled by rollouts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/chat.h"
#include "gaft/config.h"
#include "gaft/tokenizer.h"

namespace gaft {

struct Example {
  int64_t line = 0;                   // 1-based line in the file
  std::string category;               // "" when absent
  int64_t label = -1;                 // classifier objective; -1 when absent
  std::vector<ChatMessage> messages;  // prompt/response records become [user, assistant]
  std::string prompt_text;            // the last user message: what scorers see as the prompt
  std::string response_text;          // the last assistant message (the reference response)
  // Token ids: prompt = everything up to the last assistant turn's content (generation prompt included),
  // response = that content and its end-of-turn token(s). ids() = prompt ++ response.
  std::vector<int64_t> prompt_ids;    // [P]
  std::vector<uint8_t> prompt_mask;   // [P] 1 on earlier assistant turns
  std::vector<int64_t> response_ids;  // [R]
  int64_t length() const { return static_cast<int64_t>(prompt_ids.size() + response_ids.size()); }
};

struct DatasetOptions {
  DataFormat format = DataFormat::kAuto;
  bool skip_bad_lines = false;
  int64_t max_prompt_tokens = 512;
  int64_t max_response_tokens = 512;
  TooLong too_long = TooLong::kTruncate;
  bool classification = false;        // records need "label" in [0, num_labels); "text" allowed
  int64_t num_labels = 2;
};

struct DatasetStats {
  int64_t lines = 0;      // non-empty lines read
  int64_t examples = 0;   // kept
  int64_t skipped = 0;    // malformed lines skipped (skip_bad_lines)
  int64_t truncated = 0;  // prompt or response cut
  int64_t dropped = 0;    // too long with too_long: drop
};

// How a record's turns become ids: the policy's tokenizer and chat template.
struct Renderer {
  const Tokenizer* tok = nullptr;
  ChatTemplate tmpl = ChatTemplate::kNone;
  // prompt_ids / prompt_mask / response_ids of `messages` (the last one an assistant turn).
  void render(const std::vector<ChatMessage>& messages, Example* out) const;
  // Ids of a response `text` to the prompt of `ex` (e.g. an abstention), with the end-of-turn token(s).
  std::vector<int64_t> response_ids(const Example& ex, const std::string& text) const;
};

class Dataset {
 public:
  // Reads and tokenizes every record; DataError "file:line: ..." for a bad line (unless skipped), and for
  // a file with no usable example.
  static Dataset load(const std::string& path, const Renderer& renderer, const DatasetOptions& options);

  // Every example: the file's own, then those of an added mix (add_mix).
  const std::vector<Example>& examples() const { return examples_; }
  const DatasetStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }
  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  // Examples served per epoch: the file's own and the mix's draw.
  int64_t epoch_size() const { return own_ + mix_per_epoch_; }

  // Mixing (data.mix): `mix`'s examples join so that a share `share` in [0, 1) of every epoch comes from
  // them: round(share / (1 - share) * own) examples per epoch, drawn without replacement (cycling when the mix
  // is smaller) from a permutation seeded by (seed, epoch), and shuffled in with the own examples. Call before
  // filtering the own examples, never twice.
  void add_mix(Dataset mix, double share);
  int64_t mix_per_epoch() const { return mix_per_epoch_; }

  // Filtering (the filter objective): example i's reference becomes `text` (rendered as the response to its
  // prompt), or the examples with keep[i] == false leave the set. Own examples only (before add_mix).
  void replace_response(int64_t i, const std::string& text, const Renderer& renderer);
  void keep_only(const std::vector<bool>& keep);

  // The batches of one epoch, as example indices: a permutation from (seed, epoch) when shuffling; with
  // bucketing, windows of 64 batches are sorted by length, cut into batches, and the batches shuffled.
  // The last batch may be smaller. The same arguments always give the same batches.
  std::vector<std::vector<int64_t>> epoch_batches(int64_t epoch, int64_t batch_size, uint64_t seed, bool shuffle,
                                                  bool bucket_by_length) const;

 private:
  std::string path_;
  std::vector<Example> examples_;
  DatasetStats stats_;
  int64_t own_ = 0;            // examples_[0, own_) are the file's; the rest the mix's
  int64_t mix_per_epoch_ = 0;
};

// 64-bit mixing of several values into one seed (splitmix64 steps): rollout seeds per (run seed, step,
// micro-batch), shuffles per (seed, epoch).
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace gaft
