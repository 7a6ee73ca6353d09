// The files gaft eval writes: report.json (every number), report.md (tables for people) and
// responses.jsonl (every answer and its judgement, for inspection).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gaft/config.h"
#include "gaft/eval_suite.h"
#include "gaft/evaluator.h"

namespace gaft::eval {

// {"gaft_version", "seed", "device", "config" (resolved YAML), "models": [{name, path, prompts, new_tokens,
//  generate_seconds, prompts_per_second, tokens_per_second, judge_seconds}], "suites": [{name, path, format,
//  items, total, kinds}], "attacks": [{name, kind}], "results": [{suite, attack, model, metrics: {key: {mean, lo,
//  hi, n}}, figures: {key: value}}]}. NaN is written as null.
nlohmann::json report_json(const EvalConfig& cfg, const std::vector<LoadedSuite>& suites,
                           const std::vector<ModelResult>& results, const std::string& device);

// Markdown of a report: per suite, a table of the plain metrics with models as columns (each model after the
// first with its difference to the first), then, for suites with harmful items and attacks, a table of harm and
// refusal rates per attack. Rates in percent with their 95% interval and count.
std::string report_markdown(const nlohmann::json& report);

// One JSON line per answered item: model, suite, attack, id, kind, category, prompt, prefill (the forced start,
// under a prefill attack), response (what the model generated), and the judgements: "harmful" and
// "hallucinated" as {judge: verdict} (null: no verdict), the head judges' scores, refused and abstained.
std::string responses_jsonl(const std::vector<LoadedSuite>& suites, const std::vector<ModelResult>& results,
                            const Judges& judges);

}  // namespace gaft::eval
