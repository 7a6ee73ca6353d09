// SentencePiece tokenizer with the special tokens of a Hugging Face tokenizer_config.json. See gaft/tokenizer.h.
#include "gaft/tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gaft/error.h"

namespace fs = std::filesystem;

namespace gaft {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

// A JSON file beside the tokenizer, or null when absent.
nlohmann::json read_json_if_present(const fs::path& file) {
  if (!fs::exists(file)) return nullptr;
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw DataError(file.string() + ": not valid JSON: " + e.what());
  }
}

// "<s>" or {"content": "<s>", ...}; empty when absent or null.
std::string token_text(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  fs::path file(path);
  if (fs::is_directory(file)) file /= "tokenizer.model";
  if (!fs::exists(file)) {
    const bool has_json = fs::exists(file.parent_path() / "tokenizer.json");
    throw DataError("tokenizer not found: '" + file.string() + "' does not exist",
                    has_json ? "only tokenizer.json is there; gaft reads SentencePiece tokenizer.model files"
                             : "pass a SentencePiece tokenizer.model or the model directory holding one");
  }
  Tokenizer t;
  t.path_ = file.string();
  const auto status = t.impl_->sp.Load(t.path_);
  if (!status.ok()) throw DataError(t.path_ + ": not a SentencePiece model: " + status.ToString());
  t.bos_id_ = t.impl_->sp.bos_id();
  t.eos_id_ = t.impl_->sp.eos_id();
  t.pad_id_ = t.impl_->sp.pad_id();

  const fs::path dir = file.parent_path();
  const nlohmann::json tc = read_json_if_present(dir / "tokenizer_config.json");
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
  return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(text, &ids);
  if (!status.ok()) throw DataError(path_ + ": cannot encode text: " + status.ToString());
  std::vector<int64_t> out;
  out.reserve(ids.size() + 2);
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_eos && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  const int64_t n = vocab_size();
  for (int64_t id : ids) {
    if (id < 0 || id >= n) throw DataError(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                                           std::to_string(n));
    v.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = impl_->sp.Decode(v, &text);
  if (!status.ok()) throw DataError(path_ + ": cannot decode ids: " + status.ToString());
  return text;
}

int64_t Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

int64_t Tokenizer::token_to_id(const std::string& piece) const {
  const int id = impl_->sp.PieceToId(piece);
  // PieceToId answers unk_id for unknown pieces; only the unk piece itself may map there.
  if (id == impl_->sp.unk_id() && impl_->sp.IdToPiece(id) != piece) return -1;
  return id;
}

}  // namespace gaft
