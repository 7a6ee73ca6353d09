// Chat templates: text and ids identical to transformers' apply_chat_template (fixtures written by
// tools/make_chat_fixtures.py), loss masks, the prefix property, generation prompts, stop tokens, errors.
#include "gaft/chat.h"

#include <nlohmann/json.hpp>

#include "gaft/utf8.h"
#include "test_util.h"

using gaft::ChatMessage;
using gaft::ChatTemplate;
using gaft_test::expect_data_error;
using gaft_test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kChatData = std::string(GAFT_TEST_DATA) + "/chat";
const std::string kTokData = std::string(GAFT_TEST_DATA) + "/tokenizer";
const std::string kLlama2Model = std::string(GAFT_SHARED_DIR) + "/tokenizers/llama2/tokenizer.model";

nlohmann::json fixture(const std::string& family) {
  return nlohmann::json::parse(gaft_test::read_bytes(kChatData + "/" + family + ".json"));
}

// The fixture's "tokenizer": "shared/..." or "tests/data/...".
std::string tokenizer_path(const nlohmann::json& j) {
  const std::string p = j["tokenizer"].get<std::string>();
  if (p.rfind("shared/", 0) == 0) return std::string(GAFT_SHARED_DIR) + p.substr(6);
  return std::string(GAFT_SOURCE_DIR) + "/" + p;
}

std::vector<ChatMessage> messages_of(const nlohmann::json& list) {
  std::vector<ChatMessage> out;
  for (const auto& m : list) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

std::vector<int64_t> concat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<uint8_t> mask_of(std::initializer_list<std::pair<size_t, uint8_t>> runs) {
  std::vector<uint8_t> out;
  for (const auto& [n, v] : runs) out.insert(out.end(), n, v);
  return out;
}

// The loss mask: one run of 1s per assistant message, holding its content and ending with an end-of-turn token.
void expect_assistant_mask(const gaft::Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                           const gaft::TokenizedChat& chat) {
  ASSERT_EQ(chat.ids.size(), chat.loss_mask.size());
  std::vector<std::vector<int64_t>> runs;
  for (size_t i = 0; i < chat.ids.size(); ++i) {
    if (chat.loss_mask[i] == 0) continue;
    if (i == 0 || chat.loss_mask[i - 1] == 0) runs.emplace_back();
    runs.back().push_back(chat.ids[i]);
  }
  std::vector<std::string> replies;
  for (const ChatMessage& m : messages)
    if (m.role == "assistant") replies.push_back(m.content);
  ASSERT_EQ(runs.size(), replies.size()) << gaft::to_string(tmpl);
  const std::vector<int64_t> stops = gaft::end_of_turn_ids(tok, tmpl);
  for (size_t r = 0; r < runs.size(); ++r) {
    EXPECT_EQ(runs[r].back(), stops.front()) << gaft::to_string(tmpl);
    EXPECT_EQ(gaft::utf8::strip(tok.decode(runs[r])), gaft::utf8::strip(replies[r])) << gaft::to_string(tmpl);
  }
}

// The trainer's split: context + generation prompt is a prefix of the conversation, at every assistant turn.
void expect_prefix_property(const gaft::Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages) {
  const auto full = gaft::apply_chat_template(tok, tmpl, messages, false);
  for (size_t n = 0; n < messages.size(); ++n) {
    if (messages[n].role != "assistant") continue;
    const std::vector<ChatMessage> context(messages.begin(), messages.begin() + n);
    const auto prompt = gaft::apply_chat_template(tok, tmpl, context, true);
    ASSERT_LE(prompt.ids.size(), full.ids.size());
    EXPECT_TRUE(std::equal(prompt.ids.begin(), prompt.ids.end(), full.ids.begin()))
        << gaft::to_string(tmpl) << " at message " << n;
    EXPECT_TRUE(std::equal(prompt.loss_mask.begin(), prompt.loss_mask.end(), full.loss_mask.begin()));
  }
}

// Every fixture conversation: rendered text always; ids exactly unless `ids_differ(case name, prompt?)`.
void expect_matches_fixture(const std::string& family, ChatTemplate tmpl,
                            const std::function<bool(const std::string&, bool)>& ids_differ) {
  const auto j = fixture(family);
  const gaft::Tokenizer tok = gaft::Tokenizer::load(tokenizer_path(j));
  ASSERT_GE(j["cases"].size(), 3u);
  for (const auto& c : j["cases"]) {
    const std::string name = c["name"].get<std::string>();
    const auto messages = messages_of(c["messages"]);
    const std::vector<ChatMessage> context(messages.begin(), messages.end() - 1);
    EXPECT_EQ(gaft::render_chat(tok, tmpl, messages, false), c["text"].get<std::string>()) << name;
    EXPECT_EQ(gaft::render_chat(tok, tmpl, context, true), c["prompt_text"].get<std::string>()) << name;
    const auto full = gaft::apply_chat_template(tok, tmpl, messages, false);
    const auto prompt = gaft::apply_chat_template(tok, tmpl, context, true);
    if (!ids_differ(name, false)) EXPECT_EQ(full.ids, c["ids"].get<std::vector<int64_t>>()) << family << " " << name;
    if (!ids_differ(name, true))
      EXPECT_EQ(prompt.ids, c["prompt_ids"].get<std::vector<int64_t>>()) << family << " " << name;
    expect_assistant_mask(tok, tmpl, messages, full);
    expect_prefix_property(tok, tmpl, messages);
  }
}

}  // namespace

TEST(Chat, Llama2MatchesTransformers) {
  if (!fs::exists(kLlama2Model)) GTEST_SKIP() << "no shared folder";
  // Each segment after a special token starts with SentencePiece's dummy prefix, as the whole text does
  // (legacy Llama tokenization), so the ids agree everywhere.
  expect_matches_fixture("llama2", ChatTemplate::kLlama2, [](const std::string&, bool) { return false; });
}

TEST(Chat, Llama3MatchesTransformers) {
  expect_matches_fixture("llama3", ChatTemplate::kLlama3, [](const std::string&, bool) { return false; });
}

TEST(Chat, ChatmlMatchesTransformers) {
  // "leading_newline": the reply "\n1. one..." follows the header's "\n"; the whole-text regex takes "\n\n" as
  // one piece, gaft's segments "\n" and "\n1..." apart (gaft/chat.h). Its prompt has no such reply: exact.
  expect_matches_fixture("chatml", ChatTemplate::kChatml,
                         [](const std::string& name, bool prompt) { return name == "leading_newline" && !prompt; });
  const auto j = fixture("chatml");
  const gaft::Tokenizer tok = gaft::Tokenizer::load(tokenizer_path(j));
  for (const auto& c : j["cases"])
    if (c["name"] == "leading_newline")
      EXPECT_NE(gaft::apply_chat_template(tok, ChatTemplate::kChatml, messages_of(c["messages"]), false).ids,
                c["ids"].get<std::vector<int64_t>>());
}

TEST(Chat, GemmaMatchesTransformers) {
  // A Gemma-style SentencePiece model (no dummy prefix): segments tokenize as the whole text does, except where
  // BPE would merge across a segment boundary (reported, not hidden).
  const auto j = fixture("gemma");
  const gaft::Tokenizer tok = gaft::Tokenizer::load(tokenizer_path(j));
  std::vector<std::string> differing;
  for (const auto& c : j["cases"])
    if (gaft::apply_chat_template(tok, ChatTemplate::kGemma, messages_of(c["messages"]), false).ids !=
        c["ids"].get<std::vector<int64_t>>())
      differing.push_back(c["name"]);
  EXPECT_TRUE(differing.empty()) << ::testing::PrintToString(differing);
  expect_matches_fixture("gemma", ChatTemplate::kGemma, [](const std::string&, bool) { return false; });
  EXPECT_EQ(gaft::end_of_turn_ids(tok, ChatTemplate::kGemma),
            (std::vector<int64_t>{tok.token_to_id("<end_of_turn>"), tok.eos_id()}));
}

TEST(Chat, GraniteMatchesTransformers) {
  // Every text between special tokens is one segment, as in the whole text: ids agree everywhere, the leading
  // newline of "leading_newline" included (it follows <|end_of_role|>, not a "\n" of the template). The fixture's
  // conversations without a system message are rendered by Granite 3.0's template: 3.1's would insert its dated
  // default system message (tools/make_chat_fixtures.py checks that this is the only difference).
  expect_matches_fixture("granite", ChatTemplate::kGranite, [](const std::string&, bool) { return false; });
  const gaft::Tokenizer tok = gaft::Tokenizer::load(tokenizer_path(fixture("granite")));
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|end_of_text|>"));
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(gaft::end_of_turn_ids(tok, ChatTemplate::kGranite), (std::vector<int64_t>{tok.eos_id()}));
}

TEST(Chat, MistralMatchesTransformersText) {
  if (!fs::exists(kLlama2Model)) GTEST_SKIP() << "no shared folder";
  // The reply follows "[/INST]" directly. Hugging Face encodes "[INST] hi [/INST]reply" as one text ("]reply");
  // gaft encodes the reply on its own, with SentencePiece's "▁" (what mistral_common does): ids differ at
  // every reply, so they are compared where no reply precedes (single-turn prompts), and as segments below.
  expect_matches_fixture("mistral", ChatTemplate::kMistral, [](const std::string& name, bool prompt) {
    return !(prompt && name != "multi_turn_no_system");
  });
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kLlama2Model);
  const std::vector<ChatMessage> chat = {{"user", "Hi there"}, {"assistant", "Hello!"}};
  const auto full = gaft::apply_chat_template(tok, ChatTemplate::kMistral, chat, false);
  EXPECT_EQ(full.ids, concat({{1}, tok.encode("[INST] Hi there [/INST]", false), tok.encode("Hello!", false), {2}}));
}

TEST(Chat, HandCheckedChatmlIdsAndMask) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2");
  const int64_t start = tok.token_to_id("<|im_start|>"), end = tok.token_to_id("<|im_end|>");
  const auto enc = [&](const std::string& s) { return tok.encode(s, false); };
  const std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Yo"}};
  const auto out = gaft::apply_chat_template(tok, ChatTemplate::kChatml, chat, false);
  EXPECT_EQ(out.ids, concat({{start}, enc("system\n"), enc("Be brief."), {end}, enc("\n"),  //
                             {start}, enc("user\n"), enc("Hi"), {end}, enc("\n"),          //
                             {start}, enc("assistant\n"), enc("Yo"), {end}, enc("\n")}));
  const size_t before = 1 + enc("system\n").size() + enc("Be brief.").size() + 1 + 1 + 1 + enc("user\n").size() +
                        enc("Hi").size() + 1 + 1 + 1 + enc("assistant\n").size();
  EXPECT_EQ(out.loss_mask, mask_of({{before, 0}, {enc("Yo").size() + 1, 1}, {1, 0}}));
  // The generation prompt opens an assistant turn.
  const auto prompt = gaft::apply_chat_template(tok, ChatTemplate::kChatml, {chat[0], chat[1]}, true);
  EXPECT_EQ(prompt.ids, std::vector<int64_t>(out.ids.begin(), out.ids.begin() + before));
  EXPECT_EQ(prompt.loss_mask, std::vector<uint8_t>(before, 0));
  EXPECT_EQ(gaft::render_chat(tok, ChatTemplate::kChatml, {chat[1]}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, HandCheckedLlama3GenerationPrompt) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/llama3");
  const int64_t bot = tok.token_to_id("<|begin_of_text|>"), sh = tok.token_to_id("<|start_header_id|>");
  const int64_t eh = tok.token_to_id("<|end_header_id|>"), eot = tok.token_to_id("<|eot_id|>");
  const auto enc = [&](const std::string& s) { return tok.encode(s, false); };
  const auto out = gaft::apply_chat_template(tok, ChatTemplate::kLlama3, {{"user", " Hi \n"}}, true);
  EXPECT_EQ(out.ids, concat({{bot, sh}, enc("user"), {eh}, enc("\n\n"), enc("Hi"), {eot},  // content trimmed
                             {sh}, enc("assistant"), {eh}, enc("\n\n")}));
  EXPECT_EQ(out.loss_mask, std::vector<uint8_t>(out.ids.size(), 0));
  EXPECT_EQ(gaft::apply_chat_template(tok, ChatTemplate::kLlama3, {{"user", "Hi"}}, false).ids,
            concat({{bot, sh}, enc("user"), {eh}, enc("\n\n"), enc("Hi"), {eot}}));
}

TEST(Chat, PlainTemplate) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2");  // no BOS; EOS <|im_end|>
  const auto enc = [&](const std::string& s) { return tok.encode(s, false); };
  const std::vector<ChatMessage> chat = {{"system", "S"}, {"user", "Q"}, {"assistant", "A b"}};
  EXPECT_EQ(gaft::render_chat(tok, ChatTemplate::kPlain, chat, false), "S\n\nUser: Q\n\nAssistant: A b<|im_end|>");
  const auto out = gaft::apply_chat_template(tok, ChatTemplate::kPlain, chat, false);
  const size_t head = enc("S\n\n").size() + enc("User: Q\n\n").size() + enc("Assistant:").size();
  EXPECT_EQ(out.ids, concat({enc("S\n\n"), enc("User: Q\n\n"), enc("Assistant:"), enc(" A b"), {tok.eos_id()}}));
  EXPECT_EQ(out.loss_mask, mask_of({{head, 0}, {enc(" A b").size() + 1, 1}}));
  EXPECT_EQ(gaft::render_chat(tok, ChatTemplate::kPlain, {chat[1]}, true), "User: Q\n\nAssistant:");
  expect_prefix_property(tok, ChatTemplate::kPlain, chat);
  expect_assistant_mask(tok, ChatTemplate::kPlain, chat, out);
}

TEST(Chat, NoneTemplateConcatenates) {
  const gaft::Tokenizer bpe = gaft::Tokenizer::load(kTokData + "/qwen2");
  const std::vector<ChatMessage> pair = {{"user", "Question: 2+2?\nAnswer:"}, {"assistant", " 4"}};
  const auto out = gaft::apply_chat_template(bpe, ChatTemplate::kNone, pair, false);
  const auto q = bpe.encode(pair[0].content, false), a = bpe.encode(" 4", false);
  EXPECT_EQ(out.ids, concat({q, a, {bpe.eos_id()}}));
  EXPECT_EQ(out.loss_mask, mask_of({{q.size(), 0}, {a.size() + 1, 1}}));
  EXPECT_EQ(gaft::apply_chat_template(bpe, ChatTemplate::kNone, {pair[0]}, true).ids, q);  // no generation header
  expect_prefix_property(bpe, ChatTemplate::kNone, pair);
  if (!fs::exists(kLlama2Model)) GTEST_SKIP() << "no shared folder";
  // SentencePiece: BOS first; the reply's leading space becomes the dummy prefix ("▁4", as in the whole text).
  const gaft::Tokenizer sp = gaft::Tokenizer::load(kLlama2Model);
  const auto sp_out = gaft::apply_chat_template(sp, ChatTemplate::kNone, pair, false);
  EXPECT_EQ(sp_out.ids, concat({{1}, sp.encode(pair[0].content, false), sp.encode("4", false), {2}}));
  EXPECT_EQ(concat({{1}, sp.encode(pair[0].content + " 4", false)}),
            std::vector<int64_t>(sp_out.ids.begin(), sp_out.ids.end() - 1));
}

TEST(Chat, EndOfTurnIds) {
  const gaft::Tokenizer llama3 = gaft::Tokenizer::load(kTokData + "/llama3");  // EOS is <|eot_id|> itself
  EXPECT_EQ(gaft::end_of_turn_ids(llama3, ChatTemplate::kLlama3),
            std::vector<int64_t>{llama3.token_to_id("<|eot_id|>")});
  const gaft::Tokenizer qwen = gaft::Tokenizer::load(kTokData + "/qwen2");
  EXPECT_EQ(gaft::end_of_turn_ids(qwen, ChatTemplate::kChatml), std::vector<int64_t>{qwen.token_to_id("<|im_end|>")});
  EXPECT_EQ(gaft::end_of_turn_ids(qwen, ChatTemplate::kPlain), std::vector<int64_t>{qwen.eos_id()});
  // A base model's EOS (<|endoftext|>) also stops generation, after the turn token.
  TempDir dir("chat_eot");
  for (const auto& f : fs::directory_iterator(kTokData + "/qwen2"))
    fs::copy_file(f.path(), dir.file(f.path().filename().string()));
  gaft_test::write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": "<|endoftext|>"})");
  const gaft::Tokenizer base = gaft::Tokenizer::load(dir.str());
  EXPECT_EQ(gaft::end_of_turn_ids(base, ChatTemplate::kChatml),
            (std::vector<int64_t>{base.token_to_id("<|im_end|>"), base.token_to_id("<|endoftext|>")}));
  EXPECT_THROW(gaft::end_of_turn_ids(base, ChatTemplate::kAuto), c10::Error);
  expect_data_error([&] { gaft::end_of_turn_ids(base, ChatTemplate::kLlama3); }, {"<|eot_id|>", "tokenizer.json"});
}

TEST(Chat, Errors) {
  const gaft::Tokenizer tok = gaft::Tokenizer::load(kTokData + "/qwen2");
  for (ChatTemplate t : {ChatTemplate::kNone, ChatTemplate::kPlain, ChatTemplate::kChatml}) {
    expect_data_error([&] { gaft::apply_chat_template(tok, t, {{"user", "a"}, {"tool", "b"}}, false); },
                      {"message 2", "unknown role \"tool\""});
    expect_data_error([&] { gaft::apply_chat_template(tok, t, {{"user", "a"}, {"system", "b"}}, false); },
                      {"message 2", "system message must be the first"});
  }
  // A template whose special tokens the tokenizer lacks names the token and the tokenizer.
  expect_data_error([&] { gaft::apply_chat_template(tok, ChatTemplate::kLlama3, {{"user", "a"}}, false); },
                    {"llama3", "<|begin_of_text|>", "qwen2/tokenizer.json"});
  expect_data_error([&] { gaft::apply_chat_template(tok, ChatTemplate::kLlama2, {{"user", "a"}}, false); },
                    {"llama2", "BOS", "qwen2/tokenizer.json"});
  EXPECT_THROW(gaft::apply_chat_template(tok, ChatTemplate::kAuto, {{"user", "a"}}, false), c10::Error);
  if (!fs::exists(kLlama2Model)) GTEST_SKIP() << "no shared folder";
  const gaft::Tokenizer sp = gaft::Tokenizer::load(kLlama2Model);
  expect_data_error([&] { gaft::apply_chat_template(sp, ChatTemplate::kChatml, {{"user", "a"}}, false); },
                    {"chatml", "<|im_start|>", "tokenizer.model"});
  expect_data_error([&] { gaft::apply_chat_template(sp, ChatTemplate::kLlama2, {{"assistant", "a"}}, false); },
                    {"message 1", "alternate"});
  expect_data_error(
      [&] { gaft::apply_chat_template(sp, ChatTemplate::kLlama2, {{"system", "s"}, {"user", "a"}, {"user", "b"}}, false); },
      {"message 3", "\"assistant\" was expected"});
  expect_data_error([&] { gaft::apply_chat_template(sp, ChatTemplate::kMistral, {{"system", "s"}, {"user", "a"}}, false); },
                    {"message 1", "no system role"});
}

// Phi-3 / 3.5 (newlines after the role tags), Phi-4 (<|im_sep|>, the assistant header written after each user
// turn) and Phi-4-mini (no newlines) on one byte-level BPE fixture tokenizer with Phi's special tokens.
TEST(Chat, PhiTemplatesMatchTransformers) {
  // phi3: "leading_newline"'s reply "\n1. one" follows the header's "\n": the whole text's regex takes "\n\n" as
  // one piece, gaft's segments apart (as ChatML; the prompt is exact). phi4 / phi4_mini put every text between
  // special tokens in one segment, as the whole text: exact everywhere.
  expect_matches_fixture("phi3", ChatTemplate::kPhi3,
                         [](const std::string& name, bool prompt) { return name == "leading_newline" && !prompt; });
  expect_matches_fixture("phi4", ChatTemplate::kPhi4, [](const std::string&, bool) { return false; });
  expect_matches_fixture("phi4_mini", ChatTemplate::kPhi4Mini, [](const std::string&, bool) { return false; });
  const gaft::Tokenizer tok = gaft::Tokenizer::load(tokenizer_path(fixture("phi3")));
  const int64_t end = tok.token_to_id("<|end|>");
  EXPECT_EQ(gaft::end_of_turn_ids(tok, ChatTemplate::kPhi3), (std::vector<int64_t>{end, tok.eos_id()}));
  EXPECT_EQ(gaft::end_of_turn_ids(tok, ChatTemplate::kPhi4Mini), (std::vector<int64_t>{end, tok.eos_id()}));
  EXPECT_EQ(gaft::end_of_turn_ids(tok, ChatTemplate::kPhi4),
            (std::vector<int64_t>{tok.token_to_id("<|im_end|>"), tok.eos_id()}));
}

TEST(Chat, ResolveTemplateFromTokenizerConfig) {
  TempDir dir("chat_resolve");
  const std::string config = dir.file("tokenizer_config.json");
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), ChatTemplate::kPlain);  // nothing there
  gaft_test::write_bytes(config, R"({"eos_token": "</s>"})");
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), ChatTemplate::kPlain);
  const std::vector<std::pair<std::string, ChatTemplate>> families = {{"llama2", ChatTemplate::kLlama2},
                                                                      {"llama3", ChatTemplate::kLlama3},
                                                                      {"chatml", ChatTemplate::kChatml},
                                                                      {"mistral", ChatTemplate::kMistral},
                                                                      {"gemma", ChatTemplate::kGemma},
                                                                      {"granite", ChatTemplate::kGranite},
                                                                      {"phi3", ChatTemplate::kPhi3},
                                                                      {"phi4", ChatTemplate::kPhi4},
                                                                      {"phi4_mini", ChatTemplate::kPhi4Mini}};
  for (const auto& [family, expected] : families) {
    const std::string tmpl = fixture(family)["template"].get<std::string>();
    gaft_test::write_bytes(config, nlohmann::json{{"chat_template", tmpl}}.dump());
    EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), expected) << family;
    EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.file("tokenizer.json")), expected) << family;
    EXPECT_EQ(gaft::to_string(expected), family);
  }
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kNone, dir.str()), ChatTemplate::kNone);  // configured wins
  // Granite 3.0's template (no system message), and Granite Guardian's, whose user turn holds "<start_of_turn>".
  gaft_test::write_bytes(config,
                         nlohmann::json{{"chat_template", fixture("granite")["template_without_system"]}}.dump());
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), ChatTemplate::kGranite);
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, std::string(GAFT_TEST_DATA) + "/judges/granite_guardian"),
            ChatTemplate::kGranite);
  // The list form of newer tokenizer configs, and chat_template.jinja.
  const std::string chatml = fixture("chatml")["template_without_system"].get<std::string>();
  gaft_test::write_bytes(config, nlohmann::json{{"chat_template", {{{"name", "tool_use"}, {"template", "x"}},
                                                                    {{"name", "default"}, {"template", chatml}}}}}
                                     .dump());
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), ChatTemplate::kChatml);
  fs::remove(config);
  gaft_test::write_bytes(dir.file("chat_template.jinja"), fixture("llama3")["template"].get<std::string>());
  EXPECT_EQ(gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()), ChatTemplate::kLlama3);
  // Unknown templates and malformed files are errors naming the file.
  gaft_test::write_bytes(config, R"({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})");
  expect_data_error([&] { gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()); },
                    {"tokenizer_config.json", "recognises"});
  gaft_test::write_bytes(config, R"({"chat_template": 3})");
  expect_data_error([&] { gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()); },
                    {"tokenizer_config.json", "chat_template"});
  gaft_test::write_bytes(config, "{");
  expect_data_error([&] { gaft::resolve_chat_template(ChatTemplate::kAuto, dir.str()); },
                    {"tokenizer_config.json", "not valid JSON"});
}
