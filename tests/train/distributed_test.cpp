// Data parallelism and preemption: launch-environment resolution (torchrun-style and Slurm variables),
// 2 Gloo processes on localhost against 1 process with the same global batch (sft and gaft), SIGTERM
// leaving a complete, resumable checkpoint, and half-written checkpoints never being read.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "common/run_gaft.h"
#include "common/tiny_scorer.h"
#include "core/test_util.h"
#include "gaft/distributed.h"
#include "gaft/sharding.h"
#include "gaft/error.h"
#include "gaft/safetensors.h"
#include "gaft/stop_signal.h"

using gaft_test::TempDir;

namespace {

gaft::Launch launch_from(const std::map<std::string, std::string>& env) {
  return gaft::resolve_launch([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST(Launch, SingleProcessWithoutLauncherVariables) {
  const gaft::Launch l = launch_from({});
  EXPECT_EQ(l.rank, 0);
  EXPECT_EQ(l.world_size, 1);
  EXPECT_EQ(l.source, "single");
}

TEST(Launch, TorchrunVariables) {
  const gaft::Launch l = launch_from(
      {{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.world_size, 8);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.master_addr, "10.0.0.7");
  EXPECT_EQ(l.master_port, 29400);
  EXPECT_EQ(l.source, "env");
  EXPECT_FALSE(l.agent_store);
  EXPECT_TRUE(launch_from({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}})
                  .agent_store);
}

TEST(Launch, SlurmVariables) {
  const gaft::Launch l = launch_from({{"SLURM_PROCID", "3"},
                                      {"SLURM_NTASKS", "4"},
                                      {"SLURM_LOCALID", "1"},
                                      {"SLURM_JOB_NODELIST", "gpu[07-08]"},
                                      {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.master_addr, "gpu07");
  EXPECT_EQ(l.master_port, 15000 + 123456 % 20000);
  EXPECT_EQ(l.source, "slurm");
  // MASTER_ADDR / MASTER_PORT win over the node list and the job id; RANK wins over Slurm.
  const gaft::Launch m = launch_from({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_NODELIST", "gpu[07-08]"},
                                      {"MASTER_ADDR", "head"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(m.master_addr, "head");
  EXPECT_EQ(m.master_port, 1234);
  const gaft::Launch t = launch_from({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(t.source, "env");
  EXPECT_EQ(t.world_size, 1);
}

TEST(Launch, BadVariablesNameTheVariable) {
  auto message = [](const std::map<std::string, std::string>& env) {
    try {
      launch_from(env);
    } catch (const gaft::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "h"}}).find("RANK='4'"), std::string::npos);
  EXPECT_NE(message({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("RANK='x'"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}}).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}).find("MASTER_PORT"),
            std::string::npos);
  EXPECT_NE(message({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}).find("SLURM_JOB_NODELIST"), std::string::npos);
}

TEST(Launch, FirstSlurmHost) {
  EXPECT_EQ(gaft::first_slurm_host("node1"), "node1");
  EXPECT_EQ(gaft::first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(gaft::first_slurm_host("gpu[07-09,12],cpu3"), "gpu07");
  EXPECT_EQ(gaft::first_slurm_host("gpu[12,07-09]"), "gpu12");
  EXPECT_EQ(gaft::first_slurm_host("rack1-n[001-004]-ib"), "rack1-n001-ib");
  EXPECT_THROW(gaft::first_slurm_host("gpu[07-09"), gaft::UsageError);
  EXPECT_THROW(gaft::first_slurm_host("gpu[]"), gaft::UsageError);
  EXPECT_THROW(gaft::first_slurm_host(""), gaft::UsageError);
}

TEST(Dist, OneProcessIsALocalNoOp) {
  gaft::Dist d(gaft::Launch{}, at::kCPU, gaft::DistOptions{});
  EXPECT_FALSE(d.active());
  EXPECT_TRUE(d.is_main());
  std::vector<at::Tensor> t = {at::ones({3})};
  d.sum(t);
  EXPECT_TRUE(at::equal(t[0], at::ones({3})));
  EXPECT_EQ(d.sum(std::vector<double>{1.5, 2}), (std::vector<double>{1.5, 2}));
  EXPECT_EQ(d.gather({1, 2}), (std::vector<double>{1, 2}));
  EXPECT_EQ(d.broadcast_string("x"), "x");
  EXPECT_DOUBLE_EQ(d.max(3), 3);
  d.barrier();
}

// Buckets follow backward's order (the last parameter first), close at the byte budget, keep one dtype, and
// split into equal slices with the padding at the end: 3 ranks over 10 elements own 4 + 4 + 2 (+2 padding).
TEST(ShardBuckets, ReverseOrderByteBudgetOneDtypeEqualSlices) {
  const std::vector<at::Tensor> params = {at::zeros({3}), at::zeros({2, 2}), at::zeros({3}), at::zeros({5}, at::kDouble),
                                          at::zeros({7})};
  const auto b = gaft::plan_shard_buckets(params, 3, 6 * 4);  // 6 floats a bucket
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].params, (std::vector<size_t>{4}));  // 7 floats: over the budget alone
  EXPECT_EQ(b[1].params, (std::vector<size_t>{3}));  // the double one
  EXPECT_EQ(b[2].params, (std::vector<size_t>{2, 1}));
  EXPECT_EQ(b[2].offsets, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(b[2].numel, 7);
  EXPECT_EQ(b[2].part, 3);  // ceil(7 / 3): 9 elements, 2 of them padding
  EXPECT_EQ(b[3].params, (std::vector<size_t>{0}));
  EXPECT_EQ(b[0].part, 3);
  EXPECT_EQ(gaft::plan_shard_buckets(params, 1, 1 << 20).front().part, 7);  // one rank: no padding
}

TEST(Dist, NcclOnCpuIsAUsageError) {
  gaft::DistOptions o;
  o.backend = gaft::DistBackend::kNccl;
  EXPECT_THROW(gaft::Dist(gaft::Launch{}, at::kCPU, o), gaft::UsageError);
}

// ---- end to end: several gaft processes on localhost ----

namespace {

const std::string kModel = gaft_test::kStories + "/hf";

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t n = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) != 0) {
    ::close(s);
    return 29577;
  }
  const int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

int read_int(const std::string& path) {
  std::ifstream in(path);
  int x = -1;
  in >> x;
  return x;
}

size_t count_lines(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kModel)) return;
    dir_ = new TempDir("dist");
    gaft_test::save_tiny_classifier(kModel, dir_->file("scorer"), 5);
    std::ofstream train(dir_->file("train.jsonl"));
    const char* prompts[] = {"Once upon a time", "The little dog", "Lily went to", "Tom had a red",
                             "The sun was", "A bird sang", "Mom said", "The cat sat"};
    const char* responses[] = {"there was a girl.", "ran to the park.", "the big store.", "ball and a car.",
                               "hot and bright.", "a happy song.", "it was time for bed.", "on the mat."};
    for (int i = 0; i < 8; ++i) train << nlohmann::json{{"prompt", prompts[i]}, {"response", responses[i]}}.dump() << "\n";
  }
  static void TearDownTestSuite() {
    if (!std::getenv("GAFT_KEEP_TEST_DIR")) delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "no shared folder";
  }

  // Global batch 4 = 2 micro-batches of 2: one process runs both, two processes one each.
  // objective "gaft_recovery": gaft with recovery rollouts (2 of K = 4 from a misaligned prefix, every example).
  static std::string config(const std::string& name, const std::string& objective, int64_t steps) {
    const std::string kind = objective == "sft" || objective == "lora" ? "sft" : "gaft";
    std::string y = "run: {output_dir: " + dir_->file(name) + ", seed: 3, threads: 1}\n"
                    "model: {path: " + kModel + "}\n"
                    "data: {train: " + dir_->file("train.jsonl") + ", max_prompt_tokens: 32, max_response_tokens: 32}\n"
                    "objective: {kind: " + kind + "}\n"
                    "train: {batch_size: 2, grad_accum_steps: 2, max_steps: " + std::to_string(steps) + "}\n"
                    "optimizer: {lr: 0.003, grad_clip: 1.0}\n"
                    "schedule: {kind: constant}\n"
                    "precision: {compute: float32}\n"
                    "logging: {every_steps: 1, progress: off}\n"
                    "checkpoint: {every_steps: 2, keep_last: 2}\n"
                    "distributed: {timeout_s: 120}\n";
    if (objective == "lora") y += "lora: {enabled: true, rank: 4, alpha: 8, dropout: 0.1}\n";
    if (objective == "gaft_recovery")
      y += "scorer: {heads: [{name: safety, path: " + dir_->file("scorer") + "}]}\n"
           "rollout: {num_samples: 4, max_new_tokens: 5, temperature: 1.0}\n"
           "recovery: {share: 0.5, threshold: 1.0, min_prefix_tokens: 1, max_prefix_tokens: 3}\n"
           "gate: {mode: uncertainty, w_m: 2, w_u: 2, tau: 1}\nabstention: {delta: 0.0}\n";
    if (objective == "gaft")
      y += "scorer: {heads: [{name: safety, path: " + dir_->file("scorer") + "}]}\n"
           "rollout: {num_samples: 3, max_new_tokens: 5, temperature: 1.0}\n"
           "gate: {mode: uncertainty, w_m: 2, w_u: 2, tau: 1}\nabstention: {delta: 0.0}\n";  // PG on every example
    const std::string path = dir_->file(name + ".yaml");
    gaft_test::write_bytes(path, y);
    return path;
  }

  // <tag>.<kind><rank>: a process's output ("log"), pid ("pid") and exit code ("rc").
  static std::string file(const std::string& tag, const char* kind, int r) {
    return dir_->file(tag + "." + kind + std::to_string(r));
  }

  // Starts `world` gaft processes in the background (with RANK / WORLD_SIZE / MASTER_* when world > 1). Each
  // writes its output, its pid and, once it has ended, its exit code (renamed into place: complete when seen).
  static void start(int world, const std::string& args, const std::string& tag) {
    const std::string port = std::to_string(free_port());
    std::string cmd;
    for (int r = 0; r < world; ++r) {
      const std::string env = world == 1 ? "" : "RANK=" + std::to_string(r) + " WORLD_SIZE=" + std::to_string(world) +
                                                    " LOCAL_RANK=" + std::to_string(r) +
                                                    " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " ";
      const std::string rc = file(tag, "rc", r);
      cmd += "(" + env + "OMP_NUM_THREADS=1 " + gaft_test::gaft_bin() + " " + args + " > " + file(tag, "log", r) +
             " 2>&1 & echo $! > " + file(tag, "pid", r) + "; wait $!; echo $? > " + rc + ".tmp; mv " + rc + ".tmp " +
             rc + ") & ";
    }
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  // Process r's exit code once it has ended (-1 if it has not within `seconds`).
  static int exit_code(const std::string& tag, int r, int seconds = 600) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!std::filesystem::exists(file(tag, "rc", r)) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return read_int(file(tag, "rc", r));
  }

  // Runs `world` gaft processes to the end; returns their exit codes.
  static std::vector<int> launch(int world, const std::string& args, const std::string& tag) {
    start(world, args, tag);
    std::vector<int> codes;
    for (int r = 0; r < world; ++r) codes.push_back(exit_code(tag, r));
    return codes;
  }

  static std::string log(const std::string& tag, int r) { return gaft_test::read_bytes(file(tag, "log", r)); }

  static void expect_same_weights(const std::string& a, const std::string& b, double tol) {
    const auto ta = gaft::load_checkpoint(a).tensors, tb = gaft::load_checkpoint(b).tensors;
    ASSERT_EQ(ta.size(), tb.size());
    double worst = 0;
    for (const auto& [name, t] : ta) {
      ASSERT_TRUE(tb.count(name)) << name;
      worst = std::max(worst, (t.to(at::kDouble) - tb.at(name).to(at::kDouble)).abs().max().item<double>());
    }
    EXPECT_LE(worst, tol) << a << " vs " << b;
    // The runs did train: the weights moved away from the start.
    const auto t0 = gaft::load_checkpoint(kModel).tensors;
    double moved = 0;
    for (const auto& [name, t] : ta)
      if (t0.count(name)) moved = std::max(moved, (t.to(at::kDouble) - t0.at(name).to(at::kDouble)).abs().max().item<double>());
      else if (name.find("lora_B") != std::string::npos) moved = std::max(moved, t.abs().max().item<double>());  // from 0
    EXPECT_GT(moved, 1e-4);
  }

  static TempDir* dir_;
};
TempDir* DataParallel::dir_ = nullptr;

}  // namespace

TEST_F(DataParallel, TwoProcessesEqualOneWithTheSameGlobalBatch) {
  for (const std::string objective : {"sft", "gaft", "gaft_recovery"}) {
    SCOPED_TRACE(objective);
    const auto one = launch(1, "train --config " + config(objective + "_one", objective, 4), objective + "_one");
    ASSERT_EQ(one[0], 0) << log(objective + "_one", 0);
    const auto two = launch(2, "train --config " + config(objective + "_two", objective, 4), objective + "_two");
    ASSERT_EQ(two[0], 0) << log(objective + "_two", 0);
    ASSERT_EQ(two[1], 0) << log(objective + "_two", 1);
    EXPECT_NE(log(objective + "_two", 0).find("2 ranks (gloo)"), std::string::npos) << log(objective + "_two", 0);
    expect_same_weights(dir_->file(objective + "_one/model"), dir_->file(objective + "_two/model"), 1e-6);
    // Rank 0 alone writes metrics, one line per step, with the whole job's example count.
    const std::string metrics = dir_->file(objective + "_two/metrics.jsonl");
    EXPECT_EQ(count_lines(metrics), 4u);
    std::ifstream in(metrics);
    std::string first;
    std::getline(in, first);
    const auto rec = nlohmann::json::parse(first);
    std::ifstream in1(dir_->file(objective + "_one/metrics.jsonl"));
    std::string first1;
    std::getline(in1, first1);
    const auto rec1 = nlohmann::json::parse(first1);
    EXPECT_EQ(rec["tokens"], rec1["tokens"]);
    EXPECT_NEAR(rec["loss"].get<double>(), rec1["loss"].get<double>(), 1e-6);
    if (objective != "sft") EXPECT_NEAR(rec["gate_mean"].get<double>(), rec1["gate_mean"].get<double>(), 1e-6);
    // Every rank saved its RNG state in the checkpoints.
    EXPECT_TRUE(std::filesystem::exists(dir_->file(objective + "_two/checkpoints/step-00000004/rng-rank-00001.json")));
  }
}

// distributed.sharding (ZeRO-1 "optimizer", ZeRO-2 "gradients", ZeRO-3 "full") trains the weights of one unsharded process
// with the same global batch (6 micro-batches of 1: 3 per rank with 2 ranks, 2 per rank with 3, whose slices
// are uneven), for full fine-tuning under sft and gaft and for LoRA adapters. Not bitwise: the gradient sums
// over ranks and the clipping norm over slices round differently, and AdamW amplifies that on near-zero
// gradients. Measured after 3 steps (lr 3e-3): largest element difference 2.0e-6 to 6.1e-6, largest
// per-tensor ||a - b|| / ||a|| 2.9e-7 to 1.2e-6 (LoRA adapters 2.6e-6 to 4.5e-6); unsharded data parallelism
// with the same batch deviates from one process as much (3.0e-6 with 2 ranks, 3.8e-6 with 3); from it, ZeRO-1
// with 2 ranks by 8e-7 and ZeRO-2 (which sums each micro-batch over the ranks first) by 4.1e-6.
TEST_F(DataParallel, EveryShardingLevelTrainsWhatOneProcessTrains) {
  const std::string batch = " train.batch_size=1 train.grad_accum_steps=6 distributed.bucket_mb=0.05";
  for (const std::string objective : {"sft", "gaft", "lora"}) {
    SCOPED_TRACE(objective);
    const std::string one = objective + "_s1";
    ASSERT_EQ(launch(1, "train --config " + config(one, objective, 3) + batch, one), std::vector<int>{0}) << log(one, 0);
    for (const auto& [world, level] : std::vector<std::pair<int, std::string>>{
             {2, "optimizer"}, {3, "gradients"}, {3, "optimizer"}, {2, "gradients"}, {2, "full"}, {3, "full"}}) {
      if (objective != "sft" && level != "full" && (world + (level == "optimizer")) % 2 == 0) continue;  // sft: all
      const std::string name = objective + "_" + level + std::to_string(world);
      SCOPED_TRACE(name);
      const auto codes = launch(world, "train --config " + config(name, objective, 3) + batch + " distributed.sharding=" + level, name);
      for (int r = 0; r < world; ++r) ASSERT_EQ(codes[static_cast<size_t>(r)], 0) << log(name, r);
      // LoRA under full: the base stays whole, the adapters are sharded as under gradients.
      const std::string shown = objective == "lora" && level == "full" ? "gradients" : level;
      EXPECT_NE(log(name, 0).find("sharding: " + shown), std::string::npos) << log(name, 0);
      const std::string model = objective == "lora" ? "/model/adapter_model.safetensors" : "/model";
      expect_same_weights(dir_->file(one + model), dir_->file(name + model), 1e-5);
      // Each rank saved its slice of the AdamW state.
      for (int r = 0; r < world; ++r)
        EXPECT_TRUE(std::filesystem::exists(dir_->file(name + "/checkpoints/step-00000003/" + gaft::sharded_optimizer_file(r))));
    }
  }
}

// A sharded run stopped at step 2 and resumed with the same ranks ends with the weights of the run that went
// through, bit for bit; a different number of ranks, or no sharding, is refused with both settings named.
TEST_F(DataParallel, ShardedRunResumesExactlyAndRefusesAnotherWorldSize) {
  // `tag`_whole runs 4 steps; `tag`_split stops after 2 and resumes (between the two, `between` runs).
  const auto split_equals_whole = [](const std::string& tag, const std::string& objective, const std::string& level,
                                     const std::function<void(const std::string& cfg, const std::string& args)>& between) {
    SCOPED_TRACE(tag);
    const std::string args = " train.batch_size=1 train.grad_accum_steps=6 distributed.sharding=" + level;
    ASSERT_EQ(launch(2, "train --config " + config(tag + "_whole", objective, 4) + args, tag + "_whole"),
              (std::vector<int>{0, 0}))
        << log(tag + "_whole", 0);
    const std::string cfg = config(tag + "_split", objective, 4);
    ASSERT_EQ(launch(2, "train --config " + cfg + args + " train.max_steps=2", tag + "_half"), (std::vector<int>{0, 0}))
        << log(tag + "_half", 0);
    if (between) between(cfg, args);
    ASSERT_EQ(launch(2, "train --config " + cfg + args, tag + "_rest"), (std::vector<int>{0, 0})) << log(tag + "_rest", 0);
    EXPECT_NE(log(tag + "_rest", 0).find("resuming from"), std::string::npos) << log(tag + "_rest", 0);
    const std::string model = objective == "lora" ? "/model/adapter_model.safetensors" : "/model";
    expect_same_weights(dir_->file(tag + "_whole" + model), dir_->file(tag + "_split" + model), 0.0);
  };
  // sharding full: the weights are sharded too, and the resumed run gathers them from its checkpoint.
  split_equals_whole("zf", "gaft", "full", nullptr);
  // LoRA adapters under optimizer (ZeRO-1): their slices resume too.
  split_equals_whole("zl", "lora", "optimizer", nullptr);
  split_equals_whole("zr", "gaft", "gradients", [](const std::string& cfg, const std::string& args) {
    // Another world size: refused before any step, naming both.
    auto codes = launch(3, "train --config " + cfg + args, "zr_three");
    EXPECT_NE(codes[0], 0);
    EXPECT_NE(log("zr_three", 0).find("sharded over 2 ranks; this job has 3"), std::string::npos) << log("zr_three", 0);
    // No sharding: refused, naming the sharding the checkpoint holds.
    codes = launch(2, "train --config " + cfg + " train.batch_size=1 train.grad_accum_steps=6", "zr_none");
    EXPECT_NE(codes[0], 0);
    EXPECT_NE(log("zr_none", 0).find("sharded over 2 ranks (distributed.sharding: gradients)"), std::string::npos)
        << log("zr_none", 0);
  });
}

// Under sharding full a micro-batch that trains nothing (here: gate 1 drops every reference, and 2 rollouts of
// one token often score alike, which leaves no advantage) runs no forward through the layers; its rank
// replays the gathers and sends zeros, so that the collectives of the ranks that did train still match. The
// run ends with one process's weights: within 2e-5, as unsharded data parallelism (measured 1.04e-5 against
// 9.8e-6 for unsharded; the gradients are ~1e-3 here, where AdamW's normalisation amplifies rounding).
TEST_F(DataParallel, ShardingFullReplaysTheCollectivesOfAMicroBatchThatTrainedNothing) {
  const std::string args = " train.batch_size=1 train.grad_accum_steps=6 gate.mode=fixed gate.g0=1 "
                           "gate.sft_coefficient=complement rollout.num_samples=2 rollout.max_new_tokens=1";
  ASSERT_EQ(launch(1, "train --config " + config("zn_one", "gaft", 3) + args, "zn_one"), std::vector<int>{0});
  const auto codes = launch(2, "train --config " + config("zn_full", "gaft", 3) + args +
                                   " distributed.sharding=full logging.level=debug", "zn_full");
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << log("zn_full", 0) << log("zn_full", 1);
  // Rank 0 ran 9 micro-batches; some trained nothing, some did.
  const std::string out = log("zn_full", 0);
  size_t replays = 0;
  for (size_t at = out.find("ran no forward"); at != std::string::npos; at = out.find("ran no forward", at + 1)) ++replays;
  EXPECT_GT(replays, 0u) << out;
  EXPECT_LT(replays, 9u) << out;
  expect_same_weights(dir_->file("zn_one/model"), dir_->file("zn_full/model"), 2e-5);
}

// Every rank must run the same number of micro-batches under sharding (each backward ends in collectives).
TEST_F(DataParallel, ShardingRefusesMicroBatchesThatDoNotDivideAmongTheRanks) {
  const auto codes = launch(2, "train --config " + config("zr_uneven", "sft", 2) +
                                   " train.batch_size=1 train.grad_accum_steps=3 distributed.sharding=optimizer", "zr_uneven");
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(codes[static_cast<size_t>(r)], 0);
    EXPECT_NE(log("zr_uneven", r).find("needs train.grad_accum_steps (3) to be a multiple of the 2 ranks"), std::string::npos)
        << log("zr_uneven", r);
  }
}

// The sharded code path with one process (as scripts/gpu_check.sh runs it on one GPU) equals unsharded AdamW
// bit for bit when no clipping intervenes: the slices' fused AdamW is the same arithmetic.
TEST_F(DataParallel, ShardedPathWithOneProcessEqualsUnshardedAdamWBitwise) {
  // Checkpointing on in both, as full turns it on (the recomputation is the same arithmetic either way).
  const std::string args = " optimizer.grad_clip=0 train.batch_size=1 train.grad_accum_steps=2 model.gradient_checkpointing=true";
  ASSERT_EQ(launch(1, "train --config " + config("z1_none", "sft", 3) + args, "z1_none"), std::vector<int>{0});
  for (const std::string level : {"optimizer", "gradients", "full"}) {
    const std::string name = "z1_" + level;
    ASSERT_EQ(launch(1, "train --config " + config(name, "sft", 3) + args + " distributed.sharding=" + level, name),
              std::vector<int>{0})
        << log(name, 0);
    expect_same_weights(dir_->file("z1_none/model"), dir_->file(name + "/model"), 0.0);
  }
  // bf16 autocast over the fp32 weights: full gathers fp32 weights, and autocast casts each gathered layer.
  const std::string bf16 = args + " precision.compute=bfloat16";
  ASSERT_EQ(launch(1, "train --config " + config("z1_none_bf16", "sft", 3) + bf16, "z1_none_bf16"), std::vector<int>{0});
  ASSERT_EQ(launch(1, "train --config " + config("z1_full_bf16", "sft", 3) + bf16 + " distributed.sharding=full", "z1_full_bf16"),
            std::vector<int>{0})
      << log("z1_full_bf16", 0);
  expect_same_weights(dir_->file("z1_none_bf16/model"), dir_->file("z1_full_bf16/model"), 0.0);
}

// A stop while the models and data load (here: 100,000 records, seconds to tokenize) is answered once
// they are loaded: nothing to save, exit 75, so that Slurm requeues the job (before: killed, exit 143).
TEST_F(DataParallel, SigtermWhileLoadingExitsForRequeueWithNothingSaved) {
  const std::string big = dir_->file("big.jsonl");
  {
    std::ofstream out(big);
    for (int i = 0; i < 100000; ++i)
      out << R"({"prompt": "Tell me about cat number )" << i << R"(.", "response": "The cat sat on the mat."})" << "\n";
  }
  const std::string cfg = config("early", "sft", 10);
  start(1, "train --config " + cfg + " data.train=" + big, "early");
  // The resolved config is written after the handlers are installed and before the data are read.
  const std::string resolved = dir_->file("early/config.yaml");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(resolved) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(std::filesystem::exists(resolved)) << log("early", 0);
  const int pid = read_int(file("early", "pid", 0));
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const int code = exit_code("early", 0, 600);  // the data still load (minutes under AddressSanitizer)
  const std::string out = log("early", 0);
  ASSERT_EQ(code, gaft::kExitRequeue) << out;
  EXPECT_NE(out.find("received before the first step: nothing to save"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_->file("early/checkpoints/step-00000001"))) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_->file("early/model"))) << out;
}

TEST_F(DataParallel, SigtermWritesACheckpointAndTheRunResumes) {
  // A long run, stopped by SIGTERM once a few steps are logged.
  const std::string cfg = config("term", "sft", 100000);
  const std::string metrics = dir_->file("term/metrics.jsonl");
  start(1, "train --config " + cfg + " checkpoint.every_steps=0", "term");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_lines(metrics) < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(count_lines(metrics), 3u) << log("term", 0);
  const int pid = read_int(file("term", "pid", 0));
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const int code = exit_code("term", 0, 120);
  const std::string out = log("term", 0);
  ASSERT_EQ(code, gaft::kExitRequeue) << out;
  EXPECT_NE(out.find("signal 15 received"), std::string::npos) << out;

  // The checkpoint is the step the run stopped after (the last metrics line).
  const size_t steps = count_lines(metrics);
  char name[32];
  std::snprintf(name, sizeof name, "step-%08zu", steps);
  const std::string ckpt = dir_->file("term/checkpoints/") + name;
  ASSERT_TRUE(std::filesystem::exists(ckpt + "/trainer_state.json")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_->file("term/model")));

  // A writer killed before its rename leaves step-N.tmp: never read, removed by the next checkpoint.
  const std::string stale = dir_->file("term/checkpoints/step-99999999.tmp");
  std::filesystem::copy(ckpt, stale, std::filesystem::copy_options::recursive);

  // The same command resumes by itself (checkpoint.resume: auto) and finishes two steps later.
  const auto r = gaft_test::run_gaft("train --config " + cfg + " train.max_steps=" + std::to_string(steps + 2));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resuming from " + ckpt), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(dir_->file("term/model/model.safetensors")));
}

TEST_F(DataParallel, StopSignalOnOneRankStopsEveryRank) {
  const std::string cfg = config("term2", "sft", 100000);
  const std::string metrics = dir_->file("term2/metrics.jsonl");
  start(2, "train --config " + cfg + " checkpoint.every_steps=0", "term2");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_lines(metrics) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(count_lines(metrics), 2u) << log("term2", 0) << log("term2", 1);
  ASSERT_EQ(::kill(read_int(file("term2", "pid", 1)), SIGUSR1), 0);  // rank 1 only
  EXPECT_EQ(exit_code("term2", 0, 120), gaft::kExitRequeue) << log("term2", 0);
  EXPECT_EQ(exit_code("term2", 1, 120), gaft::kExitRequeue) << log("term2", 1);
  char name[32];
  std::snprintf(name, sizeof name, "step-%08zu", count_lines(metrics));
  EXPECT_TRUE(std::filesystem::exists(dir_->file("term2/checkpoints/") + name + "/rng-rank-00001.json"));
}

// SIGKILL at arbitrary moments of a run that checkpoints every step: every step-N folder left behind is
// complete (a kill during a write leaves at most a step-N.tmp folder), and the run resumes from the newest.
TEST_F(DataParallel, KillDuringCheckpointWritesNeverLeavesAnIncompleteCheckpoint) {
  const std::string cfg = config("kill", "sft", 100000);
  const std::string root = dir_->file("kill/checkpoints");
  const std::string metrics = dir_->file("kill/metrics.jsonl");
  size_t killed_at_lines = 0;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string tag = "kill" + std::to_string(round);
    start(1, "train --config " + cfg + " checkpoint.every_steps=1 checkpoint.keep_last=2", tag);
    // Wait for a few more steps than before, then kill at a moment that drifts from round to round.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (count_lines(metrics) < killed_at_lines + 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(7 * round));
    const int pid = read_int(file(tag, "pid", 0));
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    killed_at_lines = count_lines(metrics);
    size_t complete = 0;
    for (const auto& e : std::filesystem::directory_iterator(root)) {
      const std::string name = e.path().filename().string();
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) continue;  // never read
      for (const char* f : {"trainer_state.json", "optimizer.safetensors", "optimizer.json", "rng.json", "model/model.safetensors", "model/config.json"})
        EXPECT_TRUE(std::filesystem::exists(e.path() / f)) << name << " lacks " << f;
      ++complete;
    }
    EXPECT_GE(complete, 1u);
  }
  // The run continues from the newest complete checkpoint and finishes.
  const auto r = gaft_test::run_gaft("train --config " + cfg + " train.max_steps=" + std::to_string(killed_at_lines + 2));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resuming from"), std::string::npos) << r.out;
}
