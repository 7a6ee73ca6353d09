// Counted host reads. See gaft/host_sync.h.
#include "gaft/host_sync.h"

#include <ATen/record_function.h>

#include <cstring>

namespace gaft {
namespace {

thread_local HostSyncs tally;          // running totals of this thread
thread_local int active = 0;           // HostSyncCounters alive on this thread
thread_local at::CallbackHandle handle = 0;  // the observer, installed while one is alive
thread_local int exempt = 0;           // HostReadsOnTheHost scopes open on this thread

std::unique_ptr<at::ObserverContext> observe(const at::RecordFunction& fn) {
  if (exempt > 0) return nullptr;
  const char* name = fn.name();
  if (std::strcmp(name, "aten::_local_scalar_dense") == 0) ++tally.scalars;
  else if (std::strcmp(name, "aten::nonzero") == 0 || std::strcmp(name, "aten::masked_select") == 0 ||
           std::strcmp(name, "aten::_unique2") == 0 || std::strcmp(name, "aten::unique_dim") == 0 ||
           std::strcmp(name, "aten::unique_consecutive") == 0)
    ++tally.data_sized;
  return nullptr;
}

}  // namespace

at::Tensor to_host(const at::Tensor& t) {
  if (active > 0) ++tally.copies;
  return t.to(at::kCPU).contiguous();
}

HostSyncCounter::HostSyncCounter() : start_(tally) {
  if (active++ == 0)
    handle = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&observe).scopes({at::RecordScope::FUNCTION}).needsInputs(false));
}

HostSyncCounter::~HostSyncCounter() {
  if (--active == 0) at::removeCallback(handle);
}

HostReadsOnTheHost::HostReadsOnTheHost() { ++exempt; }
HostReadsOnTheHost::~HostReadsOnTheHost() { --exempt; }

HostSyncs HostSyncCounter::counts() const {
  HostSyncs c;
  c.copies = tally.copies - start_.copies;
  c.scalars = tally.scalars - start_.scalars;
  c.data_sized = tally.data_sized - start_.data_sized;
  return c;
}

}  // namespace gaft
