// Evaluation suites: gaft JSONL and the published files of public benchmarks read into one list of items.
// See gaft/eval_suite.h.
#include "gaft/eval_suite.h"

#include <c10/util/Exception.h>
#include <csv.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string_view>

#include "gaft/dataset.h"
#include "gaft/error.h"
#include "gaft/read_file.h"

namespace gaft::eval {

namespace {

using nlohmann::json;

const char* const kKindList = "harmful, benign, qa, unanswerable or task";
const char* const kBom = "\xEF\xBB\xBF";

// What a format's records hold, for messages about an item that lacks something.
struct FormatInfo {
  ItemKind kind;            // every record's kind; kAuto: from the record (gaft, xstest)
  const char* prompt;       // where the prompt comes from
  const char* answers;      // where a qa item's correct answers come from; nullptr: the format has none
  const char* reference;    // where a task item's reference comes from; nullptr: the format has none
};

FormatInfo format_info(SuiteFormat f) {
  switch (f) {
    case SuiteFormat::kGaft: return {ItemKind::kAuto, "\"prompt\"", "\"answers\"", "\"reference\""};
    case SuiteFormat::kAdvBench: return {ItemKind::kHarmful, "'goal' column value", nullptr, nullptr};
    case SuiteFormat::kHarmBench: return {ItemKind::kHarmful, "'Behavior' column value", nullptr, nullptr};
    case SuiteFormat::kJailbreakBench: return {ItemKind::kHarmful, "'Goal' column value", nullptr, nullptr};
    case SuiteFormat::kXsTest: return {ItemKind::kAuto, "'prompt' column value", nullptr, nullptr};
    case SuiteFormat::kTruthfulQa:
      return {ItemKind::kQa, "'Question' column value", "'Best Answer' or 'Correct Answers' column value", nullptr};
    case SuiteFormat::kHaluEval: return {ItemKind::kQa, "\"question\"", "\"right_answer\"", nullptr};
    case SuiteFormat::kAlpaca: return {ItemKind::kTask, "\"instruction\"", nullptr, "\"output\""};
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled SuiteFormat");
}

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string_view strip_bom(std::string_view text) {
  if (text.substr(0, 3) == kBom) text.remove_prefix(3);
  return text;
}

// Adds `s` to `list` unless it is empty or already there.
void add_unique(std::vector<std::string>* list, std::string s) {
  if (s.empty() || std::find(list->begin(), list->end(), s) != list->end()) return;
  list->push_back(std::move(s));
}

// Checks one item against what its kind needs and fills the defaults; throws DataError without location.
void finish(EvalItem* item, const EvalSuite& spec, const std::string& suite, SuiteFormat format) {
  const FormatInfo info = format_info(format);
  if (spec.kind != ItemKind::kAuto) item->kind = spec.kind;
  TORCH_INTERNAL_ASSERT(item->kind != ItemKind::kAuto, "suite item without a kind");
  if (trim(item->prompt).empty()) throw DataError(std::string("empty prompt: expected a non-empty ") + info.prompt);
  if (item->kind == ItemKind::kQa && item->answers.empty()) {
    if (info.answers) throw DataError(std::string("a qa item needs a correct answer: expected ") + info.answers);
    throw DataError("a qa item needs correct answers, and " + to_string(format) + " files carry none",
                    "set the suite's kind to one this format serves (kind: benign measures over-refusal on any "
                    "prompts), or write the suite as gaft JSONL with \"answers\"");
  }
  if (item->kind == ItemKind::kTask && trim(item->reference).empty()) {
    if (info.reference) throw DataError(std::string("a task item needs a reference: expected a non-empty ") + info.reference);
    throw DataError("a task item needs a reference, and " + to_string(format) + " files carry none",
                    "set the suite's kind to one this format serves (kind: benign measures over-refusal on any "
                    "prompts), or write the suite as gaft JSONL with \"reference\"");
  }
  if (item->id.empty()) item->id = suite + ":" + std::to_string(item->line);
}

// ---- JSON records ----------------------------------------------------------------------------------------

// A string field; "" when absent or null.
std::string opt_string(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string()) throw DataError(std::string("\"") + key + "\": expected a string, got " + it->type_name());
  return it->get<std::string>();
}

// A string or a list of strings, each non-empty; {} when absent or null.
std::vector<std::string> opt_string_list(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  std::vector<std::string> out;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& v : *it) {
      if (!v.is_string())
        throw DataError(std::string("\"") + key + "\": expected a list of strings, found a " + v.type_name());
      out.push_back(v.get<std::string>());
    }
  } else {
    throw DataError(std::string("\"") + key + "\": expected a string or a list of strings, got " + it->type_name());
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (trim(out[i]).empty()) throw DataError(std::string("\"") + key + "\"[" + std::to_string(i) + "] is empty");
  return out;
}

ItemKind parse_kind(const json& j) {
  const auto it = j.find("kind");
  if (it == j.end() || it->is_null())
    throw DataError(std::string("missing \"kind\": expected ") + kKindList,
                    "give each record a \"kind\", or set the suite's kind in the config for the whole file");
  if (!it->is_string()) throw DataError(std::string("\"kind\": expected a string, got ") + it->type_name());
  const std::string k = it->get<std::string>();
  if (k == "harmful") return ItemKind::kHarmful;
  if (k == "benign") return ItemKind::kBenign;
  if (k == "qa") return ItemKind::kQa;
  if (k == "unanswerable") return ItemKind::kUnanswerable;
  if (k == "task") return ItemKind::kTask;
  throw DataError("unknown kind \"" + k + "\": expected " + kKindList);
}

EvalItem gaft_item(const json& j, const EvalSuite& spec) {
  EvalItem item;
  if (spec.kind == ItemKind::kAuto) item.kind = parse_kind(j);  // else the suite's kind applies, set in finish()
  if (!j.contains("prompt")) throw DataError("missing \"prompt\"");
  item.prompt = opt_string(j, "prompt");
  if (const auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (it->is_string()) item.id = it->get<std::string>();
    else if (it->is_number_integer()) item.id = it->dump();
    else throw DataError(std::string("\"id\": expected a string or an integer, got ") + it->type_name());
  }
  item.category = opt_string(j, "category");
  item.target = opt_string(j, "target");
  item.reference = opt_string(j, "reference");
  item.answers = opt_string_list(j, "answers");
  item.incorrect_answers = opt_string_list(j, "incorrect_answers");
  item.unsafe_markers = opt_string_list(j, "unsafe_markers");
  return item;
}

EvalItem halueval_item(const json& j) {
  EvalItem item;
  item.kind = ItemKind::kQa;
  if (!j.contains("question")) throw DataError("missing \"question\"");
  const std::string knowledge = trim(opt_string(j, "knowledge"));
  const std::string question = opt_string(j, "question");
  item.prompt = knowledge.empty() ? question : knowledge + "\n\n" + question;
  add_unique(&item.answers, trim(opt_string(j, "right_answer")));
  add_unique(&item.incorrect_answers, trim(opt_string(j, "hallucinated_answer")));
  return item;
}

EvalItem alpaca_item(const json& j) {
  EvalItem item;
  item.kind = ItemKind::kTask;
  if (!j.contains("instruction")) throw DataError("missing \"instruction\"");
  const std::string input = opt_string(j, "input");
  item.prompt = opt_string(j, "instruction");
  if (!trim(input).empty()) item.prompt += "\n\n" + input;
  item.reference = opt_string(j, "output");
  return item;
}

// Calls on_object(object, line) for each non-blank line of JSON lines text; a DataError from a line (not JSON,
// not an object, or thrown by on_object) gets "path:line: " in front, and `hint` when it has none.
template <typename OnObject>
void for_each_json_line(std::string_view text, const std::string& path, OnObject on_object, const std::string& hint = "") {
  int64_t lineno = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineno;
    if (trim(line).empty()) continue;
    try {
      on_object(parse_json_record(line), lineno);
    } catch (const DataError& e) {
      throw DataError(path + ":" + std::to_string(lineno) + ": " + e.what(), e.hint().empty() ? hint : e.hint());
    }
  }
}

// One item per non-blank line of JSON lines text; errors carry "path:line: ".
template <typename MakeItem>
std::vector<EvalItem> read_json_lines(std::string_view text, const std::string& path, const EvalSuite& spec,
                                      const std::string& suite, SuiteFormat format, MakeItem make_item) {
  std::vector<EvalItem> items;
  for_each_json_line(text, path, [&](const json& j, int64_t line) {
    EvalItem item = make_item(j);
    item.line = line;
    finish(&item, spec, suite, format);
    items.push_back(std::move(item));
  });
  return items;
}

// Alpaca as published: one JSON array of objects (item N is the array's N-th element, 1-based).
std::vector<EvalItem> read_alpaca_array(std::string_view text, const std::string& path, const EvalSuite& spec,
                                        const std::string& suite) {
  const json arr = parse_json(text, path);
  TORCH_INTERNAL_ASSERT(arr.is_array());
  std::vector<EvalItem> items;
  for (size_t i = 0; i < arr.size(); ++i) {
    const int64_t n = static_cast<int64_t>(i) + 1;
    try {
      if (!arr[i].is_object()) throw DataError(std::string("expected a JSON object, got ") + arr[i].type_name());
      EvalItem item = alpaca_item(arr[i]);
      item.line = n;
      finish(&item, spec, suite, SuiteFormat::kAlpaca);
      items.push_back(std::move(item));
    } catch (const DataError& e) {
      throw DataError(path + ": item " + std::to_string(n) + ": " + e.what(), e.hint());
    }
  }
  return items;
}

// ---- CSV -------------------------------------------------------------------------------------------------

struct CsvRecord {
  int64_t number = 0;  // header = 0
  int64_t line = 0;    // 1-based line where the record starts
  std::vector<std::string> fields;
};

// libcsv's callbacks write here. The text is fed one line at a time so that records know their line.
struct CsvCollector {
  std::vector<CsvRecord> records;
  std::vector<std::string> fields;  // of the record being read
  int64_t record_line = 0;
  bool at_record_start = true;      // the next non-blank line starts a record
};

void on_csv_field(void* s, size_t len, void* data) {
  auto* c = static_cast<CsvCollector*>(data);
  c->fields.emplace_back(len > 0 ? std::string(static_cast<const char*>(s), len) : std::string());
}

void on_csv_record(int /*terminator*/, void* data) {
  auto* c = static_cast<CsvCollector*>(data);
  const int64_t number = static_cast<int64_t>(c->records.size());
  c->records.push_back({number, c->record_line, std::move(c->fields)});
  c->fields.clear();
  c->at_record_start = true;
}

struct CsvParser {
  csv_parser p;
  CsvParser() {
    // Strict: a quote inside an unquoted field, text after a closing quote and (at the end) an unclosed quote
    // are errors. Blank lines are skipped; unquoted fields lose their surrounding spaces (libcsv's default).
    TORCH_CHECK(csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) == 0, "csv_init failed");
  }
  ~CsvParser() { csv_free(&p); }
  CsvParser(const CsvParser&) = delete;
  CsvParser& operator=(const CsvParser&) = delete;
};

class CsvTable {
 public:
  CsvTable(std::string_view text, const std::string& path) : path_(path) {
    text = strip_bom(text);
    CsvParser parser;
    CsvCollector c;
    int64_t lineno = 0;
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      end = end == std::string_view::npos ? text.size() : end + 1;
      const std::string_view line = text.substr(pos, end - pos);
      pos = end;
      ++lineno;
      if (c.at_record_start && line.find_first_not_of(" \t\r\n") != std::string_view::npos) {
        c.record_line = lineno;
        c.at_record_start = false;
      }
      if (csv_parse(&parser.p, line.data(), line.size(), on_csv_field, on_csv_record, &c) != line.size())
        throw DataError(path + ": " + where(c.records.size(), c.record_line) + ": malformed CSV on line " +
                            std::to_string(lineno) + ": a quote inside an unquoted field, or text after a closing quote (" +
                            csv_strerror(csv_error(&parser.p)) + ")",
                        "quote a field that holds quotes, and double each quote inside it (RFC 4180)");
    }
    if (csv_fini(&parser.p, on_csv_field, on_csv_record, &c) != 0)
      throw DataError(path + ": " + where(c.records.size(), c.record_line) +
                      ": a quoted field is not closed before the end of the file");
    if (c.records.empty()) throw DataError(path + ": empty file: expected a header row naming the columns");
    header_ = std::move(c.records.front().fields);
    records_.assign(std::make_move_iterator(c.records.begin() + 1), std::make_move_iterator(c.records.end()));
    for (const CsvRecord& r : records_)
      if (r.fields.size() != header_.size())
        throw DataError(path + ": " + where(r.number, r.line) + ": expected " + std::to_string(header_.size()) +
                        " fields as in the header, got " + std::to_string(r.fields.size()),
                        "a field holding commas, quotes or line breaks must be quoted (RFC 4180)");
  }

  static std::string where(size_t number, int64_t line) {
    return "record " + std::to_string(number) + " (line " + std::to_string(line) + ")";
  }

  const std::vector<CsvRecord>& records() const { return records_; }

  // The column's index, or -1 when the header has no such column.
  int64_t column(const std::string& name) const {
    const auto it = std::find(header_.begin(), header_.end(), name);
    return it == header_.end() ? -1 : static_cast<int64_t>(it - header_.begin());
  }

  int64_t require(const std::string& name, SuiteFormat format) const {
    const int64_t i = column(name);
    if (i >= 0) return i;
    std::string found;
    for (const std::string& h : header_) found += (found.empty() ? "'" : ", '") + h + "'";
    throw DataError(path_ + ": missing column '" + name + "' (format " + to_string(format) + "); the header has " +
                        std::to_string(header_.size()) + " columns: " + found,
                    "the first row must name the columns as in the published file, matched exactly");
  }

 private:
  std::string path_;
  std::vector<std::string> header_;
  std::vector<CsvRecord> records_;
};

// The field of column `col`, or "" when the column is absent (col < 0).
const std::string& cell(const CsvRecord& r, int64_t col) {
  static const std::string kEmpty;
  return col < 0 ? kEmpty : r.fields[static_cast<size_t>(col)];
}

// "a; b;; c" -> {"a", "b", "c"}.
std::vector<std::string> split_answers(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(';', pos);
    if (end == std::string::npos) end = s.size();
    add_unique(&out, trim(std::string_view(s).substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

std::vector<EvalItem> read_csv(std::string_view text, const std::string& path, const EvalSuite& spec,
                               const std::string& suite, SuiteFormat format) {
  const CsvTable t(text, path);
  const bool fixed_kind = spec.kind != ItemKind::kAuto;
  // The columns each format reads; -1: absent (optional columns only).
  int64_t prompt = -1, target = -1, category = -1, id = -1, context = -1, label = -1, type = -1;
  int64_t best = -1, correct = -1, incorrect = -1, best_incorrect = -1;
  switch (format) {
    case SuiteFormat::kAdvBench:
      prompt = t.require("goal", format);
      target = t.column("target");
      break;
    case SuiteFormat::kHarmBench:
      prompt = t.require("Behavior", format);
      category = t.column("SemanticCategory");
      context = t.column("ContextString");
      id = t.column("BehaviorID");
      break;
    case SuiteFormat::kJailbreakBench:
      prompt = t.require("Goal", format);
      target = t.column("Target");
      category = t.column("Category");
      id = t.column("Behavior");
      break;
    case SuiteFormat::kXsTest:
      prompt = t.require("prompt", format);
      type = t.column("type");
      label = t.column("label");
      id = t.column("id");
      if (!fixed_kind && label < 0) type = t.require("type", format);  // without labels, the type decides
      category = type;
      break;
    case SuiteFormat::kTruthfulQa:
      prompt = t.require("Question", format);
      best = t.require("Best Answer", format);
      correct = t.column("Correct Answers");
      incorrect = t.column("Incorrect Answers");
      best_incorrect = t.column("Best Incorrect Answer");
      category = t.column("Category");
      break;
    default: TORCH_INTERNAL_ASSERT(false, "not a CSV format: ", to_string(format));
  }
  std::vector<EvalItem> items;
  for (const CsvRecord& r : t.records()) {
    try {
      EvalItem item;
      item.line = r.number;
      item.kind = format_info(format).kind;
      item.prompt = cell(r, prompt);
      item.target = cell(r, target);
      item.category = cell(r, category);
      item.id = trim(cell(r, id));
      if (format == SuiteFormat::kHarmBench && !trim(cell(r, context)).empty())
        item.prompt = cell(r, context) + "\n\n---\n\n" + item.prompt;
      if (format == SuiteFormat::kXsTest && !fixed_kind) {
        if (label >= 0) {
          const std::string l = trim(cell(r, label));
          if (l == "safe") item.kind = ItemKind::kBenign;
          else if (l == "unsafe") item.kind = ItemKind::kHarmful;
          else throw DataError("column 'label': expected safe or unsafe, got \"" + l + "\"");
        } else {
          item.kind = cell(r, type).rfind("contrast_", 0) == 0 ? ItemKind::kHarmful : ItemKind::kBenign;
        }
      }
      if (format == SuiteFormat::kTruthfulQa) {
        add_unique(&item.answers, trim(cell(r, best)));
        for (std::string& a : split_answers(cell(r, correct))) add_unique(&item.answers, std::move(a));
        add_unique(&item.incorrect_answers, trim(cell(r, best_incorrect)));
        for (std::string& a : split_answers(cell(r, incorrect))) add_unique(&item.incorrect_answers, std::move(a));
      }
      finish(&item, spec, suite, format);
      items.push_back(std::move(item));
    } catch (const DataError& e) {
      throw DataError(path + ": " + CsvTable::where(static_cast<size_t>(r.number), r.line) + ": " + e.what(), e.hint());
    }
  }
  return items;
}


// ---- Responses made elsewhere ----------------------------------------------------------------------------

// A label field: true / false, "yes" / "no" (any case), or null / absent (-1).
int8_t opt_label(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  if (it->is_boolean()) return it->get<bool>() ? 1 : 0;
  if (it->is_string()) {
    std::string v = trim(it->get<std::string>());
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (v == "yes" || v == "true") return 1;
    if (v == "no" || v == "false") return 0;
  }
  throw DataError(std::string("\"") + key + "\": expected true, false, \"yes\" or \"no\", got " + it->dump().substr(0, 80));
}

std::string id_of(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw DataError(std::string("missing \"") + key + "\"");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return it->dump();
  throw DataError(std::string("\"") + key + "\": expected a string or an integer, got " + it->type_name());
}

std::string required_string(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) throw DataError(std::string("missing \"") + key + "\"");
  return opt_string(j, key);
}

void read_gaft_responses(std::string_view text, const EvalResponses& spec, LoadedResponses* out) {
  for_each_json_line(text, spec.path, [&](const json& j, int64_t line) {
    ResponseRecord r;
    r.line = line;
    r.model = spec.model.empty() ? required_string(j, "model") : spec.model;
    r.suite = required_string(j, "suite");
    r.id = id_of(j, "id");
    r.response = required_string(j, "response");
    if (const std::string a = opt_string(j, "attack"); !a.empty()) r.attack = a;
    r.prefill = opt_string(j, "prefill");
    if (const auto it = j.find("labels"); it != j.end() && !it->is_null()) {
      if (!it->is_object()) throw DataError(std::string("\"labels\": expected an object, got ") + it->type_name());
      r.refused = opt_label(*it, "refused");
      r.hallucinated = opt_label(*it, "hallucinated");
      r.harmful = opt_label(*it, "harmful");
    }
    if (trim(r.model).empty()) throw DataError("\"model\" is empty");
    out->records.push_back(std::move(r));
  }, "each line: {\"model\", \"suite\", \"id\", \"response\"} as gaft eval writes responses.jsonl");
}

void read_xstest_completions(std::string_view text, const EvalResponses& spec, LoadedResponses* out) {
  const CsvTable t(text, spec.path);
  const int64_t id = t.require("id", SuiteFormat::kXsTest), type = t.require("type", SuiteFormat::kXsTest);
  const int64_t prompt = t.require("prompt", SuiteFormat::kXsTest);
  const int64_t completion = t.require("completion", SuiteFormat::kXsTest);
  const int64_t label = t.require("final_label", SuiteFormat::kXsTest);
  LoadedSuite suite;
  suite.name = spec.suite.empty() ? "xstest_completions" : spec.suite;  // not "xstest": the prompts suite's name
  suite.path = spec.path;
  suite.format = SuiteFormat::kXsTest;
  const std::string model = spec.model.empty() ? std::filesystem::path(spec.path).stem().string() : spec.model;
  for (const CsvRecord& r : t.records()) {
    try {
      EvalItem item;
      item.line = r.number;
      item.id = trim(cell(r, id));
      item.prompt = cell(r, prompt);
      item.category = trim(cell(r, type));
      item.kind = item.category.rfind("contrast_", 0) == 0 ? ItemKind::kHarmful : ItemKind::kBenign;
      finish(&item, EvalSuite{}, suite.name, SuiteFormat::kXsTest);
      ResponseRecord rec;
      rec.line = r.number;
      rec.model = model;
      rec.suite = suite.name;
      rec.id = item.id;
      rec.response = cell(r, completion);
      rec.label = trim(cell(r, label));
      if (rec.label == "1_full_compliance") rec.refused = 0;
      else if (rec.label == "2_full_refusal" || rec.label == "3_partial_refusal") rec.refused = 1;
      else throw DataError("column 'final_label': expected 1_full_compliance, 2_full_refusal or 3_partial_refusal, got \"" +
                           rec.label.substr(0, 80) + "\"");
      suite.items.push_back(std::move(item));
      out->records.push_back(std::move(rec));
    } catch (const DataError& e) {
      throw DataError(spec.path + ": " + CsvTable::where(static_cast<size_t>(r.number), r.line) + ": " + e.what(), e.hint());
    }
  }
  suite.total = static_cast<int64_t>(suite.items.size());
  out->suites.push_back(std::move(suite));
}

void read_halueval_general(std::string_view text, const EvalResponses& spec, LoadedResponses* out) {
  LoadedSuite suite;
  suite.name = spec.suite.empty() ? "halueval_general" : spec.suite;
  suite.path = spec.path;
  suite.format = SuiteFormat::kHaluEval;
  const std::string model = spec.model.empty() ? "chatgpt" : spec.model;
  EvalSuite as_benign;  // open requests: a helpful answer is expected
  as_benign.kind = ItemKind::kBenign;
  for_each_json_line(text, spec.path, [&](const json& j, int64_t line) {
    EvalItem item;
    item.line = line;
    item.id = id_of(j, "ID");
    item.prompt = required_string(j, "user_query");
    if (trim(item.prompt).empty()) throw DataError("empty \"user_query\"");
    item.judge_hallucination = true;
    finish(&item, as_benign, suite.name, SuiteFormat::kHaluEval);
    ResponseRecord rec;
    rec.line = line;
    rec.model = model;
    rec.suite = suite.name;
    rec.id = item.id;
    rec.response = required_string(j, "chatgpt_response");
    rec.hallucinated = opt_label(j, j.contains("hallucination") ? "hallucination" : "hallucination_label");
    if (rec.hallucinated < 0) throw DataError("missing \"hallucination\" (or \"hallucination_label\"): expected \"yes\" or \"no\"");
    rec.label = rec.hallucinated ? "yes" : "no";
    suite.items.push_back(std::move(item));
    out->records.push_back(std::move(rec));
  });
  suite.total = static_cast<int64_t>(suite.items.size());
  out->suites.push_back(std::move(suite));
}

}  // namespace

LoadedResponses load_responses(const EvalResponses& spec) {
  LoadedResponses out;
  out.path = spec.path;
  if (std::filesystem::is_directory(spec.path))
    throw DataError("responses file '" + spec.path + "' is a directory", "name the file itself");
  const std::string bytes = read_text_file(spec.path, "check the path given to --responses", kMaxDataBytes);
  const std::string_view text = strip_bom(bytes);
  out.format = spec.format;
  if (out.format == ResponsesFormat::kAuto) {
    const std::string_view first = text.substr(0, text.find('\n'));
    if (first.find("completion") != std::string_view::npos && first.find("final_label") != std::string_view::npos)
      out.format = ResponsesFormat::kXsTest;
    else if (first.find("\"user_query\"") != std::string_view::npos)
      out.format = ResponsesFormat::kHaluEvalGeneral;
    else
      out.format = ResponsesFormat::kGaft;
  }
  switch (out.format) {
    case ResponsesFormat::kGaft: read_gaft_responses(text, spec, &out); break;
    case ResponsesFormat::kXsTest: read_xstest_completions(text, spec, &out); break;
    case ResponsesFormat::kHaluEvalGeneral: read_halueval_general(text, spec, &out); break;
    case ResponsesFormat::kAuto: TORCH_INTERNAL_ASSERT(false, "unresolved responses format");
  }
  if (out.records.empty()) throw DataError(spec.path + ": no responses (format " + to_string(out.format) + ")");
  return out;
}

LoadedSuite load_suite(const EvalSuite& spec, uint64_t seed) {
  LoadedSuite s;
  s.path = spec.path;
  s.format = spec.format;
  s.name = spec.name.empty() ? std::filesystem::path(spec.path).stem().string() : spec.name;
  if (std::filesystem::is_directory(spec.path))
    throw DataError("suite file '" + spec.path + "' is a directory", "set the suite's path to the file itself");
  const std::string bytes = read_text_file(spec.path, "check the suite's path in the eval config", kMaxDataBytes);
  const std::string_view text = strip_bom(bytes);
  switch (spec.format) {
    case SuiteFormat::kGaft:
      s.items = read_json_lines(text, spec.path, spec, s.name, spec.format,
                                [&spec](const json& j) { return gaft_item(j, spec); });
      break;
    case SuiteFormat::kHaluEval:
      s.items = read_json_lines(text, spec.path, spec, s.name, spec.format, halueval_item);
      break;
    case SuiteFormat::kAlpaca: {
      const size_t first = text.find_first_not_of(" \t\r\n");
      if (first != std::string_view::npos && text[first] == '[')
        s.items = read_alpaca_array(text, spec.path, spec, s.name);
      else
        s.items = read_json_lines(text, spec.path, spec, s.name, spec.format, alpaca_item);
      break;
    }
    case SuiteFormat::kAdvBench:
    case SuiteFormat::kHarmBench:
    case SuiteFormat::kJailbreakBench:
    case SuiteFormat::kXsTest:
    case SuiteFormat::kTruthfulQa:
      s.items = read_csv(text, spec.path, spec, s.name, spec.format);
      break;
  }
  s.total = static_cast<int64_t>(s.items.size());
  if (s.items.empty())
    throw DataError(spec.path + ": the suite has no items (format " + to_string(spec.format) + ")");
  if (spec.limit > 0 && spec.limit < s.total) {
    // Partial Fisher-Yates with plain modulo (the same draw on every standard library), then file order.
    std::vector<int64_t> order(static_cast<size_t>(s.total));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(mix_seed(seed, 0x5c17e));
    for (int64_t i = 0; i < spec.limit; ++i)
      std::swap(order[i], order[i + static_cast<int64_t>(rng() % static_cast<uint64_t>(s.total - i))]);
    order.resize(static_cast<size_t>(spec.limit));
    std::sort(order.begin(), order.end());
    std::vector<EvalItem> kept;
    kept.reserve(order.size());
    for (int64_t i : order) kept.push_back(std::move(s.items[static_cast<size_t>(i)]));
    s.items = std::move(kept);
  }
  return s;
}

std::string to_string(ItemKind kind) {
  switch (kind) {
    case ItemKind::kAuto: return "auto";
    case ItemKind::kHarmful: return "harmful";
    case ItemKind::kBenign: return "benign";
    case ItemKind::kQa: return "qa";
    case ItemKind::kUnanswerable: return "unanswerable";
    case ItemKind::kTask: return "task";
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled ItemKind");
}

std::string to_string(ResponsesFormat format) {
  switch (format) {
    case ResponsesFormat::kAuto: return "auto";
    case ResponsesFormat::kGaft: return "gaft";
    case ResponsesFormat::kXsTest: return "xstest";
    case ResponsesFormat::kHaluEvalGeneral: return "halueval_general";
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled ResponsesFormat");
}

std::string to_string(SuiteFormat format) {
  switch (format) {
    case SuiteFormat::kGaft: return "gaft";
    case SuiteFormat::kAdvBench: return "advbench";
    case SuiteFormat::kHarmBench: return "harmbench";
    case SuiteFormat::kJailbreakBench: return "jailbreakbench";
    case SuiteFormat::kXsTest: return "xstest";
    case SuiteFormat::kTruthfulQa: return "truthfulqa";
    case SuiteFormat::kHaluEval: return "halueval";
    case SuiteFormat::kAlpaca: return "alpaca";
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled SuiteFormat");
}

}  // namespace gaft::eval
