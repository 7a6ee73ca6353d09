// Reading a JSON file with errors that name it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace gaft {

// The parsed contents of `path`; DataError "cannot open 'path'" or "path: not valid JSON: ..." (with `hint`
// added to the first).
nlohmann::json read_json_file(const std::string& path, const std::string& hint = "");

}  // namespace gaft
