// The gaft executable end to end: exit codes, help of every command, info, config check.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/run_gaft.h"

namespace {

using Result = gaft_test::RunResult;

Result run(const std::string& args, bool with_stderr = true) { return gaft_test::run_gaft(args, with_stderr); }

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
