// See gaft/stop_signal.h.
#include "gaft/stop_signal.h"

#include <atomic>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <cstring>
#include <ctime>
#include <unistd.h>

#include "gaft/log.h"

namespace gaft {

namespace {

std::atomic<int> g_signal{0};
std::atomic<int64_t> g_first_ns{0};  // CLOCK_MONOTONIC time of the first stop signal

// Repeats of the stop signal within this window are the same request: `timeout`, a shell and Slurm can
// deliver one stop twice (to the process and to its group).
constexpr int64_t kGraceNs = 10'000'000'000;

int64_t monotonic_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) {
    g_first_ns.store(monotonic_ns());
    return;
  }
  if (expected == sig && monotonic_ns() - g_first_ns.load() > kGraceNs) {
    // The same signal again: stop now, as the default action would (async-signal-safe calls only). A
    // different one (Slurm's SIGTERM to the tasks and the batch script's forwarded SIGUSR1) is the same
    // request.
    const char msg[] = "gaft: second stop signal, exiting without a checkpoint\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal during a read or write does not fail it
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGUSR1, &sa, nullptr);
}

int stop_requested() { return g_signal.load(); }

void clear_stop_request() { g_signal.store(0); }

struct Watchdog::State {
  double step_timeout_s, stop_grace_s;
  OnHang on_hang;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  int64_t step = -1;
  std::chrono::steady_clock::time_point last_beat = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point stop_seen{};
  std::thread thread;

  void run() {
    using namespace std::chrono;
    std::unique_lock<std::mutex> lock(m);
    while (!done) {
      cv.wait_for(lock, milliseconds(200));
      if (done) break;
      const auto now = steady_clock::now();
      const double quiet = duration<double>(now - last_beat).count();
      std::string why;
      if (step_timeout_s > 0 && quiet > step_timeout_s)
        why = "no training step finished for " + std::to_string(static_cast<int64_t>(quiet)) + " s (after step " +
              std::to_string(step) + "; train.step_timeout_s = " + std::to_string(step_timeout_s) +
              "): the step is hung, e.g. a collective waiting for a rank that died";
      if (stop_requested() && stop_grace_s > 0) {
        if (stop_seen == steady_clock::time_point{}) stop_seen = now;
        const double waited = duration<double>(now - stop_seen).count();
        if (waited > stop_grace_s)
          why = "a stop signal has waited " + std::to_string(static_cast<int64_t>(waited)) +
                " s for the current step to finish and checkpoint (train.stop_grace_s = " + std::to_string(stop_grace_s) +
                "): exiting without a checkpoint; the last complete one stays";
      }
      if (why.empty()) continue;
      done = true;
      lock.unlock();
      on_hang(why);
      return;
    }
  }
};

Watchdog::Watchdog(double step_timeout_s, double stop_grace_s, OnHang on_hang) : s_(std::make_unique<State>()) {
  s_->step_timeout_s = step_timeout_s;
  s_->stop_grace_s = stop_grace_s;
  s_->on_hang = on_hang ? std::move(on_hang) : [](const std::string& why) {
    log::error(why);
    std::_Exit(1);
  };
  if (step_timeout_s > 0 || stop_grace_s > 0) s_->thread = std::thread([this] { s_->run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(s_->m);
    s_->done = true;
  }
  s_->cv.notify_all();
  if (s_->thread.joinable()) s_->thread.join();
}

void Watchdog::beat(int64_t step) {
  std::lock_guard<std::mutex> lock(s_->m);
  s_->step = step;
  s_->last_beat = std::chrono::steady_clock::now();
}

}  // namespace gaft
