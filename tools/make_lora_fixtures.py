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
Each folder's base_model_name_or_path is rewritten to the base's path relative to the folder, so gaft finds the
base from the committed fixture. expected.safetensors in each folder: input_ids [2, 12] and PEFT's float32
logits [2, 12, 512].

Run (needs transformers, peft, safetensors; C++ tests never run Python):
  /root/.cache/gaft/torch-2.11.0/bin/python tools/make_lora_fixtures.py --gaft build/gaft
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


def base_model():
    return transformers.LlamaForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32).eval()


def finish(folder):
    """Points base_model_name_or_path at the base relative to the folder; writes PEFT's logits."""
    cfg_path = os.path.join(folder, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = os.path.relpath(BASE, folder)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    for name in os.listdir(folder):  # only what PEFT needs: the config and the weights
        if name not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(folder, name))
    model = PeftModel.from_pretrained(base_model(), folder).eval()
    saved = load_file(os.path.join(folder, "adapter_model.safetensors"))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved), (len(loaded), len(saved))
    for k, v in loaded.items():
        name = k.replace(".default", "")
        assert name in saved, name
        assert torch.equal(saved[name], v), name
    with torch.no_grad():
        logits = model(input_ids=IDS).logits.float()
        base = base_model()(input_ids=IDS).logits.float()
    print(f"{os.path.basename(folder)}: {len(saved)} tensors, max |logits - base logits| "
          f"{(logits - base).abs().max().item():.4f}")
    save_file({"input_ids": IDS.contiguous(), "logits": logits.contiguous()},
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


def peft_made(name, **lora):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(11)
    model = get_peft_model(base_model(), LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **lora))
    model.save_pretrained(folder)
    finish(folder)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaft", required=True, help="the gaft executable")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    gaft_trained(os.path.abspath(args.gaft))
    peft_made("peft_made", r=4, lora_alpha=12, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"])
    peft_made("peft_regex", r=2, lora_alpha=4, target_modules=r".*layers\.[0-2]\.self_attn\.(k|o)_proj")


if __name__ == "__main__":
    main()
