// Llama-family decoder modules, the weight-name table and the loader. See gaft/llama.h.
#include "gaft/llama.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <tuple>
#include <mutex>
#include <set>

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

#include "gaft/error.h"

namespace gaft {
namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// x [B, NH, T, D]: (-x2, x1)
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, bool offset_) : eps(eps_), offset(offset_) {
  weight = register_parameter("weight", offset ? torch::zeros({dim}) : torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const at::Tensor x32 = x.to(at::kFloat);                                   // [..., dim]
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, true) + eps);  // [..., dim]
  if (offset) return (normed * (1 + weight.to(at::kFloat))).to(x.scalar_type());
  return weight * normed.to(x.scalar_type());
}

RotaryEmbedding::RotaryEmbedding(int64_t dim, double theta, const std::optional<RopeScaling>& scaling) {
  // HF: 1 / theta^(arange(0, D, 2) / D), computed in fp32.
  const at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<float>(dim);
  const at::Tensor power = at::pow(at::scalar_tensor(theta, at::kFloat), exponent);  // [D / 2]
  inv_freq = 1.0 / power;
  if (scaling && scaling->type == "longrope") {  // HF: 1 / (ext_factors * base^(arange(0, D, 2) / D))
    const auto ext = [&](const std::vector<double>& f) {
      TORCH_CHECK(static_cast<int64_t>(f.size()) == dim / 2, "longrope factors: ", f.size(), " for ", dim / 2,
                  " frequencies");
      return at::tensor(f, at::kDouble).to(at::kFloat);
    };
    inv_freq = 1.0 / (ext(scaling->short_factor) * power);
    inv_freq_long = 1.0 / (ext(scaling->long_factor) * power);
    original = scaling->original_max_position_embeddings;
    scale = scaling->attention_factor;
  }
  if (scaling && scaling->type == "linear") inv_freq = inv_freq / scaling->factor;
  if (scaling && scaling->type == "llama3") {
    const double factor = scaling->factor, low = scaling->low_freq_factor, high = scaling->high_freq_factor;
    const double old_len = static_cast<double>(scaling->original_max_position_embeddings);
    const double low_freq_wavelen = old_len / low, high_freq_wavelen = old_len / high;
    const at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
    const at::Tensor smooth = (old_len / wavelen - low) / (high - low);
    const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    const at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(const at::Tensor& position_ids) const {
  at::Tensor f = inv_freq.to(position_ids.device());  // [D / 2]
  if (inv_freq_long.defined()) {
    // longrope: a row whose largest position reaches `original` uses the long factors (transformers: seq_len =
    // max(position_ids) + 1 > original_max_position_embeddings), chosen on the device.
    const at::Tensor is_long = (position_ids.amax(-1, true) >= original).unsqueeze(-1);   // [B, 1, 1]
    f = at::where(is_long, inv_freq_long.to(position_ids.device()).view({1, 1, -1}), f.view({1, 1, -1}));  // [B, 1, D / 2]
  }
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * f;  // [B, T, D / 2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1);                     // [B, T, D]
  if (scale != 1.0) return {emb.cos() * scale, emb.sin() * scale};
  return {emb.cos(), emb.sin()};
}

AttentionImpl::AttentionImpl(const AttentionOptions& o) : opt(o) {
  if (o.fused) {
    qkv_proj = register_module(
        "qkv_proj", LoraLinear(o.hidden_size, (o.num_heads + 2 * o.num_kv_heads) * o.head_dim, o.qkv_bias));
  } else {
    q_proj = register_module("q_proj", LoraLinear(o.hidden_size, o.num_heads * o.head_dim, o.qkv_bias));
    k_proj = register_module("k_proj", LoraLinear(o.hidden_size, o.num_kv_heads * o.head_dim, o.qkv_bias));
    v_proj = register_module("v_proj", LoraLinear(o.hidden_size, o.num_kv_heads * o.head_dim, o.qkv_bias));
  }
  o_proj = register_module("o_proj", LoraLinear(o.num_heads * o.head_dim, o.hidden_size, o.o_bias));
  if (o.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(o.head_dim, o.eps, o.gemma_norms));
    k_norm = register_module("k_norm", RMSNorm(o.head_dim, o.eps, o.gemma_norms));
  }
}

namespace {

// Attention with soft-capped scores, as transformers' eager_attention_forward: scores = q k^T * scale in the
// input dtype, then cap * tanh(scores / cap), masked, softmax in fp32, cast back. q [B, G, Tq, D] and k, v
// [B, G, S, D] with the same G; mask [B, 1, Tq, S] bool or undefined (then causal when `causal`).
at::Tensor softcapped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                                bool causal, double scale, double cap) {
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;  // [B, G, Tq, S]
  scores = at::tanh(scores / cap) * cap;
  at::Tensor keep = mask;
  if (!keep.defined() && causal) {
    const int64_t T = q.size(-2), S = k.size(-2);
    keep = at::ones({T, S}, q.options().dtype(at::kBool)).tril(S - T);
  }
  if (keep.defined()) scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());  // [B, G, Tq, S]
  return at::matmul(probs, v);                                                       // [B, G, Tq, D]
}

}  // namespace

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& mask, const LayerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), D = opt.head_dim;
  at::Tensor q, k, v;
  if (qkv_proj) {
    const at::Tensor qkv = qkv_proj->forward(x);  // [B, T, (NH + 2 KVH) D]
    const int64_t nq = opt.num_heads * D, nkv = opt.num_kv_heads * D;
    q = qkv.narrow(-1, 0, nq).reshape({B, T, opt.num_heads, D});          // [B, T, NH, D]
    k = qkv.narrow(-1, nq, nkv).reshape({B, T, opt.num_kv_heads, D});     // [B, T, KVH, D]
    v = qkv.narrow(-1, nq + nkv, nkv).reshape({B, T, opt.num_kv_heads, D});
  } else {
    q = q_proj->forward(x).view({B, T, opt.num_heads, D});     // [B, T, NH, D]
    k = k_proj->forward(x).view({B, T, opt.num_kv_heads, D});  // [B, T, KVH, D]
    v = v_proj->forward(x).view({B, T, opt.num_kv_heads, D});  // [B, T, KVH, D]
  }
  if (opt.qk_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  q = q.transpose(1, 2);  // [B, NH, T, D]
  k = k.transpose(1, 2);  // [B, KVH, T, D]
  v = v.transpose(1, 2);  // [B, KVH, T, D]
  const at::Tensor c = cos.to(q.scalar_type()).unsqueeze(1), s = sin.to(q.scalar_type()).unsqueeze(1);  // [B, 1, T, Dr]
  const int64_t Dr = c.size(-1);
  if (Dr == D) {
    q = q * c + rotate_half(q) * s;
    k = k * c + rotate_half(k) * s;
  } else {  // partial rotary (Phi-4-mini): the first Dr features turn, the rest pass unchanged
    const auto turn = [&](const at::Tensor& t) {
      const at::Tensor r = t.narrow(-1, 0, Dr);
      return at::cat({r * c + rotate_half(r) * s, t.narrow(-1, Dr, D - Dr)}, -1);
    };
    q = turn(q);
    k = turn(k);
  }
  if (cache) {
    at::Tensor& ck = *cache->keys;
    at::Tensor& cv = *cache->values;
    const int64_t need = cache->past + T;
    if (!ck.defined() || ck.size(2) < need) {  // grow: at least double, at least the reserve
      const int64_t old = ck.defined() ? ck.size(2) : 0;
      const int64_t capacity = std::max({need, cache->reserve, 2 * old});
      at::Tensor nk = at::empty({B, opt.num_kv_heads, capacity, D}, k.options());
      at::Tensor nv = at::empty({B, opt.num_kv_heads, capacity, D}, v.options());
      if (cache->past > 0) {
        TORCH_CHECK(ck.size(0) == B, "KV cache holds batch ", ck.size(0), ", forward got ", B);
        nk.narrow(2, 0, cache->past).copy_(ck.narrow(2, 0, cache->past));
        nv.narrow(2, 0, cache->past).copy_(cv.narrow(2, 0, cache->past));
      }
      ck = nk;
      cv = nv;
    }
    ck.narrow(2, cache->past, T).copy_(k);
    cv.narrow(2, cache->past, T).copy_(v);
    k = ck.narrow(2, cache->first, need - cache->first);  // [B, KVH, S - first, D]
    v = cv.narrow(2, cache->first, need - cache->first);
  }
  const int64_t rep = opt.num_heads / opt.num_kv_heads;
  const std::optional<double> scale = opt.scale > 0 ? std::optional<double>(opt.scale) : std::nullopt;
  const double scale_value = opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const std::optional<at::Tensor> sdpa_mask = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  if (rep > 1 && T == 1) {
    // One new token: the rep query heads of a kv head become rep query rows against that head's keys, so the
    // cache is read in place instead of repeated (the mask [B, 1, 1, S] is the same for every row).
    const at::Tensor qg = q.reshape({B, opt.num_kv_heads, rep, D});
    const at::Tensor out = opt.softcap > 0 ? softcapped_attention(qg, k, v, mask, false, scale_value, opt.softcap)
                                           : at::scaled_dot_product_attention(qg, k, v, sdpa_mask, 0.0, false,
                                                                              scale);  // [B, KVH, rep, D]
    return o_proj->forward(out.reshape({B, 1, opt.num_heads * D}));  // [B, 1, H]
  }
  if (rep > 1) {  // kv head h serves query heads h*rep .. h*rep+rep-1 (HF repeat_kv)
    k = k.repeat_interleave(rep, 1);  // [B, NH, S, D]
    v = v.repeat_interleave(rep, 1);
  }
  const bool causal = !mask.defined() && T > 1;
  const at::Tensor out = opt.softcap > 0
                             ? softcapped_attention(q, k, v, mask, causal, scale_value, opt.softcap)
                             : at::scaled_dot_product_attention(q, k, v, sdpa_mask, 0.0, causal, scale);  // [B, NH, T, D]
  return o_proj->forward(out.transpose(1, 2).reshape({B, T, opt.num_heads * D}));  // [B, T, H]
}

MLPImpl::MLPImpl(int64_t hidden, int64_t inter, bool bias, Activation act, bool fused) : activation(act) {
  if (fused) {
    gate_up_proj = register_module("gate_up_proj", LoraLinear(hidden, 2 * inter, bias));
  } else {
    gate_proj = register_module("gate_proj", LoraLinear(hidden, inter, bias));
    up_proj = register_module("up_proj", LoraLinear(hidden, inter, bias));
  }
  down_proj = register_module("down_proj", LoraLinear(inter, hidden, bias));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  if (gate_up_proj) {
    const at::Tensor gu = gate_up_proj->forward(x);  // [B, T, 2I]
    const int64_t I = gu.size(-1) / 2;
    const at::Tensor gate = gu.narrow(-1, 0, I), up = gu.narrow(-1, I, I);
    const at::Tensor act = activation == Activation::kGeluTanh ? at::gelu(gate, "tanh") : at::silu(gate);
    return down_proj->forward(act * up);  // [B, T, H]
  }
  // up before gate: the order LoRA dropout draws its masks in (the one GCC gave the former single expression),
  // kept so that runs and checkpoints made before stay reproducible.
  const at::Tensor up = up_proj->forward(x);      // [B, T, I]
  const at::Tensor gate = gate_proj->forward(x);  // [B, T, I]
  const at::Tensor act = activation == Activation::kGeluTanh ? at::gelu(gate, "tanh") : at::silu(gate);
  return down_proj->forward(act * up);  // [B, T, H]
}

DecoderLayerImpl::DecoderLayerImpl(const AttentionOptions& attn, int64_t intermediate_size, bool mlp_bias,
                                   Activation activation, double residual_scale_)
    : residual_scale(residual_scale_) {
  self_attn = register_module("self_attn", Attention(attn));
  mlp = register_module("mlp", MLP(attn.hidden_size, intermediate_size, mlp_bias, activation, attn.fused));
  const bool g = attn.gemma_norms;
  input_layernorm = register_module("input_layernorm", RMSNorm(attn.hidden_size, attn.eps, g));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(attn.hidden_size, attn.eps, g));
  if (g) {
    pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", RMSNorm(attn.hidden_size, attn.eps, g));
    post_feedforward_layernorm = register_module("post_feedforward_layernorm", RMSNorm(attn.hidden_size, attn.eps, g));
  }
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& mask, const LayerCache* cache) {
  if (pre_feedforward_layernorm) {  // Gemma's sandwich norms
    const at::Tensor h =
        x + post_attention_layernorm->forward(self_attn->forward(input_layernorm->forward(x), cos, sin, mask, cache));
    return h + post_feedforward_layernorm->forward(mlp->forward(pre_feedforward_layernorm->forward(h)));  // [B, T, H]
  }
  at::Tensor a = self_attn->forward(input_layernorm->forward(x), cos, sin, mask, cache);
  if (residual_scale != 1.0) a = a * residual_scale;
  const at::Tensor h = x + a;
  at::Tensor m = mlp->forward(post_attention_layernorm->forward(h));
  if (residual_scale != 1.0) m = m * residual_scale;
  return h + m;  // [B, T, H]
}

// ---------------------------------------------------------------------------------------------------------
// Backbone and heads
// ---------------------------------------------------------------------------------------------------------

namespace {

// Reentrant activation checkpointing, as torch.utils.checkpoint(use_reentrant=True, preserve_rng_state=True):
// forward runs the layer without a graph (Function::apply disables grad mode) and saves its inputs and the
// random state; backward reruns the layer with grad under the forward's autocast and random state (so LoRA
// dropout draws the same masks) and back-propagates the incoming gradient through that graph, which
// accumulates the layer's parameter gradients directly and yields the gradient of the input.
at::Tensor mask_or_none(const at::Tensor& mask) { return mask.numel() == 0 ? at::Tensor() : mask; }

// The generators a layer's forward draws from: the CPU one, and the device's for CUDA tensors.
std::vector<at::Generator> layer_generators(const at::Device& device) {
  std::vector<at::Generator> g = {at::detail::getDefaultCPUGenerator()};
  if (device.is_cuda()) g.push_back(at::globalContext().defaultGenerator(device));
  return g;
}

// For the recomputation: the forward's autocast and random state; on exit the caller's, and an empty
// autocast cache (the recomputation's casts of trainable weights must not outlive the optimizer step).
class RecomputeScope {
 public:
  RecomputeScope(torch::autograd::AutogradContext* ctx, const at::Device& device)
      : dt_(device.type()), gens_(layer_generators(device)) {
    was_enabled_ = at::autocast::is_autocast_enabled(dt_);
    was_dtype_ = at::autocast::get_autocast_dtype(dt_);
    at::autocast::set_autocast_enabled(dt_, ctx->saved_data["autocast"].toBool());
    at::autocast::set_autocast_dtype(dt_, static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
    for (size_t i = 0; i < gens_.size(); ++i) {
      std::lock_guard<std::mutex> lock(gens_[i].mutex());
      states_.push_back(gens_[i].get_state());
      gens_[i].set_state(ctx->saved_data["rng" + std::to_string(i)].toTensor());
    }
  }
  ~RecomputeScope() {
    for (size_t i = 0; i < gens_.size(); ++i) {
      std::lock_guard<std::mutex> lock(gens_[i].mutex());
      gens_[i].set_state(states_[i]);
    }
    at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dt_, was_enabled_);
    at::autocast::set_autocast_dtype(dt_, was_dtype_);
  }
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;

 private:
  at::DeviceType dt_;
  std::vector<at::Generator> gens_;
  std::vector<at::Tensor> states_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, const at::Tensor& mask, int64_t layer, int64_t hooks,
                            int64_t index) {
    const at::DeviceType dt = x.device().type();
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["hooks"] = hooks;
    ctx->saved_data["index"] = index;
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(dt);
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(at::autocast::get_autocast_dtype(dt));
    std::vector<at::Generator> gens = layer_generators(x.device());
    for (size_t i = 0; i < gens.size(); ++i) {
      std::lock_guard<std::mutex> lock(gens[i].mutex());
      ctx->saved_data["rng" + std::to_string(i)] = gens[i].get_state();
    }
    ctx->save_for_backward({x, cos, sin, mask});
    return reinterpret_cast<DecoderLayerImpl*>(layer)->forward(x, cos, sin, mask_or_none(mask), nullptr);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto* hooks = reinterpret_cast<LayerHooks*>(ctx->saved_data["hooks"].toInt());
    const int64_t index = ctx->saved_data["index"].toInt();
    at::Tensor x = saved[0].detach().requires_grad_(true);
    if (hooks) hooks->before_backward(index);
    {
      RecomputeScope scope(ctx, saved[0].device());
      torch::AutoGradMode grad(true);
      const at::Tensor y = layer->forward(x, saved[1], saved[2], mask_or_none(saved[3]), nullptr);
      torch::autograd::backward({y}, {grad_out[0]});
    }
    if (hooks) hooks->after_backward(index);
    return {x.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace {

// The features of a head RoPE turns: config.rotary_dim (parse_model_config derives it), or head_dim for a
// config built without it.
int64_t rotary_features(const ModelConfig& c) { return c.rotary_dim > 0 ? c.rotary_dim : c.head_dim; }

}  // namespace

LlamaModelImpl::LlamaModelImpl(const ModelConfig& c)
    : rotary(rotary_features(c), c.rope_theta, c.rope_scaling),
      local_rope(c.local_rope_theta > 0),
      embedding_scale(c.embedding_scale), round_embedding_scale(c.gemma_norms), sliding_window(c.sliding_window),
      sliding_layers(c.sliding_layers) {
  if (local_rope) rotary_local = RotaryEmbedding(rotary_features(c), c.local_rope_theta, std::nullopt);
  if (sliding_window > 0 && sliding_layers.empty()) sliding_layers.assign(c.num_hidden_layers, true);
  TORCH_CHECK(sliding_window <= 0 || static_cast<int64_t>(sliding_layers.size()) == c.num_hidden_layers,
              "sliding_layers must name every layer of ", c.source);
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  const AttentionOptions attn{c.hidden_size,   c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                              c.attention_bias, c.o_proj_bias,          c.qk_norm,             c.rms_norm_eps,
                              c.gemma_norms,    c.attention_scale,      c.attn_softcap,        c.fused_projections};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers->push_back(DecoderLayer(attn, c.intermediate_size, c.mlp_bias, c.activation, c.residual_scale));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, c.gemma_norms));
}

namespace {

// The keys that the T queries at cache positions [past, past + T) attend under one attention pattern.
struct KeyMask {
  at::Tensor mask;    // [B, 1, T, S - first] bool; undefined: plain causal (T > 1) or every key (T == 1)
  int64_t first = 0;  // the first key position any query attends
};

// window 0: causal; else also j > i - window. attention_mask [B, S] (1 = token) or undefined.
KeyMask key_mask(int64_t B, int64_t past, int64_t T, int64_t window, const at::Tensor& attention_mask,
                 at::Device dev) {
  const int64_t S = past + T;
  KeyMask m;
  m.first = window > 0 ? std::max<int64_t>(0, past + 1 - window) : 0;
  const int64_t K = S - m.first;
  const bool window_cuts = window > 0 && K > window;  // a query has more keys before it than the window holds
  if (!attention_mask.defined() && !(past > 0 && T > 1) && !window_cuts) return m;
  const auto opt = at::TensorOptions().dtype(at::kLong).device(dev);
  const at::Tensor qpos = at::arange(past, S, opt).unsqueeze(1);     // [T, 1]
  const at::Tensor kpos = at::arange(m.first, S, opt).unsqueeze(0);  // [1, K]
  at::Tensor mask = kpos <= qpos;                                    // [T, K]
  if (window > 0) mask = mask.logical_and(kpos > qpos - window);
  mask = mask.view({1, 1, T, K});
  if (attention_mask.defined())
    mask = mask.logical_and(attention_mask.narrow(1, m.first, K).to(dev).to(at::kBool).view({B, 1, 1, K}));
  // A padding query would attend to nothing and produce NaN that later leaks through 0 * NaN; let it see itself.
  m.mask = mask.logical_or((kpos == qpos).view({1, 1, T, K})).expand({B, 1, T, K});
  return m;
}

// The masks of a forward: {full attention, sliding window}, each built by `build(window)` (window 0: none) only
// when some layer attends that way.
template <class Build>
std::pair<KeyMask, KeyMask> layer_masks(const LlamaModelImpl& m, Build build) {
  bool any_full = m.sliding_window <= 0, any_window = false;
  for (size_t i = 0; i < m.layers->size() && m.sliding_window > 0; ++i) {
    any_window = any_window || m.sliding_layers[i];
    any_full = any_full || !m.sliding_layers[i];
  }
  return {any_full ? build(0) : KeyMask{}, any_window ? build(m.sliding_window) : KeyMask{}};
}

// Embeddings, decoder layers and the final norm, given each token's position and the masks: the part of a
// forward that plain and packed batches share.
at::Tensor run_decoder(LlamaModelImpl& m, const at::Tensor& input_ids, const at::Tensor& position_ids,
                       const KeyMask& full, const KeyMask& windowed, KVCache* cache, int64_t past) {
  const int64_t S = past + input_ids.size(1);
  const auto [cos, sin] = m.rotary.cos_sin(position_ids);  // [B, T, D]
  at::Tensor cos_local, sin_local;                         // [B, T, D], Gemma 3's sliding layers
  if (m.local_rope) std::tie(cos_local, sin_local) = m.rotary_local.cos_sin(position_ids);
  auto& layers = m.layers;
  if (cache && cache->keys.size() != layers->size()) {
    cache->keys.assign(layers->size(), at::Tensor());
    cache->values.assign(layers->size(), at::Tensor());
  }
  at::Tensor h = m.embed_tokens->forward(input_ids);  // [B, T, H]
  if (m.embedding_scale != 1.0) {
    // Gemma multiplies by sqrt(H) as a tensor in the weights' dtype; Granite by its multiplier as a number.
    h = m.round_embedding_scale ? h * at::scalar_tensor(m.embedding_scale, at::kDouble).to(h.scalar_type())
                                : h * m.embedding_scale;
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    const bool slides = m.sliding_window > 0 && m.sliding_layers[i];
    const KeyMask& km = slides ? windowed : full;
    const at::Tensor& cos_i = m.local_rope && slides ? cos_local : cos;
    const at::Tensor& sin_i = m.local_rope && slides ? sin_local : sin;
    LayerCache lc{cache ? &cache->keys[i] : nullptr, cache ? &cache->values[i] : nullptr, past,
                  cache ? cache->reserve : 0, km.first};
    DecoderLayerImpl* layer = layers[i]->as<DecoderLayer>();
    if (m.checkpoint_layers && !cache && at::GradMode::is_enabled()) {
      // The input must require grad for backward to reach the layer (frozen embeddings, e.g. under LoRA).
      const at::Tensor in = h.requires_grad() ? h : h.detach().requires_grad_(true);
      // Function::apply needs defined tensors: plain causal attention travels as an empty mask.
      if (m.layer_hooks) m.layer_hooks->before_forward(static_cast<int64_t>(i));
      h = CheckpointedLayer::apply(in, cos_i, sin_i, km.mask.defined() ? km.mask : at::empty({0}, at::kBool),
                                   reinterpret_cast<int64_t>(layer), reinterpret_cast<int64_t>(m.layer_hooks),
                                   static_cast<int64_t>(i));
      if (m.layer_hooks) m.layer_hooks->after_forward(static_cast<int64_t>(i));
    } else {
      h = layer->forward(h, cos_i, sin_i, km.mask, cache ? &lc : nullptr);
    }
  }
  if (cache) cache->filled = S;
  return m.norm->forward(h);  // [B, T, H]
}

// The mask of a packed batch (PackedLayout): key k serves query q when k is a token (segment >= 0) of the prefix
// or of q's own branch, at a position <= q's (and > q's - window under a sliding window). A padding query sees
// itself only.
KeyMask packed_mask(const PackedLayout& layout, int64_t window) {
  const at::Tensor pq = layout.position_ids.unsqueeze(2), pk = layout.position_ids.unsqueeze(1);  // [B, T, 1], [B, 1, T]
  const at::Tensor sq = layout.segments.unsqueeze(2), sk = layout.segments.unsqueeze(1);
  at::Tensor keep = (sk >= 0).logical_and((sk == 0).logical_or(sk == sq)).logical_and(pk <= pq);  // [B, T, T]
  if (window > 0) keep = keep.logical_and(pk > pq - window);
  const int64_t T = layout.segments.size(1);
  const at::Tensor self = at::eye(T, layout.segments.options().dtype(at::kBool)).unsqueeze(0);  // [1, T, T]
  keep = keep.logical_or(self.logical_and(sq < 0));
  return KeyMask{keep.unsqueeze(1), 0};  // [B, 1, T, T]
}

}  // namespace

at::Tensor LlamaModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, KVCache* cache) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T], got ", input_ids.sizes());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t past = cache ? cache->length() : 0, S = past + T;
  const auto dev = input_ids.device();

  // Position ids count attended tokens, so that left padding does not shift positions (as HF generate does).
  at::Tensor position_ids;  // [B, T]
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == S,
                "attention_mask must be [B, past + T] = [", B, ", ", S, "], got ", attention_mask.sizes());
    const at::Tensor m = attention_mask.to(dev).to(at::kLong);
    position_ids = (m.cumsum(-1) - 1).clamp_min(0).narrow(1, past, T);
  } else {
    position_ids = at::arange(past, S, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(0).expand({B, T});
  }
  // The window counts cache positions, padding included (as transformers' masks do).
  const auto [full, windowed] =
      layer_masks(*this, [&](int64_t window) { return key_mask(B, past, T, window, attention_mask, dev); });
  return run_decoder(*this, input_ids, position_ids, full, windowed, cache, past);
}

at::Tensor LlamaModelImpl::forward_packed(const at::Tensor& input_ids, const PackedLayout& layout) {
  TORCH_CHECK(input_ids.dim() == 2 && layout.position_ids.sizes() == input_ids.sizes() &&
                  layout.segments.sizes() == input_ids.sizes(),
              "forward_packed: input_ids, position_ids and segments must be [B, T], got ", input_ids.sizes(), ", ",
              layout.position_ids.sizes(), ", ", layout.segments.sizes());
  const auto dev = input_ids.device();
  const PackedLayout l{layout.position_ids.to(dev), layout.segments.to(dev)};
  const auto [full, windowed] = layer_masks(*this, [&](int64_t window) { return packed_mask(l, window); });
  return run_decoder(*this, input_ids, l.position_ids, full, windowed, nullptr, 0);
}

LlamaImpl::LlamaImpl(const ModelConfig& c) : config(c) {
  // The weights are built in float32 on the CPU first: a config that describes more than this machine's memory
  // is an error naming it, not an allocation failure.
  const double bytes = 4.0 * parameter_count(c);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (memory > 0 && bytes > memory)
    throw DataError(c.source + ": a model of this config has " + c10::str(std::round(parameter_count(c) / 1e6)) +
                        "M parameters, " + c10::str(std::round(bytes / (1 << 30))) + " GiB in float32, more than the " +
                        c10::str(std::round(memory / (1 << 30))) + " GiB of memory of this machine (hidden_size " +
                        std::to_string(c.hidden_size) + ", intermediate_size " + std::to_string(c.intermediate_size) +
                        ", num_hidden_layers " + std::to_string(c.num_hidden_layers) + ", vocab_size " +
                        std::to_string(c.vocab_size) + ")",
                    "check config.json; a model that large needs a machine with more memory");
  model = register_module("model", LlamaModel(c));
  if (c.head == ModelHead::kSequenceClassification)
    score = register_module("score", linear(c.hidden_size, c.num_labels, false));
  else if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", linear(c.hidden_size, c.vocab_size, false));
}

at::Tensor LlamaImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, KVCache* cache) {
  return model->forward(input_ids, attention_mask, cache);
}

at::Tensor LlamaImpl::forward_packed(const at::Tensor& input_ids, const PackedLayout& layout) {
  TORCH_CHECK(can_pack(), config.architecture, " with longrope scaling cannot run packed rows");
  return model->forward_packed(input_ids, layout);
}

bool LlamaImpl::can_pack() const { return longrope_switch(config) == 0; }

at::Tensor LlamaImpl::lm_head_weight() {
  TORCH_CHECK(config.head == ModelHead::kCausalLM, config.architecture, " has no LM head");
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor LlamaImpl::head_input(const at::Tensor& hidden) const {
  return config.logits_scale == 1.0 ? hidden : hidden * config.logits_scale;
}

at::Tensor LlamaImpl::logits(const at::Tensor& hidden) {
  at::Tensor z = at::matmul(head_input(hidden), lm_head_weight().t());  // [B, T, V]
  if (config.final_softcap > 0) z = at::tanh(z / config.final_softcap) * config.final_softcap;
  return z;
}

at::Tensor LlamaImpl::classify(const at::Tensor& hidden, const at::Tensor& attention_mask) {
  TORCH_CHECK(score, config.architecture, " has no classification head");
  const int64_t B = hidden.size(0), T = hidden.size(1);
  at::Tensor last;  // [B]
  if (attention_mask.defined()) {
    const at::Tensor m = attention_mask.narrow(1, attention_mask.size(1) - T, T).to(hidden.device()).to(at::kLong);
    last = (at::arange(T, m.options()).unsqueeze(0) * m).argmax(-1);  // rightmost attended position
  } else {
    last = at::full({B}, T - 1, at::TensorOptions().dtype(at::kLong).device(hidden.device()));
  }
  const at::Tensor pooled = hidden.index({at::arange(B, last.options()), last});  // [B, H]
  return score->forward(pooled);                                                  // [B, num_labels]
}

KVCache LlamaImpl::make_cache() const { return KVCache{}; }

// ---------------------------------------------------------------------------------------------------------
// Weight-name table and loading
// ---------------------------------------------------------------------------------------------------------

std::vector<WeightSpec> llama_weight_table(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t q = c.num_attention_heads * D, kv = c.num_key_value_heads * D;
  std::vector<WeightSpec> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {H}});
    if (c.fused_projections) {
      t.push_back({p + "self_attn.qkv_proj.weight", {q + 2 * kv, H}});
    } else {
      t.push_back({p + "self_attn.q_proj.weight", {q, H}});
      t.push_back({p + "self_attn.k_proj.weight", {kv, H}});
      t.push_back({p + "self_attn.v_proj.weight", {kv, H}});
    }
    t.push_back({p + "self_attn.o_proj.weight", {H, q}});
    if (c.attention_bias && c.fused_projections) t.push_back({p + "self_attn.qkv_proj.bias", {q + 2 * kv}});
    if (c.attention_bias && !c.fused_projections) {
      t.push_back({p + "self_attn.q_proj.bias", {q}});
      t.push_back({p + "self_attn.k_proj.bias", {kv}});
      t.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    if (c.o_proj_bias) t.push_back({p + "self_attn.o_proj.bias", {H}});
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {D}});
      t.push_back({p + "self_attn.k_norm.weight", {D}});
    }
    t.push_back({p + "post_attention_layernorm.weight", {H}});
    if (c.gemma_norms) {
      t.push_back({p + "pre_feedforward_layernorm.weight", {H}});
      t.push_back({p + "post_feedforward_layernorm.weight", {H}});
    }
    if (c.fused_projections) {
      t.push_back({p + "mlp.gate_up_proj.weight", {2 * I, H}});
    } else {
      t.push_back({p + "mlp.gate_proj.weight", {I, H}});
      t.push_back({p + "mlp.up_proj.weight", {I, H}});
    }
    t.push_back({p + "mlp.down_proj.weight", {H, I}});
    if (c.mlp_bias && c.fused_projections) {
      t.push_back({p + "mlp.gate_up_proj.bias", {2 * I}});
      t.push_back({p + "mlp.down_proj.bias", {H}});
    }
    if (c.mlp_bias && !c.fused_projections) {
      t.push_back({p + "mlp.gate_proj.bias", {I}});
      t.push_back({p + "mlp.up_proj.bias", {I}});
      t.push_back({p + "mlp.down_proj.bias", {H}});
    }
  }
  t.push_back({"model.norm.weight", {H}});
  if (c.head == ModelHead::kSequenceClassification) t.push_back({"score.weight", {c.num_labels, H}});
  else t.push_back({"lm_head.weight", {c.vocab_size, H}, /*required=*/!c.tie_word_embeddings});
  return t;
}

bool is_ignorable_weight(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace {

// Checks `ckpt` against the weight table and copies every tensor into its parameter (converting dtype and
// device); `copied(name)` runs after each copy.
void copy_weights(Llama& model, const Checkpoint& ckpt, const std::string& where,
                  const std::function<void(const std::string&)>& copied) {
  const ModelConfig& c = model->config;
  const auto file_of = [&](const std::string& name) {
    const auto it = ckpt.files.find(name);
    return it == ckpt.files.end() ? where : it->second;
  };
  std::map<std::string, const WeightSpec*> table;
  const std::vector<WeightSpec> specs = llama_weight_table(c);
  for (const WeightSpec& s : specs) table[s.name] = &s;

  for (const auto& [name, t] : ckpt.tensors) {
    if (!table.count(name) && !is_ignorable_weight(name))
      throw DataError(file_of(name) + ": unexpected tensor '" + name + "' for " + c.architecture + " (config " +
                          c.source + ")",
                      "the checkpoint and config.json disagree, or the architecture has parts gaft does not know");
  }
  // Every check before the first copy: a bad file leaves the model untouched.
  auto params = model->named_parameters(/*recurse=*/true);
  for (const WeightSpec& s : specs) {
    const auto it = ckpt.tensors.find(s.name);
    // The table and the modules are written from the same config: a mismatch is a bug here, not in the file.
    TORCH_INTERNAL_ASSERT(params.find(s.name) != nullptr || (!s.required && s.name == "lm_head.weight"),
                          "weight table and modules disagree on ", s.name);
    if (it == ckpt.tensors.end()) {
      if (s.required) throw DataError(where + ": missing tensor '" + s.name + "' required by " + c.architecture +
                                      " (config " + c.source + ")");
      continue;
    }
    if (it->second.sizes().vec() != s.shape)
      throw DataError(file_of(s.name) + ": tensor '" + s.name + "' has shape " + shape_str(it->second.sizes()) +
                      ", expected " + shape_str(s.shape) + " from " + c.source);
    if (!at::isFloatingType(it->second.scalar_type()))
      throw DataError(file_of(s.name) + ": tensor '" + s.name + "' has dtype " + c10::toString(it->second.scalar_type()) +
                      ", expected a floating-point type");
  }
  torch::NoGradGuard no_grad;
  for (const WeightSpec& s : specs) {
    const auto it = ckpt.tensors.find(s.name);
    at::Tensor* param = params.find(s.name);
    if (it == ckpt.tensors.end() || !param) continue;  // optional and absent, or lm_head beside tied embeddings
    param->copy_(it->second);
    // NaN or inf weights train and generate garbage silently: refused at load, naming the tensor.
    if (!param->isfinite().all().item<bool>())
      throw DataError(file_of(s.name) + ": tensor '" + s.name + "' holds non-finite values (NaN or inf" +
                          (param->scalar_type() != it->second.scalar_type()
                               ? std::string(", in the file or once converted to ") + c10::toString(param->scalar_type())
                               : std::string()) +
                          ")",
                      "the weights file is corrupt, or the model was saved after training diverged");
    copied(s.name);
  }
  TORCH_INTERNAL_ASSERT(static_cast<size_t>(params.size()) ==
                            static_cast<size_t>(std::count_if(specs.begin(), specs.end(), [&](const WeightSpec& s) {
                              return params.find(s.name) != nullptr;
                            })),
                        "the modules have parameters that the weight table does not list");
}

}  // namespace

void load_llama_weights(Llama& model, const Checkpoint& ckpt, const std::string& where) {
  copy_weights(model, ckpt, where, [](const std::string&) {});
}

void load_llama_weights(Llama& model, const MappedCheckpoint& ckpt, const std::string& where) {
  copy_weights(model, ckpt.checkpoint(), where, [&](const std::string& name) { ckpt.release(name); });
}

Llama load_llama(const std::string& dir, const LoadOptions& options) {
  if (is_adapter_dir(dir)) {
    Llama model = load_llama(adapter_base_dir(dir), options);
    load_adapter(*model, dir, at::kFloat);  // merged in fp32 (merge_adapter), stored in the model's dtype
    merge_lora(*model);
    for (auto& p : model->parameters()) p.set_requires_grad(true);  // as a plain load
    return model;
  }
  const ModelConfig config = load_model_config(dir);
  const MappedCheckpoint ckpt(dir);
  Llama model(config);
  // Parameters take the compute dtype and device first, so the weights are converted while copied: the
  // process holds the parameters plus one mapped tensor, never a second full copy.
  model->to(options.device, options.dtype);
  // Missing tensors are reported against the weights file (or the shard index) of the directory.
  std::string where = dir;
  for (const char* name : {"model.safetensors", "model.safetensors.index.json"})
    if (std::filesystem::exists(std::filesystem::path(dir) / name)) {
      where = (std::filesystem::path(dir) / name).string();
      break;
    }
  load_llama_weights(model, ckpt, where);
  model->eval();
  return model;
}

}  // namespace gaft
