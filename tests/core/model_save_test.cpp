// Saving a model as a Hugging Face folder: what gaft writes, it loads back identically (weights and config);
// config.json carries what transformers needs; an existing folder is replaced only by a complete one.
// That transformers itself loads the folder and gives the same logits is checked by tools/check_roundtrip.py
// (docs/parity.md), since C++ tests do not run Python.
#include "gaft/model_save.h"

#include <nlohmann/json.hpp>

#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::kModelData;
using gaft_test::TempDir;

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(gaft_test::read_bytes(path)); }

// Every parameter of `a` equals the one of `b` rounded to `dtype` (and back to a's dtype).
void expect_same_weights(gaft::Llama& a, gaft::Llama& b, at::ScalarType dtype = at::kFloat) {
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) {
    const at::Tensor* q = pb.find(p.key());
    ASSERT_NE(q, nullptr) << p.key();
    EXPECT_TRUE(at::equal(p.value(), q->to(dtype).to(p.value().scalar_type()))) << p.key();
  }
}

void expect_same_config(const gaft::ModelConfig& a, const gaft::ModelConfig& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.head, b.head);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.has_value(), b.rope_scaling.has_value());
  if (a.rope_scaling && b.rope_scaling) {
    EXPECT_EQ(a.rope_scaling->factor, b.rope_scaling->factor);
    EXPECT_EQ(a.rope_scaling->original_max_position_embeddings, b.rope_scaling->original_max_position_embeddings);
  }
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.o_proj_bias, b.o_proj_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.sliding_layers, b.sliding_layers);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.num_labels, b.num_labels);
  EXPECT_EQ(a.id2label, b.id2label);
}

// Entries of `dir`'s parent whose names start with `dir`'s name and something more (staging leftovers).
std::vector<std::string> siblings_of(const std::string& dir) {
  const fs::path p(dir);
  const std::string base = p.filename().string();
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(p.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name != base && name.rfind(base, 0) == 0) out.push_back(name);
  }
  return out;
}

class SaveRoundTrip : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(SaveRoundTrip, ReloadsIdentically) {
  torch::NoGradGuard no_grad;
  TempDir tmp("save_" + GetParam());
  const std::string src = kModelData + "/" + GetParam(), out = tmp.file("saved");
  gaft::Llama model = gaft::load_llama(src);
  gaft::save_model(model, out, {});
  gaft::Llama back = gaft::load_llama(out);
  expect_same_config(model->config, back->config);
  expect_same_weights(model, back);

  // The file holds the table's names in float32; a tied LM head is left out, as transformers does.
  const gaft::SafetensorsFile f(out + "/model.safetensors");
  for (const gaft::WeightSpec& s : gaft::llama_weight_table(model->config)) {
    if (s.name == "lm_head.weight" && model->config.tie_word_embeddings) {
      EXPECT_FALSE(f.contains(s.name));
      continue;
    }
    ASSERT_TRUE(f.contains(s.name)) << s.name;
    EXPECT_EQ(f.entry(s.name).dtype, at::kFloat) << s.name;
    EXPECT_EQ(f.entry(s.name).shape, s.shape) << s.name;
  }
  EXPECT_EQ(f.names().size(), back->named_parameters().size());

  // config.json: what transformers' AutoConfig and from_pretrained read.
  const nlohmann::json j = read_json(out + "/config.json");
  for (const char* key : {"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
                          "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j.contains("rope_theta") || j.contains("rope_parameters"));
  EXPECT_EQ(j["architectures"], nlohmann::json::array({model->config.architecture}));
  EXPECT_EQ(j["dtype"], "float32");
  EXPECT_EQ(j["torch_dtype"], "float32");
  if (model->config.head == gaft::ModelHead::kSequenceClassification) {
    EXPECT_EQ(j["id2label"], (nlohmann::json{{"0", "neg"}, {"1", "neu"}, {"2", "pos"}}));
    EXPECT_EQ(j["label2id"], (nlohmann::json{{"neg", 0}, {"neu", 1}, {"pos", 2}}));
    EXPECT_TRUE(j.contains("pad_token_id"));  // transformers finds the last token of padded rows with it
  }
  EXPECT_TRUE(siblings_of(out).empty());
}

INSTANTIATE_TEST_SUITE_P(Families, SaveRoundTrip,
                         ::testing::Values("llama", "llama3_rope", "mistral", "mistral_window", "qwen2", "qwen3",
                                           "llama_seqcls", "gemma2", "gemma3", "granite", "phi3"));

TEST(SaveModel, Bfloat16AndShards) {
  torch::NoGradGuard no_grad;
  TempDir tmp("save_bf16");
  gaft::Llama model = gaft::load_llama(kModelData + "/llama");
  gaft::SaveOptions o;
  o.dtype = at::kBFloat16;
  o.max_shard_bytes = 4096;
  gaft::save_model(model, tmp.file("bf16"), o);
  EXPECT_FALSE(fs::exists(tmp.file("bf16/model.safetensors")));
  const nlohmann::json index = read_json(tmp.file("bf16/model.safetensors.index.json"));
  EXPECT_GT(index["weight_map"].size(), 10u);
  EXPECT_EQ(read_json(tmp.file("bf16/config.json"))["dtype"], "bfloat16");
  gaft::Llama back = gaft::load_llama(tmp.file("bf16"));
  expect_same_weights(back, model, at::kBFloat16);  // the weights rounded to bfloat16, nothing else
  EXPECT_FALSE(at::equal(model->model->norm->weight, back->model->norm->weight));  // and rounding happened

  o.dtype = at::kDouble;
  expect_data_error([&] { gaft::save_model(model, tmp.file("f64"), o); }, {"cannot save a model in Double"});
  EXPECT_FALSE(fs::exists(tmp.file("f64")));
}

TEST(SaveModel, ModelTypeFilledAndTokenizerCopied) {
  torch::NoGradGuard no_grad;
  TempDir tmp("save_model_type");
  nlohmann::json raw = read_json(kModelData + "/qwen2/config.json");
  raw.erase("model_type");
  gaft::Llama model(gaft::parse_model_config(raw, "config.json"));
  EXPECT_EQ(gaft::model_config_json(model->config, at::kFloat)["model_type"], "qwen2");

  gaft_test::write_bytes(tmp.file("tokenizer.json"), "{\"version\": \"1.0\"}");
  gaft_test::write_bytes(tmp.file("tokenizer_config.json"), "{}");
  gaft_test::write_bytes(tmp.file("notes.txt"), "not copied");
  gaft::SaveOptions o;
  o.tokenizer_dir = tmp.file("tokenizer.json");  // a file names its folder
  gaft::save_model(model, tmp.file("out/model/"), o);  // trailing slash: still the folder "model"
  EXPECT_EQ(gaft_test::read_bytes(tmp.file("out/model/tokenizer.json")), "{\"version\": \"1.0\"}");
  EXPECT_TRUE(fs::exists(tmp.file("out/model/tokenizer_config.json")));
  EXPECT_FALSE(fs::exists(tmp.file("out/model/notes.txt")));
  EXPECT_EQ(read_json(tmp.file("out/model/config.json"))["model_type"], "qwen2");
  EXPECT_TRUE(siblings_of(tmp.file("out/model")).empty());
  for (const auto& e : fs::directory_iterator(tmp.file("out/model")))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(SaveModel, ReplacesAnExistingFolderOnlyWhenComplete) {
  torch::NoGradGuard no_grad;
  TempDir tmp("save_replace");
  const std::string out = tmp.file("model");
  gaft::Llama llama = gaft::load_llama(kModelData + "/llama");
  gaft::Llama qwen = gaft::load_llama(kModelData + "/qwen2");
  gaft::save_model(llama, out, {});
  gaft_test::write_bytes(out + "/marker", "old");
  const std::string old_config = gaft_test::read_bytes(out + "/config.json");

  // Failing halfway (the weights are written when copying a tokenizer file fails): the old folder is intact.
  fs::create_directories(tmp.file("tok/tokenizer.json"));  // a directory where a file is expected
  gaft::SaveOptions bad;
  bad.tokenizer_dir = tmp.file("tok");
  expect_data_error([&] { gaft::save_model(qwen, out, bad); }, {"tokenizer.json", out + ".tmp."});
  EXPECT_EQ(gaft_test::read_bytes(out + "/marker"), "old");
  EXPECT_EQ(gaft_test::read_bytes(out + "/config.json"), old_config);
  EXPECT_TRUE(siblings_of(out).empty());  // the staging folder is gone
  gaft::Llama still = gaft::load_llama(out);
  expect_same_weights(llama, still);

  // Failing before anything is written (the parent is a file): nothing changes either.
  gaft_test::write_bytes(tmp.file("plain_file"), "x");
  expect_data_error([&] { gaft::save_model(qwen, tmp.file("plain_file/model"), {}); }, {"plain_file"});
  EXPECT_EQ(gaft_test::read_bytes(tmp.file("plain_file")), "x");

  // Succeeding: the folder is the new model only (the marker went with the old one).
  gaft::save_model(qwen, out, {});
  EXPECT_FALSE(fs::exists(out + "/marker"));
  EXPECT_EQ(gaft::load_model_config(out).family, gaft::ModelFamily::kQwen2);
  EXPECT_TRUE(siblings_of(out).empty());
}
