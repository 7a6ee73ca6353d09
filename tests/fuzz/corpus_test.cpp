// Replays every committed fuzz input (tests/fuzz/corpus/<target>/, made by tools/make_fuzz_corpus.py: well-formed
// files ok-*, the malformed files of issue 21 bad-*, and regressions of fuzzer findings) through its harness:
// ok-* must be accepted, bad-* refused with a gaft::Error (a message for the CLI's exit 2 or 3), and nothing may
// end any other way. The libFuzzer runs themselves (scripts/fuzz.sh) are not part of the suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "fuzz/targets.h"
#include "gaft/error.h"

namespace fs = std::filesystem;

namespace gaft::fuzz {
// Test names and messages show the harness by name.
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }
}  // namespace gaft::fuzz

namespace {

const fs::path kCorpus = fs::path(GAFT_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kCorpus / target))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// "accepted", "refused: <message>", or what else happened.
std::string outcome(const gaft::fuzz::Target& target, const std::string& bytes) {
  try {
    target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return "accepted";
  } catch (const gaft::Error& e) {
    return std::string("refused: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("NOT A GAFT ERROR: ") + e.what();
  }
}

class FuzzCorpus : public ::testing::TestWithParam<gaft::fuzz::Target> {};

TEST_P(FuzzCorpus, WellFormedInputsAreAcceptedAndMalformedOnesRefused) {
  const gaft::fuzz::Target& target = GetParam();
  const std::vector<fs::path> inputs = inputs_of(target.name);
  ASSERT_GE(inputs.size(), 3u) << "corpus of " << target.name << " (tools/make_fuzz_corpus.py makes it)";
  for (const fs::path& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = p.filename().string(), got = outcome(target, bytes);
    if (name.rfind("ok-", 0) == 0)
      EXPECT_EQ(got, "accepted") << p;
    else if (name.rfind("bad-", 0) == 0)
      EXPECT_EQ(got.rfind("refused: ", 0), 0u) << p << ": " << got;
    else
      EXPECT_EQ(got.rfind("NOT", 0), std::string::npos) << p << ": " << got;  // a finding's reproducer
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn(gaft::fuzz::targets()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
