// The training loop. See gaft/trainer.h; the method is docs/method.md.
#include "gaft/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "gaft/atomic_file.h"
#include "gaft/autocast.h"
#include "gaft/chat.h"
#include "gaft/checkpoint.h"
#include "gaft/dataset.h"
#include "gaft/device.h"
#include "gaft/distributed.h"
#include "gaft/memory_plan.h"
#include "gaft/ops.h"
#include "gaft/sharding.h"
#include "gaft/fingerprint.h"
#include "gaft/host_sync.h"
#include "gaft/error.h"
#include "gaft/log.h"
#include "gaft/logging.h"
#include "gaft/objective.h"
#include "gaft/optim.h"
#include "gaft/rollout.h"
#include "gaft/recovery.h"
#include "gaft/scorer.h"
#include "gaft/stop_signal.h"
#include "gaft/tensorboard.h"

namespace fs = std::filesystem;

namespace gaft {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The policy in eval mode for its lifetime (no LoRA dropout), then back in training mode.
class EvalMode {
 public:
  explicit EvalMode(Llama& m) : m_(m) { m_->eval(); }
  ~EvalMode() { m_->train(); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  Llama& m_;
};

// The policy for the classifier objective: a *ForSequenceClassification model; a causal LM folder gets a
// new score head (normal(0, initializer_range)) on its backbone.
Llama load_classifier_policy(const std::string& dir, int64_t num_labels) {
  ModelConfig c = load_model_config(dir);
  if (c.head == ModelHead::kSequenceClassification) {
    if (c.num_labels != num_labels)
      throw DataError(c.source + ": the classifier has " + std::to_string(c.num_labels) +
                      " labels, objective.num_labels is " + std::to_string(num_labels));
    return load_llama(dir);
  }
  Llama lm = load_llama(dir);
  ModelConfig cc = c;
  cc.head = ModelHead::kSequenceClassification;
  const std::string suffix = "ForCausalLM";
  if (cc.architecture.size() > suffix.size() &&
      cc.architecture.compare(cc.architecture.size() - suffix.size(), suffix.size(), suffix) == 0)
    cc.architecture = cc.architecture.substr(0, cc.architecture.size() - suffix.size()) + "ForSequenceClassification";
  cc.num_labels = num_labels;
  cc.id2label.clear();
  Llama cls(cc);
  torch::NoGradGuard no_grad;
  const auto src = lm->named_parameters(true);
  for (auto& p : cls->named_parameters(true)) {
    if (p.key() == "score.weight") {
      const double std = c.raw.value("initializer_range", 0.02);
      p.value().normal_(0.0, std);
    } else {
      p.value().copy_(*src.find(p.key()));
    }
  }
  return cls;
}

DistBackend dist_backend(Backend b) {
  return b == Backend::kGloo ? DistBackend::kGloo : b == Backend::kNccl ? DistBackend::kNccl : DistBackend::kAuto;
}

// Trained tokens of an example's reference: earlier assistant turns (position 0 is never a target) and the
// response.
int64_t trained_tokens(const Example& ex) {
  const int64_t in_prompt = ex.prompt_mask.empty() ? 0 : std::count(ex.prompt_mask.begin() + 1, ex.prompt_mask.end(), 1);
  return in_prompt + static_cast<int64_t>(ex.response_ids.size()) - (ex.prompt_ids.empty() ? 1 : 0);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// Sums of one optimizer step's micro-batches, turned into the metrics record.
struct StepStats {
  double loss = 0, loss_sft = 0, loss_pg = 0, loss_recovery = 0, kl = 0;
  int64_t kl_batches = 0;
  std::vector<double> rewards, gates, ref_scores;
  std::vector<double> recovery_rewards;  // scores of the recovery rollouts (prefix + continuation)
  int64_t recovery_from_reference = 0, recovery_from_rollout = 0;  // examples whose recovery rollouts start so
  int64_t examples = 0, rolled_out = 0, abstained = 0, dropped = 0, invalid_scores = 0;
  int64_t tokens = 0, padded_tokens = 0, generated = 0, correct = 0, labelled = 0, decode_steps = 0;
  double rollout_s = 0, score_s = 0, fwd_bwd_s = 0;
  // Learned-gate training pairs of the step, applied after it in (micro-batch, example) order whatever the
  // number of ranks: records of 2 + kFeatures + 1 doubles (micro, example, features, target g).
  std::vector<double> gate_updates;
};

class Trainer {
 public:
  explicit Trainer(const RunConfig& c) : cfg_(c) {}
  TrainSummary run();

 private:
  void setup();
  std::vector<int64_t> next_batch();
  void micro_batch(const std::vector<int64_t>& batch, int64_t micro, double norm_examples, double norm_tokens,
                   StepStats* st);
  void classifier_micro_batch(const std::vector<int64_t>& batch, int64_t micro_count, StepStats* st);
  void reduce_step(StepStats* st);
  nlohmann::json eval_metrics();
  bool params_finite();

  const RunConfig& cfg_;
  at::Device device_ = at::kCPU;
  at::ScalarType compute_ = at::kFloat, master_ = at::kFloat;
  bool autocast_ = false;
  std::string tok_path_;
  std::optional<Tokenizer> tok_;
  ChatTemplate tmpl_ = ChatTemplate::kNone;
  Renderer renderer_;
  std::optional<Dataset> data_, eval_data_;
  Llama policy_{nullptr}, reference_{nullptr};  // reference_: a second model only without LoRA
  std::optional<LoraOptions> lora_;              // the adapters' options under LoRA
  std::optional<Scorer> scorer_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;  // distributed.sharding none
  std::unique_ptr<ShardedAdamW> sharded_;           // otherwise
  TrainerState state_;
  LearnedGate learned_;
  std::vector<std::vector<int64_t>> epoch_batches_;
  int64_t epoch_cached_ = -1;
  int64_t pad_ = 0;
  int64_t total_steps_ = 0;
  RolloutOptions rollout_;
  RecoveryOptions recovery_;
  ObjectiveParams objective_;
  std::string resumed_from_;
  std::unique_ptr<Dist> dist_;
  std::unordered_map<int64_t, at::Tensor> ref_score_cache_;  // example index -> per-head reference scores [H]
  std::vector<TrainingScorer> training_scorers_;               // the heads this run optimises (gaft, filter)
  void filter_data();
  int64_t abstention_head_of(const at::Tensor& per_head_scores) const;  // [H] -> the head picking the template
};

void Trainer::setup() {
  // Data parallelism: one process per device, ranks from the launcher (docs/cluster.md).
  const Launch launch = resolve_launch();
  device_ = rank_device(resolve_device(cfg_.run.device), launch);
  if (device_.is_cuda() && launch.world_size > 1 && launch.local_rank >= static_cast<int64_t>(torch::cuda::device_count()))
    throw UsageError("local rank " + std::to_string(launch.local_rank) + " has no GPU: " +
                         std::to_string(torch::cuda::device_count()) + " visible on this node",
                     "start one process per GPU (srun --ntasks-per-node = --gpus-per-node)");
  DistOptions dopts;
  dopts.backend = dist_backend(cfg_.distributed.backend);
  dopts.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg_.distributed.timeout_s * 1000.0));
  dopts.bucket_bytes = static_cast<int64_t>(cfg_.distributed.bucket_mb * 1024.0 * 1024.0);
  if (launch.world_size > 1 && launch.rank > 0) log::set_rank_tag("rank " + std::to_string(launch.rank), log::Level::kWarn);
  dist_ = std::make_unique<Dist>(launch, device_, dopts);
  if (cfg_.run.threads > 0) at::set_num_threads(static_cast<int>(cfg_.run.threads));
  master_ = to_scalar(cfg_.precision.master);
  compute_ = cfg_.precision.compute == DType::kAuto
                 ? ((device_.is_cuda() || cpu_has_native_bf16()) ? at::kBFloat16 : at::kFloat)
                 : to_scalar(cfg_.precision.compute);
  autocast_ = compute_ != master_;
  torch::manual_seed(cfg_.run.seed);

  // Output directory: created and proven writable (by rank 0) before anything expensive.
  if (dist_->is_main()) {
    make_dirs(cfg_.run.output_dir);
    write_resolved_config(cfg_, cfg_.run.output_dir);
  }

  // Where to start: a checkpoint (resume) or the configured model. Rank 0 decides for every rank.
  const std::string& resume = cfg_.checkpoint.resume;
  if (resume == "auto") {
    if (dist_->is_main())
      if (auto latest = latest_checkpoint(cfg_.run.output_dir)) resumed_from_ = *latest;
    resumed_from_ = dist_->broadcast_string(resumed_from_);
  } else if (resume != "never") {
    if (!fs::exists(fs::path(resume) / "trainer_state.json"))
      throw DataError("checkpoint.resume: '" + resume + "' is not a complete checkpoint (no trainer_state.json)");
    resumed_from_ = resume;
  }
  const std::string start_dir = resumed_from_.empty() ? cfg_.model.path : (fs::path(resumed_from_) / "model").string();

  // Tokenizer and chat template.
  tok_path_ = cfg_.tokenizer.path.empty() ? cfg_.model.path : cfg_.tokenizer.path;
  tok_.emplace(Tokenizer::load(tok_path_));
  tmpl_ = resolve_chat_template(cfg_.tokenizer.chat_template, tok_path_);
  renderer_ = Renderer{&*tok_, tmpl_};

  // Policy. Under LoRA the base always comes from model.path and the adapter from the checkpoint, from
  // lora.adapter, or new.
  const bool classifier = cfg_.objective.kind == Objective::kClassifier;
  const bool lora = cfg_.lora.enabled;
  if (!resumed_from_.empty() && is_adapter_dir(start_dir) != lora)
    throw DataError(resumed_from_ + ": the checkpoint holds " +
                        (lora ? "a full model, but lora.enabled is true" : "a LoRA adapter, but lora.enabled is false"),
                    "resume with the configuration the run started with, or start anew with checkpoint.resume: never");
  policy_ = classifier ? load_classifier_policy(start_dir, cfg_.objective.num_labels)
            : lora       ? load_llama(cfg_.model.path, LoadOptions{compute_, device_})  // read straight into bf16
                         : load_llama(start_dir);
  const ModelConfig& mc = policy_->config;
  if (!classifier && mc.head != ModelHead::kCausalLM)
    throw DataError(mc.source + ": " + mc.architecture + " has no LM head; objective.kind " +
                    to_string(cfg_.objective.kind) + " trains a causal LM");
  if (tok_->vocab_size() > mc.vocab_size)
    throw DataError("tokenizer '" + tok_->path() + "' has " + std::to_string(tok_->vocab_size()) +
                        " tokens but the model's vocab_size is " + std::to_string(mc.vocab_size) + " (" + mc.source + ")",
                    "the tokenizer does not belong to this model; set tokenizer.path to the model's own tokenizer");
  if (lora) {
    // The frozen base needs no master copy: it was loaded in the compute dtype; the adapters take the master's.
    const std::string adapter = !resumed_from_.empty() ? start_dir : cfg_.lora.adapter;
    if (!adapter.empty()) {
      lora_ = read_adapter_config(adapter).lora;
      lora_->dropout = cfg_.lora.dropout;
      load_adapter(*policy_, adapter, master_);
      set_lora_dropout(*policy_, cfg_.lora.dropout);  // the run's dropout, not the file's
      if (resumed_from_.empty() && cfg_.objective.kl != KlMode::kNone)
        log::warn("lora.adapter with objective.kl: the KL reference is the base without any adapter, not the "
                  "starting adapter (merge it first with gaft export --merge to make base + adapter the reference)");
    } else {
      // The module names the adapters get (Phi-3: qkv_proj, gate_up_proj), as saved in adapter_config.json.
      lora_ = LoraOptions{cfg_.lora.rank, cfg_.lora.alpha, cfg_.lora.dropout,
                          resolve_lora_targets(cfg_.lora.targets, policy_->config.fused_projections), "", cfg_.lora.rslora};
      add_lora(*policy_, *lora_, master_, static_cast<uint64_t>(cfg_.run.seed));
    }
    int64_t trainable = 0, total = 0;
    for (const auto& p : policy_->parameters()) {
      total += p.numel();
      if (p.requires_grad()) trainable += p.numel();
    }
    log::info("LoRA: rank " + std::to_string(lora_->rank) + ", scale " + std::to_string(lora_->scale()) + ", " +
              std::to_string(lora_parameters(*policy_).size() / 2) + " projections" +
              (adapter.empty() ? "" : " from " + adapter) + "; trainable " + std::to_string(trainable) + " of " +
              std::to_string(total) + " parameters; base frozen in " + c10::toString(compute_));
  } else {
    policy_->to(device_, master_);
  }
  policy_->train();
  policy_->model->checkpoint_layers = cfg_.model.gradient_checkpointing;
  pad_ = pad_id_for(policy_, *tok_);
  {
    torch::NoGradGuard no_grad;
    // Rank 0's trainable weights everywhere (e.g. a new classifier head): every weight without LoRA, the
    // adapters under it (the frozen base comes from the same files on every rank).
    std::vector<at::Tensor> shared;
    for (const auto& p : policy_->parameters())
      if (p.requires_grad()) shared.push_back(p);
    dist_->broadcast(shared);
  }

  // Data.
  DatasetOptions dopt;
  dopt.format = cfg_.data.format;
  dopt.skip_bad_lines = cfg_.data.skip_bad_lines;
  dopt.max_prompt_tokens = cfg_.data.max_prompt_tokens;
  dopt.max_response_tokens = cfg_.data.max_response_tokens;
  dopt.too_long = cfg_.data.too_long;
  dopt.classification = classifier;
  dopt.num_labels = cfg_.objective.num_labels;
  data_.emplace(Dataset::load(cfg_.data.train, renderer_, dopt));
  if (!cfg_.data.eval.empty()) eval_data_.emplace(Dataset::load(cfg_.data.eval, renderer_, dopt));
  for (const Example& ex : data_->examples())
    for (const auto* ids : {&ex.prompt_ids, &ex.response_ids})
      for (int64_t id : *ids)
        if (id >= mc.vocab_size)
          throw DataError(cfg_.data.train + ":" + std::to_string(ex.line) + ": token id " + std::to_string(id) +
                          " is outside the model's vocabulary of " + std::to_string(mc.vocab_size));
  log::info("data: " + std::to_string(data_->size()) + " examples from " + cfg_.data.train);

  // Scorer (and the identities of its heads, recorded in every saved model), reference policy, rollouts.
  const bool gaft = cfg_.objective.kind == Objective::kGaft;
  if (gaft || cfg_.objective.kind == Objective::kFilter) {
    scorer_.emplace(Scorer::load(cfg_.scorer, device_, compute_));
    for (const ScorerHead& h : cfg_.scorer.heads)
      training_scorers_.push_back({h.name, h.category, fs::absolute(h.path).lexically_normal().string(), weights_sha256(h.path)});
  }
  if (cfg_.objective.kind == Objective::kFilter) filter_data();
  if (!cfg_.data.mix.empty()) {
    Dataset mix = Dataset::load(cfg_.data.mix, renderer_, dopt);
    const int64_t pool = mix.size();
    data_->add_mix(std::move(mix), cfg_.data.mix_share);
    log::info("data.mix: " + std::to_string(data_->mix_per_epoch()) + " examples per epoch drawn from the " +
              std::to_string(pool) + " of " + cfg_.data.mix);
  }
  if (!classifier && cfg_.objective.kl != KlMode::kNone && !lora) {  // under LoRA the reference is the base (adapters off)
    reference_ = load_llama(cfg_.model.path, LoadOptions{compute_, device_});
    for (auto& p : reference_->parameters()) p.set_requires_grad(false);
  }
  if (gaft) {
    rollout_.num_samples = cfg_.rollout.num_samples;
    rollout_.temperature = cfg_.rollout.temperature;
    rollout_.top_p = cfg_.rollout.top_p;
    rollout_.top_k = cfg_.rollout.top_k;
    rollout_.max_new_tokens = cfg_.rollout.max_new_tokens;
    rollout_.batch_size = cfg_.rollout.batch_size;
    rollout_.stop = cfg_.rollout.stop;
    rollout_.pad_id = pad_;
    rollout_.stop_tokens = end_of_turn_ids(*tok_, tmpl_);
    for (int64_t id : mc.eos_token_ids)
      if (std::find(rollout_.stop_tokens.begin(), rollout_.stop_tokens.end(), id) == rollout_.stop_tokens.end())
        rollout_.stop_tokens.push_back(id);
  }

  // Objective parameters (docs/method.md).
  ops::GateParams& gp = objective_.gate;
  gp.mode = cfg_.gate.mode == GateMode::kFixed ? ops::GateMode::kFixed : ops::GateMode::kUncertainty;
  gp.uncertainty = cfg_.gate.uncertainty == Uncertainty::kEntropy ? ops::UncertaintyMode::kEntropy
                   : cfg_.gate.uncertainty == Uncertainty::kStd   ? ops::UncertaintyMode::kStd
                                                                  : ops::UncertaintyMode::kScorer;
  gp.advantage = cfg_.objective.advantage == AdvantageMode::kRloo ? ops::AdvantageMode::kRloo : ops::AdvantageMode::kGrpo;
  gp.sft_norm = cfg_.objective.sft_norm == SftNorm::kSequence ? ops::SftNorm::kSequence : ops::SftNorm::kToken;
  gp.sft_coef = cfg_.gate.sft_coefficient == SftCoef::kReference ? ops::SftCoefficient::kReference
                                                                  : ops::SftCoefficient::kComplement;
  gp.w_m = cfg_.gate.w_m;
  gp.w_u = cfg_.gate.w_u;
  gp.tau = cfg_.gate.tau;
  gp.temperature = cfg_.gate.temperature;
  gp.g0 = cfg_.gate.g0;
  gp.lambda = cfg_.objective.lambda;
  gp.abstention = cfg_.abstention.enabled;
  gp.delta = cfg_.objective.kind == Objective::kGaft ? cfg_.abstention.delta : 0.0;
  gp.std_floor = cfg_.objective.std_floor;
  objective_.kl = cfg_.objective.kl;
  objective_.kl_beta = cfg_.objective.kl_beta;
  objective_.recovery_lambda = cfg_.recovery.lambda;
  objective_.recovery_target_weight = cfg_.recovery.target_weight;
  objective_.share_prefixes = cfg_.train.share_prefixes;
  recovery_.min_prefix = cfg_.recovery.min_prefix_tokens;
  recovery_.max_prefix = cfg_.recovery.max_prefix_tokens;
  recovery_.threshold = cfg_.recovery.threshold;
  recovery_.from_reference = cfg_.recovery.source != RecoverySource::kRollout;
  recovery_.from_rollout = cfg_.recovery.source != RecoverySource::kReference;
  objective_.pad_id = pad_;

  const auto trainable = lora ? lora_parameters(*policy_) : policy_->named_parameters(true).pairs();
  if (cfg_.distributed.sharding != Sharding::kNone) {
    // Every rank runs the same number of micro-batches: each one's backward ends in collectives.
    if (cfg_.train.grad_accum_steps % dist_->world_size() != 0)
      throw UsageError("distributed.sharding needs train.grad_accum_steps (" + std::to_string(cfg_.train.grad_accum_steps) +
                       ") to be a multiple of the " + std::to_string(dist_->world_size()) + " ranks");
    Sharding level = cfg_.distributed.sharding;
    if (level == Sharding::kFull && lora) {
      level = Sharding::kGradients;
      log::info("sharding full under LoRA: the frozen base stays whole on every rank; the adapters' gradients and "
                "AdamW state are sharded as under 'gradients'");
    }
    sharded_ = std::make_unique<ShardedAdamW>(trainable, cfg_.optimizer, level, *dist_,
                                              static_cast<int64_t>(cfg_.distributed.bucket_mb * 1024.0 * 1024.0));
    if (level == Sharding::kFull) {
      if (!policy_->model->checkpoint_layers)
        log::info("sharding full turns on activation checkpointing: each layer's weights are gathered again for "
                  "its recomputation in backward");
      policy_->model->checkpoint_layers = true;
      policy_->model->layer_hooks = sharded_->layer_hooks();
      if (cfg_.objective.kind == Objective::kGaft)
        log::info("sharding full: rollouts and scoring gather the whole policy once per micro-batch (it must fit "
                  "one device); its training forward and backward gather one layer at a time");
    }
    const char* what = level == Sharding::kOptimizer ? "optimizer (ZeRO-1)"
                       : level == Sharding::kGradients ? "gradients (ZeRO-2)"
                                                        : "full (ZeRO-3)";
    log::info(std::string("sharding: ") + what + " over " + std::to_string(dist_->world_size()) + " ranks; this rank holds " +
              c10::str(std::round(static_cast<double>(sharded_->moment_bytes() + sharded_->master_bytes()) / (1 << 20))) +
              " MiB of optimizer state and a " +
              c10::str(std::round(static_cast<double>(sharded_->grad_slice_bytes()) / (1 << 20))) + " MiB gradient slice");
  } else {
    optimizer_ = make_adamw(trainable, cfg_.optimizer);
  }
  if (!resumed_from_.empty()) {
    state_ = read_checkpoint(resumed_from_, sharded_ ? OptimizerRef(*sharded_) : OptimizerRef(*optimizer_), dist_->rank());
    if (state_.learned_gate.size() == LearnedGate::kFeatures)
      std::copy(state_.learned_gate.begin(), state_.learned_gate.end(), learned_.w.begin());
    log::info("resuming from " + resumed_from_ + " at step " + std::to_string(state_.step));
  }

  const int64_t batches_per_epoch = (data_->epoch_size() + cfg_.train.batch_size - 1) / cfg_.train.batch_size;
  total_steps_ = cfg_.train.max_steps > 0
                     ? cfg_.train.max_steps
                     : std::max<int64_t>(1, cfg_.train.epochs * batches_per_epoch / cfg_.train.grad_accum_steps);
  if (!resumed_from_.empty())
    check_resumed_state(state_, {total_steps_, data_->epoch_size(), cfg_.train.batch_size, LearnedGate::kFeatures},
                        (fs::path(resumed_from_) / "trainer_state.json").string());
  state_.examples = data_->epoch_size();
}

int64_t Trainer::abstention_head_of(const at::Tensor& per_head_scores) const {
  const at::Tensor a = per_head_scores.to(at::kDouble).contiguous();
  const std::vector<double> scores(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
  std::vector<std::string> categories;
  for (int64_t h = 0; h < scorer_->num_heads(); ++h) categories.push_back(scorer_->head(h).category);
  return abstention_head(scores, categories, cfg_.abstention.priority, cfg_.abstention.delta);
}

// objective.kind filter, the baseline a practitioner tries first (docs/method.md): every reference is scored
// once; one whose combined score is below delta gets the abstention template of its category
// (abstention.enabled) or leaves the data; the run is then plain SFT (and the scorer is released). Each rank
// scores a share of the examples and the scores are summed, so every rank filters alike. The decisions are
// written to <output_dir>/filter.jsonl.
void Trainer::filter_data() {
  const auto& examples = data_->examples();
  const int64_t N = data_->size(), H = scorer_->num_heads();
  const auto t0 = Clock::now();
  std::vector<double> flat(static_cast<size_t>(N * H), 0.0);  // [N, H]
  {
    std::vector<int64_t> mine;
    std::vector<std::string> prompts, responses;
    for (int64_t i = dist_->rank(); i < N; i += dist_->world_size()) {
      mine.push_back(i);
      prompts.push_back(examples[i].prompt_text);
      responses.push_back(examples[i].response_text);
    }
    AutocastScope ac(device_.type(), compute_, autocast_);
    const at::Tensor per_head = scorer_->score(prompts, responses).per_head.to(at::kDouble).contiguous();  // [H, n]
    for (size_t j = 0; j < mine.size(); ++j)
      for (int64_t h = 0; h < H; ++h) flat[mine[j] * H + h] = per_head[h][static_cast<int64_t>(j)].item<double>();
  }
  flat = dist_->sum(flat);
  const at::Tensor scores = at::tensor(flat, at::kDouble).view({N, H});  // [N, H]
  const at::Tensor combined = scorer_->combine_heads(scores.t().to(at::kFloat)).to(at::kDouble);  // [N]
  std::vector<bool> keep(N, true);
  int64_t replaced = 0, dropped = 0;
  std::string report;
  for (int64_t i = 0; i < N; ++i) {
    const double s = combined[i].item<double>();
    std::string action = "keep";
    if (!(s >= cfg_.abstention.delta)) {  // NaN counts as misaligned: a reference the scorer cannot vouch for
      const std::string& category = scorer_->head(abstention_head_of(scores[i])).category;
      const auto it = cfg_.abstention.templates.find(category);
      if (cfg_.abstention.enabled && it != cfg_.abstention.templates.end()) {
        data_->replace_response(i, it->second, renderer_);
        action = "abstain:" + category;
        ++replaced;
      } else {
        keep[i] = false;
        action = "drop";
        ++dropped;
      }
    }
    nlohmann::json rec = {{"line", examples[i].line}, {"score", s}, {"action", action}};
    for (int64_t h = 0; h < H; ++h) rec["scores"][scorer_->head(h).name] = flat[i * H + h];
    report += rec.dump() + "\n";
  }
  if (dropped == N) throw DataError(cfg_.data.train + ": the filter dropped every example (every reference scored below "
                                    "abstention.delta " + std::to_string(cfg_.abstention.delta) + ")",
                                    "check the scorer on a few references, or lower abstention.delta");
  data_->keep_only(keep);
  if (dist_->is_main()) write_file_atomic((fs::path(cfg_.run.output_dir) / "filter.jsonl").string(), report);
  log::info("filter: " + std::to_string(N) + " references scored in " + c10::str(seconds_since(t0)) + " s; " +
            std::to_string(replaced) + " replaced by an abstention, " + std::to_string(dropped) + " dropped, " +
            std::to_string(data_->size()) + " examples left (filter.jsonl)");
  scorer_.reset();
}

std::vector<int64_t> Trainer::next_batch() {
  if (epoch_cached_ != state_.epoch) {
    epoch_batches_ = data_->epoch_batches(state_.epoch, cfg_.train.batch_size, static_cast<uint64_t>(cfg_.run.seed),
                                          cfg_.data.shuffle, cfg_.data.bucket_by_length);
    epoch_cached_ = state_.epoch;
  }
  std::vector<int64_t> b = epoch_batches_[state_.batch_in_epoch];
  if (++state_.batch_in_epoch >= static_cast<int64_t>(epoch_batches_.size())) {
    ++state_.epoch;
    state_.batch_in_epoch = 0;
  }
  return b;
}

void Trainer::micro_batch(const std::vector<int64_t>& batch, int64_t micro, double norm_examples, double norm_tokens,
                          StepStats* st) {
  const auto& examples = data_->examples();
  const int64_t B = static_cast<int64_t>(batch.size());
  const bool gaft = cfg_.objective.kind == Objective::kGaft;
  const int64_t K = gaft ? cfg_.rollout.num_samples : 0;
  MicroBatch mb;
  mb.B = B;
  mb.K = K;
  for (int64_t idx : batch) mb.references.push_back(reference_sequence(examples[idx]));
  mb.rollouts.assign(B * K, {});
  mb.rollout_scores = at::full({B, K}, std::numeric_limits<float>::quiet_NaN());
  mb.reference_scores = at::ones({B});
  mb.R = gaft ? recovery_samples(cfg_.recovery.share, K) : 0;
  mb.recovery.assign(B * mb.R, {});
  mb.recovery_scores = at::full({B, mb.R}, std::numeric_limits<float>::quiet_NaN());
  if (mb.R > 0 && cfg_.recovery.target == RecoveryTarget::kAbstention) mb.recovery_targets.assign(B, {});
  at::Tensor per_head_ref;  // [H, B]
  st->examples += B;

  std::vector<bool> skip(B, false);
  std::vector<LearnedGate::Features> features(B);
  // sharding full: the whole policy for rollouts and scoring (every rank, once per micro-batch).
  if (gaft && sharded_) sharded_->materialize();
  if (gaft) {
    // Reference scores: the scorer is frozen, so each example is scored once per run and cached. They are scored
    // in a call of their own: a score must not depend on what else shares its batch (padding changes the
    // summation order), or a resumed run, whose cache starts empty, would not repeat the first one bitwise.
    auto t0 = Clock::now();
    {
      std::vector<int64_t> missing;
      std::vector<std::string> prompts, responses;
      for (int64_t idx : batch)
        if (!ref_score_cache_.count(idx) && std::find(missing.begin(), missing.end(), idx) == missing.end()) {
          missing.push_back(idx);
          prompts.push_back(examples[idx].prompt_text);
          responses.push_back(examples[idx].response_text);
        }
      if (!missing.empty()) {
        AutocastScope ac(device_.type(), compute_, autocast_);
        const ScoreResult ref = scorer_->score(prompts, responses);  // CPU
        for (size_t j = 0; j < missing.size(); ++j)
          ref_score_cache_[missing[j]] = ref.per_head.select(1, static_cast<int64_t>(j)).clone();  // [H]
      }
    }
    {
      std::vector<at::Tensor> heads;
      for (int64_t idx : batch) heads.push_back(ref_score_cache_.at(idx));
      per_head_ref = at::stack(heads, 1);                                        // [H, B] CPU
      mb.reference_scores = scorer_->combine_heads(per_head_ref).contiguous();  // [B] CPU
      const float* rs = mb.reference_scores.data_ptr<float>();
      for (int64_t i = 0; i < B; ++i) st->ref_scores.push_back(rs[i]);
    }
    st->score_s += seconds_since(t0);

    // Learned gate: features known before rollouts; low predictions skip rollouts (with exploration).
    if (cfg_.gate.mode == GateMode::kLearned) {
      AutocastScope ac(device_.type(), compute_, autocast_);
      EvalMode no_dropout(policy_);
      const auto [nll, ent] = reference_nll_entropy(policy_, mb.references, pad_);  // [B] CPU each
      std::mt19937_64 rng(mix_seed(static_cast<uint64_t>(cfg_.run.seed), static_cast<uint64_t>(state_.step),
                                   static_cast<uint64_t>(micro) + 0x9a7e));
      const float* rs = mb.reference_scores.data_ptr<float>();
      for (int64_t i = 0; i < B; ++i) {
        features[i] = {1.0, rs[i], nll.data_ptr<float>()[i], ent.data_ptr<float>()[i]};
        const double explore = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        skip[i] = learned_.predict(features[i]) < cfg_.gate.epsilon && explore >= cfg_.gate.exploration;
      }
    }

    // Rollouts: K plain ones per prompt, or, with recovery rollouts, K1 = K - R plain ones first and then R that
    // continue a misaligned prefix (docs/method.md, "Recovery rollouts").
    const int64_t R = mb.R, K1 = K - R;
    const uint64_t micro_seed =
        mix_seed(static_cast<uint64_t>(cfg_.run.seed), static_cast<uint64_t>(state_.step), static_cast<uint64_t>(micro));
    std::vector<std::vector<int64_t>> prompt_ids;
    for (int64_t idx : batch) prompt_ids.push_back(examples[idx].prompt_ids);
    const auto generate_rollouts = [&](const std::vector<std::vector<int64_t>>& prompts, int64_t samples,
                                       uint64_t seed) {
      const auto t = Clock::now();
      RolloutOptions o = rollout_;
      o.num_samples = samples;
      Rollouts out;
      {
        AutocastScope ac(device_.type(), compute_, autocast_);
        EvalMode no_dropout(policy_);  // rollouts sample the policy itself (no LoRA dropout)
        out = sample_rollouts(policy_, *tok_, prompts, skip, o, seed);
      }
      st->rollout_s += seconds_since(t);
      st->generated += out.generated_tokens;
      st->decode_steps += out.decode_steps;
      return out;
    };
    // Scores of rollouts [B * n] (row i * n + j) in one call; responses[row] is what the scorer reads.
    const auto score_rows = [&](const Rollouts& ro, int64_t n, const std::vector<std::string>& texts) {
      const auto t = Clock::now();
      std::vector<std::string> prompts, responses;
      std::vector<int64_t> rows;
      for (int64_t row = 0; row < B * n; ++row)
        if (ro.present[row] && !ro.ids[row].empty()) {
          rows.push_back(row);
          prompts.push_back(examples[batch[row / n]].prompt_text);
          responses.push_back(texts[row]);
        }
      ScoreResult sr;
      if (!prompts.empty()) {
        AutocastScope ac(device_.type(), compute_, autocast_);
        sr = scorer_->score(prompts, responses);  // CPU
      }
      st->score_s += seconds_since(t);
      return std::pair{rows, sr};
    };
    const Rollouts ro = generate_rollouts(prompt_ids, K1, micro_seed);
    at::Tensor unc_sum = at::zeros({B}), unc_n = at::zeros({B});
    float* scores = mb.rollout_scores.data_ptr<float>();  // [B, K]
    float* us = unc_sum.data_ptr<float>();
    float* un = unc_n.data_ptr<float>();
    const auto [rows, sr] = score_rows(ro, K1, ro.texts);
    for (size_t j = 0; j < rows.size(); ++j) {
      const int64_t row = rows[j], i = row / K1;
      scores[i * K + row % K1] = sr.combined.data_ptr<float>()[j];
      us[i] += sr.uncertainty.data_ptr<float>()[j];
      un[i] += 1;
    }
    const auto fill = [&](TrainSequence* s, int64_t i, const std::vector<int64_t>& forced,
                          const std::vector<int64_t>& response) {
      s->ids = examples[batch[i]].prompt_ids;
      s->ids.insert(s->ids.end(), forced.begin(), forced.end());
      s->trained.assign(s->ids.size(), 0);
      s->ids.insert(s->ids.end(), response.begin(), response.end());
      s->trained.insert(s->trained.end(), response.size(), 1);
    };
    for (int64_t row = 0; row < B * K1; ++row)
      if (ro.present[row]) fill(&mb.rollouts[(row / K1) * K + row % K1], row / K1, {}, ro.ids[row]);

    if (R > 0) {
      // The start of each example: a prefix of its misaligned reference, else of its lowest-scored plain rollout.
      std::vector<std::vector<int64_t>> refs;
      for (int64_t idx : batch) refs.push_back(examples[idx].response_ids);
      const at::Tensor plain = mb.rollout_scores.narrow(1, 0, K1).contiguous();  // [B, K1]
      const std::vector<RecoveryStart> starts =
          plan_recovery(recovery_, mb.reference_scores, refs, plain, ro.ids, rollout_.stop_tokens, micro_seed);
      std::vector<std::vector<int64_t>> starts_ids = prompt_ids;
      for (int64_t i = 0; i < B; ++i) {
        const RecoveryStart& r = starts[i];
        if (r.from == RecoveryFrom::kNone || skip[i]) continue;
        starts_ids[i].insert(starts_ids[i].end(), r.prefix.begin(), r.prefix.end());
        ++(r.from == RecoveryFrom::kReference ? st->recovery_from_reference : st->recovery_from_rollout);
        if (!mb.recovery_targets.empty()) {
          // The template of the source's category: the head that rates it below delta first in abstention.priority.
          const int64_t h = r.from == RecoveryFrom::kReference
                                ? abstention_head_of(per_head_ref.select(1, i))
                                : abstention_head_of(sr.per_head.select(
                                      1, std::find(rows.begin(), rows.end(), i * K1 + r.rollout) - rows.begin()));
          const auto it = cfg_.abstention.templates.find(scorer_->head(h).category);
          if (it != cfg_.abstention.templates.end())
            fill(&mb.recovery_targets[i], i, r.prefix, renderer_.response_ids(examples[batch[i]], it->second));
        }
      }
      // R more samples per prompt, from prompt ++ prefix (prefilled once for the R) or, without a start, from the
      // prompt (plain rollouts K1..K-1), on streams of their own.
      const Rollouts rec = generate_rollouts(starts_ids, R, mix_seed(micro_seed, 0x7ec0));
      std::vector<std::string> texts = rec.texts;  // the scorer reads prefix ++ continuation
      for (int64_t row = 0; row < B * R; ++row) {
        const RecoveryStart& r = starts[row / R];
        if (r.from == RecoveryFrom::kNone || !rec.present[row]) continue;
        std::vector<int64_t> all = r.prefix;
        all.insert(all.end(), rec.ids[row].begin(),
                   rec.ids[row].begin() + content_length(rec.ids[row], rollout_.stop_tokens));
        texts[row] = tok_->decode(all);
      }
      const auto [rec_rows, rec_sr] = score_rows(rec, R, texts);
      float* rs = mb.recovery_scores.data_ptr<float>();  // [B, R]
      for (size_t j = 0; j < rec_rows.size(); ++j) {
        const int64_t row = rec_rows[j], i = row / R;
        const float v = rec_sr.combined.data_ptr<float>()[j];
        if (starts[i].from == RecoveryFrom::kNone) {
          scores[i * K + K1 + row % R] = v;
          us[i] += rec_sr.uncertainty.data_ptr<float>()[j];
          un[i] += 1;
        } else {
          rs[row] = v;
          if (std::isfinite(v)) st->recovery_rewards.push_back(v);
        }
      }
      for (int64_t row = 0; row < B * R; ++row) {
        const int64_t i = row / R;
        if (!rec.present[row]) continue;
        if (starts[i].from == RecoveryFrom::kNone) fill(&mb.rollouts[i * K + K1 + row % R], i, {}, rec.ids[row]);
        else fill(&mb.recovery[row], i, starts[i].prefix, rec.ids[row]);
      }
    }
    if (cfg_.gate.uncertainty == Uncertainty::kScorer) mb.scorer_uncertainty = unc_sum / unc_n.clamp_min(1);
    for (int64_t row = 0; row < B * K; ++row)
      if (std::isfinite(scores[row])) st->rewards.push_back(scores[row]);
    for (int64_t i = 0; i < B; ++i) st->rolled_out += skip[i] ? 0 : 1;
  }

  // Gate decisions, abstention targets, loss.
  ops::GateParams gp = objective_.gate;
  gp.norm_examples = norm_examples;
  gp.norm_tokens = norm_tokens;
  const ops::GateOutputs decision = decide_gate(mb, gp);
  const int32_t* flags = decision.flags.data_ptr<int32_t>();
  if (log::enabled(log::Level::kTrace))
    log::trace(c10::str("step ", state_.step, " micro ", micro, ": scores ", mb.rollout_scores, " reference ",
                        mb.reference_scores, " g ", decision.g, " advantages ", decision.advantages, " flags ", decision.flags));
  const float* g = decision.g.data_ptr<float>();  // the gate runs on the host: B and K are small
  for (int64_t i = 0; i < B; ++i) {
    if (gaft && !skip[i] && !(flags[i] & ops::kFlagNoValidRollout)) {
      st->gates.push_back(g[i]);
      if (cfg_.gate.mode == GateMode::kLearned) {
        st->gate_updates.insert(st->gate_updates.end(), {static_cast<double>(micro), static_cast<double>(i)});
        st->gate_updates.insert(st->gate_updates.end(), features[i].begin(), features[i].end());
        st->gate_updates.push_back(g[i]);
      }
    }
    if (flags[i] & ops::kFlagAbstain) {
      ++st->abstained;
      // The category of a head that rates the reference below delta picks the template (abstention.priority).
      const int64_t h = per_head_ref.defined() ? abstention_head_of(per_head_ref.select(1, i)) : 0;
      const std::string& category = scorer_->head(h).category;
      const auto it = cfg_.abstention.templates.find(category);
      if (it != cfg_.abstention.templates.end()) {
        const Example& ex = examples[batch[i]];
        TrainSequence& ref = mb.references[i];
        std::vector<int64_t> response = renderer_.response_ids(ex, it->second);
        ref.ids = ex.prompt_ids;
        ref.trained = ex.prompt_mask;
        ref.ids.insert(ref.ids.end(), response.begin(), response.end());
        ref.trained.insert(ref.trained.end(), response.size(), 1);
      }
    } else if (flags[i] & ops::kFlagDropSft) {
      ++st->dropped;
    }
  }
  st->invalid_scores += decision.num_invalid.to(at::kLong).data_ptr<int64_t>()[0];

  if (sharded_) sharded_->layerwise();  // sharding full: from here one layer at a time
  const auto t0 = Clock::now();
  LossResult lr;
  {
    // LoRA dropout masks from the micro-batch's own seed: the same for any number of ranks and on resume.
    if (lora_ && lora_->dropout > 0)
      torch::manual_seed(mix_seed(static_cast<uint64_t>(cfg_.run.seed), static_cast<uint64_t>(state_.step),
                                  static_cast<uint64_t>(micro) + 0xd409));
    AutocastScope ac(device_.type(), compute_, autocast_);
    ObjectiveParams op = objective_;
    op.gate = gp;
    Llama* reference = reference_ ? &reference_ : lora_ && objective_.kl != KlMode::kNone ? &policy_ : nullptr;
    lr = compute_loss(policy_, reference, mb, decision, op);
  }
  // Nothing trained in this micro-batch (every reference dropped, every advantage 0): the loss is a constant
  // when only frozen weights are left in it (LoRA), and there is nothing to back-propagate.
  if (lr.loss.requires_grad()) lr.loss.backward();
  st->fwd_bwd_s += seconds_since(t0);
  st->loss += lr.loss_value;
  st->loss_sft += lr.loss_sft;
  st->loss_pg += lr.loss_pg;
  st->loss_recovery += lr.loss_recovery;
  if (objective_.kl != KlMode::kNone) {
    st->kl += lr.kl;
    ++st->kl_batches;
  }
  st->tokens += lr.tokens;
  st->padded_tokens += lr.padded_tokens;
}

void Trainer::classifier_micro_batch(const std::vector<int64_t>& batch, int64_t micro_count, StepStats* st) {
  const auto& examples = data_->examples();
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> labels;
  for (int64_t idx : batch) {
    const Example& ex = examples[idx];
    seqs.push_back(reference_sequence(ex).ids);
    labels.push_back(ex.label);
    st->tokens += ex.length();
  }
  const auto t0 = Clock::now();
  ClassifierLoss cl;
  {
    AutocastScope ac(device_.type(), compute_, autocast_);
    cl = classifier_loss(policy_, seqs, labels, pad_);
  }
  // Each micro-batch's mean, weighted by its share of the step's examples.
  const at::Tensor loss = cl.loss * (static_cast<double>(batch.size()) / static_cast<double>(micro_count));
  loss.backward();
  st->fwd_bwd_s += seconds_since(t0);
  st->loss += loss.item<double>();
  st->correct += cl.correct;
  st->labelled += cl.count;
  st->examples += static_cast<int64_t>(batch.size());
}

// One step's statistics over all ranks: sums of the counts and losses, mean times, every rank's rewards,
// gates and reference scores; then the learned gate learns from the step's pairs in global order.
void Trainer::reduce_step(StepStats* st) {
  if (dist_->active()) {
    std::vector<double> v = {st->loss, st->loss_sft, st->loss_pg, st->kl, static_cast<double>(st->kl_batches),
                             static_cast<double>(st->examples), static_cast<double>(st->rolled_out),
                             static_cast<double>(st->abstained), static_cast<double>(st->dropped),
                             static_cast<double>(st->invalid_scores), static_cast<double>(st->tokens),
                             static_cast<double>(st->padded_tokens), static_cast<double>(st->generated),
                             static_cast<double>(st->correct), static_cast<double>(st->labelled),
                             st->rollout_s, st->score_s, st->fwd_bwd_s, st->loss_recovery,
                             static_cast<double>(st->recovery_from_reference),
                             static_cast<double>(st->recovery_from_rollout)};
    v = dist_->sum(v);
    const double n = static_cast<double>(dist_->world_size());
    st->loss = v[0], st->loss_sft = v[1], st->loss_pg = v[2], st->kl = v[3];
    st->kl_batches = std::llround(v[4]), st->examples = std::llround(v[5]), st->rolled_out = std::llround(v[6]);
    st->abstained = std::llround(v[7]), st->dropped = std::llround(v[8]), st->invalid_scores = std::llround(v[9]);
    st->tokens = std::llround(v[10]), st->padded_tokens = std::llround(v[11]), st->generated = std::llround(v[12]);
    st->correct = std::llround(v[13]), st->labelled = std::llround(v[14]);
    st->rollout_s = v[15] / n, st->score_s = v[16] / n, st->fwd_bwd_s = v[17] / n;
    st->loss_recovery = v[18];
    st->recovery_from_reference = std::llround(v[19]), st->recovery_from_rollout = std::llround(v[20]);
    if (cfg_.objective.kind == Objective::kGaft) {
      st->rewards = dist_->gather(st->rewards);
      st->gates = dist_->gather(st->gates);
      st->ref_scores = dist_->gather(st->ref_scores);
      if (cfg_.recovery.share > 0) st->recovery_rewards = dist_->gather(st->recovery_rewards);
    }
    if (cfg_.gate.mode == GateMode::kLearned) st->gate_updates = dist_->gather(st->gate_updates);
  }
  constexpr size_t kRecord = 2 + LearnedGate::kFeatures + 1;
  std::vector<size_t> order(st->gate_updates.size() / kRecord);
  for (size_t r = 0; r < order.size(); ++r) order[r] = r;
  const double* u = st->gate_updates.data();
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(u[a * kRecord], u[a * kRecord + 1]) < std::make_pair(u[b * kRecord], u[b * kRecord + 1]);
  });
  for (size_t r : order) {
    LearnedGate::Features x;
    std::copy(u + r * kRecord + 2, u + r * kRecord + 2 + LearnedGate::kFeatures, x.begin());
    learned_.update(x, u[r * kRecord + kRecord - 1], cfg_.gate.learned_lr);
  }
}

nlohmann::json Trainer::eval_metrics() {
  nlohmann::json j;
  if (!eval_data_) return j;
  torch::NoGradGuard no_grad;
  policy_->eval();
  AutocastScope ac(device_.type(), compute_, autocast_);
  // Each rank takes every world_size-th batch; the sums are reduced.
  const auto& ex = eval_data_->examples();
  const int64_t bs = cfg_.eval.batch_size;
  const size_t first = static_cast<size_t>(dist_->rank() * bs), stride = static_cast<size_t>(dist_->world_size() * bs);
  if (cfg_.objective.kind == Objective::kClassifier) {
    double correct = 0;
    double loss = 0;
    for (size_t s = first; s < ex.size(); s += stride) {
      std::vector<std::vector<int64_t>> seqs;
      std::vector<int64_t> labels;
      for (size_t i = s; i < std::min(ex.size(), s + static_cast<size_t>(bs)); ++i) {
        seqs.push_back(reference_sequence(ex[i]).ids);
        labels.push_back(ex[i].label);
      }
      const ClassifierLoss cl = classifier_loss(policy_, seqs, labels, pad_);
      correct += static_cast<double>(cl.correct);
      loss += cl.loss.item<double>() * static_cast<double>(labels.size());
    }
    const std::vector<double> total = dist_->sum(std::vector<double>{correct, loss});
    correct = total[0], loss = total[1];
    j["eval_accuracy"] = correct / static_cast<double>(ex.size());
    j["eval_loss"] = loss / static_cast<double>(ex.size());
  } else {
    double nll = 0;
    for (size_t s = first; s < ex.size(); s += stride) {
      std::vector<TrainSequence> refs;
      for (size_t i = s; i < std::min(ex.size(), s + static_cast<size_t>(bs)); ++i) refs.push_back(reference_sequence(ex[i]));
      nll += reference_nll_entropy(policy_, refs, pad_).first.sum().item<double>();
    }
    nll = dist_->sum(std::vector<double>{nll})[0];
    j["eval_loss"] = nll / static_cast<double>(ex.size());
    j["eval_ppl"] = std::exp(nll / static_cast<double>(ex.size()));
  }
  policy_->train();
  return j;
}

bool Trainer::params_finite() {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> finite;
  for (const auto& p : policy_->parameters()) finite.push_back(at::isfinite(p).all());
  return finite.empty() || *to_host(at::stack(finite).all()).data_ptr<bool>();  // one read for all of them
}

TrainSummary Trainer::run() {
  setup();
  TrainSummary summary;
  summary.resumed_from = resumed_from_;
  const std::string& out = cfg_.run.output_dir;
  const bool main = dist_->is_main();
  std::optional<MetricsWriter> metrics;  // rank 0 writes the metrics of the whole job
  if (main) metrics.emplace((fs::path(out) / cfg_.logging.metrics_file).string(), state_.step);
  std::optional<TensorBoardWriter> board;  // and the same numbers as TensorBoard scalars
  if (main && cfg_.logging.tensorboard) board.emplace((fs::path(out) / "tensorboard").string());
  const std::string progress_setting = cfg_.logging.progress == Progress::kOn    ? "on"
                                       : cfg_.logging.progress == Progress::kOff ? "off"
                                                                                 : "auto";
  ProgressReporter progress("train", total_steps_, ProgressReporter::mode_for(main ? progress_setting : "off"));
  SaveOptions ckpt_save;
  ckpt_save.dtype = master_;
  ckpt_save.tokenizer_dir = tok_path_;
  ckpt_save.lora = lora_;
  ckpt_save.base_model = fs::absolute(cfg_.model.path).lexically_normal().string();
  if (!training_scorers_.empty())  // gaft eval warns when one of these heads judges the model
    ckpt_save.extra_files[kTrainingScorersFile] =
        training_record(to_string(cfg_.objective.kind), training_scorers_).dump(2) + "\n";
  const bool classifier = cfg_.objective.kind == Objective::kClassifier;
  std::vector<at::Tensor> params;
  for (const auto& p : policy_->parameters())
    if (p.requires_grad()) params.push_back(p);

  log::info("training " + std::to_string(total_steps_) + " steps on " + device_.str() + ", compute " +
            c10::toString(compute_) + ", objective " +
            to_string(cfg_.objective.kind) + ", chat template " +
            to_string(tmpl_) +
            (dist_->active() ? ", " + std::to_string(dist_->world_size()) + " ranks (" + dist_->backend_name() + ")" : ""));
  if (dist_->active() && cfg_.train.grad_accum_steps % dist_->world_size() != 0)
    log::warn("train.grad_accum_steps " + std::to_string(cfg_.train.grad_accum_steps) + " is not a multiple of the " +
              std::to_string(dist_->world_size()) + " ranks: the step's micro-batches are dealt round-robin, so some "
              "ranks wait idle (the results do not change)");
  install_stop_handlers();
  if (const int early = static_cast<int>(dist_->max(static_cast<double>(stop_requested())))) {
    progress.finish();
    log::warn("signal " + std::to_string(early) + " received before the first step: nothing to save; exit " +
              std::to_string(kExitRequeue) + " so that the job is requeued");
    summary.steps = state_.step;
    summary.stop_signal = early;
    return summary;
  }
  // A hung step (a collective waiting for a dead rank) or a stop signal that the loop does not answer becomes an
  // exit with a message instead of a silent hang (train.step_timeout_s, train.stop_grace_s).
  Watchdog watchdog(cfg_.train.step_timeout_s, cfg_.train.stop_grace_s);
  while (state_.step < total_steps_) {
    const auto t_step = Clock::now();
    // Host reads of the step (this rank), up to the optimizer update; see docs/benchmarks.md for the count.
    std::optional<HostSyncCounter> syncs(std::in_place);
    // The step's micro-batches and its global normalisation counts.
    std::vector<std::vector<int64_t>> micro;
    for (int64_t m = 0; m < cfg_.train.grad_accum_steps; ++m) micro.push_back(next_batch());
    double n_examples = 0, n_tokens = 0;
    for (const auto& b : micro)
      for (int64_t idx : b) {
        n_examples += 1;
        n_tokens += static_cast<double>(trained_tokens(data_->examples()[idx]));
      }
    const double lr = lr_at(state_.step, total_steps_, cfg_.optimizer.lr, cfg_.schedule);
    if (optimizer_) {
      set_lr(*optimizer_, lr);
      optimizer_->zero_grad();
    }
    StepStats st;
    // Micro-batch m of the global step runs on rank m % world_size, with the step's global counts and the
    // seed of m: the step's result does not depend on the number of ranks.
    const int64_t local_count = (static_cast<int64_t>(micro.size()) - dist_->rank() + dist_->world_size() - 1) / dist_->world_size();
    int64_t local = 0;
    for (size_t m = static_cast<size_t>(dist_->rank()); m < micro.size(); m += static_cast<size_t>(dist_->world_size())) {
      if (sharded_) sharded_->begin_micro(sharded_->reduces(local, local_count));
      if (classifier) classifier_micro_batch(micro[m], static_cast<int64_t>(n_examples), &st);
      else micro_batch(micro[m], static_cast<int64_t>(m), n_examples, n_tokens, &st);
      if (sharded_) sharded_->end_micro();  // the reduce-scatters launched during backward, and the rest
      ++local;
    }
    if (dist_->active() && !sharded_) {
      // The loss is already normalised by the global counts: the gradient is the sum over ranks.
      std::vector<at::Tensor> grads;
      for (auto& p : params) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        grads.push_back(p.grad());
      }
      dist_->sum(grads);
    }
    reduce_step(&st);
    const double clip = cfg_.optimizer.grad_clip > 0 ? cfg_.optimizer.grad_clip : std::numeric_limits<double>::infinity();
    const double grad_norm = sharded_ ? sharded_->clip(clip) : torch::nn::utils::clip_grad_norm_(params, clip);
    const bool finite = std::isfinite(st.loss) && std::isfinite(grad_norm);
    if (finite) {
      if (sharded_) sharded_->step(lr);
      else optimizer_->step();
      state_.nonfinite_in_row = 0;
    } else {
      if (sharded_) sharded_->zero_grad();
      else optimizer_->zero_grad();
      ++state_.nonfinite_in_row;
      ++state_.nonfinite_total;
      log::warn("step " + std::to_string(state_.step + 1) + ": non-finite " + (std::isfinite(st.loss) ? "gradient" : "loss") +
                "; step skipped (" + std::to_string(state_.nonfinite_in_row) + " in a row)");
      if (state_.nonfinite_in_row >= cfg_.train.max_nonfinite_steps)
        throw DataError("stopping: " + std::to_string(state_.nonfinite_in_row) +
                            " steps in a row had a non-finite loss or gradient (train.max_nonfinite_steps)",
                        "lower optimizer.lr, check the data for empty or extreme examples, or use float32 compute");
    }
    const HostSyncs step_syncs = syncs->counts();
    syncs.reset();
    ++state_.step;
    state_.tokens_trained += st.tokens;
    state_.learned_gate.assign(learned_.w.begin(), learned_.w.end());
    const double step_s = seconds_since(t_step);
    summary.last_loss = st.loss;

    if (state_.step % cfg_.logging.every_steps == 0 || state_.step == total_steps_) {
      nlohmann::json rec = {{"step", state_.step},
                            {"epoch", state_.epoch},
                            {"loss", st.loss},
                            {"grad_norm", grad_norm},
                            {"lr", lr},
                            {"skipped", !finite},
                            {"tokens", st.tokens},
                            {"tokens_per_s", static_cast<double>(st.tokens) / step_s},
                            {"step_s", step_s},
                            {"host_syncs", step_syncs.total()}};
      if (classifier) {
        rec["accuracy"] = st.labelled ? static_cast<double>(st.correct) / static_cast<double>(st.labelled) : 0.0;
      } else {
        rec["loss_sft"] = st.loss_sft;
        rec["loss_pg"] = st.loss_pg;
        rec["padding_share"] = st.padded_tokens ? 1.0 - static_cast<double>(st.tokens) / st.padded_tokens : 0.0;
      }
      if (cfg_.objective.kind == Objective::kGaft) {
        const auto mean_std = [](const std::vector<double>& v) {
          double m = 0, s = 0;
          for (double x : v) m += x;
          m = v.empty() ? 0 : m / static_cast<double>(v.size());
          for (double x : v) s += (x - m) * (x - m);
          return std::pair{m, v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0};
        };
        const auto [rm, rs] = mean_std(st.rewards);
        const auto [gm, gs] = mean_std(st.gates);
        rec["reward_mean"] = rm;
        rec["reward_std"] = rs;
        rec["reference_score_mean"] = mean_std(st.ref_scores).first;
        rec["gate_mean"] = gm;
        rec["gate_p10"] = quantile(st.gates, 0.1);
        rec["gate_p50"] = quantile(st.gates, 0.5);
        rec["gate_p90"] = quantile(st.gates, 0.9);
        rec["rollout_skipped"] = 1.0 - static_cast<double>(st.rolled_out) / static_cast<double>(st.examples);
        rec["abstain_rate"] = static_cast<double>(st.abstained) / static_cast<double>(st.examples);
        rec["drop_rate"] = static_cast<double>(st.dropped) / static_cast<double>(st.examples);
        rec["invalid_scores"] = st.invalid_scores;
        rec["rollout_tokens"] = st.generated;
        rec["decode_steps"] = st.decode_steps;
        rec["rollout_share"] = st.rollout_s / step_s;
        rec["score_share"] = st.score_s / step_s;
        if (cfg_.recovery.share > 0) {
          rec["loss_recovery"] = st.loss_recovery;
          rec["recovery_from_reference"] = static_cast<double>(st.recovery_from_reference) / static_cast<double>(st.examples);
          rec["recovery_from_rollout"] = static_cast<double>(st.recovery_from_rollout) / static_cast<double>(st.examples);
          rec["recovery_reward_mean"] = mean_std(st.recovery_rewards).first;
          rec["recovery_rollouts"] = static_cast<int64_t>(st.recovery_rewards.size());
        }
      }
      if (objective_.kl != KlMode::kNone || cfg_.objective.kind == Objective::kGaft)
        rec["kl"] = st.kl_batches ? st.kl / static_cast<double>(st.kl_batches) : 0.0;
      rec["fwd_bwd_share"] = st.fwd_bwd_s / step_s;
      if (cfg_.eval.every_steps > 0 && state_.step % cfg_.eval.every_steps == 0) {
        if (sharded_) sharded_->materialize();
        rec.update(eval_metrics());
        if (sharded_) sharded_->release_all();
      }
      if (metrics) metrics->write(rec);
      if (board) board->write_scalars(state_.step, rec);
      log::debug(rec.dump());
    }
    progress.update(state_.step, c10::str("loss ", st.loss));

    // A stop signal on any rank (Slurm's warning before a time limit or a preemption) stops every rank
    // after this step, with a checkpoint.
    const int stop = static_cast<int>(dist_->max(static_cast<double>(stop_requested())));
    const bool last = state_.step == total_steps_;
    if ((cfg_.checkpoint.every_steps > 0 && state_.step % cfg_.checkpoint.every_steps == 0) || last || stop) {
      if (sharded_) sharded_->materialize();  // sharding full: rank 0 writes the whole model
      if (!params_finite()) throw DataError("the weights are not finite at step " + std::to_string(state_.step) + "; nothing saved");
      const std::string dir = write_checkpoint(out, state_, policy_, sharded_ ? OptimizerRef(*sharded_) : OptimizerRef(*optimizer_), ckpt_save, cfg_.checkpoint.keep_last, dist_.get());
      if (sharded_) sharded_->release_all();
      if (stop && !last) {
        progress.finish();
        log::warn("signal " + std::to_string(stop) + " received: stopped after step " + std::to_string(state_.step) +
                  " with checkpoint " + dir + "; the same command resumes from it (exit " + std::to_string(kExitRequeue) + ")");
        summary.steps = state_.step;
        summary.skipped_steps = state_.nonfinite_total;
        summary.stop_signal = stop;
        return summary;
      }
    }
    watchdog.beat(state_.step);
  }
  progress.finish();

  // The final model, in the dtype the source was stored in.
  if (sharded_) sharded_->materialize();  // sharding full: the whole model for the last eval and the save
  const nlohmann::json final_eval = eval_metrics();
  if (!final_eval.empty()) {
    nlohmann::json rec = final_eval;
    rec["step"] = state_.step;
    rec["final"] = true;
    if (metrics) metrics->write(rec);
    if (board) board->write_scalars(state_.step, rec);
    log::info("held-out: " + final_eval.dump());
  }
  if (!params_finite()) throw DataError("the final weights are not finite; nothing saved");
  summary.model_dir = (fs::path(out) / "model").string();
  SaveOptions final_save = ckpt_save;  // an adapter folder under LoRA, else the model in its source's dtype
  final_save.dtype = stored_dtype(policy_->config);
  if (main) save_model(policy_, summary.model_dir, final_save);
  dist_->barrier();  // no rank ends before the model is on disk
  summary.steps = state_.step;
  summary.skipped_steps = state_.nonfinite_total;
  log::info("saved " + summary.model_dir + " after " + std::to_string(state_.step) + " steps");
  return summary;
}

}  // namespace

TrainSummary train(const RunConfig& config) {
  install_stop_handlers();  // before the models load: a stop while loading is a requeue, not a kill
  return Trainer(config).run();
}

std::string describe_launch(const RunConfig& config) {
  const Launch l = resolve_launch();
  const at::Device device = rank_device(resolve_device(config.run.device), l);
  const bool nccl = uses_nccl(dist_backend(config.distributed.backend), device);
  return "rank=" + std::to_string(l.rank) + " world_size=" + std::to_string(l.world_size) + " local_rank=" +
         std::to_string(l.local_rank) + " master=" + l.master_addr + ":" + std::to_string(l.master_port) +
         " source=" + l.source + " backend=" + (nccl ? "nccl" : "gloo") + " device=" + device.str() +
         " output_dir=" + config.run.output_dir;
}

std::string describe_memory(const RunConfig& config) {
  const Launch l = resolve_launch();
  if (l.rank != 0) return "";  // one plan per job
  const at::Device device = rank_device(resolve_device(config.run.device), l);
  ModelConfig mc;
  try {
    mc = load_model_config(config.model.path);
  } catch (const std::exception& e) {
    return std::string("memory plan: none, the model's config.json cannot be read: ") + e.what() + "\n";
  }
  const bool gaft = config.objective.kind == Objective::kGaft;
  const bool bf16 = config.precision.compute == DType::kAuto ? (device.is_cuda() || cpu_has_native_bf16())
                                                             : config.precision.compute == DType::kBFloat16;
  MemoryRun run;
  run.lora = config.lora.enabled;
  run.lora_rank = config.lora.rank;
  run.lora_targets = config.lora.targets;
  run.bf16 = bf16 && config.precision.master == DType::kFloat32;
  run.checkpointing = config.model.gradient_checkpointing;
  // The longest micro-batch: references at their longest, and under gaft K rollouts per example.
  const int64_t B = config.train.batch_size, P = config.data.max_prompt_tokens;
  run.tokens = B * (P + config.data.max_response_tokens) +
               (gaft ? B * config.rollout.num_samples * (P + config.rollout.max_new_tokens) : 0);
  run.chunk_tokens = ops::default_chunk_tokens(mc.vocab_size, device);
  run.world = l.world_size;
  run.bucket_bytes = static_cast<int64_t>(config.distributed.bucket_mb * 1024.0 * 1024.0);
  std::vector<std::pair<std::string, MemoryPlan>> plans;
  for (const auto& [name, level] : std::vector<std::pair<std::string, Sharding>>{
           {"none", Sharding::kNone}, {"optimizer", Sharding::kOptimizer}, {"gradients", Sharding::kGradients},
           {"full", Sharding::kFull}}) {
    run.sharding = level;
    plans.emplace_back(level == config.distributed.sharding ? "**" + name + "** (configured)" : name, plan_memory(mc, run));
  }
  const MemoryPlan& p = plans.front().second;
  std::string out = c10::str("memory plan per rank (accounting model, docs/benchmarks.md): ", mc.architecture, " ",
                             std::round(p.params / 1e6), "M parameters, ", std::round(p.trainable / 1e6 * 100) / 100,
                             "M trainable", run.lora ? " (LoRA)" : "", "; ", l.world_size, " rank(s); ",
                             run.bf16 ? "bf16 autocast over fp32 weights" : "fp32", "; checkpointing ",
                             run.checkpointing ? "on" : "off", "; up to ", run.tokens, " tokens per micro-batch\n");
  out += describe_memory_plans(plans);
  // What the policy's plan leaves out.
  const double gib = 1024.0 * 1024.0 * 1024.0;
  for (const ScorerHead& h : config.scorer.heads) {
    try {
      const double n = parameter_count(load_model_config(h.path));
      out += c10::str("+ scorer head ", h.name, ": ", std::round(n / 1e6), "M parameters, ",
                      std::round(n * (bf16 ? 2 : 4) / gib * 10) / 10, " GiB (frozen, ", bf16 ? "bf16" : "fp32", ")\n");
    } catch (const std::exception&) {
      out += "+ scorer head " + h.name + ": no readable config.json at " + h.path + "\n";
    }
  }
  if (config.objective.kl != KlMode::kNone && !run.lora)
    out += c10::str("+ KL reference copy: ", std::round(p.params * (bf16 ? 2 : 4) / gib * 10) / 10, " GiB\n");
  if (gaft && !run.lora)
    out += c10::str("+ under full: rollouts and scoring gather the whole policy, ", std::round(4 * p.params / gib * 10) / 10,
                    " GiB, at another time of the step than the training pass\n");
  if (config.precision.master != DType::kFloat32) out += "(the plan assumes fp32 master weights; precision.master differs)\n";
  return out;
}

}  // namespace gaft
