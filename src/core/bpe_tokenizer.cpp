// Byte-level BPE in the Hugging Face format, the semantics of the `tokenizers` library. See gaft/bpe_tokenizer.h.
#include "gaft/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "gaft/error.h"
#include "gaft/read_file.h"
#include "gaft/regex.h"
#include "gaft/log.h"
#include "gaft/utf8.h"

namespace gaft {

namespace {

// Token ids index a table of the vocabulary's size: an id this large in a file is corruption (the largest
// published vocabularies have about 256k tokens), not a reason to allocate gigabytes.
constexpr int64_t kMaxTokenId = int64_t{1} << 24;


using nlohmann::json;

// GPT-2's pre-tokenizer pattern: ByteLevel's when use_regex is on, and the default of vocab.json + merges.txt.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const char* const kSupportedHint =
    "gaft reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2: tokenizer.json, or vocab.json + merges.txt) "
    "and SentencePiece tokenizer.model files";

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw DataError(file + ": " + what, kSupportedHint);
}

// ---------------------------------------------------------------------------------------------------
// GPT-2's byte <-> character table: printable bytes stand for themselves, the other 68 bytes for U+0100..U+0143
// (so the space 0x20 is "Ġ" U+0120 and the newline 0x0A is "Ċ" U+010A).
// ---------------------------------------------------------------------------------------------------
struct ByteTable {
  std::array<std::string, 256> byte_to_char;  // UTF-8 of the character of each byte
  std::array<int16_t, 0x144> char_to_byte;    // byte of each character code point, -1 for none

  ByteTable() {
    char_to_byte.fill(-1);
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : 256 + extra++;
      utf8::append(&byte_to_char[b], cp);
      char_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

// ---------------------------------------------------------------------------------------------------
// Pre-tokenizer patterns (gaft/regex.h): UTF + UCP, JIT-compiled, or a literal string.
// ---------------------------------------------------------------------------------------------------
std::shared_ptr<const Regex> compile_pattern(const std::string& text, bool literal, const std::string& file) {
  Regex::Options o;
  o.literal = literal;
  o.ucp = !literal;
  o.jit = true;
  return std::make_shared<const Regex>(text, o, file + ": pre-tokenizer pattern");
}

// Splits `piece` (valid UTF-8) into its matches and the gaps between them, in order, dropping empty ones:
// the "Isolated" behaviour of Hugging Face's Split. e.g. GPT-2's pattern: "Hi  you" -> "Hi", " ", " you".
void split(const Regex& regex, const std::string& piece, std::vector<std::string>* out) {
  size_t emitted = 0;
  regex.for_each_match(piece, /*valid_utf8=*/true, [&](const Regex::Match& m) {
    if (m.begin > emitted) out->push_back(piece.substr(emitted, m.begin - emitted));
    out->push_back(piece.substr(m.begin, m.end - m.begin));
    emitted = m.end;
  });
  if (emitted < piece.size()) out->push_back(piece.substr(emitted));
}

// Whether `regex` matches the code point at text[pos] (valid UTF-8) alone.
bool matches_char(const Regex& regex, const std::string& text, size_t pos) {
  size_t end = pos;
  utf8::next(text, &end);
  return regex.find(std::string_view(text).substr(pos, end - pos), 0, /*anchored=*/true, /*valid_utf8=*/true)
      .has_value();
}

// One step of the pre-tokenizer: a split by a pattern, or the final ByteLevel step.
struct PreTokenizerStep {
  std::shared_ptr<const Regex> regex;  // Split / Digits / ByteLevel with use_regex; null for ByteLevel without
  bool byte_level = false;
  bool add_prefix_space = false;  // ByteLevel: " " before every piece that does not start with one
};

// ---------------------------------------------------------------------------------------------------
// tokenizer.json fields
// ---------------------------------------------------------------------------------------------------
const json& field(const json& obj, const char* key, const std::string& file, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) fail(file, where + ": missing \"" + key + "\"");
  return obj[key];
}

std::string string_field(const json& obj, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(obj, key, file, where);
  if (!v.is_string()) fail(file, where + "." + key + ": expected a string, got " + v.type_name());
  return v.get<std::string>();
}

bool bool_field(const json& obj, const char* key, bool fallback, const std::string& file, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) fail(file, where + "." + key + ": expected true or false, got " + obj[key].dump());
  return obj[key].get<bool>();
}

bool mentions_byte_level(const json& pre) {
  if (!pre.is_object()) return false;
  if (pre.contains("type") && pre["type"] == "ByteLevel") return true;
  if (pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const json& p : pre["pretokenizers"])
      if (mentions_byte_level(p)) return true;
  return false;
}

// Appends the steps of tokenizer.json's "pre_tokenizer" (flattening Sequences).
void parse_pre_tokenizer(const json& pre, const std::string& file, const std::string& where,
                         std::vector<PreTokenizerStep>* steps) {
  const std::string type = string_field(pre, "type", file, where);
  if (type == "Sequence") {
    const json& list = field(pre, "pretokenizers", file, where);
    if (!list.is_array()) fail(file, where + ".pretokenizers: expected a list");
    for (size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(list[i], file, where + ".pretokenizers[" + std::to_string(i) + "]", steps);
  } else if (type == "ByteLevel") {
    PreTokenizerStep s;
    s.byte_level = true;
    s.add_prefix_space = bool_field(pre, "add_prefix_space", true, file, where);
    if (bool_field(pre, "use_regex", true, file, where)) s.regex = compile_pattern(kGpt2Pattern, false, file);
    steps->push_back(std::move(s));
  } else if (type == "Split") {
    const json& pattern = field(pre, "pattern", file, where);
    PreTokenizerStep s;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
      s.regex = compile_pattern(pattern["Regex"].get<std::string>(), false, file);
    else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
      s.regex = compile_pattern(pattern["String"].get<std::string>(), true, file);
    else
      fail(file, where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}, got " + pattern.dump());
    const std::string behavior = pre.value("behavior", "");
    if (behavior != "Isolated")
      fail(file, where + ".behavior: \"" + behavior + "\" is not supported; expected \"Isolated\"");
    if (bool_field(pre, "invert", false, file, where)) fail(file, where + ".invert: true is not supported");
    steps->push_back(std::move(s));
  } else if (type == "Digits") {
    PreTokenizerStep s;
    const bool individual = bool_field(pre, "individual_digits", false, file, where);
    s.regex = compile_pattern(individual ? R"(\p{N})" : R"(\p{N}+)", false, file);
    steps->push_back(std::move(s));
  } else {
    fail(file, where + ": pre-tokenizer type \"" + type + "\" is not supported; expected ByteLevel, Split, Digits " +
                   "or a Sequence of them");
  }
}

// The special tokens a post-processor puts around a single text: {before, after} ("" when none).
void parse_post_processor(const json& post, const std::string& file, const std::string& where, std::string* bos,
                          std::string* eos) {
  if (post.is_null()) return;
  const std::string type = string_field(post, "type", file, where);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json& list = field(post, "processors", file, where);
    if (!list.is_array()) fail(file, where + ".processors: expected a list");
    for (size_t i = 0; i < list.size(); ++i)
      parse_post_processor(list[i], file, where + ".processors[" + std::to_string(i) + "]", bos, eos);
    return;
  }
  if (type != "TemplateProcessing")
    fail(file, where + ": post-processor type \"" + type +
                   "\" is not supported; expected TemplateProcessing, ByteLevel or a Sequence of them");
  const json& single = field(post, "single", file, where);
  if (!single.is_array()) fail(file, where + ".single: expected a list");
  const json& specials = post.value("special_tokens", json::object());
  // {"SpecialToken": {"id": "<|begin_of_text|>", ...}} -> the one token it stands for.
  const auto content = [&](const json& item) -> std::string {
    if (!item.is_object() || !item.contains("SpecialToken")) return "";
    const std::string key = string_field(item["SpecialToken"], "id", file, where + ".single");
    if (!specials.contains(key)) return key;
    const json& tokens = specials[key].value("tokens", json::array());
    if (!tokens.is_array() || tokens.size() != 1 || !tokens[0].is_string())
      fail(file, where + ".special_tokens." + key + ": expected exactly one token");
    return tokens[0].get<std::string>();
  };
  *bos = single.empty() ? "" : content(single.front());
  *eos = single.size() < 2 ? "" : content(single.back());
}

uint64_t pair_key(int64_t left, int64_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------
struct BpeTokenizer::State {
  std::string path;
  std::unordered_map<std::string, int64_t> vocab;  // "Ġhello" -> 23748
  std::vector<std::string> tokens;                 // id -> vocabulary form ("" for ids without one)
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  std::unordered_map<uint64_t, Merge> merges;  // pair_key(left id, right id) -> rank and merged id
  bool ignore_merges = false;                  // a whole word found in the vocabulary is not merged
  int64_t unk_id = -1;
  bool fuse_unk = false;
  std::vector<PreTokenizerStep> steps;
  std::string template_bos, template_eos;

  // Added tokens; matching tables by group (0: normalized false, matched first; 1: normalized true).
  std::vector<AddedToken> added;
  std::unordered_map<std::string, size_t> added_by_content;
  std::unordered_map<int64_t, size_t> added_by_id;
  std::array<std::array<std::vector<size_t>, 256>, 2> by_first_byte;  // indices, longest first
  std::shared_ptr<const Regex> word_char;                             // \w, for single_word tokens

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // piece bytes -> ids
  static constexpr size_t kCacheEntries = 50000, kCacheMaxPieceBytes = 256;

  void set_token(int64_t id, const std::string& token, const std::string& where) {
    if (id < 0 || id >= kMaxTokenId)
      fail(path, where + ": id " + std::to_string(id) + " is out of range (expected 0 to " + std::to_string(kMaxTokenId - 1) + ")");
    if (static_cast<size_t>(id) >= tokens.size()) tokens.resize(id + 1);
    if (!tokens[id].empty() && tokens[id] != token)
      fail(path, where + ": id " + std::to_string(id) + " is given to both \"" + tokens[id] + "\" and \"" + token +
                     "\"");
    tokens[id] = token;
  }

  // `file`: where the merge comes from (tokenizer.json or merges.txt), for errors.
  void add_merge(const std::string& left, const std::string& right, size_t rank, const std::string& file,
                 const std::string& where) {
    const auto l = vocab.find(left), r = vocab.find(right), m = vocab.find(left + right);
    if (l == vocab.end() || r == vocab.end() || m == vocab.end())
      fail(file, where + ": merge \"" + left + " " + right + "\" uses a token that is not in the vocabulary (\"" +
                     (l == vocab.end() ? left : r == vocab.end() ? right : left + right) + "\")");
    // A repeated pair takes its last rank, as in the tokenizers library (and GPT-2's dict of ranks).
    merges[pair_key(l->second, r->second)] = Merge{static_cast<int32_t>(rank), static_cast<int32_t>(m->second)};
  }

  void rebuild_added_index() {
    for (auto& group : by_first_byte)
      for (auto& list : group) list.clear();
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string& c = added[i].content;
      by_first_byte[added[i].normalized ? 1 : 0][static_cast<uint8_t>(c[0])].push_back(i);
    }
    for (auto& group : by_first_byte)
      for (auto& list : group)
        std::stable_sort(list.begin(), list.end(),
                         [&](size_t a, size_t b) { return added[a].content.size() > added[b].content.size(); });
  }

  struct Piece {
    size_t begin, end;
    int64_t added_id;  // -1: text to pre-tokenize
  };

  // Cuts the added tokens of `group` out of the text pieces (Hugging Face's AddedVocabulary::find_matches).
  void split_added(const std::string& text, int group, std::vector<Piece>* pieces) const {
    std::vector<Piece> out;
    for (const Piece& p : *pieces) {
      if (p.added_id >= 0) {
        out.push_back(p);
        continue;
      }
      size_t start_offset = p.begin;
      size_t i = p.begin;
      while (i < p.end) {
        const AddedToken* match = nullptr;
        for (size_t idx : by_first_byte[group][static_cast<uint8_t>(text[i])]) {
          const std::string& c = added[idx].content;
          if (c.size() <= p.end - i && text.compare(i, c.size(), c) == 0) {
            match = &added[idx];
            break;
          }
        }
        if (match == nullptr) {
          ++i;
          continue;
        }
        size_t start = i, stop = i + match->content.size();
        i = stop;
        if (start < start_offset) continue;  // inside the whitespace an rstrip took
        if (match->single_word) {
          const bool word_before = start > p.begin && matches_char(*word_char, text, char_start(text, start));
          const bool word_after = stop < p.end && matches_char(*word_char, text, stop);
          if (word_before || word_after) continue;
        }
        if (match->lstrip)
          while (start > start_offset) {
            size_t prev = char_start(text, start), at = prev;
            if (!utf8::is_white_space(utf8::next(text, &at))) break;
            start = prev;
          }
        if (match->rstrip)
          while (stop < p.end) {
            size_t at = stop;
            if (!utf8::is_white_space(utf8::next(text, &at))) break;
            stop = at;
          }
        if (start > start_offset) out.push_back({start_offset, start, -1});
        out.push_back({start, stop, match->id});
        start_offset = i = stop;
      }
      if (start_offset < p.end) out.push_back({start_offset, p.end, -1});
    }
    *pieces = std::move(out);
  }

  // Start of the character that ends just before byte `pos`.
  static size_t char_start(const std::string& text, size_t pos) {
    size_t at = pos - 1;
    while (at > 0 && (static_cast<uint8_t>(text[at]) & 0xC0) == 0x80) --at;
    return at;
  }

  // BPE of one pre-tokenized piece (raw bytes), appended to `out`.
  void bpe(const std::string& piece, std::vector<int64_t>* out) const {
    if (piece.size() <= kCacheMaxPieceBytes) {
      std::lock_guard<std::mutex> lock(cache_mutex);
      const auto hit = cache.find(piece);
      if (hit != cache.end()) {
        out->insert(out->end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
    const ByteTable& table = byte_table();
    std::string word;  // the piece in GPT-2's characters
    for (char c : piece) word += table.byte_to_char[static_cast<uint8_t>(c)];

    std::vector<int64_t> ids;
    const auto whole = ignore_merges ? vocab.find(word) : vocab.end();
    if (whole != vocab.end()) {
      ids.push_back(whole->second);
    } else {
      // Symbols: one per character, linked so that merges remove the right one in O(1).
      struct Symbol {
        int64_t id;
        int prev, next;
        bool alive;
      };
      std::vector<Symbol> symbols;
      size_t pos = 0;
      bool last_unk = false;
      while (pos < word.size()) {
        const size_t at = pos;
        utf8::next(word, &pos);
        const auto found = vocab.find(word.substr(at, pos - at));
        if (found == vocab.end() && unk_id < 0) continue;  // dropped, as the tokenizers library does
        if (found == vocab.end() && fuse_unk && last_unk) continue;
        last_unk = found == vocab.end();
        const int n = static_cast<int>(symbols.size());
        symbols.push_back({last_unk ? unk_id : found->second, n - 1, n + 1, true});
      }
      if (!symbols.empty()) symbols.back().next = -1;

      struct Candidate {
        int32_t rank, pos, new_id;
        bool operator<(const Candidate& o) const {  // priority_queue pops the lowest rank, then leftmost
          return rank != o.rank ? rank > o.rank : pos > o.pos;
        }
      };
      std::priority_queue<Candidate> queue;
      const auto push_pair = [&](int left) {
        if (left < 0 || symbols[left].next < 0) return;
        const auto m = merges.find(pair_key(symbols[left].id, symbols[symbols[left].next].id));
        if (m != merges.end()) queue.push({m->second.rank, left, m->second.new_id});
      };
      for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) push_pair(i);
      while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[top.pos];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = symbols[left.next];
        const auto m = merges.find(pair_key(left.id, right.id));
        if (m == merges.end() || m->second.new_id != top.new_id) continue;  // stale: a neighbour merged first
        left.id = top.new_id;
        right.alive = false;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = top.pos;
        push_pair(left.prev);
        push_pair(top.pos);
      }
      for (const Symbol& s : symbols)
        if (s.alive) ids.push_back(s.id);
    }
    out->insert(out->end(), ids.begin(), ids.end());
    if (piece.size() <= kCacheMaxPieceBytes) {
      std::lock_guard<std::mutex> lock(cache_mutex);
      if (cache.size() >= kCacheEntries) cache.clear();
      cache.emplace(piece, std::move(ids));
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------
BpeTokenizer::BpeTokenizer() : s_(std::make_unique<State>()) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

bool BpeTokenizer::is_byte_level_bpe(const json& j) {
  return j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].contains("type") &&
         j["model"]["type"] == "BPE" &&
         j.contains("pre_tokenizer") && mentions_byte_level(j["pre_tokenizer"]);
}

// A function try block: a value of the wrong type or shape where the checks below do not look (e.g. "type": [1]
// where a string belongs) is a DataError naming the file, not an escaped JSON exception.
BpeTokenizer BpeTokenizer::from_tokenizer_json(const json& j, const std::string& file) try {
  BpeTokenizer t;
  State& s = *t.s_;
  s.path = file;
  s.word_char = compile_pattern(R"(\w)", false, file);
  if (!j.is_object()) fail(file, std::string("expected a JSON object, got ") + j.type_name());

  // model
  const json& model = field(j, "model", file, "tokenizer.json");
  const std::string type = model.is_object() ? model.value("type", "") : "";
  if (type != "BPE") fail(file, "model.type is \"" + type + "\"; expected \"BPE\"");
  const json pre = j.value("pre_tokenizer", json());
  if (!mentions_byte_level(pre))
    fail(file, "pre_tokenizer " + (pre.is_object() ? "type \"" + pre.value("type", "") + "\"" : pre.dump()) +
                   " has no ByteLevel step; expected a byte-level BPE (GPT-2, Llama 3, Qwen2)");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
    fail(file, "model.dropout: BPE dropout is not supported (expected null)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null() && model[key] != "")
      fail(file, std::string("model.") + key + ": not supported by a byte-level BPE (expected null)");
  if (bool_field(model, "byte_fallback", false, file, "model"))
    fail(file, "model.byte_fallback is true: that is a SentencePiece-style BPE; expected a byte-level one");
  s.ignore_merges = bool_field(model, "ignore_merges", false, file, "model");
  s.fuse_unk = bool_field(model, "fuse_unk", false, file, "model");

  const json& vocab = field(model, "vocab", file, "model");
  if (!vocab.is_object()) fail(file, "model.vocab: expected an object of token -> id");
  s.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) fail(file, "model.vocab[\"" + it.key() + "\"]: expected an integer id");
    const int64_t id = it.value().get<int64_t>();
    s.set_token(id, it.key(), "model.vocab[\"" + it.key() + "\"]");
    s.vocab.emplace(it.key(), id);
  }
  const json& merges = field(model, "merges", file, "model");
  if (!merges.is_array()) fail(file, "model.merges: expected a list");
  s.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      const size_t space = line.find(' ');
      if (space == std::string::npos) fail(file, where + ": expected \"left right\", got \"" + line + "\"");
      s.add_merge(line.substr(0, space), line.substr(space + 1), i, file, where);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      s.add_merge(m[0].get<std::string>(), m[1].get<std::string>(), i, file, where);
    } else {
      fail(file, where + ": expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
    }
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto unk = s.vocab.find(model["unk_token"].get<std::string>());
    if (unk == s.vocab.end()) fail(file, "model.unk_token \"" + model["unk_token"].get<std::string>() +
                                             "\" is not in the vocabulary");
    s.unk_id = unk->second;
  }

  // normalizer
  const json normalizer = j.value("normalizer", json());
  if (!normalizer.is_null()) {
    const std::string ntype = normalizer.value("type", "");
    const bool empty_sequence = ntype == "Sequence" && normalizer.value("normalizers", json::array()).empty();
    if (ntype == "NFC")
      log::warn(file + ": normalizer NFC is not applied; text already in NFC (nearly all text) tokenizes as in "
                       "Hugging Face, decomposed accents may not");
    else if (!empty_sequence)
      fail(file, "normalizer type \"" + ntype + "\" is not supported; expected null or NFC");
  }

  // pre_tokenizer: splits, then one ByteLevel last
  parse_pre_tokenizer(pre, file, "pre_tokenizer", &s.steps);
  const auto byte_levels = std::count_if(s.steps.begin(), s.steps.end(), [](const auto& st) { return st.byte_level; });
  if (byte_levels != 1 || !s.steps.back().byte_level)
    fail(file, "pre_tokenizer: expected exactly one ByteLevel, as the last step");

  // decoder
  const json decoder = j.value("decoder", json());
  if (!decoder.is_null()) {
    const std::string dtype = decoder.value("type", "");
    bool ok = dtype == "ByteLevel";
    if (dtype == "Sequence") {
      const json list = decoder.value("decoders", json::array());
      ok = list.size() == 1 && list[0].value("type", "") == "ByteLevel";
    }
    if (!ok) fail(file, "decoder type \"" + dtype + "\" is not supported; expected ByteLevel");
  }

  // post_processor
  parse_post_processor(j.value("post_processor", json()), file, "post_processor", &s.template_bos,
                       &s.template_eos);

  // added_tokens
  const json added = j.value("added_tokens", json::array());
  if (!added.is_array()) fail(file, "added_tokens: expected a list");
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    AddedToken tok;
    tok.content = string_field(a, "content", file, where);
    const json& id = field(a, "id", file, where);
    if (!id.is_number_integer()) fail(file, where + ".id: expected an integer");
    tok.id = id.get<int64_t>();
    tok.special = bool_field(a, "special", false, file, where);
    tok.single_word = bool_field(a, "single_word", false, file, where);
    tok.lstrip = bool_field(a, "lstrip", false, file, where);
    tok.rstrip = bool_field(a, "rstrip", false, file, where);
    tok.normalized = bool_field(a, "normalized", !tok.special, file, where);
    t.add_token(tok);
  }
  for (const std::string* name : {&s.template_bos, &s.template_eos})
    if (!name->empty() && t.token_to_id(*name) < 0)
      fail(file, "post_processor: special token \"" + *name + "\" is neither an added token nor in the vocabulary");
  return t;
} catch (const json::exception& e) {
  throw DataError(file + ": a value of the wrong type or shape: " + e.what());
}

BpeTokenizer BpeTokenizer::from_vocab_merges(const std::string& vocab_file, const std::string& merges_file) {
  BpeTokenizer t;
  State& s = *t.s_;
  s.path = vocab_file;
  s.word_char = compile_pattern(R"(\w)", false, vocab_file);
  const json vocab = read_json_file(vocab_file, "", kMaxTokenizerBytes);
  if (!vocab.is_object()) fail(vocab_file, "expected an object of token -> id");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) fail(vocab_file, "\"" + it.key() + "\": expected an integer id");
    s.set_token(it.value().get<int64_t>(), it.key(), "\"" + it.key() + "\"");
    s.vocab.emplace(it.key(), it.value().get<int64_t>());
  }

  std::istringstream lines(read_text_file(merges_file, "", kMaxTokenizerBytes));
  std::string line;
  size_t rank = 0, line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    const std::string where = "line " + std::to_string(line_no);
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      fail(merges_file, where + ": expected \"left right\", got \"" + line + "\"");
    s.add_merge(line.substr(0, space), line.substr(space + 1), rank++, merges_file, where);
  }
  PreTokenizerStep byte_level;
  byte_level.byte_level = true;
  byte_level.regex = compile_pattern(kGpt2Pattern, false, vocab_file);
  s.steps.push_back(std::move(byte_level));
  return t;
}

// ---------------------------------------------------------------------------------------------------
// Added tokens
// ---------------------------------------------------------------------------------------------------
void BpeTokenizer::add_token(const AddedToken& token) {
  State& s = *s_;
  if (token.content.empty()) fail(s.path, "added token " + std::to_string(token.id) + " has empty content");
  const auto known = s.added_by_content.find(token.content);
  if (known != s.added_by_content.end()) {
    AddedToken& old = s.added[known->second];
    if (old.id != token.id)
      fail(s.path, "added token \"" + token.content + "\" has ids " + std::to_string(old.id) + " and " +
                       std::to_string(token.id));
    old = token;
  } else {
    const auto in_vocab = s.vocab.find(token.content);
    if (in_vocab != s.vocab.end() && in_vocab->second != token.id)
      fail(s.path, "added token \"" + token.content + "\" has id " + std::to_string(token.id) +
                       " but the vocabulary gives it " + std::to_string(in_vocab->second));
    if (token.id < 0 || token.id >= kMaxTokenId)
      fail(s.path, "added token \"" + token.content + "\": id " + std::to_string(token.id) + " is out of range (expected 0 to " +
                       std::to_string(kMaxTokenId - 1) + ")");
    if (static_cast<size_t>(token.id) >= s.tokens.size()) s.tokens.resize(token.id + 1);
    s.added_by_content.emplace(token.content, s.added.size());
    s.added_by_id[token.id] = s.added.size();
    s.added.push_back(token);
  }
  s.rebuild_added_index();
}

void BpeTokenizer::mark_special(int64_t id) {
  State& s = *s_;
  const auto known = s.added_by_id.find(id);
  if (known != s.added_by_id.end()) {
    s.added[known->second].special = true;
    return;
  }
  const std::string token = id_to_token(id);
  if (token.empty()) fail(s.path, "special token id " + std::to_string(id) + " has no token");
  AddedToken t;
  t.content = token;
  t.id = id;
  t.special = true;
  add_token(t);
}

// ---------------------------------------------------------------------------------------------------
// Encode / decode
// ---------------------------------------------------------------------------------------------------
std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  const State& s = *s_;
  const size_t bad = utf8::first_invalid(text);
  if (bad != std::string::npos)
    throw DataError(s.path + ": cannot encode a text that is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                    std::to_string(text.size()) + ")");
  std::vector<State::Piece> pieces{{0, text.size(), -1}};
  if (!s.added.empty()) {
    s.split_added(text, 0, &pieces);
    s.split_added(text, 1, &pieces);
  }
  std::vector<int64_t> ids;
  std::vector<std::string> words, next;
  for (const State::Piece& p : pieces) {
    if (p.added_id >= 0) {
      ids.push_back(p.added_id);
      continue;
    }
    words.assign(1, text.substr(p.begin, p.end - p.begin));
    for (const PreTokenizerStep& step : s.steps) {
      next.clear();
      for (std::string& w : words) {
        if (step.add_prefix_space && w.rfind(' ', 0) != 0) w.insert(0, " ");
        if (step.regex)
          split(*step.regex, w, &next);
        else
          next.push_back(std::move(w));
      }
      words.swap(next);
    }
    for (const std::string& w : words)
      if (!w.empty()) s.bpe(w, &ids);
  }
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  const State& s = *s_;
  const ByteTable& table = byte_table();
  std::string bytes;
  for (int64_t id : ids) {
    const auto added = s.added_by_id.find(id);
    const bool is_added = added != s.added_by_id.end();
    if (is_added && skip_special && s.added[added->second].special) continue;
    const std::string token = is_added ? s.added[added->second].content : id_to_token(id);
    if (token.empty())
      throw DataError(s.path + ": token id " + std::to_string(id) + " has no token (vocabulary size " +
                      std::to_string(vocab_size()) + ")");
    // Each token's characters back to bytes; a token with a character outside the table (an added token
    // such as "<|im_start|> x" with a space) stands for its own UTF-8 bytes, as in the tokenizers library.
    std::string own;
    bool mapped = true;
    size_t pos = 0;
    while (pos < token.size() && mapped) {
      const uint32_t cp = utf8::next(token, &pos);
      mapped = cp < table.char_to_byte.size() && table.char_to_byte[cp] >= 0;
      if (mapped) own.push_back(static_cast<char>(table.char_to_byte[cp]));
    }
    bytes += mapped ? own : token;
  }
  return utf8::repair(bytes);
}

// ---------------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------------
int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(s_->tokens.size()); }

int64_t BpeTokenizer::token_to_id(const std::string& token) const {
  const auto added = s_->added_by_content.find(token);
  if (added != s_->added_by_content.end()) return s_->added[added->second].id;
  const auto found = s_->vocab.find(token);
  return found == s_->vocab.end() ? -1 : found->second;
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  const auto added = s_->added_by_id.find(id);
  if (added != s_->added_by_id.end()) return s_->added[added->second].content;
  if (id < 0 || id >= vocab_size()) return "";
  return s_->tokens[id];
}

const std::string& BpeTokenizer::template_bos() const { return s_->template_bos; }
const std::string& BpeTokenizer::template_eos() const { return s_->template_eos; }
const std::string& BpeTokenizer::path() const { return s_->path; }

}  // namespace gaft
