// Batched KV-cached generation with left padding. See gaft/generate.h.
#include "gaft/generate.h"

#include <algorithm>
#include <sstream>

#include "gaft/chat.h"
#include "gaft/error.h"
#include "gaft/host_sync.h"
#include "gaft/tokenizer.h"

namespace gaft {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The rows of the decoding batch: which output row each one fills, and its sampling stream.
struct LiveRows {
  std::vector<int64_t> out_row;  // [R] index into the B * K output rows
  std::vector<uint64_t> stream;  // [R]
  // The rows `rows` of this batch, in that order.
  LiveRows select(const std::vector<int64_t>& rows) const {
    LiveRows kept;
    for (int64_t r : rows) {
      kept.out_row.push_back(out_row[r]);
      kept.stream.push_back(stream[r]);
    }
    return kept;
  }
};

}  // namespace

double counter_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  const uint64_t x = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ counter);
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

at::Tensor sample_tokens(const at::Tensor& logits, const GenerationOptions& o, const std::vector<uint64_t>& streams,
                         int64_t step) {
  TORCH_CHECK(logits.dim() == 2 && static_cast<int64_t>(streams.size()) == logits.size(0),
              "sample_tokens: expected logits [R, V] and R streams, got ", logits.sizes(), " and ", streams.size());
  const int64_t R = logits.size(0), V = logits.size(1);
  if (o.temperature <= 0) return to_host(logits.argmax(-1).to(at::kLong));  // [R], the step's one host read
  const at::Tensor l = o.temperature == 1.0 ? logits.to(at::kFloat) : logits.to(at::kFloat) / o.temperature;  // [R, V]
  // Candidates: weights [R, C] (C <= V) proportional to the probabilities the rules give, and their ids
  // (undefined: the candidates are the whole vocabulary, in vocabulary order).
  at::Tensor probs, ids;
  if (o.top_k > 0 && o.top_k < V) {
    // HF order: top-k first, then top-p over the softmax of the k survivors.
    auto [vals, idx] = l.topk(o.top_k, -1);  // [R, k] sorted descending
    probs = vals.softmax(-1);
    ids = idx;
  } else if (o.top_p < 1.0) {
    // Top-p by a growing partial sort: the smallest prefix of the sorted distribution whose mass reaches
    // top_p is usually a few dozen tokens, so topk of 64, 256, ... stops long before a sort of V.
    const at::Tensor full = l.softmax(-1);  // [R, V]
    for (int64_t k = std::min<int64_t>(V, 64);; k = std::min<int64_t>(V, 4 * k)) {
      auto [vals, idx] = full.topk(k, -1);  // [R, k]
      // One host read per widening (a row whose top k hold less than top_p needs a wider k).
      if (k == V || *to_host(vals.sum(-1).min().to(at::kDouble)).data_ptr<double>() >= o.top_p) {
        probs = vals;
        ids = idx;
        break;
      }
    }
  } else {
    // The whole vocabulary: exp(l - max) needs no normalisation, the draw scales u by the total.
    probs = (l - std::get<0>(l.max(-1, /*keepdim=*/true))).exp_();  // [R, V]
  }
  if (o.top_p < 1.0) {
    // Drop a candidate when the candidates before it already hold top_p of the mass; the first always stays.
    const at::Tensor before = probs.cumsum(-1) - probs;
    probs = probs.masked_fill(before > o.top_p, 0.0);
  }
  // Inverse CDF: the first candidate whose cumulative weight exceeds u times the total. Cumulative sums of
  // non-negative weights never decrease, so a zero-weight candidate is never above its predecessor and never
  // chosen.
  std::vector<float> u(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) u[r] = static_cast<float>(counter_uniform(o.seed, streams[r], static_cast<uint64_t>(step)));
  const at::Tensor cdf = probs.cumsum(-1);                  // [R, C]
  const at::Tensor total = cdf.narrow(1, cdf.size(1) - 1, 1);  // [R, 1] > 0: the first candidate always stays
  // u * total, kept below the total (float rounding of u near 1), so that some candidate exceeds it.
  const at::Tensor target = at::minimum(at::tensor(u, at::kFloat).to(cdf.device()).unsqueeze(1) * total,
                                        total * (1.0f - 0x1.0p-23f));
  at::Tensor pick = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).clamp_max(cdf.size(1) - 1);  // [R, 1]
  if (ids.defined()) pick = ids.gather(1, pick);
  return to_host(pick.squeeze(1).to(at::kLong));  // [R], the step's one host read
}

std::vector<std::vector<int64_t>> generate(Llama& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& o) {
  TORCH_CHECK(!prompts.empty(), "generate: no prompts");
  TORCH_CHECK(o.num_samples >= 1, "generate: num_samples must be at least 1");
  const int64_t B = static_cast<int64_t>(prompts.size()), K = o.num_samples;
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
  if (!o.streams.empty() && static_cast<int64_t>(o.streams.size()) != B)
    throw UsageError("generate: " + std::to_string(o.streams.size()) + " sampling streams for " + std::to_string(B) +
                     " prompts");
  // Each prompt's budget; positions count a row's own tokens (left padding does not shift them), so a short
  // prompt keeps its room even beside a long one.
  std::vector<int64_t> budget(B);
  int64_t steps = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t want = o.max_new_tokens_per_row.empty() ? o.max_new_tokens : o.max_new_tokens_per_row[b];
    budget[b] = std::max<int64_t>(0, std::min(want, max_len - static_cast<int64_t>(prompts[b].size())));
    steps = std::max(steps, budget[b]);
  }
  std::vector<std::vector<int64_t>> out(B * K);
  if (steps == 0) return out;

  // Left padding: [pad ... pad prompt].
  at::Tensor ids = at::full({B, longest}, o.pad_id, at::kLong);  // [B, T0]
  at::Tensor mask = at::zeros({B, longest}, at::kLong);          // [B, T0]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    std::copy(prompts[b].begin(), prompts[b].end(), ids.data_ptr<int64_t>() + b * longest + (longest - n));
    mask.narrow(0, b, 1).narrow(1, longest - n, n).fill_(1);
  }
  const bool padded = std::any_of(prompts.begin(), prompts.end(),
                                  [&](const std::vector<int64_t>& p) { return static_cast<int64_t>(p.size()) < longest; });
  const auto device = model->model->embed_tokens->weight.device();

  torch::NoGradGuard no_grad;
  KVCache cache = model->make_cache();
  cache.reserve = longest + steps;
  // The padding mask of every position there will be: prompt columns as given, generated ones all 1.
  at::Tensor full_mask = at::cat({mask, at::ones({B, steps}, mask.options())}, 1).to(device);  // [B, T0 + steps]
  // longrope (Phi-3): a row whose sequence grows past original_max_position_embeddings switches to the long
  // factors, and its cache, filled under the short ones, is recomputed once from its tokens at that step, as
  // transformers' generate does for one sequence. `history` keeps every row's tokens for that.
  const int64_t switch_at = longrope_switch(model->config);
  at::Tensor history;  // [rows, T0 + steps]: prompt (left-padded) and fed tokens, longrope only
  if (switch_at > 0 && longest + steps > switch_at)
    history = at::cat({ids, at::full({B, steps}, o.pad_id, at::kLong)}, 1).to(device);

  // Prefill once per prompt; its last logits and its cache are then repeated for the K continuations (one copy
  // of the prompt's keys and values per continuation, made once, which each continuation's new tokens extend).
  at::Tensor last;  // [R, V]
  {
    const at::Tensor hidden = model->forward(ids.to(device), padded ? full_mask.narrow(1, 0, longest) : at::Tensor(),
                                             &cache);  // [B, T0, H]
    last = model->logits(hidden.narrow(1, longest - 1, 1)).squeeze(1);  // [B, V]
  }
  LiveRows live;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      live.out_row.push_back(b * K + k);
      live.stream.push_back(splitmix64((o.streams.empty() ? static_cast<uint64_t>(b) : o.streams[b]) ^ splitmix64(k)));
    }
  // Rows with no budget leave before the first step.
  std::vector<int64_t> keep;
  for (int64_t r = 0; r < B * K; ++r)
    if (budget[r / K] > 0) keep.push_back(r);
  // Keeps batch rows `rows`, numbered as if each current row were repeated `repeat` times (one copy).
  const auto select_rows = [&](const std::vector<int64_t>& rows, int64_t repeat) {
    std::vector<int64_t> source(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) source[i] = rows[i] / repeat;
    const at::Tensor index = at::tensor(source, at::kLong).to(device);
    for (size_t i = 0; i < cache.keys.size(); ++i) {
      cache.keys[i] = cache.keys[i].index_select(0, index);
      cache.values[i] = cache.values[i].index_select(0, index);
    }
    full_mask = full_mask.index_select(0, index);
    last = last.index_select(0, index);
    if (history.defined()) history = history.index_select(0, index);
  };
  if (K > 1 || static_cast<int64_t>(keep.size()) < B * K) {
    select_rows(keep, K);
    live = live.select(keep);
  }

  std::vector<int64_t> fed;
  std::vector<bool> finished(live.out_row.size(), false);  // [R] rows that are done but still in the batch
  for (int64_t step = 0; !live.out_row.empty(); ++step) {
    const int64_t R = static_cast<int64_t>(live.out_row.size());
    const at::Tensor next = sample_tokens(last, o, live.stream, step).contiguous();  // [R] CPU
    if (o.decode_steps) ++*o.decode_steps;
    const int64_t* tokens = next.data_ptr<int64_t>();
    std::vector<int64_t> still;  // rows that continue
    fed.assign(static_cast<size_t>(R), o.pad_id);  // a finished row that stays decodes filler, never read
    for (int64_t r = 0; r < R; ++r) {
      if (finished[r]) continue;
      std::vector<int64_t>& row = out[live.out_row[r]];
      const int64_t tok = tokens[r];
      bool done = std::find(o.stop_tokens.begin(), o.stop_tokens.end(), tok) != o.stop_tokens.end();
      if (!done) row.push_back(tok);
      done = done || static_cast<int64_t>(row.size()) >= budget[live.out_row[r] / K];
      finished[r] = done;
      if (!done) {
        still.push_back(r);
        fed[r] = tok;
      }
    }
    if (still.empty()) break;
    at::Tensor input = at::tensor(fed, at::kLong).view({R, 1});  // [R, 1]
    // Finished rows leave the batch once they are a quarter of it: the cache is compacted (one copy of the
    // live rows' keys and values), so that later steps compute live sequences only.
    if (static_cast<int64_t>(still.size()) * 4 <= R * 3) {
      select_rows(still, 1);
      input = input.index_select(0, at::tensor(still, at::kLong));
      live = live.select(still);
      finished.assign(live.out_row.size(), false);
    }
    const at::Tensor attended = padded ? full_mask.narrow(1, 0, cache.length() + 1) : at::Tensor();
    if (history.defined()) history.narrow(1, cache.length(), 1).copy_(input);
    const at::Tensor hidden = model->forward(input.to(device), attended, &cache);  // [R', 1, H]
    last = model->logits(hidden).squeeze(1);                                        // [R', V]
    if (history.defined()) {
      // Rows whose fed token sits at position switch_at (their sequence now exceeds it): recompute.
      std::vector<int64_t> crossing;
      for (size_t r = 0; r < live.out_row.size(); ++r) {
        if (finished[r]) continue;
        const int64_t n = static_cast<int64_t>(prompts[live.out_row[r] / K].size());
        if (n <= switch_at && n + static_cast<int64_t>(out[live.out_row[r]].size()) - 1 == switch_at)
          crossing.push_back(static_cast<int64_t>(r));
      }
      if (!crossing.empty()) {
        const int64_t S = cache.length();
        const at::Tensor idx = at::tensor(crossing, at::kLong).to(device);
        KVCache fresh = model->make_cache();
        fresh.reserve = cache.keys[0].size(2);
        const at::Tensor h = model->forward(history.index_select(0, idx).narrow(1, 0, S),
                                            padded ? full_mask.index_select(0, idx).narrow(1, 0, S) : at::Tensor(),
                                            &fresh);  // [C, S, H]
        for (size_t l = 0; l < cache.keys.size(); ++l) {
          cache.keys[l].narrow(2, 0, S).index_copy_(0, idx, fresh.keys[l].narrow(2, 0, S));
          cache.values[l].narrow(2, 0, S).index_copy_(0, idx, fresh.values[l].narrow(2, 0, S));
        }
        last.index_copy_(0, idx, model->logits(h.narrow(1, S - 1, 1)).squeeze(1));
      }
    }
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
