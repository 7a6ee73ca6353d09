// Hub names resolved in the local Hugging Face cache. See gaft/hub_cache.h.
#include "gaft/hub_cache.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "gaft/error.h"
#include "gaft/utf8.h"

namespace gaft {

namespace fs = std::filesystem;

namespace {

bool valid_part(const std::string& p) {
  if (p.empty() || p.size() > 96 || !std::isalnum(static_cast<unsigned char>(p.front()))) return false;
  if (p.find("--") != std::string::npos || p.find("..") != std::string::npos) return false;
  if (p.back() == '.' || p.back() == '-') return false;
  return std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool is_hex(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) && !std::isupper(c); });
}

}  // namespace

bool is_hub_name(const std::string& spec) {
  const size_t at = spec.find('@');
  const std::string repo = spec.substr(0, at);
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || repo.find('/', slash + 1) != std::string::npos) return false;
  if (!valid_part(repo.substr(0, slash)) || !valid_part(repo.substr(slash + 1))) return false;
  if (at == std::string::npos) return true;
  const std::string rev = spec.substr(at + 1);
  return !rev.empty() && rev.find("..") == std::string::npos && rev.front() != '/' &&
         std::all_of(rev.begin(), rev.end(), [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/'; });
}

std::string hub_cache_dir(const std::function<const char*(const char*)>& getenv_fn) {
  const auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (!env("HF_HUB_CACHE").empty()) return env("HF_HUB_CACHE");
  if (!env("HUGGINGFACE_HUB_CACHE").empty()) return env("HUGGINGFACE_HUB_CACHE");  // the older name
  if (!env("HF_HOME").empty()) return (fs::path(env("HF_HOME")) / "hub").string();
  if (!env("XDG_CACHE_HOME").empty()) return (fs::path(env("XDG_CACHE_HOME")) / "huggingface" / "hub").string();
  return (fs::path(env("HOME").empty() ? "/root" : env("HOME")) / ".cache" / "huggingface" / "hub").string();
}

std::string resolve_model_path(const std::string& spec, const std::function<const char*(const char*)>& getenv_fn) {
  std::error_code ec;
  if (spec.empty() || fs::exists(spec, ec) || !is_hub_name(spec)) return spec;
  const size_t at = spec.find('@');
  const std::string repo = spec.substr(0, at), revision = at == std::string::npos ? "main" : spec.substr(at + 1);
  const std::string cache = hub_cache_dir(getenv_fn);
  const fs::path folder = fs::path(cache) / ("models--" + repo.substr(0, repo.find('/')) + "--" + repo.substr(repo.find('/') + 1));
  const std::string download = "download it first (`hf download " + repo + (at == std::string::npos ? "" : " --revision " + revision) +
                               "`, or `huggingface-cli download` with the same arguments, on a machine with network access "
                               "to the same cache), set HF_HUB_CACHE / HF_HOME to the cache that holds it, or give the "
                               "model's folder";
  if (!fs::is_directory(folder, ec))
    throw DataError("'" + spec + "' is not a folder, and the Hugging Face cache " + cache + " has no " +
                        folder.filename().string(), download);
  // A branch or tag: refs/<revision> holds the commit hash.
  std::string commit;
  const fs::path ref = folder / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) {
    std::ifstream in(ref);
    std::getline(in, commit);
    commit = utf8::strip(commit);
    if (!is_hex(commit)) throw DataError(ref.string() + ": expected a commit hash, found '" + commit + "'", "download the model again");
  } else if (is_hex(revision) && revision.size() >= 7) {  // a commit hash, or a unique prefix of one
    std::vector<std::string> matches;
    for (const auto& e : fs::directory_iterator(folder / "snapshots", ec))
      if (e.path().filename().string().rfind(revision, 0) == 0) matches.push_back(e.path().filename().string());
    if (matches.size() > 1)
      throw DataError("'" + spec + "': the revision prefix matches " + std::to_string(matches.size()) + " snapshots in " +
                          (folder / "snapshots").string(), "give more digits of the commit hash");
    if (!matches.empty()) commit = matches.front();
  }
  if (commit.empty()) {
    std::string refs;
    for (const auto& e : fs::recursive_directory_iterator(folder / "refs", ec))
      if (e.is_regular_file()) refs += (refs.empty() ? "" : ", ") + fs::relative(e.path(), folder / "refs").string();
    throw DataError("'" + spec + "': " + folder.string() + " has no revision '" + revision + "' (refs: " +
                        (refs.empty() ? "none" : refs) + ")", download);
  }
  const fs::path snapshot = folder / "snapshots" / commit;
  if (!fs::is_directory(snapshot, ec))
    throw DataError("'" + spec + "': revision '" + revision + "' is commit " + commit + ", but " + snapshot.string() +
                        " is missing (an interrupted download?)", download);
  return snapshot.string();
}

}  // namespace gaft
