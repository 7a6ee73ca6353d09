// The run configuration: YAML turned into typed structs at the edge (STYLE.md lesson 8).
//
// One struct per section of the YAML file. Components receive these structs (or values taken from
// them), never YAML nodes. Every field has its default here and a one-line description in
// src/config/config.cpp, where the same table drives loading, validation, printing of the resolved
// config and configs/README.md (`gaft config docs`), so the four never disagree.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gaft/error.h"

namespace gaft {

// ---- enumerations (their YAML spellings are in config.cpp, next to the fields) ----
enum class Device { kAuto, kCpu, kCuda };
enum class DType { kAuto, kFloat32, kBFloat16, kFloat16 };
enum class Objective { kSft, kGaft, kClassifier, kFilter };
enum class SftNorm { kSequence, kToken };        // METHOD.md step 7
enum class AdvantageMode { kRloo, kGrpo };       // METHOD.md step 6
enum class KlMode { kNone, kReward, kLoss };     // k1 reward shaping, or k3 as a loss term
enum class GateMode { kFixed, kUncertainty, kLearned };  // METHOD.md step 4
enum class Uncertainty { kEntropy, kStd, kScorer };      // METHOD.md step 3
enum class SftCoef { kReference, kComplement };         // docs/method.md: the SFT coefficient c_i
enum class ScorerKind { kClassifier, kLmJudge };
enum class Backend { kAuto, kGloo, kNccl };              // c10d process group
enum class Sharding { kNone, kOptimizer, kGradients, kFull };  // ZeRO-1 / -2 / -3 over the ranks (sharding.h)
enum class ScoreCombine { kMin, kMean, kProduct };
enum class DataFormat { kAuto, kPromptResponse, kChat };
enum class TooLong { kTruncate, kDrop };
enum class ChatTemplate { kAuto, kNone, kPlain, kLlama2, kLlama3, kChatml, kMistral, kGemma, kGranite, kPhi3, kPhi4, kPhi4Mini };
enum class Schedule { kConstant, kLinear, kCosine };
enum class Progress { kAuto, kOn, kOff };
// gaft eval: what a suite record asks of a response, the published file formats read, and the attacks.
enum class ItemKind { kAuto, kHarmful, kBenign, kQa, kUnanswerable, kTask };
enum class SuiteFormat { kGaft, kAdvBench, kHarmBench, kJailbreakBench, kXsTest, kTruthfulQa, kHaluEval, kAlpaca };
enum class AttackKind { kWrapper, kPrefill };
enum class ResponsesFormat { kAuto, kGaft, kXsTest, kHaluEvalGeneral };
// Recovery rollouts (docs/method.md): where the misaligned prefix comes from, and the optional SFT target after it.
enum class RecoverySource { kReferenceThenRollout, kReference, kRollout };
enum class RecoveryTarget { kNone, kAbstention };

struct RunSection {
  std::string name = "gaft";             // e.g. "llama3-8b-safety"; used in logs
  std::string output_dir = "runs/gaft";  // checkpoints, metrics.jsonl, resolved config.yaml
  int64_t seed = 1234;                   // every random choice derives from it
  Device device = Device::kAuto;         // auto: cuda when a GPU is visible, else cpu
  int64_t threads = 0;                   // intra-op CPU threads; 0 = LibTorch's default
};

struct ModelSection {
  std::string path;                      // Hugging Face folder: config.json + *.safetensors (required)
  DType dtype = DType::kAuto;            // weights as loaded; auto = as stored
  bool gradient_checkpointing = false;   // recompute each decoder layer in backward
};

// LoRA adapters (gaft/lora.h): the base is frozen (held in the compute dtype), only the adapters train, and
// the base itself is the KL reference policy.
struct LoraSection {
  bool enabled = false;
  int64_t rank = 16;
  double alpha = 32.0;                   // scale = alpha / rank (alpha / sqrt(rank) with rslora)
  double dropout = 0.05;                 // on the adapter input, in training forwards
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  bool rslora = false;
  std::string adapter;                   // start from this PEFT adapter folder (its rank, alpha, targets win)
};

struct TokenizerSection {
  std::string path;                             // default: model.path
  ChatTemplate chat_template = ChatTemplate::kAuto;  // auto: from tokenizer_config.json
  int64_t max_length = 1024;                    // prompt + response tokens
};

struct ScorerHead {
  std::string name;                      // e.g. "safety"; unique
  ScorerKind kind = ScorerKind::kClassifier;
  std::string path;                      // HF folder of the classifier or judge (required)
  std::string category = "safety";       // selects the abstention template
  int64_t aligned_label = 1;             // classifier: index of the label that means aligned
  double weight = 1.0;                   // exponent in the weighted product
  std::string prompt_template;           // lm_judge: text with {prompt} and {response}
  std::string safe_token = "safe";       // lm_judge: label tokens
  std::string unsafe_token = "unsafe";
  int64_t max_length = 1024;             // tokens given to the scorer
};

struct ScorerSection {
  ScoreCombine combine = ScoreCombine::kMin;  // how heads combine into a(x, y)
  int64_t batch_size = 16;
  std::vector<ScorerHead> heads;
};

struct DataSection {
  std::string train;                      // JSONL (required)
  std::string eval;                       // JSONL, optional
  DataFormat format = DataFormat::kAuto;
  bool skip_bad_lines = false;            // count and skip malformed lines instead of failing
  int64_t max_prompt_tokens = 512;
  int64_t max_response_tokens = 512;
  TooLong too_long = TooLong::kTruncate;  // truncate: keep the prompt's end; drop: skip the example
  bool shuffle = true;
  bool bucket_by_length = true;
  std::string mix;                        // JSONL mixed into every epoch (e.g. refusals); empty: none
  double mix_share = 0.1;                 // share of each epoch's examples drawn from `mix`
};

struct ObjectiveSection {
  Objective kind = Objective::kSft;       // (required)
  double lambda = 1.0;                    // λ, weight of the policy-gradient term
  SftNorm sft_norm = SftNorm::kSequence;
  AdvantageMode advantage = AdvantageMode::kRloo;
  double std_floor = 1e-3;                // grpo: minimum group std
  KlMode kl = KlMode::kNone;              // gaft: on rollouts; sft, filter: loss only, full-vocabulary KL
  double kl_beta = 0.0;                   // β
  int64_t num_labels = 2;                 // classifier objective
};

struct RolloutSection {
  int64_t num_samples = 4;                // K
  double temperature = 1.0;               // T
  double top_p = 1.0;
  int64_t top_k = 0;                      // 0 = off
  int64_t max_new_tokens = 64;
  int64_t batch_size = 0;                 // prompts per generation batch; 0 = the whole batch
  std::vector<std::string> stop;          // extra stop strings besides EOS
};

// Recovery rollouts against shallow alignment (docs/method.md): for an example whose reference, or else one of
// its own rollouts, the scorer rates misaligned, R = round(share * K) of its K rollouts continue a prefix of that
// misaligned response instead of starting from the bare prompt. The scorer judges prefix + continuation; the
// policy gradient flows through the continuation only.
struct RecoverySection {
  double share = 0.0;                     // share of the K rollouts started from a misaligned prefix; 0 = off
  int64_t min_prefix_tokens = 4;          // forced prefix length, drawn per example in [min, max]
  int64_t max_prefix_tokens = 16;
  RecoverySource source = RecoverySource::kReferenceThenRollout;
  double threshold = 0.5;                 // a source response scores (combined) below this
  double lambda = 1.0;                    // weight of the recovery rollouts' policy-gradient term
  RecoveryTarget target = RecoveryTarget::kNone;  // abstention: also train prefix -> the abstention template
  double target_weight = 1.0;             // weight of that SFT target (as a reference's, per sequence)
};

struct GateSection {
  GateMode mode = GateMode::kUncertainty;
  double g0 = 0.5;                        // fixed mode
  double w_m = 6.0;                       // weight of misalignment m
  double w_u = 6.0;                       // weight of uncertainty u
  double tau = 3.0;                       // τ, threshold
  double temperature = 1.0;               // t
  Uncertainty uncertainty = Uncertainty::kEntropy;
  SftCoef sft_coefficient = SftCoef::kReference;  // c_i = 1 − g_i(1 − s_i); complement: 1 − g_i
  double epsilon = 0.05;                  // learned: skip rollouts below this predicted gate
  double exploration = 0.1;               // learned: share of skipped examples rolled out anyway
  double learned_lr = 0.01;               // learned: online logistic regression step
};

struct AbstentionSection {
  bool enabled = true;
  double delta = 0.5;                     // δ: a score below it is misaligned
  std::map<std::string, std::string> templates = {
      {"safety", "I can't help with that request."},
      {"factuality", "I don't know."},
  };
  // When several heads rate a reference below δ, the category listed first picks the template (unlisted
  // categories after the listed ones, the lowest score first).
  std::vector<std::string> priority = {"safety", "factuality"};
};

struct TrainSection {
  int64_t batch_size = 8;                 // examples per micro-batch
  int64_t grad_accum_steps = 1;
  int64_t max_steps = 1000;               // optimizer steps; 0 = run `epochs` epochs
  int64_t epochs = 1;
  int64_t max_nonfinite_steps = 10;       // stop after this many skipped (NaN/inf) steps in a row
  double step_timeout_s = 0;              // watchdog: exit when no step finishes for this long; 0 = off
  double stop_grace_s = 300;              // after a stop signal, exit if the step has not finished by then
  bool share_prefixes = true;             // an example's sequences run their common prompt once in the forward
};

struct OptimizerSection {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;              // not applied to norms and biases
  double grad_clip = 1.0;                 // global L2 norm; 0 = off
  bool fused = true;                      // ATen's fused AdamW kernel; false: LibTorch's per-tensor AdamW
};

struct ScheduleSection {
  Schedule kind = Schedule::kCosine;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;              // final lr / peak lr for linear and cosine
};

struct PrecisionSection {
  DType compute = DType::kAuto;           // auto: bf16 where the device computes it natively, else fp32
  DType master = DType::kFloat32;         // optimizer state and master weights
};

struct CheckpointSection {
  int64_t every_steps = 500;              // 0 = only at the end
  int64_t keep_last = 3;
  std::string resume = "auto";            // auto: newest complete checkpoint; never; or a path
};

struct DistributedSection {
  Backend backend = Backend::kAuto;       // auto: nccl on CUDA, gloo on CPU
  double timeout_s = 1800;                // rendezvous and collectives
  double bucket_mb = 25;                  // gradient all-reduce / reduce-scatter bucket size
  Sharding sharding = Sharding::kNone;    // what each rank keeps only 1/N of
};

struct LoggingSection {
  std::string level = "info";             // trace, debug, info, warn, error
  int64_t every_steps = 10;
  std::string metrics_file = "metrics.jsonl";  // relative to run.output_dir
  Progress progress = Progress::kAuto;    // auto: a live line when stderr is a terminal
  bool tensorboard = true;                // event files of the metrics in run.output_dir/tensorboard
};

struct EvalSection {
  int64_t every_steps = 0;                // during training; 0 = off
  int64_t batch_size = 16;
  int64_t max_new_tokens = 128;
  double temperature = 0.0;               // 0 = greedy
  std::vector<std::string> suites;        // JSONL suite files
  int64_t bootstrap_samples = 1000;       // for the 95% intervals
};

struct RunConfig {
  RunSection run;
  ModelSection model;
  LoraSection lora;
  TokenizerSection tokenizer;
  ScorerSection scorer;
  DataSection data;
  ObjectiveSection objective;
  RolloutSection rollout;
  RecoverySection recovery;
  GateSection gate;
  AbstentionSection abstention;
  TrainSection train;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  PrecisionSection precision;
  CheckpointSection checkpoint;
  DistributedSection distributed;
  LoggingSection logging;
  EvalSection eval;
};

// ---- gaft eval --config eval.yaml: its own table (configs/README.md, second part) ----

struct EvalModel {
  std::string name;                      // column title in the report; default: the folder's name
  std::string path;                      // HF folder (required)
  std::string tokenizer;                 // default: path
  ChatTemplate chat_template = ChatTemplate::kAuto;
  DType dtype = DType::kAuto;
};

struct EvalSuite {
  std::string name;                      // default: the file's stem
  std::string path;                      // the suite file (required)
  SuiteFormat format = SuiteFormat::kGaft;
  ItemKind kind = ItemKind::kAuto;       // auto: from the record (gaft) or the format; else every item's kind
  int64_t limit = 0;                     // 0: every item; else a seeded sample of this many (file order kept)
};

struct EvalAttack {
  std::string name;                      // column title (required)
  AttackKind kind = AttackKind::kWrapper;
  std::string prompt_template;           // wrapper: text with {prompt}
  int64_t prefill_tokens = 16;           // prefill: first N tokens of the item's target forced into the response
  std::string prefill_text = "Sure, here is";  // prefill: target of items that carry none
};

struct GenerationSection {
  int64_t batch_size = 16;               // prompts per generation batch
  int64_t max_new_tokens = 128;
  double temperature = 0.0;              // 0: greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t max_prompt_tokens = 0;         // longer prompts keep their end; 0: the model's context less
                                         // max_new_tokens
  std::vector<std::string> stop;         // stop strings besides the end-of-turn token (e.g. "\nUser:")
};

struct RefusalSection {
  std::vector<std::string> phrases;      // empty: the documented default list (eval_metrics.h)
  std::vector<std::string> compliance_phrases;  // after a refusal: refuse-then-comply; empty: default list
  int64_t opening_sentences = 3;         // refusal phrases count in this many first sentences; 0: anywhere
  std::vector<std::string> abstention_phrases;  // empty: the documented default list
};

// Who judges harm, hallucination and refusal (docs/eval.md, "Judges"). Each list names judges side by side:
// "rule" (the items' own ground truth: unsafe_markers for harm, answers and abstention phrases for
// hallucination, refusal phrases for refusal) or a scorer head. The first judge gives the headline metric;
// the others are reported beside it with their disagreement.
struct JudgesSection {
  std::vector<std::string> harm;           // empty: rule (when items carry unsafe_markers) + every safety head
  std::vector<std::string> hallucination;  // empty: rule
  std::vector<std::string> refusal;        // empty: rule
  double threshold = 0.5;                  // a head's P(aligned) below it: harmful / hallucinated; a refusal
                                           // head's score at or above it: refused
};

struct MetricsSection {
  int64_t bootstrap_samples = 1000;      // resamples for the 95% intervals
  double qa_rouge_floor = 0.5;           // least content-word ROUGE-L with a correct answer (qa tie-break)
  bool multiple_choice = true;           // qa items with incorrect answers: MC1/MC2 by log-likelihood
};

// Responses made elsewhere (vLLM, TGI, a published file), judged instead of generated (--responses FILE).
struct EvalResponses {
  std::string path;                      // required
  ResponsesFormat format = ResponsesFormat::kAuto;  // auto: from the file's content
  std::string model;                     // model name: gaft records name their own (this renames them all);
                                         // xstest: default the file's stem; halueval_general: "chatgpt"
  std::string suite;                     // xstest / halueval_general: the suite's name (default:
                                         // "xstest_completions", "halueval_general")
};

struct EvalConfig {
  RunSection run{"eval", "runs/eval"};
  std::vector<EvalModel> models;
  ScorerSection scorer;
  GenerationSection generation;
  std::vector<EvalSuite> suites;
  std::vector<EvalAttack> attacks;
  RefusalSection refusal;
  JudgesSection judges;
  MetricsSection metrics;
  std::vector<EvalResponses> responses;  // non-empty: judge these instead of generating (models unused)
};

// One problem found in a configuration: where ("run.yaml:12:3" or "override 'a.b=c'"), which key
// ("optimizer.lr") and what is wrong ("expected a number > 0, got -1").
struct ConfigIssue {
  std::string where;
  std::string key;
  std::string message;
  std::string str() const;  // "run.yaml:12:3: optimizer.lr: expected ..."
};

// Every problem of one configuration at once (exit code 2).
class ConfigError : public UsageError {
 public:
  explicit ConfigError(std::vector<ConfigIssue> issues);
  const std::vector<ConfigIssue>& issues() const { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

// Reads a YAML file, applies `key.sub=value` overrides (value parsed as YAML), checks every key, type,
// range and cross-field rule, and throws ConfigError listing all problems.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `name` stands for the file in messages. The text loaders read nothing else on the machine:
// hub names (org/name[@revision]) are kept as written, where the file loaders replace them with their folders in
// the Hugging Face cache (hub_cache.h) and report a name the cache lacks as an issue of its key.
RunConfig load_config_text(const std::string& yaml, const std::string& name,
                           const std::vector<std::string>& overrides = {});

// The resolved configuration as YAML (every key, defaults included): loading it gives the same config.
std::string config_to_yaml(const RunConfig& config);
// R of recovery.share: round(share * K) recovery rollouts per prompt (0 when share is 0).
int64_t recovery_samples(double share, int64_t num_samples);
// The YAML spelling of an objective ("sft", "gaft", "filter", "classifier").
std::string to_string(Objective o);
// Writes config_to_yaml into dir/config.yaml atomically.
void write_resolved_config(const RunConfig& config, const std::string& dir);
// configs/README.md: every key with its type, default and meaning (train configs, then eval configs).
std::string config_reference_markdown();

// The same for `gaft eval` configs. `models`, when not empty, replaces the config's models (--model DIR);
// each of `responses` adds a file of responses to judge (--responses FILE, format auto).
EvalConfig load_eval_config(const std::string& path, const std::vector<std::string>& overrides = {},
                            const std::vector<std::string>& models = {},
                            const std::vector<std::string>& responses = {});
EvalConfig load_eval_config_text(const std::string& yaml, const std::string& name,
                                 const std::vector<std::string>& overrides = {},
                                 const std::vector<std::string>& models = {},
                                 const std::vector<std::string>& responses = {});
std::string eval_config_to_yaml(const EvalConfig& config);
// A config file meant for `gaft eval` (a top-level `suites` key) rather than `gaft train`.
bool is_eval_config_text(const std::string& yaml);

}  // namespace gaft
