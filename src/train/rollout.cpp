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
  std::vector<int64_t> rows;  // indices i * K + k to generate
  for (int64_t i = 0; i < B; ++i)
    if (!skip[i])
      for (int64_t k = 0; k < K; ++k) rows.push_back(i * K + k);
  if (rows.empty()) return out;

  const bool was_training = policy->is_training();
  policy->eval();
  GenerationOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.stop_tokens = o.stop_tokens;
  g.pad_id = o.pad_id;
  const int64_t per_call = o.batch_size > 0 ? o.batch_size * K : static_cast<int64_t>(rows.size());
  for (size_t start = 0, call = 0; start < rows.size(); start += static_cast<size_t>(per_call), ++call) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(per_call));
    std::vector<std::vector<int64_t>> batch;
    for (size_t r = start; r < end; ++r) batch.push_back(prompts[rows[r] / K]);
    g.seed = mix_seed(seed, 0x7011, call);
    const std::vector<std::vector<int64_t>> gen = generate(policy, batch, g);
    for (size_t r = start; r < end; ++r) {
      const int64_t row = rows[r];
      std::vector<int64_t> ids = gen[r - start];
      const int64_t room = policy->config.max_position_embeddings - static_cast<int64_t>(batch[r - start].size());
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
  if (was_training) policy->train();
  return out;
}

}  // namespace gaft
