// Reading whole input files with errors that name them (model configs, tokenizer files, shard indexes,
// trainer state, suites), bounded: regular files only, a size limit per kind of file, and JSON no deeper
// than a limit. A FIFO, a device (/dev/zero) or a directory in place of a file is refused before it is read,
// and a nested structure that would make a recursive reader overflow the stack is refused while parsing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace gaft {

// Size limits by kind of file (bytes). Generous for every real file of its kind; their point is a clear error
// instead of an allocation failure or a read that never ends.
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kMaxConfigBytes = 16 * kMiB;       // config.json, adapter_config.json, trainer_state.json, YAML
constexpr int64_t kMaxIndexBytes = 64 * kMiB;        // model.safetensors.index.json
constexpr int64_t kMaxTokenizerBytes = 512 * kMiB;   // tokenizer.json, tokenizer.model, vocab.json, merges.txt
constexpr int64_t kMaxDataBytes = int64_t{64} << 30; // training JSONL, eval suites, responses
constexpr int64_t kMaxJsonLineBytes = 16 * kMiB;     // one record of a JSONL file (128k tokens are ~0.5 MiB)
constexpr int kMaxJsonDepth = 256;                   // nesting of objects and arrays

// The bytes of `path`; DataError "cannot open 'path': <reason>" (with `hint`), "'path' is not a regular file
// (a FIFO)" or "'path' is N bytes, more than the M bytes ..." when it is larger than max_bytes.
std::string read_text_file(const std::string& path, const std::string& hint = "", int64_t max_bytes = kMaxConfigBytes);

// Throws a DataError naming `path` unless it is a regular file (after following links) of at most max_bytes.
void check_regular_file(const std::string& path, int64_t max_bytes, const std::string& hint = "");

// `text` parsed as JSON; DataError "<where>: not valid JSON: ..." or "<where>: JSON nested deeper than 256
// levels". `where` names the file (and line); empty: no prefix (the caller adds the place).
nlohmann::json parse_json(std::string_view text, const std::string& where, int max_depth = kMaxJsonDepth);

// One record of a JSON-lines file: at most kMaxJsonLineBytes, parsed with parse_json, a JSON object. DataError
// without a place (the caller adds "file:line: ").
nlohmann::json parse_json_record(std::string_view line);

// The parsed contents of `path` (read_text_file, then parse_json).
nlohmann::json read_json_file(const std::string& path, const std::string& hint = "", int64_t max_bytes = kMaxConfigBytes);

// A value for an error message: its JSON text cut to `max_chars` characters with "..." (never the whole of a
// huge value).
std::string excerpt(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace gaft
