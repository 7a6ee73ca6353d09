#!/usr/bin/env python3
"""Loads a model folder written by gaft (gaft::save_model, e.g. through build/resave_model) with Hugging Face
transformers and compares its logits (or classification scores) with the expected ones of the fixture the
model came from: the reference side of the save round trip, run by nobody's code but transformers'.

  build/resave_model --model tests/data/model/llama --out /tmp/rt/llama
  python tools/check_roundtrip.py /tmp/rt/llama --expected tests/data/model/llama/expected.safetensors

With --resave BIN --all, it resaves every fixture family under tests/data/model with BIN into a temporary
folder and checks each. Exit status 1 if any difference exceeds --tol (1e-4, the fp32 parity tolerance).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "data", "model")


def check(folder, expected_path, tol):
    """Max |transformers(folder) - expected| over attended positions; prints one line."""
    cfg = transformers.AutoConfig.from_pretrained(folder)
    seqcls = any(a.endswith("ForSequenceClassification") for a in cfg.architectures)
    auto = transformers.AutoModelForSequenceClassification if seqcls else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=torch.float32).eval()
    e = load_file(expected_path)
    with torch.no_grad():
        out = model(input_ids=e["input_ids"], attention_mask=e["attention_mask"], position_ids=e["position_ids"])
    if seqcls:
        diff = (out.logits.float() - e["scores"]).abs().max().item()
    else:
        mask = e["attention_mask"].bool()  # [B, T]: padding positions are not compared
        diff = (out.logits.float() - e["logits"]).abs()[mask].max().item()
    stored = {t.dtype for t in load_tensors(folder)}
    ok = diff <= tol
    print(f"{'OK  ' if ok else 'FAIL'} {folder}: {cfg.architectures[0]} (model_type {cfg.model_type}, stored "
          f"{', '.join(sorted(str(s).replace('torch.', '') for s in stored))}), max |logits - expected| = {diff:.3g}")
    return ok


def load_tensors(folder):
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    return [t for f in files for t in load_file(os.path.join(folder, f)).values()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", help="a folder written by gaft")
    p.add_argument("--expected", help="the fixture's expected.safetensors (input_ids, attention_mask, logits)")
    p.add_argument("--resave", help="path of build/resave_model, to resave the fixtures first")
    p.add_argument("--all", action="store_true", help="with --resave: every family under tests/data/model")
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    ok = True
    if args.all:
        if not args.resave:
            p.error("--all needs --resave")
        families = sorted(d for d in os.listdir(FIXTURES) if os.path.isfile(os.path.join(FIXTURES, d, "config.json")))
        with tempfile.TemporaryDirectory() as tmp:
            for fam in families:
                out = os.path.join(tmp, fam)
                subprocess.run([args.resave, "--model", os.path.join(FIXTURES, fam), "--out", out], check=True,
                               stdout=subprocess.DEVNULL)
                ok = check(out, os.path.join(FIXTURES, fam, "expected.safetensors"), args.tol) and ok
    else:
        if not args.folder or not args.expected:
            p.error("give FOLDER and --expected, or --resave BIN --all")
        ok = check(args.folder, args.expected, args.tol)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
