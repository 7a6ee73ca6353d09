// Reading whole input files. See gaft/read_file.h.
#include "gaft/read_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gaft/error.h"

namespace gaft {

std::string read_text_file(const std::string& path, const std::string& hint) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DataError("cannot open '" + path + "': " + std::strerror(errno), hint);
  std::string s;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  std::fclose(f);
  return s;
}

nlohmann::json read_json_file(const std::string& path, const std::string& hint) {
  const std::string text = read_text_file(path, hint);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace gaft
