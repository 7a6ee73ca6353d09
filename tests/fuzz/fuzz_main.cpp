// One libFuzzer binary per harness of targets.h: built with -DGAFT_FUZZ_TARGET=<function> (GAFT_FUZZ=ON, clang).
// A refusal (gaft::Error) is a normal outcome; any other exception escapes, terminates and is reported.
#include "fuzz/targets.h"
#include "gaft/error.h"

#ifndef GAFT_FUZZ_TARGET
#error "GAFT_FUZZ_TARGET names the harness of this binary"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gaft::fuzz::GAFT_FUZZ_TARGET(data, size);
  } catch (const gaft::Error&) {
  }
  return 0;
}
