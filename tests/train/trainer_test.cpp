// `gaft train` end to end on ../shared/models/stories260K with a tiny scorer built here: sft, gaft and
// classifier objectives, loss going down on a fixed batch, exact resume, and bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/run_gaft.h"
#include "common/tiny_scorer.h"
#include "core/test_util.h"
#include "gaft/fingerprint.h"
#include "gaft/llama.h"
#include "gaft/lora.h"
#include "gaft/model_save.h"
#include "gaft/safetensors.h"
#include "gaft/scorer.h"

using gaft_test::run_gaft;
using gaft_test::TempDir;

namespace {

const std::string kModel = gaft_test::kStories + "/hf";

// Two saved models (or adapter files) hold bitwise the same tensors.
void expect_same_tensors(const std::string& path_a, const std::string& path_b) {
  const gaft::Checkpoint a = gaft::load_checkpoint(path_a);
  const gaft::Checkpoint b = gaft::load_checkpoint(path_b);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) EXPECT_TRUE(at::equal(t, b.tensors.at(name))) << name;
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kModel)) return;
    dir_ = new TempDir("train");
    gaft_test::save_tiny_classifier(kModel, dir_->file("scorer"), 3);

    std::ofstream train(dir_->file("train.jsonl"));
    const char* prompts[] = {"Once upon a time", "The little dog", "Lily went to", "Tom had a red"};
    const char* responses[] = {"there was a girl.", "ran to the park.", "the big store.", "ball and a car."};
    for (int i = 0; i < 4; ++i)
      train << nlohmann::json{{"prompt", prompts[i]}, {"response", responses[i]}}.dump() << "\n";
    std::ofstream labelled(dir_->file("labelled.jsonl"));
    for (int i = 0; i < 16; ++i) {
      const bool happy = i % 2 == 0;
      labelled << nlohmann::json{{"prompt", prompts[i % 4]},
                                 {"response", happy ? "She was very happy and smiled." : "He was sad and cried."},
                                 {"label", happy ? 1 : 0}}
                      .dump()
               << "\n";
    }
  }
  static void TearDownTestSuite() {
    if (!std::getenv("GAFT_KEEP_TEST_DIR")) delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "no shared folder";
  }

  // A config for `objective` writing to `out`, plus extra YAML lines.
  static std::string config(const std::string& name, const std::string& objective, const std::string& extra = "") {
    const std::string out = dir_->file(name);
    std::string y = "run: {output_dir: " + out + ", seed: 7, threads: 1}\n"
                    "model: {path: " + kModel + "}\n"
                    "data: {train: " + dir_->file("train.jsonl") + ", shuffle: false, max_prompt_tokens: 64, max_response_tokens: 64}\n"
                    "tokenizer: {max_length: 128}\n"
                    "objective: {kind: " + objective + "}\n"
                    "train: {batch_size: 4, max_steps: 20}\n"
                    "optimizer: {lr: 0.003, grad_clip: 1.0}\n"
                    "schedule: {kind: constant}\n"
                    // float32 on every CPU: compute auto is bfloat16 where the CPU has AVX512-BF16 or AMX, and
                    // these tests compare with float32 references at float32 tolerances.
                    "precision: {compute: float32}\n"
                    "logging: {every_steps: 1, progress: off}\n"
                    "checkpoint: {every_steps: 0, keep_last: 2}\n";
    if (objective == "gaft")
      y += "scorer: {heads: [{name: safety, path: " + dir_->file("scorer") + "}]}\n"
           "rollout: {num_samples: 3, max_new_tokens: 6, temperature: 1.0}\n";
    const std::string path = dir_->file(name + ".yaml");
    gaft_test::write_bytes(path, y + extra);
    return path;
  }
  // Runs config `split` (a folder name under the test dir) for `half` steps, stops, resumes it to `total`, and
  // expects the same weights as the uninterrupted run `whole` (`file`: the saved file or folder to compare).
  static void expect_resume_exact(const std::string& cfg, const std::string& args, int half, int total,
                                  const std::string& whole, const std::string& split, const std::string& file = "model") {
    const auto first = run_gaft("train --config " + cfg + args + " train.max_steps=" + std::to_string(half));
    ASSERT_EQ(first.code, 0) << first.out;
    const auto second = run_gaft("train --config " + cfg + args + " train.max_steps=" + std::to_string(total));
    ASSERT_EQ(second.code, 0) << second.out;
    EXPECT_NE(second.out.find("resuming from"), std::string::npos) << second.out;
    expect_same_tensors(dir_->file(whole + "/" + file), dir_->file(split + "/" + file));
  }
  static TempDir* dir_;
};
TempDir* Train::dir_ = nullptr;

}  // namespace

TEST_F(Train, SftLossDecreasesOnAFixedBatch) {
  const auto r = run_gaft("train --config " + config("sft", "sft"));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m = read_metrics(dir_->file("sft/metrics.jsonl"));
  ASSERT_EQ(m.size(), 20u);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.8 * m.front()["loss"].get<double>());
  EXPECT_DOUBLE_EQ(m.front()["loss_pg"].get<double>(), 0.0);
  // The final model is a loadable HF folder with the tokenizer beside it.
  EXPECT_TRUE(std::filesystem::exists(dir_->file("sft/model/tokenizer.model")));
  gaft::Llama trained = gaft::load_llama(dir_->file("sft/model"));
  EXPECT_EQ(trained->config.vocab_size, 512);
  EXPECT_TRUE(std::filesystem::exists(dir_->file("sft/config.yaml")));
  EXPECT_TRUE(std::filesystem::exists(dir_->file("sft/checkpoints/step-00000020/trainer_state.json")));
}

TEST_F(Train, GaftStepLogsTheMethodsMetrics) {
  const auto r = run_gaft("train --config " + config("gaft", "gaft", "gate: {mode: fixed, g0: 0.5}\nabstention: {delta: 0.0}\n") +
                          " train.max_steps=12");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m = read_metrics(dir_->file("gaft/metrics.jsonl"));
  ASSERT_EQ(m.size(), 12u);
  for (const char* key : {"loss", "loss_sft", "loss_pg", "reward_mean", "reward_std", "gate_mean", "gate_p10", "gate_p90",
                          "rollout_skipped", "abstain_rate", "drop_rate", "kl", "grad_norm", "lr", "tokens_per_s",
                          "rollout_share"})
    EXPECT_TRUE(m.back().contains(key)) << key;
  EXPECT_DOUBLE_EQ(m.back()["gate_mean"].get<double>(), 0.5);
  EXPECT_GT(m.back()["rollout_tokens"].get<int64_t>(), 0);
  // (Late in the run the policy has memorised the 4 answers: identical samples, zero advantages.)
  EXPECT_NE(m.front()["loss_pg"].get<double>(), 0.0) << m.front().dump();
  // The SFT half still fits the batch.
  EXPECT_LT(m.back()["loss_sft"].get<double>(), m.front()["loss_sft"].get<double>());
}

// The host reads of a gaft step (gaft/host_sync.h; on a GPU each one waits for the device) are the ones the
// code documents: one per sampling step of the rollouts, and per micro-batch one copy of the rollouts' scores,
// one of the loss and its parts, and one inside the fused op (it sizes its work by the non-zero weights), plus
// one copy of the reference scores while they are not cached (the first epoch); per step one more, the gradient
// norm for clipping. (4 examples, 2 micro-batches of 2 per step: the first step is the first epoch.)
TEST_F(Train, AStepReadsTheHostOnlyWhereDocumented) {
  const auto r = run_gaft("train --config " + config("syncs", "gaft", "gate: {mode: fixed, g0: 0.5}\nabstention: {delta: 0.0}\n") +
                          " train.max_steps=3 train.batch_size=2 train.grad_accum_steps=2");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m = read_metrics(dir_->file("syncs/metrics.jsonl"));
  ASSERT_EQ(m.size(), 3u);
  for (const auto& rec : m) {
    const int64_t decode = rec["decode_steps"].get<int64_t>();
    EXPECT_GE(decode, 2);  // at least one sampling step per micro-batch
    EXPECT_LE(decode, 2 * 6);  // at most max_new_tokens per micro-batch
    const int64_t first_epoch = rec["step"].get<int64_t>() == 1 ? 2 : 0;
    EXPECT_EQ(rec["host_syncs"].get<int64_t>(), decode + 3 * 2 + 1 + first_epoch) << rec.dump();
  }
}

TEST_F(Train, ClassifierObjectiveLearnsLabels) {
  const std::string extra = "data: {train: " + dir_->file("labelled.jsonl") + ", eval: " + dir_->file("labelled.jsonl") +
                            ", max_prompt_tokens: 64, max_response_tokens: 64}\n";
  std::string cfg = config("cls", "classifier");
  // Replace the data line by the labelled one.
  std::string y = gaft_test::read_bytes(cfg);
  y.replace(y.find("data:"), y.find('\n', y.find("data:")) - y.find("data:") + 1, extra);
  gaft_test::write_bytes(cfg, y);
  const auto r = run_gaft("train --config " + cfg + " train.max_steps=30 train.batch_size=8");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m = read_metrics(dir_->file("cls/metrics.jsonl"));
  ASSERT_FALSE(m.empty());
  EXPECT_TRUE(m.back()["final"].get<bool>());
  EXPECT_GE(m.back()["eval_accuracy"].get<double>(), 0.99);
  gaft::Llama cls = gaft::load_llama(dir_->file("cls/model"));
  EXPECT_EQ(cls->config.head, gaft::ModelHead::kSequenceClassification);
  EXPECT_EQ(cls->config.num_labels, 2);
}

TEST_F(Train, ResumeIsExact) {
  // 6 steps at once vs 3 steps, stop, resume for 3 more: identical weights (rollouts included).
  const std::string extra = "gate: {mode: uncertainty}\nabstention: {delta: 0.3}\n";
  const auto whole = run_gaft("train --config " + config("whole", "gaft", extra) + " train.max_steps=6 train.batch_size=2");
  ASSERT_EQ(whole.code, 0) << whole.out;
  expect_resume_exact(config("split", "gaft", extra), " train.batch_size=2", 3, 6, "whole", "split");
  // The metrics file continues: steps 1..3 then 4..6.
  const auto m = read_metrics(dir_->file("split/metrics.jsonl"));
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m.back()["step"].get<int64_t>(), 6);
  // keep_last: 2 checkpoints at most.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_->file("split/checkpoints"))) n += e.is_directory();
  EXPECT_LE(n, 2);
}

// Recovery rollouts (docs/method.md): with threshold 1 every example has a misaligned start (its reference,
// or else its worst rollout), so half of the K = 4 rollouts continue a forced prefix and an abstention target
// follows it; the run logs what it did and resumes exactly.
TEST_F(Train, RecoveryRolloutsRunLogAndResumeExactly) {
  const std::string extra = "recovery: {share: 0.5, threshold: 1.0, min_prefix_tokens: 1, max_prefix_tokens: 3, "
                            "target: abstention}\ngate: {mode: uncertainty}\nabstention: {delta: 0.3}\n";
  const std::string args = " rollout.num_samples=4 train.batch_size=2 train.max_steps=";
  const auto whole = run_gaft("train --config " + config("rec_whole", "gaft", extra) + args + "4");
  ASSERT_EQ(whole.code, 0) << whole.out;
  const auto m = read_metrics(dir_->file("rec_whole/metrics.jsonl"));
  ASSERT_EQ(m.size(), 4u);
  for (const auto& rec : m) {
    for (const char* key : {"loss_recovery", "recovery_from_reference", "recovery_from_rollout", "recovery_reward_mean"})
      EXPECT_TRUE(rec.contains(key)) << key;
    EXPECT_DOUBLE_EQ(rec["recovery_from_reference"].get<double>() + rec["recovery_from_rollout"].get<double>(), 1.0)
        << rec.dump();
    EXPECT_EQ(rec["recovery_rollouts"].get<int64_t>(), 2 * 2);  // 2 examples x R = 2
    EXPECT_NE(rec["loss_recovery"].get<double>(), 0.0) << rec.dump();  // the abstention targets at least
  }
  const std::string cfg = config("rec_split", "gaft", extra);
  expect_resume_exact(cfg, " rollout.num_samples=4 train.batch_size=2", 2, 4, "rec_whole", "rec_split");
  // A share that leaves fewer than 2 rollouts in a group is refused before anything runs.
  gaft_test::expect_exit(run_gaft("train --config " + cfg + args + "4 recovery.share=0.25"), 2,
                         {"recovery.share", "1 recovery and 3 plain"});
}

TEST_F(Train, BadInputsFailClearly) {
  const auto expect_fail = gaft_test::expect_exit;
  gaft_test::write_bytes(dir_->file("empty.jsonl"), "");
  expect_fail(run_gaft("train --config " + config("bad1", "sft") + " data.train=" + dir_->file("empty.jsonl")), 3,
              {"empty.jsonl", "no usable example"});
  gaft_test::write_bytes(dir_->file("broken.jsonl"), "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\",\n");
  expect_fail(run_gaft("train --config " + config("bad2", "sft") + " data.train=" + dir_->file("broken.jsonl")), 3,
              {"broken.jsonl:2", "not valid JSON"});
  expect_fail(run_gaft("train --config " + config("bad3", "sft") + " data.max_prompt_tokens=2 data.too_long=drop"), 3,
              {"no usable example", "too long"});
  // A causal LM given as a classifier head.
  const std::string not_cls = config("bad4", "gaft") ;
  std::string y = gaft_test::read_bytes(not_cls);
  y.replace(y.find(dir_->file("scorer")), dir_->file("scorer").size(), kModel);
  gaft_test::write_bytes(not_cls, y);
  expect_fail(run_gaft("train --config " + not_cls), 3, {"scorer.heads.0.path", "no sequence-classification head"});
  const std::string llama2 = std::string(GAFT_SHARED_DIR) + "/tokenizers/llama2/tokenizer.model";
  expect_fail(run_gaft("train --config " + config("bad5", "sft") + " tokenizer.path=" + llama2), 3,
              {"32000 tokens", "vocab_size is 512"});
  // An output directory that cannot be created (a path through a regular file; root ignores modes).
  gaft_test::write_bytes(dir_->file("a_file"), "x");
  expect_fail(run_gaft("train --config " + config("bad6", "sft") + " run.output_dir=" + dir_->file("a_file") + "/out"), 3,
              {"cannot create directory", "a_file/out"});
  // The config is checked before anything runs.
  expect_fail(run_gaft("train --config " + config("bad7", "sft") + " optimizer.lr=-1"), 2, {"optimizer.lr"});
}

TEST_F(Train, LearnedGateDecidesWhichPromptsAreRolledOut) {
  // epsilon 1: every prediction is below it; without exploration nothing is rolled out (plain SFT).
  const auto none = run_gaft("train --config " +
                             config("learned0", "gaft", "gate: {mode: learned, epsilon: 1.0, exploration: 0.0}\n") +
                             " train.max_steps=3");
  ASSERT_EQ(none.code, 0) << none.out;
  for (const auto& rec : read_metrics(dir_->file("learned0/metrics.jsonl"))) {
    EXPECT_DOUBLE_EQ(rec["rollout_skipped"].get<double>(), 1.0);
    EXPECT_EQ(rec["rollout_tokens"].get<int64_t>(), 0);
    EXPECT_DOUBLE_EQ(rec["loss_pg"].get<double>(), 0.0);
  }
  // epsilon 0: everything is rolled out, and the gate model's weights are checkpointed.
  const auto all = run_gaft("train --config " +
                            config("learned1", "gaft", "gate: {mode: learned, epsilon: 0.0}\n") + " train.max_steps=3");
  ASSERT_EQ(all.code, 0) << all.out;
  for (const auto& rec : read_metrics(dir_->file("learned1/metrics.jsonl")))
    EXPECT_DOUBLE_EQ(rec["rollout_skipped"].get<double>(), 0.0);
  const auto state = nlohmann::json::parse(
      gaft_test::read_bytes(dir_->file("learned1/checkpoints/step-00000003/trainer_state.json")));
  ASSERT_EQ(state["learned_gate"].size(), 4u);
  EXPECT_NE(state["learned_gate"][0].get<double>(), 0.0);
}

TEST_F(Train, KlToTheInitialWeights) {
  const auto r = run_gaft("train --config " + config("kl", "gaft") +
                          " train.max_steps=4 objective.kl=reward objective.kl_beta=0.1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m = read_metrics(dir_->file("kl/metrics.jsonl"));
  ASSERT_EQ(m.size(), 4u);
  EXPECT_NEAR(m[0]["kl"].get<double>(), 0.0, 1e-5);  // the policy is the reference before the first update
  EXPECT_GT(std::abs(m[3]["kl"].get<double>()), 1e-4);
}

TEST_F(Train, GradientAccumulationEqualsOneBigBatch) {
  // AdamW's eps = 1 keeps the update proportional to the gradient (with the default eps, Adam turns
  // float-rounding differences of near-zero gradients into lr-sized steps); the exact per-gradient check
  // is Objective.MicroBatchesWithGlobalCountsSumToTheBatch.
  for (const char* norm : {"sequence", "token"}) {
    const std::string n = norm;
    const auto big = run_gaft("train --config " + config("acc1" + n, "sft") +
                              " train.max_steps=3 train.batch_size=4 data.bucket_by_length=false optimizer.eps=1 objective.sft_norm=" + n);
    ASSERT_EQ(big.code, 0) << big.out;
    const auto split = run_gaft("train --config " + config("acc2" + n, "sft") +
                                " train.max_steps=3 train.batch_size=2 train.grad_accum_steps=2 data.bucket_by_length=false "
                                "optimizer.eps=1 objective.sft_norm=" + n);
    ASSERT_EQ(split.code, 0) << split.out;
    const gaft::Checkpoint a = gaft::load_checkpoint(dir_->file("acc1" + n + "/model"));
    const gaft::Checkpoint b = gaft::load_checkpoint(dir_->file("acc2" + n + "/model"));
    for (const auto& [name, t] : a.tensors)
      EXPECT_LE((t - b.tensors.at(name)).abs().max().item<double>(), 1e-7) << norm << " " << name;
  }
}

TEST_F(Train, NonFiniteStepsAreSkippedThenStop) {
  // An absurd learning rate: the first update overflows the weights, every later loss is NaN.
  const auto r = run_gaft("train --config " + config("nan", "sft") +
                          " optimizer.lr=1e30 optimizer.grad_clip=0 train.max_nonfinite_steps=2 checkpoint.every_steps=1");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("non-finite"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step skipped"), std::string::npos) << r.out;
  // No model and no checkpoint with NaN weights was written.
  EXPECT_FALSE(std::filesystem::exists(dir_->file("nan/model")));
  if (std::filesystem::exists(dir_->file("nan/checkpoints")))
    for (const auto& e : std::filesystem::directory_iterator(dir_->file("nan/checkpoints"))) {
      const gaft::Checkpoint c = gaft::load_checkpoint(e.path().string() + "/model");
      for (const auto& [name, t] : c.tensors) EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << name;
    }
}

TEST_F(Train, LoraTrainsOnlyTheAdaptersAndWritesAPeftFolder) {
  const auto r = run_gaft("train --config " +
                          config("lora", "sft", "lora: {enabled: true, rank: 4, alpha: 8, dropout: 0.1}\n") +
                          " optimizer.lr=0.01 checkpoint.every_steps=10");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LoRA: rank 4"), std::string::npos) << r.out;
  const auto m = read_metrics(dir_->file("lora/metrics.jsonl"));
  ASSERT_EQ(m.size(), 20u);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.8 * m.front()["loss"].get<double>());
  // The run's model and its checkpoints are PEFT adapter folders (no full copy of the base).
  for (const std::string sub : {"lora/model", "lora/checkpoints/step-00000010/model"}) {
    EXPECT_TRUE(gaft::is_adapter_dir(dir_->file(sub))) << sub;
    EXPECT_FALSE(std::filesystem::exists(dir_->file(sub + "/model.safetensors"))) << sub;
  }
  const gaft::Checkpoint ad = gaft::load_checkpoint(dir_->file("lora/model/adapter_model.safetensors"));
  EXPECT_EQ(ad.tensors.size(), 5u * 7u * 2u);
  EXPECT_GT(ad.tensors.at("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").abs().max().item<double>(), 0.0);
  // The trained policy = base + adapter, as gaft loads it (merged) and as the adapter applied by hand.
  gaft::Llama merged = gaft::load_llama(dir_->file("lora/model"));
  gaft::Llama base = gaft::load_llama(kModel);
  gaft::load_adapter(*base, dir_->file("lora/model"));
  const at::Tensor ids = at::arange(1, 21).view({2, 10});
  torch::NoGradGuard no_grad;
  const at::Tensor a = merged->logits(merged->forward(ids)), b = base->logits(base->forward(ids));
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-4);
  gaft::AdaptersDisabled off(*base);
  EXPECT_GT((base->logits(base->forward(ids)) - b).abs().max().item<double>(), 1e-3) << "the adapter did not train";
  // gaft export --merge writes a full folder; a mismatched resume is refused.
  const auto ex = run_gaft("export --merge " + dir_->file("lora/model") + " --out " + dir_->file("lora_merged") + " --dtype bfloat16");
  ASSERT_EQ(ex.code, 0) << ex.out;
  gaft::Llama exported = gaft::load_llama(dir_->file("lora_merged"));
  EXPECT_EQ(exported->config.raw.value("torch_dtype", ""), "bfloat16");
  EXPECT_LT((exported->logits(exported->forward(ids)).to(at::kFloat) - a).abs().max().item<double>(),
            0.02 * a.abs().max().item<double>());  // bf16 weights
  const auto bad = run_gaft("train --config " + dir_->file("lora.yaml") + " lora.enabled=false train.max_steps=30");
  EXPECT_EQ(bad.code, 3) << bad.out;
  EXPECT_NE(bad.out.find("holds a LoRA adapter, but lora.enabled is false"), std::string::npos) << bad.out;
}

TEST_F(Train, LoraResumeIsExactAndTheKlReferenceIsTheBase) {
  // With adapter dropout (masks from each micro-batch's seed). KL against the base: zero at the first step
  // (B = 0, so policy = base), then growing as the adapters train; without the adapters switched off for the
  // reference forward it would stay 0.
  const std::string extra = "lora: {enabled: true, rank: 2, alpha: 4, dropout: 0.1}\ngate: {mode: fixed, g0: 0.5}\n";
  const std::string kl = " objective.kl=loss objective.kl_beta=0.1 optimizer.lr=0.01";
  const auto whole = run_gaft("train --config " + config("lwhole", "gaft", extra) + kl + " train.max_steps=6 train.batch_size=2");
  ASSERT_EQ(whole.code, 0) << whole.out;
  const auto m = read_metrics(dir_->file("lwhole/metrics.jsonl"));
  ASSERT_EQ(m.size(), 6u);
  EXPECT_NEAR(m.front()["kl"].get<double>(), 0.0, 1e-6) << m.front().dump();
  EXPECT_GT(std::abs(m.back()["kl"].get<double>()), 1e-6) << m.back().dump();
  expect_resume_exact(config("lsplit", "gaft", extra), kl + " train.batch_size=2", 3, 6, "lwhole", "lsplit",
                      "model/adapter_model.safetensors");
}

namespace {

std::vector<double> tiny_scores(const std::string& scorer_dir, const std::vector<std::string>& prompts,
                                const std::vector<std::string>& responses) {
  gaft::ScorerSection ss;
  ss.heads.push_back(gaft::ScorerHead{});
  ss.heads[0].name = "safety";
  ss.heads[0].path = scorer_dir;
  gaft::Scorer scorer = gaft::Scorer::load(ss, at::kCPU, at::kFloat);
  const at::Tensor a = scorer.score(prompts, responses).combined.to(at::kDouble).contiguous();
  return std::vector<double>(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
}

}  // namespace

TEST_F(Train, FilterBaselineScoresEachReferenceOnceThenTrainsSft) {
  // The tiny scorer's own scores of the 4 references; delta between the 2nd and 3rd lowest: the two below it
  // get the abstention template (or are dropped), the others are kept, as filter.jsonl records.
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily went to", "Tom had a red"};
  const std::vector<std::string> responses = {"there was a girl.", "ran to the park.", "the big store.", "ball and a car."};
  const std::vector<double> s = tiny_scores(dir_->file("scorer"), prompts, responses);
  std::vector<double> sorted = s;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_LT(sorted[1], sorted[2]);
  const double delta = (sorted[1] + sorted[2]) / 2;
  const std::string heads = "scorer: {heads: [{name: safety, path: " + dir_->file("scorer") + "}]}\n";
  for (const bool abstain : {true, false}) {
    const std::string name = abstain ? "filter_abstain" : "filter_drop";
    const auto r = run_gaft("train --config " + config(name, "filter", heads) + " train.max_steps=6 abstention.delta=" +
                            std::to_string(delta) + " abstention.enabled=" + (abstain ? "true" : "false"));
    ASSERT_EQ(r.code, 0) << r.out;
    std::ifstream in(dir_->file(name + "/filter.jsonl"));
    std::vector<nlohmann::json> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(rows.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(rows[i]["line"].get<int64_t>(), static_cast<int64_t>(i + 1));
      EXPECT_NEAR(rows[i]["score"].get<double>(), s[i], 1e-5);
      EXPECT_NEAR(rows[i]["scores"]["safety"].get<double>(), s[i], 1e-5);
      const std::string expected = s[i] >= delta ? "keep" : abstain ? "abstain:safety" : "drop";
      EXPECT_EQ(rows[i]["action"].get<std::string>(), expected) << i;
    }
    EXPECT_NE(r.out.find(abstain ? "2 replaced by an abstention, 0 dropped, 4 examples left"
                                 : "0 replaced by an abstention, 2 dropped, 2 examples left"),
              std::string::npos)
        << r.out;
    // Plain SFT afterwards: no rollouts, no policy-gradient term.
    const auto m = read_metrics(dir_->file(name + "/metrics.jsonl"));
    ASSERT_EQ(m.size(), 6u);
    EXPECT_DOUBLE_EQ(m.back()["loss_pg"].get<double>(), 0.0);
    EXPECT_FALSE(m.back().contains("rollout_tokens"));
    // The model records the head it was filtered by.
    const auto rec = nlohmann::json::parse(gaft_test::read_bytes(dir_->file(name + "/model/gaft_training.json")));
    EXPECT_EQ(rec["objective"], "filter");
    ASSERT_EQ(rec["scorers"].size(), 1u);
    EXPECT_EQ(rec["scorers"][0]["sha256"].get<std::string>(), gaft::weights_sha256(dir_->file("scorer")));
  }
  // Every reference below delta and nothing to abstain with: a clear error, not an empty run.
  const auto r = run_gaft("train --config " + config("filter_all", "filter", heads) +
                          " abstention.delta=1.0 abstention.enabled=false");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("the filter dropped every example"), std::string::npos) << r.out;
}

TEST_F(Train, SftWithKlIsHeldNearTheStart) {
  // sft + KL (kl: loss): KL 0 before the first update, then positive; a large beta keeps the policy nearer the
  // start than a small one.
  double last[2];
  for (int i = 0; i < 2; ++i) {
    const std::string name = i ? "sft_kl_big" : "sft_kl_small";
    const auto r = run_gaft("train --config " + config(name, "sft") + " train.max_steps=10 objective.kl=loss objective.kl_beta=" +
                            (i ? "5" : "0.001"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto m = read_metrics(dir_->file(name + "/metrics.jsonl"));
    ASSERT_EQ(m.size(), 10u);
    EXPECT_NEAR(m[0]["kl"].get<double>(), 0.0, 1e-6);
    EXPECT_GT(m[9]["kl"].get<double>(), 1e-4);
    last[i] = m[9]["kl"].get<double>();
  }
  EXPECT_LT(last[1], 0.5 * last[0]);
  // KL as reward shaping needs rollouts: refused for sft, naming the key.
  const auto bad = run_gaft("train --config " + config("sft_kl_reward", "sft") + " objective.kl=reward objective.kl_beta=0.1");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("objective.kl: kl 'reward' shapes rollout rewards"), std::string::npos) << bad.out;
}

TEST_F(Train, MixingAddsItsShareToEveryEpoch) {
  std::ofstream mix(dir_->file("mix.jsonl"));
  mix << nlohmann::json{{"prompt", "Tell me a secret"}, {"response", "I can't help with that request."}}.dump() << "\n"
      << nlohmann::json{{"prompt", "Who is Zorp?"}, {"response", "I don't know."}}.dump() << "\n";
  mix.close();
  const auto r = run_gaft("train --config " + config("mixed", "sft") + " data.mix=" + dir_->file("mix.jsonl") +
                          " data.mix_share=0.5 train.epochs=1 train.max_steps=0");
  ASSERT_EQ(r.code, 0) << r.out;
  // 4 own examples, share 0.5: 4 mixed in per epoch, so one epoch of batch 4 is 2 steps.
  EXPECT_NE(r.out.find("data.mix: 4 examples per epoch drawn from the 2 of"), std::string::npos) << r.out;
  EXPECT_EQ(read_metrics(dir_->file("mixed/metrics.jsonl")).size(), 2u);
}

TEST_F(Train, EvalWarnsWhenAJudgeIsAHeadTheModelWasTrainedAgainst) {
  const auto r = run_gaft("train --config " + config("trained_against", "gaft") + " train.max_steps=2");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string model = dir_->file("trained_against/model");
  const auto rec = nlohmann::json::parse(gaft_test::read_bytes(model + "/gaft_training.json"));
  EXPECT_EQ(rec["objective"], "gaft");
  EXPECT_EQ(rec["scorers"][0]["name"], "safety");
  EXPECT_EQ(rec["scorers"][0]["sha256"].get<std::string>(), gaft::weights_sha256(dir_->file("scorer")));
  // A copy of the scorer under another path is still the same head (the weights decide); another head is not.
  std::filesystem::copy(dir_->file("scorer"), dir_->file("scorer_copy"), std::filesystem::copy_options::recursive);
  gaft_test::save_tiny_classifier(kModel, dir_->file("other_scorer"), 99);
  gaft_test::write_bytes(dir_->file("suite.jsonl"), "{\"kind\": \"harmful\", \"prompt\": \"Tell me a secret\"}\n");
  for (const bool same : {true, false}) {
    const std::string out = dir_->file(same ? "judged_same" : "judged_other");
    const std::string eval_cfg = dir_->file(same ? "judge_same.yaml" : "judge_other.yaml");
    gaft_test::write_bytes(eval_cfg, "run: {output_dir: " + out + ", threads: 1}\n"
                                     "scorer: {heads: [{name: guard, path: " + dir_->file(same ? "scorer_copy" : "other_scorer") + "}]}\n"
                                     "generation: {max_new_tokens: 4}\n"
                                     "suites: [{path: " + dir_->file("suite.jsonl") + "}]\n");
    const auto e = run_gaft("eval --config " + eval_cfg + " --model trained=" + model + " --model base=" + kModel);
    ASSERT_EQ(e.code, 0) << e.out;
    const auto report = nlohmann::json::parse(gaft_test::read_bytes(out + "/report.json"));
    EXPECT_EQ(report["models"][0]["trained_against"], same ? nlohmann::json({"guard"}) : nlohmann::json::array());
    EXPECT_EQ(report["models"][1]["trained_against"], nlohmann::json::array());
    EXPECT_EQ(e.out.find("model 'trained' was trained against the judge 'guard'") != std::string::npos, same) << e.out;
    EXPECT_EQ(gaft_test::read_bytes(out + "/report.md").find("**Warning:** trained was trained against") != std::string::npos, same);
  }
}

// Issue 21: a resumed trainer_state.json that does not fit the run is refused, naming the file and the field
// (before: batch_in_epoch past the end or a dataset that shrank crashed, a negative step trained 106 steps, a
// huge one saved an untrained "final" model).
TEST_F(Train, ResumeRefusesAStateThatDoesNotFitTheRun) {
  const std::string cfg = config("rstate", "sft") + " checkpoint.every_steps=1 checkpoint.keep_last=1";
  ASSERT_EQ(run_gaft("train --config " + cfg + " train.max_steps=1 train.batch_size=2").code, 0);
  const std::string ckpt = dir_->file("rstate/checkpoints/step-00000001");
  const std::string state_file = ckpt + "/trainer_state.json";
  const nlohmann::json good = nlohmann::json::parse(gaft_test::read_bytes(state_file));
  EXPECT_EQ(good["examples"], 4);
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"batch_in_epoch", 1000}}, "batch_in_epoch 1000 is outside the 2 batches of an epoch"},
      {{{"batch_in_epoch", -1}}, "batch_in_epoch -1 is outside"},
      {{{"step", -100}}, "step -100 is outside 0..4"},
      {{{"step", 9223372036854775807LL}}, "step 9223372036854775807 is outside"},
      {{{"epoch", -3}}, "epoch -3 is negative"},
      {{{"learned_gate", {1.0, 2.0}}}, "learned_gate has 2 weights"},
      {{{"tokens_trained", -5}}, "negative counters"},
  };
  for (const auto& [patch, message] : cases) {
    nlohmann::json s = good;
    s.update(patch);
    gaft_test::write_bytes(state_file, s.dump());
    const auto r = run_gaft("train --config " + cfg + " train.max_steps=4 train.batch_size=2 checkpoint.resume=" + ckpt, true, 120);
    EXPECT_EQ(r.code, 3) << patch << "\n" << r.out;
    EXPECT_NE(r.out.find(state_file), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << message << " not in: " << r.out;
  }
  // The data shrank since the checkpoint.
  gaft_test::write_bytes(state_file, good.dump());
  std::ofstream(dir_->file("two.jsonl")) << nlohmann::json{{"prompt", "a"}, {"response", "b"}}.dump() << "\n"
                                         << nlohmann::json{{"prompt", "c"}, {"response", "d"}}.dump() << "\n";
  const auto r = run_gaft("train --config " + cfg + " train.max_steps=4 train.batch_size=2 checkpoint.resume=" + ckpt +
                          " data.train=" + dir_->file("two.jsonl"), true, 120);
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("the checkpoint was trained on 4 examples per epoch, the data now has 2"), std::string::npos) << r.out;
  // The state as written resumes.
  EXPECT_EQ(run_gaft("train --config " + cfg + " train.max_steps=2 train.batch_size=2 checkpoint.resume=" + ckpt).code, 0);
}

// Issue 21: a run killed after writing a step's metrics but before its checkpoint resumes from the earlier
// checkpoint; metrics.jsonl then holds each step once (before: the steps after the checkpoint twice).
TEST_F(Train, ResumedMetricsHoldEachStepOnce) {
  const std::string cfg = config("rmetrics", "sft") + " checkpoint.every_steps=2 checkpoint.keep_last=3";
  ASSERT_EQ(run_gaft("train --config " + cfg + " train.max_steps=3 train.batch_size=2").code, 0);
  // As if killed before step 3's checkpoint: only step 2's remains, and a torn line ends the metrics.
  std::filesystem::remove_all(dir_->file("rmetrics/checkpoints/step-00000003"));
  std::ofstream(dir_->file("rmetrics/metrics.jsonl"), std::ios::app) << "{\"step\": 4, \"loss\": 1.";
  const auto r = run_gaft("train --config " + cfg + " train.max_steps=4 train.batch_size=2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resuming from"), std::string::npos) << r.out;
  std::vector<int64_t> steps;
  for (const auto& m : read_metrics(dir_->file("rmetrics/metrics.jsonl")))
    if (m.contains("step") && m.contains("loss")) steps.push_back(m["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
}

// A power cut must never leave a checkpoint that has its final name but not its contents: every file of
// step-N is flushed before it takes its name, then the folder step-N.tmp before it is renamed to step-N, then
// checkpoints/ after the rename (and the same for the final model folder). Seen through an LD_PRELOAD library
// that logs fsync and rename calls in order (tests/common/syscall_log.cpp).
TEST_F(Train, CheckpointFilesAndFoldersAreFlushedBeforeTheyTakeTheirNames) {
  const std::string log = dir_->file("syscalls.log");
  const std::string cfg = config("flushed", "sft") + " checkpoint.every_steps=2";
  const auto r = run_gaft("train --config " + cfg + " train.max_steps=2 train.batch_size=2", true, 0,
                          "LD_PRELOAD=" GAFT_SYSCALL_LOG_LIB " GAFT_SYSCALL_LOG=" + log);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string root = std::filesystem::canonical(dir_->file("flushed")).string();
  // The folders to check: each must be complete on disk when it takes its name.
  std::map<std::string, std::vector<std::string>> contents;  // final folder -> paths inside it (relative)
  for (const std::string final_dir : {root + "/checkpoints/step-00000002", root + "/model"}) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(final_dir))
      contents[final_dir].push_back(e.path().string().substr(final_dir.size()));
    EXPECT_GE(contents[final_dir].size(), 4u) << final_dir;
  }
  // Replays the log: a flushed path stays flushed under the names renames give it (and its contents with a
  // folder); at the rename of a checked folder every path inside must be flushed already, and its parent
  // must be flushed after.
  std::set<std::string> flushed;
  std::map<std::string, bool> renamed, parent_flushed;
  std::ifstream in(log);
  ASSERT_TRUE(in.good()) << "nothing logged: LD_PRELOAD of " GAFT_SYSCALL_LOG_LIB " did not take";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("fsync ", 0) == 0) {
      const std::string path = line.substr(6);
      flushed.insert(path);
      for (auto& [final_dir, done] : renamed)
        if (done && path == std::filesystem::path(final_dir).parent_path().string()) parent_flushed[final_dir] = true;
      continue;
    }
    ASSERT_EQ(line.rfind("rename ", 0), 0u) << line;
    const std::string rest = line.substr(7);
    const size_t sp = rest.find(' ');  // the test's paths hold no spaces
    const std::string from = rest.substr(0, sp), to = rest.substr(sp + 1);
    if (contents.count(to)) {
      for (const std::string& rel : contents[to])
        EXPECT_TRUE(flushed.count(from + rel)) << from + rel << " not flushed before " << to << " took its name";
      EXPECT_TRUE(flushed.count(from)) << "folder " << from << " not flushed before its rename";
      renamed[to] = true;
    }
    std::set<std::string> moved;
    for (const std::string& f : flushed)
      moved.insert(f == from ? to : f.rfind(from + "/", 0) == 0 ? to + f.substr(from.size()) : f);
    flushed.swap(moved);
  }
  for (const auto& [final_dir, rel] : contents) {
    EXPECT_TRUE(renamed[final_dir]) << "no rename to " << final_dir;
    EXPECT_TRUE(parent_flushed[final_dir]) << "the parent of " << final_dir << " not flushed after the rename";
  }
}
