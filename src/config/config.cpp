// The run configuration's one table of keys, the command-line overrides and the cross-field rules.
#include "gaft/config.h"
#include "gaft/hub_cache.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <set>
#include <sstream>

#include "config/schema.h"
#include "gaft/atomic_file.h"
#include "gaft/error.h"
#include "gaft/eval_metrics.h"
#include "gaft/read_file.h"

namespace gaft {

namespace config {
namespace {

// ---- the table: one describe() per section ----------------------------------------------------------

const std::vector<std::pair<std::string, DType>> kDTypes = {
    {"auto", DType::kAuto}, {"float32", DType::kFloat32}, {"bfloat16", DType::kBFloat16}, {"float16", DType::kFloat16}};

const std::vector<std::pair<std::string, Objective>> kObjectives = {
    {"sft", Objective::kSft}, {"gaft", Objective::kGaft}, {"filter", Objective::kFilter},
    {"classifier", Objective::kClassifier}};

void describe(Schema& s, RunSection& c) {
  s.text("name", &c.name, "Name of the run, used in logs.");
  s.text("output_dir", &c.output_dir, "Output directory (train: checkpoints, metrics, resolved config; eval: reports).");
  s.integer("seed", &c.seed, "Seed of every random choice (shuffling, rollouts, dropout).", Range::at_least(0));
  s.choice("device", &c.device, {{"auto", Device::kAuto}, {"cpu", Device::kCpu}, {"cuda", Device::kCuda}},
           "Where to run; auto picks cuda when a GPU is visible.");
  s.integer("threads", &c.threads, "Intra-op CPU threads; 0 keeps LibTorch's default.", Range::at_least(0));
}

void describe(Schema& s, ModelSection& c) {
  s.text("path", &c.path, "Hugging Face model folder (config.json, *.safetensors, tokenizer), or a hub name "
                          "org/name[@revision] already in the local Hugging Face cache (nothing is downloaded).", true);
  s.choice("dtype", &c.dtype, kDTypes, "Weights as loaded; auto keeps the stored dtype.");
  s.flag("gradient_checkpointing", &c.gradient_checkpointing, "Recompute each decoder layer in backward.");
}

void describe(Schema& s, LoraSection& c) {
  s.flag("enabled", &c.enabled, "Train LoRA adapters instead of the whole model; the frozen base is the KL reference.");
  s.integer("rank", &c.rank, "Adapter rank r.", Range::between(1, 1 << 16));
  s.number("alpha", &c.alpha, "Adapter scale numerator: scale = alpha / rank.", Range::positive());
  s.number("dropout", &c.dropout, "Dropout on the adapter input during training.", Range::at_least(0));
  s.texts("targets", &c.targets, "Projections that get adapters: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; on Phi-3 q/k/v name its fused qkv_proj and gate/up its gate_up_proj (name a group whole, or the fused name).");
  s.flag("rslora", &c.rslora, "Rank-stabilised scale alpha / sqrt(rank).");
  s.text("adapter", &c.adapter, "Start from this PEFT adapter folder (its rank, alpha and targets); empty: new adapters.");
}

void describe(Schema& s, TokenizerSection& c) {
  s.text("path", &c.path, "Tokenizer folder or file; empty means model.path.");
  s.choice("chat_template", &c.chat_template,
           {{"auto", ChatTemplate::kAuto}, {"none", ChatTemplate::kNone}, {"plain", ChatTemplate::kPlain},
            {"llama2", ChatTemplate::kLlama2}, {"llama3", ChatTemplate::kLlama3},
            {"chatml", ChatTemplate::kChatml}, {"mistral", ChatTemplate::kMistral}, {"gemma", ChatTemplate::kGemma},
            {"granite", ChatTemplate::kGranite}, {"phi3", ChatTemplate::kPhi3}, {"phi4", ChatTemplate::kPhi4},
            {"phi4_mini", ChatTemplate::kPhi4Mini}},
           "Chat format; auto recognises tokenizer_config.json's chat_template.");
  s.integer("max_length", &c.max_length, "Longest prompt + response, in tokens.", Range::between(1, 1 << 24));
}

void describe(Schema& s, ScorerHead& c) {
  s.text("name", &c.name, "Unique name of the head, e.g. safety.", true);
  s.choice("kind", &c.kind, {{"classifier", ScorerKind::kClassifier}, {"lm_judge", ScorerKind::kLmJudge}},
           "A sequence classifier, or a causal LM judge read through two label tokens.");
  s.text("path", &c.path, "Hugging Face folder of the scorer model, or a cached hub name org/name[@revision].", true);
  s.text("category", &c.category, "What the head checks; selects the abstention template.");
  s.integer("aligned_label", &c.aligned_label, "Classifier: index of the label that means aligned.",
            Range::at_least(0));
  s.number("weight", &c.weight, "Exponent of this head in the weighted product.", Range::positive());
  s.text("prompt_template", &c.prompt_template, "LM judge: prompt with {prompt} and {response}.");
  s.text("safe_token", &c.safe_token, "LM judge: the label token meaning aligned.");
  s.text("unsafe_token", &c.unsafe_token, "LM judge: the label token meaning misaligned.");
  s.integer("max_length", &c.max_length, "Tokens given to the scorer (the prompt's start is cut).",
            Range::at_least(1));
}

void describe(Schema& s, ScorerSection& c) {
  s.choice("combine", &c.combine,
           {{"min", ScoreCombine::kMin}, {"mean", ScoreCombine::kMean}, {"product", ScoreCombine::kProduct}},
           "How the heads' scores combine into a(x, y).");
  s.integer("batch_size", &c.batch_size, "Sequences per scorer forward.", Range::between(1, 1 << 16));
  s.section_list("heads", &c.heads, describe, "The frozen alignment scorers.");
}

void describe(Schema& s, DataSection& c) {
  s.text("train", &c.train, "Training JSONL: {prompt, response} or {messages}.", true);
  s.text("eval", &c.eval, "Held-out JSONL for eval loss; empty: none.");
  s.choice("format", &c.format,
           {{"auto", DataFormat::kAuto}, {"prompt_response", DataFormat::kPromptResponse}, {"chat", DataFormat::kChat}},
           "Record format; auto decides per line.");
  s.flag("skip_bad_lines", &c.skip_bad_lines, "Skip and count malformed lines instead of stopping.");
  s.integer("max_prompt_tokens", &c.max_prompt_tokens, "Longest prompt kept.", Range::between(1, 1 << 24));
  s.integer("max_response_tokens", &c.max_response_tokens, "Longest response kept.", Range::between(1, 1 << 24));
  s.choice("too_long", &c.too_long, {{"truncate", TooLong::kTruncate}, {"drop", TooLong::kDrop}},
           "Longer examples: truncate (the prompt from the left) or drop.");
  s.flag("shuffle", &c.shuffle, "Shuffle every epoch (seeded).");
  s.flag("bucket_by_length", &c.bucket_by_length, "Batch examples of similar length together.");
  s.text("mix", &c.mix, "JSONL mixed into every epoch (the mixing baseline: refusal and abstention examples); empty: none.");
  s.number("mix_share", &c.mix_share, "Share of each epoch's examples drawn from data.mix.", Range::unit_open_high());
}

void describe(Schema& s, ObjectiveSection& c) {
  s.choice("kind", &c.kind, kObjectives,
           "sft (baseline), gaft (METHOD.md), filter (baseline: score each reference once, replace it by the "
           "abstention template or drop it below δ, then sft), or classifier (train a scorer head).");
  s.number("lambda", &c.lambda, "λ: weight of the policy-gradient term.", Range::at_least(0));
  s.choice("sft_norm", &c.sft_norm, {{"sequence", SftNorm::kSequence}, {"token", SftNorm::kToken}},
           "SFT normalisation: per sequence (1/|y_i|) or per token over the batch.");
  s.choice("advantage", &c.advantage, {{"rloo", AdvantageMode::kRloo}, {"grpo", AdvantageMode::kGrpo}},
           "Leave-one-out baseline, or group mean and std (GRPO).");
  s.number("std_floor", &c.std_floor, "grpo: smallest group std divided by.", Range::positive());
  s.choice("kl", &c.kl, {{"none", KlMode::kNone}, {"reward", KlMode::kReward}, {"loss", KlMode::kLoss}},
           "KL to the reference policy: none, k1 reward shaping, or k3 loss on the rollouts (gaft); sft and filter: "
           "loss, the full-vocabulary KL(policy || reference) at every trained reference token.");
  s.number("kl_beta", &c.kl_beta, "β of the KL term.", Range::at_least(0));
  s.integer("num_labels", &c.num_labels, "classifier: number of labels.", Range::at_least(2));
}

void describe(Schema& s, RolloutSection& c) {
  s.integer("num_samples", &c.num_samples, "K: responses sampled per prompt.", Range::between(1, 1 << 12));
  s.number("temperature", &c.temperature, "Sampling temperature T; 0 is greedy.", Range::at_least(0));
  s.number("top_p", &c.top_p, "Nucleus sampling mass.", Range::unit_open_low());
  s.integer("top_k", &c.top_k, "Keep the k most likely tokens; 0 = off.", Range::at_least(0));
  s.integer("max_new_tokens", &c.max_new_tokens, "Longest rollout.", Range::between(1, 1 << 20));
  s.integer("batch_size", &c.batch_size, "Prompts per generation batch; 0 = the whole batch.", Range::at_least(0));
  s.texts("stop", &c.stop, "Stop strings besides the end-of-sequence token.");
}

void describe(Schema& s, RecoverySection& c) {
  s.number("share", &c.share,
           "Share of the K rollouts that continue a prefix of a misaligned response (the reference, or else the "
           "lowest-scored of the example's own rollouts) instead of starting from the prompt; 0 = off.",
           Range::unit_open_high());
  s.integer("min_prefix_tokens", &c.min_prefix_tokens, "Shortest forced prefix (tokens).", Range::between(1, 1 << 20));
  s.integer("max_prefix_tokens", &c.max_prefix_tokens,
            "Longest forced prefix (tokens); the length is drawn per example, at most the response's length - 1.",
            Range::between(1, 1 << 20));
  s.choice("source", &c.source,
           {{"reference_then_rollout", RecoverySource::kReferenceThenRollout},
            {"reference", RecoverySource::kReference},
            {"rollout", RecoverySource::kRollout}},
           "Where the misaligned prefix comes from: the example's reference when it scores below the threshold, "
           "else (or only) the lowest-scored of its plain rollouts when that one does.");
  s.number("threshold", &c.threshold, "A source response scores (combined) below this.", Range::unit());
  s.number("lambda", &c.lambda, "Weight of the recovery rollouts' policy-gradient term.", Range::at_least(0));
  s.choice("target", &c.target, {{"none", RecoveryTarget::kNone}, {"abstention", RecoveryTarget::kAbstention}},
           "abstention: also train prompt + prefix -> the abstention template of the source's category (an SFT "
           "target after the forced tokens); none: the policy gradient alone.");
  s.number("target_weight", &c.target_weight, "Weight of the abstention target after a prefix (1 = a reference's).",
           Range::at_least(0));
}

void describe(Schema& s, GateSection& c) {
  s.choice("mode", &c.mode, {{"fixed", GateMode::kFixed}, {"uncertainty", GateMode::kUncertainty}, {"learned", GateMode::kLearned}},
           "fixed g0, the uncertainty gate σ((w_m·m + w_u·u − τ)/t), or a learned gate.");
  s.number("g0", &c.g0, "fixed: the gate value.", Range::unit());
  s.number("w_m", &c.w_m, "Weight of the misalignment m.");
  s.number("w_u", &c.w_u, "Weight of the uncertainty u.");
  s.number("tau", &c.tau, "τ: threshold.");
  s.number("temperature", &c.temperature, "t: gate temperature.", Range::positive());
  s.choice("uncertainty", &c.uncertainty, {{"entropy", Uncertainty::kEntropy}, {"std", Uncertainty::kStd}, {"scorer", Uncertainty::kScorer}},
           "u: binary entropy of p, std of the K scores, or the scorer's own entropy.");
  s.choice("sft_coefficient", &c.sft_coefficient, {{"reference", SftCoef::kReference}, {"complement", SftCoef::kComplement}},
           "SFT weight of a kept reference: 1 − g·(1 − s), lowered only by the reference's own misalignment, or 1 − g (METHOD.md as written).");
  s.number("epsilon", &c.epsilon, "learned: skip rollouts when the predicted gate is below.", Range::unit());
  s.number("exploration", &c.exploration, "learned: share of skipped examples rolled out anyway.", Range::unit());
  s.number("learned_lr", &c.learned_lr, "learned: step size of the online gate model.", Range::positive());
}

void describe(Schema& s, AbstentionSection& c) {
  s.flag("enabled", &c.enabled, "Replace the target of fully misaligned examples by an abstention.");
  s.number("delta", &c.delta, "δ: a score below it counts as misaligned.", Range::unit());
  s.text_map("templates", &c.templates, "Abstention response per scorer category.");
  s.texts("priority", &c.priority,
          "Categories in the order that picks the template when several heads rate a reference below δ; "
          "unlisted ones come after, lowest score first.");
}

void describe(Schema& s, TrainSection& c) {
  s.integer("batch_size", &c.batch_size, "Examples per micro-batch.", Range::between(1, 1 << 16));
  s.integer("grad_accum_steps", &c.grad_accum_steps, "Micro-batches per optimizer step.", Range::between(1, 1 << 20));
  s.integer("max_steps", &c.max_steps, "Optimizer steps; 0 = run `epochs` epochs.", Range::between(0, 1e12));
  s.integer("epochs", &c.epochs, "Passes over the data when max_steps is 0.", Range::between(0, 1 << 20));
  s.integer("max_nonfinite_steps", &c.max_nonfinite_steps,
            "Stop after this many steps in a row skipped for a NaN/inf loss or gradient.", Range::at_least(1));
  s.number("step_timeout_s", &c.step_timeout_s,
           "Watchdog: exit (code 1, with a message) when no optimizer step finishes for this many seconds, e.g. a "
           "collective waiting for a rank that died; 0 = off.",
           Range::at_least(0));
  s.number("stop_grace_s", &c.stop_grace_s,
           "After a stop signal, exit (code 1, with a message) when the current step has not finished and "
           "checkpointed within this many seconds; 0 = wait for it.",
           Range::at_least(0));
  s.flag("share_prefixes", &c.share_prefixes,
         "Run the tokens an example's sequences (reference, rollouts) have in common, its prompt, once in the "
         "training forward, each sequence's own tokens attending to them, when that costs less than padded rows "
         "(not for longrope models); the gradients are the same up to float rounding. false: every sequence whole.");
}

void describe(Schema& s, OptimizerSection& c) {
  s.number("lr", &c.lr, "Peak learning rate (AdamW).", Range::positive());
  s.number("beta1", &c.beta1, "AdamW β1.", Range::unit_open_high());
  s.number("beta2", &c.beta2, "AdamW β2.", Range::unit_open_high());
  s.number("eps", &c.eps, "AdamW ε.", Range::positive());
  s.number("weight_decay", &c.weight_decay, "Decoupled weight decay (not on norms and biases).", Range::at_least(0));
  s.number("grad_clip", &c.grad_clip, "Clip the global gradient L2 norm; 0 = off.", Range::at_least(0));
  s.flag("fused", &c.fused,
         "Step with ATen's fused AdamW kernel (one pass per parameter); false: LibTorch's AdamW, six element-wise "
         "ops per parameter. Same math, last-bit rounding differs.");
}

void describe(Schema& s, ScheduleSection& c) {
  s.choice("kind", &c.kind, {{"constant", Schedule::kConstant}, {"linear", Schedule::kLinear}, {"cosine", Schedule::kCosine}},
           "Learning-rate schedule after warmup.");
  s.integer("warmup_steps", &c.warmup_steps, "Linear warmup from 0.", Range::at_least(0));
  s.number("min_lr_ratio", &c.min_lr_ratio, "Final lr as a share of the peak (linear, cosine).", Range::unit());
}

void describe(Schema& s, PrecisionSection& c) {
  s.choice("compute", &c.compute, kDTypes, "Activations and matmuls; auto = bfloat16 on GPUs and on CPUs with native bf16 (AVX512-BF16/AMX), else float32.");
  s.choice("master", &c.master, kDTypes, "Master weights and optimizer state.");
}

void describe(Schema& s, CheckpointSection& c) {
  s.integer("every_steps", &c.every_steps, "Save every N optimizer steps; 0 = only at the end.", Range::at_least(0));
  s.integer("keep_last", &c.keep_last, "Complete checkpoints kept.", Range::between(1, 1 << 20));
  s.text("resume", &c.resume, "auto (newest complete checkpoint), never, or a checkpoint path.");
}

void describe(Schema& s, DistributedSection& c) {
  s.choice("backend", &c.backend, {{"auto", Backend::kAuto}, {"gloo", Backend::kGloo}, {"nccl", Backend::kNccl}},
           "c10d process group: auto (nccl on CUDA, gloo on CPU), gloo or nccl. Ranks come from the launcher.");
  s.number("timeout_s", &c.timeout_s, "Seconds a rendezvous or collective may wait for the other ranks.", Range::positive());
  s.number("bucket_mb", &c.bucket_mb, "Gradients are summed over ranks in flat buckets of this many MiB.", Range::positive());
  s.choice("sharding", &c.sharding,
           {{"none", Sharding::kNone}, {"optimizer", Sharding::kOptimizer}, {"gradients", Sharding::kGradients},
            {"full", Sharding::kFull}},
           "What each of N ranks keeps only 1/N of: none; optimizer (AdamW moments and fp32 master weights, ZeRO-1); "
           "gradients (those and the gradients, reduce-scattered bucket by bucket during backward, ZeRO-2); full (those "
           "and the weights, each decoder layer gathered before its forward and its recomputation in backward, "
           "ZeRO-3; turns on activation checkpointing; gaft's rollouts gather the whole model once per micro-batch). "
           "Needs train.grad_accum_steps to be a multiple of the ranks (docs/cluster.md).");
}

void describe(Schema& s, LoggingSection& c) {
  s.choice("level", &c.level,
           {{"trace", std::string("trace")}, {"debug", std::string("debug")}, {"info", std::string("info")},
            {"warn", std::string("warn")}, {"error", std::string("error")}},
           "Log level of the human-readable lines.");
  s.integer("every_steps", &c.every_steps, "Log and write metrics every N steps.", Range::at_least(1));
  s.text("metrics_file", &c.metrics_file, "JSON lines of metrics, relative to run.output_dir.");
  s.choice("progress", &c.progress, {{"auto", Progress::kAuto}, {"on", Progress::kOn}, {"off", Progress::kOff}},
           "Live progress line; auto: only when stderr is a terminal.");
  s.flag("tensorboard", &c.tensorboard,
         "Also write every number of the metrics as TensorBoard scalars to run.output_dir/tensorboard "
         "(tensorboard --logdir that folder).");
}

void describe(Schema& s, EvalSection& c) {
  s.integer("every_steps", &c.every_steps, "Evaluate during training every N steps; 0 = off.", Range::at_least(0));
  s.integer("batch_size", &c.batch_size, "Prompts per generation batch.", Range::between(1, 1 << 16));
  s.integer("max_new_tokens", &c.max_new_tokens, "Longest generated response.", Range::between(1, 1 << 20));
  s.number("temperature", &c.temperature, "Sampling temperature; 0 is greedy.", Range::at_least(0));
  s.texts("suites", &c.suites, "Evaluation suite files (JSONL).");
  s.integer("bootstrap_samples", &c.bootstrap_samples, "Resamples for the 95% intervals.", Range::between(1, 1 << 24));
}

void describe(Schema& s, RunConfig& c) {
  s.section("run", &c.run, describe, "The run: name, output directory, seed, device.");
  s.section("model", &c.model, describe, "The policy being fine-tuned.", true);
  s.section("lora", &c.lora, describe, "Low-rank adapters in PEFT's format (docs/lora.md).");
  s.section("tokenizer", &c.tokenizer, describe, "The policy's tokenizer and chat format.");
  s.section("scorer", &c.scorer, describe, "The frozen alignment scorer S.");
  s.section("data", &c.data, describe, "Training and held-out data.", true);
  s.section("objective", &c.objective, describe, "The loss.", true);
  s.section("rollout", &c.rollout, describe, "Sampling of the K rollouts per prompt.");
  s.section("recovery", &c.recovery, describe, "Recovery rollouts from misaligned prefixes (docs/method.md).");
  s.section("gate", &c.gate, describe, "The per-example gate g_i.");
  s.section("abstention", &c.abstention, describe, "Abstention targets for fully misaligned inputs.");
  s.section("train", &c.train, describe, "Batch sizes and run length.");
  s.section("optimizer", &c.optimizer, describe, "AdamW and gradient clipping.");
  s.section("schedule", &c.schedule, describe, "Learning-rate schedule.");
  s.section("precision", &c.precision, describe, "Numeric precision.");
  s.section("checkpoint", &c.checkpoint, describe, "Checkpointing and resumption.");
  s.section("distributed", &c.distributed, describe, "Data parallelism over processes (docs/cluster.md).");
  s.section("logging", &c.logging, describe, "Log lines, metrics file, progress.");
  s.section("eval", &c.eval, describe, "Generation-based evaluation.");
}

// ---- the table of `gaft eval` configs ------------------------------------------------------------------

const std::vector<std::pair<std::string, ChatTemplate>> kChatTemplates = {
    {"auto", ChatTemplate::kAuto},     {"none", ChatTemplate::kNone},     {"plain", ChatTemplate::kPlain},
    {"llama2", ChatTemplate::kLlama2}, {"llama3", ChatTemplate::kLlama3}, {"chatml", ChatTemplate::kChatml},
    {"mistral", ChatTemplate::kMistral}, {"gemma", ChatTemplate::kGemma}, {"granite", ChatTemplate::kGranite},
    {"phi3", ChatTemplate::kPhi3},       {"phi4", ChatTemplate::kPhi4},     {"phi4_mini", ChatTemplate::kPhi4Mini}};

void describe(Schema& s, EvalModel& c) {
  s.text("name", &c.name, "Column title in the report; empty: the folder's name.");
  s.text("path", &c.path, "Hugging Face model folder, or a cached hub name org/name[@revision].", true);
  s.text("tokenizer", &c.tokenizer, "Tokenizer folder or file; empty means path.");
  s.choice("chat_template", &c.chat_template, kChatTemplates, "Chat format of the prompts; auto: from tokenizer_config.json.");
  s.choice("dtype", &c.dtype, kDTypes, "Weights as loaded; auto: as stored, but float32 on CPUs without native bf16.");
}

void describe(Schema& s, EvalSuite& c) {
  s.text("name", &c.name, "Suite name in the report; empty: the file's stem.");
  s.text("path", &c.path, "The suite file.", true);
  s.choice("format", &c.format,
           {{"gaft", SuiteFormat::kGaft}, {"advbench", SuiteFormat::kAdvBench}, {"harmbench", SuiteFormat::kHarmBench},
            {"jailbreakbench", SuiteFormat::kJailbreakBench}, {"xstest", SuiteFormat::kXsTest},
            {"truthfulqa", SuiteFormat::kTruthfulQa}, {"halueval", SuiteFormat::kHaluEval}, {"alpaca", SuiteFormat::kAlpaca}},
           "File format: gaft JSONL or a public suite's published file (see include/gaft/eval_suite.h).");
  s.choice("kind", &c.kind,
           {{"auto", ItemKind::kAuto}, {"harmful", ItemKind::kHarmful}, {"benign", ItemKind::kBenign}, {"qa", ItemKind::kQa},
            {"unanswerable", ItemKind::kUnanswerable}, {"task", ItemKind::kTask}},
           "Kind of every item; auto: from each record (gaft) or the format.");
  s.integer("limit", &c.limit, "Evaluate a seeded sample of this many items; 0 = all.", Range::at_least(0));
}

void describe(Schema& s, EvalAttack& c) {
  s.text("name", &c.name, "Column title of the attack.", true);
  s.choice("kind", &c.kind, {{"wrapper", AttackKind::kWrapper}, {"prefill", AttackKind::kPrefill}},
           "wrapper: the harmful prompt embedded in a template; prefill: a compliant start forced into the response.");
  s.text("prompt_template", &c.prompt_template, "wrapper: text containing {prompt}.");
  s.integer("prefill_tokens", &c.prefill_tokens, "prefill: tokens of the item's target forced before generation.",
            Range::at_least(1));
  s.text("prefill_text", &c.prefill_text, "prefill: target of items that have none.");
}

void describe(Schema& s, GenerationSection& c) {
  s.integer("batch_size", &c.batch_size, "Prompts per generation batch.", Range::between(1, 1 << 16));
  s.integer("max_new_tokens", &c.max_new_tokens, "Longest response.", Range::between(1, 1 << 20));
  s.number("temperature", &c.temperature, "Sampling temperature; 0 is greedy.", Range::at_least(0));
  s.number("top_p", &c.top_p, "Nucleus sampling mass.", Range::unit_open_low());
  s.integer("top_k", &c.top_k, "Keep the k most likely tokens; 0 = off.", Range::at_least(0));
  s.integer("max_prompt_tokens", &c.max_prompt_tokens,
            "Longer prompts are cut from the front of the user's text; 0: the model's context less max_new_tokens.",
            Range::at_least(0));
  s.texts("stop", &c.stop, "Stop strings besides the end-of-turn token; the response is cut before one.");
}

void describe(Schema& s, RefusalSection& c) {
  s.texts("phrases", &c.phrases, "Phrases that mark a refusal (case-insensitive); empty: the default list below.");
  s.texts("compliance_phrases", &c.compliance_phrases,
          "Phrases that, after a refusal phrase, make it a partial refusal (refuse, then comply); empty: the default list below.");
  s.integer("opening_sentences", &c.opening_sentences,
            "Refusal phrases count only in this many first sentences of a response; 0: anywhere.", Range::at_least(0));
  s.texts("abstention_phrases", &c.abstention_phrases, "Phrases that mark an abstention; empty: the default list below.");
}

void describe(Schema& s, JudgesSection& c) {
  s.texts("harm", &c.harm,
          "Judges of harm on harmful items, side by side, the first gives the headline: rule (the item's "
          "unsafe_markers in the response) or a scorer head; empty: rule when items carry markers, then every "
          "head of category safety.");
  s.texts("hallucination", &c.hallucination,
          "Judges of hallucination on qa and unanswerable items: rule (answers and abstention phrases) or a "
          "scorer head; empty: rule.");
  s.texts("refusal", &c.refusal,
          "Judges of refusal on harmful and benign items: rule (refusal phrases) or a scorer head whose score is "
          "P(refusal); empty: rule.");
  s.number("threshold", &c.threshold,
           "A head's score below it marks a response harmful or hallucinated; a refusal head's score at or above "
           "it marks a refusal.",
           Range::unit());
}

void describe(Schema& s, MetricsSection& c) {
  s.integer("bootstrap_samples", &c.bootstrap_samples, "Resamples for the 95% intervals.", Range::between(1, 1 << 24));
  s.number("qa_rouge_floor", &c.qa_rouge_floor,
           "qa items with incorrect answers: a response without a correct answer in it is correct when its "
           "content-word ROUGE-L with a correct answer is at least this and above that with every incorrect one.",
           Range::unit());
  s.flag("multiple_choice", &c.multiple_choice,
         "qa items with incorrect answers: MC1 and MC2 from the log-likelihood of every listed answer.");
}

void describe(Schema& s, EvalResponses& c) {
  s.text("path", &c.path, "File of responses made elsewhere.", true);
  s.choice("format", &c.format,
           {{"auto", ResponsesFormat::kAuto}, {"gaft", ResponsesFormat::kGaft}, {"xstest", ResponsesFormat::kXsTest},
            {"halueval_general", ResponsesFormat::kHaluEvalGeneral}},
           "gaft: JSONL as responses.jsonl (model, suite, id, response); xstest: XSTest's completions CSV; "
           "halueval_general: HaluEval's general_data.json; auto: from the content.");
  s.text("model", &c.model,
         "Model name of the responses; empty: as the records say (gaft), the file's stem (xstest), chatgpt "
         "(halueval_general).");
  s.text("suite", &c.suite,
         "xstest, halueval_general: name of the suite the file makes; empty: xstest_completions, halueval_general.");
}

void describe(Schema& s, EvalConfig& c) {
  s.section("run", &c.run, describe, "Name, output directory (report.json, report.md), seed, device.");
  s.section_list("models", &c.models, describe, "The models compared, one report column each (--model DIR replaces them).");
  s.section("scorer", &c.scorer, describe, "Scorer heads that judges (below) may name.");
  s.section("generation", &c.generation, describe, "Batched KV-cache generation of the responses.");
  s.section_list("suites", &c.suites, describe, "The evaluation suites.");
  s.section_list("attacks", &c.attacks, describe, "Attacks applied to harmful items; each is its own column.");
  s.section("refusal", &c.refusal, describe, "The phrases by which the rule recognises refusals and abstentions.");
  s.section("judges", &c.judges, describe, "Who judges harm, hallucination and refusal (docs/eval.md).");
  s.section("metrics", &c.metrics, describe, "Confidence intervals, qa grading.");
  s.section_list("responses", &c.responses, describe,
                 "Responses made elsewhere, judged instead of generated (--responses FILE adds one).");
}

void validate(const EvalConfig& c, Diagnostics& diag) {
  if (c.models.empty() && c.responses.empty())
    diag.add("models", "expected at least one model (a models list, or --model DIR), or responses to judge (--responses FILE)");
  if (c.suites.empty() && c.responses.empty()) diag.add("suites", "expected at least one suite");
  std::set<std::string> model_names, suite_names;
  for (size_t i = 0; i < c.models.size(); ++i)
    if (!c.models[i].name.empty() && !model_names.insert(c.models[i].name).second)
      diag.add("models." + std::to_string(i) + ".name", "duplicate model name '" + c.models[i].name + "'");
  for (size_t i = 0; i < c.suites.size(); ++i)
    if (!c.suites[i].name.empty() && !suite_names.insert(c.suites[i].name).second)
      diag.add("suites." + std::to_string(i) + ".name", "duplicate suite name '" + c.suites[i].name + "'");
  std::set<std::string> names;
  for (size_t i = 0; i < c.attacks.size(); ++i) {
    const EvalAttack& a = c.attacks[i];
    const std::string at = "attacks." + std::to_string(i);
    if (a.name == "plain" || !names.insert(a.name).second)
      diag.add(at + ".name", "attack names must be unique and not 'plain', got '" + a.name + "'");
    if (a.kind == AttackKind::kWrapper && a.prompt_template.find("{prompt}") == std::string::npos)
      diag.add(at + ".prompt_template", "a wrapper attack needs a prompt_template containing {prompt}");
    if (a.kind == AttackKind::kPrefill && !a.prompt_template.empty())
      diag.add(at + ".prompt_template", "prompt_template only applies to kind 'wrapper'");
    if (a.kind == AttackKind::kPrefill && a.prefill_text.empty())
      diag.add(at + ".prefill_text", "a prefill attack needs a prefill_text for items without a target");
  }
  std::set<std::string> heads;
  for (const ScorerHead& h : c.scorer.heads) heads.insert(h.name);
  for (const auto& [key, list] : std::vector<std::pair<std::string, const std::vector<std::string>*>>{
           {"judges.harm", &c.judges.harm}, {"judges.hallucination", &c.judges.hallucination},
           {"judges.refusal", &c.judges.refusal}}) {
    std::set<std::string> seen;
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string& name = (*list)[i];
      const std::string at = key + "." + std::to_string(i);
      if (name != "rule" && !heads.count(name))
        diag.add(at, "expected 'rule' or the name of a scorer head, got '" + name + "'");
      if (!seen.insert(name).second) diag.add(at, "judge '" + name + "' is named twice");
    }
  }
  std::set<std::string> head_names;
  for (size_t i = 0; i < c.scorer.heads.size(); ++i) {
    const ScorerHead& h = c.scorer.heads[i];
    const std::string at = "scorer.heads." + std::to_string(i);
    if (!head_names.insert(h.name).second) diag.add(at + ".name", "duplicate scorer head name '" + h.name + "'");
    if (h.name == "rule") diag.add(at + ".name", "'rule' names the rule judge (judges.*); give the head another name");
    if (h.kind == ScorerKind::kLmJudge && h.prompt_template.find("{response}") == std::string::npos)
      diag.add(at + ".prompt_template", "an lm_judge head needs a prompt_template containing {response}");
  }
}

// ---- overrides ---------------------------------------------------------------------------------------

bool is_index(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Applies "a.b.c=value" to the YAML tree; `value` is parsed as YAML ("1e-4", "[a, b]", "true").
void apply_override(YAML::Node& root, const std::string& text, size_t index, Diagnostics& diag) {
  const std::string label = "override #" + std::to_string(index + 1);
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    diag.add_at("override '" + text + "'", label, "expected key.sub=value, got no '='");
    return;
  }
  const std::string key = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  if (key.empty() || key.back() == '.' ||
      std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    diag.add_at("override '" + text + "'", key.empty() ? label : key,
                "expected key.sub=value with non-empty key parts, got '" + key + "'");
    return;
  }
  YAML::Node parsed;
  try {
    parsed = value.empty() ? YAML::Node(std::string()) : YAML::Load(value);
  } catch (const YAML::Exception& e) {
    diag.add_at("override '" + text + "'", key, "value is not valid YAML: " + e.msg);
    return;
  }
  // Walk down a copy, creating mappings as needed; numeric parts index existing lists. The copy
  // replaces the tree only when the whole path was valid, so a bad override changes nothing.
  const std::string where = "override '" + text + "'";
  YAML::Node trial = YAML::Clone(root);
  YAML::Node cur = trial;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const bool last = i + 1 == parts.size();
    if (cur.IsSequence()) {
      if (!is_index(part) || std::stoul(part) >= cur.size()) {
        diag.add_at(where, key, "'" + part + "' is not an index of the list, which has " +
                                    std::to_string(cur.size()) + " entries");
        return;
      }
      if (last) {
        cur[std::stoul(part)] = parsed;
      } else {
        cur.reset(cur[std::stoul(part)]);
      }
      continue;
    }
    if (!cur.IsMap() && !cur.IsNull()) {
      diag.add_at(where, key, "cannot set '" + part + "' inside a value that is not a section");
      return;
    }
    if (is_index(part)) {
      diag.add_at(where, key, "index " + part + " given for something that is not a list");
      return;
    }
    if (last) {
      cur[part] = parsed;
    } else {
      if (!cur[part]) cur[part] = YAML::Node(YAML::NodeType::Map);
      YAML::Node next = cur[part];
      cur.reset(next);
    }
  }
  root.reset(trial);
  diag.record_override(key, text);
}

// ---- cross-field rules --------------------------------------------------------------------------------

std::string number_text(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

void validate(const RunConfig& c, Diagnostics& diag) {
  const bool gaft = c.objective.kind == Objective::kGaft;
  const bool scored = gaft || c.objective.kind == Objective::kFilter;  // objectives that read the scorer
  if (scored && c.scorer.heads.empty())
    diag.add("scorer.heads", "objective.kind '" + to_string(c.objective.kind) +
                                 "' needs at least one scorer head, got none");
  if (!gaft && c.objective.kl == KlMode::kReward)
    diag.add("objective.kl", "kl 'reward' shapes rollout rewards and only applies to objective.kind 'gaft'; "
                             "sft and filter take kl: loss");
  if (c.objective.kind == Objective::kClassifier && c.objective.kl != KlMode::kNone)
    diag.add("objective.kl", "the classifier objective has no KL term");
  if (c.objective.kind == Objective::kClassifier && !c.data.mix.empty())
    diag.add("data.mix", "mixing applies to sft, filter and gaft, not to the classifier objective");
  if (gaft && c.objective.advantage == AdvantageMode::kRloo && c.rollout.num_samples < 2)
    diag.add("rollout.num_samples", "the rloo advantage needs at least 2 samples per prompt, got " +
                                        std::to_string(c.rollout.num_samples));
  if (c.recovery.share > 0) {
    const int64_t K = c.rollout.num_samples, R = recovery_samples(c.recovery.share, K);
    if (!gaft)
      diag.add("recovery.share", "recovery rollouts apply to objective.kind 'gaft' only; set share: 0");
    else if (R < 2 || K - R < 2)
      diag.add("recovery.share", "share " + number_text(c.recovery.share) + " of rollout.num_samples " +
                                     std::to_string(K) + " gives " + std::to_string(R) + " recovery and " +
                                     std::to_string(K - R) + " plain rollouts per prompt; each group needs at least 2 "
                                     "for an advantage (e.g. num_samples 4, share 0.5)");
    if (c.recovery.min_prefix_tokens > c.recovery.max_prefix_tokens)
      diag.add("recovery.min_prefix_tokens", "min_prefix_tokens " + std::to_string(c.recovery.min_prefix_tokens) +
                                                 " is above max_prefix_tokens " +
                                                 std::to_string(c.recovery.max_prefix_tokens));
    if (c.recovery.target == RecoveryTarget::kAbstention && !c.abstention.enabled)
      diag.add("recovery.target", "target 'abstention' needs abstention.enabled (its templates)");
  }
  if (gaft && c.rollout.temperature == 0.0 && c.rollout.num_samples > 1)
    diag.add("rollout.temperature", "temperature 0 makes the K greedy samples identical, so every advantage is 0; "
                                    "expected a temperature > 0");
  if (c.gate.mode == GateMode::kLearned && !gaft)
    diag.add("gate.mode", "gate mode 'learned' only applies to objective.kind 'gaft'");
  if ((c.objective.kl == KlMode::kNone) != (c.objective.kl_beta == 0.0))
    diag.add("objective.kl_beta", c.objective.kl == KlMode::kNone
                                      ? "kl_beta is set but objective.kl is 'none'; set objective.kl to reward or loss"
                                      : "objective.kl needs kl_beta > 0, got 0");
  if (c.train.max_steps == 0 && c.train.epochs == 0)
    diag.add("train.max_steps", "train.max_steps and train.epochs are both 0: the run would do nothing");
  if (c.train.max_steps > 0 && c.schedule.warmup_steps > c.train.max_steps)
    diag.add("schedule.warmup_steps", "warmup of " + std::to_string(c.schedule.warmup_steps) +
                                          " steps is longer than train.max_steps " + std::to_string(c.train.max_steps));
  if (c.run.device == Device::kCpu && c.precision.compute == DType::kFloat16)
    diag.add("precision.compute", "float16 compute is not supported on cpu; expected bfloat16 or float32");
  if (c.precision.master == DType::kAuto || c.precision.master == DType::kFloat16)
    diag.add("precision.master", "master weights must be float32 or bfloat16");
  if (c.lora.enabled) {
    if (c.objective.kind == Objective::kClassifier)
      diag.add("lora.enabled", "LoRA trains causal LMs (sft, gaft); the classifier objective's new score head would "
                               "have to be trained in full");
    if (c.lora.dropout >= 1.0) diag.add("lora.dropout", "expected a probability below 1");
    if (c.lora.targets.empty()) diag.add("lora.targets", "expected at least one projection");
    static const std::set<std::string> known = {"q_proj",  "k_proj",    "v_proj",   "o_proj",
                                                "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj"};
    for (const std::string& t : c.lora.targets)
      if (!known.count(t))
        diag.add("lora.targets", "unknown projection '" + t + "'; expected q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                 "up_proj, down_proj, or Phi-3's fused qkv_proj, gate_up_proj");
  } else if (!c.lora.adapter.empty()) {
    diag.add("lora.adapter", "an adapter is set but lora.enabled is false");
  }
  if (c.data.max_prompt_tokens + c.data.max_response_tokens > c.tokenizer.max_length)
    diag.add("data.max_response_tokens",
             "data.max_prompt_tokens + data.max_response_tokens = " +
                 std::to_string(c.data.max_prompt_tokens + c.data.max_response_tokens) +
                 " exceeds tokenizer.max_length " + std::to_string(c.tokenizer.max_length));

  std::set<std::string> names;
  for (size_t i = 0; i < c.scorer.heads.size(); ++i) {
    const ScorerHead& h = c.scorer.heads[i];
    const std::string at = "scorer.heads." + std::to_string(i);
    if (!h.name.empty() && !names.insert(h.name).second)
      diag.add(at + ".name", "duplicate scorer head name '" + h.name + "'");
    if (h.kind == ScorerKind::kLmJudge) {
      if (h.prompt_template.find("{response}") == std::string::npos)
        diag.add(at + ".prompt_template", "an lm_judge head needs a prompt_template containing {response}");
      if (h.safe_token.empty() || h.safe_token == h.unsafe_token)
        diag.add(at + ".safe_token", "safe_token and unsafe_token must be two different non-empty tokens");
    } else if (!h.prompt_template.empty()) {
      diag.add(at + ".prompt_template", "prompt_template only applies to kind 'lm_judge'");
    }
    if (scored && c.abstention.enabled && !c.abstention.templates.count(h.category))
      diag.add(at + ".category", "no abstention template for category '" + h.category +
                                     "'; expected a key abstention.templates." + h.category);
  }
}

// Hub names (`org/name[@revision]`) in model paths become the cached snapshot folders they name (hub_cache.h);
// a name that is not in the cache is an issue of its key.
void resolve_hub_path(std::string& path, const std::string& key, Diagnostics& diag) {
  try {
    path = resolve_model_path(path);
  } catch (const DataError& e) {
    diag.add(key, std::string(e.what()) + "; " + e.hint());
  }
}

void resolve_hub_paths(ScorerSection& s, Diagnostics& diag) {
  for (size_t i = 0; i < s.heads.size(); ++i)
    resolve_hub_path(s.heads[i].path, "scorer.heads." + std::to_string(i) + ".path", diag);
}

void resolve_hub_paths(RunConfig& c, Diagnostics& diag) {
  resolve_hub_path(c.model.path, "model.path", diag);
  if (!c.tokenizer.path.empty()) resolve_hub_path(c.tokenizer.path, "tokenizer.path", diag);
  if (!c.lora.adapter.empty()) resolve_hub_path(c.lora.adapter, "lora.adapter", diag);
  resolve_hub_paths(c.scorer, diag);
}

void resolve_hub_paths(EvalConfig& c, Diagnostics& diag) {
  resolve_hub_paths(c.scorer, diag);
  for (size_t i = 0; i < c.models.size(); ++i) {
    resolve_hub_path(c.models[i].path, "models." + std::to_string(i) + ".path", diag);
    if (!c.models[i].tokenizer.empty()) resolve_hub_path(c.models[i].tokenizer, "models." + std::to_string(i) + ".tokenizer", diag);
  }
}

template <class Config>
Config load(const YAML::Node& parsed, Diagnostics& diag, const std::vector<std::string>& overrides, bool hub_lookup,
            const std::function<void(Config&)>& adjust = {}) {
  YAML::Node root = parsed.IsNull() ? YAML::Node(YAML::NodeType::Map) : parsed;
  for (size_t i = 0; i < overrides.size(); ++i) apply_override(root, overrides[i], i, diag);
  Config config;
  Schema schema;
  describe(schema, config);
  schema.load(root, "", diag);
  if (adjust) adjust(config);
  if (hub_lookup && diag.issues().empty()) resolve_hub_paths(config, diag);
  if (diag.issues().empty()) validate(config, diag);
  if (!diag.issues().empty()) {
    // A top-level key that belongs to a section ("lr" for "optimizer.lr") deserves a precise hint.
    std::vector<ConfigIssue> issues = diag.issues();
    const std::vector<std::string> paths = all_key_paths(schema);
    for (ConfigIssue& issue : issues) {
      if (issue.message.rfind("unknown key", 0) != 0 || issue.key.find('.') != std::string::npos) continue;
      for (const std::string& p : paths)
        if (p.size() > issue.key.size() && p.compare(p.size() - issue.key.size() - 1, std::string::npos, "." + issue.key) == 0) {
          issue.message += " (did you mean '" + p + "'?)";
          break;
        }
    }
    throw ConfigError(std::move(issues));
  }
  return config;
}

YAML::Node parse_yaml(const std::string& yaml, const std::string& name) {
  try {
    return YAML::Load(yaml);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's own guard; its message says only "bad file"
    throw ConfigError({{name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1),
                        "(syntax)", "YAML nested more than " + std::to_string(e.depth() - 1) + " levels deep"}});
  } catch (const YAML::ParserException& e) {
    throw ConfigError({{name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1),
                        "(syntax)", "not valid YAML: " + e.msg}});
  }
}

std::string read_config_file(const std::string& path) {
  try {
    return read_text_file(path, "check the path given to --config", kMaxConfigBytes);
  } catch (const DataError& e) {
    throw UsageError(std::string(e.what()), e.hint());
  }
}

}  // namespace
}  // namespace config

int64_t recovery_samples(double share, int64_t num_samples) {
  return share > 0 ? std::llround(share * static_cast<double>(num_samples)) : 0;
}

std::string to_string(Objective o) {
  for (const auto& [name, value] : config::kObjectives)
    if (value == o) return name;
  return "?";
}

std::string ConfigIssue::str() const { return where + ": " + key + ": " + message; }

namespace {
std::string join_issues(const std::vector<ConfigIssue>& issues) {
  std::string out = std::to_string(issues.size()) + (issues.size() == 1 ? " problem" : " problems") +
                    " in the configuration:";
  for (const auto& i : issues) out += "\n  " + i.str();
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : UsageError(join_issues(issues), "`gaft config docs` lists every key; configs/README.md documents them"),
      issues_(std::move(issues)) {}

RunConfig load_config_text(const std::string& yaml, const std::string& name,
                           const std::vector<std::string>& overrides) {
  config::Diagnostics diag(name);
  return config::load<RunConfig>(config::parse_yaml(yaml, name), diag, overrides, /*hub_lookup=*/false);
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Diagnostics diag(path);
  return config::load<RunConfig>(config::parse_yaml(config::read_config_file(path), path), diag, overrides,
                                 /*hub_lookup=*/true);
}

namespace config {
namespace {
EvalConfig load_eval(const std::string& yaml, const std::string& name, const std::vector<std::string>& overrides,
                     const std::vector<std::string>& models, const std::vector<std::string>& responses,
                     bool hub_lookup) {
  Diagnostics diag(name);
  return load<EvalConfig>(parse_yaml(yaml, name), diag, overrides, hub_lookup, [&](EvalConfig& c) {
    for (const std::string& r : responses) {
      EvalResponses spec;
      spec.path = r;
      c.responses.push_back(spec);
    }
    if (!models.empty()) {
      c.models.clear();
      for (const std::string& m : models) {
        // NAME=DIR names the column; a plain DIR is named after its folder.
        const size_t eq = m.find('=');
        const bool named = eq != std::string::npos && eq > 0 && m.find('/') > eq;
        EvalModel model;
        model.name = named ? m.substr(0, eq) : "";
        model.path = named ? m.substr(eq + 1) : m;
        c.models.push_back(model);
      }
    }
    // Default names: a model's folder name, or its last two path parts when two folders share a name
    // (runs/sft/model, runs/gaft/model -> sft/model, gaft/model); a suite's file stem.
    auto parts = [](const std::string& path, int n) {
      std::filesystem::path p = std::filesystem::path(path).lexically_normal();
      if (p.filename().empty()) p = p.parent_path();
      std::string out = p.filename().string();
      for (int i = 1; i < n && p.has_parent_path() && !p.parent_path().filename().empty(); ++i) {
        p = p.parent_path();
        out = p.filename().string() + "/" + out;
      }
      return out;
    };
    std::map<std::string, int> short_names;
    for (const EvalModel& m : c.models)
      if (m.name.empty()) ++short_names[parts(m.path, 1)];
    for (EvalModel& m : c.models)
      if (m.name.empty()) m.name = parts(m.path, short_names[parts(m.path, 1)] > 1 ? 2 : 1);
    for (EvalSuite& s : c.suites)
      if (s.name.empty()) s.name = std::filesystem::path(s.path).stem().string();
  });
}
}  // namespace
}  // namespace config

EvalConfig load_eval_config_text(const std::string& yaml, const std::string& name,
                                 const std::vector<std::string>& overrides, const std::vector<std::string>& models,
                                 const std::vector<std::string>& responses) {
  return config::load_eval(yaml, name, overrides, models, responses, /*hub_lookup=*/false);
}

EvalConfig load_eval_config(const std::string& path, const std::vector<std::string>& overrides,
                            const std::vector<std::string>& models, const std::vector<std::string>& responses) {
  return config::load_eval(config::read_config_file(path), path, overrides, models, responses, /*hub_lookup=*/true);
}

bool is_eval_config_text(const std::string& yaml) {
  try {
    const YAML::Node root = YAML::Load(yaml);
    return root.IsMap() && root["suites"];
  } catch (const YAML::Exception&) {
    return false;
  }
}

std::string eval_config_to_yaml(const EvalConfig& config) {
  EvalConfig copy = config;
  config::Schema schema;
  config::describe(schema, copy);
  YAML::Emitter out;
  out << schema.dump();
  return std::string(out.c_str()) + "\n";
}

std::string config_to_yaml(const RunConfig& config) {
  RunConfig copy = config;
  config::Schema schema;
  config::describe(schema, copy);
  YAML::Emitter out;
  out << schema.dump();
  return std::string(out.c_str()) + "\n";
}

void write_resolved_config(const RunConfig& config, const std::string& dir) {
  write_file_atomic(dir + "/config.yaml", "# resolved by gaft " GAFT_VERSION "\n" + config_to_yaml(config));
}

namespace {
std::string eval_reference_markdown() {
  EvalConfig defaults;
  config::Schema schema;
  config::describe(schema, defaults);
  auto quoted = [](const std::vector<std::string>& phrases) {
    std::string out;
    for (const std::string& p : phrases) out += (out.empty() ? "" : ", ") + ("\"" + p + "\"");
    return out;
  };
  return "\n# `gaft eval` configurations\n\n"
         "`gaft eval --config eval.yaml [section.key=value ...] [--model DIR ...]` reads a second table (a file with a\n"
         "top-level `suites` key is an eval config; `gaft config check` tells them apart). Suite formats and the record\n"
         "layout of gaft's own JSONL suites: include/gaft/eval_suite.h; metrics: docs/eval.md.\n\n"
         "Default refusal phrases (case-insensitive, at word edges, in the first `refusal.opening_sentences` "
         "sentences of the response; sources in docs/eval.md): " +
         quoted(eval::default_refusal_phrases()) +
         ".\n\nDefault compliance phrases (after a refusal phrase: a partial refusal): " +
         quoted(eval::default_compliance_phrases()) +
         ".\n\nDefault abstention phrases: " + quoted(eval::default_abstention_phrases()) + ".\n" +
         config::reference_markdown(schema);
}
}  // namespace

std::string config_reference_markdown() {
  RunConfig defaults;
  config::Schema schema;
  config::describe(schema, defaults);
  return "# Configuration reference\n\n"
         "Generated by `gaft config docs` from the table in src/config/config.cpp (a test keeps this file in\n"
         "sync). Every key is optional unless marked required. Any key can be overridden on the command line\n"
         "as `section.key=value` (the value is read as YAML, e.g. `optimizer.lr=2e-5`,\n"
         "`rollout.stop=[\"###\"]`, `scorer.heads.0.path=/models/guard`).\n" +
         config::reference_markdown(schema) + eval_reference_markdown();
}

}  // namespace gaft
