// One micro-batch's loss: sequences packed, one forward, gate weights, fused weighted log-likelihood.
// See gaft/objective.h and docs/method.md.
#include "gaft/objective.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "gaft/host_sync.h"
#include "gaft/scorer.h"

namespace gaft {

namespace {

// The trained tokens of a micro-batch's forward, flattened, in the order of its sequences and their positions.
// Two layouts of the same tokens: each sequence whole in its own right-padded row (`pack`), or the sequences of
// one example in one row that holds their common prefix (the prompt) once (`pack_shared`, PackedLayout).
struct Packed {
  at::Tensor ids, mask;   // [S, T] int64; mask: 1 = token (plain layout)
  PackedLayout layout;    // shared layout: each token's position and segment
  bool shared = false;
  at::Tensor positions;   // [N] int64 into the flattened [S * T] hidden states (the position before the target)
  at::Tensor targets;     // [N] int64
  at::Tensor token_seq;   // [N] int64 sequence ids of the gate op
  bool padded = false;    // plain layout: some row is shorter than T (the forward needs the mask)
};

// The trained tokens of sequence `r`, its targets and the gate's sequence id, with the index of the hidden state
// that predicts each: `source(t)` for the target at t (the state at t - 1).
template <class Source>
void add_targets(const TrainSequence& r, int64_t seq_id, Source source, std::vector<int64_t>& positions,
                 std::vector<int64_t>& targets, std::vector<int64_t>& token_seq) {
  for (size_t t = 1; t < r.ids.size(); ++t)
    if (r.trained[t]) {
      positions.push_back(source(static_cast<int64_t>(t) - 1));
      targets.push_back(r.ids[t]);
      token_seq.push_back(seq_id);
    }
}

Packed pack(const std::vector<const TrainSequence*>& rows, const std::vector<int64_t>& seq_ids, int64_t pad_id) {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(rows.size());
  for (const TrainSequence* r : rows) ids.push_back(r->ids);
  Packed p;
  std::tie(p.ids, p.mask) = pad_right(ids, pad_id);
  const int64_t T = p.ids.size(1);
  std::vector<int64_t> positions, targets, token_seq;
  for (size_t s = 0; s < rows.size(); ++s) {
    const TrainSequence& r = *rows[s];
    if (static_cast<int64_t>(r.ids.size()) < T) p.padded = true;
    const int64_t row = static_cast<int64_t>(s) * T;
    add_targets(r, seq_ids[s], [&](int64_t i) { return row + i; }, positions, targets, token_seq);
  }
  p.positions = at::tensor(positions, at::kLong);
  p.targets = at::tensor(targets, at::kLong);
  p.token_seq = at::tensor(token_seq, at::kLong);
  return p;
}

// The sequences of each group (`group[s]`: the example of sequence s) in one row: the group's longest common
// prefix once (segment 0), then each sequence's remaining tokens as its own branch (segments 1, 2, ...). Identical
// tokens at identical positions give identical hidden states in a causal model, so any common prefix may be shared,
// trained targets inside it included (their predicting state is the prefix's). The trained tokens keep pack()'s
// order.
Packed pack_shared(const std::vector<const TrainSequence*>& rows, const std::vector<int64_t>& seq_ids,
                   const std::vector<int64_t>& group, int64_t pad_id) {
  std::vector<std::vector<size_t>> members;  // groups in the order of their first sequence
  std::vector<std::pair<int64_t, size_t>> seen;
  for (size_t s = 0; s < rows.size(); ++s) {
    auto it = std::find_if(seen.begin(), seen.end(), [&](const auto& e) { return e.first == group[s]; });
    if (it == seen.end()) {
      seen.emplace_back(group[s], members.size());
      members.emplace_back();
      it = seen.end() - 1;
    }
    members[it->second].push_back(s);
  }
  struct Place {
    int64_t row = 0, prefix = 0, start = 0;  // packed row; shared prefix length; where the branch starts in the row
  };
  std::vector<Place> place(rows.size());
  std::vector<std::vector<int64_t>> ids(members.size()), pos(members.size()), seg(members.size());
  for (size_t g = 0; g < members.size(); ++g) {
    const std::vector<int64_t>& first = rows[members[g][0]]->ids;
    size_t prefix = first.size();
    for (size_t m : members[g]) {
      const std::vector<int64_t>& other = rows[m]->ids;
      size_t n = 0;
      while (n < prefix && n < other.size() && other[n] == first[n]) ++n;
      prefix = n;
    }
    for (size_t t = 0; t < prefix; ++t) ids[g].push_back(first[t]), pos[g].push_back(static_cast<int64_t>(t)), seg[g].push_back(0);
    int64_t branch = 0;
    for (size_t m : members[g]) {
      const std::vector<int64_t>& r = rows[m]->ids;
      place[m] = Place{static_cast<int64_t>(g), static_cast<int64_t>(prefix), static_cast<int64_t>(ids[g].size())};
      ++branch;
      for (size_t t = prefix; t < r.size(); ++t) ids[g].push_back(r[t]), pos[g].push_back(static_cast<int64_t>(t)), seg[g].push_back(branch);
    }
  }
  size_t T = 0;
  for (const auto& r : ids) T = std::max(T, r.size());
  const int64_t S = static_cast<int64_t>(ids.size());
  Packed p;
  p.shared = true;
  p.ids = at::full({S, static_cast<int64_t>(T)}, pad_id, at::kLong);
  p.layout.position_ids = at::zeros({S, static_cast<int64_t>(T)}, at::kLong);
  p.layout.segments = at::full({S, static_cast<int64_t>(T)}, -1, at::kLong);
  for (int64_t g = 0; g < S; ++g) {
    std::copy(ids[g].begin(), ids[g].end(), p.ids[g].data_ptr<int64_t>());
    std::copy(pos[g].begin(), pos[g].end(), p.layout.position_ids[g].data_ptr<int64_t>());
    std::copy(seg[g].begin(), seg[g].end(), p.layout.segments[g].data_ptr<int64_t>());
  }
  std::vector<int64_t> positions, targets, token_seq;
  for (size_t s = 0; s < rows.size(); ++s) {
    const Place& pl = place[s];
    const int64_t row = pl.row * static_cast<int64_t>(T);
    add_targets(*rows[s], seq_ids[s],
                [&](int64_t i) { return row + (i < pl.prefix ? i : pl.start + i - pl.prefix); }, positions, targets,
                token_seq);
  }
  p.positions = at::tensor(positions, at::kLong);
  p.targets = at::tensor(targets, at::kLong);
  p.token_seq = at::tensor(token_seq, at::kLong);
  return p;
}

// Relative cost of a forward over `rows` rows of T tokens: the decoder's matmuls per token (its weights, times 2
// FLOPs) plus attention per (query, key) pair of a row (4 x heads x head_dim FLOPs; masked pairs are computed too).
double forward_cost(const ModelConfig& c, int64_t rows, int64_t T) {
  const double H = static_cast<double>(c.hidden_size), D = static_cast<double>(c.head_dim);
  const double q = static_cast<double>(c.num_attention_heads) * D, kv = static_cast<double>(c.num_key_value_heads) * D;
  const double layer = H * (2 * q + 2 * kv) + 3 * H * static_cast<double>(c.intermediate_size);
  return static_cast<double>(rows) * static_cast<double>(T) * (2 * layer + 4 * q * static_cast<double>(T));
}

// The layout of a micro-batch's forward: shared prefixes when allowed, the model can run them and the forward
// costs less that way, with a mask (rows x T x T booleans) of at most 256 MiB.
Packed pack_for(const Llama& model, const std::vector<const TrainSequence*>& rows, const std::vector<int64_t>& seq_ids,
                const std::vector<int64_t>& group, int64_t pad_id, bool share) {
  Packed plain = pack(rows, seq_ids, pad_id);
  if (!share || !model->can_pack()) return plain;
  Packed shared = pack_shared(rows, seq_ids, group, pad_id);
  const int64_t S = shared.ids.size(0), T = shared.ids.size(1);
  const double mask_bytes = static_cast<double>(S) * static_cast<double>(T) * static_cast<double>(T);
  const ModelConfig& c = model->config;
  if (mask_bytes > 256.0 * (1 << 20) || forward_cost(c, S, T) >= forward_cost(c, plain.ids.size(0), plain.ids.size(1)))
    return plain;
  return shared;
}

// The hidden states [S, T, H] of a packed micro-batch; ids on the model's device.
at::Tensor run_forward(Llama& model, const Packed& p, const at::Tensor& ids) {
  if (p.shared) return model->forward_packed(ids, p.layout);
  return model->forward(ids, p.padded ? p.mask.to(ids.device()) : at::Tensor());
}

ops::GateInputs gate_inputs(const MicroBatch& mb, const at::Tensor& token_seq) {
  ops::GateInputs in;
  in.rollout_scores = mb.rollout_scores;
  in.reference_scores = mb.reference_scores;
  in.token_seq = token_seq;
  in.scorer_uncertainty = mb.scorer_uncertainty;
  return in;
}

// vocab_kl's autograd function: forward and backward loop over token chunks.
struct VocabKl : public torch::autograd::Function<VocabKl> {
  // Logits of a chunk (float32), soft-capped when cap > 0; `slope` gets d capped / d z = 1 - tanh^2 when asked.
  static at::Tensor chunk_logits(const at::Tensor& h, const at::Tensor& W, double cap, at::Tensor* slope = nullptr) {
    at::Tensor z = at::matmul(h, W.t()).to(at::kFloat);  // [c, V]
    if (cap <= 0) return z;
    const at::Tensor t = at::tanh(z / cap);
    if (slope) *slope = 1 - t * t;
    return t * cap;
  }

  // KL_n of one chunk and, for backward, p and log p - log q - KL_n (float32), times the cap's slope when capped.
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_terms(const at::Tensor& h, const at::Tensor& W,
                                                                    const at::Tensor& r, const at::Tensor& R,
                                                                    double cap) {
    at::Tensor slope;
    const at::Tensor lp = at::log_softmax(chunk_logits(h, W, cap, &slope), -1);  // [c, V]
    const at::Tensor lq = at::log_softmax(chunk_logits(r, R, cap), -1);          // [c, V]
    const at::Tensor p = cap > 0 ? lp.exp() * slope : lp.exp();
    const at::Tensor d = lp - lq;
    const at::Tensor kl = (lp.exp() * d).sum(-1);  // [c]
    return {kl, p, d - kl.unsqueeze(1)};
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, const at::Tensor& W,
                            const at::Tensor& r, const at::Tensor& R, const at::Tensor& a, int64_t chunk,
                            double cap) {
    ctx->save_for_backward({h, W, r, R, a});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["cap"] = cap;
    at::Tensor total = at::zeros({}, h.options().dtype(at::kFloat));
    torch::NoGradGuard no_grad;
    for (int64_t s = 0; s < h.size(0); s += chunk) {
      const int64_t c = std::min(chunk, h.size(0) - s);
      const auto [kl, p, g] = chunk_terms(h.narrow(0, s, c), W, r.narrow(0, s, c), R, cap);
      total += (a.narrow(0, s, c).to(at::kFloat) * kl).sum();
    }
    return total;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &W = saved[1], &r = saved[2], &R = saved[3], &a = saved[4];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const double cap = ctx->saved_data["cap"].toDouble();
    const at::Tensor go = grad_out[0].to(at::kFloat);
    const bool want_dW = ctx->needs_input_grad(1);  // not under LoRA, where the LM head is frozen
    at::Tensor dh = at::empty_like(h), dW = want_dW ? at::zeros(W.sizes(), W.options().dtype(at::kFloat)) : at::Tensor();
    for (int64_t s = 0; s < h.size(0); s += chunk) {
      const int64_t c = std::min(chunk, h.size(0) - s);
      const at::Tensor hc = h.narrow(0, s, c);
      const auto [kl, p, g] = chunk_terms(hc, W, r.narrow(0, s, c), R, cap);
      const at::Tensor dlogits = p * g * (a.narrow(0, s, c).to(at::kFloat) * go).unsqueeze(1);  // [c, V]
      dh.narrow(0, s, c).copy_(at::matmul(dlogits, W.to(at::kFloat)));
      if (want_dW) dW += at::matmul(dlogits.t(), hc.to(at::kFloat));
    }
    return {dh, want_dW ? dW.to(W.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor vocab_kl(const at::Tensor& h, const at::Tensor& W, const at::Tensor& r, const at::Tensor& R,
                    const at::Tensor& a, int64_t chunk, double softcap) {
  TORCH_CHECK(h.dim() == 2 && r.sizes() == h.sizes() && W.dim() == 2 && R.sizes() == W.sizes() && W.size(1) == h.size(1) &&
                  a.dim() == 1 && a.size(0) == h.size(0),
              "vocab_kl: expected h, r [N, H], W, R [V, H], a [N]; got ", h.sizes(), ", ", W.sizes(), ", ", r.sizes(),
              ", ", R.sizes(), ", ", a.sizes());
  if (chunk <= 0) chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, W.size(0)));
  return VocabKl::apply(h, W, r.detach(), R.detach(), a.detach(), chunk, softcap);
}

int64_t abstention_head(const std::vector<double>& scores, const std::vector<std::string>& categories,
                        const std::vector<std::string>& priority, double delta) {
  TORCH_CHECK(!scores.empty() && scores.size() == categories.size(), "abstention_head: one category per score");
  const auto rank = [&](size_t h) {
    const auto it = std::find(priority.begin(), priority.end(), categories[h]);
    return static_cast<size_t>(it - priority.begin());  // unlisted: priority.size()
  };
  int64_t best = -1;
  for (size_t h = 0; h < scores.size(); ++h) {
    if (!(scores[h] < delta)) continue;
    if (best < 0 || std::make_pair(rank(h), scores[h]) < std::make_pair(rank(best), scores[best])) best = static_cast<int64_t>(h);
  }
  if (best >= 0) return best;
  best = 0;
  for (size_t h = 1; h < scores.size(); ++h)
    if (scores[h] < scores[best]) best = static_cast<int64_t>(h);
  return best;
}

ops::GateOutputs decide_gate(const MicroBatch& mb, const ops::GateParams& params) {
  return ops::gate_weights(gate_inputs(mb, at::zeros({0}, at::kLong)), params);
}

LossResult compute_loss(Llama& policy, Llama* reference, const MicroBatch& mb, const ops::GateOutputs& decision,
                        const ObjectiveParams& params) {
  const int64_t B = mb.B, K = mb.K, R = mb.R;
  TORCH_CHECK(static_cast<int64_t>(mb.references.size()) == B && static_cast<int64_t>(mb.rollouts.size()) == B * K,
              "compute_loss: expected ", B, " references and ", B * K, " rollouts");
  TORCH_CHECK(R == 0 || (static_cast<int64_t>(mb.recovery.size()) == B * R && mb.recovery_scores.defined() &&
                         mb.recovery_scores.sizes() == at::IntArrayRef({B, R})),
              "compute_loss: expected ", B * R, " recovery rollouts with [", B, ", ", R, "] scores");
  TORCH_CHECK(mb.recovery_targets.empty() || static_cast<int64_t>(mb.recovery_targets.size()) == B,
              "compute_loss: expected ", B, " recovery targets or none");
  // Sequence ids of the packed batch: reference i, plain rollout B + i*K + k, recovery rollout B + BK + i*R + r,
  // recovery target B + BK + BR + i. The gate op sees the first two kinds; the recovery rollouts go through a
  // second gate call of their own (fixed gate 1, no abstention), the targets are weighed here.
  const int64_t first_recovery = B + B * K, first_target = first_recovery + B * R;
  ops::GateParams rec_params = params.gate;
  rec_params.mode = ops::GateMode::kFixed;
  rec_params.g0 = 1.0;
  rec_params.lambda = params.recovery_lambda;
  rec_params.delta = 0.0;
  rec_params.abstention = false;
  const auto recovery_inputs = [&](const at::Tensor& token_seq) {
    ops::GateInputs in;
    in.rollout_scores = mb.recovery_scores;
    in.reference_scores = mb.reference_scores;
    in.token_seq = token_seq;
    return in;
  };
  at::Tensor rec_adv_t;  // [B, R]
  if (R > 0) rec_adv_t = ops::gate_weights(recovery_inputs(at::zeros({0}, at::kLong)), rec_params).advantages;
  const bool with_kl = params.kl != KlMode::kNone && K > 0;             // gaft: KL on the rollouts
  const bool with_vocab_kl = params.kl == KlMode::kLoss && K == 0;       // sft, filter: KL at reference tokens
  TORCH_CHECK(!(with_kl || with_vocab_kl) || reference != nullptr, "compute_loss: the KL term needs the reference policy");
  const float* g = decision.g.data_ptr<float>();
  const int32_t* flags = decision.flags.data_ptr<int32_t>();
  const float* adv = decision.advantages.data_ptr<float>();
  const float* r = mb.rollout_scores.data_ptr<float>();

  // Sequences with a non-zero weight: a reference unless its SFT term is dropped or c = 1 - g is 0 without
  // abstention (`complement` only; under `reference` c = 1 - g (1 - s) is 0 only for s = 0, which delta
  // drops); a rollout with a finite score when it has a gate and an advantage (or a KL term).
  std::vector<const TrainSequence*> rows;
  std::vector<int64_t> seq_ids;
  for (int64_t i = 0; i < B; ++i) {
    const bool abstain = flags[i] & ops::kFlagAbstain, dropped = flags[i] & ops::kFlagDropSft;
    const bool complement = params.gate.sft_coef == ops::SftCoefficient::kComplement;
    if (!dropped && (abstain || g[i] < 1.0f || !complement)) {
      rows.push_back(&mb.references[i]);
      seq_ids.push_back(i);
    }
  }
  for (int64_t i = 0; i < B; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const TrainSequence& s = mb.rollouts[i * K + k];
      if (s.ids.size() < 2 || !std::isfinite(r[i * K + k])) continue;
      if (with_kl || (g[i] > 0.0f && adv[i * K + k] != 0.0f)) {
        rows.push_back(&s);
        seq_ids.push_back(B + i * K + k);
      }
    }
  if (R > 0) {
    const float* rr = mb.recovery_scores.data_ptr<float>();
    const float* ra = rec_adv_t.data_ptr<float>();
    for (int64_t j = 0; j < B * R; ++j) {
      const TrainSequence& s = mb.recovery[j];
      if (s.ids.size() < 2 || !std::isfinite(rr[j]) || ra[j] == 0.0f || params.recovery_lambda == 0.0) continue;
      rows.push_back(&s);
      seq_ids.push_back(first_recovery + j);
    }
  }
  if (params.recovery_target_weight > 0)
    for (int64_t i = 0; i < static_cast<int64_t>(mb.recovery_targets.size()); ++i)
      if (mb.recovery_targets[i].ids.size() >= 2) {
        rows.push_back(&mb.recovery_targets[i]);
        seq_ids.push_back(first_target + i);
      }

  LossResult out;
  const at::Tensor W = policy->lm_head_weight();
  if (rows.empty()) {
    out.loss = (W.sum() * 0.0).to(at::kFloat);  // keeps backward valid: every gradient is 0
    out.gate = decision;
    out.recovery_advantages = rec_adv_t;
    return out;  // loss_value 0
  }
  std::vector<int64_t> example(seq_ids.size());  // the example of each row: rows of one example share its prompt
  for (size_t s = 0; s < seq_ids.size(); ++s) {
    const int64_t id = seq_ids[s];
    example[s] = id < B ? id : id < first_recovery ? (id - B) / K : id < first_target ? (id - first_recovery) / R
                                                                                      : id - first_target;
  }
  const Packed p = pack_for(policy, rows, seq_ids, example, params.pad_id, params.share_prefixes);
  const auto dev = W.device();
  const at::Tensor ids = p.ids.to(dev);
  const at::Tensor hidden = run_forward(policy, p, ids);  // [S, T, H]
  const int64_t H = hidden.size(2);
  const at::Tensor positions = p.positions.to(dev);
  const at::Tensor h = policy->head_input(hidden.reshape({-1, H}).index_select(0, positions));  // [N, H]
  const double softcap = policy->config.final_softcap;  // Gemma: logits c tanh(z / c), inside the fused op
  const at::Tensor Wc = W.scalar_type() == h.scalar_type() ? W : W.to(h.scalar_type());
  const at::Tensor targets = p.targets.to(dev);
  out.sequences = static_cast<int64_t>(rows.size());
  out.tokens = p.targets.size(0);
  out.padded_tokens = p.ids.numel();

  // Per-token weights from the gate op (on the CPU: B and N are small).
  const at::Tensor plain_seq = at::where(p.token_seq < first_recovery, p.token_seq, -1);  // [N]
  ops::GateOutputs gate = ops::gate_weights(gate_inputs(mb, plain_seq), params.gate);
  at::Tensor weights = gate.weights;  // [N]
  const at::Tensor is_rollout = (p.token_seq >= B) & (p.token_seq < first_recovery);  // [N] bool: plain rollouts
  const at::Tensor is_recovery = p.token_seq >= first_recovery;                        // [N] bool: rollouts, targets
  if (R > 0) {
    const at::Tensor in_recovery = is_recovery & (p.token_seq < first_target);
    const at::Tensor rec_seq = at::where(in_recovery, p.token_seq - first_recovery + B, -1);
    weights = weights + ops::gate_weights(recovery_inputs(rec_seq), rec_params).weights;
  }
  if (!mb.recovery_targets.empty()) {
    // A target's tokens weigh like an imitated reference's: -target_weight / (B_norm |y|) (sft_norm sequence) or
    // -target_weight / T_norm (token; T_norm as the gate op counts it: the reference tokens of this forward).
    // Counted on the host from the packed ids (no device read).
    const double b_norm = params.gate.norm_examples > 0 ? params.gate.norm_examples : static_cast<double>(B);
    const int64_t* ts = p.token_seq.data_ptr<int64_t>();
    const int64_t N = p.token_seq.size(0);
    std::vector<double> len(static_cast<size_t>(B), 0.0);
    double ref_tokens = 0;
    for (int64_t n = 0; n < N; ++n) {
      if (ts[n] >= first_target) len[static_cast<size_t>(ts[n] - first_target)] += 1;
      if (ts[n] >= 0 && ts[n] < B) ref_tokens += 1;
    }
    const double t_norm = params.gate.norm_tokens > 0 ? params.gate.norm_tokens : std::max(1.0, ref_tokens);
    at::Tensor extra = at::zeros({N});
    float* e = extra.data_ptr<float>();
    for (int64_t n = 0; n < N; ++n)
      if (ts[n] >= first_target)
        e[n] = static_cast<float>(-params.recovery_target_weight /
                                  (params.gate.sft_norm == ops::SftNorm::kToken
                                       ? t_norm
                                       : b_norm * len[static_cast<size_t>(ts[n] - first_target)]));
    weights = weights + extra;
  }
  if (with_kl) {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> rollout_tokens;  // indices of the rollout tokens, read on the host
    const int64_t* ts = p.token_seq.data_ptr<int64_t>();
    for (int64_t n = 0; n < p.token_seq.size(0); ++n)
      if (ts[n] >= B && ts[n] < first_recovery) rollout_tokens.push_back(n);
    const at::Tensor sel = at::tensor(rollout_tokens, at::kLong);  // [Nr]
    const at::Tensor sel_dev = sel.to(dev);
    const at::Tensor rollout_targets = targets.index_select(0, sel_dev);
    const at::Tensor logp =
        ops::token_logprob(h.detach().index_select(0, sel_dev), Wc.detach(), rollout_targets, false, 0, softcap)
            .logp.to(at::kFloat);
    // The reference is the policy itself under LoRA: its base, with the adapters off for this forward.
    std::optional<AdaptersDisabled> base_only;
    if (reference->get() == policy.get()) base_only.emplace(**reference);
    const at::Tensor ref_hidden = run_forward(*reference, p, ids);
    const at::Tensor ref_h =
        (*reference)->head_input(ref_hidden.reshape({-1, H}).index_select(0, positions.index_select(0, sel_dev)));
    const at::Tensor ref_W = (*reference)->lm_head_weight();
    const at::Tensor ref_logp =
        ops::token_logprob(ref_h, ref_W.scalar_type() == ref_h.scalar_type() ? ref_W : ref_W.to(ref_h.scalar_type()),
                           rollout_targets, false, 0, softcap)
            .logp.to(at::kFloat);
    // The per-token weights are built on the host: one copy of both log-probabilities.
    const at::Tensor both = to_host(at::stack({logp, ref_logp}));  // [2, Nr]
    const at::Tensor diff = both[0] - both[1];                       // [Nr] log pi - log pi_ref
    const at::Tensor seq = p.token_seq.index_select(0, sel) - B;                      // [Nr] i * K + k
    const at::Tensor kl_seq = at::zeros({B * K}).index_add_(0, seq, diff).view({B, K});  // [B, K]
    const at::Tensor valid = mb.rollout_scores.isfinite();  // [B, K] host
    {
      const bool* v = valid.data_ptr<bool>();
      const float* kls = kl_seq.data_ptr<float>();
      double sum = 0.0;
      int64_t n_valid = 0;
      for (int64_t j = 0; j < B * K; ++j)
        if (v[j]) sum += kls[j], ++n_valid;
      out.kl = n_valid > 0 ? sum / static_cast<double>(n_valid) : 0.0;
    }
    if (params.kl == KlMode::kReward) {
      // r' = r - beta * KL(i, k); advantages from r', with the gate and SFT coefficients of the plain scores.
      MicroBatch shaped = mb;
      shaped.rollout_scores = mb.rollout_scores - params.kl_beta * kl_seq;
      ops::GateParams fixed_gate = params.gate;
      fixed_gate.mode = ops::GateMode::kLearned;
      ops::GateInputs in = gate_inputs(shaped, plain_seq);
      in.learned_gate = gate.g;
      const ops::GateOutputs second = ops::gate_weights(in, fixed_gate);
      weights = at::where(is_rollout, second.weights, weights);
      gate.advantages = second.advantages;
    } else {
      // k3 = exp(ref - logp) - (ref - logp) - 1 per rollout token, averaged like the PG term:
      // d k3 / d logp = 1 - exp(ref - logp), folded into the weight (a constant per token).
      const at::Tensor k = valid.sum(1).clamp_min(1).to(at::kFloat);                     // [B] K_i
      const at::Tensor len = at::zeros({B * K}).index_add_(0, seq, at::ones_like(diff));  // [B*K] |y|
      const double b_norm = params.gate.norm_examples > 0 ? params.gate.norm_examples : static_cast<double>(B);
      const at::Tensor denom = (b_norm * k.repeat_interleave(K) * len.clamp_min(1)).index_select(0, seq);
      const at::Tensor extra = params.kl_beta * (1.0 - (-diff).exp()) / denom;  // [Nr]
      weights = weights.index_add(0, sel, extra);
    }
  }
  out.gate = gate;
  out.gate.weights = weights;
  out.recovery_advantages = rec_adv_t;

  ops::WeightedLogprobOptions wo;
  wo.want_logp = true;
  wo.softcap = softcap;
  const at::Tensor weights_dev = weights.to(dev);
  const ops::WeightedLogprob wl = ops::weighted_logprob(h, Wc, targets, weights_dev, wo);
  out.loss = wl.loss.to(at::kFloat);
  at::Tensor kl_sum, a_sum;  // vocab KL: its sum and the weights' sum, read back with the loss
  if (with_vocab_kl) {
    // beta * sum_n a_n KL(pi(.|n) || pi_ref(.|n)) over the trained reference tokens, each token weighted as the
    // SFT term normalises it (a_n = -w_n: 1/(B |y_i|) or 1/T), so that the term is a per-token mean like it.
    at::Tensor ref_h, ref_W;
    {
      torch::NoGradGuard no_grad;
      std::optional<AdaptersDisabled> base_only;
      if (reference->get() == policy.get()) base_only.emplace(**reference);
      ref_h = (*reference)->head_input(run_forward(*reference, p, ids).reshape({-1, H}).index_select(0, positions));
      ref_W = (*reference)->lm_head_weight();
    }
    const at::Tensor a = (-weights_dev).clamp_min(0.0);  // [N]
    kl_sum = vocab_kl(h, Wc, ref_h, ref_W.to(ref_h.scalar_type()), a, 0, softcap);
    out.loss = out.loss + params.kl_beta * kl_sum;
    a_sum = a.sum();
  }
  {
    // One host copy per micro-batch: the loss, its rollout part, its total, and the vocab KL's two sums.
    torch::NoGradGuard no_grad;
    const at::Tensor contrib = weights_dev.to(at::kDouble) * wl.logp.to(at::kDouble);  // [N]
    const at::Tensor zero = at::zeros({}, contrib.options());
    const at::Tensor stats = to_host(at::stack({out.loss.detach().to(at::kDouble),
                                                (contrib * is_rollout.to(dev)).sum(), contrib.sum(),
                                                kl_sum.defined() ? kl_sum.detach().to(at::kDouble) : zero,
                                                a_sum.defined() ? a_sum.to(at::kDouble) : zero,
                                                (contrib * is_recovery.to(dev)).sum()}));  // [6]
    const double* v = stats.data_ptr<double>();
    out.loss_value = v[0];
    out.loss_pg = v[1];
    out.loss_recovery = v[5];
    out.loss_sft = v[2] - v[1] - v[5];
    if (with_vocab_kl) out.kl = v[4] > 0 ? v[3] / v[4] : 0.0;
  }
  return out;
}

ClassifierLoss classifier_loss(Llama& model, const std::vector<std::vector<int64_t>>& sequences,
                               const std::vector<int64_t>& labels, int64_t pad_id) {
  auto [ids, mask] = pad_right(sequences, pad_id);
  const auto dev = model->model->embed_tokens->weight.device();
  ids = ids.to(dev);
  mask = mask.to(dev);
  const at::Tensor logits = model->classify(model->forward(ids, mask), mask).to(at::kFloat);  // [B, C]
  const at::Tensor y = at::tensor(labels, at::kLong).to(dev);
  ClassifierLoss out;
  out.loss = at::cross_entropy_loss(logits, y);
  out.correct = logits.argmax(-1).eq(y).sum().item<int64_t>();
  out.count = static_cast<int64_t>(labels.size());
  return out;
}

double LearnedGate::predict(const Features& x) const {
  double z = 0.0;
  for (int f = 0; f < kFeatures; ++f) z += w[f] * x[f];
  return 1.0 / (1.0 + std::exp(-z));
}

void LearnedGate::update(const Features& x, double target, double lr) {
  const double err = predict(x) - target;  // d(logistic loss)/dz with a soft target
  for (int f = 0; f < kFeatures; ++f) w[f] -= lr * err * x[f];
}

TrainSequence reference_sequence(const Example& ex) {
  TrainSequence s;
  s.ids = ex.prompt_ids;
  s.ids.insert(s.ids.end(), ex.response_ids.begin(), ex.response_ids.end());
  s.trained = ex.prompt_mask;
  s.trained.insert(s.trained.end(), ex.response_ids.size(), 1);
  return s;
}

std::pair<at::Tensor, at::Tensor> reference_nll_entropy(Llama& policy, const std::vector<TrainSequence>& refs,
                                                        int64_t pad_id) {
  torch::NoGradGuard no_grad;
  std::vector<const TrainSequence*> rows;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < refs.size(); ++i) {
    rows.push_back(&refs[i]);
    ids.push_back(static_cast<int64_t>(i));
  }
  const Packed p = pack(rows, ids, pad_id);
  const at::Tensor W = policy->lm_head_weight();
  const auto dev = W.device();
  const at::Tensor hidden = policy->forward(p.ids.to(dev), p.padded ? p.mask.to(dev) : at::Tensor());
  const at::Tensor h = policy->head_input(hidden.reshape({-1, hidden.size(2)}).index_select(0, p.positions.to(dev)));
  const ops::TokenLogprob t = ops::token_logprob(h, W.to(h.scalar_type()), p.targets.to(dev), /*want_entropy=*/true, 0,
                                                 policy->config.final_softcap);
  const int64_t B = static_cast<int64_t>(refs.size());
  const at::Tensor count = at::zeros({B}).index_add_(0, p.token_seq, at::ones({p.token_seq.size(0)})).clamp_min(1);
  const at::Tensor both = to_host(at::stack({t.logp.to(at::kFloat), t.entropy.to(at::kFloat)}));  // [2, N], one copy
  const at::Tensor nll = at::zeros({B}).index_add_(0, p.token_seq, -both[0]) / count;
  const at::Tensor ent = at::zeros({B}).index_add_(0, p.token_seq, both[1]) / count;
  return {nll, ent};
}

}  // namespace gaft
