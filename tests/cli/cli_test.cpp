// The gaft executable end to end: exit codes, help of every command, info, config check.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

std::string gaft_bin() {
  const char* env = std::getenv("GAFT_BIN");
  return env ? env : std::string(GAFT_BINARY_DIR) + "/gaft";
}

Result run(const std::string& args, bool with_stderr = true) {
  const std::string cmd = gaft_bin() + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const std::string kConfigs = std::string(GAFT_TEST_DATA) + "/configs/";

TEST(Cli, VersionAndHelpOfEveryCommand) {
  Result v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, std::string("gaft ") + GAFT_VERSION + "\n");
  for (const char* cmd : {"", "info", "config", "config check", "config docs"}) {
    Result r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << cmd << ": " << r.out;
  }
}

TEST(Cli, UsageErrorsExitWith2) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("no-such-command").code, 2);
  EXPECT_EQ(run("config check").code, 2);  // FILE missing
  EXPECT_EQ(run("info --bogus").code, 2);
}

TEST(Cli, InfoReportsLibTorch2) {
  Result r = run("info --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["libtorch"].get<std::string>().rfind("2.", 0), 0u) << r.out;
  EXPECT_EQ(j["gaft"].get<std::string>(), GAFT_VERSION);
  EXPECT_GE(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["devices"][0]["device"], "cpu");
  Result text = run("info");
  EXPECT_NE(text.out.find("LibTorch 2."), std::string::npos) << text.out;
}

TEST(Cli, ConfigCheckPrintsEveryErrorWithItsLineAndExits2) {
  Result r = run("config check " + kConfigs + "several_errors.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("3 problems in the configuration"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("several_errors.yaml:4:3: model.dtype: expected one of"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("several_errors.yaml:7:3: data.shufle: unknown key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("several_errors.yaml:11:3: rollout.top_p: expected a number in (0, 1], got 1.5"),
            std::string::npos) << r.out;
}

TEST(Cli, ConfigCheckPrintsTheResolvedConfigThatLoadsAgain) {
  Result r = run("config check " + kConfigs + "negative_lr.yaml optimizer.lr=0.25", false);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lr: 0.25"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("num_samples: 4"), std::string::npos) << r.out;  // defaults are spelled out
  Result quiet = run("config check -q " + kConfigs + "negative_lr.yaml optimizer.lr=0.25");
  EXPECT_EQ(quiet.code, 0);
  EXPECT_EQ(quiet.out, "");
  Result bad = run("config check " + kConfigs + "negative_lr.yaml optimizer.lr");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("override 'optimizer.lr': override #1: expected key.sub=value"), std::string::npos) << bad.out;
}

TEST(Cli, ConfigDocsIsTheReference) {
  Result r = run("config docs", false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("# Configuration reference", 0), 0u);
}

}  // namespace
