#!/usr/bin/env python3
"""Forward and decode tokens/s of gaft next to Hugging Face transformers on the same machine, thread count,
precision and model folders, in one run (docs/benchmarks.md, section "Model forward and decode").

Creates random Llama models of ~20M and ~100M parameters (transformers' initialisation, saved as float32
safetensors) in a temporary folder; for each model and dtype it times, in this process, transformers'
forward (logits of a batch x seq batch of random ids) and generate (greedy, KV cache, no EOS, new tokens
after a short prompt, prefill included), then runs build/bench_model (gaft) on the same folder with the same
settings, and prints one markdown table.

With --eval-prompts N it also measures eval throughput (docs/benchmarks.md, "Eval throughput"): N prompts of
random length (--eval-min..--eval-max tokens, seeded) answered with --new-tokens greedy tokens, sorted by length
and left-padded into batches of --eval-batch, by transformers' generate and by gaft's eval batching
(gaft::eval::generate_batched); the figure is prompts per second.

  /root/.cache/gaft/torch-2.11.0/bin/python tools/bench_model.py --bin build/bench_model --threads 2
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import transformers

SIZES = {
    # ~22.7M: embeddings 8.2M + untied lm_head 8.2M + 8 layers x 0.79M
    "20m": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=4, tie_word_embeddings=False),
    # ~100M: tied embeddings 24.6M + 12 layers x 6.3M
    "100m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=4, tie_word_embeddings=True),
}
COMMON = dict(vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def make_model(folder, size):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, **SIZES[size]))
    model.save_pretrained(folder, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    del model
    return n


def median_seconds(repeats, f):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def seq_for(dtype, args):
    return args.bf16_seq if dtype == "bf16" and args.bf16_seq else args.seq


def bench_transformers(folder, dtype, args):
    torch.set_num_threads(args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype]).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    out = []
    with torch.no_grad():
        if args.batch > 0:
            model(input_ids=torch.randint(3, vocab, (1, min(args.seq, 16)), generator=g))  # warm-up
            ids = torch.randint(3, vocab, (args.batch, seq_for(dtype, args)), generator=g)
            s = median_seconds(args.forward_repeats, lambda: model(input_ids=ids).logits)
            out.append(dict(what="forward", batch=args.batch, tokens=ids.shape[1], seconds=s,
                            tokens_per_s=ids.numel() / s))
    for b in args.decode_batches:
        ids = torch.randint(3, vocab, (b, args.prompt), generator=g)
        kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, eos_token_id=None, pad_token_id=0)
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
        produced = {}

        def run():
            gen = model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **kw)
            produced["n"] = (gen.shape[1] - args.prompt) * b

        s = median_seconds(args.repeats, run)
        out.append(dict(what="decode", batch=b, tokens=produced["n"], seconds=s, tokens_per_s=produced["n"] / s))
    if args.rollout:
        n_prompts, k = args.rollout
        ids = torch.randint(3, vocab, (n_prompts, args.prompt), generator=g)
        kw = dict(attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                  num_return_sequences=k, eos_token_id=None, pad_token_id=0)
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
        produced = {}

        def run():
            gen = model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **kw)
            produced["n"] = (gen.shape[1] - args.prompt) * gen.shape[0]

        s = median_seconds(args.repeats, run)
        out.append(dict(what="rollout", batch=n_prompts, samples=k, tokens=produced["n"], seconds=s,
                        tokens_per_s=produced["n"] / s))
    if args.eval_prompts:
        prompts = eval_prompts(args, vocab)
        def run_eval(prompts, new_tokens):
            order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
            produced = 0
            for start in range(0, len(order), args.eval_batch):
                rows = [prompts[i] for i in order[start:start + args.eval_batch]]
                width = max(len(r) for r in rows)
                ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
                mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
                gen = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     do_sample=False, eos_token_id=None, pad_token_id=0)
                produced += (gen.shape[1] - width) * len(rows)
            return produced

        run_eval(prompts[:args.eval_batch], 2)  # warm-up
        t0 = time.perf_counter()
        n = run_eval(prompts, args.new_tokens)
        s = time.perf_counter() - t0
        out.append(dict(what="eval", batch=args.eval_batch, prompts=len(prompts), tokens=n, seconds=s,
                        prompts_per_s=len(prompts) / s, tokens_per_s=n / s))
    del model
    gc.collect()
    return out


def eval_prompts(args, vocab):
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(args.eval_min, args.eval_max + 1, (args.eval_prompts,), generator=g).tolist()
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def bench_gaft(folder, dtype, args):
    cmd = [args.bin, "--model", folder, "--dtype", dtype, "--threads", str(args.threads), "--batch",
           str(args.batch), "--seq", str(seq_for(dtype, args)), "--decode-batch", ",".join(map(str, args.decode_batches)),
           "--prompt", str(args.prompt), "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats),
           "--forward-repeats", str(args.forward_repeats)]
    if args.rollout:
        cmd += ["--rollout", ",".join(map(str, args.rollout))]
    if args.eval_prompts:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            vocab = json.load(open(os.path.join(folder, "config.json")))["vocab_size"]
            json.dump(eval_prompts(args, vocab), f)
        cmd += ["--eval-file", f.name, "--eval-batch", str(args.eval_batch)]
    try:
        run = subprocess.run(cmd, check=True, capture_output=True, text=True)
    finally:
        if args.eval_prompts:
            os.unlink(f.name)
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default="build/bench_model", help="the gaft benchmark binary")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="20m,100m")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--batch", type=int, default=8, help="forward rows (0: no forward)")
    p.add_argument("--seq", type=int, default=512, help="forward tokens per row")
    p.add_argument("--bf16-seq", type=int, help="forward tokens per row in bf16 (default --seq; bf16 matmuls are "
                   "~4x slower than fp32 on CPUs without AVX-512-BF16/AMX)")
    p.add_argument("--decode-batches", default="1,8")
    p.add_argument("--prompt", type=int, default=8, help="decode prompt tokens per row")
    p.add_argument("--new-tokens", type=int, default=32, help="decode: new tokens per row")
    p.add_argument("--forward-repeats", type=int, default=1, help="timed forward runs (median)")
    p.add_argument("--repeats", type=int, default=3, help="timed decode runs per batch size (median)")
    p.add_argument("--rollout", default="8,4", help="rollouts: P,K = P prompts, K sampled continuations each "
                   "(temperature 1; transformers: num_return_sequences K); empty: skip")
    p.add_argument("--runs", type=int, default=3, help="whole comparisons (transformers then gaft) per model and "
                   "dtype; the table gives medians and the ratio's median [min-max] over them")
    p.add_argument("--eval-prompts", type=int, default=0, help="eval throughput: prompts (0: skip)")
    p.add_argument("--eval-batch", type=int, default=16, help="eval throughput: prompts per batch")
    p.add_argument("--eval-min", type=int, default=8, help="eval throughput: shortest prompt")
    p.add_argument("--eval-max", type=int, default=64, help="eval throughput: longest prompt")
    p.add_argument("--keep", help="create the models here (and keep them) instead of a temporary folder")
    args = p.parse_args()
    args.decode_batches = [int(b) for b in args.decode_batches.split(",") if b]
    args.rollout = [int(x) for x in args.rollout.split(",")] if args.rollout else None
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: build it first (scripts/build.sh)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        for size in args.sizes.split(","):
            folder = os.path.join(root, f"llama_{size}")
            n = make_model(folder, size) if not os.path.exists(os.path.join(folder, "config.json")) else None
            if n is None:
                n = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(folder).parameters())
            for dtype in args.dtypes.split(","):
                t0 = time.perf_counter()
                runs = []  # per run: list of (transformers, gaft) measurement pairs
                for _ in range(args.runs):
                    hf = bench_transformers(folder, dtype, args)
                    ours = bench_gaft(folder, dtype, args)
                    for a, b in zip(hf, ours):
                        assert (a["what"], a["batch"]) == (b["what"], b["batch"]), (a, b)
                    runs.append(list(zip(hf, ours)))
                for i in range(len(runs[0])):
                    rows.append((size, n, dtype, [r[i] for r in runs]))
                print(f"# {size} {dtype}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {args.threads} thread(s); forward "
          f"{args.batch} rows; decode {args.new_tokens} new tokens after a {args.prompt}-token prompt "
          f"per row (greedy, prefill included); rollout: P prompts x K samples, temperature 1; median of "
          f"{args.forward_repeats} forward and {args.repeats} decode run(s) inside each of {args.runs} comparison(s); "
          f"tok/s: median over the comparisons; ratio: median [min-max] of the comparisons' ratios\n")
    print("| model | params | dtype | measure | transformers tok/s | gaft tok/s | gaft / transformers |")
    print("|---|---|---|---|---|---|---|")
    for size, n, dtype, pairs in rows:
        a = pairs[0][0]
        if a["what"] == "eval":
            continue
        what = {"forward": f"forward {a['batch']}x{a['tokens']}", "decode": f"decode batch {a['batch']}",
                "rollout": f"rollout {a['batch']} prompts x {a.get('samples')}"}[a["what"]]
        hf_rate = statistics.median(x["tokens_per_s"] for x, _ in pairs)
        our_rate = statistics.median(y["tokens_per_s"] for _, y in pairs)
        ratios = [y["tokens_per_s"] / x["tokens_per_s"] for x, y in pairs]
        print(f"| llama {size} | {n / 1e6:.1f}M | {dtype} | {what} | {hf_rate:.1f} | {our_rate:.1f} | "
              f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}] |")
    evals = [r for r in rows if r[3][0][0]["what"] == "eval"]
    if evals:
        print(f"\nEval throughput: {args.eval_prompts} prompts of {args.eval_min}-{args.eval_max} tokens, sorted by "
              f"length, batches of {args.eval_batch}, {args.new_tokens} new tokens each (greedy)\n")
        print("| model | params | dtype | transformers prompts/s | gaft prompts/s | gaft / transformers |")
        print("|---|---|---|---|---|---|")
        for size, n, dtype, pairs in evals:
            ratios = [y["prompts_per_s"] / x["prompts_per_s"] for x, y in pairs]
            print(f"| llama {size} | {n / 1e6:.1f}M | {dtype} | "
                  f"{statistics.median(x['prompts_per_s'] for x, _ in pairs):.2f} | "
                  f"{statistics.median(y['prompts_per_s'] for _, y in pairs):.2f} | "
                  f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}] |")


if __name__ == "__main__":
    main()
