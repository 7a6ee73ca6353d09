// The per-response metrics of `gaft eval` and their confidence intervals. Pure functions on text, no
// model: answer normalisation, exact match, token F1, ROUGE-L, phrase matching (refusal, abstention) and
// the percentile bootstrap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gaft::eval {

// SQuAD's answer normalisation: lower case (ASCII, and the typographic apostrophes and quotes mapped to
// ASCII), punctuation removed, the articles "a", "an", "the" removed, whitespace collapsed to one space.
//   normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
std::string normalize_answer(const std::string& text);
// normalize_answer(text) split on spaces.
std::vector<std::string> answer_tokens(const std::string& text);

// normalize_answer(prediction) equals normalize_answer(g) for some g in golds (false when golds is empty).
bool exact_match(const std::string& prediction, const std::vector<std::string>& golds);
// SQuAD token F1 (bag of normalised tokens), the maximum over golds; 0 when golds is empty. Two empty
// token lists give 1.
double token_f1(const std::string& prediction, const std::vector<std::string>& golds);
// Some gold's normalised tokens occur as a contiguous run in the prediction's normalised tokens: a
// correct answer inside a sentence ("It is Paris." contains "Paris"). An empty gold never matches.
bool contains_answer(const std::string& prediction, const std::vector<std::string>& golds);

// ROUGE-L F-measure (β = 1) from the longest common subsequence of the two texts' tokens (lower-cased
// ASCII, split on every character that is not a letter or digit; bytes >= 0x80 count as letters).
// 0 when either side has no token.
double rouge_l(const std::string& prediction, const std::string& reference);

// Case-insensitive substring matching of a list of phrases (typographic apostrophes read as "'",
// whitespace runs as one space) at word edges: a phrase that starts or ends with a letter or digit must
// start or end a word of the text ("As an AI" does not fire inside "has an aim", nor "I refuse" inside
// "I refused"). Empty phrases are dropped.
class PhraseMatcher {
 public:
  explicit PhraseMatcher(std::vector<std::string> phrases);
  bool matches(const std::string& text) const { return !first_match(text).empty(); }
  // The first phrase (in list order) found in `text`; "" when none.
  std::string first_match(const std::string& text) const;
  const std::vector<std::string>& phrases() const { return phrases_; }

 private:
  std::vector<std::string> phrases_;     // as given
  std::vector<std::string> normalized_;  // what is searched
};

// Phrases that mark a refusal ("I can't help with", "I cannot assist", "As an AI", ...) and an
// abstention ("I don't know", "I'm not sure", ...). Listed in src/eval/metrics.cpp and configs/README.md.
const std::vector<std::string>& default_refusal_phrases();
const std::vector<std::string>& default_abstention_phrases();

// A mean with its percentile-bootstrap interval: `samples` resamples (with replacement, n each) drawn with
// a generator seeded by `seed`; lo/hi are the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the
// resampled means (linear interpolation). n == 0: mean, lo and hi are NaN. n == 1: lo == hi == mean.
struct Interval {
  double mean = 0, lo = 0, hi = 0;
  int64_t n = 0;
};
Interval bootstrap(const std::vector<double>& values, int64_t samples, uint64_t seed, double confidence = 0.95);

}  // namespace gaft::eval
