// Tokenizer: finding the files, the SentencePiece backend, the special tokens of a Hugging Face model folder,
// and the dispatch to the byte-level BPE backend (src/core/bpe_tokenizer.cpp). See gaft/tokenizer.h.
#include "gaft/tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gaft/bpe_tokenizer.h"
#include "gaft/adapter_folder.h"
#include "gaft/error.h"
#include "gaft/read_file.h"
#include "gaft/log.h"

namespace fs = std::filesystem;

namespace gaft {

// Exactly one backend is set.
struct Tokenizer::Impl {
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp;  // tokenizer.model
  std::unique_ptr<BpeTokenizer> bpe;                          // tokenizer.json, vocab.json + merges.txt
  std::set<int64_t> sp_special;  // SentencePiece pieces tokenizer_config.json marks special (Gemma's <end_of_turn>)
};

namespace {

const char* const kWhatToPass =
    "pass a tokenizer.json (byte-level BPE), a SentencePiece tokenizer.model, GPT-2's vocab.json + merges.txt, "
    "or the model directory holding one";

// A JSON file beside the tokenizer, or null when absent.
nlohmann::json read_json_if_present(const fs::path& file) {
  if (!fs::exists(file)) return nullptr;
  return read_json_file(file.string(), "", kMaxTokenizerBytes);
}

// "<s>" or {"content": "<s>", ...}; empty when absent or null.
std::string token_text(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

enum class Format { kSentencePiece, kTokenizerJson, kVocabMerges };

struct Source {
  Format format;
  fs::path file;         // tokenizer.model, tokenizer.json or vocab.json
  fs::path merges;       // kVocabMerges: merges.txt
  nlohmann::json json;   // kTokenizerJson: the parsed file
};

// Which files `path` names, by the rules of gaft/tokenizer.h.
Source locate(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p)) {
    const fs::path tokenizer_json = p / "tokenizer.json", model = p / "tokenizer.model";
    const fs::path vocab = p / "vocab.json", merges = p / "merges.txt";
    if (fs::exists(tokenizer_json)) {
      nlohmann::json j = read_json_file(tokenizer_json.string(), "", kMaxTokenizerBytes);
      if (!BpeTokenizer::is_byte_level_bpe(j) && fs::exists(model)) {
        log::info(tokenizer_json.string() + " is not a byte-level BPE tokenizer; using the SentencePiece " +
                  model.string() + " beside it");
        return {Format::kSentencePiece, model, {}, nullptr};
      }
      return {Format::kTokenizerJson, tokenizer_json, {}, std::move(j)};
    }
    if (fs::exists(model)) return {Format::kSentencePiece, model, {}, nullptr};
    if (fs::exists(vocab) && fs::exists(merges)) return {Format::kVocabMerges, vocab, merges, nullptr};
    throw DataError("tokenizer not found: '" + p.string() +
                        "' holds no tokenizer.json, tokenizer.model, or vocab.json + merges.txt",
                    kWhatToPass);
  }
  if (!fs::exists(p)) throw DataError("tokenizer not found: '" + p.string() + "' does not exist", kWhatToPass);
  const std::string name = p.filename().string();
  if (name == "vocab.json" || name == "merges.txt") {
    const fs::path vocab = p.parent_path() / "vocab.json", merges = p.parent_path() / "merges.txt";
    for (const fs::path& f : {vocab, merges})
      if (!fs::exists(f))
        throw DataError(p.string() + ": GPT-2's vocab.json and merges.txt go together, and '" + f.string() +
                        "' does not exist");
    return {Format::kVocabMerges, vocab, merges, nullptr};
  }
  if (p.extension() == ".json") return {Format::kTokenizerJson, p, {}, read_json_file(p.string(), "", kMaxTokenizerBytes)};
  return {Format::kSentencePiece, p, {}, nullptr};
}

// tokenizer_config.json's "added_tokens_decoder" ({"50257": {"content": ..., "special": ...}}): the added
// tokens of a folder that has no tokenizer.json.
void add_config_tokens(const nlohmann::json& tc, const fs::path& file, BpeTokenizer* bpe) {
  if (!tc.is_object() || !tc.contains("added_tokens_decoder")) return;
  const auto& decoder = tc["added_tokens_decoder"];
  if (!decoder.is_object()) throw DataError(file.string() + ": added_tokens_decoder: expected an object");
  for (auto it = decoder.begin(); it != decoder.end(); ++it) {
    const auto& v = it.value();
    AddedToken t;
    try {
      t.id = std::stoll(it.key());
    } catch (const std::exception&) {
      throw DataError(file.string() + ": added_tokens_decoder: key \"" + it.key() + "\" is not a token id");
    }
    if (!v.is_object() || !v.contains("content") || !v["content"].is_string())
      throw DataError(file.string() + ": added_tokens_decoder[\"" + it.key() + "\"]: expected {\"content\": ...}");
    t.content = v["content"].get<std::string>();
    t.special = v.value("special", false);
    t.single_word = v.value("single_word", false);
    t.lstrip = v.value("lstrip", false);
    t.rstrip = v.value("rstrip", false);
    t.normalized = v.value("normalized", !t.special);
    bpe->add_token(t);
  }
}

// Whether this SentencePiece model puts "▁" before every text (normalizer_spec.add_dummy_prefix).
bool sentencepiece_adds_dummy_prefix(const sentencepiece::SentencePieceProcessor& sp) {
  std::vector<std::string> pieces;
  if (!sp.Encode("a", &pieces).ok() || pieces.empty()) return false;
  return pieces.front().rfind("\xE2\x96\x81", 0) == 0;
}

}  // namespace

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

// A function try block: any value of the wrong type or shape that the JSON library meets in tokenizer.json,
// tokenizer_config.json or vocab.json (e.g. "type": [1] where a string belongs) is a DataError naming the files.
Tokenizer Tokenizer::load(const std::string& path_arg) try {
  const std::string path = fs::is_directory(path_arg) ? tokenizer_dir_of(path_arg) : path_arg;  // adapter: its base's
  Source src = locate(path);
  Tokenizer t;
  t.path_ = src.file.string();
  const fs::path dir = src.file.parent_path();
  const nlohmann::json tc = read_json_if_present(dir / "tokenizer_config.json");

  // 1. The backend, and the special tokens it knows itself.
  if (src.format == Format::kSentencePiece) {
    t.impl_->sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    check_regular_file(t.path_, kMaxTokenizerBytes, kWhatToPass);  // a FIFO would block sentencepiece's read
    const auto status = t.impl_->sp->Load(t.path_);
    if (!status.ok()) throw DataError(t.path_ + ": not a SentencePiece model: " + status.ToString(), kWhatToPass);
    t.bos_id_ = t.impl_->sp->bos_id();
    t.eos_id_ = t.impl_->sp->eos_id();
    t.pad_id_ = t.impl_->sp->pad_id();
    t.add_bos_ = true;  // Llama's convention
    t.dummy_prefix_ = sentencepiece_adds_dummy_prefix(*t.impl_->sp);
  } else if (src.format == Format::kTokenizerJson) {
    t.impl_->bpe = std::make_unique<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(src.json, t.path_));
    const BpeTokenizer& bpe = *t.impl_->bpe;
    if (!bpe.template_bos().empty()) t.bos_id_ = bpe.token_to_id(bpe.template_bos());
    if (!bpe.template_eos().empty()) t.eos_id_ = bpe.token_to_id(bpe.template_eos());
    t.add_bos_ = t.bos_id_ >= 0;
    t.add_eos_ = t.eos_id_ >= 0;
  } else {
    t.impl_->bpe = std::make_unique<BpeTokenizer>(BpeTokenizer::from_vocab_merges(t.path_, src.merges.string()));
    add_config_tokens(tc, dir / "tokenizer_config.json", t.impl_->bpe.get());
    t.bos_id_ = t.eos_id_ = t.impl_->bpe->token_to_id("<|endoftext|>");  // GPT-2's defaults
    t.add_bos_ = false;
  }

  // 2. generation_config.json: ids.
  const fs::path gc_file = dir / "generation_config.json";
  const nlohmann::json gc = read_json_if_present(gc_file);
  const auto resolve_id = [&](const char* key, int64_t* id) {
    if (!gc.is_object() || !gc.contains(key) || gc[key].is_null()) return;
    nlohmann::json v = gc[key];
    if (v.is_array() && !v.empty()) v = v[0];  // e.g. Llama 3 Instruct's eos_token_id [128001, 128009]
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= t.vocab_size())
      throw DataError(gc_file.string() + ": " + key + " " + gc[key].dump() + " is not a token id of " + t.path_ +
                      " (vocabulary of " + std::to_string(t.vocab_size()) + ")");
    *id = v.get<int64_t>();
  };
  resolve_id("bos_token_id", &t.bos_id_);
  resolve_id("eos_token_id", &t.eos_id_);
  resolve_id("pad_token_id", &t.pad_id_);

  // 3. special_tokens_map.json, then tokenizer_config.json: texts.
  const nlohmann::json sm = read_json_if_present(dir / "special_tokens_map.json");
  const auto resolve = [&](const char* key, int64_t* id) {
    std::string text = token_text(tc, key);
    if (text.empty()) text = token_text(sm, key);
    if (text.empty()) return;
    const int64_t found = t.token_to_id(text);
    if (found < 0)
      throw DataError(dir.string() + ": " + key + " \"" + text + "\" is not a piece of " + t.path_);
    *id = found;
  };
  resolve("bos_token", &t.bos_id_);
  resolve("eos_token", &t.eos_id_);
  resolve("pad_token", &t.pad_id_);
  if (tc.is_object()) {
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) t.add_bos_ = tc["add_bos_token"].get<bool>();
    if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) t.add_eos_ = tc["add_eos_token"].get<bool>();
  }
  if (t.bos_id_ < 0) t.add_bos_ = false;
  if (t.eos_id_ < 0) t.add_eos_ = false;
  if (t.impl_->bpe)
    for (int64_t id : {t.bos_id_, t.eos_id_, t.pad_id_})
      if (id >= 0) t.impl_->bpe->mark_special(id);
  // SentencePiece: user-defined pieces that tokenizer_config.json's added_tokens_decoder marks special decode to
  // nothing, as transformers' decode(skip_special_tokens=True) (control pieces such as BOS already do).
  if (t.impl_->sp && tc.is_object() && tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object())
    for (const auto& [key, v] : tc["added_tokens_decoder"].items())
      if (v.is_object() && v.value("special", false) && v.contains("content") && v["content"].is_string()) {
        const int64_t id = t.token_to_id(v["content"].get<std::string>());
        if (id < 0 || std::to_string(id) != key)
          throw DataError((dir / "tokenizer_config.json").string() + ": added_tokens_decoder[\"" + key + "\"] " +
                          v["content"].dump() + " is not that piece of " + t.path_);
        t.impl_->sp_special.insert(id);
      }
  return t;
} catch (const nlohmann::json::exception& e) {
  throw DataError("tokenizer files in '" + path_arg + "': a value of the wrong type or shape: " + e.what(), kWhatToPass);
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  std::vector<int64_t> out;
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  if (impl_->bpe) {
    const std::vector<int64_t> ids = impl_->bpe->encode(text);
    out.insert(out.end(), ids.begin(), ids.end());
  } else {
    std::vector<int> ids;
    const auto status = impl_->sp->Encode(text, &ids);
    if (!status.ok()) throw DataError(path_ + ": cannot encode text: " + status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (add_eos && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const int64_t n = vocab_size();
  for (int64_t id : ids)
    if (id < 0 || id >= n)
      throw DataError(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(n));
  if (impl_->bpe) return impl_->bpe->decode(ids, /*skip_special=*/true);
  std::vector<int> v;
  for (int64_t id : ids)
    if (!impl_->sp_special.count(id)) v.push_back(static_cast<int>(id));
  std::string text;
  const auto status = impl_->sp->Decode(v, &text);
  if (!status.ok()) throw DataError(path_ + ": cannot decode ids: " + status.ToString());
  return text;
}

int64_t Tokenizer::vocab_size() const { return impl_->bpe ? impl_->bpe->vocab_size() : impl_->sp->GetPieceSize(); }

int64_t Tokenizer::token_to_id(const std::string& piece) const {
  if (impl_->bpe) return impl_->bpe->token_to_id(piece);
  const int id = impl_->sp->PieceToId(piece);
  // PieceToId answers unk_id for unknown pieces; only the unk piece itself may map there.
  if (id == impl_->sp->unk_id() && impl_->sp->IdToPiece(id) != piece) return -1;
  return id;
}

std::string Tokenizer::id_to_piece(int64_t id) const {
  if (impl_->bpe) return impl_->bpe->id_to_token(id);
  if (id < 0 || id >= vocab_size()) return "";
  return impl_->sp->IdToPiece(static_cast<int>(id));
}

}  // namespace gaft
