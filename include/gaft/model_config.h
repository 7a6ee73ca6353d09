// ModelConfig: the hyper-parameters of a Llama-family model, read from a Hugging Face config.json in one
// function (load_model_config) and validated in one pass that lists every problem, naming the file.
//
// Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
// Gemma2ForCausalLM, Gemma3ForCausalLM (text-only checkpoints), GraniteForCausalLM, Phi3ForCausalLM (Phi-3, Phi-3.5,
// Phi-4, Phi-4-mini), and the *ForSequenceClassification variant of each that transformers has (Gemma 3:
// Gemma3TextForSequenceClassification; Granite: none).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gaft {

enum class ModelFamily { kLlama, kMistral, kQwen2, kQwen3, kGemma2, kGemma3, kGranite, kPhi3 };
enum class Activation { kSilu, kGeluTanh };  // the MLP's gate activation: SwiGLU, or GeGLU (Gemma)
enum class ModelHead { kCausalLM, kSequenceClassification };

// rope_scaling {"rope_type": "llama3", ...} (Llama 3.1+), {"rope_type": "linear", "factor": 8} (Gemma 3's global
// layers: frequencies divided by factor) or {"rope_type": "longrope", "short_factor": [...], "long_factor": [...]}
// (Phi-3 / Phi-3.5 / Phi-4-mini; older configs say "su"); absent or null means plain RoPE.
//
// longrope: frequency i is 1 / (ext_i * theta^(2i / rotary_dim)), ext = short_factor for a sequence of at most
// original_max_position_embeddings tokens and long_factor beyond; cos and sin are multiplied by attention_factor
// (given, else sqrt(1 + ln(f) / ln(original)) with f = max_position_embeddings / original, or 1 when f <= 1).
// transformers picks the factors per forward from its largest position; gaft per row, from that row's largest
// position, which equals transformers on each sequence alone (a row does not depend on its batchmates).
struct RopeScaling {
  std::string type;                                 // "llama3", "linear" or "longrope"
  double factor = 8.0;                              // 8.0
  double low_freq_factor = 1.0;                     // 1.0
  double high_freq_factor = 4.0;                    // 4.0
  int64_t original_max_position_embeddings = 8192;  // 8192 (llama3), 4096 (Phi-3 longrope)
  std::vector<double> short_factor, long_factor;    // longrope: rotary_dim / 2 each
  double attention_factor = 1.0;                    // longrope: cos and sin times this (1.19 for Phi-3.5-mini)
};

struct ModelConfig {
  std::string source;                 // the config.json it came from, for messages
  std::string architecture;           // "LlamaForCausalLM"
  ModelFamily family = ModelFamily::kLlama;
  ModelHead head = ModelHead::kCausalLM;

  int64_t hidden_size = 0;              // 64
  int64_t intermediate_size = 0;        // 172 (SwiGLU hidden)
  int64_t num_hidden_layers = 0;        // 5
  int64_t num_attention_heads = 0;      // 8
  int64_t num_key_value_heads = 0;      // 4 (grouped-query attention); default num_attention_heads
  int64_t head_dim = 0;                 // 8; default hidden_size / num_attention_heads
  int64_t vocab_size = 0;               // 512
  int64_t max_position_embeddings = 0;  // 512
  double rms_norm_eps = 1e-6;           // 1e-5
  double rope_theta = 10000.0;          // 10000
  std::optional<RopeScaling> rope_scaling;
  double local_rope_theta = 0;          // Gemma 3: RoPE base of the sliding-window layers (10000, unscaled); 0 = as
                                        // the other layers
  bool tie_word_embeddings = false;     // true: lm_head shares model.embed_tokens.weight
  bool attention_bias = false;          // q/k/v/o biases (Qwen2: q/k/v biases, no o bias)
  bool o_proj_bias = false;             // derived: attention_bias except for Qwen2
  bool mlp_bias = false;                // gate/up/down biases
  bool qk_norm = false;                 // derived: Qwen3 RMSNorms q and k per head
  // Gemma and Granite (1, 0 and false elsewhere):
  Activation activation = Activation::kSilu;  // Gemma: gelu_pytorch_tanh
  bool gemma_norms = false;             // RMSNorm output times (1 + weight), cast after the product; each layer
                                        // also norms its attention output and its MLP's input and output
  double embedding_scale = 1.0;         // embeddings times this: Gemma sqrt(hidden_size) (in the weights' dtype),
                                        // Granite embedding_multiplier
  double residual_scale = 1.0;          // Granite residual_multiplier: h + scale * block(h)
  double attention_scale = 0;           // scores times this; 0 = 1/sqrt(head_dim). Gemma query_pre_attn_scalar^-1/2,
                                        // Granite attention_multiplier
  double attn_softcap = 0;              // Gemma 2 attn_logit_softcapping: scores = c tanh(scores / c); 0 = none
  double final_softcap = 0;             // Gemma final_logit_softcapping: logits = c tanh(logits / c); 0 = none
  double logits_scale = 1.0;            // Granite 1 / logits_scaling
  // Phi-3 (false elsewhere):
  bool fused_projections = false;       // self_attn.qkv_proj [q | k | v] and mlp.gate_up_proj [gate | up] in
                                        // place of q/k/v_proj and gate/up_proj
  int64_t rotary_dim = 0;               // derived: head_dim * partial_rotary_factor (Phi-4-mini: 0.75); RoPE
                                        // turns the first rotary_dim features of each head, the rest pass
  int64_t sliding_window = 0;           // Mistral: 4096; 0 = full attention. Query i sees keys (i - W, i]
  std::vector<bool> sliding_layers;     // derived, one per layer when sliding_window > 0: windowed or not
                                        // (Mistral: all; Qwen2/3: "layer_types", else layers >= max_window_layers;
                                        // Gemma: "layer_types", else every 2nd (Gemma 2) or all but every
                                        // sliding_window_pattern-th (Gemma 3) layer; Phi-3: all)

  int64_t bos_token_id = -1;            // 1; -1 when absent
  std::vector<int64_t> eos_token_ids;   // {2}
  int64_t pad_token_id = -1;            // -1 when absent or null

  int64_t num_labels = 0;               // sequence classification: 2
  std::vector<std::string> id2label;    // {"NEGATIVE", "POSITIVE"}

  nlohmann::json raw;                   // config.json as read: saving a model writes it back (dtype updated)
};

// Reads `path` (a config.json, or a model directory holding one) and validates it; DataError listing every
// problem ("config.json: num_attention_heads 6 must divide hidden_size 64").
ModelConfig load_model_config(const std::string& path);

// Number of parameters a model of this config has (embeddings, attention and MLP weights and biases, norms,
// the LM or classification head), as a double: a corrupt config can describe more than 2^63.
double parameter_count(const ModelConfig& c);
// The same from parsed JSON; `source` names the file in messages.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);

std::string to_string(ModelFamily family);

// The sequence length beyond which a longrope model switches to its long factors (original_max_position_
// embeddings); 0 for every other model. A KV cache filled under the short factors is stale past it.
int64_t longrope_switch(const ModelConfig& c);

}  // namespace gaft
