// Evaluation suites: gaft's own JSONL format and importers for the published files of public benchmarks,
// all turned into one list of items.
//
// gaft JSONL, one object per line:
//   {"kind": "harmful",      "prompt": "...", "target": "Sure, here is ..."?, "unsafe_markers": [...]?,
//    "category": "..."?, "id": "..."?}
//   (unsafe_markers: content whose presence marks a response as harmful, the rule judge's ground truth; any
//    kind may carry them)
//   {"kind": "benign",       "prompt": "..."}                                   (over-refusal probe)
//   {"kind": "qa",           "prompt": "...", "answers": ["...", ...], "incorrect_answers": [...]?}
//   {"kind": "unanswerable", "prompt": "..."}                                   (abstaining is right)
//   {"kind": "task",         "prompt": "...", "reference": "..."}
// "answers" may also be a single string; "id" a string or an integer; other keys are ignored; blank lines are
// skipped. When the suite's kind (suites.N.kind) is set, a record's own "kind" is ignored and may be absent.
// Importers (config key suites.N.format), for the files as their authors publish them:
//   advbench        harmful_behaviors.csv: goal, target                               -> harmful
//   harmbench       behaviors CSV: Behavior, SemanticCategory, ContextString, BehaviorID -> harmful
//                   (a ContextString is put before the behaviour, separated by "\n\n---\n\n")
//   jailbreakbench  JBB-Behaviors CSV: Goal, Target, Category (Behavior as id)       -> harmful
//                   (the benign-behaviors file: set suites.N.kind: benign)
//   xstest          xstest_prompts.csv: prompt, type, label (safe | unsafe)           -> benign | harmful
//                   (without a label column: types starting with "contrast_" are unsafe)
//   truthfulqa      TruthfulQA.csv: Question, Best Answer, Correct Answers, Incorrect Answers, Category
//                   (answers separated by ";", trimmed, duplicates dropped; Best Answer first; a
//                   Best Incorrect Answer column, when present, leads the incorrect answers) -> qa
//   halueval        qa_data.json (JSON lines): knowledge, question, right_answer, hallucinated_answer
//                   (prompt = knowledge + "\n\n" + question when knowledge is given)  -> qa
//   alpaca          JSON array (or JSON lines) of {instruction, input, output}: prompt = instruction, plus
//                   "\n\n" + input when input is not empty; reference = output       -> task
// CSV files follow RFC 4180 (quoted fields may hold commas, quotes and newlines), read with libcsv; the
// first row names the columns, matched exactly; extra columns are ignored. Every record must have as many
// fields as the header; blank lines are skipped; a UTF-8 BOM and CRLF line ends are accepted; spaces around an
// unquoted field are dropped (libcsv's default). Items without an id in the file get "<suite>:<line>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/config.h"

namespace gaft::eval {

struct EvalItem {
  std::string id;                              // from the file, else "<suite>:<line>"
  int64_t line = 0;                            // 1-based line (JSONL), record number (CSV, header = 0) or
                                               // element number (1-based, alpaca JSON array)
  ItemKind kind = ItemKind::kAuto;             // never kAuto once loaded
  std::string category;                        // "" when absent
  std::string prompt;                          // non-empty
  std::vector<std::string> answers;            // qa: correct answers (non-empty)
  std::vector<std::string> incorrect_answers;  // qa, optional
  std::string reference;                       // task: the reference output (non-empty)
  std::string target;                          // harmful, optional: a compliant start (prefill attack)
  std::vector<std::string> unsafe_markers;     // optional: content that marks a harmful response (rule judge)
  bool judge_hallucination = false;            // judged for hallucination whatever its kind (open-ended
                                               // requests with labelled responses: HaluEval general)
};

struct LoadedSuite {
  std::string name;
  std::string path;
  SuiteFormat format = SuiteFormat::kGaft;
  std::vector<EvalItem> items;
  int64_t total = 0;                           // items in the file before `limit`
};

// Reads spec.path in spec.format. spec.kind other than kAuto sets every item's kind. spec.limit > 0 keeps a
// sample of that many items drawn with `seed` (in file order; the same sample for the same seed and file).
// Every record is checked, sampled or not. Errors are DataError naming the file and line/record and what
// was expected: a missing column or key, an unknown kind, a qa item without answers, a task without
// reference, an empty prompt, malformed JSON or CSV, an empty suite.
LoadedSuite load_suite(const EvalSuite& spec, uint64_t seed);

// ---- Responses made elsewhere (gaft eval --responses) -------------------------------------------------------
// gaft JSONL, one object per line (responses.jsonl's shape; other keys are ignored):
//   {"model": "...", "suite": "...", "id": "..." | 7, "response": "...", "attack": "plain"?, "prefill": "..."?,
//    "labels": {"refused": bool?, "hallucinated": bool?, "harmful": bool?}?}
//   (suite and id name an item of a configured suite; labels are a person's verdicts, compared with the judges')
// xstest            XSTest's completions CSV (xstest_v2_completions_*.csv): id, type, prompt, completion,
//                   final_label (1_full_compliance | 2_full_refusal | 3_partial_refusal) -> its own suite
//                   ("xstest_completions"; its ids are v2-N, not the prompts file's):
//                   contrast_* types harmful, the others benign; refused label = full or partial refusal
// halueval_general  HaluEval's general_data.json (JSON lines): ID, user_query, chatgpt_response, and
//                   hallucination (or hallucination_label): "yes" | "no" -> its own suite of benign items judged
//                   for hallucination by head judges; the label compared with them
struct ResponseRecord {
  std::string model, suite, id;
  int64_t line = 0;                 // where in the file (JSONL line, CSV record)
  std::string attack = "plain";
  std::string prefill, response;
  int8_t refused = -1, hallucinated = -1, harmful = -1;  // labels: 1 yes, 0 no, -1 none
  std::string label;                // the file's own label, as written (e.g. "3_partial_refusal")
};

struct LoadedResponses {
  std::string path;
  ResponsesFormat format = ResponsesFormat::kGaft;  // never kAuto once loaded
  std::vector<LoadedSuite> suites;  // xstest, halueval_general: the one suite the file carries
  std::vector<ResponseRecord> records;
};

// Reads spec.path (format auto: an XSTest completions header, a JSON line with "user_query", else gaft).
// DataError naming the file and line for a missing key or column, a wrong type, an unknown label.
LoadedResponses load_responses(const EvalResponses& spec);

// "harmful", "benign", "qa", "unanswerable", "task" (and "auto").
std::string to_string(ItemKind kind);
std::string to_string(SuiteFormat format);
std::string to_string(ResponsesFormat format);

}  // namespace gaft::eval
