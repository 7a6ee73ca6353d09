// Reads from the device to the host, the points where a GPU step waits for the device. The training step
// makes them through to_host() only, so that they are few and countable: HostSyncCounter counts to_host()
// calls and, through a thread-local RecordFunction observer, every operator that reads a value back
// (aten::_local_scalar_dense, i.e. .item()) or sizes its output by the data (aten::nonzero, masked_select,
// unique): on a CPU these cost nothing, on a GPU each is a synchronisation. The trainer logs the count of
// every step (metrics.jsonl "host_syncs"), and a test holds it to the number that the code documents.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

namespace gaft {

// `t` on the CPU (contiguous), counted as one host read when a HostSyncCounter is active on this thread.
at::Tensor to_host(const at::Tensor& t);

struct HostSyncs {
  int64_t copies = 0;     // to_host() calls
  int64_t scalars = 0;    // .item() and other scalar reads (aten::_local_scalar_dense)
  int64_t data_sized = 0;  // nonzero, masked_select, unique (output size read from the device)
  int64_t total() const { return copies + scalars + data_sized; }
};

// Counts the host reads of this thread while alive (nested counters each count everything in their scope).
class HostSyncCounter {
 public:
  HostSyncCounter();
  ~HostSyncCounter();
  HostSyncCounter(const HostSyncCounter&) = delete;
  HostSyncCounter& operator=(const HostSyncCounter&) = delete;
  HostSyncs counts() const;

 private:
  HostSyncs start_;
};

// Reads inside its scope are not counted: for code whose scalar reads touch host tensors on the CPU only and
// stay on the device on a GPU (the fused AdamW kernel reads each parameter's step count with .item() on the CPU;
// on a GPU the counts live on the device and the kernel reads them there).
class HostReadsOnTheHost {
 public:
  HostReadsOnTheHost();
  ~HostReadsOnTheHost();
  HostReadsOnTheHost(const HostReadsOnTheHost&) = delete;
  HostReadsOnTheHost& operator=(const HostReadsOnTheHost&) = delete;
};

}  // namespace gaft
