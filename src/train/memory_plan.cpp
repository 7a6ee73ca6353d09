// The per-rank memory accounting of a training step. See gaft/memory_plan.h.
#include "gaft/memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "gaft/adapter_folder.h"

namespace gaft {

double lora_parameter_count(const ModelConfig& c, int64_t rank, const std::vector<std::string>& targets) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  double per_layer = 0;  // r x (in + out) per adapted projection
  for (const std::string& t : resolve_lora_targets(targets, c.fused_projections)) {
    if (t == "qkv_proj") per_layer += H + q + 2 * kv;
    else if (t == "gate_up_proj") per_layer += H + 2 * I;
    else if (t == "q_proj") per_layer += H + q;
    else if (t == "k_proj" || t == "v_proj") per_layer += H + kv;
    else if (t == "o_proj") per_layer += q + H;
    else if (t == "gate_proj" || t == "up_proj" || t == "down_proj") per_layer += H + I;
  }
  return static_cast<double>(c.num_hidden_layers) * static_cast<double>(rank) * per_layer;
}

namespace {

// Parameters outside the decoder layers: embeddings, an untied head, the final norm.
double root_params(const ModelConfig& c) {
  const double VH = static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
  return VH * (c.tie_word_embeddings ? 1 : 2) + static_cast<double>(c.hidden_size);
}

}  // namespace

MemoryPlan plan_memory(const ModelConfig& c, const MemoryRun& run) {
  MemoryPlan a;
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double L = static_cast<double>(c.num_hidden_layers), N = static_cast<double>(run.tokens);
  const double V = static_cast<double>(c.vocab_size), q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double lin = L * (H * q + 2 * H * kv + q * H + 3 * H * I);
  a.params = parameter_count(c);
  a.trainable = run.lora ? lora_parameter_count(c, run.lora_rank, run.lora_targets) : a.params;
  a.largest_trainable = run.lora ? std::max(H, I) * static_cast<double>(run.lora_rank) : std::max({V * H, H * I, H * q});
  // Weights: fp32 master; a frozen LoRA base in the compute dtype. Autocast keeps a bf16 copy of every
  // matmul weight for the step (its cache), which backward also reads.
  a.weights = run.lora ? (run.bf16 ? 2 : 4) * a.params + 4 * a.trainable : 4 * a.params + (run.bf16 ? 2 * lin : 0);
  // Gradients and AdamW (two fp32 moments), by sharding level (sharding.h). The master weights are the fp32
  // parameters themselves, so no master slice is counted.
  const double world = static_cast<double>(std::max<int64_t>(1, run.world));
  const double T = a.trainable, slice = T / world;
  const double buckets = 2.0 * std::min(static_cast<double>(run.bucket_bytes), 4 * T) * (1.0 + 1.0 / world);
  switch (run.sharding) {
    case Sharding::kNone:
      a.grads = 4 * T;
      a.optimizer = 8 * T;
      break;
    case Sharding::kOptimizer:  // whole gradients through the step, the summed slice, two buckets in flight
      a.grads = 4 * T + 4 * slice + buckets;
      a.optimizer = 8 * slice;
      break;
    case Sharding::kGradients:  // the slice, two buckets in flight, and the gradients of a bucket still filling
      // (at most a bucket, or the largest tensor: the embedding's gradient builds up through all of backward)
      a.grads = 4 * slice + buckets + 4 * std::min(T, std::max(a.largest_trainable, static_cast<double>(run.bucket_bytes) / 4));
      a.optimizer = 8 * slice;
      break;
    case Sharding::kFull: {
      if (run.lora) {  // LoRA under full: the base whole, the adapters as under gradients
        a.grads = 4 * slice + buckets + 4 * std::min(T, std::max(a.largest_trainable, static_cast<double>(run.bucket_bytes) / 4));
        a.optimizer = 8 * slice;
        break;
      }
      // Whole at a time: the root (embeddings, head, final norm) and two layers (the one computing and the
      // prefetched one), with autocast's bf16 copy of one; the rest of the weights is the fp32 master slice.
      const double layer = (a.params - root_params(c)) / L, root = root_params(c);
      a.weights = 4 * slice + 4 * root + 2 * 4 * layer + (run.bf16 ? 2 * lin / L : 0);
      // The slice, the root's gradients (built up through backward), one layer's, and two layer buckets in
      // flight (flat copy and its slice).
      a.grads = 4 * slice + 4 * root + 4 * layer + 2 * 4 * layer * (1.0 + 1.0 / world);
      a.optimizer = 8 * slice;
      break;
    }
  }
  double per_token_layer;  // bytes kept per token and layer
  double stream;           // bytes of one element of the residual stream
  if (!run.bf16) {
    per_token_layer = 4 * (11 * H + 4 * I);
    stream = 4;
  } else if (run.lora) {
    per_token_layer = 2 * (11 * H + 4 * I);
    stream = 2;
  } else {
    per_token_layer = 4 * 6 * H + 2 * (2 * H + 5 * H + 4 * I);
    stream = 4;
  }
  // Checkpointing keeps each layer's input, plus one layer's activations while it is recomputed (always on
  // under sharding full).
  a.activations = run.checkpointing || (run.sharding == Sharding::kFull && !run.lora) ? N * (L * stream * H + per_token_layer) : N * L * per_token_layer;
  // Final norm and hidden states with their gradient, plus one chunk of fp32 logits and their gradient.
  const double chunk = run.chunk_tokens > 0 ? std::min<double>(static_cast<double>(run.chunk_tokens), N) : N;
  a.logits = N * H * (3 * stream + 4) + 2.0 * 4 * chunk * V;
  // Unsharded data parallelism sums the gradients in flat buckets that are all in flight at once: a second copy
  // of the gradients after backward, when the activations are gone (it counts where it outweighs them).
  if (run.sharding == Sharding::kNone && run.world > 1) a.grads += std::max(0.0, 4 * T - (a.activations + a.logits));
  return a;
}

std::string describe_memory_plans(const std::vector<std::pair<std::string, MemoryPlan>>& plans) {
  double largest = 0;
  for (const auto& [name, p] : plans) largest = std::max(largest, p.total());
  const bool gib = largest >= 4.0 * (1 << 30);
  const double unit = gib ? 1024.0 * 1024.0 * 1024.0 : 1024.0 * 1024.0;
  std::string out = std::string("| ") + (gib ? "GiB" : "MiB") + " |", rule = "|---|";
  for (const auto& [name, p] : plans) {
    out += " " + name + " |";
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  char cell[32];
  const std::vector<std::pair<const char*, double MemoryPlan::*>> rows = {
      {"weights", &MemoryPlan::weights},         {"gradients", &MemoryPlan::grads},
      {"optimizer state", &MemoryPlan::optimizer}, {"activations", &MemoryPlan::activations},
      {"loss head", &MemoryPlan::logits}};
  for (const auto& [what, field] : rows) {
    out += std::string("| ") + what + " |";
    for (const auto& [name, p] : plans) {
      std::snprintf(cell, sizeof cell, " %.1f |", p.*field / unit);
      out += cell;
    }
    out += "\n";
  }
  out += "| **total** |";
  for (const auto& [name, p] : plans) {
    std::snprintf(cell, sizeof cell, " **%.1f** |", p.total() / unit);
    out += cell;
  }
  return out + "\n";
}

}  // namespace gaft
