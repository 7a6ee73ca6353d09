#!/usr/bin/env python3
"""Writes the LoRA parity fixtures under tests/data/lora/ with the `peft` package as the reference.

Base model: ../shared/models/stories260K/hf (a real pretrained Llama, float32).

gaft_trained/   an adapter trained by gaft itself (`gaft train` with lora.enabled, r 4 on all seven projections,
                sft on a few TinyStories-like lines) and written by gaft as a PEFT folder. The script loads it with
                PeftModel.from_pretrained onto the transformers base, checks that every lora_A / lora_B tensor of
                the PEFT model equals the file (so PEFT found every name), and records PEFT's logits.
peft_made/      an adapter made by PEFT (r 4, alpha 12, rsLoRA, targets q_proj v_proj down_proj, random B through
                init_lora_weights=False) and saved with save_pretrained, with PEFT's logits.
peft_regex/     the same with target_modules as a regular expression over module names (k and o projections of
                layers 0-2 only), as PEFT allows.
peft_gemma2/, peft_gemma3/, peft_granite/
                adapters made by PEFT (r 4, alpha 8, all seven projections, random B) on the tiny random Gemma 2,
                Gemma 3 and Granite models of tests/data/model/ (tools/make_model_fixtures.py), with PEFT's
                logits for input_ids [2, 9] (ids below their vocabulary of 80).
peft_phi3/      the same on the tiny Phi-3 (tests/data/model/phi3) over its fused modules qkv_proj, o_proj,
                gate_up_proj, down_proj (PEFT's names for Phi-3).
Each folder's base_model_name_or_path is rewritten to the base's path relative to the folder, so gaft finds the
base from the committed fixture. expected.safetensors in each folder: input_ids [2, 12] and PEFT's float32
logits [2, 12, 512].

Run (needs transformers, peft, safetensors; C++ tests never run Python):
  /root/.cache/gaft/torch-2.11.0/bin/python tools/make_lora_fixtures.py --gaft build/gaft
  (--only peft_gemma2 peft_gemma3 peft_granite peft_phi3 rewrites those folders and leaves the others)
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "lora")
BASE = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "stories260K", "hf"))
IDS = torch.tensor([[1, 403, 407, 261, 378, 304, 263, 335, 280, 411, 269, 290],
                    [1, 55, 68, 301, 267, 406, 328, 311, 262, 300, 400, 46]])

TRAIN_LINES = [
    ("Once upon a time", "there was a little girl named Lily."),
    ("The little dog", "ran to the park and played with a ball."),
    ("Tom had a red", "car and a big blue ball."),
    ("One day, Sue went", "to the store with her mom."),
]


FAMILY_IDS = torch.tensor([[2, 40, 7, 61, 33, 12, 79, 5, 18], [2, 9, 70, 44, 3, 27, 51, 66, 30]])


def base_model(base=BASE):
    model = transformers.AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32,
                                                              attn_implementation="eager")
    return model.eval()


def finish(folder, base=BASE, ids=IDS):
    """Points base_model_name_or_path at the base relative to the folder; writes PEFT's logits."""
    cfg_path = os.path.join(folder, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = os.path.relpath(base, folder)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    for name in os.listdir(folder):  # only what PEFT needs: the config and the weights
        if name not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(folder, name))
    model = PeftModel.from_pretrained(base_model(base), folder).eval()
    saved = load_file(os.path.join(folder, "adapter_model.safetensors"))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved), (len(loaded), len(saved))
    for k, v in loaded.items():
        name = k.replace(".default", "")
        assert name in saved, name
        assert torch.equal(saved[name], v), name
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        plain = base_model(base)(input_ids=ids).logits.float()
    print(f"{os.path.basename(folder)}: {len(saved)} tensors, max |logits - base logits| "
          f"{(logits - plain).abs().max().item():.4f}")
    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()},
              os.path.join(folder, "expected.safetensors"))


def gaft_trained(gaft):
    folder = os.path.join(OUT, "gaft_trained")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "train.jsonl")
        with open(data, "w") as f:
            for p, r in TRAIN_LINES:
                f.write(json.dumps({"prompt": p, "response": r}) + "\n")
        config = os.path.join(tmp, "lora.yaml")
        with open(config, "w") as f:
            f.write(f"""run: {{output_dir: {tmp}/run, seed: 3, threads: 1, device: cpu}}
model: {{path: {BASE}}}
lora: {{enabled: true, rank: 4, alpha: 8, dropout: 0.0}}
data: {{train: {data}, shuffle: false, max_prompt_tokens: 32, max_response_tokens: 32}}
tokenizer: {{max_length: 64}}
objective: {{kind: sft}}
train: {{batch_size: 4, max_steps: 12}}
optimizer: {{lr: 0.01}}
schedule: {{kind: constant}}
precision: {{compute: float32}}
logging: {{every_steps: 4, progress: off}}
checkpoint: {{every_steps: 0}}
""")
        subprocess.run([gaft, "train", "--config", config], check=True)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(os.path.join(tmp, "run", "model"), folder)
    finish(folder)


def peft_made(name, base=BASE, ids=IDS, **lora):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(11)
    model = get_peft_model(base_model(base), LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **lora))
    model.save_pretrained(folder)
    finish(folder, base, ids)


ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FOLDERS = ["gaft_trained", "peft_made", "peft_regex", "peft_gemma2", "peft_gemma3", "peft_granite", "peft_phi3"]
FUSED_PROJECTIONS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3's modules


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaft", help="the gaft executable (for gaft_trained)")
    ap.add_argument("--only", nargs="*", choices=FOLDERS, help="folders to rewrite (default: all)")
    args = ap.parse_args()
    todo = args.only or FOLDERS
    os.makedirs(OUT, exist_ok=True)
    if "gaft_trained" in todo:
        if not args.gaft:
            ap.error("gaft_trained needs --gaft")
        gaft_trained(os.path.abspath(args.gaft))
    if "peft_made" in todo:
        peft_made("peft_made", r=4, lora_alpha=12, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"])
    if "peft_regex" in todo:
        peft_made("peft_regex", r=2, lora_alpha=4, target_modules=r".*layers\.[0-2]\.self_attn\.(k|o)_proj")
    for family in ("gemma2", "gemma3", "granite"):
        if "peft_" + family in todo:
            peft_made("peft_" + family, base=os.path.join(ROOT, "tests", "data", "model", family), ids=FAMILY_IDS,
                      r=4, lora_alpha=8, target_modules=ALL_PROJECTIONS)
    if "peft_phi3" in todo:
        peft_made("peft_phi3", base=os.path.join(ROOT, "tests", "data", "model", "phi3"), ids=FAMILY_IDS,
                  r=4, lora_alpha=8, target_modules=FUSED_PROJECTIONS)


if __name__ == "__main__":
    main()
