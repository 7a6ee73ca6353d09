// `gaft train`: the training loop of METHOD.md around the pieces in dataset.h, rollout.h, scorer.h,
// objective.h, optim.h and checkpoint.h. Objectives sft, gaft and classifier share the loop.
//
// Per optimizer step: grad_accum_steps micro-batches, each: (gaft) rollouts -> scores -> gate ->
// abstention targets -> loss -> backward; then clip, non-finite check, AdamW step, metrics, checkpoint.
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
};

// Runs the whole training described by `config` (already validated). UsageError / DataError for
// problems of the configuration or the input files.
TrainSummary train(const RunConfig& config);

}  // namespace gaft
