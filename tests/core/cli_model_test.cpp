// gaft generate / tokenize / logits end to end through the binary (GAFT_BIN).
#include "gaft/safetensors.h"
#include "gaft/chat.h"
#include "gaft/generate.h"
#include "common/run_gaft.h"
#include "test_util.h"

namespace {

using Result = gaft_test::RunResult;

Result run(const std::string& args, bool with_stderr = false) { return gaft_test::run_gaft(args, with_stderr); }

bool have_stories() { return std::filesystem::exists(gaft_test::kStories); }

}  // namespace

TEST(CliModel, HelpAndUsageErrors) {
  for (const char* cmd : {"generate", "tokenize", "logits"}) {
    const Result r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << cmd;
    EXPECT_EQ(run(cmd).code, 2) << cmd;  // required options missing
  }
  EXPECT_EQ(run("logits --model x --ids 'a b' --out y").code, 2);
}

TEST(CliModel, GenerateGreedyFromBos) {
  if (!have_stories()) GTEST_SKIP() << "no shared folder";
  const Result r = run("generate --model " + gaft_test::kStories + "/hf --prompt '' --max-new-tokens 40");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string expected = gaft_test::read_bytes(gaft_test::kStories + "/expected_greedy_256.txt");
  ASSERT_GT(r.out.size(), 20u);
  EXPECT_EQ(expected.rfind(r.out.substr(0, r.out.size() - 1), 0), 0u) << r.out;  // a prefix of the golden text
}

TEST(CliModel, GenerateContinuesAPrompt) {
  if (!have_stories()) GTEST_SKIP() << "no shared folder";
  const Result r = run("generate --model " + gaft_test::kStories + "/hf --prompt 'Once upon a time,' --max-new-tokens 8");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind(" there was a little girl", 0), 0u) << r.out;  // the completion alone
  const Result s = run("generate --model " + gaft_test::kStories +
                       "/hf --prompt 'Once' --max-new-tokens 20 --temperature 1.0 --top-k 20 --top-p 0.9 --seed 7");
  const Result t = run("generate --model " + gaft_test::kStories +
                       "/hf --prompt 'Once' --max-new-tokens 20 --temperature 1.0 --top-k 20 --top-p 0.9 --seed 7");
  ASSERT_EQ(s.code, 0);
  EXPECT_EQ(s.out, t.out);  // seeded sampling is reproducible
}

TEST(CliModel, Tokenize) {
  if (!have_stories()) GTEST_SKIP() << "no shared folder";
  const Result r = run("tokenize --tokenizer " + gaft_test::kStories + "/hf/tokenizer.model --text 'Once upon a time'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("1 ", 0), 0u) << r.out;
  const Result bad = run("tokenize --tokenizer /nonexistent/tokenizer.model --text x", true);
  EXPECT_EQ(bad.code, 3);
  EXPECT_NE(bad.out.find("/nonexistent/tokenizer.model"), std::string::npos) << bad.out;
}

TEST(CliModel, LogitsToSafetensors) {
  gaft_test::TempDir dir("cli_logits");
  const std::string out = dir.file("logits.safetensors");
  const Result r = run("logits --model " + gaft_test::kModelData + "/llama --ids '5 6 7' --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const gaft::SafetensorsFile f(out);
  const at::Tensor l = f.get("logits");
  EXPECT_EQ(l.scalar_type(), at::kFloat);
  EXPECT_EQ(l.sizes(), (at::IntArrayRef{3, 80}));
  const Result bad = run("logits --model " + gaft_test::kModelData + "/llama --ids '5 999' --out " + out, true);
  EXPECT_EQ(bad.code, 3) << bad.out;
  const Result missing = run("logits --model " + dir.str() + " --ids '5' --out " + out, true);
  EXPECT_EQ(missing.code, 3) << missing.out;
  EXPECT_NE(missing.out.find("config.json"), std::string::npos) << missing.out;
}

TEST(CliModel, GenerateChatWrapsThePromptAsAUserTurn) {
  if (!have_stories()) GTEST_SKIP() << "no shared folder";
  const std::string dir = gaft_test::kStories + "/hf";
  const Result r = run("generate --model " + dir + " --prompt 'Tell me a story.' --max-new-tokens 12 --chat");
  ASSERT_EQ(r.code, 0) << r.out;
  // By hand: the plain template's generation prompt, greedy, stopped by the end of turn.
  gaft::Llama model = gaft::load_llama(dir);
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir);
  const gaft::ChatTemplate tmpl = gaft::resolve_chat_template(gaft::ChatTemplate::kAuto, dir);
  EXPECT_EQ(tmpl, gaft::ChatTemplate::kPlain);
  const auto prompt = gaft::apply_chat_template(tok, tmpl, {{"user", "Tell me a story."}}, true).ids;
  gaft::GenerationOptions o;
  o.max_new_tokens = 12;
  o.stop_tokens = gaft::end_of_turn_ids(tok, tmpl);
  const auto out = gaft::generate(model, {prompt}, o)[0];
  std::vector<int64_t> all = prompt;
  all.insert(all.end(), out.begin(), out.end());
  const std::string full = tok.decode(all), head = tok.decode(prompt);
  EXPECT_EQ(r.out, full.substr(head.size()) + "\n");
  EXPECT_NE(run("generate --model " + dir + " --prompt 'x' --max-new-tokens 4").out, r.out);
}
