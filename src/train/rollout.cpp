// K samples per prompt through gaft::generate. See gaft/rollout.h.
#include "gaft/rollout.h"

#include <algorithm>

#include "gaft/dataset.h"

namespace gaft {

bool cut_at_stop_string(const Tokenizer& tok, const std::vector<std::string>& stops, std::vector<int64_t>* ids) {
  if (stops.empty() || ids->empty()) return false;
  const std::string full = tok.decode(*ids);
  if (std::none_of(stops.begin(), stops.end(), [&](const std::string& s) { return full.find(s) != std::string::npos; }))
    return false;
  for (size_t n = 1; n <= ids->size(); ++n) {
    const std::string text = tok.decode(std::vector<int64_t>(ids->begin(), ids->begin() + static_cast<int64_t>(n)));
    for (const std::string& s : stops)
      if (text.find(s) != std::string::npos) {
        ids->resize(n - 1);
        return true;
      }
  }
  return false;
}

Rollouts sample_rollouts(Llama& policy, const Tokenizer& tok, const std::vector<std::vector<int64_t>>& prompts,
                         const std::vector<bool>& skip, const RolloutOptions& o, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(prompts.size()), K = o.num_samples;
  Rollouts out;
  out.ids.assign(B * K, {});
  out.texts.assign(B * K, "");
  out.present.assign(B * K, false);
  std::vector<int64_t> todo;  // prompts to roll out
  for (int64_t i = 0; i < B; ++i)
    if (!skip[i]) todo.push_back(i);
  if (todo.empty()) return out;

  const bool was_training = policy->is_training();
  policy->eval();
  GenerationOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.stop_tokens = o.stop_tokens;
  g.pad_id = o.pad_id;
  g.num_samples = K;  // each prompt is prefilled once for its K samples
  g.decode_steps = &out.decode_steps;
  // Sample (i, k) draws from stream (i, k) of the micro-batch's seed: the same whatever else is generated
  // beside it (rollout.batch_size, skipped prompts).
  g.seed = mix_seed(seed, 0x7011);
  const size_t per_call = o.batch_size > 0 ? static_cast<size_t>(o.batch_size) : todo.size();
  for (size_t start = 0; start < todo.size(); start += per_call) {
    const size_t end = std::min(todo.size(), start + per_call);
    std::vector<std::vector<int64_t>> batch;
    g.streams.clear();
    for (size_t j = start; j < end; ++j) {
      batch.push_back(prompts[todo[j]]);
      g.streams.push_back(static_cast<uint64_t>(todo[j]));
    }
    const std::vector<std::vector<int64_t>> gen = generate(policy, batch, g);  // [(end - start) * K]
    for (size_t j = start; j < end; ++j) {
      const int64_t i = todo[j];
      const int64_t room = policy->config.max_position_embeddings - static_cast<int64_t>(prompts[i].size());
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = i * K + k;
        std::vector<int64_t> ids = gen[(j - start) * static_cast<size_t>(K) + static_cast<size_t>(k)];
        // generate() leaves the stop token out: a response shorter than its budget ended on one.
        bool finished = static_cast<int64_t>(ids.size()) < std::min(o.max_new_tokens, room);
        finished = cut_at_stop_string(tok, o.stop, &ids) || finished;
        out.texts[row] = tok.decode(ids);
        out.generated_tokens += static_cast<int64_t>(ids.size());
        if (finished && !o.stop_tokens.empty()) ids.push_back(o.stop_tokens.front());
        out.ids[row] = std::move(ids);
        out.present[row] = true;
      }
    }
  }
  if (was_training) policy->train();
  return out;
}

}  // namespace gaft
