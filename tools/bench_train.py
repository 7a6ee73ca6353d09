#!/usr/bin/env python3
"""Time per training step of `gaft train` (objective gaft) against TRL's RLOOTrainer on the same machine.

What it does, in one run:
  1. builds a random Llama policy (~20M parameters) and a random LlamaForSequenceClassification reward model of
     the same shape on a Llama SentencePiece tokenizer (read by gaft::Tokenizer and by transformers'
     LlamaTokenizer), saved with save_pretrained(safe_serialization=True) into a temp dir. --preset v32k (default):
     ../shared/tokenizers/llama2 (vocab 32000), the "20m" shape of tools/bench_model.py; --preset v512:
     ../shared/models/stories260K's tokenizer (vocab 512), hidden 512, 6 layers;
  2. writes a prompt/response JSONL (64 lines) and the same prompts as a `datasets.Dataset` for TRL;
  3. runs `gaft train` (objective gaft, K rollouts per prompt, B prompts per step) and reads step_s and the
     rollout / score / forward+backward shares of every step from output_dir/metrics.jsonl;
  4. runs trl.RLOOTrainer for the same number of steps in this process (same model, K, B prompts, completion
     length, temperature, lr, grad clip, fp32, CPU, same thread count, no KL term (beta 0), gradient checkpointing
     off as in gaft) and times each step and its phases by wrapping the trainer's methods (see PHASES below);
  5. prints one markdown table: mean seconds per step after the warm-up steps, the split, and the speed-up.

The reward model has num_labels 2 in both: gaft's classifier head reads softmax(logits)[aligned_label], TRL reads
logits[:, 0] of any sequence classifier (the score head is [2, H] instead of [1, H]: no measurable cost), so one
folder serves both.

PHASES (what each column holds):
  gaft (from metrics.jsonl): rollout = sample_rollouts (K samples per prompt, KV-cached, no grad); score = the
    scorer on the B reference responses and the B*K rollouts; fwd+bwd = compute_loss + backward on the B reference
    sequences (SFT term) and the B*K rollouts (policy-gradient term); optim+other = step_s minus those (gate,
    batching, grad clip, AdamW step, bookkeeping).
  TRL (wrapped methods): rollout = RLOOTrainer._generate (prompt tokenisation, transformers generate, decode);
    score = RLOOTrainer._calculate_rewards (reward-model tokenisation and forward); old-logp fwd = the no-grad
    forward that RLOOTrainer always runs to get the old log-probabilities (gaft has no such pass); fwd+bwd =
    training_step minus _prepare_inputs (compute_loss + accelerator.backward); optim+other = the time from
    on_step_begin to on_step_end minus those (advantages, logging metrics inside the step, grad clip, AdamW step,
    lr scheduler, zero_grad).

With --objective sft it times `gaft train` (objective sft) against the loop a transformers user writes instead
(LlamaForCausalLM(labels=...), backward, clip_grad_norm_, torch.optim.AdamW, zero_grad): --sft-batch sequences of
~--sft-seq tokens per step, the same model, lr, grad clip and threads.

Run (2-3 minutes per round on 2 CPU cores; --rounds 3 alternates gaft, peer, gaft, peer, gaft, peer; the table
gives the speed-up of each round and their median and range):
  ./scripts/setup_tools.sh   # once: the pinned peers of tools/requirements.txt into gaft's torch venv
  $GAFT_VENV/bin/python tools/bench_train.py --gaft build/gaft --threads 1 --rounds 3
  $GAFT_VENV/bin/python tools/bench_train.py --gaft build/gaft --threads 1 --rounds 3 --preset v512
  $GAFT_VENV/bin/python tools/bench_train.py --gaft build/gaft --threads 1 --rounds 3 --objective sft
($GAFT_VENV: ~/.cache/gaft/torch-<version>, scripts/env.sh.) Besides wall time it reports CPU seconds per step
(user + system of the process, all threads: /proc/<pid>/stat for gaft, time.process_time() for the peer), which
other load on the machine disturbs less.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
PRESETS = {
    # The "20m" shape of tools/bench_model.py: embeddings 8.2M + untied lm_head 8.2M + 8 layers x 0.79M = 22.7M.
    "v32k": dict(about="Llama-2 tokenizer (vocab 32000), hidden 256, 8 layers, 22.7M",
                 tokenizer=os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model"),
                 hidden=256, intermediate=768, layers=8, heads=8, kv_heads=4),
    # 6 layers x 3.15M + embeddings and lm_head 2 x 0.26M = 19.5M.
    "v512": dict(about="stories260K tokenizer (vocab 512), hidden 512, 6 layers, 19.5M",
                 tokenizer=os.path.join(SHARED, "models", "stories260K", "hf", "tokenizer.model"),
                 hidden=512, intermediate=1376, layers=6, heads=8, kv_heads=8),
}

SUBJECTS = ["Lily", "Tom", "The little dog", "A big bird", "The old man", "Sue", "The cat", "Ben and Mia"]
ACTIONS = ["went to the park", "found a red ball", "wanted to play", "saw a big tree", "was very hungry",
           "lost a toy", "made a new friend", "looked at the sky"]
ENDINGS = ["and smiled.", "and they were happy.", "but it started to rain.", "so she ran home.",
           "and he laughed.", "and they played all day.", "and it was fun.", "and went to sleep."]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gaft", default=os.path.join(ROOT, "build", "gaft"), help="gaft binary")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per trainer")
    p.add_argument("--warmup", type=int, default=1, help="first steps of each run left out of the means")
    p.add_argument("--rounds", type=int, default=1, help="runs of each trainer, alternating gaft and TRL")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op CPU threads, both sides (1: on a shared, loaded CPU, 2+ threads mostly time "
                        "OpenMP barrier waits)")
    p.add_argument("--batch", type=int, default=8, help="prompts per step (B)")
    p.add_argument("--k", type=int, default=4, help="rollouts per prompt (K)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--preset", choices=sorted(PRESETS), default="v32k",
                   help="policy shape and tokenizer (each also settable below): " +
                        "; ".join(f"{k}: {v['about']}" for k, v in sorted(PRESETS.items())))
    p.add_argument("--hidden", type=int)
    p.add_argument("--intermediate", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", type=int)
    p.add_argument("--reward-layers", type=int, help="default: --layers")
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute layers in backward, both sides")
    p.add_argument("--tokenizer", help="a Llama SentencePiece tokenizer.model, or a folder holding one; sets the vocab")
    p.add_argument("--objective", choices=["gaft", "sft"], default="gaft",
                   help="gaft: gaft train (objective gaft) against TRL's RLOOTrainer; sft: gaft train (objective sft) "
                        "against a transformers + torch.optim.AdamW loop (forward with labels, backward, clip, step)")
    p.add_argument("--sft-batch", type=int, default=8, help="sft: sequences per step")
    p.add_argument("--sft-seq", type=int, default=256, help="sft: tokens per sequence (prompt + response)")
    p.add_argument("--no-share-prefixes", action="store_true",
                   help="gaft: train.share_prefixes false (every sequence whole in the training forward, as before "
                        "2026-12-03), to measure what sharing the prompt gives")
    p.add_argument("--only", choices=["gaft", "trl"], help="run one side only (trl: the peer, TRL or transformers)")
    p.add_argument("--keep", help="work in this folder and keep it (default: a temp dir, removed)")
    p.add_argument("--json", help="also write the per-step timings here")
    args = p.parse_args()
    for key, value in PRESETS[args.preset].items():
        if key != "about" and getattr(args, key) is None:
            setattr(args, key, value)
    if args.reward_layers is None:
        args.reward_layers = args.layers
    return args


# ---------------------------------------------------------------- models and data

def tokenizer_files(model_file, folder):
    """tokenizer.model plus the two JSON files transformers' LlamaTokenizer reads; pad = <unk> (id 0) on both
    sides, so that EOS keeps its meaning in TRL's completion masks."""
    shutil.copy(model_file, os.path.join(folder, "tokenizer.model"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    config = dict(special, tokenizer_class="LlamaTokenizer", add_bos_token=True, add_eos_token=False, legacy=True,
                  model_max_length=512, clean_up_tokenization_spaces=False, sp_model_kwargs={})
    for name, content in [("special_tokens_map.json", special), ("tokenizer_config.json", config)]:
        with open(os.path.join(folder, name), "w") as f:
            json.dump(content, f, indent=2)


def make_models(args, work):
    import sentencepiece
    import torch
    import transformers
    model_file = args.tokenizer if args.tokenizer.endswith(".model") else os.path.join(args.tokenizer, "tokenizer.model")
    sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
    if (sp.unk_id(), sp.bos_id(), sp.eos_id()) != (0, 1, 2):
        sys.exit(f"{model_file}: expected unk, bos, eos = 0, 1, 2 (a Llama SentencePiece model), got "
                 f"{sp.unk_id()}, {sp.bos_id()}, {sp.eos_id()}")
    common = dict(hidden_size=args.hidden, intermediate_size=args.intermediate, num_attention_heads=args.heads,
                  num_key_value_heads=args.kv_heads, vocab_size=sp.vocab_size(),
                  max_position_embeddings=512, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  tie_word_embeddings=False, torch_dtype="float32")
    torch.manual_seed(0)
    policy = transformers.LlamaForCausalLM(transformers.LlamaConfig(num_hidden_layers=args.layers, **common))
    reward = transformers.LlamaForSequenceClassification(
        transformers.LlamaConfig(num_hidden_layers=args.reward_layers, num_labels=2,
                                 id2label={0: "unsafe", 1: "safe"}, label2id={"unsafe": 0, "safe": 1}, **common))
    dirs = {}
    for name, model in [("policy", policy), ("reward", reward)]:
        d = os.path.join(work, name)
        model.save_pretrained(d, safe_serialization=True)
        tokenizer_files(model_file, d)
        dirs[name] = d
    n_policy = sum(p.numel() for p in policy.parameters())
    n_reward = sum(p.numel() for p in reward.parameters())
    return dirs, n_policy, n_reward, sp.vocab_size()


def make_data(args, work):
    rows = []
    for i in range(args.examples):
        s, a, e = SUBJECTS[i % 8], ACTIONS[(i // 8) % 8], ENDINGS[(i * 3 + 1) % 8]
        rows.append({"prompt": f"Once upon a time, {s.lower() if s.startswith('The') else s} {a}.",
                     "response": f"{s} {a} {e}"})
    path = os.path.join(work, "train.jsonl")
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path, rows


def make_sft_data(args, work):
    """Prompts of ~15 tokens and responses long enough to be cut at --sft-seq - 32 tokens: every sequence of a
    step has about --sft-seq tokens on both sides."""
    rows = []
    for i in range(args.examples):
        s = SUBJECTS[i % 8]
        story = " ".join(f"{SUBJECTS[(i + j) % 8]} {ACTIONS[(i * 5 + j) % 8]} {ENDINGS[(i + 3 * j) % 8]}"
                         for j in range(args.sft_seq // 8))
        rows.append({"prompt": f"Tell me a story about {s.lower() if s.startswith('The') else s}.", "response": story})
    path = os.path.join(work, "train_sft.jsonl")
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path, rows


# ---------------------------------------------------------------- gaft

def run_gaft(args, dirs, data_path, work):
    out = os.path.join(work, "gaft_run")
    shutil.rmtree(out, ignore_errors=True)  # a kept work folder: start afresh, not from its checkpoint or metrics
    cfg = f"""run: {{name: bench, output_dir: {out}, seed: 1, device: cpu, threads: {args.threads}}}
model: {{path: {dirs['policy']}, dtype: float32, gradient_checkpointing: {str(args.gradient_checkpointing).lower()}}}
tokenizer: {{chat_template: none, max_length: 256}}
scorer: {{batch_size: {args.batch * args.k}, heads: [{{name: safety, kind: classifier, path: {dirs['reward']}, aligned_label: 1}}]}}
data: {{train: {data_path}, format: prompt_response, max_prompt_tokens: 64, max_response_tokens: 64, shuffle: true, bucket_by_length: false}}
objective: {{kind: gaft, lambda: 1.0, advantage: rloo, kl: none}}
rollout: {{num_samples: {args.k}, temperature: 1.0, top_p: 1.0, top_k: 0, max_new_tokens: {args.max_new_tokens}}}
gate: {{mode: uncertainty}}
train: {{batch_size: {args.batch}, grad_accum_steps: 1, max_steps: {args.steps}, share_prefixes: {str(not args.no_share_prefixes).lower()}}}
optimizer: {{lr: {args.lr}, weight_decay: 0.0, grad_clip: 1.0}}
schedule: {{kind: constant, warmup_steps: 0}}
precision: {{compute: float32, master: float32}}
checkpoint: {{every_steps: 0, keep_last: 1, resume: never}}
logging: {{every_steps: 1, progress: off}}
"""
    if args.objective == "sft":
        cfg = f"""run: {{name: bench, output_dir: {out}, seed: 1, device: cpu, threads: {args.threads}}}
model: {{path: {dirs['policy']}, dtype: float32, gradient_checkpointing: {str(args.gradient_checkpointing).lower()}}}
tokenizer: {{chat_template: none, max_length: {args.sft_seq + 8}}}
data: {{train: {data_path}, format: prompt_response, max_prompt_tokens: 32, max_response_tokens: {args.sft_seq - 32}, shuffle: true, bucket_by_length: false}}
objective: {{kind: sft, kl: none}}
train: {{batch_size: {args.sft_batch}, grad_accum_steps: 1, max_steps: {args.steps}}}
optimizer: {{lr: {args.lr}, weight_decay: 0.0, grad_clip: 1.0}}
schedule: {{kind: constant, warmup_steps: 0}}
precision: {{compute: float32, master: float32}}
checkpoint: {{every_steps: 0, keep_last: 1, resume: never}}
logging: {{every_steps: 1, progress: off}}
"""
    cfg_path = os.path.join(work, "gaft.yaml")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    # CPU seconds of the process at the end of every step: /proc/<pid>/stat read as each metrics line appears
    # (every_steps 1; the line is written right after the step), polled every 20 ms.
    metrics_path = os.path.join(out, "metrics.jsonl")
    cpu_at_step = []
    t0 = time.perf_counter()
    with open(os.path.join(work, "gaft.log"), "w") as log:
        proc = subprocess.Popen([args.gaft, "train", "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            lines = 0
            if os.path.exists(metrics_path):
                with open(metrics_path) as f:
                    lines = sum(1 for line in f if '"step_s"' in line)
            cpu = process_cpu_s(proc.pid)
            while len(cpu_at_step) < lines and cpu is not None:
                cpu_at_step.append(cpu)
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        with open(os.path.join(work, "gaft.log")) as f:
            sys.exit(f"gaft train failed ({proc.returncode}):\n{f.read()}")
    steps = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "step_s" not in m:
                continue
            s = m["step_s"]
            rollout, score, fb = m.get("rollout_share", 0.0) * s, m.get("score_share", 0.0) * s, m["fwd_bwd_share"] * s
            steps.append({"step": s, "rollout": rollout, "score": score, "old_logp": 0.0, "fwd_bwd": fb,
                          "other": s - rollout - score - fb, "generated": m.get("rollout_tokens"),
                          "tokens": m.get("tokens"), "host_syncs": m.get("host_syncs")})
    for i, st in enumerate(steps):  # the first step's CPU time includes the start-up (it is a warm-up step)
        if i < len(cpu_at_step):
            st["cpu"] = cpu_at_step[i] - (cpu_at_step[i - 1] if i > 0 else 0.0)
    return steps, wall


def process_cpu_s(pid):
    """User + system CPU seconds of a running process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- TRL

def run_trl(args, dirs, rows, work):
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import RLOOConfig, RLOOTrainer

    torch.set_num_threads(args.threads)
    shutil.rmtree(os.path.join(work, "trl_run"), ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(dirs["policy"])
    tok.pad_token = "<unk>"
    tok.padding_side = "left"
    policy = LlamaForCausalLM.from_pretrained(dirs["policy"], dtype=torch.float32)
    reward = LlamaForSequenceClassification.from_pretrained(dirs["reward"], dtype=torch.float32)
    reward_tok = AutoTokenizer.from_pretrained(dirs["reward"])
    reward_tok.pad_token = "<unk>"
    dataset = Dataset.from_list([{"prompt": r["prompt"]} for r in rows])

    config = RLOOConfig(
        output_dir=os.path.join(work, "trl_run"),
        per_device_train_batch_size=args.batch * args.k,  # TRL counts completions: B prompts x K
        gradient_accumulation_steps=1,
        num_generations=args.k,
        max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=0.0,  # no reference model (gaft runs with objective.kl none)
        num_iterations=1,
        max_steps=args.steps,
        bf16=False, fp16=False, use_cpu=True,
        gradient_checkpointing=args.gradient_checkpointing,  # RLOOConfig's default is True, gaft's false
        use_vllm=False,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, seed=1,
    )

    timings = {"rollout": 0.0, "score": 0.0, "old_logp": 0.0, "prepare": 0.0, "train_step": 0.0}
    steps = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            for k in timings:
                timings[k] = 0.0
            self.t0 = time.perf_counter()
            self.cpu0 = time.process_time()

        def on_step_end(self, a, state, control, **kw):
            s = time.perf_counter() - self.t0
            cpu = time.process_time() - self.cpu0
            fb = timings["train_step"] - timings["prepare"]
            steps.append({"step": s, "rollout": timings["rollout"], "score": timings["score"],
                          "old_logp": timings["old_logp"], "fwd_bwd": fb, "cpu": cpu, "generated": generated[0],
                          "other": s - timings["rollout"] - timings["score"] - timings["old_logp"] - fb})

    trainer = RLOOTrainer(model=policy, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=tok, reward_processing_classes=reward_tok, callbacks=[StepTimer()])
    trainer.remove_callback(PrinterCallback)  # the per-step log dicts; logging itself still runs every step

    def timed(name, fn, when=None):
        def wrapper(*a, **kw):
            if when is not None and not when():
                return fn(*a, **kw)
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[name] += time.perf_counter() - t
        return wrapper

    generate = timed("rollout", trainer._generate)

    def generate_counted(prompts):
        prompt_ids, completion_ids, completions = generate(prompts)
        generated[0] = sum(len(c) for c in completion_ids)
        return prompt_ids, completion_ids, completions

    generated = [0]
    trainer._generate = generate_counted
    trainer._calculate_rewards = timed("score", trainer._calculate_rewards)
    # The no-grad pass inside _generate_and_score_completions (old log-probs); the loss's own pass runs with grad.
    trainer._get_per_token_logps_and_entropies = timed(
        "old_logp", trainer._get_per_token_logps_and_entropies, when=lambda: not torch.is_grad_enabled())
    trainer._prepare_inputs = timed("prepare", trainer._prepare_inputs)
    trainer.training_step = timed("train_step", trainer.training_step)

    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    return steps, wall


# ---------------------------------------------------------------- transformers + AdamW (the sft peer)

def run_hf_sft(args, dirs, rows, work):
    """The loop a transformers user writes for SFT: LlamaForCausalLM(labels=...) (logits of every position, cross
    entropy on the response tokens), backward, clip_grad_norm_ 1.0, torch.optim.AdamW (its default
    implementation on the CPU), zero_grad. Same model, lengths, batch, lr and thread count as gaft's run."""
    import sentencepiece
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(dirs["policy"], "tokenizer.model"))
    model = LlamaForCausalLM.from_pretrained(dirs["policy"], dtype=torch.float32)
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    seqs = []
    for r in rows:  # as gaft's prompt_response format without a chat template: BOS prompt response EOS
        prompt = [1] + sp.encode(r["prompt"])[:31]
        response = (sp.encode(r["response"]) + [2])[:args.sft_seq - 32]
        seqs.append((prompt, response))
    order = torch.randperm(len(seqs)).tolist()
    steps = []
    for step in range(args.steps):
        batch = [seqs[order[(step * args.sft_batch + j) % len(seqs)]] for j in range(args.sft_batch)]
        width = max(len(p) + len(y) for p, y in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for b, (p, y) in enumerate(batch):
            n = len(p) + len(y)
            ids[b, :n] = torch.tensor(p + y)
            mask[b, :n] = 1
            labels[b, len(p):n] = torch.tensor(y)
        t0, cpu0 = time.perf_counter(), time.process_time()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        t_fb = time.perf_counter() - t0
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        s = time.perf_counter() - t0
        steps.append({"step": s, "rollout": 0.0, "score": 0.0, "old_logp": 0.0, "fwd_bwd": t_fb, "other": s - t_fb,
                      "cpu": time.process_time() - cpu0, "tokens": int((labels != -100).sum()), "generated": None})
    return steps, sum(x["step"] for x in steps)


# ---------------------------------------------------------------- report

COLUMNS = [("step", "step s"), ("rollout", "rollout s"), ("score", "score s"), ("old_logp", "old-logp fwd s"),
           ("fwd_bwd", "fwd+bwd s"), ("other", "optim+other s")]


def mean(steps, key, warmup):
    kept = [x[key] for x in steps if key in x and x["index"] >= warmup]
    return statistics.mean(kept) if kept else float("nan")


def table(results, args):
    lines = ["| trainer | " + " | ".join(h for _, h in COLUMNS) + " | CPU s per step |",
             "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name, steps in results.items():
        step = mean(steps, "step", args.warmup)
        cells = [f"{step:.2f}"]
        for key, _ in COLUMNS[1:]:
            v = mean(steps, key, args.warmup)
            cells.append(f"{v:.2f} ({100 * v / step:.0f}%)")
        cells.append(f"{mean(steps, 'cpu', args.warmup):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(results) == 2:
        peer = [n for n in results if n != "gaft"][0]
        g, t = mean(results["gaft"], "step", args.warmup), mean(results[peer], "step", args.warmup)
        gc, tc = mean(results["gaft"], "cpu", args.warmup), mean(results[peer], "cpu", args.warmup)
        lines.append("")
        lines.append(f"speed-up ({peer} step / gaft step), all rounds pooled: {t / g:.2f}x wall, {tc / gc:.2f}x CPU time")
        # One ratio per round (each round runs both sides back to back): median and range.
        ratios, cpu_ratios = [], []
        for r in sorted({x["round"] for x in results["gaft"]}):
            pick = lambda n, key: mean([x for x in results[n] if x["round"] == r], key, args.warmup)
            ratios.append(pick(peer, "step") / pick("gaft", "step"))
            cpu_ratios.append(pick(peer, "cpu") / pick("gaft", "cpu"))
        lines.append(f"speed-up per round: wall median {statistics.median(ratios):.2f}x "
                     f"[{min(ratios):.2f}-{max(ratios):.2f}] over {len(ratios)} round(s) "
                     f"({', '.join(f'{x:.2f}' for x in ratios)}); CPU median {statistics.median(cpu_ratios):.2f}x "
                     f"[{min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}]")
        for key, label in COLUMNS[1:]:
            gk, tk = mean(results["gaft"], key, args.warmup), mean(results[peer], key, args.warmup)
            if gk > 0 and tk > 0:
                lines.append(f"  {label}: {peer} / gaft = {tk / gk:.2f}x")
        gt, tt = mean(results["gaft"], "tokens", args.warmup), mean(results[peer], "tokens", args.warmup)
        if gt == gt and tt == tt:  # not NaN
            lines.append(f"  trained tokens per step: gaft {gt:.0f}, {peer} {tt:.0f}")
    return "\n".join(lines)


def main():
    args = parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.only != "trl" and not os.access(args.gaft, os.X_OK):
        sys.exit(f"gaft binary not found: {args.gaft} (build it, or pass --gaft)")
    work = args.keep or tempfile.mkdtemp(prefix="gaft_bench_train_")
    os.makedirs(work, exist_ok=True)
    try:
        dirs, n_policy, n_reward, vocab = make_models(args, work)
        sft = args.objective == "sft"
        data_path, rows = make_sft_data(args, work) if sft else make_data(args, work)
        peer = "transformers + AdamW" if sft else "trl RLOOTrainer"
        if not sft:
            import trl
        work_desc = (f"sft: {args.sft_batch} sequences of ~{args.sft_seq} tokens per step" if sft else
                     f"B={args.batch} prompts, K={args.k}, max_new_tokens {args.max_new_tokens}")
        print(f"policy {n_policy / 1e6:.1f}M params ({args.layers} layers, hidden {args.hidden}), reward model "
              f"{n_reward / 1e6:.1f}M, vocab {vocab}; {work_desc}, {args.steps} steps ({args.warmup} warm-up), "
              f"{args.threads} threads, fp32, CPU")
        print(f"torch {torch.__version__}, transformers {transformers.__version__}"
              f"{'' if sft else ', trl ' + trl.__version__}; "
              f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        results = {"gaft": [], peer: []} if not args.only else {"gaft" if args.only == "gaft" else peer: []}
        walls = []
        for r in range(args.rounds):
            if args.only != "trl":
                steps, wall = run_gaft(args, dirs, data_path, work)
                results["gaft"] += [dict(st, index=i, round=r) for i, st in enumerate(steps)]
                walls.append(("gaft", r, wall))
                print(f"round {r + 1} gaft: {len(steps)} steps, process wall {wall:.1f} s, rollout tokens per step "
                      f"{[st['generated'] for st in steps]}", flush=True)
            if args.only != "gaft":
                steps, wall = run_hf_sft(args, dirs, rows, work) if sft else run_trl(args, dirs, rows, work)
                results[peer] += [dict(st, index=i, round=r) for i, st in enumerate(steps)]
                walls.append((peer, r, wall))
                print(f"round {r + 1} {peer}: {len(steps)} steps, wall {wall:.1f} s, generated / trained tokens per "
                      f"step {[st['generated'] or st.get('tokens') for st in steps]}", flush=True)
        print(f"load average at end {os.getloadavg()[0]:.1f}")
        for name, steps in results.items():
            print(f"{name} per step: wall s " + ", ".join(f"{s['step']:.2f}" for s in steps) +
                  "; CPU s " + ", ".join(f"{s.get('cpu', float('nan')):.2f}" for s in steps))
        print()
        print(f"Mean over steps {args.warmup + 1}..{args.steps} of {args.rounds} run(s) each "
              f"(seconds, share of the step):")
        print(table(results, args))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "steps": results, "walls": walls}, f, indent=1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
