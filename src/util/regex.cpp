#define PCRE2_CODE_UNIT_WIDTH 8
#include "gaft/regex.h"

#include <pcre2.h>

#include "gaft/error.h"

namespace gaft {
namespace {

std::string message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

// Match buffer and limits of one call (or one loop of calls): freed however the call ends.
struct Regex::MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  MatchState(const pcre2_code* code, uint32_t match_limit, uint32_t depth_limit)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    if (match_limit > 0 || depth_limit > 0) {
      context = pcre2_match_context_create(nullptr);
      if (match_limit > 0) pcre2_set_match_limit(context, match_limit);
      if (depth_limit > 0) pcre2_set_depth_limit(context, depth_limit);
    }
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

Regex::Regex(std::string_view pattern, const Options& o, std::string what)
    : what_(std::move(what)), match_limit_(o.match_limit), depth_limit_(o.depth_limit) {
  if (o.max_pattern_chars > 0 && pattern.size() > o.max_pattern_chars)
    throw DataError(what_ + ": a pattern of " + std::to_string(pattern.size()) + " characters, more than " +
                    std::to_string(o.max_pattern_chars));
  const uint32_t options = PCRE2_UTF | (o.literal ? PCRE2_LITERAL : 0) | (o.ucp && !o.literal ? PCRE2_UCP : 0);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error, &offset,
                        nullptr);
  if (code_ == nullptr)
    throw DataError(what_ + ": not a valid regular expression at character " + std::to_string(offset) + ": " +
                    message(error) + " (pattern: " + std::string(pattern.substr(0, 200)) + ")");
  if (o.jit) pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // without JIT, pcre2_match interprets: same matches
}

Regex::~Regex() { pcre2_code_free(code_); }

int Regex::run(std::string_view subject, size_t start, uint32_t options, MatchState& m) const {
  const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start, options,
                             m.data, m.context);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
    throw DataError(what_ + ": could not be matched against '" + std::string(subject.substr(0, 80)) +
                        (subject.size() > 80 ? "...' (" + std::to_string(subject.size()) + " bytes)" : "'") + ": " +
                        message(rc),
                    "simplify the pattern (nested repetitions backtrack without end)");
  return rc;
}

std::optional<Regex::Match> Regex::find(std::string_view subject, size_t start, bool anchored, bool valid_utf8) const {
  MatchState m(code_, match_limit_, depth_limit_);
  if (run(subject, start, (anchored ? PCRE2_ANCHORED : 0) | (valid_utf8 ? PCRE2_NO_UTF_CHECK : 0), m) < 0)
    return std::nullopt;
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.data);
  return Match{ov[0], ov[1]};
}

void Regex::for_each_match(std::string_view subject, bool valid_utf8,
                           const std::function<void(const Match&)>& on_match) const {
  MatchState m(code_, match_limit_, depth_limit_);
  uint32_t options = valid_utf8 ? PCRE2_NO_UTF_CHECK : 0;
  size_t pos = 0;
  while (pos < subject.size()) {
    if (run(subject, pos, options, m) < 0) return;
    options |= PCRE2_NO_UTF_CHECK;  // checked by the first call
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.data);
    const Match match{ov[0], ov[1]};
    if (match.end == match.begin) {  // an empty match: step over one character
      pos = match.begin + 1;
      while (pos < subject.size() && (static_cast<uint8_t>(subject[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    on_match(match);
    pos = match.end;
  }
}

bool Regex::full_match(std::string_view subject) const {
  MatchState m(code_, match_limit_, depth_limit_);
  return run(subject, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, m) >= 0;
}

}  // namespace gaft
