// Writing files so that a crash never leaves a half-written one under the final name: the data goes to
// "<path>.tmp.<pid>", is flushed to disk, and is renamed over <path>.
#pragma once

#include <string>

namespace gaft {

void write_file_atomic(const std::string& path, const std::string& contents);

// Creates a directory and its parents; a DataError naming the path if that fails.
void make_dirs(const std::string& path);

}  // namespace gaft
