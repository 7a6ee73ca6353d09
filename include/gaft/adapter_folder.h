// PEFT LoRA adapter folders on disk: adapter_config.json read into LoRA options, and where an adapter
// folder's base model and tokenizer are. No LibTorch here; the adapters themselves are in gaft/lora.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gaft {

// The projections an adapter can target, by their module names (PEFT's target_modules), and those of a model
// with fused projections (Phi-3: qkv_proj, o_proj, gate_up_proj, down_proj).
const std::vector<std::string>& lora_target_names();
const std::vector<std::string>& fused_lora_target_names();

// The module names that `targets` (a list: lora.targets, PEFT's list form) adapt on a model with fused
// projections: q_proj, k_proj and v_proj together name qkv_proj, gate_proj and up_proj gate_up_proj, so the
// default list adapts every projection of a Phi-3 model. Part of a fused group (q_proj alone) is a UsageError:
// its adapter would adapt k and v too. Unchanged when `fused` is false.
std::vector<std::string> resolve_lora_targets(const std::vector<std::string>& targets, bool fused);

struct LoraOptions {
  int64_t rank = 16;
  double alpha = 32.0;
  double dropout = 0.0;
  std::vector<std::string> targets = lora_target_names();  // module names or name suffixes (PEFT list form)
  std::string target_regex;  // PEFT's string form (a regex over full module names, or "all-linear"); wins
  bool rslora = false;       // scale alpha / sqrt(r) instead of alpha / r
  double scale() const;
};

// Whether an adapter with these options wraps the module `module` (e.g. "model.layers.0.self_attn.q_proj"), by
// PEFT's rule: a list entry matches a module whose name is the entry or ends with "." + entry; a regex must
// match the whole name ("all-linear": every projection). DataError for a pattern PCRE2 refuses or cannot
// match within its limits.
bool lora_targets_module(const LoraOptions& o, const std::string& module);

// The adapter half of adapter_config.json, plus where the base model is.
struct AdapterConfig {
  LoraOptions lora;
  std::string base_model;  // base_model_name_or_path as written
  std::string file;        // the adapter_config.json read (for messages)
};

// A folder with adapter_config.json and no config.json.
bool is_adapter_dir(const std::string& dir);
// Parses adapter_config.json; DataError naming the file and the key for anything gaft cannot reproduce
// exactly (DoRA, trained biases, modules_to_save, per-layer rank or alpha patterns, other PEFT types).
AdapterConfig read_adapter_config(const std::string& dir);
// The local base model folder of an adapter: base_model_name_or_path as given, else relative to the adapter
// folder. DataError when neither is a folder (e.g. a hub id: pass the base explicitly).
std::string adapter_base_dir(const std::string& dir);
// Where the tokenizer of a model folder is: the folder itself, or, for an adapter folder without tokenizer
// files (as PEFT saves them), its base.
std::string tokenizer_dir_of(const std::string& dir);

}  // namespace gaft
