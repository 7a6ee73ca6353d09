// The accounting model of a training step's memory on one rank, from the shapes alone: weights, gradients,
// AdamW state, activations and the loss head, for full fine-tuning or LoRA, fp32 or bf16 autocast, with or
// without activation checkpointing, and under distributed.sharding. `gaft train --dry-run` prints it for a
// run's config; tools/bench_memory compares it with measured peaks (docs/benchmarks.md, "Memory").
//
// Activations are the tensors autograd keeps per token and layer in gaft's decoder layer (counted from
// src/core/llama.cpp; SDPA's flash kernel keeps q, k, v, the output and the log-sum-exp, never T x T scores):
//   two RMSNorms: input, normalised, weighted output (3H each)   q, k, v after RoPE / repeat (3H)
//   attention output and its transposed copy (2H)                gate, silu(gate), up, silu*up (4I)
// Under bf16 autocast with fp32 weights the residual stream and norms stay fp32 and the matmul inputs get a
// bf16 copy; under LoRA the frozen base is in the compute dtype, so the whole stream is.
//
// Sharding (per rank, N ranks, T trainable parameters): optimizer keeps 8T/N of AdamW moments and a 4T/N
// gradient slice next to the whole gradients; gradients drops the whole gradients for two buckets in flight and
// the largest tensor's gradient; full also keeps only a 4T/N master slice of the weights, plus the root
// (embeddings, head) and two decoder layers whole at a time. The training step only: under full, gaft's
// rollouts gather the whole policy (4 bytes per parameter) at another time of the step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/config.h"
#include "gaft/model_config.h"

namespace gaft {

struct MemoryRun {
  bool lora = false;
  int64_t lora_rank = 16;
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  bool bf16 = false;           // bf16 autocast over fp32 master weights (else fp32 throughout)
  bool checkpointing = false;  // model.gradient_checkpointing
  int64_t tokens = 0;          // trained tokens of one micro-batch (rows x length)
  int64_t chunk_tokens = 0;    // the fused loss's chunk of logits (ops::default_chunk_tokens)
  int64_t world = 1;           // ranks
  Sharding sharding = Sharding::kNone;
  int64_t bucket_bytes = 25 << 20;
};

// Bytes on one rank.
struct MemoryPlan {
  double params = 0, trainable = 0;       // counts
  double largest_trainable = 0;           // elements of the largest trainable tensor
  double weights = 0;                     // parameters (+ autocast's bf16 copies of the matmul weights)
  double grads = 0;                       // whole gradients and/or this rank's slice, plus buckets in flight
  double optimizer = 0;                   // AdamW moments (and fp32 master slices), this rank's share
  double activations = 0, logits = 0;     // kept for backward; the loss head's hidden states and chunk
  double total() const { return weights + grads + optimizer + activations + logits; }
};

// Trainable LoRA parameters for these targets at this rank.
double lora_parameter_count(const ModelConfig& c, int64_t rank, const std::vector<std::string>& targets);

MemoryPlan plan_memory(const ModelConfig& c, const MemoryRun& run);

// A Markdown table with one column per named plan (MiB, or GiB when the largest total is 4 GiB or more) and
// one row per part.
std::string describe_memory_plans(const std::vector<std::pair<std::string, MemoryPlan>>& plans);

}  // namespace gaft
