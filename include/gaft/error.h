// User-facing errors and the process exit codes they map to.
//
// Two tiers (STYLE.md lesson 9): mistakes of the user, their files or their data are gaft::Error
// subclasses carrying context (file, line, key) and an optional hint; broken internal invariants are
// TORCH_CHECK / TORCH_INTERNAL_ASSERT. main() catches both, prints one line, and exits with exit_code().
#pragma once

#include <stdexcept>
#include <string>

namespace gaft {

enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,  // a bug, or an exception we did not anticipate
  kUsage = 2,     // command line or configuration
  kData = 3,      // bad input files: data, checkpoints, tokenizers
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, std::string message, std::string hint = "")
      : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}
  ExitCode exit_code() const { return code_; }
  const std::string& hint() const { return hint_; }

 private:
  ExitCode code_;
  std::string hint_;
};

// A wrong command line or an invalid configuration (exit 2).
class UsageError : public Error {
 public:
  explicit UsageError(std::string message, std::string hint = "")
      : Error(ExitCode::kUsage, std::move(message), std::move(hint)) {}
};

// Bad input data: a malformed file, a record or tensor that is not what it should be (exit 3).
class DataError : public Error {
 public:
  explicit DataError(std::string message, std::string hint = "")
      : Error(ExitCode::kData, std::move(message), std::move(hint)) {}
};

}  // namespace gaft
