// See gaft/stop_signal.h.
#include "gaft/stop_signal.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <unistd.h>

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

}  // namespace gaft
