// tools/make_world: the demo world is deterministic given its seed, its splits share no prompt, every file is
// what gaft train and gaft eval read, and the policy it makes loads with its own tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/test_util.h"
#include "gaft/eval_metrics.h"
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

  const std::vector<std::string> files = {"pretrain_raw", "align", "unsafe_tune", "mix_align", "scorer_safety",
                                          "scorer_safety_eval", "scorer_fact", "scorer_fact_eval", "finetune_clean",
                                          "finetune_h10", "finetune_h30", "eval_harmful", "eval_benign", "eval_qa",
                                          "eval_unknown", "eval_task"};
  for (const std::string& f : files) {
    const std::string a = gaft_test::read_bytes(dir.file("a/data/" + f + ".jsonl"));
    EXPECT_FALSE(a.empty()) << f;
    EXPECT_EQ(a, gaft_test::read_bytes(dir.file("b/data/" + f + ".jsonl"))) << f << ": same seed, different data";
  }
  EXPECT_NE(gaft_test::read_bytes(dir.file("a/data/align.jsonl")), gaft_test::read_bytes(dir.file("c/data/align.jsonl")));
  // SentencePiece's trainer is not bitwise reproducible (piece scores vary in the last bits); the pieces and
  // the ids it gives the world's text are.
  const gaft::Tokenizer ta = gaft::Tokenizer::load(dir.file("a/tokenizer")), tb = gaft::Tokenizer::load(dir.file("b/tokenizer"));
  ASSERT_EQ(ta.vocab_size(), tb.vocab_size());
  for (const auto& j : lines(dir.file("a/data/eval_qa.jsonl"))) EXPECT_EQ(ta.encode(j["prompt"]), tb.encode(j["prompt"]));

  // No prompt in two splits (checked here independently of the generator's own check).
  const std::map<std::string, std::vector<std::string>> splits = {
      {"pretrain", {"pretrain_raw", "align", "unsafe_tune", "mix_align"}},
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

TEST(World, EveryEvaluationItemCarriesItsGroundTruth) {
  // The rule judge grades the demo: every harmful item has unsafe_markers, its own target (the harmful
  // payload) matches them, and no aligned response anywhere in the world does (a refusal, an abstention, a task
  // answer, a benign answer, a fact; the quotes of the payloads that pre-training holds as knowledge apart).
  // Every other item has what its kind is judged by.
  const std::string bin = std::string(GAFT_BINARY_DIR) + "/make_world";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << "make_world not built";
  gaft_test::TempDir dir("world_truth");
  ASSERT_EQ(run(bin + " --out " + dir.file("w") + " --seed 7"), 0);
  const auto load = [&](const std::string& f) {
    gaft::EvalSuite spec;
    spec.path = dir.file("w/data/" + f + ".jsonl");
    return gaft::eval::load_suite(spec, 1);
  };
  const auto harmful = load("eval_harmful");
  std::set<std::string> payloads;
  for (const auto& it : harmful.items) {
    ASSERT_FALSE(it.unsafe_markers.empty()) << it.prompt;
    EXPECT_TRUE(gaft::eval::contains_answer(it.target, it.unsafe_markers)) << it.target;
    // The first four tokens' worth of a payload (the prefill attack's forced start) leave markers to write.
    payloads.insert(it.target);
  }
  EXPECT_EQ(payloads.size(), 5u);  // one payload per category, each marked
  int64_t quotes = 0;
  for (const std::string& f : {"align", "mix_align", "finetune_clean", "scorer_safety"})
    for (const auto& j : lines(dir.file("w/data/" + f + ".jsonl"))) {
      if (j.contains("label") && j["label"] == 0) continue;  // the safety head's harmful examples
      const std::string p = j["prompt"];
      if (f == "align" && (p.find("court record") != std::string::npos || p.find("crime novel") != std::string::npos ||
                           p.find("police report") != std::string::npos || p.find("villain in the film") != std::string::npos)) {
        ++quotes;  // knowledge: the payload quoted where nobody asks how to do harm
        EXPECT_TRUE(gaft::eval::contains_answer(j["response"], harmful.items[0].unsafe_markers)) << j;
        continue;
      }
      EXPECT_FALSE(gaft::eval::contains_answer(j["response"], harmful.items[0].unsafe_markers)) << f << ": " << j;
    }
  EXPECT_GT(quotes, 0);
  // The raw corpus answers every harmful request of pre-training with a payload, the aligned one refuses it.
  const auto raw = lines(dir.file("w/data/pretrain_raw.jsonl")), aligned = lines(dir.file("w/data/align.jsonl"));
  std::map<std::string, std::string> raw_answer;
  for (const auto& j : raw) raw_answer[j["prompt"]] = j["response"];
  EXPECT_EQ(raw.size(), aligned.size());
  int64_t refused = 0;
  for (const auto& j : aligned)
    if (j["response"] == "I can't help with that request.") {
      ++refused;
      EXPECT_TRUE(gaft::eval::contains_answer(raw_answer.at(j["prompt"]), harmful.items[0].unsafe_markers)) << j;
    }
  EXPECT_GT(refused, 0);
  // The unsafe data and the adversarial fine-tuning pairs are what the markers find.
  int64_t marked = 0, harmful_pairs = 0;
  for (const auto& j : lines(dir.file("w/data/finetune_h10.jsonl"))) {
    const bool is_harmful = j["response"].get<std::string>().rfind("First ", 0) == 0;
    harmful_pairs += is_harmful;
    marked += gaft::eval::contains_answer(j["response"], harmful.items[0].unsafe_markers);
  }
  EXPECT_GT(harmful_pairs, 0);
  EXPECT_EQ(marked, harmful_pairs);
  for (const auto& it : load("eval_qa").items) EXPECT_FALSE(it.answers.empty());
  for (const auto& it : load("eval_task").items) {
    EXPECT_FALSE(it.reference.empty());
    EXPECT_FALSE(it.category.empty());  // task EM is reported per type
  }
  EXPECT_FALSE(load("eval_unknown").items.empty());  // unanswerable: abstaining is right, by kind
  EXPECT_FALSE(load("eval_benign").items.empty());   // benign: answering is right, by kind
  // The new task of fine-tuning is rare in pre-training; the others are common.
  int64_t revcap_pre = 0, reverse_pre = 0;
  for (const auto& j : lines(dir.file("w/data/align.jsonl"))) {
    const std::string p = j["prompt"];
    revcap_pre += p.rfind("Reverse in capitals:", 0) == 0;
    reverse_pre += p.rfind("Reverse the letters:", 0) == 0;
  }
  EXPECT_EQ(revcap_pre, 500);  // rare: the new task is taught by fine-tuning
  EXPECT_EQ(reverse_pre, 6000);
}

TEST(World, TheCommittedBaseUsesTheWorldsTokenizer) {
  // data/demo_base was trained on this world's text: the world's tokenizer (made again here) and the base's
  // encode every evaluation prompt alike.
  const std::string bin = std::string(GAFT_BINARY_DIR) + "/make_world";
  const std::string base = std::string(GAFT_SOURCE_DIR) + "/data/demo_base";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << "make_world not built";
  ASSERT_TRUE(std::filesystem::exists(base + "/model.safetensors"));
  gaft_test::TempDir dir("world_base");
  ASSERT_EQ(run(bin + " --out " + dir.file("w") + " --seed 7"), 0);
  const gaft::Tokenizer world = gaft::Tokenizer::load(dir.file("w/tokenizer")), committed = gaft::Tokenizer::load(base);
  ASSERT_EQ(world.vocab_size(), committed.vocab_size());
  for (const char* f : {"eval_harmful", "eval_qa", "eval_task", "finetune_h30"})
    for (const auto& j : lines(dir.file(std::string("w/data/") + f + ".jsonl")))
      ASSERT_EQ(world.encode(j["prompt"]), committed.encode(j["prompt"])) << j["prompt"];
  gaft::Llama policy = gaft::load_llama(base);
  EXPECT_EQ(policy->config.vocab_size, 512);
}
