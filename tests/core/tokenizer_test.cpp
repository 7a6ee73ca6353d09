// SentencePiece tokenizer: ids identical to the python sentencepiece library, special tokens, errors.
#include "gaft/tokenizer.h"

#include <nlohmann/json.hpp>

#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::TempDir;

namespace {
const std::string kLlama2 = std::string(GAFT_SHARED_DIR) + "/tokenizers/llama2/tokenizer.model";
}

TEST(Tokenizer, Llama2IdsMatchPythonSentencepiece) {
  if (!std::filesystem::exists(kLlama2)) GTEST_SKIP() << "no shared folder";
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kLlama2);
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  const auto j = nlohmann::json::parse(gaft_test::read_bytes(gaft_test::kModelData + "/tokenizer_llama2_ids.json"));
  ASSERT_GE(j["cases"].size(), 5u);
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok.encode(text, /*add_bos=*/false), expected) << text;
    // No config beside the model: Llama's convention, BOS first.
    std::vector<int64_t> with_bos = {1};
    with_bos.insert(with_bos.end(), expected.begin(), expected.end());
    EXPECT_EQ(tok.encode(text), with_bos) << text;
    if (text.find("  ") == std::string::npos && text.rfind(" ", 0) != 0)  // SentencePiece normalises whitespace
      EXPECT_EQ(tok.decode(with_bos), text);
  }
}

TEST(Tokenizer, Stories260KSpecialTokens) {
  if (!std::filesystem::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder";
  const gaft::Tokenizer tok = gaft::Tokenizer::load(gaft_test::kStories + "/hf");
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.token_to_id("<s>"), 1);
  EXPECT_EQ(tok.token_to_id("no such piece"), -1);
  const auto ids = tok.encode("Once upon a time");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok.decode(ids), "Once upon a time");
  expect_data_error([&] { tok.decode({1, 512}); }, {"tokenizer.model", "512"});
}

TEST(Tokenizer, MissingOrBrokenFiles) {
  TempDir dir("tok_missing");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.model", "not found"});
  expect_data_error([&] { gaft::Tokenizer::load(dir.file("x.model")); }, {"x.model"});
  gaft_test::write_bytes(dir.file("tokenizer.model"), "not a protobuf at all");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.model", "SentencePiece"});
}

TEST(Tokenizer, SpecialTokenNotInVocabulary) {
  if (!std::filesystem::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder";
  TempDir dir("tok_special");
  std::filesystem::copy_file(gaft_test::kStories + "/hf/tokenizer.model", dir.file("tokenizer.model"));
  gaft_test::write_bytes(dir.file("tokenizer_config.json"), R"({"bos_token": "<|begin|>"})");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"bos_token", "<|begin|>"});
}
