// `gaft train`: the training loop of METHOD.md around the pieces in dataset.h, rollout.h, scorer.h,
// objective.h, optim.h and checkpoint.h. Objectives sft, gaft and classifier share the loop.
//
// Per optimizer step: grad_accum_steps micro-batches, each: (gaft) rollouts -> scores -> gate ->
// abstention targets -> loss -> backward; then clip, non-finite check, AdamW step, metrics, checkpoint.
// Data parallel (gaft/distributed.h): micro-batch m of a step runs on rank m % world_size, gradients are
// summed over ranks before clipping; a stop signal ends the run after a step with a checkpoint.
// Normalisation counts (B, and T for sft_norm: token) are those of the whole step, so the gradient does
// not depend on how the step is split into micro-batches.
#pragma once

#include <cstdint>
#include <string>

#include "gaft/config.h"

namespace gaft {

struct TrainSummary {
  int64_t steps = 0;           // optimizer steps done in total (including before a resume)
  int64_t skipped_steps = 0;   // non-finite steps skipped
  double last_loss = 0.0;      // loss of the last step
  std::string model_dir;       // output_dir/model
  std::string resumed_from;    // checkpoint directory, or "" for a fresh start
  int stop_signal = 0;         // SIGTERM / SIGUSR1 that stopped the run early (checkpoint written), or 0
};

// Runs the whole training described by `config` (already validated). UsageError / DataError for
// problems of the configuration or the input files.
TrainSummary train(const RunConfig& config);

// `gaft train --dry-run`: one line with what this process would be in the job, from the launch
// environment and the config, without opening anything: "rank=1 world_size=4 local_rank=1
// master=node07:15234 source=slurm backend=nccl device=cuda:1 output_dir=runs/x".
std::string describe_launch(const RunConfig& config);

// `gaft train --dry-run`, after the launch line: the per-rank memory plan of a training step (memory_plan.h)
// for the configured model (its config.json only), world size, precision, micro-batch and each sharding
// level, the configured one marked; plus the frozen scorer heads and a KL reference copy when the run has
// them. DataError when model.path has no readable config.json.
std::string describe_memory(const RunConfig& config);

}  // namespace gaft
