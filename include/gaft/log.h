// Human-readable log lines (spdlog behind a small facade).
//
// LibTorch's include directory carries its own fmt 12, which Debian's spdlog (built on fmt 9) cannot be
// compiled against; so spdlog is used in src/log/log.cpp alone and the rest of gaft logs through these
// functions. Build messages with c10::str(...) or std::string concatenation.
#pragma once

#include <string>

namespace gaft::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Level from "trace", "debug", "info", "warn", "error" or "off"; anything else is an error.
Level parse_level(const std::string& name);
// Sets the level and line format of the process-wide logger (to stderr).
void setup(Level level);
bool enabled(Level level);
// Tags every following line (e.g. "rank 3") and raises the level to at least `floor`: the other ranks
// of a data-parallel job report warnings and errors only, rank 0 everything.
void set_rank_tag(const std::string& tag, Level floor);
void write(Level level, const std::string& message);

inline void trace(const std::string& m) { write(Level::kTrace, m); }
inline void debug(const std::string& m) { write(Level::kDebug, m); }
inline void info(const std::string& m) { write(Level::kInfo, m); }
inline void warn(const std::string& m) { write(Level::kWarn, m); }
inline void error(const std::string& m) { write(Level::kError, m); }

}  // namespace gaft::log
