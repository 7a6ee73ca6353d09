// Helpers shared by the tests of gaft's model layer: temporary directories, file writing, error matching.
#pragma once

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gaft/error.h"

namespace gaft_test {

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() / ("gaft_core_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `f`, expects an exception of type E whose message contains every one of `parts`.
template <typename E, typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts, const char* kind) {
  try {
    f();
    ADD_FAILURE() << "expected a " << kind << " containing '" << *parts.begin() << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}
template <typename F>
void expect_data_error(F&& f, std::initializer_list<std::string> parts) {
  expect_error<gaft::DataError>(std::forward<F>(f), parts, "DataError");
}
template <typename F>
void expect_usage_error(F&& f, std::initializer_list<std::string> parts) {
  expect_error<gaft::UsageError>(std::forward<F>(f), parts, "UsageError");
}

// The test models are tiny: one intra-op thread is ~10x faster than an OpenMP pool on a shared, busy machine
// (measured: golden test 0.6 s vs 8 s on 2 loaded cores).
class SingleThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};
inline ::testing::Environment* const kSingleThread = ::testing::AddGlobalTestEnvironment(new SingleThread);

inline const std::string kModelData = std::string(GAFT_TEST_DATA) + "/model";
inline const std::string kStories = std::string(GAFT_SHARED_DIR) + "/models/stories260K";

}  // namespace gaft_test
