// Scorer heads (classifier, LM judge) and their combination. See gaft/scorer.h.
#include "gaft/scorer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <numeric>

#include "gaft/chat.h"
#include "gaft/error.h"
#include "gaft/host_sync.h"

namespace gaft {

std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id) {
  int64_t T = 1;
  for (const auto& r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  const int64_t B = static_cast<int64_t>(rows.size());
  at::Tensor ids = at::full({B, T}, pad_id, at::kLong);  // [B, T]
  at::Tensor mask = at::zeros({B, T}, at::kLong);        // [B, T]
  int64_t* pi = ids.data_ptr<int64_t>();
  int64_t* pm = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < rows[b].size(); ++t) {
      pi[b * T + static_cast<int64_t>(t)] = rows[b][t];
      pm[b * T + static_cast<int64_t>(t)] = 1;
    }
  return {ids, mask};
}

namespace {

// Cuts `ids` from the front (after its first token, BOS) to at most max_length tokens.
std::vector<int64_t> keep_end(std::vector<int64_t> ids, int64_t max_length) {
  if (static_cast<int64_t>(ids.size()) > max_length && max_length > 1)
    ids.erase(ids.begin() + 1, ids.begin() + 1 + (static_cast<int64_t>(ids.size()) - max_length));
  return ids;
}

// `tmpl` with {prompt} and {response} filled in, in one pass (a response may itself contain "{prompt}").
std::string fill_template(const std::string& tmpl, const std::string& prompt, const std::string& response) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 8, "{prompt}") == 0) {
      out += prompt;
      i += 8;
    } else if (tmpl.compare(i, 10, "{response}") == 0) {
      out += response;
      i += 10;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

// Entropy of each row of probabilities [N, C], divided by ln C.
at::Tensor normalised_entropy(const at::Tensor& probs) {
  const at::Tensor h = -(probs * probs.clamp_min(1e-12).log()).sum(-1);
  return h / std::log(static_cast<double>(probs.size(-1)));
}

// One scorer input: its ids, and how many of its first tokens are the prompt's part (0: not known to be
// shared). Inputs with the same non-empty prompt part share its forward.
struct ScorerInput {
  std::vector<int64_t> ids;
  std::vector<int64_t> prefix;  // ids[0, prefix.size()), or empty
};

// `prefix` when it is a proper prefix of `ids` (tokenisation at the boundary can differ), else empty.
std::vector<int64_t> shared_part(std::vector<int64_t> prefix, const std::vector<int64_t>& ids) {
  if (prefix.size() < 2 || prefix.size() >= ids.size() || !std::equal(prefix.begin(), prefix.end(), ids.begin()))
    return {};
  return prefix;
}

// The final hidden state [N, H] at the last token of each input, on the model's device, in batches of at most
// batch_size rows. Inputs that share a prompt part with others (the K rollouts of a prompt) run it once: the
// prompts of a batch of groups are prefilled with a KV cache, which each row then extends with its own tokens.
// The other inputs run in batches taken longest first (similar lengths share a batch: little padding).
at::Tensor last_hidden_states(Llama model, int64_t pad, std::vector<ScorerInput> inputs, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const auto dev = model->model->embed_tokens->weight.device();
  const int64_t N = static_cast<int64_t>(inputs.size());
  std::map<std::vector<int64_t>, std::vector<int64_t>> by_prefix;
  std::vector<int64_t> alone;
  // longrope (Phi-3): an input that crosses original_max_position_embeddings takes the long factors for all its
  // tokens, so a prompt prefilled under the short ones cannot be shared with it.
  const int64_t switch_at = longrope_switch(model->config);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t n = static_cast<int64_t>(inputs[i].prefix.size()), m = static_cast<int64_t>(inputs[i].ids.size());
    if (switch_at > 0 && n <= switch_at && m > switch_at) inputs[i].prefix.clear();
    if (!inputs[i].prefix.empty()) by_prefix[inputs[i].prefix].push_back(i);
  }
  std::vector<std::vector<int64_t>> groups;
  for (auto& [prefix, rows] : by_prefix)
    if (rows.size() > 1) groups.push_back(rows);
    else alone.push_back(rows[0]);
  for (int64_t i = 0; i < N; ++i)
    if (inputs[i].prefix.empty()) alone.push_back(i);

  std::vector<at::Tensor> parts;  // [n, H] each, rows in the order of `done`
  std::vector<int64_t> done;
  const int64_t H = model->config.hidden_size;
  // Groups, several per batch while their rows fit in batch_size (a larger group is a batch of its own).
  for (size_t g0 = 0; g0 < groups.size();) {
    size_t g1 = g0 + 1;
    int64_t rows_in = static_cast<int64_t>(groups[g0].size());
    while (g1 < groups.size() && rows_in + static_cast<int64_t>(groups[g1].size()) <= batch_size)
      rows_in += static_cast<int64_t>(groups[g1++].size());
    const int64_t G = static_cast<int64_t>(g1 - g0);
    int64_t P = 0, S = 1;
    for (size_t g = g0; g < g1; ++g) {
      P = std::max<int64_t>(P, static_cast<int64_t>(inputs[groups[g][0]].prefix.size()));
      for (int64_t i : groups[g])
        S = std::max<int64_t>(S, static_cast<int64_t>(inputs[i].ids.size() - inputs[i].prefix.size()));
    }
    // Prompts left-padded [G, P]; suffixes right-padded [R, S]; the row's mask over both [R, P + S].
    at::Tensor pids = at::full({G, P}, pad, at::kLong), pmask = at::zeros({G, P}, at::kLong);
    at::Tensor sids = at::full({rows_in, S}, pad, at::kLong), mask = at::zeros({rows_in, P + S}, at::kLong);
    std::vector<int64_t> group_of_row, last;
    for (int64_t g = 0; g < G; ++g) {
      const std::vector<int64_t>& prefix = inputs[groups[g0 + g][0]].prefix;
      const int64_t n = static_cast<int64_t>(prefix.size());
      std::copy(prefix.begin(), prefix.end(), pids.data_ptr<int64_t>() + g * P + (P - n));
      pmask.narrow(0, g, 1).narrow(1, P - n, n).fill_(1);
      for (int64_t i : groups[g0 + g]) {
        const int64_t r = static_cast<int64_t>(group_of_row.size()), m = static_cast<int64_t>(inputs[i].ids.size()) - n;
        std::copy(inputs[i].ids.begin() + n, inputs[i].ids.end(), sids.data_ptr<int64_t>() + r * S);
        mask.narrow(0, r, 1).narrow(1, P - n, n + m).fill_(1);
        group_of_row.push_back(g);
        last.push_back(m - 1);
        done.push_back(i);
      }
    }
    KVCache cache = model->make_cache();
    cache.reserve = P + S;
    model->forward(pids.to(dev), pmask.to(dev), &cache);  // [G, P, H], kept as keys and values
    const at::Tensor rows = at::tensor(group_of_row, at::kLong).to(dev);
    for (size_t l = 0; l < cache.keys.size(); ++l) {
      cache.keys[l] = cache.keys[l].index_select(0, rows);
      cache.values[l] = cache.values[l].index_select(0, rows);
    }
    const at::Tensor hidden = model->forward(sids.to(dev), mask.to(dev), &cache);  // [R, S, H]
    const at::Tensor at_last = at::tensor(last, at::kLong).to(dev).view({-1, 1, 1}).expand({-1, 1, H});
    parts.push_back(hidden.gather(1, at_last).squeeze(1));  // [R, H]
    g0 = g1;
  }
  // Inputs alone: longest first, right-padded.
  std::stable_sort(alone.begin(), alone.end(), [&](int64_t a, int64_t b) { return inputs[a].ids.size() > inputs[b].ids.size(); });
  for (size_t start = 0; start < alone.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<std::vector<int64_t>> rows;
    std::vector<int64_t> last;
    for (size_t j = start; j < std::min(alone.size(), start + static_cast<size_t>(batch_size)); ++j) {
      rows.push_back(std::move(inputs[alone[j]].ids));
      last.push_back(static_cast<int64_t>(rows.back().size()) - 1);
      done.push_back(alone[j]);
    }
    auto [ids, mask] = pad_right(rows, pad);
    const at::Tensor hidden = model->forward(ids.to(dev), mask.to(dev));  // [b, T, H]
    const at::Tensor at_last = at::tensor(last, at::kLong).to(dev).view({-1, 1, 1}).expand({-1, 1, H});
    parts.push_back(hidden.gather(1, at_last).squeeze(1));  // [b, H]
  }
  // Back to input order: row done[j] of the result is row j of the batches.
  const at::Tensor batched = at::cat(parts);  // [N, H]
  return at::empty_like(batched).index_copy_(0, at::tensor(done, at::kLong).to(dev), batched);
}

class ClassifierHead : public ScorerHeadModel {
 public:
  ClassifierHead(const ScorerHead& s, Llama model, Tokenizer tok, ChatTemplate tmpl)
      : model_(std::move(model)), tok_(std::move(tok)), tmpl_(tmpl) {
    spec = s;
    if (spec.aligned_label >= model_->config.num_labels)
      throw DataError("scorer head '" + spec.name + "': aligned_label " + std::to_string(spec.aligned_label) +
                      " is not a label of " + model_->config.source + " (num_labels " +
                      std::to_string(model_->config.num_labels) + ")");
    pad_ = pad_id_for(model_, tok_);
  }

  std::pair<at::Tensor, at::Tensor> score(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses, int64_t batch_size) override {
    std::map<std::string, std::vector<int64_t>> prompt_part;  // the template up to the assistant's turn
    std::vector<ScorerInput> inputs(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      inputs[i].ids = classifier_input_ids(tok_, tmpl_, prompts[i], responses[i], spec.max_length);
      auto it = prompt_part.find(prompts[i]);
      if (it == prompt_part.end())
        it = prompt_part.emplace(prompts[i], apply_chat_template(tok_, tmpl_, {{"user", prompts[i]}}, true).ids).first;
      inputs[i].prefix = shared_part(it->second, inputs[i].ids);
    }
    const at::Tensor h = last_hidden_states(model_, pad_, std::move(inputs), batch_size);  // [N, H]
    const at::Tensor p = model_->score->forward(h).to(at::kFloat).softmax(-1);             // [N, C]
    return {p.select(1, spec.aligned_label).contiguous(), normalised_entropy(p)};
  }

  std::string shared_key() const override {
    return "classifier\n" + spec.path + "\n" + std::to_string(spec.aligned_label) + "\n" +
           std::to_string(spec.max_length) + "\n" + std::to_string(static_cast<int>(tmpl_));
  }

 private:
  Llama model_;
  Tokenizer tok_;
  ChatTemplate tmpl_;
  int64_t pad_ = 0;
};

// The id of a label word: the tokenizer's single token for it (with or without a leading space).
int64_t label_token(const Tokenizer& tok, const std::string& word, const std::string& where) {
  for (const std::string& text : {word, " " + word}) {
    const std::vector<int64_t> ids = tok.encode(text, false, false);
    if (ids.size() == 1) return ids[0];
  }
  const int64_t id = tok.token_to_id(word);
  if (id >= 0) return id;
  throw DataError(where + ": label token \"" + word + "\" is not a single token of " + tok.path(),
                  "choose safe_token / unsafe_token that the judge's tokenizer encodes as one token");
}

class JudgeHead : public ScorerHeadModel {
 public:
  JudgeHead(const ScorerHead& s, Llama model, Tokenizer tok) : model_(std::move(model)), tok_(std::move(tok)) {
    spec = s;
    if (model_->config.head != ModelHead::kCausalLM)
      throw DataError("scorer head '" + spec.name + "' (kind lm_judge): " + model_->config.source + " is " +
                      model_->config.architecture + ", expected a causal LM");
    safe_ = label_token(tok_, spec.safe_token, "scorer head '" + spec.name + "'");
    unsafe_ = label_token(tok_, spec.unsafe_token, "scorer head '" + spec.name + "'");
    pad_ = pad_id_for(model_, tok_);
  }

  std::pair<at::Tensor, at::Tensor> score(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses, int64_t batch_size) override {
    // The template's text before {response}, when {prompt} does not come after it, is the prompt's part.
    const size_t at_response = spec.prompt_template.find("{response}");
    const bool shareable = at_response != std::string::npos &&
                           spec.prompt_template.find("{prompt}", at_response) == std::string::npos;
    std::map<std::string, std::vector<int64_t>> prompt_part;
    std::vector<ScorerInput> inputs(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      inputs[i].ids =
          keep_end(tok_.encode(fill_template(spec.prompt_template, prompts[i], responses[i])), spec.max_length);
      if (!shareable) continue;
      auto it = prompt_part.find(prompts[i]);
      if (it == prompt_part.end()) {
        // Without the whitespace before {response}: the tokenizer joins it to the response's first word.
        std::string head = fill_template(spec.prompt_template.substr(0, at_response), prompts[i], "");
        while (!head.empty() && std::isspace(static_cast<unsigned char>(head.back()))) head.pop_back();
        it = prompt_part.emplace(prompts[i], tok_.encode(head)).first;
      }
      inputs[i].prefix = shared_part(it->second, inputs[i].ids);
    }
    const at::Tensor h = last_hidden_states(model_, pad_, std::move(inputs), batch_size);  // [N, H]
    const at::Tensor logits = model_->logits(h);                                           // [N, V]
    const at::Tensor p = at::stack({logits.select(1, safe_), logits.select(1, unsafe_)}, 1).to(at::kFloat).softmax(-1);
    return {p.select(1, 0).contiguous(), normalised_entropy(p)};
  }

  std::string shared_key() const override {
    return "lm_judge\n" + spec.path + "\n" + spec.prompt_template + "\n" + spec.safe_token + "\n" +
           spec.unsafe_token + "\n" + std::to_string(spec.max_length);
  }

 private:
  Llama model_;
  Tokenizer tok_;
  int64_t safe_ = 0, unsafe_ = 0, pad_ = 0;
};

}  // namespace

int64_t pad_id_for(const Llama& model, const Tokenizer& tok) {
  if (model->config.pad_token_id >= 0) return model->config.pad_token_id;
  if (tok.pad_id() >= 0) return tok.pad_id();
  return tok.eos_id() >= 0 ? tok.eos_id() : 0;
}

std::vector<int64_t> classifier_input_ids(const Tokenizer& tok, ChatTemplate tmpl, const std::string& prompt,
                                          const std::string& response, int64_t max_length) {
  return keep_end(
      apply_chat_template(tok, tmpl, {{"user", prompt}, {"assistant", response}}, /*add_generation_prompt=*/false).ids,
      max_length);
}

std::unique_ptr<ScorerHeadModel> make_classifier_head(const ScorerHead& spec, Llama model, Tokenizer tok,
                                                      ChatTemplate tmpl) {
  return std::make_unique<ClassifierHead>(spec, std::move(model), std::move(tok), tmpl);
}

Scorer Scorer::load(const ScorerSection& section, at::Device device, at::ScalarType dtype) {
  Scorer s;
  s.combine = section.combine;
  s.batch_size = section.batch_size;
  std::map<std::string, Llama> loaded;  // a folder named by several heads is loaded once
  for (size_t i = 0; i < section.heads.size(); ++i) {
    const ScorerHead& h = section.heads[i];
    const std::string key = "scorer.heads." + std::to_string(i) + ".path";
    if (!std::filesystem::is_directory(h.path))
      throw DataError(key + ": scorer folder '" + h.path + "' does not exist");
    auto it = loaded.find(h.path);
    if (it == loaded.end()) {
      Llama model = load_llama(h.path, LoadOptions{dtype, device});
      for (auto& p : model->parameters()) p.set_requires_grad(false);
      it = loaded.emplace(h.path, model).first;
    }
    Llama model = it->second;
    Tokenizer tok = Tokenizer::load(h.path);
    if (h.kind == ScorerKind::kClassifier) {
      if (model->config.head != ModelHead::kSequenceClassification)
        throw DataError(key + ": '" + h.path + "' has no sequence-classification head (architectures: " +
                            model->config.architecture + ")",
                        "a classifier head needs a *ForSequenceClassification folder with score.weight; for a causal "
                        "LM use kind: lm_judge");
      s.add(make_classifier_head(h, std::move(model), std::move(tok), resolve_chat_template(ChatTemplate::kAuto, h.path)));
    } else {
      s.add(std::make_unique<JudgeHead>(h, std::move(model), std::move(tok)));
    }
  }
  return s;
}

at::Tensor Scorer::score_head(int64_t h, const std::vector<std::string>& prompts,
                              const std::vector<std::string>& responses) {
  TORCH_CHECK(h >= 0 && h < num_heads(), "score_head: no head ", h);
  TORCH_CHECK(prompts.size() == responses.size(), "score_head: prompts and responses differ in number");
  if (prompts.empty()) return at::zeros({0});
  return to_host(heads_[h]->score(prompts, responses, batch_size).first.to(at::kFloat));  // one copy to the host
}

at::Tensor Scorer::combine_heads(const at::Tensor& per_head) const {
  TORCH_CHECK(per_head.dim() == 2 && per_head.size(0) == num_heads(), "combine_heads: expected [", num_heads(), ", N]");
  if (combine == ScoreCombine::kMin) return std::get<0>(per_head.min(0));
  if (combine == ScoreCombine::kMean) return per_head.mean(0);
  at::Tensor combined = at::ones({per_head.size(1)});
  for (int64_t h = 0; h < num_heads(); ++h) combined = combined * per_head[h].pow(heads_[h]->spec.weight);
  return combined;
}

ScoreResult Scorer::score(const std::vector<std::string>& prompts, const std::vector<std::string>& responses) {
  TORCH_CHECK(prompts.size() == responses.size(), "score: prompts and responses differ in number");
  TORCH_CHECK(!heads_.empty(), "score: the scorer has no heads");
  const int64_t N = static_cast<int64_t>(prompts.size()), H = num_heads();
  if (N == 0) return {at::zeros({0}), at::zeros({H, 0}), at::zeros({0})};
  std::vector<at::Tensor> rows;  // per head: P(aligned), then normalised entropy, each [N] on the head's device
  std::map<std::string, size_t> first;  // shared key -> the head that ran
  for (int64_t h = 0; h < H; ++h) {
    const std::string key = heads_[h]->shared_key();
    const auto it = key.empty() ? first.end() : first.find(key);
    if (it != first.end()) {
      rows.push_back(rows[2 * it->second]);
      rows.push_back(rows[2 * it->second + 1]);
      continue;
    }
    if (!key.empty()) first[key] = static_cast<size_t>(h);
    auto [p, e] = heads_[h]->score(prompts, responses, batch_size);
    rows.push_back(p.to(at::kFloat));
    rows.push_back(e.to(at::kFloat).to(p.device()));
  }
  // Heads on one device (the usual case) come back in one copy.
  at::Tensor all;  // [2H, N] on the CPU
  const bool one_device = std::all_of(rows.begin(), rows.end(), [&](const at::Tensor& t) { return t.device() == rows[0].device(); });
  if (one_device) {
    all = to_host(at::stack(rows));
  } else {
    for (at::Tensor& t : rows) t = to_host(t);
    all = at::stack(rows);
  }
  const at::Tensor per_head = all.view({H, 2, N}).select(1, 0).contiguous();  // [H, N]
  const at::Tensor uncertainty = all.view({H, 2, N}).select(1, 1).mean(0).contiguous();  // [N]
  return {combine_heads(per_head).contiguous(), per_head, uncertainty};
}

}  // namespace gaft
