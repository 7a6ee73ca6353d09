// JSONL training data: validation, chat rendering, truncation, deterministic batching. See gaft/dataset.h.
#include "gaft/dataset.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "gaft/error.h"
#include "gaft/log.h"
#include "gaft/read_file.h"

namespace gaft {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a;
  for (uint64_t v : {b, c}) {
    x ^= v + 0x9e3779b97f4a7c15ULL + (x << 6) + (x >> 2);
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
  }
  return x;
}

void Renderer::render(const std::vector<ChatMessage>& messages, Example* out) const {
  const TokenizedChat full = apply_chat_template(*tok, tmpl, messages, /*add_generation_prompt=*/false);
  const std::vector<ChatMessage> context(messages.begin(), messages.end() - 1);
  const TokenizedChat prompt = apply_chat_template(*tok, tmpl, context, /*add_generation_prompt=*/true);
  const size_t P = prompt.ids.size();
  TORCH_INTERNAL_ASSERT(P <= full.ids.size() && std::equal(prompt.ids.begin(), prompt.ids.end(), full.ids.begin()),
                        "chat template ", to_string(tmpl), ": the generation prompt is not a prefix of the conversation");
  out->prompt_ids = prompt.ids;
  out->prompt_mask.assign(full.loss_mask.begin(), full.loss_mask.begin() + P);
  out->response_ids.assign(full.ids.begin() + P, full.ids.end());
}

std::vector<int64_t> Renderer::response_ids(const Example& ex, const std::string& text) const {
  std::vector<ChatMessage> messages = ex.messages;
  messages.back().content = text;
  Example tmp;
  render(messages, &tmp);
  return tmp.response_ids;
}

namespace {

// The record of one line, or a DataError naming what is wrong (the caller adds file:line).
struct Record {
  std::vector<ChatMessage> messages;
  std::string category;
  int64_t label = -1;
  bool text_only = false;
};

std::string string_field(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_string()) throw DataError(std::string("\"") + key + "\": expected a string, got " + v.type_name());
  return v.get<std::string>();
}

Record parse_record(const std::string& line, const DatasetOptions& o) {
  const nlohmann::json j = parse_json_record(line);
  Record r;
  const bool has_messages = j.contains("messages"), has_pair = j.contains("prompt") || j.contains("response");
  const bool has_text = j.contains("text");
  if (o.format == DataFormat::kChat && !has_messages) throw DataError("expected \"messages\" (data.format: chat)");
  if (o.format == DataFormat::kPromptResponse && !has_pair)
    throw DataError("expected \"prompt\" and \"response\" (data.format: prompt_response)");
  if (has_messages) {
    const auto& m = j["messages"];
    if (!m.is_array() || m.empty()) throw DataError("\"messages\": expected a non-empty array");
    for (size_t i = 0; i < m.size(); ++i) {
      if (!m[i].is_object() || !m[i].contains("role") || !m[i].contains("content") || !m[i]["role"].is_string() ||
          !m[i]["content"].is_string())
        throw DataError("\"messages\"[" + std::to_string(i) + "]: expected {\"role\": string, \"content\": string}");
      r.messages.push_back({m[i]["role"].get<std::string>(), m[i]["content"].get<std::string>()});
      const std::string& role = r.messages.back().role;
      if (role != "system" && role != "user" && role != "assistant")
        throw DataError("\"messages\"[" + std::to_string(i) + "].role: expected system, user or assistant, got \"" +
                        role + "\"");
    }
    if (r.messages.back().role != "assistant")
      throw DataError("\"messages\": the last message must be the assistant's response, got role \"" +
                      r.messages.back().role + "\"");
  } else if (has_pair) {
    if (!j.contains("prompt")) throw DataError("missing \"prompt\"");
    if (!j.contains("response")) throw DataError("missing \"response\"");
    r.messages = {{"user", string_field(j, "prompt")}, {"assistant", string_field(j, "response")}};
  } else if (has_text && o.classification) {
    r.messages = {{"user", string_field(j, "text")}};
    r.text_only = true;
  } else {
    throw DataError(o.classification ? "expected \"prompt\" and \"response\", \"messages\" or \"text\""
                                     : "expected \"prompt\" and \"response\", or \"messages\"");
  }
  if (j.contains("category")) r.category = string_field(j, "category");
  if (o.classification) {
    if (!j.contains("label")) throw DataError("missing \"label\" (objective.kind: classifier)");
    const auto& l = j["label"];
    if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= o.num_labels)
      throw DataError("\"label\": expected an integer in [0, " + std::to_string(o.num_labels) + "), got " + l.dump());
    r.label = l.get<int64_t>();
  }
  return r;
}

}  // namespace

Dataset Dataset::load(const std::string& path, const Renderer& renderer, const DatasetOptions& o) {
  check_regular_file(path, kMaxDataBytes, "data.train / data.eval name a JSONL file");
  std::ifstream in(path);
  if (!in) throw DataError("cannot open data file '" + path + "'");
  Dataset d;
  d.path_ = path;
  std::string line;
  int64_t lineno = 0;
  std::string first_error;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++d.stats_.lines;
    Example ex;
    ex.line = lineno;
    try {
      Record r = parse_record(line, o);
      ex.category = r.category;
      ex.label = r.label;
      ex.messages = std::move(r.messages);
      if (r.text_only) {
        ex.prompt_text = ex.messages.back().content;
        ex.prompt_ids = renderer.tok->encode(ex.prompt_text);
        ex.prompt_mask.assign(ex.prompt_ids.size(), 0);
      } else {
        for (auto it = ex.messages.rbegin(); it != ex.messages.rend(); ++it)
          if (it->role == "user") {
            ex.prompt_text = it->content;
            break;
          }
        ex.response_text = ex.messages.back().content;
        renderer.render(ex.messages, &ex);
      }
    } catch (const DataError& e) {
      const std::string msg = path + ":" + std::to_string(lineno) + ": " + e.what();
      if (!o.skip_bad_lines) throw DataError(msg, "fix the line, or set data.skip_bad_lines: true to skip such lines");
      if (first_error.empty()) first_error = msg;
      ++d.stats_.skipped;
      continue;
    }
    // Lengths. The prompt keeps its end (and its first token when that is BOS-like: position 0 of the
    // template); the response keeps its start.
    const int64_t P = static_cast<int64_t>(ex.prompt_ids.size()), R = static_cast<int64_t>(ex.response_ids.size());
    if (P > o.max_prompt_tokens || R > o.max_response_tokens) {
      if (o.too_long == TooLong::kDrop) {
        ++d.stats_.dropped;
        continue;
      }
      if (P > o.max_prompt_tokens) {
        const int64_t cut = P - o.max_prompt_tokens;  // tokens removed after the first one
        ex.prompt_ids.erase(ex.prompt_ids.begin() + 1, ex.prompt_ids.begin() + 1 + cut);
        ex.prompt_mask.erase(ex.prompt_mask.begin() + 1, ex.prompt_mask.begin() + 1 + cut);
      }
      if (R > o.max_response_tokens) ex.response_ids.resize(o.max_response_tokens);
      ++d.stats_.truncated;
    }
    if (!o.classification && ex.response_ids.empty()) {
      const std::string msg = path + ":" + std::to_string(lineno) + ": the response has no tokens";
      if (!o.skip_bad_lines) throw DataError(msg);
      ++d.stats_.skipped;
      continue;
    }
    d.examples_.push_back(std::move(ex));
  }
  d.stats_.examples = static_cast<int64_t>(d.examples_.size());
  d.own_ = d.stats_.examples;
  if (d.stats_.skipped > 0)
    log::warn(path + ": skipped " + std::to_string(d.stats_.skipped) + " bad lines; the first: " + first_error);
  if (d.stats_.truncated > 0 || d.stats_.dropped > 0)
    log::info(path + ": " + std::to_string(d.stats_.truncated) + " examples truncated, " +
              std::to_string(d.stats_.dropped) + " dropped as too long");
  if (d.examples_.empty())
    throw DataError(path + ": no usable example (" + std::to_string(d.stats_.lines) + " lines, " +
                    std::to_string(d.stats_.skipped) + " skipped, " + std::to_string(d.stats_.dropped) + " too long)");
  return d;
}

void Dataset::add_mix(Dataset mix, double share) {
  TORCH_CHECK(share >= 0.0 && share < 1.0, "add_mix: share must be in [0, 1), got ", share);
  TORCH_CHECK(size() == own_, "add_mix: a mix was already added");
  mix_per_epoch_ = static_cast<int64_t>(std::llround(share / (1.0 - share) * static_cast<double>(own_)));
  for (Example& ex : mix.examples_) examples_.push_back(std::move(ex));
}

void Dataset::replace_response(int64_t i, const std::string& text, const Renderer& renderer) {
  TORCH_CHECK(i >= 0 && i < own_, "replace_response: no own example ", i);
  Example& ex = examples_[i];
  ex.response_ids = renderer.response_ids(ex, text);
  ex.response_text = text;
  ex.messages.back().content = text;
}

void Dataset::keep_only(const std::vector<bool>& keep) {
  TORCH_CHECK(static_cast<int64_t>(keep.size()) == own_ && size() == own_, "keep_only: one flag per own example, before add_mix");
  std::vector<Example> kept;
  for (int64_t i = 0; i < own_; ++i)
    if (keep[i]) kept.push_back(std::move(examples_[i]));
  examples_ = std::move(kept);
  own_ = size();
}

std::vector<std::vector<int64_t>> Dataset::epoch_batches(int64_t epoch, int64_t batch_size, uint64_t seed,
                                                         bool shuffle, bool bucket) const {
  TORCH_CHECK(batch_size > 0, "batch_size must be positive");
  std::vector<int64_t> order(own_);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(mix_seed(seed, 0x5eed, static_cast<uint64_t>(epoch)));
  // Fisher-Yates with plain modulo: the same sequence on every standard library.
  const auto permute = [&rng](auto& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
      std::swap(v[i], v[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
  };
  if (mix_per_epoch_ > 0) {
    // The epoch's draw from the mix: whole permutations of it, then part of one more, from their own seed.
    std::mt19937_64 mix_rng(mix_seed(seed, 0x3115, static_cast<uint64_t>(epoch)));
    std::vector<int64_t> pool(static_cast<size_t>(size() - own_));
    for (int64_t drawn = 0; drawn < mix_per_epoch_;) {
      std::iota(pool.begin(), pool.end(), own_);
      for (int64_t i = static_cast<int64_t>(pool.size()) - 1; i > 0; --i)
        std::swap(pool[i], pool[static_cast<int64_t>(mix_rng() % static_cast<uint64_t>(i + 1))]);
      const int64_t take = std::min<int64_t>(mix_per_epoch_ - drawn, static_cast<int64_t>(pool.size()));
      order.insert(order.end(), pool.begin(), pool.begin() + take);
      drawn += take;
    }
  }
  const int64_t n = static_cast<int64_t>(order.size());
  if (shuffle) permute(order);
  if (bucket) {
    const int64_t window = 64 * batch_size;
    for (int64_t w = 0; w < n; w += window) {
      const auto first = order.begin() + w, last = order.begin() + std::min(n, w + window);
      std::stable_sort(first, last, [&](int64_t a, int64_t b) { return examples_[a].length() < examples_[b].length(); });
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i < n; i += batch_size)
    batches.emplace_back(order.begin() + i, order.begin() + std::min(n, i + batch_size));
  if (bucket && shuffle) permute(batches);
  return batches;
}

}  // namespace gaft
