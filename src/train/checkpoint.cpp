// Atomic, resumable training checkpoints. See gaft/checkpoint.h.
#include "gaft/checkpoint.h"

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>
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
          {"learned_gate", learned_gate}};
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

}  // namespace

std::string write_checkpoint(const std::string& output_dir, const TrainerState& state, Llama& policy,
                             torch::optim::Optimizer& optimizer, const SaveOptions& save, int64_t keep_last) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(state.step));
  const fs::path root = fs::path(output_dir) / "checkpoints";
  const std::string final_dir = (root / name).string();
  const std::string staged = final_dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staged, ec);
  try {
    make_dirs(staged);
    save_model(policy, (fs::path(staged) / "model").string(), save);
    {
      torch::serialize::OutputArchive ar;
      optimizer.save(ar);
      ar.save_to((fs::path(staged) / "optimizer.pt").string());
    }
    {
      torch::serialize::OutputArchive ar;
      ar.write("cpu", at::detail::getDefaultCPUGenerator().get_state());
      ar.save_to((fs::path(staged) / "rng.pt").string());
    }
    // Written last: its presence marks the directory complete even before the rename.
    write_file_atomic((fs::path(staged) / "trainer_state.json").string(), state.to_json().dump(2) + "\n");
    replace_dir(staged, final_dir);
  } catch (const c10::Error& e) {
    fs::remove_all(staged, ec);
    throw DataError("cannot write checkpoint '" + final_dir + "': " + e.what_without_backtrace());
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
  auto all = complete_checkpoints(output_dir);
  while (static_cast<int64_t>(all.size()) > keep_last) {
    fs::remove_all(all.front().second, ec);
    all.erase(all.begin());
  }
  return final_dir;
}

std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  const auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

TrainerState read_checkpoint(const std::string& dir, torch::optim::Optimizer& optimizer) {
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
    rng.load_from((d / "rng.pt").string());
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
