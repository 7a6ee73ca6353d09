// Reading a JSON file. See gaft/json_file.h.
#include "gaft/json_file.h"

#include <fstream>
#include <sstream>

#include "gaft/error.h"

namespace gaft {

nlohmann::json read_json_file(const std::string& path, const std::string& hint) {
  std::ifstream in(path);
  if (!in) throw DataError("cannot open '" + path + "'", hint);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace gaft
