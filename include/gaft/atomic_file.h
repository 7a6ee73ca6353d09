// Writing files so that a crash never leaves a half-written one under the final name: the data goes to
// "<path>.tmp.<pid>", is flushed to disk, and is renamed over <path>.
#pragma once

#include <cstddef>
#include <string>

namespace gaft {

// Streams pieces into the temporary file; commit() fsyncs it, renames it and fsyncs the folder. Destroyed without commit(),
// it removes the temporary file and leaves <path> as it was. Errors are DataErrors naming the file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

void write_file_atomic(const std::string& path, const std::string& contents);

// fsync of a directory: its entries (created, renamed files) reach the disk. DataError naming it.
void fsync_dir(const std::string& path);

// Puts the finished directory `staged` at `target`: an existing `target` is first renamed aside, then
// `staged` is renamed to `target`, then the old one is removed. A crash in between leaves either the old
// or the new directory complete under some name, never a half-written one under `target`.
void replace_dir(const std::string& staged, const std::string& target);

// Creates a directory and its parents; a DataError naming the path if that fails.
void make_dirs(const std::string& path);

}  // namespace gaft
