// AdamW parameter groups and the learning-rate schedule. See gaft/optim.h.
#include "gaft/optim.h"

#include <ATen/ops/_fused_adamw.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "gaft/host_sync.h"

namespace gaft {
namespace {

// torch::optim::AdamW whose step runs ATen's fused AdamW kernel (_fused_adamw_: one pass over each parameter
// instead of LibTorch's six element-wise ops per tensor; on a GPU one multi-tensor launch per group and
// dtype). The state is AdamW's own (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints read and
// write it unchanged. The math is AdamW's (decoupled weight decay, bias corrections); float rounding may
// differ in the last bit. amsgrad falls back to LibTorch's step.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;

  at::Tensor step(LossClosure closure = nullptr) override {
    for (const auto& group : param_groups())
      if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad())
        return torch::optim::AdamW::step(std::move(closure));
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode grad(true);
      loss = closure();
    }
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      // One fused call per (device, dtype) of the group's parameters.
      std::map<std::pair<std::string, at::ScalarType>, std::vector<at::Tensor>> buckets;
      for (auto& p : group.params())
        if (p.grad().defined()) buckets[{p.device().str(), p.scalar_type()}].push_back(p);
      for (auto& [key, ps] : buckets) {
        std::vector<at::Tensor> grads, exp_avgs, exp_avg_sqs, steps;
        std::vector<torch::optim::AdamWParamState*> states;
        for (auto& p : ps) {
          auto it = state_.find(p.unsafeGetTensorImpl());
          if (it == state_.end()) {
            auto st = std::make_unique<torch::optim::AdamWParamState>();
            st->step(0);
            st->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
            st->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
            it = state_.emplace(p.unsafeGetTensorImpl(), std::move(st)).first;
          }
          auto* st = static_cast<torch::optim::AdamWParamState*>(it->second.get());
          grads.push_back(p.grad());
          exp_avgs.push_back(st->exp_avg());
          exp_avg_sqs.push_back(st->exp_avg_sq());
          // The kernel reads the step count after this step's increment (as torch.optim.AdamW passes it).
          steps.push_back(at::full({}, static_cast<double>(st->step() + 1), p.options().dtype(at::kFloat)));
          states.push_back(st);
        }
        // On the CPU the kernel reads each step count (a CPU tensor) with .item(): not a device read.
        std::optional<HostReadsOnTheHost> on_host;
        if (ps.front().is_cpu()) on_host.emplace();
        at::_fused_adamw_(ps, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, o.lr(),
                          std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(),
                          /*amsgrad=*/false, /*maximize=*/false);
        for (auto* st : states) st->step(st->step() + 1);
      }
    }
    return loss;
  }
};

}  // namespace

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                                const OptimizerSection& o) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& [name, p] : named) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  const auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr)
                                                            .betas({o.beta1, o.beta2})
                                                            .eps(o.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(o.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  if (!o.fused) return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
  return std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(o.lr));
}

double lr_at(int64_t step, int64_t total, double peak, const ScheduleSection& s) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return peak * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.kind == Schedule::kConstant) return peak;
  const int64_t span = std::max<int64_t>(1, total - s.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - s.warmup_steps) / static_cast<double>(span));
  const double lo = peak * s.min_lr_ratio;
  if (s.kind == Schedule::kLinear) return peak - (peak - lo) * progress;
  return lo + 0.5 * (peak - lo) * (1.0 + std::cos(M_PI * progress));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace gaft
