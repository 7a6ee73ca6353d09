// resave_model: loads a Hugging Face model folder with gaft and writes it back with gaft::save_model, the C++
// half of the round-trip check (tools/check_roundtrip.py loads the result with transformers; docs/parity.md).
//
//   build/resave_model --model tests/data/model/llama --out /tmp/roundtrip/llama [--dtype fp32|bf16|fp16]
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "gaft/error.h"
#include "gaft/model_save.h"

int main(int argc, char** argv) {
  CLI::App app{"Load a model folder with gaft and save it again as a Hugging Face folder"};
  std::string model, out, dtype = "fp32";
  int64_t max_shard_bytes = int64_t{5} << 30;
  app.add_option("--model", model, "model folder to load (config.json + safetensors)")->required();
  app.add_option("--out", out, "folder to write (replaced if it exists)")->required();
  app.add_option("--dtype", dtype, "stored dtype")->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--max-shard-bytes", max_shard_bytes, "largest shard file")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    gaft::Llama m = gaft::load_llama(model);
    gaft::SaveOptions o;
    o.dtype = dtype == "bf16" ? at::kBFloat16 : dtype == "fp16" ? at::kHalf : at::kFloat;
    o.tokenizer_dir = model;
    o.max_shard_bytes = max_shard_bytes;
    gaft::save_model(m, out, o);
    std::printf("saved %s (%s) to %s\n", m->config.architecture.c_str(), dtype.c_str(), out.c_str());
  } catch (const gaft::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return static_cast<int>(e.exit_code());
  }
  return 0;
}
