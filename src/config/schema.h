// A declarative table of configuration keys, bound to the fields of a typed struct.
//
// config.cpp describes each section once:
//     s.number("lr", &c.lr, "peak learning rate", Range::positive());
// and the same table then loads YAML into the struct (with every type and range error collected,
// located by file:line:column), prints the struct back as YAML, and writes the key reference.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gaft/config.h"

namespace gaft::config {

// Inclusive or exclusive bounds of a number.
struct Range {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;

  static Range any() { return {}; }
  static Range positive() { return {0.0, std::nullopt, true, false}; }
  static Range at_least(double x) { return {x, std::nullopt, false, false}; }
  static Range between(double lo, double hi) { return {lo, hi, false, false}; }  // [lo, hi]
  static Range unit() { return {0.0, 1.0, false, false}; }            // [0, 1]
  static Range unit_open_low() { return {0.0, 1.0, true, false}; }    // (0, 1]
  static Range unit_open_high() { return {0.0, 1.0, false, true}; }   // [0, 1)
  bool contains(double x) const;
  std::string describe() const;  // "> 0", "in [0, 1]", ""
};

// Collects problems while a configuration is read and checked; knows where every key came from.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  // Location of a YAML node in the file, or of an override when the key came from the command line.
  void record(const std::string& key, const YAML::Node& node);
  void record_override(const std::string& key, const std::string& text);
  std::string where(const std::string& key) const;  // nearest recorded key or parent; else the file

  void add(const std::string& key, const std::string& message);
  void add_at(const std::string& where, const std::string& key, const std::string& message);
  const std::vector<ConfigIssue>& issues() const { return issues_; }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::map<std::string, std::string> where_;
  std::map<std::string, std::string> overrides_;
  std::vector<ConfigIssue> issues_;
};

class Schema;
using Describe = std::function<void(Schema&)>;

struct Field {
  std::string key;
  std::string doc;
  std::string type;           // for the reference: "number > 0", "one of: a, b"
  std::string default_text;   // the value at registration time (a default-constructed struct)
  bool required = false;
  // Loads `node` (at `path`) into the bound field; reports problems to `diag`.
  std::function<void(const YAML::Node& node, const std::string& path, Diagnostics& diag)> load;
  std::function<YAML::Node()> dump;
  Describe child;             // sections and lists of sections: the element's table (for docs)
  bool is_list = false;
};

class Schema {
 public:
  void flag(const std::string& key, bool* v, const std::string& doc);
  void integer(const std::string& key, int64_t* v, const std::string& doc, Range range = {});
  void number(const std::string& key, double* v, const std::string& doc, Range range = {});
  void text(const std::string& key, std::string* v, const std::string& doc, bool required = false);
  void texts(const std::string& key, std::vector<std::string>* v, const std::string& doc);
  void text_map(const std::string& key, std::map<std::string, std::string>* v, const std::string& doc);

  template <class E>
  void choice(const std::string& key, E* v, std::vector<std::pair<std::string, E>> names,
              const std::string& doc) {
    std::vector<std::string> spellings;
    for (const auto& [name, value] : names) spellings.push_back(name);
    choice_impl(
        key, doc, spellings,
        [v, names]() {
          for (const auto& [name, value] : names)
            if (value == *v) return name;
          return std::string("?");
        },
        [v, names](const std::string& s) {
          for (const auto& [name, value] : names)
            if (name == s) *v = value;
        });
  }

  template <class S>
  void section(const std::string& key, S* v, void (*describe)(Schema&, S&), const std::string& doc,
               bool required = false) {
    section_impl(key, doc, required, [v, describe](Schema& s) { describe(s, *v); });
  }

  template <class S>
  void section_list(const std::string& key, std::vector<S>* v, void (*describe)(Schema&, S&),
                    const std::string& doc) {
    Field f;
    f.key = key;
    f.doc = doc;
    f.type = "list of sections";
    f.default_text = v->empty() ? "[]" : "(" + std::to_string(v->size()) + " entries)";
    f.is_list = true;
    f.child = [describe](Schema& s) {
      static S prototype;  // documentation only: the defaults of one element
      prototype = S{};
      describe(s, prototype);
    };
    f.load = [v, describe](const YAML::Node& node, const std::string& path, Diagnostics& diag) {
      if (!node.IsSequence()) {
        diag.add(path, "expected a list of sections, got " + node_kind(node));
        return;
      }
      v->clear();
      v->resize(node.size());
      for (size_t i = 0; i < node.size(); ++i) {
        diag.record(path + "." + std::to_string(i), node[i]);
        Schema element;
        describe(element, (*v)[i]);
        element.load(node[i], path + "." + std::to_string(i), diag);
      }
    };
    f.dump = [v, describe]() {
      YAML::Node out(YAML::NodeType::Sequence);
      for (auto& element : *v) {
        Schema s;
        describe(s, element);
        out.push_back(s.dump());
      }
      return out;
    };
    fields_.push_back(std::move(f));
  }

  // Loads a mapping into the bound fields: unknown keys (with a suggestion), duplicates, types,
  // ranges and required keys are reported, never thrown.
  void load(const YAML::Node& node, const std::string& path, Diagnostics& diag) const;
  YAML::Node dump() const;
  const std::vector<Field>& fields() const { return fields_; }

  // "expected a mapping, got a list" etc.
  static std::string node_kind(const YAML::Node& node);

 private:
  void choice_impl(const std::string& key, const std::string& doc, std::vector<std::string> spellings,
                   std::function<std::string()> get, std::function<void(const std::string&)> set);
  void section_impl(const std::string& key, const std::string& doc, bool required, Describe child);

  std::vector<Field> fields_;
};

// The closest of `candidates` to `word` by edit distance, if close enough to be a likely typo.
std::optional<std::string> did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// Every key path below a table ("optimizer.lr", "scorer.heads.N.path", ...), for suggestions.
std::vector<std::string> all_key_paths(const Schema& root);

// Markdown reference of a table, one heading per section.
std::string reference_markdown(const Schema& root);

}  // namespace gaft::config
