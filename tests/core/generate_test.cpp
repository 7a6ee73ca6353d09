// Sampling rules of generation: greedy, top-k, top-p, seeds, stop tokens.
#include "gaft/generate.h"

#include "test_util.h"

namespace {

at::Tensor logits_row(std::vector<float> v) { return at::tensor(v).view({1, -1}); }

}  // namespace

TEST(Sampling, GreedyTopKAndTopP) {
  at::Generator g = at::detail::createCPUGenerator(3);
  gaft::GenerationOptions o;
  const at::Tensor l = logits_row({0.1f, 2.0f, 1.9f, -1.0f});
  EXPECT_EQ(gaft::sample_next(l, o, g).item<int64_t>(), 1);  // temperature 0: argmax
  o.temperature = 1.0;
  o.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(gaft::sample_next(l, o, g).item<int64_t>(), 1);
  o.top_k = 0;
  o.top_p = 0.01;  // only the likeliest token holds the first 1% of the mass
  for (int i = 0; i < 20; ++i) EXPECT_EQ(gaft::sample_next(l, o, g).item<int64_t>(), 1);
  o.top_k = 2;
  o.top_p = 1.0;
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(gaft::sample_next(l, o, g).item<int64_t>());
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2}));
}

TEST(Sampling, SeededAndStopping) {
  gaft::Llama model = gaft::load_llama(gaft_test::kModelData + "/llama");
  gaft::GenerationOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 12;
  o.seed = 42;
  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {8}};
  const auto a = gaft::generate(model, prompts, o);
  EXPECT_EQ(a, gaft::generate(model, prompts, o));
  EXPECT_EQ(a[0].size(), 12u);
  o.seed = 43;
  EXPECT_NE(a, gaft::generate(model, prompts, o));
  // Stop at the first token greedy would produce: nothing is returned for that row.
  gaft::GenerationOptions greedy;
  greedy.max_new_tokens = 4;
  const auto g = gaft::generate(model, prompts, greedy);
  greedy.stop_tokens = {g[1][0]};
  const auto stopped = gaft::generate(model, prompts, greedy);
  EXPECT_TRUE(stopped[1].empty());
  EXPECT_EQ(stopped[0].size() <= 4, true);
}
