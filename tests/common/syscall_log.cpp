// An LD_PRELOAD library for tests: appends one line per successful fsync / fdatasync ("fsync <path of the
// descriptor>") and rename ("rename <from> <to>") to the file named by $GAFT_SYSCALL_LOG, in call order, so
// that a test can check what was flushed before a file or folder took its name.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace {

void log_line(const std::string& line) {
  const char* file = std::getenv("GAFT_SYSCALL_LOG");
  if (!file || !*file) return;
  static std::mutex m;
  const std::lock_guard<std::mutex> lock(m);
  const int fd = ::open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());
  ::close(fd);
}

std::string path_of(int fd) {
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
}

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int fsync(int fd) {
  static const auto next = real<int (*)(int)>("fsync");
  const int rc = next(fd);
  if (rc == 0) log_line("fsync " + path_of(fd));
  return rc;
}

int fdatasync(int fd) {
  static const auto next = real<int (*)(int)>("fdatasync");
  const int rc = next(fd);
  if (rc == 0) log_line("fsync " + path_of(fd));
  return rc;
}

int rename(const char* from, const char* to) {
  static const auto next = real<int (*)(const char*, const char*)>("rename");
  const int rc = next(from, to);
  if (rc == 0) log_line(std::string("rename ") + from + " " + to);
  return rc;
}

}  // extern "C"
