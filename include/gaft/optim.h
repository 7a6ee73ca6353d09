// AdamW with two parameter groups (weight decay on matrices, none on norms and biases) and the learning-rate
// schedule (linear warmup from 0, then constant, linear or cosine decay to min_lr_ratio * lr).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "gaft/config.h"

namespace gaft {

// Group 0: parameters with weight decay (2-D weights); group 1: norms and biases (1-D), no decay. With o.fused
// its step runs ATen's fused AdamW kernel over each group (one pass per parameter); the state is
// torch::optim::AdamW's either way.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, at::Tensor>>& named_params,
                                                const OptimizerSection& o);

// Learning rate at optimizer step `step` (0-based: the step about to be taken) of `total` steps.
double lr_at(int64_t step, int64_t total, double peak, const ScheduleSection& s);

void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace gaft
