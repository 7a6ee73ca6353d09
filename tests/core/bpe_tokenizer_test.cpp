// Byte-level BPE tokenizer: ids and decoded texts identical to Hugging Face's tokenizers/transformers
// (fixtures written by tools/make_tokenizer_fixtures.py), file discovery, special tokens, bad inputs.
#include "gaft/bpe_tokenizer.h"

#include <nlohmann/json.hpp>
#include <thread>

#include "gaft/tokenizer.h"
#include "gaft/utf8.h"
#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTokData = std::string(GAFT_TEST_DATA) + "/tokenizer";
const std::string kGpt2 = std::string(GAFT_SHARED_DIR) + "/tokenizers/gpt2";
const std::string kLlama2Model = std::string(GAFT_SHARED_DIR) + "/tokenizers/llama2/tokenizer.model";

nlohmann::json fixture(const std::string& name) {
  return nlohmann::json::parse(gaft_test::read_bytes(kTokData + "/" + name + "_ids.json"));
}

// Every fixture case: ids without and with the post-processor's tokens, decoded texts.
void expect_matches_fixture(const gaft::Tokenizer& tok, const nlohmann::json& cases) {
  ASSERT_GE(cases.size(), 50u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok.encode(text, /*add_bos=*/false), ids) << text;
    EXPECT_EQ(tok.encode(text), c["ids_with_specials"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << text;
  }
}

// A copy of a fixture folder in `dir`, with tokenizer.json edited by `edit`.
void copy_with_edit(const std::string& from, const TempDir& dir, const std::function<void(nlohmann::json&)>& edit) {
  for (const auto& f : fs::directory_iterator(from)) fs::copy_file(f.path(), dir.file(f.path().filename().string()));
  auto j = nlohmann::json::parse(gaft_test::read_bytes(dir.file("tokenizer.json")));
  edit(j);
  gaft_test::write_bytes(dir.file("tokenizer.json"), j.dump());
}

std::vector<int64_t> concat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST(BpeTokenizer, Gpt2ClassicFilesMatchHuggingFace) {
  if (!fs::exists(kGpt2)) GTEST_SKIP() << "no shared folder";
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kGpt2);
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);  // <|endoftext|>, GPT2Tokenizer's default
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_FALSE(tok.adds_dummy_prefix());
  EXPECT_EQ(tok.token_to_id("Ġworld"), 995);
  EXPECT_EQ(tok.id_to_piece(995), "Ġworld");
  expect_matches_fixture(tok, fixture("gpt2")["cases"]);
  // The same files named directly.
  const gaft::Tokenizer by_file = gaft::Tokenizer::load(kGpt2 + "/vocab.json");
  EXPECT_EQ(by_file.encode("Hello world", false), (std::vector<int64_t>{15496, 995}));
}

TEST(BpeTokenizer, Llama3StyleMatchesHuggingFace) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/llama3");
  const auto j = fixture("llama3");
  EXPECT_EQ(tok.vocab_size(), j["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.path(), kTokData + "/llama3/tokenizer.json");
  EXPECT_EQ(tok.bos_id(), tok.token_to_id("<|begin_of_text|>"));  // post-processor template, tokenizer_config
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|eot_id|>"));        // tokenizer_config wins over generation_config
  EXPECT_TRUE(tok.add_bos());
  expect_matches_fixture(tok, j["cases"]);
}

TEST(BpeTokenizer, Qwen2StyleMatchesHuggingFace) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2/tokenizer.json");
  const auto j = fixture("qwen2");
  EXPECT_EQ(tok.vocab_size(), j["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|im_end|>"));
  EXPECT_EQ(tok.pad_id(), tok.token_to_id("<|endoftext|>"));
  expect_matches_fixture(tok, j["cases"]);
}

TEST(BpeTokenizer, DecodeKeepingSpecialTokensMatchesHuggingFace) {
  for (const std::string name : {"llama3", "qwen2"}) {
    const std::string file = kTokData + "/" + name + "/tokenizer.json";
    const auto bpe = gaft::BpeTokenizer::from_tokenizer_json(nlohmann::json::parse(gaft_test::read_bytes(file)), file);
    const nlohmann::json cases = fixture(name)["cases"];  // (a range-for over fixture(name)["cases"] would read
                                                          // a destroyed temporary: AddressSanitizer found it)
    for (const auto& c : cases) {
      const auto ids = c["ids"].get<std::vector<int64_t>>();
      EXPECT_EQ(bpe.encode(c["text"].get<std::string>()), ids) << name;
      EXPECT_EQ(bpe.decode(ids, /*skip_special=*/false), c["decoded_all"].get<std::string>()) << name;
    }
  }
}

TEST(BpeTokenizer, RoundTripsAndPartialCharacters) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2");
  const std::string text = "Grüße, 世界! 😀 x\n\n\ty";
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  // One byte of a 4-byte emoji alone decodes to U+FFFD, never to invalid UTF-8.
  const auto ids = tok.encode("😀");
  ASSERT_GE(ids.size(), 2u);
  const std::string part = tok.decode({ids[0]});
  EXPECT_EQ(gaft::utf8::first_invalid(part), std::string::npos);
  EXPECT_NE(part.find("\xEF\xBF\xBD"), std::string::npos);
  expect_data_error([&] { tok.encode(std::string("bad \xff byte")); }, {"tokenizer.json", "UTF-8", "byte 4"});
  expect_data_error([&] { tok.decode({0, tok.vocab_size()}); }, {"tokenizer.json", std::to_string(tok.vocab_size())});
}

TEST(BpeTokenizer, LongRunsAreFastAndExact) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/llama3");
  // Quadratic merging or a small JIT stack would show here (whitespace and digit runs are single pieces).
  const std::string spaces(200000, ' '), digits = std::string(30000, '7') + "\n" + std::string(100000, 'a');
  for (const std::string& text : {spaces, digits}) {
    const auto ids = tok.encode(text, false);
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(BpeTokenizer, ConcurrentEncodesAgree) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2");
  const auto cases = fixture("qwen2")["cases"];
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (const auto& c : cases)
          if (tok.encode(c["text"].get<std::string>(), false) != c["ids"].get<std::vector<int64_t>>()) ++mismatches[t];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(BpeTokenizer, ByteLevelPrefixSpaceGoesBeforeEveryPiece) {
  TempDir dir("bpe_prefix");
  copy_with_edit(kTokData + "/llama3", dir, [](nlohmann::json& j) {
    j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  });
  const gaft::Tokenizer plain = gaft::Tokenizer::load(kTokData + "/llama3");
  const gaft::Tokenizer prefixed = gaft::Tokenizer::load(dir.str());
  EXPECT_EQ(prefixed.encode("hello", false), plain.encode(" hello", false));
  EXPECT_EQ(prefixed.encode(" hello", false), plain.encode(" hello", false));
  // Hugging Face adds the space to every piece the added tokens and the Split leave: " a", " b", " c".
  const int64_t eot = plain.token_to_id("<|eot_id|>");
  EXPECT_EQ(prefixed.encode("a<|eot_id|>b c", false),
            concat({plain.encode(" a", false), {eot}, plain.encode(" b", false), plain.encode(" c", false)}));
}

TEST(BpeTokenizer, GenerationConfigGivesEosWithoutTokenizerConfig) {
  TempDir dir("bpe_genconfig");
  copy_with_edit(kTokData + "/llama3", dir, [](nlohmann::json&) {});
  fs::remove(dir.file("tokenizer_config.json"));
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir.str());
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|end_of_text|>"));  // the first of [end_of_text, eot_id]
  EXPECT_EQ(tok.bos_id(), tok.token_to_id("<|begin_of_text|>"));
  gaft_test::write_bytes(dir.file("generation_config.json"), R"({"eos_token_id": 100000})");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"generation_config.json", "eos_token_id", "100000"});
}

TEST(BpeTokenizer, ConfigSpecialTokenBecomesSpecial) {
  TempDir dir("bpe_special");
  copy_with_edit(kTokData + "/qwen2", dir, [](nlohmann::json&) {});
  // "hello" is an ordinary vocabulary token; as the pad token it is cut out of text whole and skipped by decode().
  const gaft::Tokenizer before = gaft::Tokenizer::load(dir.str());
  const int64_t hello = before.token_to_id("hello");
  ASSERT_GE(hello, 0);
  // BPE alone merges "thellow" as "the" "llo" "w" (tokenizers: [83, 257, 277, 280]).
  EXPECT_NE(before.encode("thellow", false), concat({before.encode("t", false), {hello}, before.encode("w", false)}));
  gaft_test::write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": "<|im_end|>", "pad_token": "hello"})");
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir.str());
  EXPECT_EQ(tok.pad_id(), hello);
  EXPECT_EQ(tok.encode("thellow", false), concat({tok.encode("t", false), {hello}, tok.encode("w", false)}));
  EXPECT_EQ(tok.decode(tok.encode("thellow", false)), "tw");
  gaft_test::write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": "<|nope|>"})");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"eos_token", "<|nope|>"});
}

TEST(BpeTokenizer, FolderPrefersByteLevelTokenizerJson) {
  if (!fs::exists(kLlama2Model)) GTEST_SKIP() << "no shared folder";
  TempDir dir("bpe_prefer");
  copy_with_edit(kTokData + "/qwen2", dir, [](nlohmann::json&) {});
  fs::copy_file(kLlama2Model, dir.file("tokenizer.model"));
  EXPECT_EQ(gaft::Tokenizer::load(dir.str()).path(), dir.file("tokenizer.json"));
  fs::remove(dir.file("tokenizer_config.json"));  // Qwen2's special tokens are not pieces of Llama 2's model
  // Llama 2's converted tokenizer.json is SentencePiece-style: tokenizer.model then.
  gaft_test::write_bytes(dir.file("tokenizer.json"),
                         R"({"model": {"type": "BPE", "vocab": {}, "merges": [], "byte_fallback": true},
                             "pre_tokenizer": {"type": "Metaspace"}})");
  const gaft::Tokenizer sp = gaft::Tokenizer::load(dir.str());
  EXPECT_EQ(sp.path(), dir.file("tokenizer.model"));
  EXPECT_EQ(sp.vocab_size(), 32000);
  EXPECT_TRUE(sp.adds_dummy_prefix());
  // Without tokenizer.model, that tokenizer.json is an error saying what was expected.
  fs::remove(dir.file("tokenizer.model"));
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "Metaspace", "ByteLevel"});
}

TEST(BpeTokenizer, MissingAndMalformedFiles) {
  TempDir dir("bpe_bad");
  expect_data_error([&] { gaft::Tokenizer::load(dir.file("tokenizer.json")); }, {"tokenizer.json", "not found"});
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "tokenizer.model", "merges.txt"});

  gaft_test::write_bytes(dir.file("tokenizer.json"), "{\"model\": {\"type\": \"BPE\",");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "not valid JSON"});

  gaft_test::write_bytes(dir.file("tokenizer.json"),
                         R"({"model": {"type": "WordPiece", "vocab": {}}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "model.type", "WordPiece", "BPE"});

  const std::string good = gaft_test::read_bytes(kTokData + "/qwen2/tokenizer.json");
  const auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(good);
    edit(j);
    gaft_test::write_bytes(dir.file("tokenizer.json"), j.dump());
  };
  edited([](nlohmann::json& j) { j["model"]["merges"].push_back("nosuch token"); });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "model.merges", "nosuch"});
  edited([](nlohmann::json& j) { j["model"].erase("vocab"); });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "vocab"});
  edited([](nlohmann::json& j) { j["normalizer"] = {{"type", "Lowercase"}}; });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "Lowercase", "NFC"});
  edited([](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "Removed", "Isolated"});
  edited([](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "not a valid regular expression", "(unclosed"});
  edited([](nlohmann::json& j) { j["decoder"] = {{"type", "WordPiece"}}; });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "decoder", "ByteLevel"});
  edited([](nlohmann::json& j) { j["added_tokens"][0]["id"] = -5; });
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "<|endoftext|>", "id -5"});
  edited([](nlohmann::json& j) { j["added_tokens"][0]["content"] = "he"; });  // a vocabulary token, other id
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"tokenizer.json", "\"he\"", "vocabulary"});

  // vocab.json without merges.txt; a merges.txt line that is not a pair.
  fs::remove(dir.file("tokenizer.json"));
  gaft_test::write_bytes(dir.file("vocab.json"), R"({"a": 0, "b": 1, "ab": 2})");
  expect_data_error([&] { gaft::Tokenizer::load(dir.file("vocab.json")); }, {"merges.txt", "does not exist"});
  gaft_test::write_bytes(dir.file("merges.txt"), "#version: 0.2\na b\nab\n");
  expect_data_error([&] { gaft::Tokenizer::load(dir.str()); }, {"merges.txt", "line 3", "left right"});
  gaft_test::write_bytes(dir.file("merges.txt"), "#version: 0.2\na b\n");
  EXPECT_EQ(gaft::Tokenizer::load(dir.str()).encode("abba", false), (std::vector<int64_t>{2, 1, 0}));
}

TEST(Utf8, ValidationRepairAndStrip) {
  using gaft::utf8::first_invalid;
  EXPECT_EQ(first_invalid("plain é 日本 😀"), std::string::npos);
  EXPECT_EQ(first_invalid("ab\xff"), 2u);
  EXPECT_EQ(first_invalid("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(first_invalid("x\xed\xa0\x80"), 1u);     // surrogate U+D800
  EXPECT_EQ(first_invalid("\xf4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(first_invalid("\xe2\x82"), 0u);          // truncated
  EXPECT_EQ(gaft::utf8::repair("a\xe2\x82"), "a\uFFFD");
  EXPECT_EQ(gaft::utf8::repair("\xff\xfe"), "\uFFFD\uFFFD");
  EXPECT_EQ(gaft::utf8::repair("\xe2\x82(x"), "\uFFFD(x");
  EXPECT_EQ(gaft::utf8::repair("ok 😀"), "ok 😀");
  EXPECT_EQ(gaft::utf8::strip(" \t\n hi there \u3000\u00a0\x1c"), "hi there");
  EXPECT_EQ(gaft::utf8::strip("  "), "");
  EXPECT_EQ(gaft::utf8::strip("\xff x \xff"), "\xff x \xff");
}
