// Low-rank adapters (LoRA, Hu et al. 2021) on the decoder's linear projections, in the conventions of the
// `peft` Python package, so that an adapter gaft writes loads in PEFT onto the same base and the reverse:
//
//   y = x W^T + b + scale * B (A dropout(x)),   A [r, in] kaiming-uniform, B [out, r] zeros at creation,
//   scale = alpha / r  (alpha / sqrt(r) with rsLoRA)
//
// An adapter folder holds adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout, target_modules,
// use_rslora, base_model_name_or_path) and adapter_model.safetensors with PEFT's tensor names:
//   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, in]
//   base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   [out, r]
// With adapters the base weights are frozen, and the base itself (adapters disabled) is the reference
// policy of METHOD.md: no second copy of the model is held.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gaft/adapter_folder.h"

namespace gaft {

// A linear projection (weight [out, in], optional bias [out]) that can carry one LoRA adapter. Without an
// adapter it is torch::nn::Linear: same parameter names, same initialisation, same result.
class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in_features, int64_t out_features, bool bias);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]

  // Registers lora_A [rank, in] (kaiming-uniform from `gen`, as PEFT) and lora_B [out, rank] (zeros), in
  // `dtype` (the master dtype of trainable weights) on the device of `weight`.
  void add_adapter(int64_t rank, double scale, double dropout, at::ScalarType dtype, at::Generator gen);
  bool has_adapter() const { return !lora_A.is_empty(); }
  // weight += scale * B A (computed in fp32), then the adapter is removed.
  void merge_adapter();

  int64_t in_features, out_features;
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out], or undefined
  torch::nn::Linear lora_A{nullptr};  // [rank, in], no bias
  torch::nn::Linear lora_B{nullptr};  // [out, rank], no bias
  double scale = 0.0;
  double dropout = 0.0;  // on the adapter's input, in training mode (PEFT's nn.Dropout)
  bool enabled = true;   // false: the base projection alone (the reference policy)
};
TORCH_MODULE(LoraLinear);

class LlamaImpl;
// Adds an adapter to every targeted projection of every decoder layer (PEFT's matching rule: a list entry is
// a module name or its suffix, a string a regex over full names), in `dtype`, A drawn from a generator seeded
// with `seed`; freezes every other parameter. UsageError when nothing matches. Returns the adapted projections.
int64_t add_lora(LlamaImpl& model, const LoraOptions& options, at::ScalarType dtype, uint64_t seed);
bool has_lora(LlamaImpl& model);
// Sets the dropout of every adapter (e.g. the run's lora.dropout over a loaded adapter's lora_dropout).
void set_lora_dropout(LlamaImpl& model, double dropout);
// The adapter parameters under gaft's module names ("model.layers.0.self_attn.q_proj.lora_A.weight").
std::vector<std::pair<std::string, at::Tensor>> lora_parameters(LlamaImpl& model);
// Folds every adapter into its base weight (PEFT's merge_and_unload).
void merge_lora(LlamaImpl& model);

// Turns every adapter of a model off for its lifetime: the model computes the base policy.
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(LlamaImpl& model);
  ~AdaptersDisabled();
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  std::vector<LoraLinearImpl*> changed_;
};

// Adds the adapter of folder `dir` (config and weights, in `dtype`) to a model without adapters. DataError
// naming the file and the tensor for a missing, unexpected or misshapen tensor.
void load_adapter(LlamaImpl& model, const std::string& dir, at::ScalarType dtype = at::kFloat);

struct AdapterSaveOptions {
  std::string base_model;     // base_model_name_or_path to record
  std::string tokenizer_dir;  // tokenizer files copied beside the adapter; empty: none
  at::ScalarType dtype = at::kFloat;
  std::map<std::string, std::string> extra_files;  // name -> contents, written into the folder too
};
// Writes the PEFT folder (staged, then renamed into place) for a model with adapters; `lora` gives the
// config to record (its targets must be those the model carries).
void save_adapter(LlamaImpl& model, const std::string& dir, const LoraOptions& lora, const AdapterSaveOptions& options);

// gaft export --merge: base + adapter -> a full Hugging Face folder with weight + scale * B A (computed in
// fp32), stored in `dtype` (default: the base's stored dtype), with the adapter's tokenizer files (else the
// base's). `base_dir` empty: the adapter's base_model_name_or_path.
void export_merged(const std::string& adapter_dir, const std::string& base_dir, const std::string& out_dir,
                   std::optional<at::ScalarType> dtype = std::nullopt);

}  // namespace gaft
