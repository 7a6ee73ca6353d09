// Weight fingerprints and the record of a run's training scorers. See gaft/fingerprint.h.
#include "gaft/fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "gaft/error.h"
#include "gaft/read_file.h"

namespace fs = std::filesystem;

namespace gaft {

std::string weights_sha256(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  if (ec) throw DataError("cannot list '" + dir + "': " + ec.message());
  if (files.empty()) throw DataError("'" + dir + "' holds no *.safetensors weights to fingerprint");
  std::sort(files.begin(), files.end());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw Error(ExitCode::kInternal, "SHA-256 unavailable");
  std::vector<char> buf(1 << 20);
  for (const fs::path& f : files) {
    const std::string name = f.filename().string() + '\n';
    EVP_DigestUpdate(ctx.get(), name.data(), name.size());
    std::ifstream in(f, std::ios::binary);
    if (!in) throw DataError("cannot open '" + f.string() + "' to fingerprint it");
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) throw DataError("error reading '" + f.string() + "' to fingerprint it");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &n);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", digest[i]);
    hex += b;
  }
  return hex;
}

nlohmann::json training_record(const std::string& objective, const std::vector<TrainingScorer>& scorers) {
  nlohmann::json list = nlohmann::json::array();
  for (const TrainingScorer& s : scorers)
    list.push_back({{"name", s.name}, {"category", s.category}, {"path", s.path}, {"sha256", s.sha256}});
  return {{"gaft_version", GAFT_VERSION}, {"objective", objective}, {"scorers", list}};
}

std::vector<TrainingScorer> read_training_scorers(const std::string& model_dir) {
  const fs::path file = fs::path(model_dir) / kTrainingScorersFile;
  if (!fs::exists(file)) return {};
  const nlohmann::json j = read_json_file(file.string());
  std::vector<TrainingScorer> out;
  const auto it = j.find("scorers");
  if (it == j.end() || !it->is_array()) throw DataError(file.string() + ": expected a \"scorers\" list");
  for (const nlohmann::json& s : *it) {
    if (!s.is_object() || !s.contains("sha256") || !s["sha256"].is_string())
      throw DataError(file.string() + ": every scorer needs a \"sha256\" string");
    out.push_back({s.value("name", ""), s.value("category", ""), s.value("path", ""), s["sha256"].get<std::string>()});
  }
  return out;
}

}  // namespace gaft
