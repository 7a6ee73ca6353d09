// Sharded AdamW (ZeRO-1 / ZeRO-2) on c10d. See gaft/sharding.h.
#include "gaft/sharding.h"

#include <ATen/ops/_fused_adamw.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/host_sync.h"
#include "gaft/log.h"
#include "gaft/read_file.h"
#include "gaft/safetensors.h"

namespace gaft {

namespace fs = std::filesystem;

const char* const kShardedOptimizerFormat = "gaft-sharded-adamw-1";

std::string sharded_optimizer_file(int64_t rank) {
  char name[48];
  std::snprintf(name, sizeof name, "optimizer-rank-%05lld.safetensors", static_cast<long long>(rank));
  return name;
}

std::vector<ShardBucket> plan_shard_buckets(const std::vector<at::Tensor>& params, int64_t world, int64_t bucket_bytes) {
  TORCH_CHECK(world >= 1, "plan_shard_buckets: world size must be >= 1");
  std::vector<ShardBucket> buckets;
  int64_t open_bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const at::Tensor& p = params[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool same_dtype =
        !buckets.empty() && params[buckets.back().params.front()].scalar_type() == p.scalar_type();
    if (buckets.empty() || !same_dtype || open_bytes >= bucket_bytes) {
      buckets.emplace_back();
      open_bytes = 0;
    }
    ShardBucket& b = buckets.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    open_bytes += bytes;
  }
  for (ShardBucket& b : buckets) b.part = (b.numel + world - 1) / world;
  return buckets;
}

std::vector<ShardBucket> plan_layer_buckets(const std::vector<std::string>& names, const std::vector<at::Tensor>& params,
                                            int64_t world, std::vector<int64_t>* layer_bucket) {
  TORCH_CHECK(world >= 1 && names.size() == params.size(), "plan_layer_buckets: bad arguments");
  std::map<int64_t, std::vector<size_t>> layers;  // layer -> parameters, in order
  std::vector<size_t> root;
  const std::string prefix = "model.layers.";
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string& n = names[k];
    size_t end = prefix.size();
    while (n.compare(0, prefix.size(), prefix) == 0 && end < n.size() && std::isdigit(static_cast<unsigned char>(n[end]))) ++end;
    if (end > prefix.size() && end < n.size() && n[end] == '.') layers[std::stoll(n.substr(prefix.size(), end - prefix.size()))].push_back(k);
    else root.push_back(k);
  }
  std::vector<ShardBucket> buckets;
  const auto add = [&](const std::vector<size_t>& ks) {
    ShardBucket b;
    for (size_t k : ks) {
      TORCH_CHECK(params[k].scalar_type() == params[ks.front()].scalar_type(), "sharding full: parameters of one layer "
                  "have different dtypes (", names[k], ")");
      b.params.push_back(k);
      b.offsets.push_back(b.numel);
      b.numel += params[k].numel();
    }
    b.part = (b.numel + world - 1) / world;
    buckets.push_back(std::move(b));
  };
  const int64_t count = layers.empty() ? 0 : layers.rbegin()->first + 1;
  layer_bucket->assign(static_cast<size_t>(count), -1);
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    (*layer_bucket)[static_cast<size_t>(it->first)] = static_cast<int64_t>(buckets.size());
    add(it->second);
  }
  if (!root.empty()) add(root);
  return buckets;
}

namespace {

// One contiguous run of a parameter inside this rank's slice of a bucket.
struct Segment {
  int64_t start;  // in the slice
  int64_t length;
  bool decay;     // weight decay (2-D parameter)
};

}  // namespace

struct ShardedAdamW::Impl {
  Dist& dist;
  OptimizerSection opt;
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  std::vector<ShardBucket> layout;
  std::vector<size_t> bucket_of;  // parameter -> bucket

  std::vector<std::vector<int64_t>> shapes;  // per parameter (under full its tensor is empty between uses)
  std::vector<int64_t> numels;

  // Per bucket.
  std::vector<at::Tensor> flat;     // [world * part] in the parameters' dtype; the parameters are views of it
                                    // (under full only while gathered)
  std::vector<at::Tensor> master;   // [part] fp32: the rank's slice of flat, or a copy when flat is not fp32
                                    // or (full) not kept
  std::vector<char> own_master;     // master is its own storage (saved in checkpoints)
  std::vector<at::Tensor> exp_avg;  // [part] fp32
  std::vector<at::Tensor> exp_avg_sq;
  std::vector<at::Tensor> grad;     // [part] fp32: this step's summed gradient slice
  std::vector<std::vector<Segment>> segments;

  // The micro-batch in flight.
  bool armed = false;
  std::vector<int64_t> ready;          // per bucket: parameters whose gradient arrived
  std::vector<char> launched;
  size_t next = 0;                     // the next bucket to launch: buckets go out in order on every rank
  std::vector<at::Tensor> send, recv;  // per bucket while its reduce-scatter runs
  std::vector<Dist::Pending> pending;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;

  // sharding full.
  bool full = false;
  std::vector<int64_t> layer_bucket;  // decoder layer -> its bucket
  int64_t root = -1;                  // the bucket of the other parameters, or -1
  std::vector<char> gathered, gathering;
  std::vector<Dist::Pending> gather_pending;
  std::vector<at::Tensor> gather_in;  // an in-flight gather's input
  std::vector<char> fwd_seen, bwd_seen;  // per layer, this micro-batch

  Impl(Dist& d) : dist(d) {}

  // Launches the all-gather of bucket b's slices into a new flat buffer (nothing if it is there or coming).
  void start_gather(size_t b) {
    if (gathered[b] || gathering[b]) return;
    const ShardBucket& bk = layout[b];
    const at::Tensor& first = params[bk.params.front()];
    flat[b] = at::empty({bk.part * dist.world_size()}, first.options());
    gather_in[b] = master[b].scalar_type() == first.scalar_type() ? master[b] : master[b].to(first.scalar_type());
    gather_pending[b] = dist.all_gather(flat[b], gather_in[b]);
    gathering[b] = 1;
  }

  // Bucket b whole: its parameters are views of the gathered buffer.
  void finish_gather(size_t b) {
    start_gather(b);
    if (gathered[b]) return;
    gather_pending[b].wait();
    gather_in[b] = at::Tensor();
    const ShardBucket& bk = layout[b];
    for (size_t j = 0; j < bk.params.size(); ++j) {
      const size_t k = bk.params[j];
      params[k].set_data(flat[b].narrow(0, bk.offsets[j], numels[k]).view(shapes[k]));
    }
    gathering[b] = 0;
    gathered[b] = 1;
  }

  // Bucket b's parameters back to empty tensors; the buffer is freed.
  void release(size_t b) {
    if (gathering[b]) finish_gather(b);
    if (!gathered[b]) return;
    for (size_t k : layout[b].params) params[k].set_data(at::empty({0}, params[k].options()));
    flat[b] = at::Tensor();
    gathered[b] = 0;
  }

  int64_t rank() const { return dist.rank(); }

  // Gradients of bucket b into a flat buffer (zeros where a parameter has none), the parameters' gradients
  // dropped, and the reduce-scatter launched.
  void launch(size_t b) {
    // At most two buckets in flight: the one before the previous is waited for and its buffers freed, so
    // that the gradients' flat copies never add up to a second copy of the gradients.
    if (b >= 2) retire(b - 2);
    if (b != next) throw std::logic_error("sharding: bucket " + std::to_string(b) + " sent out of order");
    ++next;
    const ShardBucket& bk = layout[b];
    const at::Tensor& first = params[bk.params.front()];
    at::Tensor buf = at::zeros({bk.part * dist.world_size()}, first.options());
    for (size_t j = 0; j < bk.params.size(); ++j) {
      at::Tensor& p = params[bk.params[j]];
      if (p.grad().defined()) {
        buf.narrow(0, bk.offsets[j], numels[bk.params[j]]).copy_(p.grad().reshape({-1}));
        p.mutable_grad().reset();
      }
    }
    send[b] = buf;
    recv[b] = at::empty({bk.part}, first.options());
    pending[b] = dist.reduce_scatter(recv[b], send[b]);
    launched[b] = 1;
  }

  // Waits for bucket b's reduce-scatter, adds this rank's part into the fp32 slice, frees its buffers.
  void retire(size_t b) {
    if (!send[b].defined()) return;
    pending[b].wait();
    grad[b].add_(recv[b].to(at::kFloat));
    send[b] = at::Tensor();
    recv[b] = at::Tensor();
  }

  void launch_ready() {
    while (next < layout.size() && ready[next] == static_cast<int64_t>(layout[next].params.size())) launch(next);
  }

  void on_grad(size_t k) {
    if (!armed) return;
    const size_t b = bucket_of[k];
    if (launched[b])
      throw std::logic_error("sharding: parameter '" + names[k] +
                             "' received a second gradient after its bucket was sent (two backward passes in one "
                             "micro-batch)");
    ++ready[b];
    launch_ready();
  }
};

ShardedAdamW::ShardedAdamW(const std::vector<std::pair<std::string, at::Tensor>>& named, const OptimizerSection& options,
                           Sharding level, Dist& dist, int64_t bucket_bytes)
    : impl_(std::make_shared<Impl>(dist)), level_(level) {
  TORCH_CHECK(level != Sharding::kNone, "ShardedAdamW needs a sharding level");
  Impl& m = *impl_;
  m.opt = options;
  for (const auto& [name, p] : named) {
    if (!p.requires_grad()) continue;
    m.names.push_back(name);
    m.params.push_back(p);
  }
  if (m.params.empty()) throw UsageError("distributed.sharding: the model has no trainable parameters to shard");
  const int64_t world = dist.world_size(), rank = dist.rank();
  m.full = level == Sharding::kFull;
  for (const at::Tensor& p : m.params) {
    m.shapes.push_back(p.sizes().vec());
    m.numels.push_back(p.numel());
  }
  m.layout = m.full ? plan_layer_buckets(m.names, m.params, world, &m.layer_bucket)
                    : plan_shard_buckets(m.params, world, bucket_bytes);
  if (m.full && m.layout.size() > m.layer_bucket.size()) m.root = static_cast<int64_t>(m.layout.size()) - 1;
  for (int64_t b : m.layer_bucket)
    if (b < 0) throw UsageError("distributed.sharding full: the model's decoder layers are not numbered 0..N-1");
  m.bucket_of.assign(m.params.size(), 0);
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < m.layout.size(); ++b) {
    const ShardBucket& bk = m.layout[b];
    const at::Tensor& first = m.params[bk.params.front()];
    at::Tensor flat = at::zeros({bk.part * world}, first.options());
    std::vector<Segment> segs;
    const int64_t lo = rank * bk.part, hi = lo + bk.part;
    for (size_t j = 0; j < bk.params.size(); ++j) {
      at::Tensor& p = m.params[bk.params[j]];
      m.bucket_of[bk.params[j]] = b;
      at::Tensor view = flat.narrow(0, bk.offsets[j], p.numel());
      view.copy_(p.reshape({-1}));
      p.set_data(view.view(p.sizes()));
      const int64_t a = std::max(lo, bk.offsets[j]), e = std::min(hi, bk.offsets[j] + p.numel());
      if (a < e) segs.push_back({a - lo, e - a, p.dim() >= 2});
    }
    at::Tensor slice = flat.narrow(0, lo, bk.part);
    const auto f32 = first.options().dtype(at::kFloat);
    if (m.full) {  // only the slice stays; the parameters are empty until gathered
      m.master.push_back(slice.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true));
      m.own_master.push_back(1);
      m.flat.push_back(at::Tensor());
      for (size_t k : bk.params) m.params[k].set_data(at::empty({0}, m.params[k].options()));
    } else {
      m.flat.push_back(flat);
      m.master.push_back(first.scalar_type() == at::kFloat ? slice : slice.to(at::kFloat));
      m.own_master.push_back(first.scalar_type() != at::kFloat);
    }
    m.exp_avg.push_back(at::zeros({bk.part}, f32));
    m.exp_avg_sq.push_back(at::zeros({bk.part}, f32));
    m.grad.push_back(at::zeros({bk.part}, f32));
    m.segments.push_back(std::move(segs));
  }
  const size_t nb = m.layout.size();
  m.ready.assign(nb, 0);
  m.launched.assign(nb, 0);
  m.send.assign(nb, at::Tensor());
  m.recv.assign(nb, at::Tensor());
  m.pending.assign(nb, Dist::Pending());
  m.gathered.assign(nb, 0);
  m.gathering.assign(nb, 0);
  m.gather_pending.assign(nb, Dist::Pending());
  m.gather_in.assign(nb, at::Tensor());
  m.fwd_seen.assign(m.layer_bucket.size(), 0);
  m.bwd_seen.assign(m.layer_bucket.size(), 0);
  hooks_ = std::make_unique<Hooks>(impl_.get());
  // A hook after each parameter's gradient accumulation (as DDP's reducer): the parameter's gradient for
  // this backward is complete. Not under full, whose layer hooks send the gradients: an accumulator made now
  // would also record the empty shape its parameter has between uses.
  for (size_t k = 0; k < m.params.size() && !m.full; ++k) {
    std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(m.params[k]);
    TORCH_CHECK(acc, "sharding: parameter '", m.names[k], "' has no gradient accumulator");
    std::weak_ptr<Impl> self = impl_;
    acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [self, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (const auto impl = self.lock()) impl->on_grad(k);
          return outputs;
        }));
    m.accumulators.push_back(std::move(acc));
  }
}

ShardedAdamW::~ShardedAdamW() = default;

bool ShardedAdamW::reduces(int64_t index, int64_t count) const {
  return level_ != Sharding::kOptimizer || index + 1 == count;
}

// The layer hooks of sharding full: gather before use (and prefetch the next layer), free after; after a
// layer's backward its gradients go out. Every call order is the same on every rank.
void ShardedAdamW::Hooks::before_forward(int64_t layer) {
  Impl& m = *impl_;
  if (!m.full) return;
  if (m.fwd_seen[static_cast<size_t>(layer)])
    throw std::logic_error("sharding full: a second training forward in one micro-batch (layer " + std::to_string(layer) + ")");
  m.fwd_seen[static_cast<size_t>(layer)] = 1;
  m.finish_gather(static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer)]));
  if (layer + 1 < static_cast<int64_t>(m.layer_bucket.size()))
    m.start_gather(static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer + 1)]));
}

void ShardedAdamW::Hooks::after_forward(int64_t layer) {
  Impl& m = *impl_;
  if (!m.full) return;
  m.release(static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer)]));
  at::autocast::clear_cache();  // autocast's bf16 copies of the layer's weights go with them
}

void ShardedAdamW::Hooks::before_backward(int64_t layer) {
  Impl& m = *impl_;
  if (!m.full) return;
  m.finish_gather(static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer)]));
  if (layer > 0) m.start_gather(static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer - 1)]));
}

void ShardedAdamW::Hooks::after_backward(int64_t layer) {
  Impl& m = *impl_;
  if (!m.full) return;
  torch::NoGradGuard no_grad;
  const size_t b = static_cast<size_t>(m.layer_bucket[static_cast<size_t>(layer)]);
  m.bwd_seen[static_cast<size_t>(layer)] = 1;
  m.launch(b);
  m.release(b);
}

LayerHooks* ShardedAdamW::layer_hooks() { return hooks_.get(); }

void ShardedAdamW::materialize() {
  Impl& m = *impl_;
  if (!m.full) return;
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < m.layout.size(); ++b) m.start_gather(b);
  for (size_t b = 0; b < m.layout.size(); ++b) m.finish_gather(b);
}

void ShardedAdamW::layerwise() {
  Impl& m = *impl_;
  if (!m.full) return;
  for (int64_t b : m.layer_bucket) m.release(static_cast<size_t>(b));
}

void ShardedAdamW::release_all() {
  Impl& m = *impl_;
  if (!m.full) return;
  for (size_t b = 0; b < m.layout.size(); ++b) m.release(b);
}

void ShardedAdamW::begin_micro(bool reduce) {
  Impl& m = *impl_;
  m.armed = reduce && !m.full;  // under full, the layer hooks send the gradients
  std::fill(m.ready.begin(), m.ready.end(), 0);
  std::fill(m.launched.begin(), m.launched.end(), 0);
  std::fill(m.fwd_seen.begin(), m.fwd_seen.end(), 0);
  std::fill(m.bwd_seen.begin(), m.bwd_seen.end(), 0);
  m.next = 0;
  if (m.full) {
    torch::NoGradGuard no_grad;
    layerwise();
    if (m.root >= 0) m.finish_gather(static_cast<size_t>(m.root));
  }
}

void ShardedAdamW::end_micro() {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  if (m.full) {
    // What this rank's micro-batch did not run (nothing trained: no forward, or no backward), replayed with
    // zero gradients, so that its collectives match the other ranks'.
    const int64_t L = static_cast<int64_t>(m.layer_bucket.size());
    const bool no_forward = std::find(m.fwd_seen.begin(), m.fwd_seen.end(), 1) == m.fwd_seen.end();
    if (no_forward || std::find(m.bwd_seen.begin(), m.bwd_seen.end(), 0) != m.bwd_seen.end())
      log::debug(std::string("sharding full: this micro-batch ran no ") + (no_forward ? "forward" : "backward") +
                 " through the layers; replaying their gathers and sending zero gradients");
    if (no_forward)
      for (int64_t i = 0; i < L; ++i) {
        hooks_->before_forward(i);
        hooks_->after_forward(i);
      }
    for (int64_t i = L - 1; i >= 0; --i)
      if (!m.bwd_seen[static_cast<size_t>(i)]) {
        hooks_->before_backward(i);
        hooks_->after_backward(i);
      }
    if (m.root >= 0) {
      m.launch(static_cast<size_t>(m.root));
      m.release(static_cast<size_t>(m.root));
    }
    for (size_t b = 0; b < m.layout.size(); ++b) m.retire(b);
    return;
  }
  if (!m.armed) return;
  m.armed = false;
  while (m.next < m.layout.size()) m.launch(m.next);
  for (size_t b = 0; b < m.layout.size(); ++b) m.retire(b);
}

double ShardedAdamW::clip(double max_norm) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  at::Tensor sq = at::zeros({1}, m.grad.front().options().dtype(at::kDouble));
  for (const at::Tensor& g : m.grad) sq += g.to(at::kDouble).pow(2).sum();
  m.dist.sum_(sq);
  const double norm = std::sqrt(*to_host(sq).data_ptr<double>());
  if (std::isfinite(max_norm)) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));
    if (coef < 1.0)
      for (at::Tensor& g : m.grad) g.mul_(coef);
  }
  return norm;
}

void ShardedAdamW::step(double lr) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  ++step_;
  for (const bool decay : {true, false}) {
    std::vector<at::Tensor> ps, gs, m1, m2, steps;
    for (size_t b = 0; b < m.layout.size(); ++b)
      for (const Segment& s : m.segments[b]) {
        if (s.decay != decay) continue;
        ps.push_back(m.master[b].narrow(0, s.start, s.length));
        gs.push_back(m.grad[b].narrow(0, s.start, s.length));
        m1.push_back(m.exp_avg[b].narrow(0, s.start, s.length));
        m2.push_back(m.exp_avg_sq[b].narrow(0, s.start, s.length));
        steps.push_back(at::full({}, static_cast<double>(step_), ps.back().options()));
      }
    if (ps.empty()) continue;
    std::optional<HostReadsOnTheHost> on_host;  // the CPU kernel reads each step count with .item()
    if (ps.front().is_cpu()) on_host.emplace();
    at::_fused_adamw_(ps, gs, m1, m2, /*max_exp_avg_sqs=*/{}, steps, lr, m.opt.beta1, m.opt.beta2,
                      decay ? m.opt.weight_decay : 0.0, m.opt.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
  std::vector<Dist::Pending> gathers;
  for (size_t b = 0; b < m.layout.size() && !m.full; ++b) {
    at::Tensor slice = m.flat[b].narrow(0, m.dist.rank() * m.layout[b].part, m.layout[b].part);
    if (m.master[b].data_ptr() != slice.data_ptr()) slice.copy_(m.master[b]);
    gathers.push_back(m.dist.all_gather(m.flat[b], slice));
  }
  for (auto& g : gathers) g.wait();
  zero_grad();
}

void ShardedAdamW::zero_grad() {
  for (at::Tensor& g : impl_->grad) g.zero_();
  for (at::Tensor& p : impl_->params) p.mutable_grad().reset();
}

int64_t ShardedAdamW::moment_bytes() const {
  int64_t n = 0;
  for (const auto& t : impl_->exp_avg) n += 2 * t.numel() * 4;
  return n;
}

int64_t ShardedAdamW::master_bytes() const {
  int64_t n = 0;
  for (size_t b = 0; b < impl_->master.size(); ++b)
    if (impl_->own_master[b]) n += impl_->master[b].numel() * 4;
  return n;
}

int64_t ShardedAdamW::grad_slice_bytes() const {
  int64_t n = 0;
  for (const auto& t : impl_->grad) n += t.numel() * 4;
  return n;
}

namespace {

const char* level_name(Sharding s) {
  switch (s) {
    case Sharding::kOptimizer: return "optimizer";
    case Sharding::kGradients: return "gradients";
    case Sharding::kFull: return "full";
    default: return "none";
  }
}

}  // namespace

void ShardedAdamW::save(const fs::path& dir, bool main) const {
  const Impl& m = *impl_;
  std::map<std::string, at::Tensor> tensors;
  for (size_t b = 0; b < m.layout.size(); ++b) {
    const std::string k = "b" + std::to_string(b) + ".";
    tensors[k + "exp_avg"] = m.exp_avg[b].detach().cpu();
    tensors[k + "exp_avg_sq"] = m.exp_avg_sq[b].detach().cpu();
    if (m.own_master[b]) tensors[k + "master"] = m.master[b].detach().cpu();
  }
  save_safetensors((dir / sharded_optimizer_file(m.dist.rank())).string(), tensors);
  if (!main) return;
  nlohmann::json buckets = nlohmann::json::array();
  for (const ShardBucket& bk : m.layout) {
    nlohmann::json names = nlohmann::json::array();
    for (size_t k : bk.params) names.push_back(m.names[k]);
    buckets.push_back({{"numel", bk.numel}, {"part", bk.part}, {"params", names}});
  }
  const nlohmann::json meta = {{"format", kShardedOptimizerFormat},
                               {"sharding", level_name(level_)},
                               {"world_size", m.dist.world_size()},
                               {"step", step_},
                               {"buckets", buckets}};
  write_file_atomic((dir / "optimizer.json").string(), meta.dump(1) + "\n");
}

void ShardedAdamW::load(const fs::path& dir) {
  Impl& m = *impl_;
  const std::string meta_file = (dir / "optimizer.json").string();
  const nlohmann::json meta = read_json_file(meta_file);
  const auto bad = [&](const std::string& file, const std::string& what) {
    throw DataError(file + ": " + what, "resume with the configuration and the number of ranks the run started with, or "
                                        "start anew (checkpoint.resume: never)");
  };
  const std::string format = meta.is_object() ? meta.value("format", std::string()) : "";
  if (format == "gaft-adamw-1")
    bad(meta_file, std::string("holds unsharded AdamW state (distributed.sharding: none); this job shards it (") +
                       level_name(level_) + ") over " + std::to_string(m.dist.world_size()) + " ranks");
  if (format != kShardedOptimizerFormat) bad(meta_file, std::string("expected \"format\": \"") + kShardedOptimizerFormat + "\"");
  try {
    const int64_t world = meta.at("world_size").get<int64_t>();
    if (world != m.dist.world_size())
      bad(meta_file, "optimizer state sharded over " + std::to_string(world) + " ranks; this job has " +
                         std::to_string(m.dist.world_size()) + " (resharding is not supported: resume with " +
                         std::to_string(world) + " ranks)");
    const std::string level = meta.at("sharding").get<std::string>();
    if (level != level_name(level_))
      bad(meta_file, "written with distributed.sharding: " + level + "; this job has " + level_name(level_));
    const nlohmann::json& buckets = meta.at("buckets");
    if (!buckets.is_array() || buckets.size() != m.layout.size())
      bad(meta_file, "expected " + std::to_string(m.layout.size()) + " buckets: the model, its trainable parameters or "
                     "distributed.bucket_mb changed");
    for (size_t b = 0; b < m.layout.size(); ++b) {
      const ShardBucket& bk = m.layout[b];
      std::vector<std::string> names;
      for (size_t k : bk.params) names.push_back(m.names[k]);
      if (buckets[b].at("numel").get<int64_t>() != bk.numel || buckets[b].at("part").get<int64_t>() != bk.part ||
          buckets[b].at("params").get<std::vector<std::string>>() != names)
        bad(meta_file, "bucket " + std::to_string(b) + " differs from this model's (first parameter '" + names.front() +
                           "'): the model, its trainable parameters or distributed.bucket_mb changed");
    }
    const int64_t steps = meta.at("step").get<int64_t>();
    if (steps < 0) bad(meta_file, "step must be >= 0");
    const std::string tensor_file = (dir / sharded_optimizer_file(m.dist.rank())).string();
    if (!fs::exists(tensor_file)) bad(tensor_file, "missing: every rank of the run that wrote it saves one");
    const Checkpoint ck = load_checkpoint(tensor_file);
    size_t used = 0;
    std::vector<std::pair<at::Tensor*, at::Tensor>> moves;
    for (size_t b = 0; b < m.layout.size(); ++b) {
      const std::string k = "b" + std::to_string(b) + ".";
      const bool separate = m.own_master[b];
      for (const std::string what : {"exp_avg", "exp_avg_sq", "master"}) {
        if (what == "master" && !separate) continue;
        const auto it = ck.tensors.find(k + what);
        if (it == ck.tensors.end()) bad(tensor_file, "missing tensor '" + k + what + "'");
        const at::Tensor& t = it->second;
        if (t.dim() != 1 || t.size(0) != m.layout[b].part || t.scalar_type() != at::kFloat)
          bad(tensor_file, "tensor '" + k + what + "' is " + c10::str(t.sizes()) + " " + c10::toString(t.scalar_type()) +
                               ", expected [" + std::to_string(m.layout[b].part) + "] float32");
        if (!t.isfinite().all().item<bool>() || (what == "exp_avg_sq" && (t < 0).any().item<bool>()))
          bad(tensor_file, "tensor '" + k + what + "' holds non-finite or negative values");
        at::Tensor* dst = what == "exp_avg" ? &m.exp_avg[b] : what == "exp_avg_sq" ? &m.exp_avg_sq[b] : &m.master[b];
        moves.emplace_back(dst, t);
        ++used;
      }
    }
    if (used != ck.tensors.size()) bad(tensor_file, "holds tensors that no bucket of this model has");
    // Every check passed: the state changes.
    torch::NoGradGuard no_grad;
    for (auto& [dst, t] : moves) dst->copy_(t.to(dst->device()));
    step_ = steps;
  } catch (const nlohmann::json::exception& e) {
    bad(meta_file, std::string("not a gaft sharded optimizer state: ") + e.what());
  }
}

}  // namespace gaft
