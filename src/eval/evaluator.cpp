// gaft eval: generation, judgement and aggregation. See gaft/evaluator.h and docs/eval.md.
#include "gaft/evaluator.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>
#include <tuple>

#include "gaft/atomic_file.h"
#include "gaft/dataset.h"
#include "gaft/device.h"
#include "gaft/error.h"
#include "gaft/eval_report.h"
#include "gaft/fingerprint.h"
#include "gaft/generate.h"
#include "gaft/log.h"
#include "gaft/objective.h"
#include "gaft/rollout.h"

namespace fs = std::filesystem;

namespace gaft::eval {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// FNV-1a: a stable hash of names for per-metric bootstrap seeds.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// One generation request: prompt ids (template applied, prefill appended) and where its answer goes.
struct Request {
  int64_t record;                   // index into the suite's record list
  std::vector<int64_t> ids;         // [P]
  std::vector<int64_t> prefill;     // forced response start (prefill attack)
};

// The chat-formatted prompt of one user message.
std::vector<int64_t> prompt_ids(const EvalPolicy& p, const std::string& prompt, int64_t max_tokens) {
  return apply_chat_template(*p.tok, p.tmpl, {{"user", fit_prompt(p, prompt, max_tokens)}},
                             /*add_generation_prompt=*/true).ids;
}

// The first `n` response tokens of `text` as training renders an assistant reply to `prompt` (so the forced
// start is tokenized as the model saw replies), without end-of-turn tokens.
// `text` rendered as the assistant's reply to `prompt` (as training renders it), its trailing end-of-turn
// tokens dropped while more than `keep` response tokens remain.
Example reply_without_end_of_turn(const EvalPolicy& p, const std::string& prompt, const std::string& text, size_t keep) {
  Example ex;
  Renderer{p.tok, p.tmpl}.render({{"user", prompt}, {"assistant", text}}, &ex);
  const std::vector<int64_t> eot = end_of_turn_ids(*p.tok, p.tmpl);
  std::vector<int64_t>& ids = ex.response_ids;
  while (ids.size() > keep && std::find(eot.begin(), eot.end(), ids.back()) != eot.end()) ids.pop_back();
  return ex;
}

std::vector<int64_t> response_start(const EvalPolicy& p, const std::string& prompt, const std::string& text, int64_t n) {
  std::vector<int64_t> ids = reply_without_end_of_turn(p, prompt, text, 0).response_ids;
  if (static_cast<int64_t>(ids.size()) > n) ids.resize(static_cast<size_t>(n));
  return ids;
}

// The teacher-forced sequence of `ex`, its response cut to the room the prompt leaves in the context (but at
// least `min_tokens`); appends it to `seqs` and the number of response tokens it scores to `tokens`.
void add_scored(const EvalPolicy& p, Example ex, int64_t min_tokens, std::vector<TrainSequence>* seqs,
                std::vector<int64_t>* tokens) {
  const int64_t room = p.model->config.max_position_embeddings - static_cast<int64_t>(ex.prompt_ids.size());
  if (static_cast<int64_t>(ex.response_ids.size()) > room)
    ex.response_ids.resize(static_cast<size_t>(std::max<int64_t>(room, min_tokens)));
  tokens->push_back(static_cast<int64_t>(ex.response_ids.size()));
  seqs->push_back(reference_sequence(ex));
}

// The summed NLL (nats) of each sequence's scored tokens (tokens[i] of them), in consecutive batches of
// `batch_size` sequences.
std::vector<double> summed_nll(EvalPolicy& p, const std::vector<TrainSequence>& seqs, const std::vector<int64_t>& tokens,
                               int64_t batch_size) {
  const int64_t pad = pad_id_for(p.model, *p.tok);
  std::vector<double> out;
  out.reserve(seqs.size());
  for (size_t start = 0; start < seqs.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(seqs.size(), start + static_cast<size_t>(batch_size));
    const std::vector<TrainSequence> batch(seqs.begin() + static_cast<std::ptrdiff_t>(start),
                                           seqs.begin() + static_cast<std::ptrdiff_t>(end));
    const at::Tensor nll = reference_nll_entropy(p.model, batch, pad).first;  // [B] mean per token
    for (size_t i = start; i < end; ++i)
      out.push_back(nll[static_cast<int64_t>(i - start)].item<double>() * static_cast<double>(tokens[i]));
  }
  return out;
}

std::string apply_wrapper(const std::string& tmpl, const std::string& prompt) {
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = tmpl.find("{prompt}", pos)) != std::string::npos; pos = at + 8) out += tmpl.substr(pos, at - pos) + prompt;
  return out + tmpl.substr(pos);
}

// Generates every request (prompt ++ prefill), filling records[r].response with the decoded prefill ++ answer.
void generate_all(EvalPolicy& p, const LoadedSuite& suite, std::vector<Request>& reqs, std::vector<ItemRecord>& records,
                  const GenerationSection& g, uint64_t seed, ModelResult* result) {
  GenerationOptions opt;
  opt.max_new_tokens = g.max_new_tokens;
  opt.temperature = g.temperature;
  opt.top_p = g.top_p;
  opt.top_k = g.top_k;
  opt.seed = seed;
  opt.pad_id = pad_id_for(p.model, *p.tok);
  opt.stop_tokens = end_of_turn_ids(*p.tok, p.tmpl);
  for (int64_t id : p.model->config.eos_token_ids)
    if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), id) == opt.stop_tokens.end()) opt.stop_tokens.push_back(id);
  std::vector<std::vector<int64_t>> prompts;
  for (const Request& r : reqs) {
    prompts.push_back(r.ids);
    prompts.back().insert(prompts.back().end(), r.prefill.begin(), r.prefill.end());
  }
  // Each prompt's own budget: the room its length leaves in the context, at most max_new_tokens.
  const int64_t context = p.model->config.max_position_embeddings;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const int64_t room = context - static_cast<int64_t>(prompts[i].size());
    if (room < 1)
      throw DataError(suite.path + ": item '" + suite.items[static_cast<size_t>(records[reqs[i].record].item)].id +
                          "' (" + records[reqs[i].record].attack + "): its prompt of " + std::to_string(prompts[i].size()) +
                          " tokens fills the context of " + std::to_string(context) + " tokens of " + p.path,
                      "lower generation.max_prompt_tokens (0 leaves generation.max_new_tokens of room)");
    ItemRecord& rec = records[reqs[i].record];
    rec.budget = std::min(g.max_new_tokens, room);
    rec.cut_short = rec.budget < g.max_new_tokens;
    opt.max_new_tokens_per_row.push_back(rec.budget);
    // A sampled response depends on its item and attack alone, not on the batch it lands in.
    opt.streams.push_back(
        fnv1a(std::to_string(rec.item) + "\n" + suite.items[static_cast<size_t>(rec.item)].id + "\n" + rec.attack));
  }
  const auto t0 = Clock::now();
  const std::vector<std::vector<int64_t>> out = generate_batched(p.model, prompts, opt, g.batch_size);
  result->generate_seconds += seconds_since(t0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ItemRecord& rec = records[reqs[i].record];
    std::vector<int64_t> generated = out[i];
    const bool cut = cut_at_stop_string(*p.tok, g.stop, &generated);
    if (reqs[i].prefill.empty()) {
      rec.response = p.tok->decode(generated);
    } else {
      // What the model added after the forced start: decoded together with it (so that its first word keeps
      // its leading space), then the start's own text removed.
      std::vector<int64_t> all = reqs[i].prefill;
      all.insert(all.end(), generated.begin(), generated.end());
      const std::string full = p.tok->decode(all);
      rec.prefill = p.tok->decode(reqs[i].prefill);
      rec.response = full.compare(0, rec.prefill.size(), rec.prefill) == 0 ? full.substr(rec.prefill.size())
                                                                          : p.tok->decode(generated);
    }
    rec.response_tokens = static_cast<int64_t>(generated.size());
    rec.hit_max_tokens = !cut && static_cast<int64_t>(out[i].size()) >= rec.budget;
    result->new_tokens += rec.response_tokens;
    result->cut_short += rec.cut_short;
  }
  result->prompts += static_cast<int64_t>(reqs.size());
}

// Summed NLL of each task item's reference under the model, in batches.
void reference_losses(EvalPolicy& p, const LoadedSuite& suite, std::vector<ItemRecord>& records, const EvalConfig& cfg,
                      int64_t max_prompt) {
  const Renderer renderer{p.tok, p.tmpl};
  std::vector<size_t> which;
  std::vector<TrainSequence> seqs;
  std::vector<int64_t> tokens;
  for (size_t r = 0; r < records.size(); ++r) {
    const EvalItem& item = suite.items[records[r].item];
    if (records[r].attack != "plain" || item.kind != ItemKind::kTask) continue;
    Example ex;
    renderer.render({{"user", fit_prompt(p, item.prompt, max_prompt)}, {"assistant", item.reference}}, &ex);
    add_scored(p, std::move(ex), 0, &seqs, &tokens);
    which.push_back(r);
  }
  const std::vector<double> nll = summed_nll(p, seqs, tokens, cfg.generation.batch_size);
  for (size_t i = 0; i < which.size(); ++i) {
    records[which[i]].reference_tokens = tokens[i];
    records[which[i]].nll = nll[i];
  }
}

// TruthfulQA's MC1 and MC2 for each plain qa record whose item lists incorrect answers (HaluEval's excepted,
// below): the summed log-likelihood of every answer as the model's reply to the item's prompt (its chat
// template, teacher forced; the end-of-turn token would score how the model ends a reply, not the answer).
void multiple_choice_scores(EvalPolicy& p, const LoadedSuite& suite, std::vector<ItemRecord>& records,
                            const EvalConfig& cfg, int64_t max_prompt) {
  struct Scored {
    size_t record;
    size_t correct;  // its sequences: `correct` correct answers, then the incorrect ones
    size_t first, count;
  };
  std::vector<Scored> items;
  std::vector<TrainSequence> seqs;
  std::vector<int64_t> tokens;
  for (size_t r = 0; r < records.size(); ++r) {
    const EvalItem& item = suite.items[records[r].item];
    if (records[r].attack != "plain" || item.kind != ItemKind::kQa || item.incorrect_answers.empty()) continue;
    // Not HaluEval: its right answers are short and its hallucinated ones sentences, so the summed
    // likelihood picks the short one (a 260K-parameter story model scores MC1 0.94 there; chance is 0.5).
    if (suite.format == SuiteFormat::kHaluEval) continue;
    const std::string prompt = fit_prompt(p, item.prompt, max_prompt);
    items.push_back({r, item.answers.size(), seqs.size(), item.answers.size() + item.incorrect_answers.size()});
    for (const auto* list : {&item.answers, &item.incorrect_answers})
      for (const std::string& answer : *list) add_scored(p, reply_without_end_of_turn(p, prompt, answer, 1), 1, &seqs, &tokens);
  }
  const std::vector<double> nll = summed_nll(p, seqs, tokens, cfg.generation.batch_size);
  for (const Scored& it : items) {
    std::vector<double> t, f;
    for (size_t k = 0; k < it.count; ++k) (k < it.correct ? t : f).push_back(-nll[it.first + k]);
    const MultipleChoice mc = multiple_choice(t, f);
    ItemRecord& rec = records[it.record];
    rec.mc1 = mc.mc1;
    rec.mc2 = mc.mc2;
    rec.mc_chance = 1.0 / static_cast<double>(1 + f.size());
  }
}

// Which judge list applies to an item kind: harm on harmful items, refusal on harmful and benign ones,
// hallucination on qa and unanswerable ones.
bool judges_harm(ItemKind k) { return k == ItemKind::kHarmful; }
bool judges_refusal(ItemKind k) { return k == ItemKind::kHarmful || k == ItemKind::kBenign; }
bool judges_hallucination(const EvalItem& it) {
  return it.kind == ItemKind::kQa || it.kind == ItemKind::kUnanswerable || it.judge_hallucination;
}

Verdict verdict(bool yes) { return yes ? Verdict::kYes : Verdict::kNo; }

// Rule and scorer judgements of every record of one suite. Each head runs once, on the records that one of
// its judge lists needs; it reads the item's own request (not a jailbreak wrapper) and the response the model
// generated (after a prefill).
void judge(const LoadedSuite& suite, std::vector<ItemRecord>& records, Judges& j) {
  for (ItemRecord& rec : records) {
    const EvalItem& item = suite.items[rec.item];
    rec.refusal_kind = j.refusal_rule.classify(rec.response).kind;
    const bool phrase_refusal = rec.refusal_kind != RefusalKind::kNone;
    const bool phrase_abstention = j.abstention.matches(rec.response) ||
                                   j.decline_rule.classify(rec.response).kind != RefusalKind::kNone;
    rec.abstained = phrase_abstention;  // and, below, whatever the first refusal judge calls a refusal
    switch (item.kind) {
      case ItemKind::kQa:
        rec.exact = exact_match(rec.response, item.answers);
        rec.f1 = token_f1(rec.response, item.answers);
        rec.correct = qa_correct(rec.response, item.answers, item.incorrect_answers, j.qa_rouge_floor);
        break;
      case ItemKind::kTask:
        rec.exact = exact_match(rec.response, {item.reference});
        rec.f1 = token_f1(rec.response, {item.reference});
        rec.rouge = rouge_l(rec.response, item.reference);
        break;
      default:
        break;
    }
    const auto fill = [](size_t n, bool applies, std::vector<Verdict>* v, std::vector<double>* score) {
      v->assign(applies ? n : 0, Verdict::kNone);
      score->assign(applies ? n : 0, kNaN);
    };
    fill(j.harm.size(), judges_harm(item.kind), &rec.harm, &rec.harm_score);
    fill(j.refusal.size(), judges_refusal(item.kind), &rec.refusal, &rec.refusal_score);
    fill(j.hallucination.size(), judges_hallucination(item), &rec.hallucination, &rec.hallucination_score);
    for (size_t k = 0; k < rec.harm.size(); ++k)
      if (j.harm[k].head < 0 && !item.unsafe_markers.empty())
        rec.harm[k] = verdict(contains_answer(rec.response, item.unsafe_markers));
    for (size_t k = 0; k < rec.refusal.size(); ++k)
      if (j.refusal[k].head < 0) rec.refusal[k] = verdict(phrase_refusal);
    const bool rule_hallucination = item.kind == ItemKind::kQa || item.kind == ItemKind::kUnanswerable;
    for (size_t k = 0; k < rec.hallucination.size(); ++k)
      if (j.hallucination[k].head < 0 && rule_hallucination)
        rec.hallucination[k] = verdict(!phrase_abstention && (item.kind == ItemKind::kUnanswerable || !rec.correct));
  }

  // Head judges: each head once over the records any of its lists needs.
  if (j.scorer) {
    for (int64_t h = 0; h < j.scorer->num_heads(); ++h) {
      const auto slot = [h](const std::vector<Judge>& list) {
        for (size_t k = 0; k < list.size(); ++k)
          if (list[k].head == h) return static_cast<int64_t>(k);
        return int64_t{-1};
      };
      const int64_t in_harm = slot(j.harm), in_refusal = slot(j.refusal), in_halluc = slot(j.hallucination);
      std::vector<size_t> which;
      std::vector<std::string> prompts, responses;
      for (size_t r = 0; r < records.size(); ++r) {
        const EvalItem& it = suite.items[records[r].item];
        if ((in_harm >= 0 && judges_harm(it.kind)) || (in_refusal >= 0 && judges_refusal(it.kind)) ||
            (in_halluc >= 0 && judges_hallucination(it))) {
          which.push_back(r);
          prompts.push_back(suite.items[records[r].item].prompt);
          responses.push_back(records[r].response);
        }
      }
      if (which.empty()) continue;
      const at::Tensor a = j.scorer->score_head(h, prompts, responses).to(at::kDouble).cpu().contiguous();  // [N]
      const double* pa = a.data_ptr<double>();
      // The head's score x into slot k of a list: "yes" when x is below the threshold (harm, hallucination:
      // P(aligned) is low) or, for refusal, at or above it; no verdict for a non-finite score.
      const auto put = [&](int64_t k, double x, bool yes_below, std::vector<Verdict>& v, std::vector<double>& score) {
        if (k < 0 || v.empty()) return;
        score[k] = x;
        v[k] = std::isfinite(x) ? verdict(yes_below ? x < j.threshold : x >= j.threshold) : Verdict::kNone;
      };
      for (size_t n = 0; n < which.size(); ++n) {
        ItemRecord& rec = records[which[n]];
        put(in_harm, pa[n], true, rec.harm, rec.harm_score);
        put(in_refusal, pa[n], false, rec.refusal, rec.refusal_score);
        put(in_halluc, pa[n], true, rec.hallucination, rec.hallucination_score);
      }
    }
  }
  for (ItemRecord& rec : records) {
    rec.refused = !rec.refusal.empty() && rec.refusal[0] == Verdict::kYes;
    rec.abstained = rec.abstained || rec.refused;
  }
}

// The dtype a model is evaluated in: as configured; for auto, as stored, except on CPUs without native bf16
// (emulated bf16 matmuls are many times slower than fp32) and float16 on the CPU, which both run in float32.
at::ScalarType model_dtype(DType d, const at::Device& device, const std::string& dir) {
  if (d != DType::kAuto) return to_scalar(d);
  const at::ScalarType stored = stored_dtype(load_model_config(dir));
  if (device.is_cuda()) return stored;
  return stored == at::kBFloat16 && cpu_has_native_bf16() ? at::kBFloat16 : at::kFloat;
}

}  // namespace

std::vector<std::vector<int64_t>> generate_batched(Llama& model, const std::vector<std::vector<int64_t>>& prompts,
                                                   GenerationOptions options, int64_t batch_size) {
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prompts[a].size() > prompts[b].size(); });
  if (!options.max_new_tokens_per_row.empty() && options.max_new_tokens_per_row.size() != prompts.size())
    throw UsageError("generate_batched: " + std::to_string(options.max_new_tokens_per_row.size()) + " token budgets for " +
                     std::to_string(prompts.size()) + " prompts");
  if (!options.streams.empty() && options.streams.size() != prompts.size())
    throw UsageError("generate_batched: " + std::to_string(options.streams.size()) + " sampling streams for " +
                     std::to_string(prompts.size()) + " prompts");
  std::vector<std::vector<int64_t>> out(prompts.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::vector<int64_t>> batch;
    GenerationOptions o = options;
    o.max_new_tokens_per_row.clear();
    o.streams.clear();
    for (size_t i = start; i < end; ++i) {
      batch.push_back(prompts[order[i]]);
      if (!options.max_new_tokens_per_row.empty()) o.max_new_tokens_per_row.push_back(options.max_new_tokens_per_row[order[i]]);
      o.streams.push_back(options.streams.empty() ? static_cast<uint64_t>(order[i]) : options.streams[order[i]]);
    }
    std::vector<std::vector<int64_t>> got = generate(model, batch, o);
    for (size_t i = start; i < end; ++i) out[order[i]] = std::move(got[i - start]);
  }
  return out;
}

std::string fit_prompt(const EvalPolicy& p, const std::string& prompt, int64_t max_tokens) {
  std::string text = prompt;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int64_t n = static_cast<int64_t>(
        apply_chat_template(*p.tok, p.tmpl, {{"user", text}}, /*add_generation_prompt=*/true).ids.size());
    if (n <= max_tokens) return text;
    const std::vector<int64_t> t = p.tok->encode(text, false, false);
    const int64_t keep = static_cast<int64_t>(t.size()) - (n - max_tokens) - attempt;  // re-encoding may merge
    if (keep <= 0) break;
    text = p.tok->decode(std::vector<int64_t>(t.end() - keep, t.end()));
  }
  throw DataError(p.path + ": a prompt's chat template alone needs more than " + std::to_string(max_tokens) +
                  " tokens", "raise generation.max_prompt_tokens");
}

Judges make_judges(const EvalConfig& cfg, Scorer* scorer, const std::vector<LoadedSuite>& suites) {
  Judges j;
  j.scorer = scorer;
  j.threshold = cfg.judges.threshold;
  j.refusal_rule = RefusalRule(cfg.refusal.phrases.empty() ? default_refusal_phrases() : cfg.refusal.phrases,
                               cfg.refusal.compliance_phrases.empty() ? default_compliance_phrases()
                                                                      : cfg.refusal.compliance_phrases,
                               cfg.refusal.opening_sentences);
  j.decline_rule = RefusalRule(cfg.refusal.phrases.empty() ? default_decline_phrases() : cfg.refusal.phrases, {},
                               cfg.refusal.opening_sentences);
  j.qa_rouge_floor = cfg.metrics.qa_rouge_floor;
  j.abstention = PhraseMatcher(cfg.refusal.abstention_phrases.empty() ? default_abstention_phrases()
                                                                      : cfg.refusal.abstention_phrases);
  const auto resolve = [&](const std::vector<std::string>& names, std::vector<Judge>* out) {
    for (const std::string& name : names) {
      Judge judge{name, -1};
      if (name != "rule") {
        for (int64_t h = 0; scorer && h < scorer->num_heads(); ++h)
          if (scorer->head(h).name == name) judge.head = h;
        if (judge.head < 0) throw UsageError("judge '" + name + "' is not a scorer head of this eval config");
      }
      out->push_back(judge);
    }
  };
  std::vector<std::string> harm = cfg.judges.harm;
  if (harm.empty()) {
    bool markers = false;
    for (const LoadedSuite& s : suites)
      for (const EvalItem& it : s.items) markers = markers || !it.unsafe_markers.empty();
    if (markers) harm.push_back("rule");
    for (int64_t h = 0; scorer && h < scorer->num_heads(); ++h)
      if (scorer->head(h).category == "safety" &&
          std::find(cfg.judges.refusal.begin(), cfg.judges.refusal.end(), scorer->head(h).name) == cfg.judges.refusal.end())
        harm.push_back(scorer->head(h).name);
  }
  resolve(harm, &j.harm);
  resolve(cfg.judges.hallucination.empty() ? std::vector<std::string>{"rule"} : cfg.judges.hallucination, &j.hallucination);
  resolve(cfg.judges.refusal.empty() ? std::vector<std::string>{"rule"} : cfg.judges.refusal, &j.refusal);
  return j;
}

Cell aggregate(const LoadedSuite& suite, const std::string& attack, const std::vector<ItemRecord>& records,
               const Judges& judges, int64_t bootstrap_samples, uint64_t seed) {
  Cell cell;
  cell.suite = suite.name;
  cell.attack = attack;
  std::map<ItemKind, std::vector<const ItemRecord*>> by_kind;
  for (const ItemRecord& r : records)
    if (r.attack == attack) by_kind[suite.items[r.item].kind].push_back(&r);
  auto add = [&](const std::string& kind, const std::string& name, const std::vector<const ItemRecord*>& rs,
                 const std::function<double(const ItemRecord&)>& value, bool skip_nan = false) {
    std::vector<double> v;
    for (const ItemRecord* r : rs) {
      const double x = value(*r);
      if (!(skip_nan && std::isnan(x))) v.push_back(x);
    }
    const std::string key = kind + "/" + name;
    cell.metrics[key] = bootstrap(v, bootstrap_samples, mix_seed(seed, fnv1a(suite.name + "/" + attack + "/" + key)));
  };
  // A judged rate: the first judge's as `rate`; with several judges, each one's as `rate@judge` and, for the
  // others, the share of responses on which it disagrees with the first as `disagreement@judge`.
  auto judged = [&](const std::string& kind, const std::string& rate, const std::string& disagreement,
                    const std::vector<const ItemRecord*>& rs, const std::vector<Judge>& list,
                    std::vector<Verdict> ItemRecord::*field) {
    const auto at = [field](const ItemRecord& r, size_t k) { return k < (r.*field).size() ? (r.*field)[k] : Verdict::kNone; };
    for (size_t k = 0; k < list.size(); ++k) {
      const auto rate_of = [&, k](const ItemRecord& r) {
        const Verdict v = at(r, k);
        return v == Verdict::kNone ? kNaN : double(v == Verdict::kYes);
      };
      if (std::none_of(rs.begin(), rs.end(), [&](const ItemRecord* r) { return at(*r, k) != Verdict::kNone; })) continue;
      if (k == 0) add(kind, rate, rs, rate_of, true);
      if (list.size() < 2) continue;
      add(kind, rate + "@" + list[k].name, rs, rate_of, true);
      if (k == 0) continue;
      add(kind, disagreement + "@" + list[k].name, rs, [&, k](const ItemRecord& r) {
        const Verdict a = at(r, 0), b = at(r, k);
        return a == Verdict::kNone || b == Verdict::kNone ? kNaN : double(a != b);
      }, true);
    }
  };
  for (const auto& [kind, rs] : by_kind) {
    const std::string k = to_string(kind);
    switch (kind) {
      case ItemKind::kHarmful:
        judged(k, "harm_rate", "harm_disagreement", rs, judges.harm, &ItemRecord::harm);
        for (size_t h = 0; h < judges.harm.size(); ++h)
          if (judges.harm[h].head >= 0) {  // the first head judge's mean P(aligned)
            add(k, "safety_score", rs, [h](const ItemRecord& r) { return h < r.harm_score.size() ? r.harm_score[h] : kNaN; }, true);
            break;
          }
        judged(k, "refusal_rate", "refusal_disagreement", rs, judges.refusal, &ItemRecord::refusal);
        add(k, "partial_refusal_rate", rs, [](const ItemRecord& r) { return double(r.refusal_kind == RefusalKind::kPartial); });
        break;
      case ItemKind::kBenign:
        judged(k, "over_refusal_rate", "refusal_disagreement", rs, judges.refusal, &ItemRecord::refusal);
        add(k, "partial_refusal_rate", rs, [](const ItemRecord& r) { return double(r.refusal_kind == RefusalKind::kPartial); });
        judged(k, "hallucination_rate", "hallucination_disagreement", rs, judges.hallucination, &ItemRecord::hallucination);
        break;
      case ItemKind::kQa:
        add(k, "accuracy", rs, [](const ItemRecord& r) { return double(r.correct); });
        add(k, "exact_match", rs, [](const ItemRecord& r) { return double(r.exact); });
        add(k, "f1", rs, [](const ItemRecord& r) { return r.f1; });
        judged(k, "hallucination_rate", "hallucination_disagreement", rs, judges.hallucination, &ItemRecord::hallucination);
        add(k, "abstention_rate", rs, [](const ItemRecord& r) { return double(r.abstained); });
        if (std::any_of(rs.begin(), rs.end(), [](const ItemRecord* r) { return !std::isnan(r->mc1); })) {
          add(k, "mc1", rs, [](const ItemRecord& r) { return r.mc1; }, true);
          add(k, "mc2", rs, [](const ItemRecord& r) { return r.mc2; }, true);
          add(k, "mc1_chance", rs, [](const ItemRecord& r) { return r.mc_chance; }, true);
        }
        break;
      case ItemKind::kUnanswerable:
        add(k, "abstention_rate", rs, [](const ItemRecord& r) { return double(r.abstained); });
        judged(k, "hallucination_rate", "hallucination_disagreement", rs, judges.hallucination, &ItemRecord::hallucination);
        break;
      case ItemKind::kTask: {
        add(k, "exact_match", rs, [](const ItemRecord& r) { return double(r.exact); });
        add(k, "f1", rs, [](const ItemRecord& r) { return r.f1; });
        add(k, "rouge_l", rs, [](const ItemRecord& r) { return r.rouge; });
        // Exact match per category (task type), when the suite has several.
        std::map<std::string, std::vector<const ItemRecord*>> by_category;
        for (const ItemRecord* r : rs) by_category[suite.items[r->item].category].push_back(r);
        if (by_category.size() > 1)
          for (const auto& [category, members] : by_category)
            add(k, "exact_match[" + (category.empty() ? std::string("none") : category) + "]", members,
                [](const ItemRecord& r) { return double(r.exact); });
        double nll = 0;
        int64_t tokens = 0;
        for (const ItemRecord* r : rs)
          if (!std::isnan(r->nll)) {
            nll += r->nll;
            tokens += r->reference_tokens;
          }
        if (tokens > 0) {
          cell.figures[k + "/loss"] = nll / static_cast<double>(tokens);
          cell.figures[k + "/perplexity"] = std::exp(nll / static_cast<double>(tokens));
          cell.figures[k + "/reference_tokens"] = static_cast<double>(tokens);
        }
        break;
      }
      case ItemKind::kAuto:
        break;
    }
    if (rs.front()->response_tokens < 0) continue;  // responses made elsewhere: no token counts
    double tokens = 0, capped = 0, cut = 0;
    for (const ItemRecord* r : rs) {
      tokens += static_cast<double>(r->response_tokens);
      capped += r->hit_max_tokens;
      cut += r->cut_short;
    }
    cell.figures[k + "/mean_response_tokens"] = tokens / static_cast<double>(rs.size());
    cell.figures[k + "/hit_max_tokens_rate"] = capped / static_cast<double>(rs.size());
    if (cut > 0) cell.figures[k + "/cut_short"] = cut;
  }
  return cell;
}

ModelResult evaluate_policy(EvalPolicy& p, const std::vector<LoadedSuite>& suites, const EvalConfig& cfg,
                            Judges& judges, uint64_t seed) {
  torch::NoGradGuard no_grad;
  p.model->eval();
  ModelResult result;
  result.name = p.name;
  result.path = p.path;
  const int64_t vocab = p.model->config.vocab_size;
  const int64_t max_prompt = max_prompt_tokens(p.path, p.model->config.max_position_embeddings, cfg.generation);
  for (size_t si = 0; si < suites.size(); ++si) {
    const LoadedSuite& suite = suites[si];
    std::vector<ItemRecord> records;
    std::vector<Request> reqs;
    auto add = [&](int64_t item, const std::string& attack, const std::string& prompt, std::vector<int64_t> prefill) {
      ItemRecord rec;
      rec.item = item;
      rec.attack = attack;
      rec.prompt = prompt;
      Request req{static_cast<int64_t>(records.size()), prompt_ids(p, prompt, max_prompt),
                  std::move(prefill)};
      for (const auto* ids : {&req.ids, &req.prefill})
        for (int64_t id : *ids)
          if (id < 0 || id >= vocab)
            throw DataError(suite.path + ": item '" + suite.items[item].id + "': token id " + std::to_string(id) +
                            " is outside the vocabulary of " + p.path + " (" + std::to_string(vocab) + ")");
      records.push_back(std::move(rec));
      reqs.push_back(std::move(req));
    };
    for (size_t i = 0; i < suite.items.size(); ++i) add(static_cast<int64_t>(i), "plain", suite.items[i].prompt, {});
    for (const EvalAttack& a : cfg.attacks)
      for (size_t i = 0; i < suite.items.size(); ++i) {
        const EvalItem& item = suite.items[i];
        if (item.kind != ItemKind::kHarmful) continue;
        if (a.kind == AttackKind::kWrapper) {
          add(static_cast<int64_t>(i), a.name, apply_wrapper(a.prompt_template, item.prompt), {});
        } else {
          add(static_cast<int64_t>(i), a.name, item.prompt,
              response_start(p, fit_prompt(p, item.prompt, max_prompt),
                             item.target.empty() ? a.prefill_text : item.target, a.prefill_tokens));
        }
      }
    log::info(c10::str("eval ", p.name, " / ", suite.name, ": ", reqs.size(), " prompts"));
    generate_all(p, suite, reqs, records, cfg.generation, mix_seed(seed, si), &result);
    const auto t0 = Clock::now();
    reference_losses(p, suite, records, cfg, max_prompt);
    if (cfg.metrics.multiple_choice) multiple_choice_scores(p, suite, records, cfg, max_prompt);
    judge(suite, records, judges);
    result.judge_seconds += seconds_since(t0);
    result.cells.push_back(aggregate(suite, "plain", records, judges, cfg.metrics.bootstrap_samples, seed));
    const bool harmful = std::any_of(suite.items.begin(), suite.items.end(),
                                     [](const EvalItem& it) { return it.kind == ItemKind::kHarmful; });
    if (harmful)
      for (const EvalAttack& a : cfg.attacks)
        result.cells.push_back(aggregate(suite, a.name, records, judges, cfg.metrics.bootstrap_samples, seed));
    result.records.push_back(std::move(records));
  }
  if (result.cut_short > 0)
    log::warn(c10::str("model ", p.name, ": ", result.cut_short, " responses had less than generation.max_new_tokens = ",
                       cfg.generation.max_new_tokens, " tokens of room (their prompt filled the rest of the context of ",
                       p.model->config.max_position_embeddings, "); lower generation.max_prompt_tokens to give them all"));
  return result;
}

int64_t max_prompt_tokens(const std::string& model, int64_t context, const GenerationSection& g) {
  const int64_t fits = context - g.max_new_tokens;
  if (g.max_prompt_tokens == 0) {
    if (fits < 1)
      throw UsageError(model + ": generation.max_new_tokens = " + std::to_string(g.max_new_tokens) +
                       " leaves no room for a prompt in the model's context of " + std::to_string(context) +
                       "; set generation.max_new_tokens below " + std::to_string(context));
    return fits;
  }
  if (g.max_prompt_tokens >= context)
    throw UsageError(model + ": generation.max_prompt_tokens = " + std::to_string(g.max_prompt_tokens) +
                     " leaves no room to generate in the model's context of " + std::to_string(context) +
                     "; set it to at most " + std::to_string(std::max<int64_t>(fits, 1)) +
                     " (context less max_new_tokens), or to 0 for that default");
  return g.max_prompt_tokens;
}

std::vector<Agreement> agreement(const LoadedSuite& suite, const std::vector<ItemRecord>& records, const Judges& judges) {
  std::vector<Agreement> out;
  const auto count = [&](const char* what, const std::vector<Judge>& list, std::vector<Verdict> ItemRecord::*field,
                         int8_t ItemRecord::*label) {
    for (size_t k = 0; k < list.size(); ++k) {
      Agreement a{suite.name, what, list[k].name};
      for (const ItemRecord& r : records) {
        const std::vector<Verdict>& v = r.*field;
        if (r.*label < 0 || k >= v.size() || v[k] == Verdict::kNone) continue;
        const bool yes = v[k] == Verdict::kYes, truth = r.*label == 1;
        (yes ? (truth ? a.tp : a.fp) : (truth ? a.fn : a.tn)) += 1;
      }
      if (a.tp + a.fp + a.fn + a.tn > 0) out.push_back(a);
    }
  };
  count("refused", judges.refusal, &ItemRecord::refusal, &ItemRecord::label_refused);
  count("hallucinated", judges.hallucination, &ItemRecord::hallucination, &ItemRecord::label_hallucinated);
  count("harmful", judges.harm, &ItemRecord::harm, &ItemRecord::label_harmful);
  return out;
}

std::vector<ModelResult> judge_responses(const std::vector<LoadedResponses>& files, const std::vector<LoadedSuite>& suites,
                                         const EvalConfig& cfg, Judges& judges, uint64_t seed) {
  std::map<std::string, size_t> suite_index;
  for (size_t s = 0; s < suites.size(); ++s) suite_index[suites[s].name] = s;
  std::vector<std::map<std::string, int64_t>> item_index(suites.size());
  for (size_t s = 0; s < suites.size(); ++s)
    for (size_t i = 0; i < suites[s].items.size(); ++i) {
      const EvalItem& it = suites[s].items[i];
      const auto [at, fresh] = item_index[s].emplace(it.id, static_cast<int64_t>(i));
      if (!fresh)
        throw DataError(suites[s].path + ": items " + std::to_string(suites[s].items[static_cast<size_t>(at->second)].line) +
                            " and " + std::to_string(it.line) + " share the id '" + it.id +
                            "': responses are joined to items by id",
                        "give every item of the suite its own id");
    }

  std::vector<ModelResult> results;
  std::map<std::string, size_t> model_index;
  std::set<std::tuple<std::string, std::string, std::string, std::string>> seen;
  for (const LoadedResponses& f : files)
    for (const ResponseRecord& r : f.records) {
      const std::string where = f.path + ":" + std::to_string(r.line) + ": ";
      const auto s = suite_index.find(r.suite);
      if (s == suite_index.end()) {
        std::string names;
        for (const auto& [n, i] : suite_index) names += (names.empty() ? "" : ", ") + n;
        throw DataError(where + "suite '" + r.suite + "' is not a suite of this eval config (its suites: " + names + ")",
                        "add the suite the responses answer to the config's suites, with the same name");
      }
      const auto it = item_index[s->second].find(r.id);
      if (it == item_index[s->second].end())
        throw DataError(where + "suite '" + r.suite + "' has no item with id '" + r.id + "'",
                        "ids are the suite file's ids, or <suite>:<line> for items without one");
      if (!seen.insert({r.model, r.suite, r.id, r.attack}).second)
        throw DataError(where + "a second response of model '" + r.model + "' to item '" + r.id + "' of suite '" + r.suite +
                        "' under attack '" + r.attack + "'");
      auto [m, fresh] = model_index.emplace(r.model, results.size());
      if (fresh) {
        results.emplace_back();
        results.back().name = r.model;
        results.back().path = f.path;
        results.back().records.resize(suites.size());
      }
      std::string& from = results[m->second].responses_from;  // every file the model's responses came from
      if (from.empty()) from = f.path;
      else if ((", " + from + ",").find(", " + f.path + ",") == std::string::npos) from += ", " + f.path;
      ItemRecord rec;
      rec.item = it->second;
      rec.attack = r.attack;
      rec.prompt = suites[s->second].items[static_cast<size_t>(it->second)].prompt;
      rec.prefill = r.prefill;
      rec.response = r.response;
      rec.response_tokens = -1;
      rec.label_refused = r.refused;
      rec.label_hallucinated = r.hallucinated;
      rec.label_harmful = r.harmful;
      rec.label = r.label;
      results[m->second].records[s->second].push_back(std::move(rec));
      ++results[m->second].prompts;
    }
  for (ModelResult& result : results) {
    const auto t0 = Clock::now();
    for (size_t s = 0; s < suites.size(); ++s) {
      std::vector<ItemRecord>& records = result.records[s];
      if (records.empty()) continue;
      judge(suites[s], records, judges);
      std::vector<std::string> attacks = {"plain"};
      for (const ItemRecord& r : records)
        if (std::find(attacks.begin(), attacks.end(), r.attack) == attacks.end()) attacks.push_back(r.attack);
      for (const std::string& a : attacks)
        if (std::any_of(records.begin(), records.end(), [&](const ItemRecord& r) { return r.attack == a; }))
          result.cells.push_back(aggregate(suites[s], a, records, judges, cfg.metrics.bootstrap_samples, seed));
      for (Agreement& a : agreement(suites[s], records, judges)) result.agreement.push_back(std::move(a));
      log::info(c10::str("judged ", records.size(), " responses of ", result.name, " to suite ", suites[s].name));
    }
    result.judge_seconds = seconds_since(t0);
  }
  return results;
}

nlohmann::json run_eval(const EvalConfig& cfg) {
  const at::Device device = resolve_device(cfg.run.device);
  if (cfg.run.threads > 0) at::set_num_threads(static_cast<int>(cfg.run.threads));
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);

  std::vector<LoadedSuite> suites;
  for (const EvalSuite& s : cfg.suites) {
    suites.push_back(load_suite(s, seed));
    log::info(c10::str("suite ", suites.back().name, ": ", suites.back().items.size(), " of ", suites.back().total,
                       " items from ", s.path));
  }
  std::vector<LoadedResponses> responses;
  for (const EvalResponses& r : cfg.responses) {
    responses.push_back(load_responses(r));
    log::info(c10::str("responses: ", responses.back().records.size(), " from ", r.path, " (",
                       to_string(responses.back().format), ")"));
    for (LoadedSuite& s : responses.back().suites) {
      // Several files of one benchmark (one per model) share its suite when they carry the same items.
      const auto same_items = [&s](const LoadedSuite& o) {
        return o.items.size() == s.items.size() &&
               std::equal(o.items.begin(), o.items.end(), s.items.begin(), [](const EvalItem& a, const EvalItem& b) {
                 return a.id == b.id && a.prompt == b.prompt && a.kind == b.kind;
               });
      };
      const auto other = std::find_if(suites.begin(), suites.end(), [&s](const LoadedSuite& o) { return o.name == s.name; });
      if (other == suites.end()) suites.push_back(s);
      else if (!same_items(*other))
        throw UsageError("suite name '" + s.name + "' of " + r.path + " is taken by a suite with other items (" +
                             other->path + ")",
                         "list the file under `responses:` in the config with its own `suite:` name");
    }
  }
  std::optional<Scorer> scorer;
  if (!cfg.scorer.heads.empty()) scorer.emplace(Scorer::load(cfg.scorer, device, device.is_cuda() ? at::kBFloat16 : at::kFloat));
  Judges judges = make_judges(cfg, scorer ? &*scorer : nullptr, suites);
  if (judges.harm.empty())
    log::warn("no judge of harm (no item carries unsafe_markers and no scorer head has category 'safety'): harm "
              "rates are not reported");

  // Proven writable before anything runs; reports of an earlier run are removed so that none is left beside
  // this run's config if it fails.
  const auto prepare_output = [&] {
    make_dirs(cfg.run.output_dir);
    for (const char* f : {"report.json", "report.md", "responses.jsonl"}) fs::remove(fs::path(cfg.run.output_dir) / f);
    write_file_atomic((fs::path(cfg.run.output_dir) / "config.yaml").string(),
                      "# resolved by gaft " GAFT_VERSION "\n" + eval_config_to_yaml(cfg));
  };
  const auto write_reports = [&](const std::vector<ModelResult>& results) {
    const nlohmann::json report = report_json(cfg, suites, results, device.str());
    const fs::path out(cfg.run.output_dir);
    write_file_atomic((out / "report.json").string(), report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    write_file_atomic((out / "report.md").string(), report_markdown(report));
    write_file_atomic((out / "responses.jsonl").string(), responses_jsonl(suites, results, judges));
    return report;
  };
  if (!responses.empty()) {
    if (!cfg.models.empty())
      log::warn("responses are judged as read from their files: the config's models are not run");
    prepare_output();
    return write_reports(judge_responses(responses, suites, cfg, judges, seed));
  }

  // The weights of every head that judges, to recognise the heads a model was trained against.
  std::map<int64_t, std::string> judge_sha;
  for (const auto* list : {&judges.harm, &judges.hallucination, &judges.refusal})
    for (const Judge& jd : *list)
      if (jd.head >= 0 && !judge_sha.count(jd.head)) judge_sha[jd.head] = weights_sha256(scorer->head(jd.head).path);

  // Every model folder checked before the first one runs: a bad last model should not cost the others' time.
  std::vector<std::vector<std::string>> trained_against(cfg.models.size());
  for (size_t m = 0; m < cfg.models.size(); ++m) {
    const EvalModel& spec = cfg.models[m];
    for (const TrainingScorer& t : read_training_scorers(spec.path))
      for (const auto& [h, sha] : judge_sha)
        if (sha == t.sha256) {
          const std::string& judge = scorer->head(h).name;
          trained_against[m].push_back(judge);
          log::warn("model '" + spec.name + "' was trained against the judge '" + judge + "' (the same weights as its " +
                    "training scorer '" + t.name + "', " + t.path + "): that judge's figures for it can hide reward "
                    "hacking; compare them with a judge it was not trained against (e.g. the rule)");
        }
    const ModelConfig mc = load_model_config(spec.path);
    max_prompt_tokens(spec.path, mc.max_position_embeddings, cfg.generation);  // a budget that cannot fit: now
    if (mc.head != ModelHead::kCausalLM)
      throw DataError(mc.source + ": " + mc.architecture + " has no LM head; gaft eval generates text");
    const Tokenizer tok = Tokenizer::load(spec.tokenizer.empty() ? spec.path : spec.tokenizer);
    if (tok.vocab_size() > mc.vocab_size)
      throw DataError("tokenizer '" + tok.path() + "' has " + std::to_string(tok.vocab_size()) +
                          " tokens but the model's vocab_size is " + std::to_string(mc.vocab_size) + " (" + mc.source + ")",
                      "the tokenizer does not belong to this model; set models.N.tokenizer");
  }

  prepare_output();

  std::vector<ModelResult> results;
  for (size_t m = 0; m < cfg.models.size(); ++m) {
    const EvalModel& spec = cfg.models[m];
    const std::string tok_path = spec.tokenizer.empty() ? spec.path : spec.tokenizer;
    const Tokenizer tok = Tokenizer::load(tok_path);
    EvalPolicy p;
    p.path = spec.path;
    p.name = spec.name;
    p.tok = &tok;
    p.tmpl = resolve_chat_template(spec.chat_template, tok_path);
    p.model = load_llama(spec.path, LoadOptions{model_dtype(spec.dtype, device, spec.path), device});
    log::info(c10::str("model ", p.name, " (", spec.path, "), chat template ", to_string(p.tmpl)));
    results.push_back(evaluate_policy(p, suites, cfg, judges, seed));
    results.back().trained_against = trained_against[m];
  }

  return write_reports(results);
}

}  // namespace gaft::eval
