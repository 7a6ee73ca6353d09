// Fuzz harnesses (issue 21): one function per input format a user or a download can hand gaft, each fed
// arbitrary bytes. A harness returns when gaft accepts the input and throws a gaft::Error (the CLI's exit 2 or
// 3 with a message) when gaft refuses it; anything else that escapes (std::bad_alloc, nlohmann or LibTorch
// exceptions, a failed property check), and every crash, hang or sanitizer report, is a finding.
//
// Two builds run them: tests/fuzz/fuzz_main.cpp makes one libFuzzer binary per harness (GAFT_FUZZ=ON, clang,
// scripts/fuzz.sh), and tests/fuzz/corpus_test.cpp replays the committed corpora in the ordinary test suite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gaft::fuzz {

using Harness = void (*)(const uint8_t* data, size_t size);

void safetensors(const uint8_t* data, size_t size);      // a model.safetensors: header, offsets, tensor reads
void model_config(const uint8_t* data, size_t size);     // a config.json
void run_config(const uint8_t* data, size_t size);       // a train or eval YAML (round trip when valid)
void tokenizer_json(const uint8_t* data, size_t size);   // a tokenizer.json (load, encode, decode)
void training_jsonl(const uint8_t* data, size_t size);   // byte 0: dataset options; the rest: a training JSONL
void eval_file(const uint8_t* data, size_t size);        // byte 0: suite or responses format; the rest: the file
void adapter_config(const uint8_t* data, size_t size);   // an adapter_config.json (and its target_modules)
void trainer_state(const uint8_t* data, size_t size);    // a checkpoint's trainer_state.json against a run

struct Target {
  const char* name;  // also the corpus folder: tests/fuzz/corpus/<name>, where ok-* files must be accepted and
                     // bad-* files refused
  Harness run;
};
const std::vector<Target>& targets();

}  // namespace gaft::fuzz
