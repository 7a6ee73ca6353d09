// Atomic file writes: temporary name, fsync, rename.
#include "gaft/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gaft/error.h"

namespace gaft {

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw DataError("cannot create directory '" + path + "': " + ec.message());
}

void fsync_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw DataError("cannot open directory '" + path + "' to flush it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = rc != 0 ? errno : 0;
  ::close(fd);
  // Some file systems cannot fsync a directory (EINVAL): nothing more can be done there.
  if (rc != 0 && err != EINVAL) throw DataError("cannot flush directory '" + path + "': " + std::strerror(err));
}

namespace {
std::string parent_of(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}
}  // namespace

void replace_dir(const std::string& staged, const std::string& target) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fsync_dir(staged);  // its entries (the files are flushed by their writers) before it takes the name
  const std::string old = target + ".old." + std::to_string(::getpid());
  const bool had = fs::exists(target);
  if (had && ::rename(target.c_str(), old.c_str()) != 0)
    throw DataError("cannot move '" + target + "' aside to '" + old + "': " + std::strerror(errno));
  if (::rename(staged.c_str(), target.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    if (had) ::rename(old.c_str(), target.c_str());
    throw DataError("cannot rename '" + staged + "' to '" + target + "': " + why);
  }
  fsync_dir(parent_of(target));  // the rename itself
  if (had) fs::remove_all(old, ec);
}

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  const std::filesystem::path p(path_);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw DataError("cannot write '" + tmp_ + "': " + std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw DataError("cannot write '" + tmp_ + "': " + std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void AtomicFileWriter::commit() {
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    throw DataError("cannot flush '" + tmp_ + "': " + why);
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    throw DataError("cannot rename '" + tmp_ + "' to '" + path_ + "': " + why);
  }
  fsync_dir(parent_of(path_));  // the rename survives a power cut
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFileWriter w(path);
  w.write(contents.data(), contents.size());
  w.commit();
}

}  // namespace gaft
