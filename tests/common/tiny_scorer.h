// A tiny random sequence classifier on the stories260K backbone and tokenizer (one layer, two labels), saved
// as a Hugging Face folder: the scorer of the train and eval end-to-end tests.
#pragma once

#include <string>

#include "gaft/llama.h"
#include "gaft/model_config.h"
#include "gaft/model_save.h"

namespace gaft_test {

inline void save_tiny_classifier(const std::string& base_model, const std::string& out_dir, uint64_t seed) {
  gaft::ModelConfig c = gaft::load_model_config(base_model);
  c.head = gaft::ModelHead::kSequenceClassification;
  c.architecture = "LlamaForSequenceClassification";
  c.num_labels = 2;
  c.num_hidden_layers = 1;
  c.raw["num_hidden_layers"] = 1;
  torch::manual_seed(seed);
  gaft::Llama scorer(c);
  gaft::save_model(scorer, out_dir, gaft::SaveOptions{at::kFloat, base_model});
}

}  // namespace gaft_test
