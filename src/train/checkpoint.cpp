// Atomic, resumable training checkpoints. See gaft/checkpoint.h.
#include "gaft/checkpoint.h"

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>

#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/read_file.h"
#include "gaft/log.h"

namespace fs = std::filesystem;

namespace gaft {

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"epoch", epoch},
          {"batch_in_epoch", batch_in_epoch},
          {"nonfinite_in_row", nonfinite_in_row},
          {"nonfinite_total", nonfinite_total},
          {"tokens_trained", tokens_trained},
          {"learned_gate", learned_gate},
          {"examples", examples}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch_in_epoch = j.at("batch_in_epoch").get<int64_t>();
    s.nonfinite_in_row = j.at("nonfinite_in_row").get<int64_t>();
    s.nonfinite_total = j.at("nonfinite_total").get<int64_t>();
    s.tokens_trained = j.at("tokens_trained").get<int64_t>();
    s.learned_gate = j.at("learned_gate").get<std::vector<double>>();
    s.examples = j.value("examples", int64_t{-1});
  } catch (const nlohmann::json::exception& e) {
    throw DataError(where + ": not a gaft trainer state: " + e.what());
  }
  return s;
}

namespace {

const std::regex kStepDir("step-([0-9]{8})");

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  const fs::path root = fs::path(output_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, kStepDir) && fs::exists(e.path() / "trainer_state.json"))
      out.emplace_back(std::stoll(m[1].str()), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string rng_file(int64_t rank) {
  if (rank == 0) return "rng.pt";
  char name[32];
  std::snprintf(name, sizeof name, "rng-rank-%05lld.pt", static_cast<long long>(rank));
  return name;
}

}  // namespace

std::string write_checkpoint(const std::string& output_dir, const TrainerState& state, Llama& policy,
                             torch::optim::Optimizer& optimizer, const SaveOptions& save, int64_t keep_last,
                             Dist* dist) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(state.step));
  const fs::path root = fs::path(output_dir) / "checkpoints";
  const std::string final_dir = (root / name).string();
  const std::string staged = final_dir + ".tmp";
  const bool main = !dist || dist->is_main();
  const int64_t rank = dist ? dist->rank() : 0;
  std::error_code ec;
  // Every rank reaches each barrier, also when its own part failed; the failure is then shared, so that
  // no rank waits for a checkpoint that will not come.
  auto agree = [&](bool ok, const std::string& what) {
    const bool all_ok = !dist ? ok : dist->max(ok ? 0.0 : 1.0) == 0.0;
    if (!all_ok) {
      if (main) fs::remove_all(staged, ec);
      throw DataError("cannot write checkpoint '" + final_dir + "': " + what);
    }
  };
  std::string error;
  auto attempt = [&](const std::function<void()>& f) {
    try {
      f();
      return true;
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      error = e.what();
    }
    return false;
  };
  bool ok = !main || attempt([&] {
    // Folders of writers killed before their rename, or of removals cut short: never read.
    if (fs::is_directory(root, ec))
      for (const auto& e : fs::directory_iterator(root, ec)) {
        const std::string n = e.path().filename().string();
        if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) fs::remove_all(e.path(), ec);
      }
    make_dirs(staged);
    save_model(policy, (fs::path(staged) / "model").string(), save);
    torch::serialize::OutputArchive ar;
    optimizer.save(ar);
    ar.save_to((fs::path(staged) / "optimizer.pt").string());
  });
  agree(ok, main ? error : "rank 0 failed to write the model or optimizer state");
  ok = attempt([&] {
    torch::serialize::OutputArchive ar;
    ar.write("cpu", at::detail::getDefaultCPUGenerator().get_state());
    ar.save_to((fs::path(staged) / rng_file(rank)).string());
  });
  agree(ok, ok ? "another rank failed to write its RNG state" : error);
  ok = !main || attempt([&] {
    // Written last: its presence marks the directory complete even before the rename.
    write_file_atomic((fs::path(staged) / "trainer_state.json").string(), state.to_json().dump(2) + "\n");
    replace_dir(staged, final_dir);
  });
  agree(ok, main ? error : "rank 0 failed to complete it");
  if (main) {
    auto all = complete_checkpoints(output_dir);
    while (static_cast<int64_t>(all.size()) > keep_last) {
      // Renamed out of the step-N namespace first (atomic), then removed: a kill during the removal leaves a
      // step-N.tmp folder (cleaned by the next write), never a step-N folder with its files half gone.
      const fs::path doomed = all.front().second.string() + ".tmp";
      fs::remove_all(doomed, ec);
      fs::rename(all.front().second, doomed, ec);
      fs::remove_all(ec ? all.front().second : doomed, ec);
      all.erase(all.begin());
    }
  }
  return final_dir;
}

std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  const auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

TrainerState read_checkpoint(const std::string& dir, torch::optim::Optimizer& optimizer, int64_t rank) {
  const fs::path d(dir);
  const std::string state_file = (d / "trainer_state.json").string();
  if (!fs::exists(state_file))
    throw DataError("checkpoint '" + dir + "' has no trainer_state.json", "pass a checkpoints/step-N directory");
  const nlohmann::json j = read_json_file(state_file);
  TrainerState s = TrainerState::from_json(j, state_file);
  for (const char* file : {"optimizer.pt", "rng.pt"})
    if (!fs::exists(d / file)) throw DataError("checkpoint '" + dir + "' lacks " + file);
  try {
    torch::serialize::InputArchive ar;
    ar.load_from((d / "optimizer.pt").string());
    optimizer.load(ar);
    torch::serialize::InputArchive rng;
    const std::string own = rng_file(rank);
    rng.load_from((d / (fs::exists(d / own) ? own : rng_file(0))).string());
    at::Tensor cpu_state;
    rng.read("cpu", cpu_state);
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(cpu_state);
  } catch (const c10::Error& e) {
    throw DataError("checkpoint '" + dir + "': cannot restore the optimizer or RNG state: " + e.what_without_backtrace());
  }
  return s;
}

}  // namespace gaft
