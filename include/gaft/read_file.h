// Reading whole input files with errors that name them (model configs, tokenizer files, shard indexes,
// trainer state).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace gaft {

// The bytes of `path`; DataError "cannot open 'path': <reason>" (with `hint`).
std::string read_text_file(const std::string& path, const std::string& hint = "");

// The parsed contents of `path`; DataError as read_text_file, or "path: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path, const std::string& hint = "");

}  // namespace gaft
