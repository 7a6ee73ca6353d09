// Training data: record formats, line-numbered errors, skipping, truncation and dropping, deterministic
// batches.
#include "gaft/dataset.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/test_util.h"

using gaft_test::expect_data_error;
using gaft_test::TempDir;

namespace {

struct Data : ::testing::Test {
  void SetUp() override {
    if (!std::filesystem::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder";
    tok.emplace(gaft::Tokenizer::load(gaft_test::kStories + "/hf"));
    renderer = gaft::Renderer{&*tok, gaft::ChatTemplate::kNone};
  }
  gaft::Dataset load(const std::string& text, gaft::DatasetOptions o = {}) {
    gaft_test::write_bytes(path, text);
    return gaft::Dataset::load(path, renderer, o);
  }
  TempDir dir{"dataset"};
  std::string path = dir.file("train.jsonl");
  std::optional<gaft::Tokenizer> tok;
  gaft::Renderer renderer;
};

}  // namespace

TEST_F(Data, PromptResponseAndChatRecords) {
  const gaft::Dataset d = load(
      "{\"prompt\": \"Once upon a time\", \"response\": \"there was a cat.\", \"category\": \"story\"}\n"
      "\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n");
  ASSERT_EQ(d.size(), 2);
  const gaft::Example& a = d.examples()[0];
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.category, "story");
  EXPECT_EQ(a.prompt_text, "Once upon a time");
  EXPECT_EQ(a.response_text, "there was a cat.");
  // none template: BOS + prompt, then response + EOS; the response is trained, the prompt is not.
  std::vector<int64_t> prompt = tok->encode("Once upon a time", true, false);
  EXPECT_EQ(a.prompt_ids, prompt);
  EXPECT_EQ(a.response_ids.back(), tok->eos_id());
  EXPECT_EQ(std::count(a.prompt_mask.begin(), a.prompt_mask.end(), 1), 0);
  EXPECT_EQ(d.examples()[1].line, 3);
  EXPECT_EQ(d.examples()[1].response_text, "Hello.");
}

TEST_F(Data, BadLineNamesFileAndLine) {
  expect_data_error([&] { load("{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n"); },
                    {"train.jsonl:2", "missing \"response\""});
  expect_data_error([&] { load("{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n"); }, {"train.jsonl:2", "not valid JSON"});
  expect_data_error([&] { load("{\"prompt\": 3, \"response\": \"b\"}\n"); }, {"train.jsonl:1", "\"prompt\": expected a string"});
  expect_data_error([&] { load("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n"); },
                    {"train.jsonl:1", "last message must be the assistant"});
  expect_data_error([&] { load("{\"messages\": [{\"role\": \"bot\", \"content\": \"a\"}]}\n"); },
                    {"train.jsonl:1", "role"});
}

TEST_F(Data, SkipBadLinesCountsThem) {
  gaft::DatasetOptions o;
  o.skip_bad_lines = true;
  const gaft::Dataset d = load("{\"prompt\": \"a\", \"response\": \"b\"}\n[1]\n{\"x\": 1}\n", o);
  EXPECT_EQ(d.size(), 1);
  EXPECT_EQ(d.stats().skipped, 2);
  EXPECT_EQ(d.stats().lines, 3);
}

TEST_F(Data, EmptyFileIsAnError) {
  expect_data_error([&] { load("\n\n"); }, {"train.jsonl", "no usable example"});
  expect_data_error([&] { gaft::Dataset::load(dir.file("absent.jsonl"), renderer, {}); }, {"absent.jsonl", "cannot open"});
}

TEST_F(Data, TooLongTruncatesOrDrops) {
  const std::string long_prompt = "Once upon a time there was a little girl who liked to play in the big green park";
  const std::string line = "{\"prompt\": \"" + long_prompt + "\", \"response\": \"The end of a long story.\"}\n";
  gaft::DatasetOptions o;
  o.max_prompt_tokens = 5;
  o.max_response_tokens = 3;
  const gaft::Dataset d = load(line, o);
  ASSERT_EQ(d.size(), 1);
  const gaft::Example& e = d.examples()[0];
  EXPECT_EQ(static_cast<int64_t>(e.prompt_ids.size()), 5);
  EXPECT_EQ(e.prompt_ids.front(), tok->bos_id());  // BOS kept, the prompt's end kept
  const std::vector<int64_t> full = tok->encode(long_prompt, true, false);
  EXPECT_EQ(e.prompt_ids.back(), full.back());
  EXPECT_EQ(static_cast<int64_t>(e.response_ids.size()), 3);
  EXPECT_EQ(d.stats().truncated, 1);
  o.too_long = gaft::TooLong::kDrop;
  expect_data_error([&] { load(line, o); }, {"no usable example", "1 too long"});
}

TEST_F(Data, ClassifierRecordsNeedLabels) {
  gaft::DatasetOptions o;
  o.classification = true;
  o.num_labels = 2;
  const gaft::Dataset d = load("{\"text\": \"a cat\", \"label\": 1}\n{\"prompt\": \"a\", \"response\": \"b\", \"label\": 0}\n", o);
  EXPECT_EQ(d.examples()[0].label, 1);
  EXPECT_EQ(d.examples()[1].label, 0);
  expect_data_error([&] { load("{\"text\": \"a\", \"label\": 2}\n", o); }, {"train.jsonl:1", "\"label\""});
  expect_data_error([&] { load("{\"text\": \"a\"}\n", o); }, {"train.jsonl:1", "missing \"label\""});
}

TEST_F(Data, BatchesAreDeterministicPermutations) {
  std::string text;
  for (int i = 0; i < 37; ++i) {
    std::string words;
    for (int w = 0; w <= i % 7; ++w) words += " cat";
    text += "{\"prompt\": \"p" + std::to_string(i) + "\", \"response\": \"" + words + "\"}\n";
  }
  const gaft::Dataset d = load(text);
  for (bool bucket : {false, true}) {
    const auto a = d.epoch_batches(0, 4, 7, true, bucket), b = d.epoch_batches(0, 4, 7, true, bucket);
    const auto c = d.epoch_batches(1, 4, 7, true, bucket);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    ASSERT_EQ(a.size(), 10u);
    std::set<int64_t> seen;
    for (const auto& batch : a) seen.insert(batch.begin(), batch.end());
    EXPECT_EQ(seen.size(), 37u);
  }
  const auto plain = d.epoch_batches(0, 4, 7, false, false);
  EXPECT_EQ(plain[0], (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(Data, MixedExamplesTakeTheirShareOfEveryEpoch) {
  // 30 own examples, a mix file of 8, share 0.25: round(0.25 / 0.75 * 30) = 10 mix examples per epoch, drawn
  // without repeats while the file lasts (8, then 2 of a second permutation), different per epoch, the same for
  // the same epoch.
  std::string own, mix;
  for (int i = 0; i < 30; ++i) own += "{\"prompt\": \"own " + std::to_string(i) + "\", \"response\": \" cat\"}\n";
  for (int i = 0; i < 8; ++i) mix += "{\"prompt\": \"mix " + std::to_string(i) + "\", \"response\": \" no\"}\n";
  gaft::Dataset d = load(own);
  gaft_test::write_bytes(dir.file("mix.jsonl"), mix);
  d.add_mix(gaft::Dataset::load(dir.file("mix.jsonl"), renderer, {}), 0.25);
  EXPECT_EQ(d.size(), 38);
  EXPECT_EQ(d.mix_per_epoch(), 10);
  EXPECT_EQ(d.epoch_size(), 40);
  std::vector<std::vector<int64_t>> draws;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto batches = d.epoch_batches(epoch, 6, 5, true, false);
    std::map<int64_t, int> count;
    int64_t served = 0;
    for (const auto& b : batches)
      for (int64_t i : b) {
        ++count[i];
        ++served;
      }
    EXPECT_EQ(served, 40);
    for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(count[i], 1) << "own example " << i;
    std::vector<int64_t> mixed;
    int64_t mix_served = 0;
    for (const auto& [i, n] : count)
      if (i >= 30) {
        mixed.push_back(i);
        mix_served += n;
        EXPECT_LE(n, 2);
        EXPECT_EQ(d.examples()[i].prompt_text.rfind("mix ", 0), 0u);
      }
    EXPECT_EQ(mix_served, 10);
    EXPECT_EQ(mixed.size(), 8u);  // every mix example once before any twice
    EXPECT_EQ(batches, d.epoch_batches(epoch, 6, 5, true, false));
    std::vector<int64_t> flat;
    for (const auto& b : batches) flat.insert(flat.end(), b.begin(), b.end());
    draws.push_back(flat);
  }
  EXPECT_NE(draws[0], draws[1]);
  gaft::Dataset twice = load(own);
  twice.add_mix(gaft::Dataset::load(dir.file("mix.jsonl"), renderer, {}), 0.0);
  EXPECT_EQ(twice.epoch_size(), 30);
}

TEST_F(Data, FilteringReplacesOrDropsReferences) {
  gaft::Dataset d = load("{\"prompt\": \"a\", \"response\": \" cat\"}\n{\"prompt\": \"b\", \"response\": \" dog\"}\n"
                         "{\"prompt\": \"c\", \"response\": \" sun\"}\n");
  d.replace_response(1, " no", renderer);
  EXPECT_EQ(d.examples()[1].response_text, " no");
  EXPECT_EQ(d.examples()[1].response_ids, renderer.response_ids(d.examples()[1], " no"));
  d.keep_only({true, true, false});
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.epoch_size(), 2);
  EXPECT_EQ(d.examples()[0].prompt_text, "a");
  EXPECT_EQ(d.examples()[1].response_text, " no");
}
