// safetensors reader (mmap, validated) and writer (atomic, optionally sharded). See gaft/safetensors.h.
#include "gaft/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/read_file.h"

namespace fs = std::filesystem;

namespace gaft {
namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the reference implementation's limit

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

bool parse_safetensors_dtype(const std::string& name, at::ScalarType* out) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong}, {"I32", at::kInt}};
  const auto it = kTypes.find(name);
  if (it == kTypes.end()) return false;
  *out = it->second;
  return true;
}

std::string safetensors_dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    default: throw DataError(std::string("cannot save dtype ") + c10::toString(dtype) + " to safetensors",
                             "convert to float32, float16, bfloat16, int64 or int32 first");
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO in place of the file is refused below instead of blocking the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw DataError("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw DataError("cannot stat '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DataError("'" + path + "' is not a regular file", "a safetensors file is a plain file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw DataError(path + ": truncated safetensors file: " + std::to_string(size_) +
                    " bytes, expected at least 8 for the header length");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw DataError("cannot map '" + path + "': " + std::strerror(errno));
  }
  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little endian
    if (n > size_ - 8 || n > kMaxHeaderBytes)
      throw DataError(path + ": header length " + std::to_string(n) + " goes beyond the file (" +
                          std::to_string(size_) + " bytes)",
                      "the file is truncated or not a safetensors file");
    data_ = bytes + 8 + n;
    const uint64_t data_size = size_ - 8 - n;
    const nlohmann::json header =
        parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(n)), path + ": header");
    if (!header.is_object()) throw DataError(path + ": header must be a JSON object");
    std::vector<std::pair<uint64_t, std::pair<uint64_t, std::string>>> spans;
    for (const auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        if (!v.is_object()) throw DataError(path + ": __metadata__ must be an object of strings");
        for (const auto& [k, s] : v.items())
          if (s.is_string()) metadata_[k] = s.get<std::string>();
        continue;
      }
      const std::string where = path + ": tensor '" + name + "'";
      if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
        throw DataError(where + ": expected an object with dtype, shape and data_offsets");
      SafetensorsEntry e;
      const std::string dtype = v["dtype"].is_string() ? v["dtype"].get<std::string>() : v["dtype"].dump();
      if (!parse_safetensors_dtype(dtype, &e.dtype))
        throw DataError(where + ": unsupported dtype " + dtype + ", expected F32, F16, BF16, I64 or I32");
      uint64_t numel = 1;
      if (!v["shape"].is_array()) throw DataError(where + ": shape must be an array");
      for (const auto& d : v["shape"]) {
        if (!d.is_number_unsigned()) throw DataError(where + ": shape " + excerpt(v["shape"]) + " has a negative or non-integer dimension");
        // Past 2^60 elements the byte count could wrap ([2^32, 2^32] wrapped to 0 elements, matching an empty
        // byte range, and was accepted).
        if (d.get<uint64_t>() > (uint64_t{1} << 60) || __builtin_mul_overflow(numel, d.get<uint64_t>(), &numel) ||
            numel > (uint64_t{1} << 60))
          throw DataError(where + ": shape " + excerpt(v["shape"]) + " has more elements than any file can hold");
        e.shape.push_back(d.get<int64_t>());
      }
      const auto& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        throw DataError(where + ": data_offsets must be two non-negative integers, got " + off.dump());
      e.begin = off[0].get<uint64_t>();
      e.end = off[1].get<uint64_t>();
      if (e.begin > e.end || e.end > data_size)
        throw DataError(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                            "] out of range of the data section (" + std::to_string(data_size) + " bytes)",
                        "the file is truncated or corrupt");
      const uint64_t expected = numel * c10::elementSize(e.dtype);
      if (e.end - e.begin != expected)
        throw DataError(where + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes, expected " +
                        std::to_string(expected) + " for " + dtype + " " + shape_str(e.shape));
      spans.push_back({e.begin, {e.end, name}});
      entries_.emplace(name, std::move(e));
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      if (spans[i].first < spans[i - 1].second.first)
        throw DataError(path + ": tensors '" + spans[i - 1].second.second + "' and '" + spans[i].second.second +
                        "' overlap in the data section");
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw DataError(path_ + ": no tensor '" + name + "'");
  return it->second;
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  // from_blob wants a non-const pointer; the mapping is PROT_READ, callers must not write.
  void* p = const_cast<uint8_t*>(data_ + e.begin);
  return at::from_blob(p, e.shape, at::TensorOptions().dtype(e.dtype));
}

at::Tensor SafetensorsFile::get(const std::string& name) const { return view(name).clone(); }

void SafetensorsFile::release(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  // Only whole pages inside the tensor's bytes: a page shared with a neighbour stays (at most two per tensor).
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data_ + e.begin) + page - 1) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(data_ + e.end) / page * page;
  // A private read-only file mapping: the dropped pages are read from the file again if touched.
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

MappedCheckpoint::MappedCheckpoint(const std::string& path) {
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // from the index: tensor -> shard
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors")) {
      files.push_back((dir / "model.safetensors").string());
    } else if (fs::exists(dir / "model.safetensors.index.json")) {
      const std::string index = (dir / "model.safetensors.index.json").string();
      const nlohmann::json j = read_json_file(index, "", kMaxIndexBytes);
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw DataError(index + ": expected an object \"weight_map\" {tensor: shard file}");
      std::set<std::string> shards;
      for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string()) throw DataError(index + ": weight_map['" + name + "'] must be a file name");
        // A shard is a file of this folder: no absolute path, no "..", no subfolder (a shared model folder must
        // not make gaft read files elsewhere).
        const std::string shard_name = shard.get<std::string>();
        const fs::path sp(shard_name);
        if (shard_name.empty() || sp.is_absolute() || sp.has_parent_path() || sp.filename() != sp || shard_name == "." ||
            shard_name == "..")
          throw DataError(index + ": weight_map['" + name + "'] = \"" + shard_name.substr(0, 200) +
                              "\" is not a file name in the model folder",
                          "shards are files beside the index, named like model-00001-of-00002.safetensors");
        const std::string file = (dir / shard_name).string();
        weight_map[name] = file;
        shards.insert(file);
      }
      files.assign(shards.begin(), shards.end());
    } else if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
      throw DataError(path + ": only a pickled pytorch_model.bin was found; gaft does not load pickles",
                      "convert the checkpoint to safetensors, e.g. in Python: "
                      "safetensors.torch.save_file(torch.load('pytorch_model.bin'), 'model.safetensors')");
    } else {
      throw DataError(path + ": no model.safetensors or model.safetensors.index.json in this directory");
    }
  } else if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0) {
    throw DataError(path + ": pickled checkpoints are not loaded (loading never executes code from model files)",
                    "convert the checkpoint to safetensors");
  } else {
    files.push_back(path);
  }

  for (const std::string& file : files) {
    files_.push_back(std::make_unique<SafetensorsFile>(file));
    const SafetensorsFile& f = *files_.back();
    for (const std::string& name : f.names()) {
      if (ckpt_.tensors.count(name))
        throw DataError(file + ": tensor '" + name + "' also appears in " + ckpt_.files[name]);
      if (!weight_map.empty()) {
        const auto it = weight_map.find(name);
        if (it == weight_map.end() || it->second != file)
          throw DataError(file + ": tensor '" + name + "' is not listed for this shard in model.safetensors.index.json");
      }
      ckpt_.tensors[name] = f.view(name);
      ckpt_.files[name] = file;
      owner_[name] = &f;
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!ckpt_.tensors.count(name))
      throw DataError(file + ": tensor '" + name + "' listed in model.safetensors.index.json is missing");
}

void MappedCheckpoint::release(const std::string& name) const {
  const auto it = owner_.find(name);
  if (it != owner_.end()) it->second->release(name);
}

Checkpoint load_checkpoint(const std::string& path) {
  const MappedCheckpoint mapped(path);
  Checkpoint ckpt = mapped.checkpoint();
  for (auto& [name, t] : ckpt.tensors) {
    t = t.clone();  // own the memory: the mapping goes away with `mapped`
    mapped.release(name);
  }
  return ckpt;
}

void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  nlohmann::json meta = {{"format", "pt"}};
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {  // std::map: sorted by name, like the reference writer
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.nbytes());
    header[name] = {{"dtype", safetensors_dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((uint64_t{h.size()} >> (8 * i)) & 0xff);
  AtomicFileWriter w(path);
  w.write(len, 8);
  w.write(h.data(), h.size());
  for (const at::Tensor& c : data) w.write(c.data_ptr(), c.nbytes());
  w.commit();
}

std::vector<std::string> save_checkpoint(const std::string& dir, const std::map<std::string, at::Tensor>& tensors,
                                         int64_t max_shard_bytes) {
  TORCH_CHECK(max_shard_bytes > 0, "max_shard_bytes must be positive");
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  int64_t in_shard = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const int64_t n = static_cast<int64_t>(t.nbytes());
    if (in_shard > 0 && in_shard + n > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back()[name] = t;
    in_shard += n;
    total += n;
  }
  make_dirs(dir);
  const fs::path d(dir);
  if (shards.size() == 1) {
    const std::string file = (d / "model.safetensors").string();
    save_safetensors(file, tensors);
    return {file};
  }
  std::vector<std::string> written;
  nlohmann::json weight_map = nlohmann::json::object();
  const int count = static_cast<int>(shards.size());
  for (int i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i + 1, count);
    save_safetensors((d / name).string(), shards[i]);
    written.push_back((d / name).string());
    for (const auto& [t, _] : shards[i]) weight_map[t] = name;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string index_path = (d / "model.safetensors.index.json").string();
  write_file_atomic(index_path, index.dump(2) + "\n");
  written.push_back(index_path);
  return written;
}

}  // namespace gaft
