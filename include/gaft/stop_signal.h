// Graceful stop on SIGTERM / SIGUSR1: Slurm's warning before a time limit or a preemption (sbatch
// --signal=USR1@300, scancel, preemption with GraceTime). The handler only records the signal; the
// trainer checks stop_requested() after each optimizer step, writes a checkpoint and exits with
// kExitRequeue, which the sbatch scripts answer by requeueing the job. The same signal again within 10 s is
// the same request (timeout and shells can deliver one stop twice); later, it ends the process at once (the
// checkpoint on disk is then the last complete one). A signal before the first step (while models load)
// ends the run with kExitRequeue and nothing saved.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace gaft {

// The exit status of a run that stopped on a signal after writing its checkpoint (EX_TEMPFAIL: "try
// again"); scripts/slurm/*.sbatch requeue on it.
constexpr int kExitRequeue = 75;

// Installs the handlers for SIGTERM and SIGUSR1 (idempotent).
void install_stop_handlers();

// The signal received (SIGTERM or SIGUSR1), or 0.
int stop_requested();

// For tests: forget a received signal.
void clear_stop_request();

// Turns a hung training loop into a clean exit: a thread that fires `on_hang` (default: log the reason and
// exit with code 1) when no beat() comes for step_timeout_s (0: never), or when a stop signal has waited
// stop_grace_s (0: never) for the loop to checkpoint. Stops with the object.
class Watchdog {
 public:
  using OnHang = std::function<void(const std::string& why)>;
  Watchdog(double step_timeout_s, double stop_grace_s, OnHang on_hang = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void beat(int64_t step);  // a step finished

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace gaft
