// Sampling rules of generation: greedy, top-k, top-p, seeds, stop tokens.
#include "gaft/generate.h"

#include "gaft/error.h"

#include <cmath>
#include <map>

#include "test_util.h"

namespace {

at::Tensor logits_row(std::vector<float> v) { return at::tensor(v).view({1, -1}); }

}  // namespace

// Draws of row 0 of `l` over `n` steps of one stream.
std::map<int64_t, int> draws(const at::Tensor& l, const gaft::GenerationOptions& o, int n) {
  std::map<int64_t, int> seen;
  for (int step = 0; step < n; ++step) ++seen[gaft::sample_tokens(l, o, {7}, step)[0].item<int64_t>()];
  return seen;
}

TEST(Sampling, GreedyTopKAndTopP) {
  gaft::GenerationOptions o;
  const at::Tensor l = logits_row({0.1f, 2.0f, 1.9f, -1.0f});
  EXPECT_EQ(draws(l, o, 5), (std::map<int64_t, int>{{1, 5}}));  // temperature 0: argmax
  o.temperature = 1.0;
  o.top_k = 1;
  EXPECT_EQ(draws(l, o, 20), (std::map<int64_t, int>{{1, 20}}));
  o.top_k = 0;
  o.top_p = 0.01;  // only the likeliest token holds the first 1% of the mass
  EXPECT_EQ(draws(l, o, 20), (std::map<int64_t, int>{{1, 20}}));
  o.top_k = 2;
  o.top_p = 1.0;
  const auto two = draws(l, o, 200);
  EXPECT_EQ(two.size(), 2u);
  EXPECT_TRUE(two.count(1) && two.count(2));
}

// The inverse-CDF draw follows the distribution the rules define: softmax(l / T), then top-k, then top-p
// (a token stays while the tokens before it hold at most top_p). 40000 draws: each frequency within 0.01
// (about 4 standard deviations) of its probability.
TEST(Sampling, FrequenciesMatchTheDistribution) {
  const std::vector<float> v = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f};
  const at::Tensor l = logits_row(v);
  const auto check = [&](const gaft::GenerationOptions& o, std::vector<double> p) {
    double total = 0;
    for (double x : p) total += x;
    const int n = 40000;
    const auto seen = draws(l, o, n);
    for (size_t t = 0; t < p.size(); ++t) {
      const double f = seen.count(static_cast<int64_t>(t)) ? seen.at(static_cast<int64_t>(t)) / double(n) : 0.0;
      EXPECT_NEAR(f, p[t] / total, 0.01) << "token " << t << " temperature " << o.temperature << " top_k " << o.top_k
                                          << " top_p " << o.top_p;
    }
  };
  std::vector<double> e;
  for (float x : v) e.push_back(std::exp(x / 0.7));
  gaft::GenerationOptions o;
  o.temperature = 0.7;
  check(o, e);  // plain temperature sampling over the whole vocabulary
  o.top_k = 3;  // tokens 1, 2, 4
  check(o, {0, e[1], e[2], 0, e[4]});
  o.top_k = 0;
  // At T = 0.7 the tokens sorted are 1, 2, 4, 0, 3; 1 and 2 hold 0.904 of the mass, 1, 2 and 4 0.961: top_p
  // 0.95 keeps 1, 2 and 4.
  o.top_p = 0.95;
  double z = 0;
  for (double x : e) z += x;
  ASSERT_LT((e[1] + e[2]) / z, 0.95);
  ASSERT_GT((e[1] + e[2] + e[4]) / z, 0.95);
  check(o, {0, e[1], e[2], 0, e[4]});
  // A wide vocabulary: top-p on 5000 near-uniform logits needs the partial sort to widen past 64 and 256.
  std::vector<float> wide(5000, 0.0f);
  wide[0] = 3.0f;
  gaft::GenerationOptions w;
  w.temperature = 1.0;
  w.top_p = 0.5;
  const auto many = draws(logits_row(wide), w, 3000);
  EXPECT_GT(many.size(), 1000u);  // ~2480 tokens hold the first half of the mass
  for (const auto& [tok, count] : many) EXPECT_LT(tok, 5000);
}

// A row's draws depend on (seed, its stream, the step) only: not on the other rows of the batch.
TEST(Sampling, ADrawDependsOnItsOwnStream) {
  gaft::GenerationOptions o;
  o.temperature = 1.0;
  o.seed = 11;
  const at::Tensor l = at::randn({3, 50}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor all = gaft::sample_tokens(l, o, {4, 5, 6}, 3);
  for (int64_t r = 0; r < 3; ++r)
    EXPECT_EQ(gaft::sample_tokens(l.narrow(0, r, 1), o, {static_cast<uint64_t>(4 + r)}, 3)[0].item<int64_t>(),
              all[r].item<int64_t>());
  EXPECT_NE(gaft::counter_uniform(1, 2, 3), gaft::counter_uniform(1, 2, 4));
  EXPECT_NE(gaft::counter_uniform(1, 2, 3), gaft::counter_uniform(1, 3, 3));
  EXPECT_EQ(gaft::counter_uniform(1, 2, 3), gaft::counter_uniform(1, 2, 3));
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

// Samples of a prompt are the same alone and in any batch (other prompts, other lengths, other order), for
// one sample and for K samples sharing the prompt's prefill; greedy K samples are K copies of the greedy one.
TEST(Sampling, SamplesDoNotDependOnTheBatch) {
  gaft::Llama model = gaft::load_llama(gaft_test::kModelData + "/llama");
  gaft::GenerationOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 10;
  o.seed = 5;
  o.num_samples = 3;
  const std::vector<int64_t> p = {5, 6, 7}, q = {8}, r = {9, 10, 11, 12, 13};
  o.streams = {100};
  const auto alone = gaft::generate(model, {p}, o);
  ASSERT_EQ(alone.size(), 3u);
  EXPECT_FALSE(alone[0] == alone[1] && alone[1] == alone[2]);  // three different samples (10 tokens each)
  o.streams = {200, 100, 300};
  const auto batched = gaft::generate(model, {q, p, r}, o);
  ASSERT_EQ(batched.size(), 9u);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(batched[3 + k], alone[k]) << k;
  // Rows that stop early leave the batch: the others' samples are unchanged.
  gaft::GenerationOptions stop = o;
  stop.stop_tokens = {batched[0][0]};  // prompt q's first sample stops at once
  const auto stopped = gaft::generate(model, {q, p, r}, stop);
  EXPECT_TRUE(stopped[0].empty());
  for (int k = 0; k < 3; ++k) {
    const auto& want = alone[k];
    const auto cut = std::find(want.begin(), want.end(), batched[0][0]);
    EXPECT_EQ(stopped[3 + k], std::vector<int64_t>(want.begin(), cut)) << k;
  }
  gaft::GenerationOptions greedy;
  greedy.max_new_tokens = 8;
  const auto one = gaft::generate(model, {p, r}, greedy);
  greedy.num_samples = 3;
  const auto three = gaft::generate(model, {p, r}, greedy);
  ASSERT_EQ(three.size(), 6u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(three[k], one[0]);
    EXPECT_EQ(three[3 + k], one[1]);
  }
}
