// The Llama-family decoder against Hugging Face transformers (fixtures from tools/make_model_fixtures.py):
// logits within 1e-4 in fp32, identical greedy tokens, KV cache = full forward, and load-time checks.
#include "gaft/llama.h"

#include <ATen/autocast_mode.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "gaft/generate.h"
#include "gaft/ops.h"
#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::kModelData;
using gaft_test::TempDir;

namespace {

struct Fixture {
  at::Tensor input_ids, attention_mask, expected;  // [B, T], [B, T], [B, T, V] or [B, L]
  nlohmann::json json;
};

Fixture read_fixture(const std::string& family) {
  const gaft::SafetensorsFile f(kModelData + "/" + family + "/expected.safetensors");
  Fixture x;
  x.input_ids = f.get("input_ids");
  x.attention_mask = f.get("attention_mask");
  x.expected = f.contains("logits") ? f.get("logits") : f.get("scores");
  x.json = nlohmann::json::parse(gaft_test::read_bytes(kModelData + "/" + family + "/expected.json"));
  return x;
}

double max_diff_at_tokens(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor m = mask.to(at::kBool).unsqueeze(-1);  // [B, T, 1]
  return (a - b).abs().masked_fill(~m, 0).max().item<double>();
}

class CausalParity : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(CausalParity, LogitsMatchTransformers) {
  torch::NoGradGuard no_grad;
  gaft::Llama model = gaft::load_llama(kModelData + "/" + GetParam());
  const Fixture x = read_fixture(GetParam());
  // Left-padded batch: every attended position matches.
  const at::Tensor logits = model->logits(model->forward(x.input_ids, x.attention_mask));  // [B, T, V]
  EXPECT_LE(max_diff_at_tokens(logits, x.expected, x.attention_mask), 1e-4);
  // The unpadded first row alone, without a mask (plain causal path).
  const at::Tensor row = model->logits(model->forward(x.input_ids.narrow(0, 0, 1)));
  EXPECT_LE((row - x.expected.narrow(0, 0, 1)).abs().max().item<double>(), 1e-4);
  // The shortest row alone matches its padded version.
  const int64_t n = x.attention_mask[2].sum().item<int64_t>(), T = x.input_ids.size(1);
  const at::Tensor last = model->logits(model->forward(x.input_ids.narrow(0, 2, 1).narrow(1, T - n, n)));
  EXPECT_LE((last - x.expected.narrow(0, 2, 1).narrow(1, T - n, n)).abs().max().item<double>(), 1e-4);
}

TEST_P(CausalParity, GreedyBatchMatchesTransformers) {
  gaft::Llama model = gaft::load_llama(kModelData + "/" + GetParam());
  const Fixture x = read_fixture(GetParam());
  const auto prompts = x.json["prompts"].get<std::vector<std::vector<int64_t>>>();
  const auto expected = x.json["greedy"].get<std::vector<std::vector<int64_t>>>();
  gaft::GenerationOptions o;
  o.max_new_tokens = static_cast<int64_t>(expected[0].size());
  EXPECT_EQ(gaft::generate(model, prompts, o), expected);  // one left-padded batch
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(gaft::generate(model, {prompts[i]}, o)[0], expected[i]);
  // Two samples per prompt from one prefill: both are the greedy answer.
  o.num_samples = 2;
  const auto twice = gaft::generate(model, prompts, o);
  ASSERT_EQ(twice.size(), 2 * prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(twice[2 * i], expected[i]);
    EXPECT_EQ(twice[2 * i + 1], expected[i]);
  }
  // Rows that finish early leave the batch (row 0's budget is 1): the others still decode as transformers does.
  o.num_samples = 1;
  o.max_new_tokens_per_row.assign(prompts.size(), o.max_new_tokens);
  o.max_new_tokens_per_row[0] = 1;
  const auto cut = gaft::generate(model, prompts, o);
  EXPECT_EQ(cut[0], std::vector<int64_t>(expected[0].begin(), expected[0].begin() + 1));
  for (size_t i = 1; i < prompts.size(); ++i) EXPECT_EQ(cut[i], expected[i]);
}

TEST_P(CausalParity, KVCacheMatchesFullForward) {
  torch::NoGradGuard no_grad;
  gaft::Llama model = gaft::load_llama(kModelData + "/" + GetParam());
  const Fixture x = read_fixture(GetParam());
  const int64_t T = x.input_ids.size(1);
  gaft::KVCache cache;
  // Prefill 4 tokens, then a chunk of 3, then one token at a time, with the padding mask growing.
  std::vector<at::Tensor> parts;
  for (auto [begin, len] : std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 3}, {7, 1}, {8, 1}, {9, 1}}) {
    const at::Tensor h = model->forward(x.input_ids.narrow(1, begin, len), x.attention_mask.narrow(1, 0, begin + len), &cache);
    parts.push_back(model->logits(h));
  }
  EXPECT_EQ(cache.length(), T);
  EXPECT_LE(max_diff_at_tokens(at::cat(parts, 1), x.expected, x.attention_mask), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Families, CausalParity,
                         ::testing::Values("llama", "llama3_rope", "mistral", "mistral_window", "qwen2", "qwen3",
                                           "gemma2", "gemma3", "granite", "phi3"));

// What Gemma and Granite add, each checked to matter: the same weights read as another family's (soft caps off,
// multipliers 1, one RoPE) miss the fixture's logits.
TEST(Llama, GemmaAndGraniteSpecificsMatter) {
  torch::NoGradGuard no_grad;
  for (const std::string family : {"gemma2", "gemma3", "granite"}) {
    SCOPED_TRACE(family);
    const Fixture x = read_fixture(family);
    const at::Tensor row = x.input_ids.narrow(0, 0, 1);
    const at::Tensor expected = x.expected.narrow(0, 0, 1);
    const gaft::ModelConfig c = gaft::load_model_config(kModelData + "/" + family);
    std::vector<std::pair<std::string, std::function<void(gaft::ModelConfig&)>>> changes;
    if (family == "gemma2") {
      EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, false}));
      changes = {{"attn softcap", [](gaft::ModelConfig& m) { m.attn_softcap = 0; }},
                 {"final softcap", [](gaft::ModelConfig& m) { m.final_softcap = 0; }},
                 {"window", [](gaft::ModelConfig& m) { m.sliding_window = 0; m.sliding_layers.clear(); }},
                 {"scale", [](gaft::ModelConfig& m) { m.attention_scale = 0; }}};
    } else if (family == "gemma3") {
      EXPECT_DOUBLE_EQ(c.local_rope_theta, 10000.0);
      ASSERT_TRUE(c.rope_scaling.has_value());
      EXPECT_EQ(c.rope_scaling->type, "linear");
      changes = {{"local rope", [](gaft::ModelConfig& m) { m.local_rope_theta = 0; }},
                 {"linear scaling", [](gaft::ModelConfig& m) { m.rope_scaling.reset(); }}};
    } else {
      changes = {{"embedding", [](gaft::ModelConfig& m) { m.embedding_scale = 1; }},
                 {"residual", [](gaft::ModelConfig& m) { m.residual_scale = 1; }},
                 {"attention", [](gaft::ModelConfig& m) { m.attention_scale = 0; }},
                 {"logits", [](gaft::ModelConfig& m) { m.logits_scale = 1; }}};
    }
    const auto ckpt = gaft::load_checkpoint(kModelData + "/" + family);
    for (const auto& [what, change] : changes) {
      gaft::ModelConfig other = c;
      change(other);
      gaft::Llama m(other);
      gaft::load_llama_weights(m, ckpt, family);
      EXPECT_GT((m->logits(m->forward(row)) - expected).abs().max().item<double>(), 1e-3) << what;
    }
  }
}

// Phi-3's fixture (tools/make_model_fixtures.py): fused projections, 6 of 8 features rotary, window 6, longrope
// switching at 12 tokens. A 16-token row runs on the long factors; each knob switched off misses the fixture.
TEST(Llama, Phi3LongRopeAndPartialRotary) {
  torch::NoGradGuard no_grad;
  const gaft::SafetensorsFile f(kModelData + "/phi3/expected.safetensors");
  const at::Tensor long_ids = f.get("long_input_ids"), long_expected = f.get("long_logits");  // [1, 16], [1, 16, V]
  const Fixture x = read_fixture("phi3");
  const at::Tensor row = x.input_ids.narrow(0, 0, 1), expected = x.expected.narrow(0, 0, 1);  // 10 tokens: short
  const gaft::ModelConfig c = gaft::load_model_config(kModelData + "/phi3");
  ASSERT_EQ(c.rotary_dim, 6);
  ASSERT_EQ(gaft::longrope_switch(c), 12);
  gaft::Llama model = gaft::load_llama(kModelData + "/phi3");
  EXPECT_LE((model->logits(model->forward(long_ids)) - long_expected).abs().max().item<double>(), 1e-4);
  // Rows decide for themselves: the long row beside a short one (left-padded) gives the same logits.
  const at::Tensor pair_ids = at::cat({long_ids, at::cat({at::zeros({1, 6}, at::kLong), row}, 1)});  // [2, 16]
  const at::Tensor pair_mask = at::cat({at::ones({1, 16}, at::kLong), at::cat({at::zeros({1, 6}, at::kLong), at::ones({1, 10}, at::kLong)}, 1)});
  const at::Tensor both = model->logits(model->forward(pair_ids, pair_mask));  // [2, 16, V]
  EXPECT_LE((both.narrow(0, 0, 1) - long_expected).abs().max().item<double>(), 1e-4);
  EXPECT_LE((both.narrow(0, 1, 1).narrow(1, 6, 10) - expected).abs().max().item<double>(), 1e-4);
  const auto ckpt = gaft::load_checkpoint(kModelData + "/phi3");
  const std::vector<std::pair<std::string, std::function<void(gaft::ModelConfig&)>>> changes = {
      {"long factors", [](gaft::ModelConfig& m) { m.rope_scaling->long_factor = m.rope_scaling->short_factor; }},
      {"attention factor", [](gaft::ModelConfig& m) { m.rope_scaling->attention_factor = 1; }},
      {"partial rotary", [](gaft::ModelConfig& m) {
         m.rotary_dim = 8;
         m.rope_scaling->short_factor.push_back(1.0);
         m.rope_scaling->long_factor.push_back(1.0);
       }},
      {"window", [](gaft::ModelConfig& m) { m.sliding_window = 0; m.sliding_layers.clear(); }}};
  for (const auto& [what, change] : changes) {
    gaft::ModelConfig other = c;
    change(other);
    gaft::Llama m(other);
    gaft::load_llama_weights(m, ckpt, "phi3");
    EXPECT_GT((m->logits(m->forward(long_ids)) - long_expected).abs().max().item<double>(), 1e-3) << what;
  }
}

// The fused loss sees head_input(hidden), the LM head and config.final_softcap: its log-probabilities equal
// log_softmax of logits() (Gemma 2's cap, Granite's logits_scaling).
TEST(Llama, FusedHeadInputsGiveTheLogitsLogProbs) {
  torch::NoGradGuard no_grad;
  for (const std::string family : {"gemma2", "granite", "llama"}) {
    SCOPED_TRACE(family);
    gaft::Llama model = gaft::load_llama(kModelData + "/" + family);
    const Fixture x = read_fixture(family);
    const at::Tensor row = x.input_ids.narrow(0, 0, 1);                         // [1, T]
    const at::Tensor hidden = model->forward(row).squeeze(0);                    // [T, H]
    const at::Tensor targets = row.squeeze(0).roll(-1);                          // [T]
    const at::Tensor expected =
        model->logits(hidden).log_softmax(-1).gather(1, targets.unsqueeze(1)).squeeze(1);  // [T]
    const at::Tensor fused = gaft::ops::token_logprob(model->head_input(hidden), model->lm_head_weight(), targets,
                                                      false, 3, model->config.final_softcap).logp;
    EXPECT_LE((fused - expected).abs().max().item<double>(), 1e-5);
  }
}


// mistral_window (sliding_window 4) against a plain causal mask: the fixture would not pass without the window,
// and one token at a time through the cache (keys older than the window dropped) equals the full forward.
TEST(Llama, SlidingWindowMatters) {
  torch::NoGradGuard no_grad;
  gaft::ModelConfig c = gaft::load_model_config(kModelData + "/mistral_window");
  ASSERT_EQ(c.sliding_window, 4);
  const Fixture x = read_fixture("mistral_window");
  const at::Tensor row = x.input_ids.narrow(0, 0, 1);  // unpadded, 10 tokens
  gaft::Llama windowed = gaft::load_llama(kModelData + "/mistral_window");
  const at::Tensor expected = x.expected.narrow(0, 0, 1);  // [1, 10, V]
  EXPECT_LE((windowed->logits(windowed->forward(row)) - expected).abs().max().item<double>(), 1e-4);
  gaft::KVCache cache;
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < row.size(1); ++t) steps.push_back(windowed->logits(windowed->forward(row.narrow(1, t, 1), {}, &cache)));
  EXPECT_LE((at::cat(steps, 1) - expected).abs().max().item<double>(), 1e-4);
  c.sliding_window = 0;  // the same weights with full attention
  c.sliding_layers.clear();
  gaft::Llama full(c);
  gaft::load_llama_weights(full, gaft::load_checkpoint(kModelData + "/mistral_window"), "mistral_window");
  const at::Tensor diff = (full->logits(full->forward(row)) - expected).abs().amax({0, 2});  // [10]
  EXPECT_LE(diff.narrow(0, 0, 4).max().item<double>(), 1e-4);  // inside the window nothing changes
  EXPECT_GT(diff.narrow(0, 4, 6).min().item<double>(), 1e-3);  // beyond it every position does
}

// Packed rows (gaft::PackedLayout): a shared prefix once, then branches that attend to it and to themselves at
// their own positions. Each sequence's hidden states must equal the sequence run alone, for every family with its
// own attention details (sliding windows shorter than the rows, Gemma 2's soft-capped attention, Gemma 3's local
// RoPE, Qwen 3's q/k norms), gradients included; longrope models (Phi-3) refuse packed rows.
TEST(Llama, PackedRowsEqualEachSequenceAlone) {
  for (const std::string family : {"llama", "mistral_window", "gemma2", "gemma3", "qwen3", "granite"}) {
    SCOPED_TRACE(family);
    gaft::Llama m = gaft::load_llama(kModelData + "/" + family);
    ASSERT_TRUE(m->can_pack());
    const std::vector<int64_t> P = {1, 17, 23, 5, 42}, A = {7, 8, 9}, B = {30, 31, 32, 33, 34, 35}, D = {1, 3, 4, 5, 6, 7, 8};
    const auto cat = [](std::vector<int64_t> x, const std::vector<int64_t>& y) {
      x.insert(x.end(), y.begin(), y.end());
      return x;
    };
    // Row 0: P | A | B, i.e. the sequences P+A, P+B and P itself (an empty branch); row 1: D alone, padded.
    const std::vector<std::vector<int64_t>> alone = {cat(P, A), cat(P, B), P, D};
    std::vector<int64_t> ids = cat(cat(P, A), B), pos, segs;
    for (int64_t t = 0; t < 5; ++t) pos.push_back(t), segs.push_back(0);
    for (int64_t t = 5; t < 8; ++t) pos.push_back(t), segs.push_back(1);
    for (int64_t t = 5; t < 11; ++t) pos.push_back(t), segs.push_back(2);
    for (int64_t t = 0; t < 14; ++t) {  // row 1
      ids.push_back(t < 7 ? D[t] : 0);
      pos.push_back(t < 7 ? t : 0);
      segs.push_back(t < 7 ? 0 : -1);
    }
    const gaft::PackedLayout layout{at::tensor(pos, at::kLong).view({2, 14}), at::tensor(segs, at::kLong).view({2, 14})};
    const at::Tensor packed = m->forward_packed(at::tensor(ids, at::kLong).view({2, 14}), layout);  // [2, 14, H]
    // Where each sequence's tokens sit in the packed batch (row, index).
    const std::vector<std::vector<std::pair<int64_t, int64_t>>> where = [] {
      std::vector<std::vector<std::pair<int64_t, int64_t>>> w(4);
      for (int64_t t = 0; t < 5; ++t) w[0].push_back({0, t}), w[1].push_back({0, t}), w[2].push_back({0, t});
      for (int64_t t = 5; t < 8; ++t) w[0].push_back({0, t});
      for (int64_t t = 8; t < 14; ++t) w[1].push_back({0, t});
      for (int64_t t = 0; t < 7; ++t) w[3].push_back({1, t});
      return w;
    }();
    at::Tensor probe = at::randn({packed.size(2)});
    at::Tensor loss_alone = at::zeros({}), loss_packed = at::zeros({});
    for (size_t s = 0; s < alone.size(); ++s) {
      const at::Tensor h = m->forward(at::tensor(alone[s], at::kLong).view({1, -1})).squeeze(0);  // [T, H]
      std::vector<at::Tensor> picked;
      for (const auto& [row, t] : where[s]) picked.push_back(packed[row][t]);
      const at::Tensor hp = at::stack(picked);
      EXPECT_LE((hp - h).abs().max().item<double>(), 1e-5) << "sequence " << s;
      // A loss over each sequence's states; the prefix's states count once per sequence in both.
      loss_alone = loss_alone + (h * probe).sum().square() * 1e-3;
      loss_packed = loss_packed + (hp * probe).sum().square() * 1e-3;
    }
    const auto grads_of = [&](const at::Tensor& loss) {
      m->zero_grad();
      loss.backward({}, /*retain_graph=*/false);
      std::vector<at::Tensor> g;
      for (const auto& q : m->parameters()) g.push_back(q.grad().defined() ? q.grad().clone() : at::zeros_like(q));
      return g;
    };
    const auto ga = grads_of(loss_alone), gp = grads_of(loss_packed);
    for (size_t i = 0; i < ga.size(); ++i) {
      const double scale = std::max(1e-6, ga[i].abs().max().item<double>());
      EXPECT_LE((ga[i] - gp[i]).abs().max().item<double>() / scale, 1e-4) << "parameter " << i;
    }
  }
  gaft::Llama phi3 = gaft::load_llama(kModelData + "/phi3");
  EXPECT_FALSE(phi3->can_pack());
  const gaft::PackedLayout one{at::zeros({1, 2}, at::kLong), at::zeros({1, 2}, at::kLong)};
  EXPECT_THROW(phi3->forward_packed(at::ones({1, 2}, at::kLong), one), c10::Error);
}

TEST(Llama, SequenceClassificationMatchesTransformers) {
  torch::NoGradGuard no_grad;
  for (const std::string family : {"llama_seqcls", "gemma2_seqcls", "gemma3_seqcls", "phi3_seqcls"}) {
    SCOPED_TRACE(family);
    gaft::Llama model = gaft::load_llama(kModelData + "/" + family);
    const Fixture x = read_fixture(family);
    const at::Tensor scores = model->classify(model->forward(x.input_ids, x.attention_mask), x.attention_mask);
    ASSERT_EQ(scores.sizes(), x.expected.sizes());
    EXPECT_LE((scores - x.expected).abs().max().item<double>(), 1e-4);
    EXPECT_THROW(model->lm_head_weight(), c10::Error);
  }
}

TEST(Llama, ModulesCarryCheckpointNames) {
  const gaft::ModelConfig c = gaft::load_model_config(kModelData + "/qwen3");
  gaft::Llama model(c);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  std::set<std::string> table;
  for (const auto& s : gaft::llama_weight_table(c))
    if (s.required) table.insert(s.name);  // qwen3's fixture is tied: lm_head.weight is optional
  EXPECT_EQ(names, table);
  EXPECT_TRUE(names.count("model.layers.1.self_attn.k_norm.weight"));
  EXPECT_TRUE(names.count("model.embed_tokens.weight"));
  // Tied: the LM head is the embedding matrix.
  gaft::Llama tied = gaft::load_llama(kModelData + "/qwen2");
  EXPECT_TRUE(tied->lm_head_weight().is_same(tied->model->embed_tokens->weight));
  EXPECT_EQ(tied->model->embed_tokens->weight.scalar_type(), at::kFloat);  // stored F16, computed in fp32
}

TEST(Llama, ComputeDtype) {
  torch::NoGradGuard no_grad;
  gaft::LoadOptions o;
  o.dtype = at::kBFloat16;
  gaft::Llama model = gaft::load_llama(kModelData + "/llama", o);
  const Fixture x = read_fixture("llama");
  const at::Tensor logits = model->logits(model->forward(x.input_ids, x.attention_mask));
  EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
  EXPECT_LE(max_diff_at_tokens(logits.to(at::kFloat), x.expected, x.attention_mask), 0.5);  // bf16: loose
}

// ---------------------------------------------------------------------------------------------------------
// Broken checkpoints: one clear DataError naming the file and the tensor.
// ---------------------------------------------------------------------------------------------------------

namespace {

// Copies the llama fixture into `dir` with its tensors changed by `edit`.
void write_edited(const TempDir& dir, const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
  std::filesystem::copy_file(kModelData + "/llama/config.json", dir.file("config.json"));
  gaft::Checkpoint ck = gaft::load_checkpoint(kModelData + "/llama");
  edit(ck.tensors);
  gaft::save_safetensors(dir.file("model.safetensors"), ck.tensors);
}

}  // namespace

TEST(Llama, MissingTensor) {
  TempDir dir("llama_missing");
  write_edited(dir, [](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  expect_data_error([&] { gaft::load_llama(dir.str()); }, {dir.file("model.safetensors"), "missing tensor 'model.layers.1.mlp.up_proj.weight'"});
}

TEST(Llama, UnexpectedTensor) {
  TempDir dir("llama_unexpected");
  write_edited(dir, [](auto& t) {
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = at::ones({4});  // ignorable
    t["model.layers.2.mlp.up_proj.weight"] = at::ones({32, 32});        // not in a 2-layer model
  });
  expect_data_error([&] { gaft::load_llama(dir.str()); },
                    {"model.safetensors", "unexpected tensor 'model.layers.2.mlp.up_proj.weight'"});
}

TEST(Llama, ShapeMismatch) {
  TempDir dir("llama_shape");
  write_edited(dir, [](auto& t) { t["model.layers.0.self_attn.k_proj.weight"] = at::ones({32, 32}); });
  expect_data_error([&] { gaft::load_llama(dir.str()); },
                    {"model.safetensors", "'model.layers.0.self_attn.k_proj.weight'", "shape [32, 32], expected [16, 32]"});
}

TEST(Llama, IntegerWeightRefused) {
  TempDir dir("llama_int_weight");
  write_edited(dir, [](auto& t) { t["model.norm.weight"] = at::ones({32}, at::kLong); });
  expect_data_error([&] { gaft::load_llama(dir.str()); }, {"model.safetensors", "'model.norm.weight'", "Long"});
}

TEST(Llama, UntiedModelNeedsLmHead) {
  TempDir dir("llama_no_head");
  write_edited(dir, [](auto& t) { t.erase("lm_head.weight"); });
  expect_data_error([&] { gaft::load_llama(dir.str()); }, {"missing tensor 'lm_head.weight'"});
}

TEST(Llama, ShardedCheckpointLoadsTheSame) {
  torch::NoGradGuard no_grad;
  TempDir dir("llama_sharded");
  std::filesystem::copy_file(kModelData + "/llama/config.json", dir.file("config.json"));
  const auto files = gaft::save_checkpoint(dir.str(), gaft::load_checkpoint(kModelData + "/llama").tensors,
                                           /*max_shard_bytes=*/8192);
  ASSERT_GT(files.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors")));
  gaft::Llama model = gaft::load_llama(dir.str());
  const Fixture x = read_fixture("llama");
  const at::Tensor logits = model->logits(model->forward(x.input_ids, x.attention_mask));
  EXPECT_LE(max_diff_at_tokens(logits, x.expected, x.attention_mask), 1e-4);
}

TEST(Llama, UnknownDtypeInCheckpointNamesTensor) {
  TempDir dir("llama_dtype");
  std::filesystem::copy_file(kModelData + "/llama/config.json", dir.file("config.json"));
  std::string bytes = gaft_test::read_bytes(kModelData + "/llama/model.safetensors");
  const size_t at = bytes.find("\"F16\"");  // an unknown dtype of the same length keeps every offset valid
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 5, "\"U16\"");
  gaft_test::write_bytes(dir.file("model.safetensors"), bytes);
  expect_data_error([&] { gaft::load_llama(dir.str()); }, {"model.safetensors", "unsupported dtype U16"});
}

// Activation checkpointing recomputes each layer in backward: the same loss and the same gradients (fp32, and
// under bf16 autocast, whose state the recomputation must restore).
TEST(Llama, ActivationCheckpointingGivesTheSameGradients) {
  gaft::ModelConfig c = gaft::load_model_config(kModelData + "/llama");
  for (const bool autocast : {false, true}) {
    SCOPED_TRACE(autocast ? "bf16 autocast" : "fp32");
    std::vector<std::vector<at::Tensor>> grads;
    std::vector<double> losses;
    for (const bool ckpt : {false, true}) {
      torch::manual_seed(3);
      gaft::Llama m(c);
      m->model->checkpoint_layers = ckpt;
      const at::Tensor ids = torch::randint(0, c.vocab_size, {2, 9});
      at::Tensor mask = torch::ones({2, 9}, torch::kLong);
      mask[1].narrow(0, 0, 3).zero_();  // left padding on the second row
      if (autocast) {
        at::autocast::set_autocast_enabled(at::kCPU, true);
        at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
      }
      const at::Tensor logits = m->logits(m->forward(ids, mask));
      const at::Tensor loss = logits.to(at::kFloat).log_softmax(-1).select(-1, 5).mean();
      if (autocast) {
        at::autocast::set_autocast_enabled(at::kCPU, false);
        at::autocast::clear_cache();
      }
      loss.backward();  // backward outside the autocast region, as the trainer does
      losses.push_back(loss.item<double>());
      std::vector<at::Tensor> g;
      for (const auto& p : m->parameters()) g.push_back(p.grad().clone());
      grads.push_back(g);
    }
    EXPECT_NEAR(losses[0], losses[1], 1e-6);
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i) {
      const double scale = std::max(1e-6, grads[0][i].abs().max().item<double>());
      EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>() / scale, autocast ? 1e-2 : 1e-5) << "parameter " << i;
      EXPECT_GT(grads[1][i].abs().max().item<double>(), 0.0) << "parameter " << i;
    }
  }
}
