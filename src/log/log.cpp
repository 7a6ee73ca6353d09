// The only translation unit that includes spdlog (see gaft/log.h for why).
#include "gaft/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace gaft::log {

namespace {
spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  // stderr, so that commands can print their results alone on stdout.
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("gaft");
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return l;
  }();
  return *instance;
}
}  // namespace

Level parse_level(const std::string& name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw std::invalid_argument("unknown log level '" + name + "', expected trace, debug, info, warn, error or off");
}

void setup(Level level) { logger().set_level(to_spdlog(level)); }

bool enabled(Level level) { return logger().should_log(to_spdlog(level)); }

void set_rank_tag(const std::string& tag, Level floor) {
  logger().set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [" + tag + "] %v");
  if (logger().level() < to_spdlog(floor)) logger().set_level(to_spdlog(floor));
}

void write(Level level, const std::string& message) {
  logger().log(to_spdlog(level), "{}", message);
  if (level >= Level::kWarn) logger().flush();
}

}  // namespace gaft::log
