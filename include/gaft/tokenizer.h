// Tokenizer for SentencePiece models (tokenizer.model, e.g. Llama 2), through libsentencepiece.
//
// Special tokens come from tokenizer_config.json / special_tokens_map.json beside the model when present
// (bos_token, eos_token, pad_token, add_bos_token, add_eos_token), else from the SentencePiece model itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gaft {

class Tokenizer {
 public:
  // `path`: a tokenizer.model file, or a directory holding one. DataError naming the path when missing or bad.
  static Tokenizer load(const std::string& path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Plain SentencePiece ids of `text`, plus BOS/EOS when add_bos/add_eos.
  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos = false) const;
  // As encode(), with BOS/EOS as the tokenizer config asks (Llama: BOS only).
  std::vector<int64_t> encode(const std::string& text) const { return encode(text, add_bos_, add_eos_); }
  // Text of `ids`; control tokens (BOS, EOS, pad) decode to nothing.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const;
  int64_t bos_id() const { return bos_id_; }  // -1 when the model has none
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t token_to_id(const std::string& piece) const;  // -1 when unknown
  const std::string& path() const { return path_; }

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  bool add_bos_ = true, add_eos_ = false;
};

}  // namespace gaft
