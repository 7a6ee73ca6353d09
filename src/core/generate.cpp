// Batched KV-cached generation with left padding. See gaft/generate.h.
#include "gaft/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <sstream>

#include "gaft/chat.h"
#include "gaft/error.h"
#include "gaft/tokenizer.h"

namespace gaft {

at::Tensor sample_next(const at::Tensor& logits, const GenerationOptions& o, at::Generator& generator) {
  at::Tensor l = logits.to(at::kCPU).to(at::kFloat);  // [B, V]
  if (o.temperature <= 0) return l.argmax(-1);         // [B]
  l = l / o.temperature;
  const int64_t V = l.size(-1);
  if (o.top_k > 0 && o.top_k < V) {
    const at::Tensor kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);  // [B, 1]
    l = l.masked_fill(l < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p < 1.0) {
    const auto [sorted, order] = l.sort(-1, /*descending=*/true);  // [B, V]
    const at::Tensor probs = sorted.softmax(-1);
    // Drop a token when the tokens before it already hold top_p of the mass; the first always stays.
    const at::Tensor drop = (probs.cumsum(-1) - probs) > o.top_p;
    l = l.scatter(-1, order, sorted.masked_fill(drop, -std::numeric_limits<float>::infinity()));
  }
  return at::multinomial(l.softmax(-1), 1, false, generator).squeeze(-1);  // [B]
}

std::vector<std::vector<int64_t>> generate(Llama& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& o) {
  TORCH_CHECK(!prompts.empty(), "generate: no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t longest = 0;
  for (const auto& p : prompts) {
    TORCH_CHECK(!p.empty(), "generate: every prompt needs at least one token (e.g. BOS)");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  const int64_t max_len = model->config.max_position_embeddings;
  if (longest > max_len)
    throw UsageError("prompt of " + std::to_string(longest) + " tokens exceeds max_position_embeddings " +
                     std::to_string(max_len));
  if (!o.max_new_tokens_per_row.empty() && static_cast<int64_t>(o.max_new_tokens_per_row.size()) != B)
    throw UsageError("generate: " + std::to_string(o.max_new_tokens_per_row.size()) + " token budgets for " +
                     std::to_string(B) + " prompts");
  // Each row's budget; positions count a row's own tokens (left padding does not shift them), so a short
  // prompt keeps its room even beside a long one.
  std::vector<int64_t> budget(B);
  int64_t steps = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t want = o.max_new_tokens_per_row.empty() ? o.max_new_tokens : o.max_new_tokens_per_row[b];
    budget[b] = std::max<int64_t>(0, std::min(want, max_len - static_cast<int64_t>(prompts[b].size())));
    steps = std::max(steps, budget[b]);
  }
  if (steps == 0) return std::vector<std::vector<int64_t>>(B);

  // Left padding: [pad ... pad prompt].
  at::Tensor ids = at::full({B, longest}, o.pad_id, at::kLong);  // [B, T0]
  at::Tensor mask = at::zeros({B, longest}, at::kLong);          // [B, T0]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    for (int64_t t = 0; t < n; ++t) ids[b][longest - n + t] = prompts[b][t];
    mask.narrow(0, b, 1).narrow(1, longest - n, n).fill_(1);
  }
  const bool padded = mask.min().item<int64_t>() == 0;
  const auto device = model->model->embed_tokens->weight.device();

  at::Generator generator = at::detail::createCPUGenerator(o.seed);
  torch::NoGradGuard no_grad;
  KVCache cache = model->make_cache();
  cache.reserve = longest + steps;
  std::vector<std::vector<int64_t>> out(B);
  std::vector<bool> done(B, false);
  for (int64_t b = 0; b < B; ++b) done[b] = budget[b] == 0;
  at::Tensor input = ids.to(device);
  // The padding mask of every position there will be: prompt columns as given, generated ones all 1.
  const at::Tensor full_mask = at::cat({mask, at::ones({B, steps}, mask.options())}, 1).to(device);  // [B, T0 + steps]
  std::vector<int64_t> fed(B);
  for (int64_t step = 0; step < steps; ++step) {
    const at::Tensor attended = padded ? full_mask.narrow(1, 0, cache.length() + input.size(1)) : at::Tensor();
    const at::Tensor hidden = model->forward(input, attended, &cache);                           // [B, T, H]
    const at::Tensor last = model->logits(hidden.narrow(1, hidden.size(1) - 1, 1)).squeeze(1);   // [B, V]
    const at::Tensor next = sample_next(last, o, generator).to(at::kCPU, at::kLong).contiguous();  // [B]
    const int64_t* tokens = next.data_ptr<int64_t>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (!done[b]) {
        const int64_t tok = tokens[b];
        if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), tok) != o.stop_tokens.end()) done[b] = true;
        else out[b].push_back(tok);
        if (static_cast<int64_t>(out[b].size()) >= budget[b]) done[b] = true;
      }
      fed[b] = done[b] ? o.pad_id : tokens[b];  // finished rows keep running on filler; their output is ignored
      all_done = all_done && done[b];
    }
    if (all_done) break;
    input = at::tensor(fed, at::kLong).view({B, 1}).to(device);  // [B, 1]
  }
  return out;
}

std::string complete_text(const std::string& model_dir, const std::string& prompt, GenerationOptions options,
                          bool chat) {
  Llama model = load_llama(model_dir);
  const Tokenizer tok = Tokenizer::load(model_dir);
  const ModelConfig& c = model->config;
  const int64_t bos = c.bos_token_id >= 0 ? c.bos_token_id : tok.bos_id();
  std::vector<int64_t> ids;
  if (chat) {
    // The prompt as one user turn in the model's chat format; the turn's end stops generation.
    const ChatTemplate tmpl = resolve_chat_template(ChatTemplate::kAuto, model_dir);
    ids = apply_chat_template(tok, tmpl, {{"user", prompt}}, /*add_generation_prompt=*/true).ids;
    if (options.stop_tokens.empty()) options.stop_tokens = end_of_turn_ids(tok, tmpl);
  } else {
    ids = tok.encode(prompt);
  }
  if (ids.empty() || (prompt.empty() && ids.front() != bos)) ids.insert(ids.begin(), bos);
  if (ids.front() < 0) throw DataError(model_dir + ": the prompt is empty and neither config.json nor the tokenizer names a BOS token");
  for (int64_t id : ids)
    if (id >= c.vocab_size)
      throw DataError(tok.path() + ": token id " + std::to_string(id) + " exceeds vocab_size " +
                      std::to_string(c.vocab_size) + " of " + c.source);
  if (options.stop_tokens.empty()) {
    options.stop_tokens = c.eos_token_ids;
    for (int64_t id : {tok.eos_id(), bos})
      if (id >= 0) options.stop_tokens.push_back(id);
  }
  if (c.pad_token_id >= 0) options.pad_id = c.pad_token_id;
  const std::vector<int64_t> out = generate(model, {ids}, options)[0];
  // Decode prompt and completion together so the first word keeps its leading space, then drop the prompt.
  std::vector<int64_t> all = ids;
  all.insert(all.end(), out.begin(), out.end());
  const std::string full = tok.decode(all), head = tok.decode(ids);
  return full.compare(0, head.size(), head) == 0 ? full.substr(head.size()) : tok.decode(out);
}

std::vector<int64_t> parse_token_ids(const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (...) {
      used = 0;
    }
    if (used != word.size() || id < 0) throw UsageError("token ids: expected non-negative integers, got '" + word + "'");
    ids.push_back(id);
  }
  if (ids.empty()) throw UsageError("token ids: expected at least one id, e.g. \"1 2 3\"");
  return ids;
}

void write_logits(const std::string& model_dir, const std::vector<int64_t>& ids, const std::string& out) {
  Llama model = load_llama(model_dir);
  const ModelConfig& c = model->config;
  if (c.head != ModelHead::kCausalLM) throw DataError(c.source + ": " + c.architecture + " has no LM head for logits");
  for (int64_t id : ids)
    if (id >= c.vocab_size)
      throw DataError("token id " + std::to_string(id) + " exceeds vocab_size " + std::to_string(c.vocab_size) +
                      " of " + c.source);
  if (static_cast<int64_t>(ids.size()) > c.max_position_embeddings)
    throw DataError(std::to_string(ids.size()) + " tokens exceed max_position_embeddings " +
                    std::to_string(c.max_position_embeddings) + " of " + c.source);
  torch::NoGradGuard no_grad;
  const at::Tensor input = at::tensor(ids, at::kLong).view({1, -1});                           // [1, T]
  const at::Tensor logits = model->logits(model->forward(input)).squeeze(0).to(at::kFloat);  // [T, V]
  save_safetensors(out, {{"logits", logits}});
}

}  // namespace gaft
