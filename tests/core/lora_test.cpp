// LoRA adapters: the projection module against its formula and torch::nn::Linear, PEFT parity on fixtures
// made by tools/make_lora_fixtures.py (an adapter trained by gaft and loaded in PEFT; adapters made by PEFT and
// loaded in gaft), merging, the PEFT folder format, and bad adapter folders.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/test_util.h"
#include "gaft/llama.h"
#include "gaft/lora.h"
#include "gaft/model_save.h"
#include "gaft/safetensors.h"
#include "gaft/tokenizer.h"

namespace fs = std::filesystem;
using gaft_test::expect_data_error;
using gaft_test::TempDir;

namespace {

const std::string kBase = gaft_test::kStories + "/hf";
const std::string kLoraData = std::string(GAFT_TEST_DATA) + "/lora";

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

at::Tensor logits_of(gaft::Llama& m, const at::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return m->logits(m->forward(ids)).to(at::kFloat);  // [B, T, V]
}

// A copy of an adapter fixture whose base_model_name_or_path is the absolute base folder.
std::string copy_adapter(const std::string& from, const TempDir& dir, const std::string& name,
                         const std::function<void(nlohmann::json&)>& edit = {}) {
  const std::string to = dir.file(name);
  fs::create_directories(to);
  for (const char* f : {"adapter_model.safetensors", "adapter_config.json"})
    fs::copy_file(fs::path(from) / f, fs::path(to) / f, fs::copy_options::overwrite_existing);
  nlohmann::json j = nlohmann::json::parse(gaft_test::read_bytes(to + "/adapter_config.json"));
  j["base_model_name_or_path"] = fs::absolute(kBase).string();
  if (edit) edit(j);
  gaft_test::write_bytes(to + "/adapter_config.json", j.dump(2));
  return to;
}

class LoraFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  }
};

}  // namespace

TEST(Lora, WithoutAdapterIsTorchLinear) {
  torch::manual_seed(5);
  torch::nn::Linear ref(torch::nn::LinearOptions(12, 7).bias(true));
  torch::manual_seed(5);
  gaft::LoraLinear proj(12, 7, true);
  EXPECT_TRUE(at::equal(ref->weight, proj->weight));
  EXPECT_TRUE(at::equal(ref->bias, proj->bias));
  const at::Tensor x = at::randn({3, 4, 12});
  EXPECT_TRUE(at::equal(ref->forward(x), proj->forward(x)));
  std::vector<std::string> names;
  for (const auto& p : proj->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias"}));
}

TEST(Lora, ForwardIsTheLowRankFormula) {
  torch::manual_seed(1);
  gaft::LoraLinear proj(10, 6, false);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  proj->add_adapter(4, 2.5, 0.0, at::kFloat, gen);
  // PEFT's initialisation: B = 0 (the adapted projection starts as the base), A within +-1/sqrt(in).
  const at::Tensor x = at::randn({2, 5, 10});
  EXPECT_TRUE(at::equal(proj->forward(x), at::linear(x, proj->weight)));
  EXPECT_LE(proj->lora_A->weight.abs().max().item<double>(), 1.0 / std::sqrt(10.0));
  EXPECT_GT(proj->lora_A->weight.abs().max().item<double>(), 0.2);
  {
    torch::NoGradGuard no_grad;
    proj->lora_B->weight.normal_();
  }
  const at::Tensor A = proj->lora_A->weight, B = proj->lora_B->weight;  // [4, 10], [6, 4]
  const at::Tensor expected = at::matmul(x, proj->weight.t()) + 2.5 * at::matmul(at::matmul(x, A.t()), B.t());
  EXPECT_LT(max_diff(proj->forward(x), expected), 1e-5);
  {
    // Only the adapter trains.
    for (auto& p : proj->parameters()) p.mutable_grad() = at::Tensor();
    proj->weight.set_requires_grad(false);
    proj->forward(x).pow(2).sum().backward();
    EXPECT_FALSE(proj->weight.grad().defined());
    EXPECT_TRUE(A.grad().defined() && B.grad().defined());
  }
  proj->enabled = false;
  EXPECT_TRUE(at::equal(proj->forward(x), at::linear(x, proj->weight)));
  proj->enabled = true;
  const at::Tensor before = proj->forward(x).detach();
  proj->merge_adapter();
  EXPECT_FALSE(proj->has_adapter());
  EXPECT_LT(max_diff(proj->forward(x), before), 1e-5);
  EXPECT_EQ(proj->named_parameters().size(), 1u);
}

TEST(Lora, DropoutOnlyInTrainingMode) {
  torch::manual_seed(2);
  gaft::LoraLinear proj(16, 16, false);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  proj->add_adapter(8, 1.0, 0.5, at::kFloat, gen);
  {
    torch::NoGradGuard no_grad;
    proj->lora_B->weight.normal_();
  }
  const at::Tensor x = at::randn({4, 16});
  proj->eval();  // rollouts and eval: the trainer switches the policy to eval mode
  const at::Tensor clean = proj->forward(x).detach();
  proj->train();
  EXPECT_FALSE(at::allclose(proj->forward(x).detach(), clean));
  torch::NoGradGuard no_grad;  // also without grad (a checkpointed layer's first forward)
  EXPECT_FALSE(at::allclose(proj->forward(x), clean));
}

TEST_P(LoraFixture, GaftMatchesPeftLogits) {
  // The fixture's logits are PEFT's (transformers + peft) for the committed adapter on the real base.
  const std::string folder = kLoraData + "/" + GetParam();
  const gaft::SafetensorsFile f(folder + "/expected.safetensors");
  const at::Tensor ids = f.get("input_ids"), expected = f.get("logits");  // [2, 12], [2, 12, 512]

  gaft::Llama base = gaft::load_llama(kBase);
  const at::Tensor base_logits = logits_of(base, ids);
  gaft::load_adapter(*base, folder);
  const at::Tensor adapted = logits_of(base, ids);
  EXPECT_LT(max_diff(adapted, expected), 1e-4);
  EXPECT_GT(max_diff(base_logits, expected), 1e-2) << "the adapter changes nothing: the test could not fail";
  {
    gaft::AdaptersDisabled off(*base);  // the reference policy: the base itself
    EXPECT_TRUE(at::equal(logits_of(base, ids), base_logits));
  }
  EXPECT_TRUE(at::equal(logits_of(base, ids), adapted));

  // The committed folder names its base relative to itself: load_llama merges the adapter in.
  gaft::Llama merged = gaft::load_llama(folder);
  EXPECT_LT(max_diff(logits_of(merged, ids), expected), 1e-4);
  EXPECT_FALSE(gaft::has_lora(*merged));

  // The fixture folders hold no tokenizer (as PEFT saves adapters): the base's is used.
  EXPECT_EQ(gaft::Tokenizer::load(folder).vocab_size(), 512);

  // gaft export --merge: a plain Hugging Face folder.
  TempDir dir("lora_export_" + GetParam());
  gaft::export_merged(folder, kBase, dir.file("merged"));
  EXPECT_TRUE(fs::exists(dir.file("merged/config.json")));
  EXPECT_TRUE(fs::exists(dir.file("merged/tokenizer.model")));  // the base's tokenizer, copied along
  gaft::Llama exported = gaft::load_llama(dir.file("merged"));
  EXPECT_LT(max_diff(logits_of(exported, ids), expected), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Peft, LoraFixture, ::testing::Values("gaft_trained", "peft_made", "peft_regex"));

// PEFT adapters on all seven projections of the tiny Gemma 2, Gemma 3 and Granite models (tests/data/model), and
// on the four fused ones of the tiny Phi-3 (qkv_proj, o_proj, gate_up_proj, down_proj): applied on the base and
// merged in by load_llama, PEFT's logits within 1e-4.
TEST(Lora, PeftAdaptersOnGemmaGraniteAndPhi3) {
  for (const std::string family : {"gemma2", "gemma3", "granite", "phi3"}) {
    SCOPED_TRACE(family);
    const std::string folder = kLoraData + "/peft_" + family;
    const gaft::SafetensorsFile f(folder + "/expected.safetensors");
    const at::Tensor ids = f.get("input_ids"), expected = f.get("logits");  // [2, 9], [2, 9, 80]
    gaft::Llama base = gaft::load_llama(gaft_test::kModelData + "/" + family);
    const at::Tensor base_logits = logits_of(base, ids);
    gaft::load_adapter(*base, folder);
    EXPECT_LT(max_diff(logits_of(base, ids), expected), 1e-4);
    EXPECT_GT(max_diff(base_logits, expected), 1e-2) << "the adapter changes nothing: the test could not fail";
    gaft::Llama merged = gaft::load_llama(folder);
    EXPECT_LT(max_diff(logits_of(merged, ids), expected), 1e-4);
  }
}

// lora.targets on a model with fused projections: q/k/v name qkv_proj and gate/up gate_up_proj, so the default
// list adapts every projection of Phi-3; half a fused group is refused (its adapter would adapt the whole group).
TEST(Lora, FusedProjectionTargets) {
  const std::vector<std::string> all = gaft::lora_target_names();
  EXPECT_EQ(gaft::resolve_lora_targets(all, false), all);
  EXPECT_EQ(gaft::resolve_lora_targets(all, true), gaft::fused_lora_target_names());
  EXPECT_EQ(gaft::resolve_lora_targets({"o_proj", "gate_up_proj"}, true), (std::vector<std::string>{"o_proj", "gate_up_proj"}));
  gaft_test::expect_usage_error([] { gaft::resolve_lora_targets({"q_proj", "v_proj"}, true); },
                                {"names q_proj, v_proj but not k_proj", "qkv_proj"});
  gaft_test::expect_usage_error([] { gaft::resolve_lora_targets({"up_proj"}, true); }, {"gate_up_proj"});
  gaft::Llama m = gaft::load_llama(gaft_test::kModelData + "/phi3");
  gaft::LoraOptions o;
  o.targets = gaft::resolve_lora_targets(o.targets, m->config.fused_projections);
  EXPECT_EQ(gaft::add_lora(*m, o, at::kFloat, 1), 4 * 2);  // 4 projections x 2 layers
  std::set<std::string> adapted;
  for (const auto& [name, p] : gaft::lora_parameters(*m)) adapted.insert(name);
  EXPECT_TRUE(adapted.count("model.layers.1.self_attn.qkv_proj.lora_B.weight"));
  EXPECT_TRUE(adapted.count("model.layers.0.mlp.gate_up_proj.lora_A.weight"));
  // gaft's own adapter on the fused modules round-trips through its PEFT folder.
  for (auto& [name, p] : gaft::lora_parameters(*m)) p.detach().normal_(0, 0.1);
  const at::Tensor ids = at::arange(3, 12, at::kLong).view({1, 9});
  const at::Tensor before = logits_of(m, ids);
  TempDir dir("lora_phi3");
  gaft::save_adapter(*m, dir.file("adapter"), o, {gaft_test::kModelData + "/phi3"});
  gaft::Llama again = gaft::load_llama(gaft_test::kModelData + "/phi3");
  gaft::load_adapter(*again, dir.file("adapter"));
  EXPECT_LT(max_diff(logits_of(again, ids), before), 1e-6);
}

TEST(Lora, PeftRegexTargetsSelectLayersAndProjections) {
  if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  gaft::Llama m = gaft::load_llama(kBase);
  gaft::load_adapter(*m, kLoraData + "/peft_regex");
  std::vector<std::string> names;
  for (const auto& [name, p] : gaft::lora_parameters(*m))
    if (name.find("lora_A") != std::string::npos) names.push_back(name.substr(0, name.find(".lora_A")));
  EXPECT_EQ(names, (std::vector<std::string>{"model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.o_proj",
                                             "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.o_proj",
                                             "model.layers.2.self_attn.k_proj", "model.layers.2.self_attn.o_proj"}));
}

TEST(Lora, PeftListTargetsMatchNameSuffixes) {
  // PEFT: an entry matches a module named so or ending in "." + entry; entries matching nothing are ignored.
  if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  TempDir dir("lora_suffix");
  const std::string folder = copy_adapter(kLoraData + "/peft_made", dir, "suffix", [](auto& j) {
    j["target_modules"] = {"self_attn.q_proj", "v_proj", "mlp.down_proj", "query_key_value"};
  });
  const gaft::SafetensorsFile f(kLoraData + "/peft_made/expected.safetensors");
  gaft::Llama m = gaft::load_llama(kBase);
  gaft::load_adapter(*m, folder);
  EXPECT_LT(max_diff(logits_of(m, f.get("input_ids")), f.get("logits")), 1e-4);
}

TEST(Lora, SavedFolderIsPeftsFormatAndLoadsBack) {
  if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  gaft::Llama m = gaft::load_llama(kBase);
  gaft::LoraOptions o;
  o.rank = 3;
  o.alpha = 6;
  o.targets = {"v_proj", "up_proj"};
  EXPECT_EQ(gaft::add_lora(*m, o, at::kFloat, 9), 10);  // 5 layers x 2 projections
  for (const auto& p : m->named_parameters())
    if (p.key().find(".lora_") == std::string::npos) EXPECT_FALSE(p.value().requires_grad()) << p.key() << " is not frozen";
  int64_t trainable = 0;
  for (auto& [name, p] : gaft::lora_parameters(*m)) {
    EXPECT_TRUE(p.requires_grad()) << name;
    torch::NoGradGuard no_grad;
    p.normal_(0, 0.1);
    trainable += p.numel();
  }
  EXPECT_EQ(trainable, 5 * (3 * 64 + 32 * 3 + 3 * 64 + 172 * 3));  // v_proj: 4 KV heads x 8
  TempDir dir("lora_save");
  gaft::SaveOptions so;
  so.tokenizer_dir = kBase;
  so.lora = o;
  so.base_model = fs::absolute(kBase).string();
  gaft::save_model(m, dir.file("adapter"), so);  // a model with adapters saves as its adapter folder
  EXPECT_FALSE(fs::exists(dir.file("adapter/config.json")));
  EXPECT_TRUE(fs::exists(dir.file("adapter/tokenizer.model")));
  const nlohmann::json cfg = nlohmann::json::parse(gaft_test::read_bytes(dir.file("adapter/adapter_config.json")));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 3);
  EXPECT_EQ(cfg["lora_alpha"], 6.0);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"v_proj", "up_proj"}));
  const gaft::Checkpoint ck = gaft::load_checkpoint(dir.file("adapter/adapter_model.safetensors"));
  EXPECT_EQ(ck.tensors.size(), 20u);
  EXPECT_TRUE(ck.tensors.count("base_model.model.model.layers.4.mlp.up_proj.lora_B.weight"));
  EXPECT_EQ(ck.tensors.at("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight").sizes().vec(),
            (std::vector<int64_t>{3, 64}));

  const at::Tensor ids = at::arange(1, 17).view({2, 8});
  gaft::Llama back = gaft::load_llama(kBase);
  gaft::load_adapter(*back, dir.file("adapter"));
  EXPECT_TRUE(at::equal(logits_of(back, ids), logits_of(m, ids)));
  gaft::Llama merged = gaft::load_llama(dir.file("adapter"));  // base found through base_model_name_or_path
  EXPECT_LT(max_diff(logits_of(merged, ids), logits_of(m, ids)), 1e-4);
  EXPECT_EQ(gaft::load_model_config(dir.file("adapter")).num_hidden_layers, 5);  // the base's config
}

TEST(Lora, CheckpointedLayersGiveTheSameAdapterGradients) {
  // Under LoRA the embeddings are frozen, so a checkpointed layer's input does not require grad.
  if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  gaft::Llama m = gaft::load_llama(kBase);
  gaft::LoraOptions o;
  o.rank = 2;
  o.dropout = 0.3;  // the recomputation must draw the forward's masks
  gaft::add_lora(*m, o, at::kFloat, 1);
  for (auto& [name, p] : gaft::lora_parameters(*m)) {
    torch::NoGradGuard no_grad;
    p.normal_(0, 0.05);
  }
  m->train();
  const at::Tensor ids = at::arange(3, 27).view({2, 12});
  std::vector<at::Tensor> grads[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    m->model->checkpoint_layers = ckpt == 1;
    for (auto& [name, p] : gaft::lora_parameters(*m)) p.mutable_grad() = at::Tensor();
    torch::manual_seed(17);
    m->logits(m->forward(ids)).log_softmax(-1).mean().backward();
    for (auto& [name, p] : gaft::lora_parameters(*m)) {
      ASSERT_TRUE(p.grad().defined()) << name << (ckpt ? " (checkpointed)" : "");
      grads[ckpt].push_back(p.grad().clone());
    }
  }
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_LT(max_diff(grads[0][i], grads[1][i]), 1e-6 * (1 + grads[0][i].abs().max().item<double>()));
  // The masks matter: another seed gives other gradients.
  for (auto& [name, p] : gaft::lora_parameters(*m)) p.mutable_grad() = at::Tensor();
  torch::manual_seed(18);
  m->logits(m->forward(ids)).log_softmax(-1).mean().backward();
  EXPECT_GT(max_diff(gaft::lora_parameters(*m)[0].second.grad(), grads[1][0]), 1e-6);
}

TEST(Lora, BadAdapterFoldersFailClearly) {
  if (!fs::exists(kBase)) GTEST_SKIP() << "no shared folder";
  TempDir dir("lora_bad");
  const std::string good = kLoraData + "/peft_made";
  auto load = [&](const std::string& folder) {
    gaft::Llama m = gaft::load_llama(kBase);
    gaft::load_adapter(*m, folder);
  };
  const std::string dora = copy_adapter(good, dir, "dora", [](auto& j) { j["use_dora"] = true; });
  expect_data_error([&] { load(dora); }, {dora + "/adapter_config.json", "'use_dora'"});
  const std::string ia3 = copy_adapter(good, dir, "ia3", [](auto& j) { j["peft_type"] = "IA3"; });
  expect_data_error([&] { load(ia3); }, {"'peft_type'", "IA3"});
  const std::string rank = copy_adapter(good, dir, "rank", [](auto& j) { j["r"] = 8; });
  expect_data_error([&] { load(rank); }, {"adapter_model.safetensors", "has shape [4, ", "(r = 8)"});
  const std::string more = copy_adapter(good, dir, "more", [](auto& j) { j["target_modules"] = {"q_proj", "k_proj", "v_proj", "down_proj"}; });
  expect_data_error([&] { load(more); }, {"missing tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight'"});
  const std::string fewer = copy_adapter(good, dir, "fewer", [](auto& j) { j["target_modules"] = {"q_proj"}; });
  expect_data_error([&] { load(fewer); }, {"unexpected tensor 'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'"});
  const std::string hub = copy_adapter(good, dir, "hub", [](auto& j) { j["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"; });
  // A hub name as base: looked up in the Hugging Face cache (here an empty one), never downloaded.
  ::setenv("HF_HUB_CACHE", dir.file("empty_cache").c_str(), 1);
  expect_data_error([&] { gaft::load_llama(hub); },
                    {"base_model_name_or_path: 'meta-llama/Llama-3.1-8B' is not a folder", "has no models--meta-llama--Llama-3.1-8B"});
  ::unsetenv("HF_HUB_CACHE");
  const std::string alora = copy_adapter(good, dir, "alora", [](auto& j) { j["alora_invocation_tokens"] = {5, 6}; });
  expect_data_error([&] { load(alora); }, {"'alora_invocation_tokens'"});
  const std::string pissa = copy_adapter(good, dir, "pissa", [](auto& j) { j["init_lora_weights"] = "pissa_niter_4"; });
  expect_data_error([&] { load(pissa); }, {"'init_lora_weights'", "changes the base weights"});
  const std::string type = copy_adapter(good, dir, "type", [](auto& j) { j["peft_type"] = 3; });
  expect_data_error([&] { load(type); }, {"'peft_type'", "expected a string"});
  fs::create_directories(dir.file("empty"));
  gaft_test::write_bytes(dir.file("empty/adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"]}");
  expect_data_error([&] { load(dir.file("empty")); }, {"no adapter_model.safetensors"});
}
