// report.json, report.md and responses.jsonl of gaft eval. See gaft/eval_report.h.
#include "gaft/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

namespace gaft::eval {

namespace {

nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

// A metric key without its judge ("@rule") or category ("[sort]") qualifier: "harmful/harm_rate@rule" ->
// "harmful/harm_rate".
std::string base_key(const std::string& key) { return key.substr(0, key.find_first_of("@[")); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_rate(const std::string& key) {
  const std::string name = base_key(key).substr(key.find('/') + 1);
  return name == "accuracy" || name == "exact_match" || name == "mc1" || name == "mc1_chance" || name == "mc2" ||
         ends_with(name, "_rate") || ends_with(name, "_disagreement");
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// "12.5% [8.1, 17.0] n=200" for rates, "0.512 [0.470, 0.551] n=200" for means; "–" when there is no value.
std::string show_interval(const nlohmann::json& m, bool rate) {
  if (m.is_null() || m["mean"].is_null()) return "–";
  const double scale = rate ? 100.0 : 1.0;
  const char* f = rate ? "%.1f" : "%.3f";
  std::string s = fmt(f, scale * m["mean"].get<double>()) + (rate ? "%" : "");
  if (!m["lo"].is_null()) s += " [" + fmt(f, scale * m["lo"].get<double>()) + ", " + fmt(f, scale * m["hi"].get<double>()) + "]";
  return s + " n=" + std::to_string(m["n"].get<int64_t>());
}

std::string show_delta(const nlohmann::json& m, const nlohmann::json& base, bool rate) {
  if (m.is_null() || base.is_null() || m["mean"].is_null() || base["mean"].is_null()) return "";
  const double d = m["mean"].get<double>() - base["mean"].get<double>();
  return rate ? " (" + fmt("%+.1f", 100.0 * d) + " pt)" : " (" + fmt("%+.3f", d) + ")";
}

// Rows in the order a reader scans them: kinds as in eval_suite.h, the headline metric of each first.
int row_rank(const std::string& key) {
  static const std::vector<std::string> order = {
      "harmful/harm_rate", "harmful/harm_disagreement", "harmful/refusal_rate", "harmful/refusal_disagreement",
      "harmful/partial_refusal_rate", "harmful/safety_score", "benign/over_refusal_rate",
      "benign/refusal_disagreement", "benign/partial_refusal_rate", "benign/hallucination_rate",
      "benign/hallucination_disagreement", "qa/accuracy", "qa/hallucination_rate", "qa/hallucination_disagreement",
      "qa/abstention_rate", "qa/exact_match", "qa/f1", "qa/mc1", "qa/mc1_chance", "qa/mc2",
      "unanswerable/abstention_rate", "unanswerable/hallucination_rate", "unanswerable/hallucination_disagreement",
      "task/exact_match", "task/f1", "task/rouge_l", "task/loss", "task/perplexity", "task/reference_tokens"};
  const auto it = std::find(order.begin(), order.end(), base_key(key));
  return it == order.end() ? static_cast<int>(order.size()) : static_cast<int>(it - order.begin());
}

void sort_rows(std::vector<std::string>& keys) {
  std::stable_sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) {
    return std::make_pair(row_rank(a), a) < std::make_pair(row_rank(b), b);
  });
}

std::string pretty(const std::string& key) {
  // "harmful/harm_rate@rule" -> "harmful: harm rate (rule)"; "task/exact_match[sort]" -> "task: exact match (sort)".
  const size_t q = key.find_first_of("@[");
  if (q != std::string::npos) {
    std::string what = key.substr(q + 1);
    if (key[q] == '[' && !what.empty() && what.back() == ']') what.pop_back();
    return pretty(key.substr(0, q)) + " (" + (key[q] == '@' ? "judge " : "") + what + ")";
  }
  if (key.size() >= 7 && key.compare(key.size() - 7, 7, "rouge_l") == 0) return key.substr(0, key.size() - 8) + ": ROUGE-L";
  std::string s = key;
  const size_t slash = s.find('/');
  if (slash != std::string::npos) s = s.substr(0, slash) + ": " + s.substr(slash + 1);
  for (char& c : s)
    if (c == '_') c = ' ';
  return s;
}

// The result object of (suite, attack, model), or null.
const nlohmann::json* find_result(const nlohmann::json& report, const std::string& suite, const std::string& attack,
                                  const std::string& model) {
  for (const auto& r : report["results"])
    if (r["suite"] == suite && r["attack"] == attack && r["model"] == model) return &r;
  return nullptr;
}

}  // namespace

nlohmann::json report_json(const EvalConfig& cfg, const std::vector<LoadedSuite>& suites,
                           const std::vector<ModelResult>& results, const std::string& device) {
  nlohmann::json j;
  j["gaft_version"] = GAFT_VERSION;
  j["seed"] = cfg.run.seed;
  j["device"] = device;
  j["config"] = eval_config_to_yaml(cfg);
  j["models"] = nlohmann::json::array();
  for (const ModelResult& r : results)
    j["models"].push_back({{"name", r.name},
                           {"path", r.path},
                           {"prompts", r.prompts},
                           {"new_tokens", r.new_tokens},
                           {"generate_seconds", r.generate_seconds},
                           {"prompts_per_second", number(r.prompts / r.generate_seconds)},
                           {"tokens_per_second", number(r.new_tokens / r.generate_seconds)},
                           {"judge_seconds", r.judge_seconds},
                           {"cut_short", r.cut_short},
                           {"responses_from", r.responses_from},
                           {"trained_against", r.trained_against}});
  // Judges against the labels that came with responses read from a file.
  j["agreement"] = nlohmann::json::array();
  for (const ModelResult& r : results)
    for (const Agreement& a : r.agreement) {
      const auto ratio = [](int64_t num, int64_t den) { return den > 0 ? number(double(num) / double(den)) : nlohmann::json(nullptr); };
      j["agreement"].push_back({{"model", r.name}, {"suite", a.suite}, {"what", a.what}, {"judge", a.judge},
                                {"tp", a.tp}, {"fp", a.fp}, {"fn", a.fn}, {"tn", a.tn},
                                {"precision", ratio(a.tp, a.tp + a.fp)}, {"recall", ratio(a.tp, a.tp + a.fn)},
                                {"accuracy", ratio(a.tp + a.tn, a.tp + a.fp + a.fn + a.tn)}});
    }
  j["suites"] = nlohmann::json::array();
  for (const LoadedSuite& s : suites) {
    nlohmann::json kinds = nlohmann::json::object();
    for (const EvalItem& it : s.items) kinds[to_string(it.kind)] = kinds.value(to_string(it.kind), 0) + 1;
    j["suites"].push_back({{"name", s.name},
                           {"path", s.path},
                           {"format", to_string(s.format)},
                           {"items", s.items.size()},
                           {"total", s.total},
                           {"kinds", kinds}});
  }
  j["attacks"] = nlohmann::json::array();
  std::set<std::string> attack_names;
  for (const EvalAttack& a : cfg.attacks) {
    j["attacks"].push_back({{"name", a.name}, {"kind", a.kind == AttackKind::kWrapper ? "wrapper" : "prefill"}});
    attack_names.insert(a.name);
  }
  for (const ModelResult& r : results)  // attacks named by responses read from a file
    for (const Cell& c : r.cells)
      if (c.attack != "plain" && attack_names.insert(c.attack).second)
        j["attacks"].push_back({{"name", c.attack}, {"kind", "as recorded"}});
  j["results"] = nlohmann::json::array();
  for (const ModelResult& r : results)
    for (const Cell& c : r.cells) {
      nlohmann::json metrics = nlohmann::json::object(), figures = nlohmann::json::object();
      for (const auto& [k, v] : c.metrics)
        metrics[k] = {{"mean", number(v.mean)}, {"lo", number(v.lo)}, {"hi", number(v.hi)}, {"n", v.n}};
      for (const auto& [k, v] : c.figures) figures[k] = number(v);
      j["results"].push_back(
          {{"suite", c.suite}, {"attack", c.attack}, {"model", r.name}, {"metrics", metrics}, {"figures", figures}});
    }
  return j;
}

std::string report_markdown(const nlohmann::json& report) {
  std::ostringstream md;
  std::vector<std::string> models;
  for (const auto& m : report["models"]) models.push_back(m["name"].get<std::string>());
  md << "# gaft eval report\n\n"
     << "gaft " << report["gaft_version"].get<std::string>() << ", seed " << report["seed"].get<int64_t>()
     << ", device " << report["device"].get<std::string>()
     << ". Rates in percent with their 95% bootstrap interval and count; differences are to the first model.\n\n"
     << "| model | path |\n|---|---|\n";
  for (const auto& m : report["models"])
    md << "| " << m["name"].get<std::string>() << " | `" << m["path"].get<std::string>() << "` |\n";
  for (const auto& m : report["models"])
    if (m.contains("trained_against") && !m["trained_against"].empty()) {
      md << "\n**Warning:** " << m["name"].get<std::string>() << " was trained against the judge(s)";
      for (const auto& j : m["trained_against"]) md << " " << j.get<std::string>();
      md << " (same weights): their figures for it can hide reward hacking; read them beside a judge it was not "
            "trained against.\n";
    }
  for (const auto& m : report["models"]) {
    if (m.value("cut_short", int64_t{0}) > 0)
      md << "\n**Note:** " << m["cut_short"].get<int64_t>() << " of " << m["name"].get<std::string>()
         << "'s responses had less room than generation.max_new_tokens (a long prompt filled the rest of the context); "
            "the `cut short` rows count them per suite.\n";
    if (!m.value("responses_from", std::string()).empty())
      md << "\n" << m["name"].get<std::string>() << ": responses read from `" << m["responses_from"].get<std::string>()
         << "` and judged (none generated).\n";
  }
  if (report.contains("agreement") && !report["agreement"].empty()) {
    md << "\n## Judges against the responses' labels\n\n"
       << "| model | suite | label | judge | precision | recall | accuracy | tp | fp | fn | tn |\n"
       << "|---|---|---|---|---|---|---|---|---|---|---|\n";
    const auto show = [](const nlohmann::json& x) { return x.is_null() ? std::string("–") : fmt("%.3f", x.get<double>()); };
    for (const auto& a : report["agreement"])
      md << "| " << a["model"].get<std::string>() << " | " << a["suite"].get<std::string>() << " | "
         << a["what"].get<std::string>() << " | " << a["judge"].get<std::string>() << " | " << show(a["precision"])
         << " | " << show(a["recall"]) << " | " << show(a["accuracy"]) << " | " << a["tp"].get<int64_t>() << " | "
         << a["fp"].get<int64_t>() << " | " << a["fn"].get<int64_t>() << " | " << a["tn"].get<int64_t>() << " |\n";
  }
  md << "\nThroughput (prompts and new tokens per second) is in report.json; this file holds only numbers that the\n"
        "seed determines.\n";

  auto header = [&](const std::string& first) {
    md << "| " << first << " |";
    for (const std::string& m : models) md << " " << m << " |";
    md << "\n|---|";
    for (size_t i = 0; i < models.size(); ++i) md << "---|";
    md << "\n";
  };

  for (const auto& s : report["suites"]) {
    const std::string suite = s["name"].get<std::string>();
    md << "\n## " << suite << "\n\n`" << s["path"].get<std::string>() << "` (" << s["format"].get<std::string>()
       << "): " << s["items"].get<int64_t>() << " of " << s["total"].get<int64_t>() << " items";
    for (const auto& [kind, n] : s["kinds"].items()) md << ", " << n.get<int64_t>() << " " << kind;
    md << ".\n\n";
    // Metric keys present for any model, in the order of the first result that has them.
    std::vector<std::string> keys, figure_keys;
    for (const std::string& m : models)
      if (const nlohmann::json* r = find_result(report, suite, "plain", m)) {
        for (const auto& [k, v] : (*r)["metrics"].items())
          if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
        for (const auto& [k, v] : (*r)["figures"].items())
          if (std::find(figure_keys.begin(), figure_keys.end(), k) == figure_keys.end()) figure_keys.push_back(k);
      }
    sort_rows(keys);
    sort_rows(figure_keys);
    header("metric");
    const nlohmann::json* base = find_result(report, suite, "plain", models.front());
    for (const std::string& k : keys) {
      md << "| " << pretty(k) << " |";
      for (size_t i = 0; i < models.size(); ++i) {
        const nlohmann::json* r = find_result(report, suite, "plain", models[i]);
        const nlohmann::json m = r && (*r)["metrics"].contains(k) ? (*r)["metrics"][k] : nlohmann::json();
        const nlohmann::json b = base && (*base)["metrics"].contains(k) ? (*base)["metrics"][k] : nlohmann::json();
        md << " " << show_interval(m, is_rate(k)) << (i > 0 ? show_delta(m, b, is_rate(k)) : "") << " |";
      }
      md << "\n";
    }
    for (const std::string& k : figure_keys) {
      md << "| " << pretty(k) << " |";
      for (const std::string& model : models) {
        const nlohmann::json* r = find_result(report, suite, "plain", model);
        const bool has = r && (*r)["figures"].contains(k) && !(*r)["figures"][k].is_null();
        const double v = has ? (*r)["figures"][k].get<double>() : 0.0;
        md << " " << (has ? (is_rate(k) ? fmt("%.1f%%", 100 * v) : fmt(std::abs(v) >= 100 ? "%.1f" : "%.3f", v)) : "–") << " |";
      }
      md << "\n";
    }
    // Attacks: one row per attack and metric of the harmful items.
    std::vector<std::string> attacks;
    for (const auto& a : report["attacks"])
      if (find_result(report, suite, a["name"].get<std::string>(), models.front()))
        attacks.push_back(a["name"].get<std::string>());
    if (attacks.empty()) continue;
    md << "\n### " << suite << " under attack (harmful items)\n\n";
    header("attack");
    attacks.insert(attacks.begin(), "plain");
    // The headline harm and refusal rates, then each judge's harm rate and disagreement.
    std::vector<std::string> attack_keys = {"harmful/harm_rate", "harmful/refusal_rate"};
    for (const std::string& k : keys)
      if (k.rfind("harmful/harm_rate@", 0) == 0 || k.rfind("harmful/harm_disagreement@", 0) == 0) attack_keys.push_back(k);
    for (const std::string& key : attack_keys) {
      for (const std::string& a : attacks) {
        bool any = false;
        std::string row = "| " + a + ": " + pretty(key).substr(std::string("harmful: ").size()) + " |";
        for (size_t i = 0; i < models.size(); ++i) {
          const nlohmann::json* r = find_result(report, suite, a, models[i]);
          const nlohmann::json m = r && (*r)["metrics"].contains(key) ? (*r)["metrics"][key] : nlohmann::json();
          const nlohmann::json* rb = find_result(report, suite, a, models.front());
          const nlohmann::json b = rb && (*rb)["metrics"].contains(key) ? (*rb)["metrics"][key] : nlohmann::json();
          any = any || !m.is_null();
          row += " " + show_interval(m, true) + (i > 0 ? show_delta(m, b, true) : "") + " |";
        }
        if (any) md << row << "\n";
      }
    }
  }
  return md.str();
}

std::string responses_jsonl(const std::vector<LoadedSuite>& suites, const std::vector<ModelResult>& results,
                            const Judges& judges) {
  // {"rule": true, "safety": false} from one record's verdicts (null: no verdict) and scores.
  const auto verdicts = [](const std::vector<Judge>& list, const std::vector<Verdict>& v) {
    nlohmann::json j = nlohmann::json::object();
    for (size_t k = 0; k < v.size() && k < list.size(); ++k)
      j[list[k].name] = v[k] == Verdict::kNone ? nlohmann::json(nullptr) : nlohmann::json(v[k] == Verdict::kYes);
    return j;
  };
  const auto scores = [](const std::vector<Judge>& list, const std::vector<double>& v) {
    nlohmann::json j = nlohmann::json::object();
    for (size_t k = 0; k < v.size() && k < list.size(); ++k)
      if (list[k].head >= 0) j[list[k].name] = number(v[k]);
    return j;
  };
  std::string out;
  for (const ModelResult& r : results)
    for (size_t s = 0; s < r.records.size(); ++s)
      for (const ItemRecord& rec : r.records[s]) {
        const EvalItem& item = suites[s].items[rec.item];
        nlohmann::json j = {{"model", r.name},          {"suite", suites[s].name},   {"attack", rec.attack},
                            {"id", item.id},             {"kind", to_string(item.kind)}, {"category", item.category},
                            {"prompt", rec.prompt},      {"response", rec.response},  {"response_tokens", rec.response_tokens < 0 ? nlohmann::json(nullptr) : nlohmann::json(rec.response_tokens)},
                            {"hit_max_tokens", rec.hit_max_tokens}, {"refused", rec.refused}, {"abstained", rec.abstained}};
        if (!rec.prefill.empty()) j["prefill"] = rec.prefill;
        if (rec.refusal_kind == RefusalKind::kPartial) j["partial_refusal"] = true;
        if (rec.cut_short) j["budget"] = rec.budget;
        if (rec.label_refused >= 0 || rec.label_hallucinated >= 0 || rec.label_harmful >= 0) {
          nlohmann::json labels = nlohmann::json::object();
          if (rec.label_refused >= 0) labels["refused"] = rec.label_refused == 1;
          if (rec.label_hallucinated >= 0) labels["hallucinated"] = rec.label_hallucinated == 1;
          if (rec.label_harmful >= 0) labels["harmful"] = rec.label_harmful == 1;
          j["labels"] = labels;
          if (!rec.label.empty()) j["label"] = rec.label;
        }
        if (!std::isnan(rec.mc1)) {
          j["mc1"] = rec.mc1;
          j["mc2"] = number(rec.mc2);
        }
        if (!rec.harm.empty()) {
          j["harmful"] = verdicts(judges.harm, rec.harm);
          if (const auto sc = scores(judges.harm, rec.harm_score); !sc.empty()) j["harm_scores"] = sc;
        }
        if (!rec.refusal.empty() && judges.refusal.size() > 1) j["refusal"] = verdicts(judges.refusal, rec.refusal);
        if (const auto sc = scores(judges.refusal, rec.refusal_score); !sc.empty()) j["refusal_scores"] = sc;
        if (!rec.hallucination.empty()) {
          j["hallucinated"] = verdicts(judges.hallucination, rec.hallucination);
          if (const auto sc = scores(judges.hallucination, rec.hallucination_score); !sc.empty()) j["hallucination_scores"] = sc;
        }
        switch (item.kind) {
          case ItemKind::kQa:
            j["correct"] = rec.correct;
            j["exact_match"] = rec.exact;
            j["f1"] = number(rec.f1);
            break;
          case ItemKind::kTask:
            j["exact_match"] = rec.exact;
            j["f1"] = number(rec.f1);
            j["rouge_l"] = number(rec.rouge);
            j["reference_nll"] = number(rec.nll);
            j["reference_tokens"] = rec.reference_tokens;
            break;
          default:
            break;
        }
        out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
  return out;
}

}  // namespace gaft::eval
