// The configuration table machinery: loading with collected diagnostics, dumping, the key reference.
#include "config/schema.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace gaft::config {

namespace {

std::string format_number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

std::string scalar_text(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  return Schema::node_kind(node);
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Reads a number from a YAML scalar; yaml-cpp accepts "1e-5", "0x10", ".inf".
std::optional<double> read_number(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  double x;
  if (!YAML::convert<double>::decode(node, x)) return std::nullopt;
  return x;
}

}  // namespace

// ---- Range -----------------------------------------------------------------------------------------

bool Range::contains(double x) const {
  if (std::isnan(x)) return false;
  if (lo && (lo_open ? x <= *lo : x < *lo)) return false;
  if (hi && (hi_open ? x >= *hi : x > *hi)) return false;
  return true;
}

std::string Range::describe() const {
  if (lo && hi)
    return "in " + std::string(lo_open ? "(" : "[") + format_number(*lo) + ", " + format_number(*hi) +
           (hi_open ? ")" : "]");
  if (lo) return std::string(lo_open ? "> " : ">= ") + format_number(*lo);
  if (hi) return std::string(hi_open ? "< " : "<= ") + format_number(*hi);
  return "";
}

// ---- Diagnostics -----------------------------------------------------------------------------------

void Diagnostics::record(const std::string& key, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.is_null()) return;
  where_[key] = file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

void Diagnostics::record_override(const std::string& key, const std::string& text) {
  overrides_[key] = "override '" + text + "'";
}

std::string Diagnostics::where(const std::string& key) const {
  // 1. An override of the key or of a section above it.
  for (std::string k = key;;) {
    if (auto it = overrides_.find(k); it != overrides_.end()) return it->second;
    const size_t dot = k.rfind('.');
    if (dot == std::string::npos) break;
    k = k.substr(0, dot);
  }
  // 2. The key's own place in the file.
  if (auto it = where_.find(key); it != where_.end()) return it->second;
  // 3. An override that created this section by setting a key inside it.
  for (const auto& [k, text] : overrides_)
    if (k.rfind(key + ".", 0) == 0) return text;
  // 4. The nearest enclosing section in the file; else the file itself.
  for (std::string k = key;;) {
    const size_t dot = k.rfind('.');
    if (dot == std::string::npos) break;
    k = k.substr(0, dot);
    if (auto it = where_.find(k); it != where_.end()) return it->second;
  }
  return file_;
}

void Diagnostics::add(const std::string& key, const std::string& message) {
  issues_.push_back({where(key), key, message});
}

void Diagnostics::add_at(const std::string& where, const std::string& key, const std::string& message) {
  issues_.push_back({where, key, message});
}

// ---- Schema: field registration --------------------------------------------------------------------

namespace {
Field make_field(const std::string& key, const std::string& doc, const std::string& type,
                 const std::string& default_text, bool required = false) {
  Field f;
  f.key = key;
  f.doc = doc;
  f.type = type;
  f.default_text = default_text;
  f.required = required;
  return f;
}
}  // namespace

std::string Schema::node_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "an empty value";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

void Schema::flag(const std::string& key, bool* v, const std::string& doc) {
  Field f = make_field(key, doc, "true or false", *v ? "true" : "false");
  f.load = [v](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    bool x;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, x))
      return diag.add(path, "expected true or false, got " + scalar_text(node));
    *v = x;
  };
  f.dump = [v]() { return YAML::Node(*v); };
  fields_.push_back(std::move(f));
}

void Schema::integer(const std::string& key, int64_t* v, const std::string& doc, Range range) {
  const std::string bounds = range.describe();
  Field f = make_field(key, doc, bounds.empty() ? "integer" : "integer " + bounds, std::to_string(*v));
  f.load = [v, range, bounds](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    long long x;
    if (!node.IsScalar() || !YAML::convert<long long>::decode(node, x))
      return diag.add(path, "expected an integer" + (bounds.empty() ? "" : " " + bounds) + ", got " +
                                scalar_text(node));
    if (!range.contains(static_cast<double>(x)))
      return diag.add(path, "expected an integer " + bounds + ", got " + std::to_string(x));
    *v = x;
  };
  f.dump = [v]() { return YAML::Node(static_cast<long long>(*v)); };
  fields_.push_back(std::move(f));
}

void Schema::number(const std::string& key, double* v, const std::string& doc, Range range) {
  const std::string bounds = range.describe();
  Field f = make_field(key, doc, bounds.empty() ? "number" : "number " + bounds, format_number(*v));
  f.load = [v, range, bounds](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    const std::optional<double> x = read_number(node);
    if (!x)
      return diag.add(path, "expected a number" + (bounds.empty() ? "" : " " + bounds) + ", got " +
                                scalar_text(node));
    if (!std::isfinite(*x))
      return diag.add(path, "expected a finite number, got " + node.Scalar());
    if (!range.contains(*x)) return diag.add(path, "expected a number " + bounds + ", got " + node.Scalar());
    *v = *x;
  };
  f.dump = [v]() { return YAML::Node(*v); };
  fields_.push_back(std::move(f));
}

void Schema::text(const std::string& key, std::string* v, const std::string& doc, bool required) {
  Field f = make_field(key, doc, "string", v->empty() ? "\"\"" : "\"" + *v + "\"", required);
  f.load = [v](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    if (!node.IsScalar()) return diag.add(path, "expected a string, got " + node_kind(node));
    *v = node.Scalar();
  };
  f.dump = [v]() { return YAML::Node(*v); };
  fields_.push_back(std::move(f));
}

void Schema::texts(const std::string& key, std::vector<std::string>* v, const std::string& doc) {
  std::string def;  // the default as YAML: [a, b]
  for (const auto& s : *v) def += (def.empty() ? "" : ", ") + s;
  Field f = make_field(key, doc, "list of strings", "[" + def + "]");
  f.load = [v](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    if (!node.IsSequence()) return diag.add(path, "expected a list of strings, got " + node_kind(node));
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) {
        diag.record(path + "." + std::to_string(i), node[i]);
        diag.add(path + "." + std::to_string(i), "expected a string, got " + node_kind(node[i]));
        continue;
      }
      out.push_back(node[i].Scalar());
    }
    *v = out;
  };
  f.dump = [v]() {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& s : *v) out.push_back(s);
    return out;
  };
  fields_.push_back(std::move(f));
}

void Schema::text_map(const std::string& key, std::map<std::string, std::string>* v,
                      const std::string& doc) {
  std::string def;
  for (const auto& [k, s] : *v) def += (def.empty() ? "" : ", ") + k + ": \"" + s + "\"";
  Field f = make_field(key, doc, "mapping of strings", "{" + def + "}");
  f.load = [v](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    if (!node.IsMap()) return diag.add(path, "expected a mapping of strings, got " + node_kind(node));
    std::map<std::string, std::string> out;
    for (const auto& kv : node) {
      const std::string k = kv.first.as<std::string>("");
      diag.record(path + "." + k, kv.first);
      if (!kv.second.IsScalar()) {
        diag.add(path + "." + k, "expected a string, got " + node_kind(kv.second));
        continue;
      }
      out[k] = kv.second.Scalar();
    }
    *v = out;
  };
  f.dump = [v]() {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& [k, s] : *v) out[k] = s;
    return out;
  };
  fields_.push_back(std::move(f));
}

void Schema::choice_impl(const std::string& key, const std::string& doc,
                         std::vector<std::string> spellings, std::function<std::string()> get,
                         std::function<void(const std::string&)> set) {
  Field f = make_field(key, doc, "one of: " + join(spellings, ", "), get());
  f.load = [spellings, set](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    if (node.IsScalar() &&
        std::find(spellings.begin(), spellings.end(), node.Scalar()) != spellings.end())
      return set(node.Scalar());
    std::string message = "expected one of " + join(spellings, ", ") + ", got " + scalar_text(node);
    if (node.IsScalar())
      if (auto guess = did_you_mean(node.Scalar(), spellings)) message += " (did you mean '" + *guess + "'?)";
    diag.add(path, message);
  };
  f.dump = [get]() { return YAML::Node(get()); };
  fields_.push_back(std::move(f));
}

void Schema::section_impl(const std::string& key, const std::string& doc, bool required, Describe child) {
  Field f = make_field(key, doc, "section", "", required);
  f.child = child;
  f.load = [child](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
    Schema s;
    child(s);
    s.load(node, path, diag);
  };
  f.dump = [child]() {
    Schema s;
    child(s);
    return s.dump();
  };
  fields_.push_back(std::move(f));
}

// ---- Schema: loading and dumping -------------------------------------------------------------------

void Schema::load(const YAML::Node& node, const std::string& path, Diagnostics& diag) const {
  const std::string prefix = path.empty() ? "" : path + ".";
  if (node.IsNull()) {  // an empty section: all defaults, but required keys are still required
    for (const auto& f : fields_)
      if (f.required) diag.add(prefix + f.key, "missing required key '" + prefix + f.key + "'");
    return;
  }
  if (!node.IsMap()) {
    diag.add(path.empty() ? "(top level)" : path, "expected a mapping, got " + node_kind(node));
    return;
  }
  std::vector<std::string> known;
  for (const auto& f : fields_) known.push_back(f.key);

  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    const std::string full = prefix + key;
    diag.record(full, kv.first);
    if (!seen.insert(key).second) {
      diag.add(full, "duplicate key '" + key + "'");
      continue;
    }
    auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key == key; });
    if (it == fields_.end()) {
      std::string message = "unknown key '" + key + "'" +
                            (path.empty() ? "" : " in section '" + path + "'");
      if (auto guess = did_you_mean(key, known)) message += " (did you mean '" + prefix + *guess + "'?)";
      diag.add(full, message);
      continue;
    }
    it->load(kv.second, full, diag);
  }
  for (const auto& f : fields_) {
    if (f.required && !seen.count(f.key)) {
      const std::string what = f.type == "section" ? "section" : "key";
      diag.add(path.empty() ? prefix + f.key : path,
               "missing required " + what + " '" + prefix + f.key + "'");
    }
  }
}

YAML::Node Schema::dump() const {
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& f : fields_) out[f.key] = f.dump();
  return out;
}

// ---- suggestions and reference ---------------------------------------------------------------------

std::optional<std::string> did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

namespace {
void collect_paths(const Schema& s, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& f : s.fields()) {
    const std::string path = prefix + f.key;
    out.push_back(path);
    if (f.child) {
      Schema child;
      f.child(child);
      collect_paths(child, path + (f.is_list ? ".N." : "."), out);
    }
  }
}

void reference_section(const Schema& s, const std::string& path, const std::string& doc, std::ostream& os) {
  os << "\n## `" << path << "`\n\n" << doc << "\n\n";
  os << "| key | type | default | meaning |\n|---|---|---|---|\n";
  std::vector<std::pair<std::string, const Field*>> children;
  for (const auto& f : s.fields()) {
    if (f.child) {
      children.emplace_back(path + "." + f.key + (f.is_list ? "[]" : ""), &f);
      os << "| `" << f.key << "` | " << f.type << " | " << (f.default_text.empty() ? "" : "`" + f.default_text + "`")
         << " | " << f.doc << " (see below) |\n";
      continue;
    }
    std::string def = f.required ? "required" : "`" + f.default_text + "`";
    os << "| `" << f.key << "` | " << f.type << " | " << def << " | " << f.doc << " |\n";
  }
  for (const auto& [child_path, f] : children) {
    Schema child;
    f->child(child);
    reference_section(child, child_path, f->doc + (f->is_list ? " Each entry:" : ""), os);
  }
}
}  // namespace

std::vector<std::string> all_key_paths(const Schema& root) {
  std::vector<std::string> out;
  collect_paths(root, "", out);
  return out;
}

std::string reference_markdown(const Schema& root) {
  std::ostringstream os;
  for (const auto& f : root.fields()) {
    Schema child;
    f.child(child);
    reference_section(child, f.key, f.doc + (f.required ? " Required section." : ""), os);
  }
  return os.str();
}

}  // namespace gaft::config
