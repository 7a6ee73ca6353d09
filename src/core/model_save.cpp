// Saving a model as a Hugging Face folder. See gaft/model_save.h.
#include "gaft/model_save.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <functional>

#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/read_file.h"
#include "gaft/safetensors.h"

namespace fs = std::filesystem;

namespace gaft {

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.model",        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
      "generation_config.json", "vocab.json",     "merges.txt",            "added_tokens.json"};
  return names;
}

namespace {

// config.json's name of a storable dtype; DataError for anything transformers would not load as weights.
std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: throw DataError(std::string("cannot save a model in ") + c10::toString(dtype),
                             "expected float32, bfloat16 or float16");
  }
}

}  // namespace

std::map<std::string, at::Tensor> llama_state_dict(Llama& model, at::ScalarType dtype) {
  const auto params = model->named_parameters(/*recurse=*/true);
  std::map<std::string, at::Tensor> out;
  for (const WeightSpec& s : llama_weight_table(model->config)) {
    const at::Tensor* p = params.find(s.name);
    if (!p) continue;  // lm_head of a tied model
    out[s.name] = p->detach().to(at::kCPU, dtype).contiguous();
  }
  return out;
}

nlohmann::json model_config_json(const ModelConfig& c, at::ScalarType dtype) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  j["architectures"] = nlohmann::json::array({c.architecture});
  // AutoConfig picks the config class by model_type.
  if (!j.contains("model_type") || !j["model_type"].is_string()) j["model_type"] = to_string(c.family);
  // transformers 5 reads "dtype" (and prefers it), 4.x "torch_dtype": both, so neither is left stale.
  j["torch_dtype"] = j["dtype"] = dtype_name(dtype);
  if (c.head == ModelHead::kSequenceClassification) {
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (int64_t i = 0; i < c.num_labels; ++i) {
      const std::string name = i < static_cast<int64_t>(c.id2label.size()) ? c.id2label[i] : "LABEL_" + std::to_string(i);
      id2label[std::to_string(i)] = name;
      label2id[name] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    j.erase("num_labels");  // transformers derives it from id2label
  }
  return j;
}

void save_folder(const std::string& dir_arg, const std::string& tokenizer_dir,
                 const std::function<void(const std::string& staged)>& fill) {
  // "out/model/" names the folder "out/model": its staging copy must be a sibling, not a child.
  fs::path target = fs::path(dir_arg).lexically_normal();
  if (!target.has_filename() && target.has_parent_path()) target = target.parent_path();
  if (target.empty() || target.filename() == "." || target.filename() == "..")
    throw DataError("cannot save a model as '" + dir_arg + "'", "name the model folder, e.g. out/model");
  const std::string dir = target.string();
  if (target.has_parent_path()) make_dirs(target.parent_path().string());
  const std::string staged = dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staged, ec);
  // Staging folders of writers that died (kill -9 during a save): "<dir>.tmp.<pid>" whose process is gone.
  const std::string prefix = target.filename().string() + ".tmp.";
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = n.substr(prefix.size());
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    const pid_t p = static_cast<pid_t>(std::stol(pid));
    if (p != ::getpid() && ::kill(p, 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
  try {
    make_dirs(staged);
    fill(staged);
    if (!tokenizer_dir.empty()) {
      const fs::path from = fs::is_directory(tokenizer_dir) ? fs::path(tokenizer_dir) : fs::path(tokenizer_dir).parent_path();
      for (const std::string& name : tokenizer_file_names()) {
        if (!fs::exists(from / name)) continue;
        // Read and written whole (flushed like every file of the folder): tokenizer files are at most tens of MB.
        try {
          write_file_atomic((fs::path(staged) / name).string(),
                            read_text_file((from / name).string(), "", kMaxTokenizerBytes));
        } catch (const DataError& e) {
          throw DataError("cannot copy '" + (from / name).string() + "' into '" + staged + "': " + e.what());
        }
      }
    }
    replace_dir(staged, dir);
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
}

void save_model(Llama& model, const std::string& dir, const SaveOptions& o) {
  if (has_lora(*model)) {
    if (!o.lora) throw UsageError("save_model: the model carries LoRA adapters but no LoRA options were given");
    save_adapter(*model, dir, *o.lora, AdapterSaveOptions{o.base_model, o.tokenizer_dir, at::kFloat, o.extra_files});
    return;
  }
  dtype_name(o.dtype);  // refuse an unstorable dtype before anything is written
  save_folder(dir, o.tokenizer_dir, [&](const std::string& staged) {
    save_checkpoint(staged, llama_state_dict(model, o.dtype), o.max_shard_bytes);
    write_file_atomic((fs::path(staged) / "config.json").string(),
                      model_config_json(model->config, o.dtype).dump(2) + "\n");
    for (const auto& [name, contents] : o.extra_files) write_file_atomic((fs::path(staged) / name).string(), contents);
  });
}

}  // namespace gaft
