// Atomic, resumable training checkpoints. See gaft/checkpoint.h.
#include "gaft/checkpoint.h"

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <cmath>
#include <map>
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
#include "gaft/safetensors.h"

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

namespace {
// A JSON integer that fits int64_t; DataError otherwise (a float such as 1e30 would convert with undefined
// behaviour, an unsigned value past 2^63 - 1 would wrap).
int64_t json_int64(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
    throw DataError(what + ": expected an integer of at most 64 bits, got " + excerpt(v));
  return v.get<int64_t>();
}
}  // namespace

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  try {
    s.step = json_int64(j.at("step"), where + ": step");
    s.epoch = json_int64(j.at("epoch"), where + ": epoch");
    s.batch_in_epoch = json_int64(j.at("batch_in_epoch"), where + ": batch_in_epoch");
    s.nonfinite_in_row = json_int64(j.at("nonfinite_in_row"), where + ": nonfinite_in_row");
    s.nonfinite_total = json_int64(j.at("nonfinite_total"), where + ": nonfinite_total");
    s.tokens_trained = json_int64(j.at("tokens_trained"), where + ": tokens_trained");
    s.learned_gate = j.at("learned_gate").get<std::vector<double>>();
    s.examples = j.contains("examples") ? json_int64(j["examples"], where + ": examples") : -1;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(where + ": not a gaft trainer state: " + e.what());
  }
  return s;
}

void check_resumed_state(const TrainerState& s, const ResumeLimits& run, const std::string& where) {
  const auto bad = [&](const std::string& what) {
    throw DataError(where + ": " + what,
                    "resume with the data and configuration the run started with, or start anew (checkpoint.resume: never)");
  };
  const int64_t batches = run.batches_per_epoch();
  if (s.step < 0 || s.step > run.total_steps)
    bad("step " + std::to_string(s.step) + " is outside 0.." + std::to_string(run.total_steps) + ", the steps of this run");
  if (s.epoch < 0) bad("epoch " + std::to_string(s.epoch) + " is negative");
  if (s.examples < -1) bad("examples " + std::to_string(s.examples) + " is negative");
  if (s.examples >= 0 && s.examples != run.epoch_size)
    bad("the checkpoint was trained on " + std::to_string(s.examples) + " examples per epoch, the data now has " +
        std::to_string(run.epoch_size));
  if (s.batch_in_epoch < 0 || s.batch_in_epoch >= batches)
    bad("batch_in_epoch " + std::to_string(s.batch_in_epoch) + " is outside the " + std::to_string(batches) +
        " batches of an epoch (" + std::to_string(run.epoch_size) + " examples, train.batch_size " +
        std::to_string(run.batch_size) + "): the data or the batch size changed since the checkpoint");
  if (s.nonfinite_in_row < 0 || s.nonfinite_total < 0 || s.tokens_trained < 0)
    bad("negative counters (nonfinite_in_row, nonfinite_total, tokens_trained)");
  if (!s.learned_gate.empty() && static_cast<int64_t>(s.learned_gate.size()) != run.gate_features)
    bad("learned_gate has " + std::to_string(s.learned_gate.size()) + " weights, expected " +
        std::to_string(run.gate_features));
  for (const double w : s.learned_gate)
    if (!std::isfinite(w)) bad("learned_gate holds a non-finite weight");
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
  if (rank == 0) return "rng.json";
  char name[32];
  std::snprintf(name, sizeof name, "rng-rank-%05lld.json", static_cast<long long>(rank));
  return name;
}

constexpr const char* kOptimizerTensors = "optimizer.safetensors";
constexpr const char* kOptimizerMeta = "optimizer.json";
constexpr const char* kOptimizerFormat = "gaft-adamw-1";

torch::optim::AdamW& as_adamw(torch::optim::Optimizer& optimizer) {
  auto* adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer);
  TORCH_INTERNAL_ASSERT(adamw, "checkpoints hold AdamW state only");
  return *adamw;
}

std::string moment_name(size_t group, size_t index, const char* what) {
  return "g" + std::to_string(group) + ".p" + std::to_string(index) + "." + what;
}

// The AdamW state as tensors (the moments in their parameter's dtype, moved to the CPU) and JSON (options,
// step counts).
void save_optimizer(torch::optim::Optimizer& optimizer, const fs::path& dir) {
  torch::optim::AdamW& adamw = as_adamw(optimizer);
  std::map<std::string, at::Tensor> tensors;
  nlohmann::json groups = nlohmann::json::array();
  for (size_t g = 0; g < adamw.param_groups().size(); ++g) {
    const auto& group = adamw.param_groups()[g];
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<int64_t> steps;
    for (size_t i = 0; i < group.params().size(); ++i) {
      const auto it = adamw.state().find(group.params()[i].unsafeGetTensorImpl());
      if (it == adamw.state().end()) {
        steps.push_back(-1);
        continue;
      }
      const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      steps.push_back(st.step());
      tensors[moment_name(g, i, "exp_avg")] = st.exp_avg().detach().cpu();
      tensors[moment_name(g, i, "exp_avg_sq")] = st.exp_avg_sq().detach().cpu();
      if (st.max_exp_avg_sq().defined()) tensors[moment_name(g, i, "max_exp_avg_sq")] = st.max_exp_avg_sq().detach().cpu();
    }
    groups.push_back({{"lr", o.lr()},
                      {"betas", {std::get<0>(o.betas()), std::get<1>(o.betas())}},
                      {"eps", o.eps()},
                      {"weight_decay", o.weight_decay()},
                      {"amsgrad", o.amsgrad()},
                      {"params", group.params().size()},
                      {"steps", steps}});
  }
  save_safetensors((dir / kOptimizerTensors).string(), tensors);
  write_file_atomic((dir / kOptimizerMeta).string(),
                    nlohmann::json{{"format", kOptimizerFormat}, {"groups", groups}}.dump(1) + "\n");
}

// Restores the AdamW state written by save_optimizer into `optimizer`, built for the same parameters; every
// count, shape, dtype and value is checked (finite moments, non-negative second moments) before the
// optimizer changes. DataError naming the file.
void load_optimizer(torch::optim::Optimizer& optimizer, const fs::path& dir) {
  torch::optim::AdamW& adamw = as_adamw(optimizer);
  const std::string meta_file = (dir / kOptimizerMeta).string(), tensor_file = (dir / kOptimizerTensors).string();
  const nlohmann::json meta = read_json_file(meta_file);
  const auto bad = [&](const std::string& file, const std::string& what) {
    throw DataError(file + ": " + what, "resume with the configuration the run started with, or start anew (checkpoint.resume: never)");
  };
  if (!meta.is_object() || meta.value("format", std::string()) != kOptimizerFormat)
    bad(meta_file, std::string("expected \"format\": \"") + kOptimizerFormat + "\"");
  const nlohmann::json& groups = meta.contains("groups") ? meta["groups"] : nlohmann::json();
  if (!groups.is_array() || groups.size() != adamw.param_groups().size())
    bad(meta_file, "expected " + std::to_string(adamw.param_groups().size()) + " parameter groups");
  const Checkpoint ck = load_checkpoint(tensor_file);
  size_t used = 0;
  struct Restored {
    void* key;
    std::unique_ptr<torch::optim::AdamWParamState> state;
  };
  std::vector<Restored> restored;
  std::vector<torch::optim::AdamWOptions> options;
  for (size_t g = 0; g < groups.size(); ++g) {
    const nlohmann::json& jg = groups[g];
    const auto& params = adamw.param_groups()[g].params();
    try {
      if (jg.at("params").get<size_t>() != params.size())
        bad(meta_file, "group " + std::to_string(g) + " has " + jg.at("params").dump() + " parameters, the model " +
                           std::to_string(params.size()) + ": the trainable parameters changed");
      std::vector<int64_t> steps;
      for (const nlohmann::json& st : jg.at("steps")) steps.push_back(json_int64(st, meta_file + ": steps"));
      if (steps.size() != params.size()) bad(meta_file, "group " + std::to_string(g) + ": steps has the wrong length");
      const auto betas = jg.at("betas").get<std::vector<double>>();
      if (betas.size() != 2) bad(meta_file, "betas: expected two numbers");
      torch::optim::AdamWOptions o(jg.at("lr").get<double>());
      o.betas({betas[0], betas[1]}).eps(jg.at("eps").get<double>()).weight_decay(jg.at("weight_decay").get<double>());
      o.amsgrad(jg.at("amsgrad").get<bool>());
      for (const double v : {o.lr(), betas[0], betas[1], o.eps(), o.weight_decay()})
        if (!std::isfinite(v) || v < 0) bad(meta_file, "group " + std::to_string(g) + ": options must be finite and >= 0");
      options.push_back(o);
      for (size_t i = 0; i < params.size(); ++i) {
        if (steps[i] < 0) continue;
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->step(steps[i]);
        for (const char* what : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {
          const std::string name = moment_name(g, i, what);
          const auto it = ck.tensors.find(name);
          if (it == ck.tensors.end()) {
            if (std::string(what) == "max_exp_avg_sq" && !o.amsgrad()) continue;
            bad(tensor_file, "missing tensor '" + name + "'");
          }
          const at::Tensor& t = it->second;
          if (t.sizes() != params[i].sizes() || t.scalar_type() != params[i].scalar_type())
            bad(tensor_file, "tensor '" + name + "' has shape " + c10::str(t.sizes()) + " " + c10::toString(t.scalar_type()) +
                                 ", expected " + c10::str(params[i].sizes()) + " " + c10::toString(params[i].scalar_type()) +
                                 ": the model changed");
          if (!t.isfinite().all().item<bool>() || (std::string(what) != "exp_avg" && (t < 0).any().item<bool>()))
            bad(tensor_file, "tensor '" + name + "' holds non-finite or negative values");
          at::Tensor copy = t.to(params[i].device()).clone();
          if (std::string(what) == "exp_avg") st->exp_avg(copy);
          else if (std::string(what) == "exp_avg_sq") st->exp_avg_sq(copy);
          else st->max_exp_avg_sq(copy);
          ++used;
        }
        restored.push_back({params[i].unsafeGetTensorImpl(), std::move(st)});
      }
    } catch (const nlohmann::json::exception& e) {
      bad(meta_file, std::string("not a gaft optimizer state: ") + e.what());
    }
  }
  if (used != ck.tensors.size()) bad(tensor_file, "holds tensors that no parameter of the optimizer has");
  // Every check passed: the optimizer changes.
  adamw.state().clear();
  for (Restored& r : restored) adamw.state()[r.key] = std::move(r.state);
  for (size_t g = 0; g < options.size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(adamw.param_groups()[g].options()) = options[g];
}

// The default CPU generator's state as JSON bytes, and back (size and byte range checked).
void save_rng(const fs::path& file) {
  const at::Tensor s = at::detail::getDefaultCPUGenerator().get_state().contiguous();  // [N] uint8
  const uint8_t* p = s.data_ptr<uint8_t>();
  write_file_atomic(file.string(), nlohmann::json{{"cpu", std::vector<int>(p, p + s.numel())}}.dump() + "\n");
}

void load_rng(const fs::path& file) {
  const nlohmann::json j = read_json_file(file.string());
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const int64_t n = gen.get_state().numel();
  std::vector<int> bytes;
  try {
    bytes = j.at("cpu").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    throw DataError(file.string() + ": expected {\"cpu\": [bytes]}: " + e.what());
  }
  if (static_cast<int64_t>(bytes.size()) != n)
    throw DataError(file.string() + ": the CPU generator state has " + std::to_string(bytes.size()) + " bytes, expected " +
                    std::to_string(n));
  at::Tensor s = at::empty({n}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    if (bytes[i] < 0 || bytes[i] > 255) throw DataError(file.string() + ": byte " + std::to_string(i) + " is out of range");
    s.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(bytes[i]);
  }
  try {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(s);
  } catch (const c10::Error& e) {
    throw DataError(file.string() + ": not a CPU generator state: " + e.what_without_backtrace());
  }
}

}  // namespace

std::string write_checkpoint(const std::string& output_dir, const TrainerState& state, Llama& policy,
                             OptimizerRef optimizer, const SaveOptions& save, int64_t keep_last,
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
    if (optimizer.adamw) save_optimizer(*optimizer.adamw, staged);
  });
  agree(ok, main ? error : "rank 0 failed to write the model or optimizer state");
  ok = attempt([&] {
    if (optimizer.sharded) optimizer.sharded->save(staged, main);
    save_rng(fs::path(staged) / rng_file(rank));
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

TrainerState read_checkpoint(const std::string& dir, OptimizerRef optimizer, int64_t rank) {
  const fs::path d(dir);
  const std::string state_file = (d / "trainer_state.json").string();
  if (!fs::exists(state_file))
    throw DataError("checkpoint '" + dir + "' has no trainer_state.json", "pass a checkpoints/step-N directory");
  const nlohmann::json j = read_json_file(state_file);
  TrainerState s = TrainerState::from_json(j, state_file);
  // Archives are never opened: a LibTorch archive can be a TorchScript module whose __setstate__ runs code.
  if (!fs::exists(d / kOptimizerTensors) && (fs::exists(d / "optimizer.pt") || fs::exists(d / "rng.pt")))
    throw DataError("checkpoint '" + dir + "' holds its optimizer and RNG state as LibTorch archives (optimizer.pt, "
                    "rng.pt), which gaft no longer reads: an archive can carry code that runs when it is loaded",
                    "resume it with the gaft version that wrote it, or start anew (checkpoint.resume: never)");
  for (const char* file : {kOptimizerMeta, "rng.json"})
    if (!fs::exists(d / file)) throw DataError("checkpoint '" + dir + "' lacks " + file);
  if (optimizer.sharded) {
    optimizer.sharded->load(d);
  } else {
    if (!fs::exists(d / kOptimizerTensors)) {
      const nlohmann::json meta = read_json_file((d / kOptimizerMeta).string());
      if (meta.is_object() && meta.value("format", std::string()) == kShardedOptimizerFormat)
        throw DataError("checkpoint '" + dir + "' holds AdamW state sharded over " + meta.value("world_size", nlohmann::json()).dump() +
                            " ranks (distributed.sharding: " + meta.value("sharding", std::string("?")) +
                            "); this job does not shard it",
                        "resume with the same distributed.sharding and number of ranks, or start anew (checkpoint.resume: never)");
      throw DataError("checkpoint '" + dir + "' lacks " + kOptimizerTensors);
    }
    load_optimizer(*optimizer.adamw, d);
  }
  const std::string own = rng_file(rank);
  load_rng(d / (fs::exists(d / own) ? own : rng_file(0)));
  return s;
}

}  // namespace gaft
