// Reading and writing safetensors checkpoints (https://github.com/huggingface/safetensors).
//
// A file is: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}} (plus an
// optional "__metadata__" string map), then the data section. SafetensorsFile memory-maps the file and checks
// every entry before anything is read: header inside the file, known dtype, offsets inside the data section,
// size = product(shape) x element size, no two tensors overlapping. Loading never executes code from model
// files: a pickled pytorch_model.bin is refused with a DataError.
//
// Lifetime: SafetensorsFile::get() returns a copy that owns its memory; view() returns a tensor over the
// mapping that is valid only while the SafetensorsFile lives (read-only: never write into it). Loading a model
// copies each view into its parameter and then release()s the view's pages, so that the process holds about
// one copy of the weights at any time (the mapped pages otherwise count as resident once read).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gaft {

struct SafetensorsEntry {
  at::ScalarType dtype;        // F32, F16, BF16, I64, I32
  std::vector<int64_t> shape;  // e.g. [512, 64]
  uint64_t begin = 0;          // byte offsets into the data section, [begin, end)
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates; DataError naming the file
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // DataError if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  at::Tensor get(const std::string& name) const;   // an owning copy, CPU, stored dtype
  at::Tensor view(const std::string& name) const;  // over the mapping; valid while *this lives
  // Drops the mapped pages of `name` from this process (a later view() reads them from the file again).
  void release(const std::string& name) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Tensors of a checkpoint together with the file each came from (for error messages).
struct Checkpoint {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> files;  // tensor name -> file it was read from
};

// Reads one .safetensors file, or a model directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map"). A directory with only pytorch_model.bin is a DataError.
Checkpoint load_checkpoint(const std::string& path);

// The same checkpoint without copying: the tensors are views over the mapped files, valid while this lives.
class MappedCheckpoint {
 public:
  explicit MappedCheckpoint(const std::string& path);  // same files and checks as load_checkpoint
  const Checkpoint& checkpoint() const { return ckpt_; }
  void release(const std::string& name) const;  // drops the pages of one tensor (see SafetensorsFile::release)

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;  // tensor name -> its file
  Checkpoint ckpt_;                                       // views into files_
};

// Writes one file atomically (temporary name, fsync, rename) with __metadata__ {"format": "pt"} plus `metadata`.
// Tensors are written contiguous, in their own dtype, on CPU.
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint into `dir`: model.safetensors when everything fits in max_shard_bytes, else shards
// model-00001-of-0000N.safetensors plus model.safetensors.index.json. Returns the files written.
std::vector<std::string> save_checkpoint(const std::string& dir, const std::map<std::string, at::Tensor>& tensors,
                                         int64_t max_shard_bytes = int64_t{5} << 30);

// "F32" <-> at::kFloat, ...; parse returns false for an unknown name.
bool parse_safetensors_dtype(const std::string& name, at::ScalarType* out);
std::string safetensors_dtype_name(at::ScalarType dtype);

}  // namespace gaft
