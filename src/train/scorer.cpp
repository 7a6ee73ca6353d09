// Scorer heads (classifier, LM judge) and their combination. See gaft/scorer.h.
#include "gaft/scorer.h"

#include <algorithm>
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

// Label probabilities [N, C] of N inputs on the model's device, in batches of batch_size taken longest first:
// ids_of(i) gives input i's ids, probs_of(ids, mask) the probabilities of a right-padded batch ([b, T] -> [b, C]).
template <typename IdsOf, typename ProbsOf>
at::Tensor batched_probs(const Llama& model, int64_t pad, int64_t N, int64_t batch_size, IdsOf ids_of, ProbsOf probs_of) {
  torch::NoGradGuard no_grad;
  const auto dev = model->model->embed_tokens->weight.device();
  std::vector<std::vector<int64_t>> inputs(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) inputs[i] = ids_of(i);
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return inputs[a].size() > inputs[b].size(); });
  std::vector<at::Tensor> probs;
  for (int64_t start = 0; start < N; start += batch_size) {
    std::vector<std::vector<int64_t>> rows;
    for (int64_t j = start; j < std::min(N, start + batch_size); ++j) rows.push_back(std::move(inputs[order[j]]));
    auto [ids, mask] = pad_right(rows, pad);
    probs.push_back(probs_of(ids.to(dev), mask.to(dev)).to(at::kFloat));
  }
  // Back to input order: row order[j] of the result is row j of the sorted batches.
  const at::Tensor sorted = at::cat(probs);  // [N, C]
  return at::empty_like(sorted).index_copy_(0, at::tensor(order, at::kLong).to(dev), sorted);
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
    const at::Tensor p = batched_probs(
        model_, pad_, static_cast<int64_t>(prompts.size()), batch_size,
        [&](int64_t i) { return classifier_input_ids(tok_, tmpl_, prompts[i], responses[i], spec.max_length); },
        [&](const at::Tensor& ids, const at::Tensor& mask) {
          return model_->classify(model_->forward(ids, mask), mask).to(at::kFloat).softmax(-1);  // [b, C]
        });
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
    const auto ids_of = [&](int64_t i) {
      return keep_end(tok_.encode(fill_template(spec.prompt_template, prompts[i], responses[i])), spec.max_length);
    };
    const at::Tensor p = batched_probs(
        model_, pad_, static_cast<int64_t>(prompts.size()), batch_size, ids_of,
        [&](const at::Tensor& ids, const at::Tensor& mask) {
          const at::Tensor hidden = model_->forward(ids, mask);  // [b, T, H]
          const at::Tensor last = (mask.sum(1) - 1).view({-1, 1, 1}).expand({-1, 1, hidden.size(2)});
          const at::Tensor logits = model_->logits(hidden.gather(1, last)).squeeze(1);  // [b, V]
          return at::stack({logits.select(1, safe_), logits.select(1, unsafe_)}, 1).to(at::kFloat).softmax(-1);
        });
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
