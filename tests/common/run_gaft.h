// Runs the gaft executable (GAFT_BIN, else the build directory's) for end-to-end CLI tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace gaft_test {

struct RunResult {
  int code;         // exit code, -1 if killed
  std::string out;  // stdout, and stderr too when asked
};

inline std::string gaft_bin() {
  const char* env = std::getenv("GAFT_BIN");
  return env ? env : std::string(GAFT_BINARY_DIR) + "/gaft";
}

// One thread: the test models are tiny and ctest runs tests side by side on few cores. timeout_s > 0: the
// process is killed (SIGKILL, code -1 or 137) after that many seconds, so that a hang fails the test. `prefix`:
// words before the command, VAR=value assignments and then a wrapper such as `prlimit --as=BYTES`.
inline RunResult run_gaft(const std::string& args, bool with_stderr = true, int timeout_s = 0,
                          const std::string& prefix = "") {
  const std::string limit = timeout_s > 0 ? "timeout -s KILL " + std::to_string(timeout_s) + " " : "";
  const std::string cmd = "OMP_NUM_THREADS=1 " + prefix + (prefix.empty() ? "" : " ") + limit + gaft_bin() + " " +
                          args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  std::string out;
  std::array<char, 4096> buf{};
  for (size_t n; p && (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int status = p ? ::pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Expects the run to have ended with `code` and its output to hold every one of `parts`.
inline void expect_exit(const RunResult& r, int code, std::initializer_list<std::string> parts) {
  EXPECT_EQ(r.code, code) << r.out;
  for (const std::string& p : parts) EXPECT_NE(r.out.find(p), std::string::npos) << "'" << p << "' not in: " << r.out;
}

}  // namespace gaft_test
