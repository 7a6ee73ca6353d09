// Process memory figures for the CPU benchmarks, from /proc/self: resident size and its high-water mark.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace gaft_tools {

// kB field of /proc/self/status, e.g. "VmHWM" or "VmRSS"; -1 when absent.
inline int64_t status_kb(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

// Resets VmHWM to the current resident size (writing "5" to /proc/self/clear_refs); false when not allowed.
inline bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  return static_cast<bool>(f);
}

}  // namespace gaft_tools
