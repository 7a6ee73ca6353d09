// Atomic writes, the metrics writer and the progress line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <thread>

#include "gaft/atomic_file.h"
#include "gaft/read_file.h"
#include "gaft/stop_signal.h"
#include "gaft/fingerprint.h"
#include "gaft/error.h"
#include "gaft/logging.h"
#include "core/test_util.h"

namespace gaft {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(AtomicFile, CreatesParentsReplacesAndLeavesNoTemporary) {
  const fs::path dir = fresh_dir("gaft_atomic");
  const fs::path file = dir / "a" / "b" / "out.txt";
  write_file_atomic(file.string(), "first");
  write_file_atomic(file.string(), "second\n");
  EXPECT_EQ(lines_of(file), std::vector<std::string>{"second"});
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(file.parent_path())) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1u);
  fs::remove_all(dir);
}

TEST(AtomicFile, UnwritableDirectoryIsADataErrorNamingThePath) {
  const fs::path dir = fresh_dir("gaft_atomic_bad");
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "x";  // a file where a directory is needed
  try {
    write_file_atomic((dir / "file" / "out.txt").string(), "x");
    FAIL() << "accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "file").string()), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), ExitCode::kData);
  }
  fs::remove_all(dir);
}

TEST(MetricsWriter, AppendsOneFlushedObjectPerLine) {
  const fs::path dir = fresh_dir("gaft_metrics");
  const fs::path file = dir / "metrics.jsonl";
  {
    MetricsWriter w(file.string());
    w.write({{"step", 1}, {"loss", 2.5}});
    // Flushed: readable before the writer closes.
    ASSERT_EQ(lines_of(file).size(), 1u);
    w.write({{"step", 2}, {"loss", 2.25}, {"note", "gate \"g\""}});
  }
  {
    MetricsWriter again(file.string());  // a resumed run continues the file
    again.write({{"step", 3}});
  }
  const auto lines = lines_of(file);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["loss"].get<double>(), 2.5);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["note"].get<std::string>(), "gate \"g\"");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["step"].get<int>(), 3);
  fs::remove_all(dir);
}

TEST(Progress, FormatShowsRateAndEta) {
  EXPECT_EQ(ProgressReporter::format("step", 10, 100, 5.0), "step 10/100, 2/s, ETA 0:45");
  EXPECT_EQ(ProgressReporter::format("step", 1, 10000, 2.0), "step 1/10000, 0.5/s, ETA 5:33:18");
  EXPECT_EQ(ProgressReporter::format("step", 0, 10, 0.0), "step 0/10, 0/s, ETA ?");
}

TEST(Progress, LiveModeRewritesOneLine) {
  char buf[512] = {};
  std::FILE* out = fmemopen(buf, sizeof buf - 1, "w");
  ProgressReporter p("step", 4, ProgressReporter::Mode::kLive, std::chrono::seconds(30), out);
  p.update(1, "loss 1.5");
  p.update(2);
  p.finish();
  std::fclose(out);
  const std::string text(buf);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 2);
  EXPECT_NE(text.find("step 1/4"), std::string::npos);
  EXPECT_NE(text.find("loss 1.5"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, AutoModeIsPlainWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  EXPECT_EQ(ProgressReporter::mode_for("auto", f), ProgressReporter::Mode::kPlain);
  EXPECT_EQ(ProgressReporter::mode_for("on", f), ProgressReporter::Mode::kLive);
  EXPECT_EQ(ProgressReporter::mode_for("off", f), ProgressReporter::Mode::kOff);
  std::fclose(f);
}

}  // namespace
}  // namespace gaft

namespace gaft {
namespace {
// LibTorch's wheel exports a broken std::filesystem::remove_all from libtorch.so; CMakeLists.txt puts
// libstdc++ first in the link order. This catches a regression (it crashed with a jump to address 0).
TEST(Filesystem, RemoveAllOfTheSystemLibraryIsUsed) {
  const fs::path dir = fresh_dir("gaft_fs");
  EXPECT_EQ(fs::remove_all(dir), 0u);  // nothing there
  fs::create_directories(dir / "a" / "b");
  std::ofstream(dir / "a" / "f") << "x";
  EXPECT_EQ(fs::remove_all(dir), 4u);
  EXPECT_FALSE(fs::exists(dir));
}
}  // namespace
}  // namespace gaft

TEST(Fingerprint, Sha256OfTheWeightFilesInNameOrder) {
  // Expected digests from Python's hashlib over the same bytes: each *.safetensors file's name, a newline and
  // its bytes, in name order (a 3 MB file spans several read buffers); other files do not count.
  gaft_test::TempDir dir("fingerprint");
  std::filesystem::create_directories(dir.file("m"));
  std::filesystem::create_directories(dir.file("empty"));
  gaft_test::write_bytes(dir.file("m/a.safetensors"), "abc");
  gaft_test::write_bytes(dir.file("m/config.json"), "{}");
  EXPECT_EQ(gaft::weights_sha256(dir.file("m")), "96dd23d0ce9de7a4c96ed84ca2af681ca4f866545a1ad0e989b3ea6a9274a5ca");
  gaft_test::write_bytes(dir.file("m/b.safetensors"), std::string(3000000, 'x'));
  EXPECT_EQ(gaft::weights_sha256(dir.file("m")), "fc447fe70ec5e224046f6aa3c76759defcbf2038daca2c791307ef34d53f06b4");
  gaft_test::write_bytes(dir.file("empty/config.json"), "{}");
  gaft_test::expect_data_error([&] { gaft::weights_sha256(dir.file("empty")); }, {"empty", "no *.safetensors"});
  // The training record round-trips, and a malformed one names its file.
  gaft_test::write_bytes(dir.file("m/gaft_training.json"),
                         gaft::training_record("gaft", {{"safety", "safety", "/x/safety", "ab12"}}).dump());
  const auto got = gaft::read_training_scorers(dir.file("m"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "safety");
  EXPECT_EQ(got[0].sha256, "ab12");
  EXPECT_TRUE(gaft::read_training_scorers(dir.file("empty")).empty());
  gaft_test::write_bytes(dir.file("empty/gaft_training.json"), "{\"scorers\": [{\"name\": \"x\"}]}");
  gaft_test::expect_data_error([&] { gaft::read_training_scorers(dir.file("empty")); }, {"gaft_training.json", "sha256"});
}

namespace gaft {
namespace {

// ---- bounded readers (issue 21) ----------------------------------------------------------------------------

TEST(ReadFile, RefusesSpecialFilesAndOversizeFilesNamingThem) {
  const fs::path dir = fresh_dir("read_file");
  fs::create_directories(dir);
  const std::string fifo = (dir / "fifo.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  gaft_test::expect_data_error([&] { read_text_file(fifo); }, {fifo, "is a FIFO, expected a regular file"});
  gaft_test::expect_data_error([&] { read_text_file("/dev/zero"); }, {"'/dev/zero' is a character device"});
  gaft_test::expect_data_error([&] { read_text_file(dir.string()); }, {"is a directory"});
  const std::string big = (dir / "big.json").string();
  gaft_test::write_bytes(big, std::string(2048, ' '));
  gaft_test::expect_data_error([&] { read_text_file(big, "", 1024); }, {big, "is 2048 bytes, more than the 1024 bytes"});
  EXPECT_EQ(read_text_file(big, "", 2048).size(), 2048u);
  gaft_test::expect_data_error([&] { read_text_file((dir / "missing").string()); }, {"cannot open"});
  fs::remove_all(dir);
}

TEST(ParseJson, NestingBeyondTheLimitIsADataError) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(parse_json(nested(256), "x"));
  gaft_test::expect_data_error([&] { parse_json(nested(257), "f.json"); }, {"f.json: JSON nested deeper than 256 levels"});
  gaft_test::expect_data_error([&] { parse_json(nested(1000000), "f.json"); }, {"nested deeper"});
  gaft_test::expect_data_error([&] { parse_json("{\"a\": ", "g.json"); }, {"g.json: not valid JSON"});
  gaft_test::expect_data_error([&] { parse_json("[", ""); }, {"not valid JSON"});
  EXPECT_EQ(excerpt(nlohmann::json(std::string(500, 'x'))).size(), 83u);  // 80 characters and "..."
}

// ---- stop signals (issue 21) -------------------------------------------------------------------------------

TEST(StopSignal, OneStopWhateverRepeatsItWithinTheGraceWindow) {
  clear_stop_request();
  install_stop_handlers();
  std::raise(SIGTERM);
  std::raise(SIGTERM);  // delivered twice (timeout, a shell): still one request, the process lives on
  std::raise(SIGUSR1);  // Slurm's warning beside it: the same request
  EXPECT_EQ(stop_requested(), SIGTERM);
  clear_stop_request();
  EXPECT_EQ(stop_requested(), 0);
}

}  // namespace
}  // namespace gaft

namespace gaft {
namespace {

TEST(Watchdog, FiresWhenNoStepFinishesAndAfterAStopGraceButNotWhileBeaten) {
  std::atomic<int> fired{0};
  std::string why;
  std::mutex m;
  const auto record = [&](const std::string& w) {
    std::lock_guard<std::mutex> lock(m);
    why = w;
    ++fired;
  };
  {
    Watchdog w(0.6, 0, record);
    for (int i = 0; i < 8; ++i) {  // 1.6 s of steps of 0.2 s: never quiet for 0.6 s
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      w.beat(i);
    }
    EXPECT_EQ(fired.load(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  }
  EXPECT_EQ(fired.load(), 1);  // once
  EXPECT_NE(why.find("no training step finished"), std::string::npos) << why;
  EXPECT_NE(why.find("after step 7"), std::string::npos) << why;
  // A stop signal that waits past the grace.
  clear_stop_request();
  install_stop_handlers();
  {
    Watchdog w(0, 0.5, record);
    std::raise(SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  }
  EXPECT_EQ(fired.load(), 2);
  EXPECT_NE(why.find("a stop signal has waited"), std::string::npos) << why;
  clear_stop_request();
  // Off: never fires.
  { Watchdog w(0, 0, record); }
  EXPECT_EQ(fired.load(), 2);
}

}  // namespace
}  // namespace gaft
