// Launch environment and the c10d process group. See gaft/distributed.h.
#include "gaft/distributed.h"
#include "gaft/host_sync.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if GAFT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>

#include "gaft/error.h"
#include "gaft/log.h"

namespace gaft {

namespace {

int64_t parse_count(const std::string& name, const char* value, int64_t lo, int64_t hi) {
  const std::string v = value;
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size() || x < lo || x > hi)
    throw UsageError("environment variable " + name + "='" + v + "': expected an integer in [" + std::to_string(lo) +
                     ", " + std::to_string(hi) + "]");
  return x;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets; "prefix[a-b,c]suffix" expands to prefix + a + suffix.
  int depth = 0;
  size_t end = nodelist.size();
  for (size_t i = 0; i < nodelist.size(); ++i) {
    if (nodelist[i] == '[') ++depth;
    else if (nodelist[i] == ']') --depth;
    else if (nodelist[i] == ',' && depth == 0) {
      end = i;
      break;
    }
  }
  const std::string first = nodelist.substr(0, end);
  const size_t open = first.find('[');
  if (first.empty() || depth != 0)
    throw UsageError("SLURM_JOB_NODELIST='" + nodelist + "': expected host names like node1,node2 or node[1-4]");
  if (open == std::string::npos) return first;
  const size_t close = first.find(']', open);
  if (close == std::string::npos || close == open + 1)
    throw UsageError("SLURM_JOB_NODELIST='" + nodelist + "': unbalanced or empty brackets");
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find(','));  // first element of the range list
  range = range.substr(0, range.find('-'));  // first number of a range (keeps its zero padding)
  if (range.empty() || !std::all_of(range.begin(), range.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw UsageError("SLURM_JOB_NODELIST='" + nodelist + "': expected numbers inside the brackets");
  return first.substr(0, open) + range + first.substr(close + 1);
}

Launch resolve_launch(const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  Launch l;
  constexpr int64_t kMaxWorld = 1 << 20;
  if (env("RANK") || env("WORLD_SIZE")) {
    if (!env("RANK") || !env("WORLD_SIZE"))
      throw UsageError(std::string("environment: ") + (env("RANK") ? "RANK" : "WORLD_SIZE") + " is set but " +
                       (env("RANK") ? "WORLD_SIZE" : "RANK") + " is not; a launcher sets both");
    l.source = "env";
    l.world_size = parse_count("WORLD_SIZE", env("WORLD_SIZE"), 1, kMaxWorld);
    l.rank = parse_count("RANK", env("RANK"), 0, l.world_size - 1);
    l.local_rank = env("LOCAL_RANK") ? parse_count("LOCAL_RANK", env("LOCAL_RANK"), 0, l.world_size - 1) : l.rank;
    if (l.world_size > 1 && !env("MASTER_ADDR"))
      throw UsageError("environment: WORLD_SIZE=" + std::to_string(l.world_size) + " but MASTER_ADDR is not set",
                       "export MASTER_ADDR (rank 0's host) and MASTER_PORT, as torchrun does");
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    l.source = "slurm";
    l.world_size = parse_count("SLURM_NTASKS", env("SLURM_NTASKS"), 1, kMaxWorld);
    l.rank = parse_count("SLURM_PROCID", env("SLURM_PROCID"), 0, l.world_size - 1);
    l.local_rank = env("SLURM_LOCALID") ? parse_count("SLURM_LOCALID", env("SLURM_LOCALID"), 0, l.world_size - 1) : 0;
    if (!env("MASTER_ADDR")) {
      if (!env("SLURM_JOB_NODELIST") && l.world_size > 1)
        throw UsageError("environment: SLURM_NTASKS=" + std::to_string(l.world_size) +
                         " but neither MASTER_ADDR nor SLURM_JOB_NODELIST is set");
      if (env("SLURM_JOB_NODELIST")) l.master_addr = first_slurm_host(env("SLURM_JOB_NODELIST"));
    }
    if (!env("MASTER_PORT") && env("SLURM_JOB_ID"))
      l.master_port = 15000 + parse_count("SLURM_JOB_ID", env("SLURM_JOB_ID"), 0, std::numeric_limits<int64_t>::max()) % 20000;
  } else {
    return l;
  }
  l.agent_store = env("TORCHELASTIC_USE_AGENT_STORE") && std::string(env("TORCHELASTIC_USE_AGENT_STORE")) == "True";
  if (env("MASTER_ADDR")) l.master_addr = env("MASTER_ADDR");
  if (env("MASTER_PORT")) l.master_port = parse_count("MASTER_PORT", env("MASTER_PORT"), 1, 65535);
  return l;
}

at::Device rank_device(at::Device device, const Launch& launch) {
  if (!device.is_cuda() || launch.world_size <= 1) return device;
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank));
}

bool uses_nccl(DistBackend backend, at::Device device) {
  return backend == DistBackend::kNccl || (backend == DistBackend::kAuto && device.is_cuda());
}

struct Dist::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  std::string backend;
  int64_t string_keys = 0;
};

Dist::Dist(const Launch& launch, at::Device device, const DistOptions& options)
    : launch_(launch), options_(options), device_(device), impl_(std::make_unique<Impl>()) {
  const bool nccl = uses_nccl(options.backend, device);
  impl_->backend = nccl ? "nccl" : "gloo";
  if (nccl && !device.is_cuda())
    throw UsageError("distributed.backend nccl needs CUDA devices; this run is on " + device.str(),
                     "use distributed.backend: gloo (or auto) for CPU runs");
  if (!active()) return;
#if !GAFT_WITH_NCCL
  if (nccl)
    throw UsageError("this gaft was built without NCCL (GAFT_CUDA=OFF); CUDA runs on several processes need it",
                     "rebuild with CUDA, or use distributed.backend: gloo");
#endif
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(launch.master_port);
  so.isServer = launch.rank == 0 && !launch.agent_store;
  so.numWorkers = static_cast<size_t>(launch.world_size);
  so.waitWorkers = true;
  so.timeout = options.timeout;
  log::info("distributed: rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) +
            " (local " + std::to_string(launch.local_rank) + ", from " + launch.source + "), store " + launch.master_addr +
            ":" + std::to_string(launch.master_port) + ", backend " + impl_->backend + ", device " + device.str());
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, so);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("gaft", tcp);
    const int rank = static_cast<int>(launch.rank), size = static_cast<int>(launch.world_size);
    if (nccl) {
#if GAFT_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = options.timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, rank, size, o);
#endif
    } else {
      auto o = c10d::ProcessGroupGloo::Options::create(options.timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      o->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                             : c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, rank, size, o);
    }
  } catch (const c10::Error& e) {
    throw UsageError("distributed: cannot join the job at " + launch.master_addr + ":" + std::to_string(launch.master_port) +
                         " as rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) + ": " +
                         e.what_without_backtrace(),
                     "check MASTER_ADDR / MASTER_PORT (reachable from every node, port free), GLOO_SOCKET_IFNAME or "
                     "NCCL_SOCKET_IFNAME, and distributed.timeout_s");
  }
  barrier();
}

Dist::~Dist() = default;

std::string Dist::backend_name() const { return impl_->backend; }

void Dist::broadcast(const std::vector<at::Tensor>& tensors) {
  if (!active()) return;
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> one = {t.is_contiguous() ? t : t.contiguous()};
    impl_->group->broadcast(one)->wait();
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
}

void Dist::sum(std::vector<at::Tensor>& tensors) {
  if (!active()) return;
  for (at::Tensor& t : tensors)
    if (!t.defined()) throw std::logic_error("Dist::sum: undefined tensor (give zeros)");
  // Buckets of one dtype, in order, each up to bucket_bytes (a larger tensor is a bucket of its own).
  std::vector<std::vector<size_t>> buckets;
  std::map<at::ScalarType, size_t> open;  // dtype -> index of its open bucket
  std::vector<int64_t> bytes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::ScalarType dt = tensors[i].scalar_type();
    const int64_t b = tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
    auto it = open.find(dt);
    if (it == open.end() || bytes[it->second] + b > options_.bucket_bytes) {
      buckets.push_back({});
      bytes.push_back(0);
      open[dt] = buckets.size() - 1;
      it = open.find(dt);
    }
    buckets[it->second].push_back(i);
    bytes[it->second] += b;
  }
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& bucket : buckets) {
    std::vector<at::Tensor> parts;
    for (size_t i : bucket) parts.push_back(tensors[i].reshape({-1}));
    std::vector<at::Tensor> flat = {at::cat(parts)};
    works.push_back(impl_->group->allreduce(flat));
    flats.push_back(flat[0]);
  }
  for (size_t b = 0; b < buckets.size(); ++b) {
    works[b]->wait();
    int64_t offset = 0;
    for (size_t i : buckets[b]) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(flats[b].narrow(0, offset, n).view(tensors[i].sizes()));
      offset += n;
    }
  }
}

Dist::Pending Dist::reduce_scatter(at::Tensor out, at::Tensor in) {
  TORCH_CHECK(out.is_contiguous() && in.is_contiguous() && in.numel() == out.numel() * world_size() &&
                  in.scalar_type() == out.scalar_type(),
              "Dist::reduce_scatter: in must be [world * n], out [n], both contiguous, one dtype");
  Pending p;
  if (!active()) {
    out.copy_(in);
    return p;
  }
  c10::intrusive_ptr<c10d::Work> work = impl_->group->_reduce_scatter_base(out, in);
  p.wait_ = [work] { work->wait(); };
  return p;
}

Dist::Pending Dist::all_gather(at::Tensor out, at::Tensor in) {
  TORCH_CHECK(out.is_contiguous() && in.is_contiguous() && out.numel() == in.numel() * world_size() &&
                  in.scalar_type() == out.scalar_type(),
              "Dist::all_gather: in must be [n], out [world * n], both contiguous, one dtype");
  Pending p;
  if (!active()) {
    if (in.data_ptr() != out.data_ptr()) out.copy_(in);
    return p;
  }
  c10::intrusive_ptr<c10d::Work> work = impl_->group->_allgather_base(out, in);
  p.wait_ = [work] { work->wait(); };
  return p;
}

void Dist::sum_(at::Tensor t) {
  if (!active()) return;
  std::vector<at::Tensor> one = {t};
  impl_->group->allreduce(one)->wait();
}

std::vector<double> Dist::sum(std::vector<double> values) {
  if (!active() || values.empty()) return values;
  std::vector<at::Tensor> t = {at::tensor(values, at::kDouble).to(device_)};
  impl_->group->allreduce(t)->wait();
  const at::Tensor c = to_host(t[0]);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double Dist::max(double value) {
  if (!active()) return value;
  std::vector<at::Tensor> t = {at::tensor({value}, at::kDouble).to(device_)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  impl_->group->allreduce(t, o)->wait();
  return *to_host(t[0]).data_ptr<double>();
}

std::vector<double> Dist::gather(const std::vector<double>& values) {
  if (!active()) return values;
  const int64_t longest = static_cast<int64_t>(max(static_cast<double>(values.size())));
  // Each rank sends [n, v_0 .. v_{n-1}, padding] of length 1 + longest.
  at::Tensor mine = at::zeros({1 + longest}, at::kDouble);
  mine[0] = static_cast<double>(values.size());
  if (!values.empty()) mine.narrow(0, 1, static_cast<int64_t>(values.size())).copy_(at::tensor(values, at::kDouble));
  std::vector<at::Tensor> in = {mine.to(device_)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < world_size(); ++r) out[0].push_back(at::empty_like(in[0]));
  impl_->group->allgather(out, in)->wait();
  std::vector<double> all;
  const at::Tensor c = to_host(at::stack(out[0]));  // [world_size, 1 + longest], one copy
  for (int64_t r = 0; r < world_size(); ++r) {
    const double* p = c.data_ptr<double>() + r * (1 + longest);
    all.insert(all.end(), p + 1, p + 1 + static_cast<int64_t>(p[0]));
  }
  return all;
}

std::string Dist::broadcast_string(const std::string& value) {
  if (!active()) return value;
  const std::string key = "str" + std::to_string(impl_->string_keys++);
  if (is_main()) impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  const std::vector<uint8_t> got = impl_->store->get(key);
  return std::string(got.begin(), got.end());
}

void Dist::barrier() {
  if (!active()) return;
  std::vector<at::Tensor> t = {at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(device_))};
  impl_->group->allreduce(t)->wait();
}

}  // namespace gaft
