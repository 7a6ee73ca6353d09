// The demo's committed base policy (data/demo_base) is what its recipe makes: scripts/make_demo_base.sh builds
// the world of seed 7 and pre-trains its random policy with configs/experiments/pretrain.yaml (about 15
// minutes on 2 cores); the result must be the committed model. Bitwise on the machine that made it; elsewhere
// floating-point summation order may differ between CPUs (MKL picks other kernels on AVX-512 than on AVX2), and
// 8000 steps amplify last-bit differences: the two must then give the same greedy answers to most of the demo's
// evaluation prompts, token for token. Measured: bitwise on the AMD EPYC (AVX2) that made the base; 361 of 458
// (78.8%) on an Intel Xeon with AVX-512 (2026-12-02). An unrelated model agrees on next to none.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/test_util.h"
#include "gaft/chat.h"
#include "gaft/evaluator.h"
#include "gaft/llama.h"
#include "gaft/safetensors.h"
#include "gaft/tokenizer.h"

namespace {

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(DemoBase, RecipeReproducesTheCommittedBase) {
  const std::string root = GAFT_SOURCE_DIR, committed = root + "/data/demo_base";
  ASSERT_TRUE(std::filesystem::exists(committed + "/model.safetensors"));
  gaft_test::TempDir dir("demo_base");
  const std::string made = dir.file("base");
  ASSERT_EQ(run("GAFT_BIN=" + std::string(GAFT_BINARY_DIR) + "/gaft GAFT_MAKE_WORLD=" + std::string(GAFT_BINARY_DIR) +
                "/make_world " + root + "/scripts/make_demo_base.sh " + made + " >" + dir.file("log.txt") + " 2>&1"),
            0)
      << gaft_test::read_bytes(dir.file("log.txt"));

  EXPECT_EQ(nlohmann::json::parse(gaft_test::read_bytes(made + "/config.json")),
            nlohmann::json::parse(gaft_test::read_bytes(committed + "/config.json")));
  const gaft::Checkpoint a = gaft::load_checkpoint(made), b = gaft::load_checkpoint(committed);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  double max_diff = 0;
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    ASSERT_EQ(t.sizes(), b.tensors.at(name).sizes()) << name;
    max_diff = std::max(max_diff, (t.to(at::kDouble) - b.tensors.at(name).to(at::kDouble)).abs().max().item<double>());
  }
  std::printf("largest weight difference to the committed base: %g\n", max_diff);
  if (max_diff == 0.0) return;  // bitwise: the same machine kind made both

  // Not bitwise (another CPU's summation order): the same behaviour on the demo's evaluation prompts.
  const gaft::Tokenizer tok = gaft::Tokenizer::load(committed);
  std::vector<std::vector<int64_t>> prompts;
  for (const char* f : {"eval_harmful", "eval_benign", "eval_qa", "eval_unknown", "eval_task"}) {
    std::ifstream in(made + ".work/data/" + std::string(f) + ".jsonl");
    for (std::string line; std::getline(in, line);)
      prompts.push_back(gaft::apply_chat_template(tok, gaft::ChatTemplate::kPlain,
                                                  {{"user", nlohmann::json::parse(line)["prompt"].get<std::string>()}}, true)
                            .ids);
  }
  ASSERT_GT(prompts.size(), 400u);
  gaft::GenerationOptions o;
  o.max_new_tokens = 24;
  o.temperature = 0;
  o.stop_tokens = {tok.eos_id()};
  torch::NoGradGuard no_grad;
  gaft::Llama ma = gaft::load_llama(made), mb = gaft::load_llama(committed);
  ma->eval();
  mb->eval();
  const auto ra = gaft::eval::generate_batched(ma, prompts, o, 64), rb = gaft::eval::generate_batched(mb, prompts, o, 64);
  size_t same = 0;
  for (size_t i = 0; i < prompts.size(); ++i) same += ra[i] == rb[i];
  EXPECT_GE(static_cast<double>(same), 0.70 * static_cast<double>(prompts.size()))
      << same << " of " << prompts.size() << " greedy answers agree";
}
