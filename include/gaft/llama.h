// The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Granite, Phi-3) as LibTorch modules,
// registered under the Hugging Face checkpoint names so that state dicts line up without renaming code:
//
//   model.embed_tokens, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm (Qwen3,
//   Gemma 3), post_attention_layernorm, pre_feedforward_layernorm and post_feedforward_layernorm (Gemma),
//   mlp.{gate,up,down}_proj}, model.norm, lm_head (untied LM) or score (classifier). Phi-3 fuses the projections:
//   self_attn.qkv_proj [q | k | v] and mlp.gate_up_proj [gate | up], each one adaptable module (LoRA as PEFT).
//
// The families differ only in the ModelConfig fields they set (model_config.h): Gemma's (1 + w) norms around
// both blocks, GeGLU, scaled embeddings, query_pre_attn_scalar, soft-capped scores and logits and per-type RoPE;
// Granite's embedding, residual, attention and logits multipliers; Phi-3's fused projections, partial rotary
// features and longrope scaling.
//
// Weights in the HF layout already use the rotate-half RoPE convention, so no permutation is needed at load.
// forward() returns the final hidden states [B, T, H] (after model.norm); logits() applies the LM head, and
// classify() the sequence-classification head, so a fused loss can consume hidden states + lm_head_weight().
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "gaft/lora.h"
#include "gaft/model_config.h"
#include "gaft/safetensors.h"

namespace gaft {

// Keys and values of every layer for incremental decoding: buffers of `capacity` positions (grown by doubling
// when a forward needs more), of which the first length() are filled.
struct KVCache {
  std::vector<at::Tensor> keys;    // per layer [B, KVH, capacity, D]
  std::vector<at::Tensor> values;  // per layer [B, KVH, capacity, D]
  int64_t filled = 0;              // positions written so far
  int64_t reserve = 0;             // capacity to allocate up front (e.g. prompt + new tokens); 0: as needed
  int64_t length() const { return filled; }
};

// One layer's view of the cache during a forward: write T new positions at `past`, attend keys
// [first, past + T) (first > 0 only under a sliding window: older keys are out of every query's window).
struct LayerCache {
  at::Tensor* keys;    // [B, KVH, capacity, D]
  at::Tensor* values;  // [B, KVH, capacity, D]
  int64_t past;
  int64_t reserve;
  int64_t first = 0;
};

// weight * normalize(x), normalised in fp32 and cast back to the input dtype before the weight (HF semantics).
// Gemma (offset): normalize(x) * (1 + weight) in fp32, cast back after the product.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, bool offset = false);
  at::Tensor forward(const at::Tensor& x);  // [..., dim]
  at::Tensor weight;                        // [dim]
  double eps;
  bool offset;
};
TORCH_MODULE(RMSNorm);

// Rotary position embeddings (rotate-half convention) over the first `dim` features of a head, optionally with
// llama3, linear or longrope frequency scaling (model_config.h).
class RotaryEmbedding {
 public:
  RotaryEmbedding() = default;
  RotaryEmbedding(int64_t dim, double theta, const std::optional<RopeScaling>& scaling);
  // cos and sin [B, T, D] in fp32 for position ids [B, T] (D = dim). longrope: each row takes the long
  // frequencies when its largest position id is at or past `original` (on the device, no host sync).
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& position_ids) const;
  at::Tensor inv_freq;       // [D / 2] fp32 (longrope: the short factors')
  at::Tensor inv_freq_long;  // [D / 2] fp32, longrope only
  int64_t original = 0;      // longrope: original_max_position_embeddings
  double scale = 1.0;        // cos and sin times this (longrope's attention_factor)
};

struct AttentionOptions {
  int64_t hidden_size, num_heads, num_kv_heads, head_dim;
  bool qkv_bias, o_bias, qk_norm;
  double eps;
  bool gemma_norms = false;  // q/k norms with (1 + w)
  double scale = 0;          // scores times scale; 0 = 1/sqrt(head_dim)
  double softcap = 0;        // scores soft-capped: softcap * tanh(scores / softcap); 0 = none
  bool fused = false;        // Phi-3: one qkv_proj [q | k | v] in place of q/k/v_proj
};

// Grouped-query self-attention through at::scaled_dot_product_attention (soft-capped scores: the same in
// plain ATen, scores materialised, softmax in fp32 as transformers' eager attention).
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& o);
  // x [B, T, H]; cos/sin [B, T, Dr] (Dr <= D: RoPE turns the first Dr features); mask [B, 1, T, S - first] bool (true = attend) or undefined for plain
  // causal (T > 1) or every key (T == 1); cache: this layer's keys and values, extended in place; nullptr
  // without a cache (then S = T and first = 0).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     const LayerCache* cache);
  AttentionOptions opt;
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};  // adaptable (lora.h)
  LoraLinear qkv_proj{nullptr};  // fused: [NH*D + 2*KVH*D, H], in place of q/k/v_proj
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
};
TORCH_MODULE(Attention);

// SwiGLU: down(silu(gate(x)) * up(x)); GeGLU (Gemma): gelu_tanh in place of silu. Fused (Phi-3): one
// gate_up_proj whose first half of outputs is the gate, the second the up projection.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden_size, int64_t intermediate_size, bool bias, Activation activation = Activation::kSilu,
          bool fused = false);
  at::Tensor forward(const at::Tensor& x);  // [B, T, H]
  LoraLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};  // adaptable (lora.h)
  LoraLinear gate_up_proj{nullptr};  // fused: [2I, H], in place of gate/up_proj
  Activation activation;
};
TORCH_MODULE(MLP);

// Llama: h = x + attn(norm1(x)); out = h + mlp(norm2(h)). Gemma (sandwich norms): h = x + norm2(attn(norm1(x)));
// out = h + norm4(mlp(norm3(h))). Granite: each block's output times residual_scale before the sum.
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const AttentionOptions& attn, int64_t intermediate_size, bool mlp_bias,
                   Activation activation = Activation::kSilu, double residual_scale = 1.0);  // attn.fused: MLP too
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     const LayerCache* cache);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};  // Gemma only
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  double residual_scale = 1.0;
};
TORCH_MODULE(DecoderLayer);

// Called around each decoder layer of a checkpointed forward (grad mode, no cache, checkpoint_layers) and
// around its recomputation in backward, with the layer's index: distributed.sharding full gathers the layer's
// sharded weights before and frees them after (sharding.h). Not called by other forwards.
struct LayerHooks {
  virtual ~LayerHooks() = default;
  virtual void before_forward(int64_t layer) = 0;
  virtual void after_forward(int64_t layer) = 0;
  virtual void before_backward(int64_t layer) = 0;  // before the recomputation
  virtual void after_backward(int64_t layer) = 0;   // the layer's parameter gradients are complete
};

// Sequences that share a prefix, packed into one row (the training forward, gaft/objective.h): the prefix once,
// then the rest of each sequence (its branch). A branch token sits at the position it has in its own sequence and
// attends to the prefix and to the earlier tokens of its own branch, so each sequence's hidden states are those of
// the sequence run alone (up to float rounding), while the prefix's tokens run once.
//   row:       p0 p1 p2 | a3 a4 | b3 b4 b5 | pad
//   positions:  0  1  2 |  3  4 |  3  4  5 |  0
//   segments:   0  0  0 |  1  1 |  2  2  2 | -1
struct PackedLayout {
  at::Tensor position_ids;  // [B, T] int64: a token's position in its own sequence
  at::Tensor segments;      // [B, T] int64: 0 = the shared prefix, j > 0 = branch j, -1 = padding
};

// The backbone, registered as "model": embeddings, decoder layers, final norm. Under a sliding window W
// (Mistral; Qwen2/3 with use_sliding_window, on the layers config.sliding_layers marks) the query at cache
// position i attends keys j with i - W < j <= i, as transformers' sliding_window_causal_mask_function.
class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const ModelConfig& c);
  // input_ids [B, T]; attention_mask [B, past + T] (1 = token, 0 = padding) or undefined; cache optional.
  // Returns the normalised hidden states [B, T, H].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, KVCache* cache);
  // input_ids [B, T] packed as `layout` says (no cache). Returns [B, T, H]; padding rows are not meaningful.
  at::Tensor forward_packed(const at::Tensor& input_ids, const PackedLayout& layout);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  RotaryEmbedding rotary;
  RotaryEmbedding rotary_local;     // Gemma 3's sliding-window layers (local_rope_theta); else unused
  bool local_rope = false;
  double embedding_scale = 1.0;     // embeddings times this (Gemma: rounded to the weights' dtype first)
  bool round_embedding_scale = false;
  int64_t sliding_window = 0;       // 0: full attention on every layer
  std::vector<bool> sliding_layers;  // per layer: windowed (when sliding_window > 0)
  // Activation checkpointing: in a forward that builds a graph (grad mode, no cache) each decoder layer keeps
  // only its input; backward recomputes the layer (under the forward's autocast state) and back-propagates
  // through the recomputation. Gradients equal those without it; memory per layer drops to one [B, T, H].
  bool checkpoint_layers = false;
  LayerHooks* layer_hooks = nullptr;  // not owned; only with checkpoint_layers
};
TORCH_MODULE(LlamaModel);

// A whole model: backbone plus LM head (tied or not) or sequence-classification head.
class LlamaImpl : public torch::nn::Module {
 public:
  explicit LlamaImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}, KVCache* cache = nullptr);
  // Shared-prefix rows (PackedLayout). Not for longrope models (Phi-3 picks its RoPE factors per sequence length,
  // which a packed row does not have): can_pack() says.
  at::Tensor forward_packed(const at::Tensor& input_ids, const PackedLayout& layout);
  bool can_pack() const;
  // [B, T, H] -> [B, T, V]: softcap(head_input(hidden) lm_head_weight()^T), the cap as config.final_softcap.
  at::Tensor logits(const at::Tensor& hidden);
  // What the LM head multiplies: the hidden states, times config.logits_scale (Granite's 1 / logits_scaling).
  // A fused loss takes head_input(hidden), lm_head_weight() and config.final_softcap.
  at::Tensor head_input(const at::Tensor& hidden) const;
  // [B, T, H] -> [B, num_labels] at the last attended token of each row (the last one without a mask).
  at::Tensor classify(const at::Tensor& hidden, const at::Tensor& attention_mask = {});
  at::Tensor lm_head_weight();  // [V, H]: lm_head.weight, or model.embed_tokens.weight when tied
  KVCache make_cache() const;
  ModelConfig config;
  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // absent when tied or for classification
  torch::nn::Linear score{nullptr};    // classification only
};
TORCH_MODULE(Llama);

// One row of the weight-name table: a checkpoint tensor, its shape from the config, whether it must exist.
struct WeightSpec {
  std::string name;            // "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // [num_heads * head_dim, hidden_size]
  bool required = true;        // false: lm_head.weight of a tied model (ignored if present)
};
std::vector<WeightSpec> llama_weight_table(const ModelConfig& c);
// Checkpoint names that may be present and are ignored (HF's rotary_emb.inv_freq buffers).
bool is_ignorable_weight(const std::string& name);

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // compute dtype; the checkpoint is read in its stored dtype
  at::Device device = at::kCPU;
};

// Copies checkpoint tensors into the model after checking the table: every shape, no unknown and no missing
// tensors. DataError naming the file and the tensor.
void load_llama_weights(Llama& model, const Checkpoint& ckpt, const std::string& where);
// The same from the mapped files, dropping each tensor's pages once copied (peak: the parameters + one tensor).
void load_llama_weights(Llama& model, const MappedCheckpoint& ckpt, const std::string& where);
// config.json + model.safetensors (or shards) from `dir`, read through the mapping straight into parameters
// already in the compute dtype and on the device. A PEFT adapter folder (lora.h) loads its base
// (base_model_name_or_path) with the adapter merged in.
Llama load_llama(const std::string& dir, const LoadOptions& options = {});

}  // namespace gaft
