// LoRA adapters in PEFT's conventions. See gaft/lora.h.
#include "gaft/lora.h"
#include "gaft/hub_cache.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "gaft/atomic_file.h"
#include "gaft/device.h"
#include "gaft/error.h"
#include "gaft/fingerprint.h"
#include "gaft/llama.h"
#include "gaft/model_save.h"
#include "gaft/read_file.h"
#include "gaft/regex.h"
#include "gaft/safetensors.h"

namespace fs = std::filesystem;

namespace gaft {
namespace {

const std::string kPeftPrefix = "base_model.model.";  // PeftModel -> LoraModel -> the transformers model

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The adaptable projections of one decoder layer, under their full module names, in lora_target_names()
// order (the order adapters are created in, hence the order their random initialisation is drawn).
std::vector<std::pair<std::string, LoraLinearImpl*>> projections(LlamaImpl& model) {
  std::vector<std::pair<std::string, LoraLinearImpl*>> out;
  for (size_t i = 0; i < model.model->layers->size(); ++i) {
    auto* layer = model.model->layers[i]->as<DecoderLayerImpl>();
    const std::string at = "model.layers." + std::to_string(i) + ".";
    AttentionImpl& a = *layer->self_attn;
    MLPImpl& m = *layer->mlp;
    if (a.qkv_proj) {  // Phi-3: the fused projections are the adaptable modules (PEFT: qkv_proj, gate_up_proj)
      for (const auto& [name, p] : std::vector<std::pair<std::string, LoraLinearImpl*>>{
               {"self_attn.qkv_proj", a.qkv_proj.get()}, {"self_attn.o_proj", a.o_proj.get()},
               {"mlp.gate_up_proj", m.gate_up_proj.get()}, {"mlp.down_proj", m.down_proj.get()}})
        out.emplace_back(at + name, p);
      continue;
    }
    for (const auto& [name, p] : std::vector<std::pair<std::string, LoraLinearImpl*>>{
             {"self_attn.q_proj", a.q_proj.get()},  {"self_attn.k_proj", a.k_proj.get()},
             {"self_attn.v_proj", a.v_proj.get()},  {"self_attn.o_proj", a.o_proj.get()},
             {"mlp.gate_proj", m.gate_proj.get()}, {"mlp.up_proj", m.up_proj.get()},
             {"mlp.down_proj", m.down_proj.get()}})
      out.emplace_back(at + name, p);
  }
  return out;
}

// A target_modules regex (PEFT: re.fullmatch) on PCRE2, whose syntax is Python's for what adapter configs use,
// with limits: at most 4096 characters, PCRE2's nesting limit (250 groups), a match budget of 10^6 steps and a
// backtracking depth of 10^4, so that a pattern from a downloaded adapter_config.json can neither crash (deep
// recursion) nor hang (catastrophic backtracking). Errors are DataErrors naming `where` (the file).
std::unique_ptr<Regex> target_pattern(const std::string& pattern, const std::string& where) {
  Regex::Options o;
  o.max_pattern_chars = 4096;
  o.match_limit = 1000000;
  o.depth_limit = 10000;
  return std::make_unique<Regex>(pattern, o, where + ": target_modules");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// The projection module
// ---------------------------------------------------------------------------------------------------------

LoraLinearImpl::LoraLinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  // torch::nn::Linear's initialisation, draw for draw.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) torch::nn::init::uniform_(bias, -1.0 / std::sqrt(static_cast<double>(in)), 1.0 / std::sqrt(static_cast<double>(in)));
}

at::Tensor LoraLinearImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::linear(x, weight, bias);  // [..., out]
  if (!has_adapter() || !enabled) return y;
  // As PEFT: result + lora_B(lora_A(dropout(x))) * scaling. Dropout in training mode, as nn.Dropout: the
  // trainer puts the policy in eval mode for rollouts, and a checkpointed layer replays the forward's random
  // state when it recomputes.
  const at::Tensor xa = dropout > 0 && is_training() ? at::dropout(x, dropout, true) : x;
  return y + lora_B->forward(lora_A->forward(xa)) * scale;
}

void LoraLinearImpl::add_adapter(int64_t rank, double s, double p, at::ScalarType dtype, at::Generator gen) {
  TORCH_CHECK(!has_adapter(), "the projection already has an adapter");
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features, rank).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(rank, out_features).bias(false)));
  lora_A->to(weight.device(), dtype);
  lora_B->to(weight.device(), dtype);
  torch::NoGradGuard no_grad;
  // PEFT: kaiming_uniform_(A, a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); drawn on the CPU so that the
  // adapter is the same on every device. B = 0: the adapted model starts as the base.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  lora_A->weight.copy_(at::empty({rank, in_features}, at::kFloat).uniform_(-bound, bound, gen));
  lora_B->weight.zero_();
  scale = s;
  dropout = p;
  enabled = true;
}

void LoraLinearImpl::merge_adapter() {
  if (!has_adapter()) return;
  torch::NoGradGuard no_grad;
  const at::Tensor delta = at::matmul(lora_B->weight.to(at::kFloat), lora_A->weight.to(at::kFloat)) * scale;  // [out, in]
  weight.copy_(weight.to(at::kFloat) + delta);
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// Adapters on a model
// ---------------------------------------------------------------------------------------------------------

bool lora_targets_module(const LoraOptions& o, const std::string& module) {
  if (!o.target_regex.empty())
    return o.target_regex == "all-linear" || target_pattern(o.target_regex, "lora")->full_match(module);
  for (const std::string& t : o.targets)
    if (module == t || (module.size() > t.size() && module.compare(module.size() - t.size(), t.size(), t) == 0 &&
                        module[module.size() - t.size() - 1] == '.'))
      return true;
  return false;
}

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

const std::vector<std::string>& fused_lora_target_names() {
  static const std::vector<std::string> names = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
  return names;
}

std::vector<std::string> resolve_lora_targets(const std::vector<std::string>& targets, bool fused) {
  if (!fused) return targets;
  const auto has = [&](const std::string& t) { return std::find(targets.begin(), targets.end(), t) != targets.end(); };
  const auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  struct Group {
    std::vector<std::string> parts;
    std::string fused, what;
  };
  const Group groups[] = {{{"q_proj", "k_proj", "v_proj"}, "qkv_proj", "q, k and v into one self_attn.qkv_proj"},
                          {{"gate_proj", "up_proj"}, "gate_up_proj", "gate and up into one mlp.gate_up_proj"}};
  for (const Group& g : groups) {
    std::vector<std::string> named, missing;
    for (const std::string& t : g.parts) (has(t) ? named : missing).push_back(t);
    if (!named.empty() && !missing.empty())
      throw UsageError("lora.targets names " + join(named) + " but not " + join(missing) + ": this model fuses " +
                           g.what + ", whose adapter adapts all of them",
                       "target " + g.fused + " (or name all of " + join(g.parts) + ")");
  }
  // In the given order, each part of a group replaced by the fused name once.
  std::vector<std::string> out;
  for (const std::string& t : targets) {
    std::string name = t;
    for (const Group& g : groups)
      if (std::find(g.parts.begin(), g.parts.end(), t) != g.parts.end()) name = g.fused;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

double LoraOptions::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

int64_t add_lora(LlamaImpl& model, const LoraOptions& o, at::ScalarType dtype, uint64_t seed) {
  if (o.rank < 1) throw UsageError("LoRA rank must be at least 1, got " + std::to_string(o.rank));
  if (has_lora(model)) throw UsageError("the model already carries LoRA adapters");
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  int64_t n = 0;
  for (auto& [name, proj] : projections(model))
    if (lora_targets_module(o, name)) {
      proj->add_adapter(o.rank, o.scale(), o.dropout, dtype, gen);
      ++n;
    }
  if (n == 0) throw UsageError("the LoRA targets match no projection of the model");
  return n;
}

void set_lora_dropout(LlamaImpl& model, double dropout) {
  for (auto& [name, proj] : projections(model)) proj->dropout = dropout;
}

bool has_lora(LlamaImpl& model) {
  for (auto& [name, proj] : projections(model))
    if (proj->has_adapter()) return true;
  return false;
}

std::vector<std::pair<std::string, at::Tensor>> lora_parameters(LlamaImpl& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [name, proj] : projections(model))
    if (proj->has_adapter()) {
      out.emplace_back(name + ".lora_A.weight", proj->lora_A->weight);
      out.emplace_back(name + ".lora_B.weight", proj->lora_B->weight);
    }
  return out;
}

void merge_lora(LlamaImpl& model) {
  for (auto& [name, proj] : projections(model)) proj->merge_adapter();
}

AdaptersDisabled::AdaptersDisabled(LlamaImpl& model) {
  for (auto& [name, proj] : projections(model))
    if (proj->has_adapter() && proj->enabled) {
      proj->enabled = false;
      changed_.push_back(proj);
    }
}

AdaptersDisabled::~AdaptersDisabled() {
  for (LoraLinearImpl* p : changed_) p->enabled = true;
}

// ---------------------------------------------------------------------------------------------------------
// PEFT folders
// ---------------------------------------------------------------------------------------------------------

bool is_adapter_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / "adapter_config.json") && !fs::exists(fs::path(dir) / "config.json");
}

AdapterConfig read_adapter_config(const std::string& dir) {
  AdapterConfig out;
  out.file = (fs::path(dir) / "adapter_config.json").string();
  const nlohmann::json j = read_json_file(out.file, "a PEFT adapter folder needs adapter_config.json");
  if (!j.is_object()) throw DataError(out.file + ": expected a JSON object");
  const auto fail = [&](const std::string& key, const std::string& what) {
    throw DataError(out.file + ": key '" + key + "': " + what);
  };
  const auto is_set = [&](const char* key) {
    if (!j.contains(key) || j[key].is_null()) return false;
    const nlohmann::json& v = j[key];
    if (v.is_boolean()) return v.get<bool>();
    if ((v.is_object() || v.is_array() || v.is_string()) && v.empty()) return false;
    return true;
  };
  const auto text = [&](const char* key, const std::string& fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_string()) fail(key, "expected a string");
    return j[key].get<std::string>();
  };
  const std::string type = text("peft_type", "");
  if (type != "LORA") fail("peft_type", "expected \"LORA\", got \"" + type + "\" (gaft reads LoRA adapters only)");
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() < 1 ||
      j["r"].get<int64_t>() > (1 << 16))
    fail("r", "expected an integer rank in [1, 65536] (the range of lora.rank)");
  out.lora.rank = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number()) fail("lora_alpha", "expected a number");
  out.lora.alpha = j["lora_alpha"].get<double>();
  if (j.contains("lora_dropout") && !j["lora_dropout"].is_null()) {
    if (!j["lora_dropout"].is_number()) fail("lora_dropout", "expected a number");
    out.lora.dropout = j["lora_dropout"].get<double>();
  }
  if (j.contains("use_rslora") && !j["use_rslora"].is_null()) {
    if (!j["use_rslora"].is_boolean()) fail("use_rslora", "expected true or false");
    out.lora.rslora = j["use_rslora"].get<bool>();
  }
  const nlohmann::json tm = j.value("target_modules", nlohmann::json());
  if (tm.is_string()) {
    out.lora.targets.clear();
    out.lora.target_regex = tm.get<std::string>();
    if (out.lora.target_regex != "all-linear") target_pattern(out.lora.target_regex, out.file);
  } else if (tm.is_array() && !tm.empty()) {
    out.lora.targets.clear();
    for (const auto& t : tm) {
      if (!t.is_string()) fail("target_modules", "expected a list of module names");
      out.lora.targets.push_back(t.get<std::string>());
    }
    std::sort(out.lora.targets.begin(), out.lora.targets.end());
  } else {
    fail("target_modules", "expected a list of module names or a regular expression");
  }
  // What PEFT can express and gaft does not reproduce: refused rather than silently computed differently.
  if (text("bias", "none") != "none") fail("bias", "trained biases are not supported; expected \"none\"");
  for (const char* key : {"use_dora", "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern",
                          "layers_to_transform", "lora_bias", "target_parameters", "trainable_token_indices",
                          "layer_replication", "use_qalora", "exclude_modules", "alora_invocation_tokens",
                          "arrow_config", "use_bdlora", "kasa_config", "monteclora_config"})
    if (is_set(key)) fail(key, "is set; gaft supports plain LoRA on q/k/v/o/gate/up/down projections only");
  // Initialisations that rewrite the base weights (the adapter then belongs with a residual base).
  if (j.contains("init_lora_weights") && j["init_lora_weights"].is_string()) {
    const std::string init = j["init_lora_weights"].get<std::string>();
    for (const char* prefix : {"pissa", "olora", "corda", "loftq"})
      if (init.rfind(prefix, 0) == 0)
        fail("init_lora_weights", "'" + init + "' changes the base weights; gaft applies adapters to the unmodified base");
  }
  out.base_model = text("base_model_name_or_path", "");
  return out;
}

std::string adapter_base_dir(const std::string& dir) {
  const AdapterConfig c = read_adapter_config(dir);
  if (c.base_model.empty())
    throw DataError(c.file + ": no base_model_name_or_path", "pass the base model folder explicitly");
  for (const fs::path& p : {fs::path(c.base_model), fs::path(dir) / c.base_model})
    if (fs::is_regular_file(p / "config.json")) return p.string();
  // A hub name, as PEFT writes for a base it downloaded: the cached snapshot (hub_cache.h).
  if (is_hub_name(c.base_model)) {
    try {
      return resolve_model_path(c.base_model);
    } catch (const DataError& e) {
      throw DataError(c.file + ": base_model_name_or_path: " + e.what(), e.hint() + " (or pass the base model folder)");
    }
  }
  throw DataError(c.file + ": base_model_name_or_path '" + c.base_model + "' is not a local model folder",
                  "gaft downloads nothing: pass the base model folder explicitly (e.g. gaft export --base DIR)");
}

std::string tokenizer_dir_of(const std::string& dir) {
  if (!is_adapter_dir(dir)) return dir;
  for (const std::string& name : tokenizer_file_names())
    if (fs::exists(fs::path(dir) / name)) return dir;
  return adapter_base_dir(dir);
}

void load_adapter(LlamaImpl& model, const std::string& dir, at::ScalarType dtype) {
  const AdapterConfig cfg = read_adapter_config(dir);
  const std::string file = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::is_regular_file(file))
    throw DataError(dir + ": no adapter_model.safetensors", "gaft reads PEFT adapters saved with safe_serialization (the default)");
  const Checkpoint ckpt = load_checkpoint(file);
  // Check every name and shape before the model changes.
  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& [name, proj] : projections(model))
    if (lora_targets_module(cfg.lora, name)) {
      expected[kPeftPrefix + name + ".lora_A.weight"] = {cfg.lora.rank, proj->in_features};
      expected[kPeftPrefix + name + ".lora_B.weight"] = {proj->out_features, cfg.lora.rank};
    }
  if (expected.empty()) throw DataError(cfg.file + ": target_modules match no projection of the model");
  for (const auto& [name, t] : ckpt.tensors) {
    const auto it = expected.find(name);
    if (it == expected.end())
      throw DataError(file + ": unexpected tensor '" + name + "'",
                      "expected base_model.model.<module>.lora_A.weight / lora_B.weight for the modules target_modules names");
    if (t.sizes().vec() != it->second)
      throw DataError(file + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) + ", expected " +
                      shape_str(it->second) + " (r = " + std::to_string(cfg.lora.rank) + ")");
    if (!at::isFloatingType(t.scalar_type()))
      throw DataError(file + ": tensor '" + name + "' is not floating point");
    if (!t.isfinite().all().item<bool>())
      throw DataError(file + ": tensor '" + name + "' holds non-finite values (NaN or inf)",
                      "the adapter file is corrupt, or it was saved after training diverged");
  }
  for (const auto& [name, shape] : expected)
    if (!ckpt.tensors.count(name)) throw DataError(file + ": missing tensor '" + name + "'");
  add_lora(model, cfg.lora, dtype, 0);
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : lora_parameters(model)) p.copy_(ckpt.tensors.at(kPeftPrefix + name));
}

void save_adapter(LlamaImpl& model, const std::string& dir, const LoraOptions& lora, const AdapterSaveOptions& o) {
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, p] : lora_parameters(model)) tensors[kPeftPrefix + name] = p.detach().to(at::kCPU, o.dtype).contiguous();
  if (tensors.empty()) throw UsageError("save_adapter: the model carries no adapters");
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"task_type", "CAUSAL_LM"},
                      {"base_model_name_or_path", o.base_model.empty() ? nlohmann::json() : nlohmann::json(o.base_model)},
                      {"revision", nullptr},
                      {"inference_mode", true},
                      {"r", lora.rank},
                      {"lora_alpha", lora.alpha},
                      {"lora_dropout", lora.dropout},
                      {"fan_in_fan_out", false},
                      {"bias", "none"},
                      {"use_rslora", lora.rslora},
                      {"use_dora", false},
                      {"modules_to_save", nullptr},
                      {"init_lora_weights", true},
                      {"layers_to_transform", nullptr},
                      {"layers_pattern", nullptr},
                      {"rank_pattern", nlohmann::json::object()},
                      {"alpha_pattern", nlohmann::json::object()},
                      {"target_modules", lora.target_regex.empty() ? nlohmann::json(lora.targets)
                                                                   : nlohmann::json(lora.target_regex)}};
  save_folder(dir, o.tokenizer_dir, [&](const std::string& staged) {
    save_safetensors((fs::path(staged) / "adapter_model.safetensors").string(), tensors);
    write_file_atomic((fs::path(staged) / "adapter_config.json").string(), j.dump(2) + "\n");
    for (const auto& [name, contents] : o.extra_files) write_file_atomic((fs::path(staged) / name).string(), contents);
  });
}

void export_merged(const std::string& adapter_dir, const std::string& base_dir, const std::string& out_dir,
                   std::optional<at::ScalarType> dtype) {
  const std::string base = base_dir.empty() ? adapter_base_dir(adapter_dir) : base_dir;
  const ModelConfig config = load_model_config(base);
  Llama model = load_llama(base, LoadOptions{at::kFloat, at::kCPU});  // merged in fp32, stored as asked
  load_adapter(*model, adapter_dir, at::kFloat);
  merge_lora(*model);
  const std::string tok = tokenizer_dir_of(adapter_dir) == adapter_dir ? adapter_dir : base;
  SaveOptions so;
  so.dtype = dtype.value_or(stored_dtype(config));
  so.tokenizer_dir = tok;
  // The scorers the adapter was trained against stay on record in the merged model (gaft eval warns on them).
  if (const fs::path rec = fs::path(adapter_dir) / kTrainingScorersFile; fs::exists(rec))
    so.extra_files[kTrainingScorersFile] = read_text_file(rec.string());
  save_model(model, out_dir, so);
}

}  // namespace gaft
