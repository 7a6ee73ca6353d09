// Training checkpoints: <output_dir>/checkpoints/step-00000100/ holding
//   model/               the policy as a Hugging Face folder, in the master dtype (exact resume)
//   optimizer.safetensors  AdamW moments: "g<group>.p<index>.exp_avg", ".exp_avg_sq" (".max_exp_avg_sq")
//   optimizer.json         AdamW groups: options and each parameter's step count (-1: no state yet)
//   rng.json               rank 0's default CPU generator state (its bytes)
//   rng-rank-00001.json …  every other rank's (data-parallel runs)
//   trainer_state.json     step, data position, learned gate, counters
//   optimizer-rank-NNNNN.safetensors   instead of optimizer.safetensors under distributed.sharding: each
//                          rank's slice of the AdamW state (sharding.h)
// No file of a checkpoint is a LibTorch or pickle archive: a checkpoint folder is shared and downloaded like a
// model folder, and reading it must never run code (TorchScript archives can). Checkpoints with optimizer.pt
// (gaft before 2026-12) are refused with a message.
// A checkpoint is written under a temporary name (step-N.tmp) and renamed when complete, so a directory
// named step-N is always complete and a process killed while writing never replaces the last good one;
// only the newest keep_last are kept. With several ranks it is a collective: rank 0 writes the model and
// the optimizer (identical on every rank), each rank its RNG state, with barriers in between, and no rank
// returns before the rename.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gaft/distributed.h"
#include "gaft/llama.h"
#include "gaft/model_save.h"
#include "gaft/sharding.h"

namespace gaft {

struct TrainerState {
  int64_t step = 0;               // optimizer steps done
  int64_t epoch = 0;              // data position: epoch ...
  int64_t batch_in_epoch = 0;     // ... and the next batch within it
  int64_t nonfinite_in_row = 0;   // skipped steps in a row
  int64_t nonfinite_total = 0;
  int64_t tokens_trained = 0;
  std::vector<double> learned_gate;  // LearnedGate::w
  int64_t examples = -1;          // examples per epoch of the data trained on (-1: a checkpoint older than the
                                  // field); resume refuses other data
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& where);
};

// What a resumed state must fit: the run it continues.
struct ResumeLimits {
  int64_t total_steps = 0;        // optimizer steps of the run
  int64_t epoch_size = 0;         // examples per epoch of the data now
  int64_t batch_size = 0;         // train.batch_size
  int64_t gate_features = 0;      // LearnedGate::kFeatures
  int64_t batches_per_epoch() const { return (epoch_size + batch_size - 1) / batch_size; }
};

// Range checks of a checkpoint's trainer state against the run (step within the run, epoch >= 0, the same
// examples per epoch, batch index inside an epoch, counters >= 0, a learned gate of the right length and
// finite): DataError naming `where` and the field, saying what changed.
void check_resumed_state(const TrainerState& s, const ResumeLimits& run, const std::string& where);

// Writes checkpoints/step-<step>; removes the oldest beyond keep_last and stale step-*.tmp folders of
// killed writers. Returns the directory. `dist` (may be null): called by every rank.
// The optimizer a checkpoint holds: LibTorch's AdamW (one file, written by rank 0) or, under
// distributed.sharding, the sharded one (a file per rank). Exactly one is set.
struct OptimizerRef {
  OptimizerRef(torch::optim::Optimizer& o) : adamw(&o) {}  // NOLINT(google-explicit-constructor)
  OptimizerRef(ShardedAdamW& o) : sharded(&o) {}           // NOLINT(google-explicit-constructor)
  torch::optim::Optimizer* adamw = nullptr;
  ShardedAdamW* sharded = nullptr;
};

std::string write_checkpoint(const std::string& output_dir, const TrainerState& state, Llama& policy,
                             OptimizerRef optimizer, const SaveOptions& save, int64_t keep_last,
                             Dist* dist = nullptr);

// The newest complete checkpoint under output_dir/checkpoints, if any.
std::optional<std::string> latest_checkpoint(const std::string& output_dir);

// Restores optimizer, this rank's RNG state (rank 0's file when the checkpoint has none for `rank`, e.g.
// after a change of world size) and returns the trainer state; the caller loads <dir>/model itself.
// DataError naming the file when something is missing or malformed.
TrainerState read_checkpoint(const std::string& dir, OptimizerRef optimizer, int64_t rank = 0);

}  // namespace gaft
