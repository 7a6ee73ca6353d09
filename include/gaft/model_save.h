// Writing a model as a Hugging Face folder that transformers loads back with from_pretrained:
// config.json (the one read at load, with architectures, torch_dtype and labels brought up to date),
// model.safetensors (or shards + model.safetensors.index.json) under the checkpoint names of the weight
// table, and the tokenizer files copied from the tokenizer's folder.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "gaft/llama.h"

namespace gaft {

struct SaveOptions {
  at::ScalarType dtype = at::kFloat;             // stored dtype (and config.json torch_dtype)
  std::string tokenizer_dir;                     // tokenizer files copied from here; empty: none
  int64_t max_shard_bytes = int64_t{5} << 30;    // 5 GiB, as transformers
  // A model carrying LoRA adapters is saved as its PEFT adapter folder (fp32), recording these.
  std::optional<LoraOptions> lora;
  std::string base_model;                        // adapter_config.json's base_model_name_or_path
  std::map<std::string, std::string> extra_files;  // name -> contents, written into the folder too
};

// The tensors to save, by checkpoint name, on the CPU in `dtype`; a tied lm_head is left out (as
// transformers does).
std::map<std::string, at::Tensor> llama_state_dict(Llama& model, at::ScalarType dtype);

// config.json contents for `config` (its raw JSON with architectures, torch_dtype, num_labels, id2label and
// label2id set from the struct).
nlohmann::json model_config_json(const ModelConfig& config, at::ScalarType dtype);

// Writes the folder into `<dir>.tmp.<pid>` and then puts it at `dir` (replace_dir): an existing folder is
// replaced only by a complete one. A model with LoRA adapters is written as a PEFT adapter folder instead
// (save_adapter; options.lora required).
void save_model(Llama& model, const std::string& dir, const SaveOptions& options);

// Writes a model folder: `fill` writes the files into `<dir>.tmp.<pid>`, the tokenizer files are copied from
// `tokenizer_dir` (a folder, or a file whose folder is used; empty: none), and the folder is then put at `dir`
// (replace_dir). On failure the staged folder is removed and an existing `dir` is untouched.
void save_folder(const std::string& dir, const std::string& tokenizer_dir,
                 const std::function<void(const std::string& staged)>& fill);

// The tokenizer and generation files gaft copies beside a saved model.
const std::vector<std::string>& tokenizer_file_names();

}  // namespace gaft
