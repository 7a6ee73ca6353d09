// ModelConfig from config.json: real and fixture configs, defaults, and one message per problem.
#include "gaft/model_config.h"

#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::kModelData;
using gaft_test::TempDir;

namespace {

nlohmann::json tiny() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64},      {"intermediate_size", 128},
          {"num_hidden_layers", 2},               {"num_attention_heads", 8}, {"vocab_size", 100}};
}

}  // namespace

TEST(ModelConfig, Stories260K) {
  if (!std::filesystem::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder";
  const gaft::ModelConfig c = gaft::load_model_config(gaft_test::kStories + "/hf");
  EXPECT_EQ(c.family, gaft::ModelFamily::kLlama);
  EXPECT_EQ(c.head, gaft::ModelHead::kCausalLM);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.pad_token_id, -1);
}

TEST(ModelConfig, FixtureFamilies) {
  const gaft::ModelConfig qwen2 = gaft::load_model_config(kModelData + "/qwen2/config.json");
  EXPECT_EQ(qwen2.family, gaft::ModelFamily::kQwen2);
  EXPECT_TRUE(qwen2.attention_bias);
  EXPECT_FALSE(qwen2.o_proj_bias);
  EXPECT_DOUBLE_EQ(qwen2.rope_theta, 1e6);  // transformers v5 "rope_parameters"
  const gaft::ModelConfig qwen3 = gaft::load_model_config(kModelData + "/qwen3");
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 12);  // explicit, not hidden / heads
  const gaft::ModelConfig rope = gaft::load_model_config(kModelData + "/llama3_rope");
  ASSERT_TRUE(rope.rope_scaling.has_value());
  EXPECT_EQ(rope.rope_scaling->type, "llama3");
  EXPECT_EQ(rope.rope_scaling->original_max_position_embeddings, 48);
  const gaft::ModelConfig mistral = gaft::load_model_config(kModelData + "/mistral");
  EXPECT_EQ(mistral.family, gaft::ModelFamily::kMistral);
  EXPECT_EQ(mistral.sliding_window, 4096);
  const gaft::ModelConfig cls = gaft::load_model_config(kModelData + "/llama_seqcls");
  EXPECT_EQ(cls.head, gaft::ModelHead::kSequenceClassification);
  EXPECT_EQ(cls.num_labels, 3);
  EXPECT_EQ(cls.id2label, (std::vector<std::string>{"neg", "neu", "pos"}));
}

TEST(ModelConfig, SlidingWindowLayers) {
  const gaft::ModelConfig mistral = gaft::load_model_config(kModelData + "/mistral_window");
  EXPECT_EQ(mistral.sliding_window, 4);
  EXPECT_EQ(mistral.sliding_layers, (std::vector<bool>{true, true}));  // Mistral: every layer
  EXPECT_TRUE(gaft::load_model_config(kModelData + "/llama").sliding_layers.empty());
  nlohmann::json j = tiny();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["num_hidden_layers"] = 3;
  j["sliding_window"] = 16;
  EXPECT_EQ(gaft::parse_model_config(j, "config.json").sliding_window, 0);  // use_sliding_window defaults false
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 1;  // transformers: layers from max_window_layers on are windowed
  gaft::ModelConfig c = gaft::parse_model_config(j, "config.json");
  EXPECT_EQ(c.sliding_window, 16);
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{false, true, true}));
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};  // explicit types win
  EXPECT_EQ(gaft::parse_model_config(j, "config.json").sliding_layers, (std::vector<bool>{true, false, true}));
  j["layer_types"] = {"sliding_attention", "local"};
  expect_data_error([&] { gaft::parse_model_config(j, "qwen/config.json"); },
                    {"qwen/config.json", "\"layer_types\" has 2 entries, expected num_hidden_layers 3", "got local"});
}

// Gemma and Granite as their published config.json files spell them (transformers v4 keys: rope_local_base_freq,
// sliding_window_pattern, no layer_types, tie_word_embeddings absent).
TEST(ModelConfig, GemmaAndGraniteFields) {
  nlohmann::json j = tiny();
  j["architectures"] = {"Gemma3ForCausalLM"};
  j["num_hidden_layers"] = 7;
  j["head_dim"] = 256;
  j["query_pre_attn_scalar"] = 256;
  j["rope_theta"] = 1000000;
  j["rope_local_base_freq"] = 10000;
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  j["sliding_window"] = 512;
  j["sliding_window_pattern"] = 6;
  j["final_logit_softcapping"] = nullptr;
  j["hidden_activation"] = "gelu_pytorch_tanh";
  gaft::ModelConfig c = gaft::parse_model_config(j, "gemma-3-1b/config.json");
  EXPECT_EQ(c.family, gaft::ModelFamily::kGemma3);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.gemma_norms);
  EXPECT_EQ(c.activation, gaft::Activation::kGeluTanh);
  EXPECT_DOUBLE_EQ(c.attention_scale, 1.0 / 16);
  EXPECT_DOUBLE_EQ(c.embedding_scale, 8.0);  // sqrt(64)
  EXPECT_DOUBLE_EQ(c.local_rope_theta, 10000);
  EXPECT_EQ(c.rope_scaling->type, "linear");
  EXPECT_DOUBLE_EQ(c.final_softcap, 0);
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  j["architectures"] = {"Gemma2ForCausalLM"};
  j.erase("final_logit_softcapping");
  c = gaft::parse_model_config(j, "gemma-2/config.json");
  EXPECT_DOUBLE_EQ(c.final_softcap, 30);  // transformers' default
  EXPECT_DOUBLE_EQ(c.attn_softcap, 50);
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, false, true, false, true, false, true}));
  j["hidden_activation"] = "silu";
  expect_data_error([&] { gaft::parse_model_config(j, "gemma-2/config.json"); },
                    {"\"hidden_activation\" expected \"gelu_pytorch_tanh\""});
  j = tiny();
  j["architectures"] = {"GraniteForCausalLM"};
  j["embedding_multiplier"] = 12.0;
  j["residual_multiplier"] = 0.22;
  j["attention_multiplier"] = 0.0078125;
  j["logits_scaling"] = 8.0;
  c = gaft::parse_model_config(j, "granite/config.json");
  EXPECT_DOUBLE_EQ(c.embedding_scale, 12.0);
  EXPECT_DOUBLE_EQ(c.residual_scale, 0.22);
  EXPECT_DOUBLE_EQ(c.attention_scale, 0.0078125);
  EXPECT_DOUBLE_EQ(c.logits_scale, 0.125);
  j["logits_scaling"] = 0;
  expect_data_error([&] { gaft::parse_model_config(j, "granite/config.json"); }, {"logits_scaling expected > 0"});
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  expect_data_error([&] { gaft::parse_model_config(j, "gemma-3-4b/config.json"); },
                    {"Gemma3ForConditionalGeneration", "multimodal"});
}

// Phi-3 as its published configs write it: Phi-3.5-mini (longrope in rope_scaling, original_max_position_embeddings
// at the top, window 262144), Phi-3-mini-128k's older "su", Phi-4-mini's partial rotary factor; errors name keys.
TEST(ModelConfig, Phi3Fields) {
  nlohmann::json j = tiny();  // head_dim 8
  j["architectures"] = {"Phi3ForCausalLM"};
  j["max_position_embeddings"] = 131072;
  j["original_max_position_embeddings"] = 4096;
  j["sliding_window"] = 262144;
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", {1.0, 1.1, 1.2, 1.3}}, {"long_factor", {2.0, 3.0, 4.0, 5.0}}};
  gaft::ModelConfig c = gaft::parse_model_config(j, "phi-3.5-mini/config.json");
  EXPECT_EQ(c.family, gaft::ModelFamily::kPhi3);
  EXPECT_TRUE(c.fused_projections);
  EXPECT_FALSE(c.attention_bias || c.o_proj_bias || c.mlp_bias);
  EXPECT_EQ(c.rotary_dim, 8);
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, true}));
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "longrope");
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_EQ(gaft::longrope_switch(c), 4096);
  EXPECT_EQ(c.rope_scaling->long_factor, (std::vector<double>{2.0, 3.0, 4.0, 5.0}));
  // Phi-3.5-mini's published attention factor: sqrt(1 + ln(32) / ln(4096)) = 1.1902
  EXPECT_NEAR(c.rope_scaling->attention_factor, 1.19024, 1e-5);
  j["rope_scaling"]["type"] = "su";  // Phi-3-mini-128k
  EXPECT_EQ(gaft::parse_model_config(j, "phi-3-mini-128k/config.json").rope_scaling->type, "longrope");
  j["partial_rotary_factor"] = 0.75;  // 6 rotary features: the factors must have 3 entries
  expect_data_error([&] { gaft::parse_model_config(j, "phi-4-mini/config.json"); },
                    {"phi-4-mini/config.json", "rope_scaling.short_factor has 4 entries, expected rotary_dim / 2 = 3",
                     "rope_scaling.long_factor has 4 entries"});
  j["rope_scaling"] = nullptr;
  c = gaft::parse_model_config(j, "phi-4-mini/config.json");
  EXPECT_EQ(c.rotary_dim, 6);
  EXPECT_EQ(gaft::longrope_switch(c), 0);
  j["partial_rotary_factor"] = 0.7;  // 5.6 -> 5 features: odd
  expect_data_error([&] { gaft::parse_model_config(j, "phi/config.json"); }, {"partial_rotary_factor", "positive even"});
  // longrope belongs to Phi-3: a Llama config naming it is refused rather than read as plain RoPE.
  j = tiny();
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"short_factor", {1.0}}, {"long_factor", {1.0}}};
  expect_data_error([&] { gaft::parse_model_config(j, "llama/config.json"); }, {"\"longrope\" is not supported for LlamaForCausalLM"});
}

TEST(ModelConfig, DefaultsAndLegacyRopeScaling) {
  nlohmann::json j = tiny();
  gaft::ModelConfig c = gaft::parse_model_config(j, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 8);  // defaults to num_attention_heads
  EXPECT_EQ(c.head_dim, 8);             // hidden / heads
  EXPECT_FALSE(c.tie_word_embeddings);
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 32.0}, {"original_max_position_embeddings", 8192}};
  j["eos_token_id"] = {128001, 128009};
  j["vocab_size"] = 128256;
  c = gaft::parse_model_config(j, "config.json");
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
  j["rope_scaling"] = nullptr;
  EXPECT_FALSE(gaft::parse_model_config(j, "config.json").rope_scaling.has_value());
}

TEST(ModelConfig, MissingFieldsNamedTogether) {
  nlohmann::json j = tiny();
  j.erase("hidden_size");
  j.erase("vocab_size");
  expect_data_error([&] { gaft::parse_model_config(j, "/m/config.json"); },
                    {"/m/config.json", "missing required field \"hidden_size\"", "\"vocab_size\""});
  TempDir dir("cfg_missing");
  expect_data_error([&] { gaft::load_model_config(dir.str()); }, {"config.json"});
  gaft_test::write_bytes(dir.file("config.json"), "{oops");
  expect_data_error([&] { gaft::load_model_config(dir.str()); }, {"config.json", "JSON"});
}

TEST(ModelConfig, InconsistentHeads) {
  nlohmann::json j = tiny();
  j["num_attention_heads"] = 6;
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); },
                    {"config.json: num_attention_heads 6 must divide hidden_size 64"});
  j = tiny();
  j["num_key_value_heads"] = 3;
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); },
                    {"num_key_value_heads 3 must divide num_attention_heads 8"});
  j = tiny();
  j["hidden_size"] = "64";
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"\"hidden_size\" expected an integer, got \"64\""});
}

TEST(ModelConfig, UnknownArchitecture) {
  nlohmann::json j = tiny();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"config.json", "GPT2LMHeadModel"});
  j.erase("architectures");
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"architectures"});
  j = tiny();
  j["rope_scaling"] = {{"rope_type", 3}};
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"rope_scaling type expected a string"});
  j["rope_scaling"] = {{"rope_type", "yarn"}};
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"\"yarn\" is not supported"});
  j = tiny();
  j["hidden_act"] = "gelu";
  expect_data_error([&] { gaft::parse_model_config(j, "config.json"); }, {"hidden_act", "gelu"});
}
