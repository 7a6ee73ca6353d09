// TensorBoard event files (tensorboard.h): read against a file TensorBoard's own writer made, written and
// read back, corruption detected, and written by a training run for every metric.
#include "gaft/tensorboard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/run_gaft.h"
#include "core/test_util.h"
#include "gaft/error.h"

namespace {

namespace fs = std::filesystem;
using gaft_test::TempDir;

std::string only_event_file(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().string());
  EXPECT_EQ(files.size(), 1u) << dir;
  return files.empty() ? "" : files.front();
}

}  // namespace

// tests/data/tensorboard/reference.tfevents: written by TensorBoard's EventFileWriter
// (tools/make_tensorboard_fixture.py), so its framing, CRC-32C and Event encoding are TensorBoard's own.
TEST(TensorBoard, ReadsWhatTensorBoardsOwnWriterWrote) {
  const auto events = gaft::read_tensorboard_scalars(std::string(GAFT_TEST_DATA) + "/tensorboard/reference.tfevents");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].first, 1);
  EXPECT_EQ(events[0].second, (std::map<std::string, float>{{"loss", 2.5f}, {"lr", 0.001f}}));
  EXPECT_EQ(events[1].first, 2);
  EXPECT_EQ(events[1].second, (std::map<std::string, float>{{"eval/harm", 0.125f}, {"loss", 1.25f}, {"lr", 0.002f}}));
  EXPECT_EQ(events[2].first, 10);
  EXPECT_EQ(events[2].second, (std::map<std::string, float>{{"loss", -3.0f}}));
}

TEST(TensorBoard, WritesEveryNumberAndBooleanOfARecord) {
  TempDir dir("tb_write");
  std::string path;
  {
    gaft::TensorBoardWriter w(dir.file("tb"));
    path = w.path();
    EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
    w.write_scalars(3, {{"step", 3}, {"loss", 0.5}, {"skipped", true}, {"tokens", 120}, {"name", "x"},
                        {"eval", {{"harm", 0.25}, {"note", "y"}}}});
    w.write_scalars(4, {{"step", 4}, {"name", "only text"}});  // nothing to write
    w.write_scalars(5, {{"loss", 0.25}});
  }
  const auto events = gaft::read_tensorboard_scalars(path);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, 3);
  EXPECT_EQ(events[0].second,
            (std::map<std::string, float>{{"eval/harm", 0.25f}, {"loss", 0.5f}, {"skipped", 1.0f}, {"tokens", 120.0f}}));
  EXPECT_EQ(events[1].first, 5);
}

TEST(TensorBoard, ACorruptOrTruncatedRecordIsAnErrorNamingItsOffset) {
  TempDir dir("tb_bad");
  std::string path;
  {
    gaft::TensorBoardWriter w(dir.file("tb"));
    path = w.path();
    w.write_scalars(1, {{"loss", 0.5}});
  }
  std::string bytes = gaft_test::read_bytes(path);
  std::string flipped = bytes;
  flipped[flipped.size() - 6] ^= 0x01;  // inside the last record's protobuf
  gaft_test::write_bytes(dir.file("flipped"), flipped);
  try {
    gaft::read_tensorboard_scalars(dir.file("flipped"));
    FAIL() << "no error";
  } catch (const gaft::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("wrong data CRC"), std::string::npos) << e.what();
  }
  gaft_test::write_bytes(dir.file("short"), bytes.substr(0, bytes.size() - 3));
  EXPECT_THROW(gaft::read_tensorboard_scalars(dir.file("short")), gaft::DataError);
}

// A training run writes its metrics as scalars next to metrics.jsonl, step for step.
TEST(TensorBoard, ATrainingRunWritesEveryMetricOfEveryStep) {
  if (!fs::exists(gaft_test::kStories)) GTEST_SKIP() << "no shared folder";
  TempDir dir("tb_run");
  gaft_test::write_bytes(dir.file("train.jsonl"), "{\"prompt\": \"Once upon\", \"response\": \"a time.\"}\n"
                                                  "{\"prompt\": \"The dog\", \"response\": \"ran.\"}\n");
  gaft_test::write_bytes(dir.file("run.yaml"), "run: {output_dir: " + dir.file("out") + ", threads: 1}\n"
                                               "model: {path: " + gaft_test::kStories + "/hf}\n"
                                               "data: {train: " + dir.file("train.jsonl") + "}\n"
                                               "objective: {kind: sft}\ntrain: {batch_size: 2, max_steps: 3}\n"
                                               "logging: {every_steps: 1, progress: off}\ncheckpoint: {every_steps: 0}\n");
  const auto r = gaft_test::run_gaft("train --config " + dir.file("run.yaml"));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto events = gaft::read_tensorboard_scalars(only_event_file(dir.file("out/tensorboard")));
  std::ifstream metrics(dir.file("out/metrics.jsonl"));
  size_t i = 0;
  for (std::string line; std::getline(metrics, line); ++i) {
    const auto rec = nlohmann::json::parse(line);
    ASSERT_LT(i, events.size());
    EXPECT_EQ(events[i].first, rec["step"].get<int64_t>());
    size_t numbers = 0;
    for (const auto& [key, v] : rec.items()) {
      if (key == "step" || !(v.is_number() || v.is_boolean())) continue;
      ++numbers;
      ASSERT_TRUE(events[i].second.count(key)) << key;
      EXPECT_EQ(events[i].second.at(key), v.is_boolean() ? (v.get<bool>() ? 1.0f : 0.0f) : v.get<float>()) << key;
    }
    EXPECT_EQ(events[i].second.size(), numbers);
  }
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(events.size(), 3u);
  // logging.tensorboard: false writes none.
  const auto off = gaft_test::run_gaft("train --config " + dir.file("run.yaml") + " run.output_dir=" + dir.file("off") +
                                       " logging.tensorboard=false");
  ASSERT_EQ(off.code, 0) << off.out;
  EXPECT_FALSE(fs::exists(dir.file("off/tensorboard")));
}
