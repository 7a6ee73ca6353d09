// Run logging: a JSON-lines metrics file and a progress reporter (human log lines: gaft/log.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace gaft {

// Appends one JSON object per line to a file and flushes after each, so that `tail -f` and a crash
// both see whole lines. Opening keeps the records of steps up to `keep_through_step` (a resumed run's
// checkpoint step; 0 for a fresh run) and drops later ones and torn lines, so that a run killed after its last
// checkpoint and resumed has each step once; then appends.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path, int64_t keep_through_step = -1);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Progress of a loop of `total` steps: on a terminal, one line rewritten in place with rate and ETA;
// elsewhere (CI, Slurm logs), a plain log line at most every `interval`.
class ProgressReporter {
 public:
  enum class Mode { kLive, kPlain, kOff };
  ProgressReporter(std::string label, int64_t total, Mode mode,
                   std::chrono::milliseconds interval = std::chrono::seconds(30), std::FILE* out = stderr);
  // Mode from the config: "auto" becomes kLive when `out` is a terminal, else kPlain.
  static Mode mode_for(const std::string& setting, std::FILE* out = stderr);

  // Reports that `done` steps are complete; `extra` is appended ("loss 1.234").
  void update(int64_t done, const std::string& extra = "");
  void finish();
  // "12/100 steps, 3.21 steps/s, ETA 0:27" for `done` after `elapsed_s` seconds.
  static std::string format(const std::string& label, int64_t done, int64_t total, double elapsed_s);

 private:
  std::string label_;
  int64_t total_;
  Mode mode_;
  std::chrono::milliseconds interval_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_live_ = false;
};

}  // namespace gaft
