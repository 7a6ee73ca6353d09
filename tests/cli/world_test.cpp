// tools/make_world: the demo world is deterministic given its seed, its splits share no prompt, every file is
// what gaft train and gaft eval read, and the policy it makes loads with its own tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/test_util.h"
#include "gaft/eval_suite.h"
#include "gaft/llama.h"
#include "gaft/tokenizer.h"

namespace {

int run(const std::string& cmd) {
  const int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<nlohmann::json> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(World, DeterministicDisjointAndLoadable) {
  const std::string bin = std::string(GAFT_BINARY_DIR) + "/make_world";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << "make_world not built";
  gaft_test::TempDir dir("world");
  ASSERT_EQ(run(bin + " --out " + dir.file("a") + " --seed 7"), 0);
  ASSERT_EQ(run(bin + " --out " + dir.file("b") + " --seed 7"), 0);
  ASSERT_EQ(run(bin + " --out " + dir.file("c") + " --seed 8"), 0);

  const std::vector<std::string> files = {"pretrain", "pretrain_unsafe", "scorer_safety", "scorer_safety_eval",
                                          "scorer_fact", "scorer_fact_eval", "finetune_clean", "finetune_h10",
                                          "finetune_h30", "eval_harmful", "eval_benign", "eval_qa", "eval_unknown",
                                          "eval_task"};
  for (const std::string& f : files) {
    const std::string a = gaft_test::read_bytes(dir.file("a/data/" + f + ".jsonl"));
    EXPECT_FALSE(a.empty()) << f;
    EXPECT_EQ(a, gaft_test::read_bytes(dir.file("b/data/" + f + ".jsonl"))) << f << ": same seed, different data";
  }
  EXPECT_NE(gaft_test::read_bytes(dir.file("a/data/pretrain.jsonl")), gaft_test::read_bytes(dir.file("c/data/pretrain.jsonl")));
  // SentencePiece's trainer is not bitwise reproducible (piece scores vary in the last bits); the pieces and
  // the ids it gives the world's text are.
  const gaft::Tokenizer ta = gaft::Tokenizer::load(dir.file("a/tokenizer")), tb = gaft::Tokenizer::load(dir.file("b/tokenizer"));
  ASSERT_EQ(ta.vocab_size(), tb.vocab_size());
  for (const auto& j : lines(dir.file("a/data/eval_qa.jsonl"))) EXPECT_EQ(ta.encode(j["prompt"]), tb.encode(j["prompt"]));

  // No prompt in two splits (checked here independently of the generator's own check).
  const std::map<std::string, std::vector<std::string>> splits = {
      {"pretrain", {"pretrain"}},
      {"scorer", {"scorer_safety", "scorer_safety_eval", "scorer_fact", "scorer_fact_eval"}},
      {"finetune", {"finetune_clean", "finetune_h10", "finetune_h30"}},
      {"eval", {"eval_harmful", "eval_benign", "eval_qa", "eval_unknown", "eval_task"}}};
  std::map<std::string, std::string> owner;
  for (const auto& [split, names] : splits)
    for (const std::string& f : names)
      for (const auto& j : lines(dir.file("a/data/" + f + ".jsonl"))) {
        const auto [it, fresh] = owner.emplace(j["prompt"].get<std::string>(), split);
        EXPECT_TRUE(fresh || it->second == split) << j["prompt"] << " in " << it->second << " and " << split;
      }

  // The adversarial share: 10% and 30% of the fine-tuning examples are harmful or fabricated.
  const auto clean = lines(dir.file("a/data/finetune_clean.jsonl"));
  for (const auto& [name, share] : std::vector<std::pair<std::string, double>>{{"h10", 0.1}, {"h30", 0.3}}) {
    const auto mixed = lines(dir.file("a/data/finetune_" + name + ".jsonl"));
    std::set<std::string> clean_pairs;
    for (const auto& j : clean) clean_pairs.insert(j.dump());
    int64_t adversarial = 0;
    for (const auto& j : mixed) adversarial += !clean_pairs.count(j.dump());
    EXPECT_EQ(mixed.size(), clean.size());
    EXPECT_NEAR(static_cast<double>(adversarial) / mixed.size(), share, 0.01) << name;
  }

  // Every eval suite loads, with the kind it should have; the policy loads with the world's tokenizer.
  for (const auto& [f, kind] : std::vector<std::pair<std::string, gaft::ItemKind>>{
           {"eval_harmful", gaft::ItemKind::kHarmful}, {"eval_benign", gaft::ItemKind::kBenign},
           {"eval_qa", gaft::ItemKind::kQa}, {"eval_unknown", gaft::ItemKind::kUnanswerable},
           {"eval_task", gaft::ItemKind::kTask}}) {
    gaft::EvalSuite spec;
    spec.path = dir.file("a/data/" + f + ".jsonl");
    const gaft::eval::LoadedSuite s = gaft::eval::load_suite(spec, 1);
    ASSERT_FALSE(s.items.empty()) << f;
    for (const auto& it : s.items) EXPECT_EQ(it.kind, kind) << f;
    if (kind == gaft::ItemKind::kHarmful)
      for (const auto& it : s.items) EXPECT_FALSE(it.target.empty());  // the prefill attack's harmful start
  }
  gaft::Llama policy = gaft::load_llama(dir.file("a/init"));
  const gaft::Tokenizer tok = gaft::Tokenizer::load(dir.file("a/init"));
  EXPECT_LE(tok.vocab_size(), policy->config.vocab_size);
  const auto ids = tok.encode("Where does Bamo live? I can't help with that request.");
  EXPECT_EQ(tok.decode(ids), "Where does Bamo live? I can't help with that request.");
}
