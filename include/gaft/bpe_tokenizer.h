// Byte-level BPE tokenizer in the Hugging Face format (GPT-2, Llama 3, Qwen2): the backend behind
// gaft::Tokenizer for tokenizer.json and vocab.json + merges.txt. Ids equal those of the `tokenizers` library.
//
// encode(), as Hugging Face runs it:
//   "Hi<|im_end|> 42"
//   1. added tokens are cut out first (leftmost-longest; lstrip/rstrip/single_word honoured):
//        "Hi" | <|im_end|> | " 42"
//   2. pre-tokenizer: each remaining piece is split by the regex of tokenizer.json's "pre_tokenizer"
//      (a Split pattern; else GPT-2's), through PCRE2 in UTF + UCP mode:        "Hi" | " 42"
//   3. ByteLevel: the bytes of each piece become GPT-2's printable characters:   "Hi" | "Ġ42"
//   4. BPE: merges applied by rank (lowest first, leftmost on ties), with a cache; ids looked up.
// decode() maps the characters back to bytes, skips special tokens, and repairs invalid UTF-8 with U+FFFD.
//
// Supported tokenizer.json pieces (anything else is a DataError naming the file and what was expected):
//   normalizer      null, or NFC (not applied: already-NFC text, i.e. nearly all text, is unaffected; a
//                   warning says so at load)
//   pre_tokenizer   ByteLevel, or a Sequence of Split (Regex or String, behavior Isolated), Digits and one
//                   ByteLevel last (use_regex, add_prefix_space honoured)
//   model           BPE: vocab, merges ("a b" strings or ["a", "b"] pairs), ignore_merges, unk_token, fuse_unk
//   decoder         ByteLevel (or null)
//   post_processor  ByteLevel, TemplateProcessing, Sequence or null: only its leading / trailing special
//                   tokens are read (template_bos(), template_eos()); gaft::Tokenizer adds them
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace gaft {

// An entry of tokenizer.json's "added_tokens" (or tokenizer_config.json's "added_tokens_decoder").
struct AddedToken {
  std::string content;       // e.g. "<|im_start|>"
  int64_t id = -1;           // e.g. 151644
  bool special = false;      // skipped by decode()
  bool single_word = false;  // matched only when not touching a word character on either side
  bool lstrip = false;       // a match also takes the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // matched in the normalised text (no difference here: see normalizer above)
};

class BpeTokenizer {
 public:
  // True when `tokenizer_json` (a parsed tokenizer.json) is a BPE model with a ByteLevel pre-tokenizer:
  // what this class reads. Llama 2's converted tokenizer.json (Metaspace, byte_fallback) is not.
  static bool is_byte_level_bpe(const nlohmann::json& tokenizer_json);
  // `tokenizer_json` parsed from `file`; `file` names the source in errors.
  static BpeTokenizer from_tokenizer_json(const nlohmann::json& tokenizer_json, const std::string& file);
  // GPT-2's classic files; pre-tokenizer: ByteLevel with GPT-2's regex, no prefix space.
  static BpeTokenizer from_vocab_merges(const std::string& vocab_file, const std::string& merges_file);

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

  // Ids of `text` (valid UTF-8, else DataError), without any post-processor tokens (BOS/EOS).
  std::vector<int64_t> encode(const std::string& text) const;
  // Text of `ids`: special added tokens are skipped when `skip_special`; DataError for an id with no token.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const;

  // Registers an added token (matched whole in text before pre-tokenization). Its content may be a vocabulary
  // token (then the ids must agree) or new; an already added content just takes the new flags.
  void add_token(const AddedToken& token);
  // Makes the token with this id a special added token (bos/eos/pad of the tokenizer config), as
  // transformers does: matched whole in text, skipped by decode(). DataError when the id has no token.
  void mark_special(int64_t id);

  int64_t vocab_size() const;                           // 1 + the largest id of the vocabulary and added tokens
  int64_t token_to_id(const std::string& token) const;  // vocabulary form ("Ġhello") or added content; -1
  std::string id_to_token(int64_t id) const;            // "" when the id has no token
  // Special tokens the post-processor puts before / after every encoded text ("" when none), e.g.
  // Llama 3's TemplateProcessing: template_bos() == "<|begin_of_text|>".
  const std::string& template_bos() const;
  const std::string& template_eos() const;
  const std::string& path() const;  // the tokenizer.json, or the vocab.json

 private:
  BpeTokenizer();
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace gaft
