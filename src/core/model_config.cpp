// ModelConfig from a Hugging Face config.json: one reading function, one validation pass.
#include "gaft/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "gaft/error.h"
#include "gaft/adapter_folder.h"
#include "gaft/read_file.h"

namespace gaft {
namespace {

// Collects every problem of one config.json, then throws them together.
class Problems {
 public:
  explicit Problems(std::string source) : source_(std::move(source)) {}
  void add(const std::string& message) { list_.push_back(source_ + ": " + message); }
  void throw_if_any() const {
    if (list_.empty()) return;
    std::string all;
    for (size_t i = 0; i < list_.size(); ++i) all += (i ? "\n" : "") + list_[i];
    throw DataError(all);
  }

 private:
  std::string source_;
  std::vector<std::string> list_;
};

// Reads an integer field; absent or null leaves `fallback` (required fields report a problem).
int64_t get_int(const nlohmann::json& j, const char* key, int64_t fallback, bool required, Problems& p) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) p.add(std::string("missing required field \"") + key + "\"");
    return fallback;
  }
  if (!j[key].is_number_integer()) {
    p.add(std::string("\"") + key + "\" expected an integer, got " + j[key].dump());
    return fallback;
  }
  return j[key].get<int64_t>();
}

double get_double(const nlohmann::json& j, const char* key, double fallback, Problems& p) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) {
    p.add(std::string("\"") + key + "\" expected a number, got " + j[key].dump());
    return fallback;
  }
  return j[key].get<double>();
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, Problems& p) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) {
    p.add(std::string("\"") + key + "\" expected true or false, got " + j[key].dump());
    return fallback;
  }
  return j[key].get<bool>();
}

// A list of numbers under `key` of rope_scaling; problems named.
std::vector<double> get_numbers(const nlohmann::json& r, const char* key, Problems& p) {
  std::vector<double> out;
  if (!r.contains(key) || !r[key].is_array()) {
    p.add(std::string("rope_scaling.") + key + " expected a list of numbers, got " +
          (r.contains(key) ? r[key].dump() : std::string("nothing")));
    return out;
  }
  for (const auto& x : r[key]) {
    if (!x.is_number()) {
      p.add(std::string("rope_scaling.") + key + " expected a list of numbers, got " + r[key].dump());
      return {};
    }
    out.push_back(x.get<double>());
  }
  return out;
}

// `r`: rope_scaling (or a rope_parameters block); `top`: the whole config, for the keys Phi-3 keeps at the top
// (original_max_position_embeddings) and max_position_embeddings.
void read_rope_scaling(const nlohmann::json& r, const nlohmann::json& top, ModelConfig& c, Problems& p) {
  const nlohmann::json& t = r.contains("rope_type") ? r["rope_type"] : r.contains("type") ? r["type"] : nlohmann::json("default");
  if (!t.is_string()) {
    p.add("rope_scaling type expected a string, got " + t.dump());
    return;
  }
  std::string type = t.get<std::string>();
  if (type == "default") return;
  // transformers' Phi3Config renames "su" (the Phi-3 128k checkpoints) and "yarn" to longrope.
  if (type == "su" || (type == "yarn" && c.family == ModelFamily::kPhi3)) type = "longrope";
  if (type != "llama3" && type != "linear" && !(type == "longrope" && c.family == ModelFamily::kPhi3)) {
    p.add("rope_scaling type \"" + type + "\" is not supported" +
          (type == "longrope" ? std::string(" for ") + c.architecture + " (longrope: Phi-3 models)" : std::string()) +
          ", expected \"llama3\", \"linear\"" + (c.family == ModelFamily::kPhi3 ? ", \"longrope\"" : "") + " or none");
    return;
  }
  RopeScaling s;
  s.type = type;
  if (type == "longrope") {
    s.short_factor = get_numbers(r, "short_factor", p);
    s.long_factor = get_numbers(r, "long_factor", p);
    s.original_max_position_embeddings =
        get_int(r, "original_max_position_embeddings",
                get_int(top, "original_max_position_embeddings", 4096, false, p), false, p);
    if (s.original_max_position_embeddings <= 0) {
      p.add("original_max_position_embeddings expected > 0, got " + std::to_string(s.original_max_position_embeddings));
      return;
    }
    // As transformers: factor given, else max_position_embeddings / original; attention_factor given, else
    // sqrt(1 + ln(factor) / ln(original)) above 1.
    s.factor = get_double(r, "factor", static_cast<double>(get_int(top, "max_position_embeddings", 2048, false, p)) /
                                           static_cast<double>(s.original_max_position_embeddings), p);
    const double fallback = s.factor <= 1.0 ? 1.0
                                            : std::sqrt(1.0 + std::log(s.factor) /
                                                                  std::log(static_cast<double>(s.original_max_position_embeddings)));
    s.attention_factor = get_double(r, "attention_factor", fallback, p);
    if (s.attention_factor <= 0) p.add("rope_scaling.attention_factor expected > 0, got " + std::to_string(s.attention_factor));
    for (const auto& [name, v] : {std::pair{"short_factor", &s.short_factor}, {"long_factor", &s.long_factor}})
      for (double x : *v)
        if (!(x > 0)) {
          p.add(std::string("rope_scaling.") + name + " expected positive numbers, got " + std::to_string(x));
          break;
        }
    c.rope_scaling = s;
    return;
  }
  s.factor = get_double(r, "factor", s.factor, p);
  if (type == "linear") {
    if (s.factor <= 0) p.add("rope_scaling.factor expected > 0, got " + std::to_string(s.factor));
    c.rope_scaling = s;
    return;
  }
  s.low_freq_factor = get_double(r, "low_freq_factor", s.low_freq_factor, p);
  s.high_freq_factor = get_double(r, "high_freq_factor", s.high_freq_factor, p);
  s.original_max_position_embeddings =
      get_int(r, "original_max_position_embeddings", s.original_max_position_embeddings, false, p);
  if (s.factor <= 0) p.add("rope_scaling.factor expected > 0, got " + std::to_string(s.factor));
  if (s.high_freq_factor <= s.low_freq_factor)
    p.add("rope_scaling.high_freq_factor " + std::to_string(s.high_freq_factor) + " must exceed low_freq_factor " +
          std::to_string(s.low_freq_factor));
  c.rope_scaling = s;
}

}  // namespace

std::string to_string(ModelFamily family) {
  switch (family) {
    case ModelFamily::kLlama: return "llama";
    case ModelFamily::kMistral: return "mistral";
    case ModelFamily::kQwen2: return "qwen2";
    case ModelFamily::kQwen3: return "qwen3";
    case ModelFamily::kGemma2: return "gemma2";
    case ModelFamily::kGemma3: return "gemma3";
    case ModelFamily::kGranite: return "granite";
    case ModelFamily::kPhi3: return "phi3";
  }
  return "?";
}

int64_t longrope_switch(const ModelConfig& c) {
  return c.rope_scaling && c.rope_scaling->type == "longrope" ? c.rope_scaling->original_max_position_embeddings : 0;
}

ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source) {
  Problems p(source);
  ModelConfig c;
  c.source = source;
  c.raw = j;
  if (!j.is_object()) {
    p.add("expected a JSON object");
    p.throw_if_any();
  }

  // Architecture: family and head.
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string()) {
    p.add("missing required field \"architectures\" (e.g. [\"LlamaForCausalLM\"])");
  } else {
    c.architecture = j["architectures"][0].get<std::string>();
    using H = ModelHead;
    using F = ModelFamily;
    const struct { const char* name; ModelFamily family; ModelHead head; } kArchitectures[] = {
        {"LlamaForCausalLM", F::kLlama, H::kCausalLM},
        {"LlamaForSequenceClassification", F::kLlama, H::kSequenceClassification},
        {"MistralForCausalLM", F::kMistral, H::kCausalLM},
        {"MistralForSequenceClassification", F::kMistral, H::kSequenceClassification},
        {"Qwen2ForCausalLM", F::kQwen2, H::kCausalLM},
        {"Qwen2ForSequenceClassification", F::kQwen2, H::kSequenceClassification},
        {"Qwen3ForCausalLM", F::kQwen3, H::kCausalLM},
        {"Qwen3ForSequenceClassification", F::kQwen3, H::kSequenceClassification},
        {"Gemma2ForCausalLM", F::kGemma2, H::kCausalLM},
        {"Gemma2ForSequenceClassification", F::kGemma2, H::kSequenceClassification},
        {"Gemma3ForCausalLM", F::kGemma3, H::kCausalLM},
        {"Gemma3TextForSequenceClassification", F::kGemma3, H::kSequenceClassification},
        {"GraniteForCausalLM", F::kGranite, H::kCausalLM},
        {"Phi3ForCausalLM", F::kPhi3, H::kCausalLM},
        {"Phi3ForSequenceClassification", F::kPhi3, H::kSequenceClassification}};
    bool known = false;
    std::string names;
    for (const auto& a : kArchitectures) {
      names += std::string(names.empty() ? "" : ", ") + a.name;
      if (c.architecture == a.name) {
        c.family = a.family;
        c.head = a.head;
        known = true;
      }
    }
    if (!known)
      p.add("unknown architecture \"" + c.architecture + "\", expected one of " + names +
            (c.architecture == "Gemma3ForConditionalGeneration"
                 ? " (a multimodal Gemma 3 checkpoint: its language model is not read on its own)"
                 : ""));
  }
  const bool gemma = c.family == ModelFamily::kGemma2 || c.family == ModelFamily::kGemma3;

  // Sizes.
  c.hidden_size = get_int(j, "hidden_size", 0, true, p);
  c.intermediate_size = get_int(j, "intermediate_size", 0, true, p);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", 0, true, p);
  c.num_attention_heads = get_int(j, "num_attention_heads", 0, true, p);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", c.num_attention_heads, false, p);
  c.vocab_size = get_int(j, "vocab_size", 0, true, p);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", 2048, false, p);
  const bool explicit_head_dim = j.contains("head_dim") && !j["head_dim"].is_null();
  c.head_dim = get_int(j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0,
                       false, p);

  // Numerics.
  c.rms_norm_eps = get_double(j, "rms_norm_eps", 1e-6, p);
  c.rope_theta = get_double(j, "rope_theta", c.family == ModelFamily::kGemma3 ? 1000000.0 : 10000.0, p);
  if (c.family == ModelFamily::kGemma3) c.local_rope_theta = get_double(j, "rope_local_base_freq", 10000.0, p);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {  // transformers v5 layout
    const nlohmann::json& rp = j["rope_parameters"];
    if (rp.contains("full_attention") && rp["full_attention"].is_object()) {  // per layer type (Gemma 3)
      c.rope_theta = get_double(rp["full_attention"], "rope_theta", c.rope_theta, p);
      read_rope_scaling(rp["full_attention"], j, c, p);
      if (rp.contains("sliding_attention") && rp["sliding_attention"].is_object()) {
        const nlohmann::json& local = rp["sliding_attention"];
        c.local_rope_theta = get_double(local, "rope_theta", c.local_rope_theta, p);
        if (local.contains("rope_type") && local["rope_type"] != "default")
          p.add("rope_parameters.sliding_attention.rope_type " + local["rope_type"].dump() +
                " is not supported, expected \"default\"");
      }
    } else {
      c.rope_theta = get_double(rp, "rope_theta", c.rope_theta, p);
      read_rope_scaling(rp, j, c, p);
    }
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    if (!j["rope_scaling"].is_object()) p.add("\"rope_scaling\" expected an object or null, got " + j["rope_scaling"].dump());
    else read_rope_scaling(j["rope_scaling"], j, c, p);
  }
  // The MLP's activation: Gemma names it hidden_activation (hidden_act in older configs).
  const char* act_key = gemma && j.contains("hidden_activation") && !j["hidden_activation"].is_null() ? "hidden_activation"
                                                                                                     : "hidden_act";
  const std::string expected_act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (j.contains(act_key) && !j[act_key].is_null() && j[act_key] != expected_act)
    p.add(std::string("\"") + act_key + "\" expected \"" + expected_act + "\", got " + j[act_key].dump());
  if (gemma) {
    c.activation = Activation::kGeluTanh;
    c.gemma_norms = true;
    c.embedding_scale = std::sqrt(static_cast<double>(c.hidden_size));
    const double scalar = get_double(j, "query_pre_attn_scalar", 256, p);
    if (scalar <= 0) p.add("query_pre_attn_scalar expected > 0, got " + std::to_string(scalar));
    else c.attention_scale = 1.0 / std::sqrt(scalar);
    // transformers' defaults: Gemma 2 caps scores at 50 and logits at 30, Gemma 3 neither; null = none.
    const bool two = c.family == ModelFamily::kGemma2;
    c.attn_softcap = j.contains("attn_logit_softcapping") ? get_double(j, "attn_logit_softcapping", 0, p) : two ? 50.0 : 0;
    c.final_softcap = j.contains("final_logit_softcapping") ? get_double(j, "final_logit_softcapping", 0, p) : two ? 30.0 : 0;
    for (const auto& [name, v] : {std::pair{"attn_logit_softcapping", c.attn_softcap}, {"final_logit_softcapping", c.final_softcap}})
      if (v < 0) p.add(std::string(name) + " expected > 0 or null, got " + std::to_string(v));
  }
  if (c.family == ModelFamily::kGranite) {
    c.embedding_scale = get_double(j, "embedding_multiplier", 1.0, p);
    c.residual_scale = get_double(j, "residual_multiplier", 1.0, p);
    c.attention_scale = get_double(j, "attention_multiplier", 1.0, p);
    const double logits_scaling = get_double(j, "logits_scaling", 1.0, p);
    if (logits_scaling <= 0) p.add("logits_scaling expected > 0, got " + std::to_string(logits_scaling));
    else c.logits_scale = 1.0 / logits_scaling;
    if (c.attention_scale <= 0) p.add("attention_multiplier expected > 0, got " + std::to_string(c.attention_scale));
  }

  // Phi-3: fused projections, partial rotary (Phi-4-mini 0.75; top level, or in v5's rope_parameters).
  double partial_rotary = 1.0;
  if (c.family == ModelFamily::kPhi3) {
    c.fused_projections = true;
    partial_rotary = get_double(j, "partial_rotary_factor", 1.0, p);
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
      partial_rotary = get_double(j["rope_parameters"], "partial_rotary_factor", partial_rotary, p);
    if (!(partial_rotary > 0 && partial_rotary <= 1))
      p.add("partial_rotary_factor expected in (0, 1], got " + std::to_string(partial_rotary));
  }
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * partial_rotary);  // int() as transformers
  if (c.head_dim > 0 && (c.rotary_dim % 2 != 0 || c.rotary_dim <= 0))
    p.add("head_dim " + std::to_string(c.head_dim) + " x partial_rotary_factor " + std::to_string(partial_rotary) +
          " = " + std::to_string(c.rotary_dim) + " rotary features, expected a positive even number");
  if (c.rope_scaling && c.rope_scaling->type == "longrope")
    for (const auto& [name, v] : {std::pair{"short_factor", &c.rope_scaling->short_factor},
                                  {"long_factor", &c.rope_scaling->long_factor}})
      if (!v->empty() && static_cast<int64_t>(v->size()) != c.rotary_dim / 2)
        p.add(std::string("rope_scaling.") + name + " has " + std::to_string(v->size()) +
              " entries, expected rotary_dim / 2 = " + std::to_string(c.rotary_dim / 2));

  // Biases and norms by family.
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", gemma, p);  // Gemma ties unless it says otherwise
  c.attention_bias = get_bool(j, "attention_bias", false, p);
  c.mlp_bias = get_bool(j, "mlp_bias", false, p);
  c.o_proj_bias = c.attention_bias;
  if (c.family == ModelFamily::kQwen2) {  // Qwen2 always has q/k/v biases and never an o bias
    c.attention_bias = true;
    c.o_proj_bias = false;
  }
  if (c.family == ModelFamily::kMistral || c.family == ModelFamily::kQwen2 || c.family == ModelFamily::kPhi3) {
    c.attention_bias = c.family == ModelFamily::kQwen2;  // Phi-3: no biases
    c.o_proj_bias = false;
    c.mlp_bias = false;
  }
  c.qk_norm = c.family == ModelFamily::kQwen3 || c.family == ModelFamily::kGemma3;
  // Phi-3 windows every layer when sliding_window is set (Phi-3-mini: 2047), as Mistral.
  const bool all_windowed = c.family == ModelFamily::kMistral || c.family == ModelFamily::kPhi3;
  const bool windowed = all_windowed || gemma || get_bool(j, "use_sliding_window", false, p);
  if (windowed) c.sliding_window = get_int(j, "sliding_window", gemma ? 4096 : 0, false, p);
  if (c.sliding_window < 0) p.add("sliding_window expected >= 0 or null, got " + std::to_string(c.sliding_window));
  if (c.sliding_window > 0 && c.num_hidden_layers > 0) {
    // transformers: Mistral windows every layer; Qwen2/3 the layers of type "sliding_attention", by default
    // those from max_window_layers (28) on.
    c.sliding_layers.assign(c.num_hidden_layers, all_windowed);
    if (!all_windowed) {
      if (j.contains("layer_types") && j["layer_types"].is_array()) {
        const auto& types = j["layer_types"];
        if (static_cast<int64_t>(types.size()) != c.num_hidden_layers)
          p.add("\"layer_types\" has " + std::to_string(types.size()) + " entries, expected num_hidden_layers " +
                std::to_string(c.num_hidden_layers));
        for (size_t i = 0; i < types.size() && i < c.sliding_layers.size(); ++i) {
          const std::string t = types[i].is_string() ? types[i].get<std::string>() : types[i].dump();
          if (t != "sliding_attention" && t != "full_attention")
            p.add("\"layer_types\"[" + std::to_string(i) + "] expected \"full_attention\" or \"sliding_attention\", got " + t);
          c.sliding_layers[i] = t == "sliding_attention";
        }
      } else if (c.family == ModelFamily::kGemma2) {  // transformers: layer i slides when (i + 1) % 2
        for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.sliding_layers[i] = (i + 1) % 2 != 0;
      } else if (c.family == ModelFamily::kGemma3) {  // every sliding_window_pattern-th layer is global
        const int64_t pattern = get_int(j, "sliding_window_pattern", get_int(j, "_sliding_window_pattern", 6, false, p),
                                        false, p);
        if (pattern < 1) p.add("sliding_window_pattern expected >= 1, got " + std::to_string(pattern));
        for (int64_t i = 0; i < c.num_hidden_layers && pattern >= 1; ++i) c.sliding_layers[i] = (i + 1) % pattern != 0;
      } else {
        const int64_t from = get_int(j, "max_window_layers", 28, false, p);
        for (int64_t i = from < 0 ? 0 : from; i < c.num_hidden_layers; ++i) c.sliding_layers[i] = true;
      }
    }
  }

  // Special tokens.
  c.bos_token_id = get_int(j, "bos_token_id", -1, false, p);
  c.pad_token_id = get_int(j, "pad_token_id", -1, false, p);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (const auto& x : e) {
        if (x.is_number_integer()) c.eos_token_ids.push_back(x.get<int64_t>());
        else p.add("\"eos_token_id\" expected integers, got " + e.dump());
      }
    else p.add("\"eos_token_id\" expected an integer or a list, got " + e.dump());
  }

  // Classification labels.
  if (c.head == ModelHead::kSequenceClassification) {
    if (j.contains("id2label") && j["id2label"].is_object()) {
      const auto& m = j["id2label"];
      c.id2label.resize(m.size());
      for (const auto& [k, v] : m.items()) {
        size_t i = 0;
        try {
          i = std::stoul(k);
        } catch (...) {
          i = m.size();
        }
        if (i >= m.size() || !v.is_string()) p.add("\"id2label\" expected {\"0\": name, ...}, got " + m.dump());
        else c.id2label[i] = v.get<std::string>();
      }
    }
    c.num_labels = get_int(j, "num_labels", c.id2label.empty() ? 2 : static_cast<int64_t>(c.id2label.size()), false, p);
    if (!c.id2label.empty() && c.num_labels != static_cast<int64_t>(c.id2label.size()))
      p.add("num_labels " + std::to_string(c.num_labels) + " does not match id2label with " +
            std::to_string(c.id2label.size()) + " labels");
    if (c.num_labels < 1) p.add("num_labels expected >= 1, got " + std::to_string(c.num_labels));
  }

  // Consistency.
  for (const auto& [name, v] : {std::pair{"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                                {"num_hidden_layers", c.num_hidden_layers},
                                {"num_attention_heads", c.num_attention_heads},
                                {"num_key_value_heads", c.num_key_value_heads}, {"vocab_size", c.vocab_size},
                                {"max_position_embeddings", c.max_position_embeddings}, {"head_dim", c.head_dim}})
    if (v <= 0 && j.contains(name)) p.add(std::string(name) + " expected > 0, got " + std::to_string(v));
  // Upper bounds, well above every published model (Llama 3.1 405B: hidden 16384, 126 layers, vocab 128256;
  // Gemma: vocab 256000), so that a corrupt value is an error here and not an allocation of petabytes.
  for (const auto& [name, v, most] :
       {std::tuple<const char*, int64_t, int64_t>{"hidden_size", c.hidden_size, 1 << 17},
        {"intermediate_size", c.intermediate_size, 1 << 20},
        {"num_hidden_layers", c.num_hidden_layers, 4096},
        {"num_attention_heads", c.num_attention_heads, 4096},
        {"num_key_value_heads", c.num_key_value_heads, 4096},
        {"vocab_size", c.vocab_size, 1 << 24},
        {"max_position_embeddings", c.max_position_embeddings, int64_t{1} << 30},
        {"head_dim", c.head_dim, 1 << 14}})
    if (v > most) p.add(std::string(name) + " " + std::to_string(v) + " is out of range: expected at most " + std::to_string(most));
  if (c.num_attention_heads > 0 && c.hidden_size > 0 && !explicit_head_dim &&
      c.hidden_size % c.num_attention_heads != 0)
    p.add("num_attention_heads " + std::to_string(c.num_attention_heads) + " must divide hidden_size " +
          std::to_string(c.hidden_size) + " (or give head_dim)");
  if (c.num_key_value_heads > 0 && c.num_attention_heads > 0 && c.num_attention_heads % c.num_key_value_heads != 0)
    p.add("num_key_value_heads " + std::to_string(c.num_key_value_heads) + " must divide num_attention_heads " +
          std::to_string(c.num_attention_heads));
  if (c.head_dim > 0 && c.head_dim % 2 != 0) p.add("head_dim expected even for rotary embeddings, got " + std::to_string(c.head_dim));
  if (c.rms_norm_eps <= 0) p.add("rms_norm_eps expected > 0, got " + std::to_string(c.rms_norm_eps));
  if (c.rope_theta <= 0) p.add("rope_theta expected > 0, got " + std::to_string(c.rope_theta));
  for (const auto& [name, id] : {std::pair{"bos_token_id", c.bos_token_id}, {"pad_token_id", c.pad_token_id}})
    if (id >= c.vocab_size && c.vocab_size > 0)
      p.add(std::string(name) + " " + std::to_string(id) + " expected < vocab_size " + std::to_string(c.vocab_size));
  for (int64_t id : c.eos_token_ids)
    if (id < 0 || (c.vocab_size > 0 && id >= c.vocab_size))
      p.add("eos_token_id " + std::to_string(id) + " expected in [0, vocab_size " + std::to_string(c.vocab_size) + ")");
  p.throw_if_any();
  return c;
}

double parameter_count(const ModelConfig& c) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double attention = H * q + 2 * H * kv + q * H + (c.attention_bias ? q + 2 * kv : 0) + (c.o_proj_bias ? H : 0) +
                           (c.qk_norm ? 2.0 * static_cast<double>(c.head_dim) : 0);
  const double mlp = 3 * H * I + (c.mlp_bias ? 2 * I + H : 0);
  const double layer = attention + mlp + (c.gemma_norms ? 4 : 2) * H;
  const double embed = static_cast<double>(c.vocab_size) * H;
  double head = 0;
  if (c.head == ModelHead::kSequenceClassification) head = H * static_cast<double>(c.num_labels);
  else if (!c.tie_word_embeddings) head = embed;
  return embed + static_cast<double>(c.num_hidden_layers) * layer + H + head;
}

ModelConfig load_model_config(const std::string& path) {
  if (is_adapter_dir(path)) return load_model_config(adapter_base_dir(path));  // a PEFT adapter: its base
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  return parse_model_config(read_json_file(file, "a model directory needs a Hugging Face config.json"), file);
}

}  // namespace gaft
