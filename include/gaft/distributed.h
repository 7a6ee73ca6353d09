// Data parallelism on LibTorch's c10d: a TCPStore rendezvous and one process group (Gloo on CPU, NCCL on
// CUDA) per process, launched by Slurm's srun, torchrun or anything that sets the usual variables.
//
//   launch env ──resolve_launch──▶ Launch {rank, world, local rank, master} ──▶ Dist (store + group)
//
// The trainer uses Dist for: parameters broadcast from rank 0, gradients summed in flat buckets, small
// per-step sums and gathers of metrics, the resume decision taken once by rank 0, and barriers around
// checkpoints. With world size 1 every call is a local no-op and nothing is opened.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gaft {

// Where this process sits in the job.
struct Launch {
  int64_t rank = 0;        // global rank, 0 .. world_size-1
  int64_t world_size = 1;  // processes in the job
  int64_t local_rank = 0;  // rank on this node: picks the GPU (cuda:local_rank)
  std::string master_addr = "127.0.0.1";  // host of rank 0, where the TCPStore listens
  int64_t master_port = 29500;
  std::string source = "single";  // "single", "env" (RANK, WORLD_SIZE ...) or "slurm"
  bool agent_store = false;  // torchrun already serves the store at MASTER_ADDR:MASTER_PORT (every rank
                             // joins as a client: TORCHELASTIC_USE_AGENT_STORE=True)
};

// Reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (torchrun and most launchers) or, when
// RANK is unset, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and the first host of SLURM_JOB_NODELIST
// (MASTER_ADDR / MASTER_PORT still win when set; the port defaults to 15000 + SLURM_JOB_ID % 20000, so that
// two jobs on one node do not collide). Neither: a single process. `getenv` is injectable for tests.
// UsageError naming the variable when a value is malformed or inconsistent.
Launch resolve_launch(const std::function<const char*(const char*)>& getenv = nullptr);

// The first host name of a Slurm node list: "gpu[07-09,12],cpu3" -> "gpu07", "node1,node2" -> "node1".
std::string first_slurm_host(const std::string& nodelist);

enum class DistBackend { kAuto, kGloo, kNccl };

// This process's device: cuda:local_rank when a CUDA run has several processes, else `device` unchanged.
at::Device rank_device(at::Device device, const Launch& launch);
// Whether the process group is NCCL: asked for, or auto on a CUDA device.
bool uses_nccl(DistBackend backend, at::Device device);

struct DistOptions {
  DistBackend backend = DistBackend::kAuto;  // auto: NCCL for CUDA devices, Gloo otherwise
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // rendezvous and every collective
  int64_t bucket_bytes = 25 << 20;           // gradients are summed in flat buckets of about this size
};

class Dist {
 public:
  // Opens the store and the process group (world size > 1); `device` is this process's device (its
  // tensors travel on it: CUDA for NCCL). UsageError when the backend cannot serve the device.
  Dist(const Launch& launch, at::Device device, const DistOptions& options);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  int64_t rank() const { return launch_.rank; }
  int64_t world_size() const { return launch_.world_size; }
  bool is_main() const { return launch_.rank == 0; }
  bool active() const { return launch_.world_size > 1; }
  const Launch& launch() const { return launch_; }
  std::string backend_name() const;

  // Rank 0's values into every rank's tensors (in place; same shapes everywhere).
  void broadcast(const std::vector<at::Tensor>& tensors);
  // Sums the tensors over all ranks, in place, flattened into buckets of options.bucket_bytes per dtype;
  // every bucket is launched before the first is waited for. Every tensor must be defined (give zeros for
  // a parameter this rank had no gradient for).
  void sum(std::vector<at::Tensor>& tensors);
  // A collective in flight: wait() blocks until this rank's part of it is done (a no-op when nothing was
  // launched, e.g. with world size 1).
  class Pending {
   public:
    void wait() {
      if (wait_) wait_();
      wait_ = nullptr;
    }

   private:
    friend class Dist;
    std::function<void()> wait_;
  };
  // Asynchronous reduce-scatter: `in` [world * n] summed over the ranks, this rank's slice [rank * n, rank * n + n)
  // of the sum into `out` [n]. Contiguous tensors of one dtype. With world size 1: out = in, at once.
  Pending reduce_scatter(at::Tensor out, at::Tensor in);
  // Asynchronous all-gather: every rank's `in` [n] into `out` [world * n] in rank order; `in` may be out's own
  // slice of this rank (in place). With world size 1: a copy unless in is out.
  Pending all_gather(at::Tensor out, at::Tensor in);
  // Element-wise sum of one tensor over all ranks, in place (on this process's device).
  void sum_(at::Tensor t);
  // Element-wise sum / max of small vectors of doubles over all ranks (same length everywhere).
  std::vector<double> sum(std::vector<double> values);
  double max(double value);
  // Every rank's vector (lengths may differ), concatenated in rank order.
  std::vector<double> gather(const std::vector<double>& values);
  // Rank 0's string on every rank.
  std::string broadcast_string(const std::string& value);
  void barrier();

 private:
  struct Impl;
  Launch launch_;
  DistOptions options_;
  at::Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gaft
