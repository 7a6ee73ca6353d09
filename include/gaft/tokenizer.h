// Tokenizer of a Hugging Face model folder, with two backends behind one interface:
//   SentencePiece  tokenizer.model (Llama 2, Mistral), through libsentencepiece (src/core/tokenizer.cpp)
//   byte-level BPE tokenizer.json (GPT-2, Llama 3, Qwen2) or vocab.json + merges.txt (GPT-2's classic files),
//                  ids as the `tokenizers` library gives them (gaft/bpe_tokenizer.h)
// A folder holding both tokenizer.json and tokenizer.model uses tokenizer.json, as Hugging Face's fast
// tokenizers do, except when that tokenizer.json is not byte-level (Llama 2's converted SentencePiece one):
// then tokenizer.model, and the log says so.
//
// Special tokens, each source overriding the one before:
//   1. the tokenizer itself: SentencePiece's <s> </s> <pad>; tokenizer.json's post-processor template
//      (Llama 3: <|begin_of_text|> as BOS); vocab.json + merges.txt: <|endoftext|> as BOS and EOS (GPT-2)
//   2. generation_config.json beside it: bos_token_id, eos_token_id (the first of a list), pad_token_id
//   3. special_tokens_map.json, then tokenizer_config.json: bos_token, eos_token, pad_token (text)
// add_bos / add_eos: tokenizer_config.json's add_bos_token / add_eos_token, else SentencePiece: BOS only;
// tokenizer.json: as its post-processor template; vocab.json + merges.txt: neither.
// For the BPE backend, bos/eos/pad become special tokens (matched whole in text, skipped by decode()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gaft {

class Tokenizer {
 public:
  // `path`: a tokenizer.model, a tokenizer.json, a vocab.json (merges.txt beside it), or a directory holding
  // one of them. DataError naming the path when missing or bad.
  static Tokenizer load(const std::string& path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text`, plus BOS/EOS when add_bos/add_eos. The BPE backend cuts added tokens such as
  // "<|im_end|>" out of the text first (Hugging Face semantics); SentencePiece encodes all text as text.
  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos = false) const;
  // As encode(), with BOS/EOS as the tokenizer config asks (Llama 2: BOS only; Qwen2: neither).
  std::vector<int64_t> encode(const std::string& text) const { return encode(text, add_bos_, add_eos_); }
  // Text of `ids`; special tokens (BOS, EOS, pad, <|im_end|>, ...) decode to nothing. DataError for an id
  // outside the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const;
  int64_t bos_id() const { return bos_id_; }  // -1 when the model has none
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }  // whether encode(text) puts BOS first
  int64_t token_to_id(const std::string& piece) const;  // -1 when unknown; BPE: "Ġhi" or "<|im_end|>"
  std::string id_to_piece(int64_t id) const;            // inverse of token_to_id; "" when the id has none
  // True for SentencePiece models that put "▁" before every text they encode (Llama 2: encode("hi") is
  // "▁hi"): a text that continues another after a space is then encoded without that space.
  bool adds_dummy_prefix() const { return dummy_prefix_; }
  const std::string& path() const { return path_; }

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  bool add_bos_ = true, add_eos_ = false;
  bool dummy_prefix_ = false;
};

}  // namespace gaft
