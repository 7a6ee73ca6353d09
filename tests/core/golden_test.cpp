// The golden check: greedy generation on the real stories260K model reproduces llama2.c's text exactly.
#include <nlohmann/json.hpp>

#include "gaft/generate.h"
#include "gaft/llama.h"
#include "gaft/tokenizer.h"
#include "test_util.h"

TEST(Golden, Stories260KGreedyMatchesLlama2c) {
  if (!std::filesystem::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder " << gaft_test::kStories;
  const std::string dir = gaft_test::kStories + "/hf";
  gaft::Llama model = gaft::load_llama(dir);
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir);
  // llama2.c `run -t 0.0` with 256 steps: 256 forward passes from BOS at position 0, each sampling the next
  // token (so up to 256 new tokens); it stops early when the model emits BOS and prints a newline at the end.
  gaft::GenerationOptions o;
  o.max_new_tokens = 256;
  o.stop_tokens = {1};
  const auto out = gaft::generate(model, {{1}}, o);
  const std::string text = tok.decode(out[0]) + "\n";
  const std::string expected = gaft_test::read_bytes(gaft_test::kStories + "/expected_greedy_256.txt");
  EXPECT_EQ(text, expected);
}
