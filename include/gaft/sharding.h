// Sharded AdamW over the ranks of a data-parallel job (ZeRO-1 and ZeRO-2), on c10d's reduce-scatter and
// all-gather. Every rank still holds the whole model; what it keeps of the rest is its 1/N slice.
//
//   trainable parameters, in reverse order (the order backward produces their gradients)
//     └─ buckets of about bucket_bytes, each a flat buffer [N * part] that the parameters are views of
//          ├─ slice r of every bucket belongs to rank r: its AdamW moments (fp32), its fp32 master weights
//          │  (the slice itself when the parameters are fp32), its summed gradient (fp32)
//          └─ padding: N * part - numel elements at the end, never read
//
//   one micro-batch:  backward ──AccumulateGrad hook──▶ bucket complete ──▶ copy grads to a flat buffer,
//                     free them, reduce-scatter (asynchronous, buckets launched strictly in order so that
//                     every rank issues the same collectives) ──▶ end_micro(): wait, add into the fp32 slice
//   the step:         clip by the global norm (one all-reduce of a scalar) ──▶ fused AdamW on the slices
//                     ──▶ all-gather every bucket into the parameters
//
// sharding optimizer (ZeRO-1): gradients accumulate whole over the rank's micro-batches and are
// reduce-scattered during the last one's backward. sharding gradients (ZeRO-2): every micro-batch's
// backward reduce-scatters and frees them, so a rank never holds more than a few buckets of whole gradients
// beyond its slice.
//
// sharding full (ZeRO-3): the weights are sharded too. A bucket is one decoder layer (the last layer first)
// or the root (embeddings, final norm, head); between uses a rank holds only its fp32 master slice of each.
//
//   begin_micro: gather the root ── forward, layer i: gather i (prefetch i+1) ▶ run ▶ free i
//   backward (activation checkpointing), layer i: gather i (prefetch i-1) ▶ recompute + backward ▶
//   reduce-scatter i's gradients ▶ free i ── end_micro: reduce-scatter the root's, free it
//   materialize(): every bucket gathered (gaft's rollouts and scoring, checkpoints, evals, the final save)
//
// A rank whose micro-batch trained nothing replays the same gathers and sends zeros, so that every rank
// issues the same collectives. Per-rank memory, predicted: memory_plan.h.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gaft/config.h"
#include "gaft/distributed.h"
#include "gaft/llama.h"

namespace gaft {

// Where each trainable parameter sits: bucket b holds params[b] (indices into the parameter list) at
// offsets[b] of a flat buffer of world * part elements (numel of them used).
struct ShardBucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  int64_t numel = 0;
  int64_t part = 0;  // ceil(numel / world): each rank's slice
};

// Buckets in reverse parameter order, closed once they reach bucket_bytes (a larger parameter is a bucket of
// its own); one dtype per bucket.
std::vector<ShardBucket> plan_shard_buckets(const std::vector<at::Tensor>& params, int64_t world, int64_t bucket_bytes);

// Buckets for sharding full: one per decoder layer ("model.layers.N." parameters), the last layer first, then
// one for every other parameter (the root; absent when there is none). layer_bucket[N] = N's bucket.
std::vector<ShardBucket> plan_layer_buckets(const std::vector<std::string>& names, const std::vector<at::Tensor>& params,
                                            int64_t world, std::vector<int64_t>* layer_bucket);

class ShardedAdamW {
 public:
  // `named`: the trainable parameters (requires_grad), in a fixed order that every rank shares; they become
  // views of the buckets' flat buffers (same values). AdamW as make_adamw: weight decay on 2-D parameters.
  ShardedAdamW(const std::vector<std::pair<std::string, at::Tensor>>& named, const OptimizerSection& options,
               Sharding level, Dist& dist, int64_t bucket_bytes);
  ~ShardedAdamW();
  ShardedAdamW(const ShardedAdamW&) = delete;
  ShardedAdamW& operator=(const ShardedAdamW&) = delete;

  // Around each of this rank's micro-batches (every rank runs the same number): with `reduce`, the gradients
  // that backward produces are reduce-scattered into this rank's slice as their buckets complete, and
  // end_micro() sends the buckets that backward did not complete (zeros for parameters without a gradient),
  // waits for all and adds them up. Without `reduce` (ZeRO-1 before its last micro-batch) they accumulate.
  void begin_micro(bool reduce);
  void end_micro();
  // Whether a micro-batch `index` (0-based) of `count` reduces under this sharding level.
  bool reduces(int64_t index, int64_t count) const;

  // sharding full only (no-ops otherwise). The hooks for LlamaModel::layer_hooks; every bucket gathered, so
  // that any forward works (collective: every rank calls it at the same point); the decoder layers freed
  // again (the root stays, inside a micro-batch); everything freed.
  LayerHooks* layer_hooks();
  void materialize();
  void layerwise();
  void release_all();

  // The global gradient norm over every rank's slice (the norm before clipping, as clip_grad_norm_);
  // the slices are scaled by min(1, max_norm / (norm + 1e-6)).
  double clip(double max_norm);
  // One AdamW step on this rank's slices at learning rate `lr`, then every bucket is all-gathered into the
  // parameters. Gradients are zeroed after.
  void step(double lr);
  // Gradients of the step dropped (a skipped step).
  void zero_grad();

  // Checkpoint files in `dir`: every rank writes optimizer-rank-NNNNN.safetensors (its moments, and its
  // master slice when the parameters are not fp32); `main` writes optimizer.json (format, level, world size,
  // the bucket layout and parameter names, the step count).
  void save(const std::filesystem::path& dir, bool main) const;
  // Reads them back; DataError naming the file when the world size, level or layout differ.
  void load(const std::filesystem::path& dir);

  Sharding level() const { return level_; }
  int64_t steps() const { return step_; }
  // Bytes this rank holds for: AdamW moments, master slices (0 when they are the parameters), gradient
  // slices.
  int64_t moment_bytes() const;
  int64_t master_bytes() const;
  int64_t grad_slice_bytes() const;

 private:
  struct Impl;
  class Hooks : public LayerHooks {
   public:
    explicit Hooks(Impl* impl) : impl_(impl) {}
    void before_forward(int64_t layer) override;
    void after_forward(int64_t layer) override;
    void before_backward(int64_t layer) override;
    void after_backward(int64_t layer) override;

   private:
    Impl* impl_;
  };
  std::shared_ptr<Impl> impl_;  // the autograd hooks hold a weak_ptr to it
  std::unique_ptr<Hooks> hooks_;
  Sharding level_;
  int64_t step_ = 0;
};

// Per-rank optimizer file in a checkpoint written under sharding.
std::string sharded_optimizer_file(int64_t rank);
// optimizer.json's "format" for sharded state (the unsharded one is "gaft-adamw-1").
extern const char* const kShardedOptimizerFormat;

}  // namespace gaft
