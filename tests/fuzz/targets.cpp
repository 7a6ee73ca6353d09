// The fuzz harnesses of targets.h. Formats that gaft reads from a path get their bytes written to a scratch
// folder of this process first, so that the harness runs the same reader the CLI does (size and file-kind
// checks included).
#include "fuzz/targets.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "gaft/adapter_folder.h"
#include "gaft/checkpoint.h"
#include "gaft/config.h"
#include "gaft/dataset.h"
#include "gaft/error.h"
#include "gaft/eval_suite.h"
#include "gaft/model_config.h"
#include "gaft/objective.h"
#include "gaft/read_file.h"
#include "gaft/safetensors.h"
#include "gaft/tokenizer.h"

namespace fs = std::filesystem;

namespace gaft::fuzz {
namespace {

// A broken property (not a rejected input): escapes the harness like any non-gaft exception.
void require(bool ok, const std::string& what) {
  if (!ok) throw std::logic_error("fuzz property failed: " + what);
}

std::string_view text_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// This process's scratch folder, removed at exit.
const fs::path& scratch() {
  static const fs::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    fs::path d = fs::path(tmp && *tmp ? tmp : "/tmp") / ("gaft-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

// Writes `bytes` to <scratch>/<sub>/<name> (replacing what was there) and returns the file's path.
std::string put(const std::string& sub, const std::string& name, std::string_view bytes) {
  const fs::path dir = scratch() / sub;
  fs::create_directories(dir);
  const fs::path file = dir / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  require(out.good(), "writing " + file.string());
  return file.string();
}

// The tokenizer the training-data harness renders with (Qwen2's BPE and ChatML template, from the tests'
// fixtures), loaded once.
const Tokenizer& fixture_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(std::string(GAFT_TEST_DATA) + "/tokenizer/qwen2");
  return tok;
}

}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  const SafetensorsFile f(put("safetensors", "model.safetensors", text_of(data, size)));
  for (const std::string& name : f.names()) {
    const SafetensorsEntry& e = f.entry(name);
    const at::Tensor t = f.get(name);
    require(t.scalar_type() == e.dtype && t.sizes().vec() == e.shape, "tensor " + name + " as its header says");
    require(static_cast<uint64_t>(t.nbytes()) == e.end - e.begin, "tensor " + name + " fills its byte range");
  }
}

void model_config(const uint8_t* data, size_t size) {
  const ModelConfig c = parse_model_config(parse_json(text_of(data, size), "config.json"), "config.json");
  require(c.hidden_size > 0 && c.num_hidden_layers > 0 && c.vocab_size > 0, "a parsed config has positive sizes");
  require(parameter_count(c) > 0, "a parsed config has parameters");
}

void run_config(const uint8_t* data, size_t size) {
  const std::string yaml(text_of(data, size));
  // A config that loads is written out and loaded again: the same config (the resolved config a run saves
  // must reproduce it).
  if (is_eval_config_text(yaml)) {
    const std::string once = eval_config_to_yaml(load_eval_config_text(yaml, "eval.yaml"));
    const std::string twice = eval_config_to_yaml(load_eval_config_text(once, "resolved eval.yaml"));
    require(once == twice, "an eval config survives its own YAML");
  } else {
    const std::string once = config_to_yaml(load_config_text(yaml, "run.yaml"));
    const std::string twice = config_to_yaml(load_config_text(once, "resolved run.yaml"));
    require(once == twice, "a run config survives its own YAML");
  }
}

void tokenizer_json(const uint8_t* data, size_t size) {
  put("tokenizer", "tokenizer.json", text_of(data, size));
  const Tokenizer tok = Tokenizer::load((scratch() / "tokenizer").string());
  // A loaded tokenizer may still refuse a text (a byte its vocabulary lacks) or an id (one without a token),
  // with a DataError; it must not do anything else.
  for (const char* text : {"Hello world", " <|im_end|>  x\n", "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 12345"}) {
    try {
      const std::vector<int64_t> ids = tok.encode(text);
      for (const int64_t id : ids) require(id >= 0 && id < tok.vocab_size(), "encoded ids inside the vocabulary");
      tok.decode(ids);
    } catch (const DataError&) {
    }
  }
  std::vector<int64_t> first;
  for (int64_t id = 0; id < std::min<int64_t>(tok.vocab_size(), 512); ++id) first.push_back(id);
  try {
    tok.decode(first);
  } catch (const DataError&) {
  }
}

void training_jsonl(const uint8_t* data, size_t size) {
  if (size == 0) throw DataError("no options byte");
  const uint8_t b = data[0];
  DatasetOptions o;
  o.format = static_cast<DataFormat>((b & 3) % 3);
  o.skip_bad_lines = (b & 4) != 0;
  o.classification = (b & 8) != 0;
  o.num_labels = 3;
  o.too_long = (b & 16) ? TooLong::kDrop : TooLong::kTruncate;
  o.max_prompt_tokens = (b & 32) ? 8 : 512;
  o.max_response_tokens = (b & 64) ? 4 : 512;
  const Renderer renderer{&fixture_tokenizer(), (b & 128) ? ChatTemplate::kChatml : ChatTemplate::kPlain};
  const Dataset d = Dataset::load(put("data", "train.jsonl", text_of(data + 1, size - 1)), renderer, o);
  require(d.size() > 0, "a loaded dataset has examples");
  for (const Example& ex : d.examples()) {
    require(static_cast<int64_t>(ex.prompt_ids.size()) <= o.max_prompt_tokens &&
                static_cast<int64_t>(ex.response_ids.size()) <= o.max_response_tokens,
            "examples cut to max_prompt_tokens and max_response_tokens");
    require(ex.prompt_mask.size() == ex.prompt_ids.size(), "a mask per prompt token");
  }
  int64_t served = 0;
  for (const auto& batch : d.epoch_batches(0, 2, 7, true, true)) served += static_cast<int64_t>(batch.size());
  require(served == d.epoch_size(), "an epoch serves every example once");
}

void eval_file(const uint8_t* data, size_t size) {
  if (size == 0) throw DataError("no options byte");
  const uint8_t b = data[0];
  const std::string_view rest = text_of(data + 1, size - 1);
  if ((b & 15) < 8) {
    EvalSuite spec;
    spec.name = "fuzz";
    spec.format = static_cast<SuiteFormat>(b & 15);
    spec.kind = static_cast<ItemKind>(((b >> 4) & 7) % 6);
    spec.limit = (b & 128) ? 3 : 0;
    spec.path = put("eval", "suite", rest);
    const eval::LoadedSuite s = eval::load_suite(spec, 11);
    require(!s.items.empty(), "a loaded suite has items");
    for (const eval::EvalItem& item : s.items) require(item.kind != ItemKind::kAuto, "every item has a kind");
  } else {
    EvalResponses spec;
    spec.format = static_cast<ResponsesFormat>((b & 15) % 4);
    spec.path = put("eval", "responses", rest);
    eval::load_responses(spec);
  }
}

void adapter_config(const uint8_t* data, size_t size) {
  put("adapter", "adapter_config.json", text_of(data, size));
  const AdapterConfig c = read_adapter_config((scratch() / "adapter").string());
  require(c.lora.rank > 0, "a positive rank");
  for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.31.mlp.down_proj", "lm_head"})
    lora_targets_module(c.lora, module);
}

void trainer_state(const uint8_t* data, size_t size) {
  const TrainerState s = TrainerState::from_json(parse_json(text_of(data, size), "trainer_state.json"),
                                                 "trainer_state.json");
  check_resumed_state(s, ResumeLimits{1000, 37, 4, LearnedGate::kFeatures}, "trainer_state.json");
  const TrainerState again = TrainerState::from_json(s.to_json(), "written trainer_state.json");
  require(again.to_json() == s.to_json(), "a trainer state survives its own JSON");
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"safetensors", safetensors}, {"model_config", model_config},     {"run_config", run_config},
      {"tokenizer_json", tokenizer_json}, {"training_jsonl", training_jsonl}, {"eval_file", eval_file},
      {"adapter_config", adapter_config}, {"trainer_state", trainer_state},
  };
  return all;
}

}  // namespace gaft::fuzz
