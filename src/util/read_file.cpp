// Reading whole input files, bounded. See gaft/read_file.h.
#include "gaft/read_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gaft/error.h"

namespace gaft {

namespace {

std::string bytes_text(int64_t n) {
  if (n >= kMiB) return std::to_string(n / kMiB) + " MiB";
  return std::to_string(n) + " bytes";
}

// What a non-regular file is, for the message.
std::string file_type(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace

void check_regular_file(const std::string& path, int64_t max_bytes, const std::string& hint) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw DataError("cannot open '" + path + "': " + std::strerror(errno), hint);
  if (!S_ISREG(st.st_mode))
    throw DataError("'" + path + "' is " + file_type(st.st_mode) + ", expected a regular file", hint);
  if (static_cast<int64_t>(st.st_size) > max_bytes)
    throw DataError("'" + path + "' is " + bytes_text(static_cast<int64_t>(st.st_size)) + ", more than the " +
                        bytes_text(max_bytes) + " a file of its kind may have",
                    hint.empty() ? "check that the path names the file meant" : hint);
}

std::string read_text_file(const std::string& path, const std::string& hint, int64_t max_bytes) {
  check_regular_file(path, max_bytes, hint);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DataError("cannot open '" + path + "': " + std::strerror(errno), hint);
  std::string s;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
    s.append(buf, n);
    if (static_cast<int64_t>(s.size()) > max_bytes) {  // grew while read
      std::fclose(f);
      throw DataError("'" + path + "' grew past " + bytes_text(max_bytes) + " while it was read", hint);
    }
  }
  std::fclose(f);
  return s;
}

nlohmann::json parse_json(std::string_view text, const std::string& where, int max_depth) {
  // The parser is iterative, but a deep document is a stack overflow for every recursive reader after it
  // (dump, copies, gaft's own walks): it is refused while parsing, as soon as it is too deep.
  struct TooDeep {};
  const auto guard = [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth >= max_depth) throw TooDeep{};  // depth: containers open around this event (0 for the outermost)
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), guard);
  } catch (const TooDeep&) {
    throw DataError((where.empty() ? "" : where + ": ") + "JSON nested deeper than " + std::to_string(max_depth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    throw DataError((where.empty() ? "" : where + ": ") + "not valid JSON: " + e.what());
  }
}

nlohmann::json parse_json_record(std::string_view line) {
  if (static_cast<int64_t>(line.size()) > kMaxJsonLineBytes)
    throw DataError("a record of " + std::to_string(line.size() >> 20) + " MiB, more than the " +
                    std::to_string(kMaxJsonLineBytes >> 20) + " MiB a line may have");
  nlohmann::json j = parse_json(line, "");
  if (!j.is_object()) throw DataError(std::string("expected a JSON object, got ") + j.type_name());
  return j;
}

nlohmann::json read_json_file(const std::string& path, const std::string& hint, int64_t max_bytes) {
  return parse_json(read_text_file(path, hint, max_bytes), path);
}

std::string excerpt(const nlohmann::json& value, size_t max_chars) {
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

}  // namespace gaft
