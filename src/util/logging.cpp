// The metrics writer and the progress reporter.
#include "gaft/logging.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/log.h"
#include "gaft/read_file.h"

namespace gaft {

MetricsWriter::MetricsWriter(const std::string& path, int64_t keep_through_step) : path_(path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  std::error_code ec;
  if (keep_through_step >= 0 && std::filesystem::is_regular_file(p, ec)) {
    const std::string old = read_text_file(path, "", kMaxDataBytes);
    std::string kept;
    int64_t dropped = 0;
    for (size_t pos = 0; pos < old.size();) {
      size_t end = old.find('\n', pos);
      if (end == std::string::npos) end = old.size();  // a torn last line has no newline: dropped below
      const std::string line = old.substr(pos, end - pos);
      const bool whole = end < old.size();
      pos = end + 1;
      if (line.empty()) continue;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      const bool keep = whole && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
                        j["step"].get<int64_t>() <= keep_through_step;
      if (keep) kept += line + "\n";
      else ++dropped;
    }
    if (dropped > 0) {
      write_file_atomic(path, kept);
      log::info(path + ": dropped " + std::to_string(dropped) + " records after step " + std::to_string(keep_through_step) +
                " (written after the checkpoint the run resumes from)");
    }
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw DataError("cannot open metrics file '" + path + "': " + std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(const nlohmann::json& record) {
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw DataError("cannot write metrics file '" + path_ + "': " + std::strerror(errno));
}

ProgressReporter::ProgressReporter(std::string label, int64_t total, Mode mode,
                                   std::chrono::milliseconds interval, std::FILE* out)
    : label_(std::move(label)), total_(total), mode_(mode), interval_(interval), out_(out),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

ProgressReporter::Mode ProgressReporter::mode_for(const std::string& setting, std::FILE* out) {
  if (setting == "off") return Mode::kOff;
  if (setting == "on") return Mode::kLive;
  return ::isatty(::fileno(out)) ? Mode::kLive : Mode::kPlain;
}

std::string ProgressReporter::format(const std::string& label, int64_t done, int64_t total, double elapsed_s) {
  char buf[160];
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  std::string eta = "?";
  if (rate > 0 && total >= done) {
    const auto left = static_cast<int64_t>(static_cast<double>(total - done) / rate + 0.5);
    char e[32];
    if (left >= 3600)
      std::snprintf(e, sizeof e, "%lld:%02lld:%02lld", (long long)(left / 3600), (long long)(left / 60 % 60),
                    (long long)(left % 60));
    else
      std::snprintf(e, sizeof e, "%lld:%02lld", (long long)(left / 60), (long long)(left % 60));
    eta = e;
  }
  std::snprintf(buf, sizeof buf, "%s %lld/%lld, %.3g/s, ETA %s", label.c_str(), (long long)done,
                (long long)total, rate, eta.c_str());
  return buf;
}

void ProgressReporter::update(int64_t done, const std::string& extra) {
  if (mode_ == Mode::kOff) return;
  const auto now = std::chrono::steady_clock::now();
  const bool last_step = done >= total_;
  if (mode_ == Mode::kPlain && now - last_ < interval_ && !last_step) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = format(label_, done, total_, elapsed);
  if (!extra.empty()) line += ", " + extra;
  if (mode_ == Mode::kLive) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    std::fflush(out_);
    printed_live_ = true;
  } else {
    log::info(line);
  }
}

void ProgressReporter::finish() {
  if (mode_ == Mode::kLive && printed_live_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

}  // namespace gaft
