// Regular expressions: PCRE2, the one engine of gaft, over UTF-8 patterns and subjects. It serves the tokenizer's
// pre-tokenizer splits (tokenizer.json patterns), LoRA target_modules (adapter_config.json or the run config)
// and the Unicode word edges of the eval metrics. Patterns from files are bounded: a length limit when asked,
// PCRE2's nesting limit while compiling, and per match a budget of steps and a backtracking depth, so that a
// hostile pattern ends in a DataError rather than a crash or a match that never returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace gaft {

class Regex {
 public:
  struct Options {
    bool literal = false;          // the pattern is a plain string (tokenizer.json's Split {"String": ...})
    bool ucp = false;              // \w, \d, \s, \b and POSIX classes by Unicode properties
    bool jit = false;              // JIT-compiled: the same matches, faster (patterns run on every text)
    size_t max_pattern_chars = 0;  // > 0: a longer pattern is refused
    uint32_t match_limit = 0;      // > 0: steps of one match before it fails (PCRE2's default: 10^7)
    uint32_t depth_limit = 0;      // > 0: backtracking depth of one match (PCRE2's default: 10^7)
  };
  // `what` names the pattern in errors, e.g. "<file>: target_modules". DataError when it does not compile.
  Regex(std::string_view pattern, const Options& options, std::string what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  struct Match {
    size_t begin = 0, end = 0;  // byte offsets into the subject
  };
  // The first match in subject[start, size); with `anchored`, only one that starts at `start`. `valid_utf8`: the
  // caller has checked the subject (PCRE2 skips its own check, which costs a pass over the subject per call).
  // DataError when PCRE2 gives up (a limit, or invalid UTF-8 in an unchecked subject).
  std::optional<Match> find(std::string_view subject, size_t start = 0, bool anchored = false,
                            bool valid_utf8 = false) const;
  // Every non-overlapping match, in order; an empty match steps over one character. One match buffer for all.
  void for_each_match(std::string_view subject, bool valid_utf8,
                      const std::function<void(const Match&)>& on_match) const;
  // Whether the pattern matches all of `subject` (Python's re.fullmatch, as PEFT matches target_modules).
  bool full_match(std::string_view subject) const;

 private:
  struct MatchState;  // a match buffer and the limits (regex.cpp)
  // pcre2_match with these options into m's buffer: PCRE2_ERROR_NOMATCH or the match count; DataError otherwise.
  int run(std::string_view subject, size_t start, uint32_t options, MatchState& m) const;

  pcre2_real_code_8* code_ = nullptr;
  std::string what_;
  uint32_t match_limit_ = 0, depth_limit_ = 0;
};

}  // namespace gaft
