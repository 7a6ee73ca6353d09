// Scorer heads: the LM judge reads P(safe) from two label tokens, the classifier reads P(aligned label)
// at the last token, and heads combine by min, mean and weighted product.
#include "gaft/scorer.h"

#include <gtest/gtest.h>

#include "core/test_util.h"
#include "gaft/chat.h"

namespace {

const std::string kModel = gaft_test::kStories + "/hf";

// A head with fixed answers, to test the combination.
class FixedHead : public gaft::ScorerHeadModel {
 public:
  FixedHead(std::vector<float> a, double weight) : a_(std::move(a)) { spec.weight = weight; }
  std::pair<at::Tensor, at::Tensor> score(const std::vector<std::string>&, const std::vector<std::string>&,
                                          int64_t) override {
    return {at::tensor(a_), at::full({static_cast<int64_t>(a_.size())}, 0.5f)};
  }

 private:
  std::vector<float> a_;
};

// A head that counts its calls and says which other heads give its scores.
class CountingHead : public gaft::ScorerHeadModel {
 public:
  CountingHead(float a, std::string key, int* calls) : a_(a), key_(std::move(key)), calls_(calls) {}
  std::pair<at::Tensor, at::Tensor> score(const std::vector<std::string>& p, const std::vector<std::string>&,
                                          int64_t) override {
    ++*calls_;
    const int64_t n = static_cast<int64_t>(p.size());
    return {at::full({n}, a_), at::full({n}, 0.25f)};
  }
  std::string shared_key() const override { return key_; }

 private:
  float a_;
  std::string key_;
  int* calls_;
};

}  // namespace

// One folder configured as several heads (e.g. one classifier under two categories) runs once per call; the
// later heads take its scores. Heads with other keys, or none, run themselves.
TEST(Scorer, AHeadSharedBySeveralNamesRunsOnce) {
  int first = 0, copy = 0, other = 0, unkeyed = 0;
  gaft::Scorer s;
  s.add(std::make_unique<CountingHead>(0.9f, "folder-a", &first));
  s.add(std::make_unique<CountingHead>(0.1f, "folder-a", &copy));  // same key: never runs
  s.add(std::make_unique<CountingHead>(0.5f, "folder-b", &other));
  s.add(std::make_unique<CountingHead>(0.7f, "", &unkeyed));
  s.combine = gaft::ScoreCombine::kMean;
  const gaft::ScoreResult r = s.score({"a", "b", "c"}, {"x", "y", "z"});
  EXPECT_EQ(first, 1);
  EXPECT_EQ(copy, 0);
  EXPECT_EQ(other, 1);
  EXPECT_EQ(unkeyed, 1);
  EXPECT_TRUE(at::equal(r.per_head[1], r.per_head[0]));
  EXPECT_TRUE(at::allclose(r.combined, at::full({3}, (0.9f + 0.9f + 0.5f + 0.7f) / 4)));
}

TEST(Scorer, HeadsCombineByMinMeanAndWeightedProduct) {
  gaft::Scorer s;
  s.add(std::make_unique<FixedHead>(std::vector<float>{0.9f, 0.2f}, 1.0));
  s.add(std::make_unique<FixedHead>(std::vector<float>{0.5f, 0.8f}, 2.0));
  const std::vector<std::string> x = {"a", "b"};
  s.combine = gaft::ScoreCombine::kMin;
  EXPECT_TRUE(at::allclose(s.score(x, x).combined, at::tensor({0.5f, 0.2f})));
  s.combine = gaft::ScoreCombine::kMean;
  EXPECT_TRUE(at::allclose(s.score(x, x).combined, at::tensor({0.7f, 0.5f})));
  s.combine = gaft::ScoreCombine::kProduct;
  const gaft::ScoreResult r = s.score(x, x);
  EXPECT_TRUE(at::allclose(r.combined, at::tensor({0.9f * 0.25f, 0.2f * 0.64f})));
  EXPECT_EQ(r.per_head.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_TRUE(at::allclose(r.uncertainty, at::full({2}, 0.5f)));
}

TEST(Scorer, LmJudgeReadsTheTwoLabelTokens) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared folder";
  gaft::ScorerSection section;
  gaft::ScorerHead h;
  h.name = "judge";
  h.kind = gaft::ScorerKind::kLmJudge;
  h.path = kModel;
  h.prompt_template = "Q: {prompt} A: {response} Is it good? Answer:";
  h.safe_token = "happy";  // single tokens of the 512-piece vocabulary
  h.unsafe_token = "was";
  section.heads.push_back(h);
  gaft::Scorer s = gaft::Scorer::load(section, at::kCPU, at::kFloat);
  // The third prompt contains "{response}": it is text, not a placeholder to fill again.
  const gaft::ScoreResult r =
      s.score({"Once upon a time", "The dog", "Say {response}"}, {"there was a cat.", "ran away", "no"});
  // By hand: the next-token logits after the filled template, softmax over the two label tokens.
  gaft::Llama lm = gaft::load_llama(kModel);
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kModel);
  const auto one_token = [&](const std::string& w) {
    auto ids = tok.encode(w, false, false);
    if (ids.size() != 1) ids = tok.encode(" " + w, false, false);
    EXPECT_EQ(ids.size(), 1u) << w;
    return ids[0];
  };
  const int64_t yes = one_token("happy"), no = one_token("was");
  torch::NoGradGuard ng;
  const char* texts[] = {"Q: Once upon a time A: there was a cat. Is it good? Answer:",
                         "Q: The dog A: ran away Is it good? Answer:", "Q: Say {response} A: no Is it good? Answer:"};
  const auto by_hand = [&](const std::string& text) {
    const at::Tensor ids = at::tensor(tok.encode(text), at::kLong).view({1, -1});
    const at::Tensor logits = lm->logits(lm->forward(ids))[0][-1];  // [V]
    return at::stack({logits[yes], logits[no]}).softmax(0)[0].item<double>();
  };
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.combined[i].item<double>(), by_hand(texts[i]), 1e-5);
  // Responses to one prompt (the K rollouts of a prompt) share the forward of the template's prompt part, in
  // batches of groups and alone beside them: the same scores as each text by hand.
  const std::vector<std::string> prompts = {"The dog", "Once upon a time", "The dog", "Lily", "The dog", "Once upon a time"};
  const std::vector<std::string> answers = {"ran", "there was a big cat that ran", "sat down.", "smiled", "was happy", "a boy"};
  for (int64_t batch : {16, 2}) {
    s.batch_size = batch;
    const gaft::ScoreResult shared = s.score(prompts, answers);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_NEAR(shared.combined[static_cast<int64_t>(i)].item<double>(),
                  by_hand("Q: " + prompts[i] + " A: " + answers[i] + " Is it good? Answer:"), 1e-5)
          << i << " batch " << batch;
  }
}

TEST(Scorer, ClassifierReadsTheAlignedLabel) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared folder";
  gaft::ModelConfig c = gaft::load_model_config(kModel);
  c.head = gaft::ModelHead::kSequenceClassification;
  c.num_labels = 3;
  torch::manual_seed(11);
  gaft::Llama cls(c);
  gaft::ScorerHead spec;
  spec.name = "safety";
  spec.aligned_label = 2;
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kModel);
  auto head = gaft::make_classifier_head(spec, cls, gaft::Tokenizer::load(kModel), gaft::ChatTemplate::kPlain);
  // Batched with padding (batch size 2 of 3 pairs) = one at a time by hand.
  const std::vector<std::string> p = {"Once upon a time", "Hi", "The little dog went"}, y = {"a cat.", "hello there friend", "home"};
  const auto [a, u] = head->score(p, y, 2);
  torch::NoGradGuard ng;
  for (int i = 0; i < 3; ++i) {
    const auto ids_v = gaft::classifier_input_ids(tok, gaft::ChatTemplate::kPlain, p[i], y[i], 1024);
    const at::Tensor ids = at::tensor(ids_v, at::kLong).view({1, -1});
    const at::Tensor probs = cls->classify(cls->forward(ids)).softmax(-1)[0];  // [3]
    EXPECT_NEAR(a[i].item<double>(), probs[2].item<double>(), 1e-5);
    const double h = -(probs * probs.log()).sum().item<double>() / std::log(3.0);
    EXPECT_NEAR(u[i].item<double>(), h, 1e-5);
  }
  // Several responses to one prompt share its forward: the same probabilities as one at a time.
  const std::vector<std::string> p2 = {"Hi", "Once upon a time", "Hi", "Hi", "Once upon a time"};
  const std::vector<std::string> y2 = {"hello", "a cat sat on the mat and slept.", "go away", "hello there friend", "no"};
  const auto [a2, u2] = head->score(p2, y2, 4);
  for (size_t i = 0; i < p2.size(); ++i) {
    const auto ids_v = gaft::classifier_input_ids(tok, gaft::ChatTemplate::kPlain, p2[i], y2[i], 1024);
    const at::Tensor probs = cls->classify(cls->forward(at::tensor(ids_v, at::kLong).view({1, -1}))).softmax(-1)[0];
    EXPECT_NEAR(a2[static_cast<int64_t>(i)].item<double>(), probs[2].item<double>(), 1e-5) << i;
  }
  spec.aligned_label = 3;
  gaft_test::expect_data_error([&] { gaft::make_classifier_head(spec, cls, gaft::Tokenizer::load(kModel), gaft::ChatTemplate::kPlain); },
                               {"aligned_label 3"});
}

// The judge recipes of configs/judges/ (Llama Guard 3, ShieldGemma, Granite Guardian) end to end: the recipe file
// as users load it, its head pointed at a tiny random model of the judge's architecture (tests/data/judges, made by
// tools/make_judge_fixtures.py with transformers), scores equal to transformers' P(safe word) over the two label
// words within 1e-4, and the rendered template tokenized exactly as the reference did.
TEST(Scorer, JudgeRecipesMatchTransformers) {
  for (const std::string judge : {"llama_guard3", "shieldgemma", "granite_guardian"}) {
    SCOPED_TRACE(judge);
    const std::string folder = std::string(GAFT_TEST_DATA) + "/judges/" + judge;
    const nlohmann::json expected = nlohmann::json::parse(gaft_test::read_bytes(folder + "/expected.json"));
    const gaft::EvalConfig config =
        gaft::load_eval_config(std::string(GAFT_SOURCE_DIR) + "/configs/judges/" + judge + ".yaml",
                               {"scorer.heads.0.path=" + folder}, {}, {"responses.jsonl"});
    ASSERT_EQ(config.scorer.heads.size(), 1u);
    EXPECT_EQ(config.scorer.heads[0].prompt_template, expected["template"].get<std::string>());
    gaft::Scorer s = gaft::Scorer::load(config.scorer, at::kCPU, at::kFloat);
    const gaft::Tokenizer tok = gaft::Tokenizer::load(folder);
    std::vector<std::string> prompts, responses;
    for (const auto& c : expected["cases"]) {
      prompts.push_back(c["prompt"]);
      responses.push_back(c["response"]);
      std::string text = config.scorer.heads[0].prompt_template;
      text.replace(text.find("{prompt}"), 8, prompts.back());
      text.replace(text.find("{response}"), 10, responses.back());
      EXPECT_EQ(tok.encode(text), c["ids"].get<std::vector<int64_t>>()) << prompts.back();
    }
    const gaft::ScoreResult r = s.score(prompts, responses);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_NEAR(r.combined[static_cast<int64_t>(i)].item<double>(), expected["cases"][i]["p_safe"].get<double>(), 1e-4)
          << prompts[i];
  }
}
