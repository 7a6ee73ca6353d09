// Sampling rules of generation: greedy, top-k, top-p, seeds, stop tokens.
#include "gaft/generate.h"

#include "gaft/error.h"

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

// Per-row budgets: each row stops at its own budget, and the tokens it gets are those it gets alone (greedy);
// a row's room in the context counts its own prompt, not the batch's longest.
TEST(Sampling, PerRowBudgets) {
  gaft::Llama model = gaft::load_llama(gaft_test::kModelData + "/llama");
  gaft::GenerationOptions o;
  o.max_new_tokens = 6;
  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7, 9, 10}, {8}, {11, 12}};
  const auto full = gaft::generate(model, prompts, o);
  o.max_new_tokens_per_row = {2, 6, 0};
  const auto cut = gaft::generate(model, prompts, o);
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[0], std::vector<int64_t>(full[0].begin(), full[0].begin() + std::min<size_t>(2, full[0].size())));
  EXPECT_EQ(cut[1], full[1]);
  EXPECT_TRUE(cut[2].empty());
  // Near the end of the context: the long prompt gets what is left, the short one its whole budget.
  const int64_t ctx = model->config.max_position_embeddings;
  std::vector<int64_t> longp(static_cast<size_t>(ctx - 2), 5);
  o.max_new_tokens_per_row.clear();
  const auto near_end = gaft::generate(model, {longp, {8}}, o);
  EXPECT_LE(near_end[0].size(), 2u);
  EXPECT_EQ(near_end[1], full[1]);
  o.max_new_tokens_per_row = {1};
  EXPECT_THROW(gaft::generate(model, prompts, o), gaft::UsageError);
}
