#!/usr/bin/env python3
"""Fixtures for the LM-judge recipes of configs/judges/ (Llama Guard 3, ShieldGemma), with transformers as the
reference: a tiny random model of each judge's architecture, a tokenizer with its special tokens and label words,
and the judge's probabilities on a few (prompt, response) pairs rendered with the recipe's exact template.

  tests/data/judges/llama_guard3/  LlamaForCausalLM (hidden 32, 2 layers), tokenizer.json: the Llama 3 style
                                   fixture tokenizer of tests/data/tokenizer/llama3 with "safe" and "unsafe" added
                                   to its vocabulary (found whole by its ignore_merges, as in Llama 3's)
  tests/data/judges/shieldgemma/   Gemma2ForCausalLM (hidden 32, 2 layers, soft caps), tokenizer.model: a
                                   SentencePiece BPE model trained here with Gemma's ids (<pad> 0, <eos> 1, <bos>
                                   2, <unk> 3), <start_of_turn> / <end_of_turn> as user-defined symbols, byte
                                   fallback, no dummy prefix (as Gemma's), "Yes" / "No" as single pieces; also
                                   the tokenizer of the gemma chat-template fixture (tools/make_chat_fixtures.py)
  expected.json in each: the template, the label words, and per case the prompt, response, the input ids
  (with BOS, as the tokenizer adds it) and p_safe = softmax over (safe word, unsafe word) of transformers' next-token
  logits, i.e. the head's score.

The ids are checked against the tokenizer's own reference (tokenizers' Tokenizer for llama_guard3, python
sentencepiece for shieldgemma); gaft's tokenizers are tested against the same libraries elsewhere.

Run: /root/.cache/gaft/torch-2.11.0/bin/python tools/make_judge_fixtures.py   (needs transformers, tokenizers,
sentencepiece, safetensors, pyyaml; C++ tests never run Python)
"""
import io
import json
import os
import shutil

import sentencepiece as spm
import torch
import transformers
import yaml
from safetensors.torch import save_file
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "judges")

CASES = [
    ("How do I bake bread?", "Mix flour, water, salt and yeast, let it rise, then bake it for 40 minutes."),
    ("How can I hurt my neighbour?", "I can't help with that. If there is a conflict, talking to them may help."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    ("What is the capital of France?", "Paris."),
]


def recipe(name):
    with open(os.path.join(ROOT, "configs", "judges", name + ".yaml")) as f:
        head = yaml.safe_load(f)["scorer"]["heads"][0]
    return head["prompt_template"], head["safe_token"], head["unsafe_token"]


def fill(template, prompt, response):
    return template.replace("{prompt}", prompt).replace("{response}", response)


def randomize(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_((1.0 if "gemma" not in type(model).__name__.lower() else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))  # weights stored in bf16, run in fp32


def save_model(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
             if not (model.config.tie_word_embeddings and k == "lm_head.weight")}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))


def judge(model, ids, safe_id, unsafe_id):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return float(torch.stack([logits[safe_id], logits[unsafe_id]]).softmax(0)[0])


def write_expected(folder, template, safe, unsafe, cases):
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"template": template, "safe_token": safe, "unsafe_token": unsafe, "cases": cases}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")
    print(os.path.basename(folder), [round(c["p_safe"], 4) for c in cases], "tokens", [len(c["ids"]) for c in cases])


def llama_guard3():
    template, safe, unsafe = recipe("llama_guard3")
    folder = os.path.join(OUT, "llama_guard3")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    src = os.path.join(ROOT, "tests", "data", "tokenizer", "llama3")
    j = json.load(open(os.path.join(src, "tokenizer.json")))
    # The two words right after the BPE vocabulary; the special tokens (and the post-processor's BOS) move up by 2,
    # so that ids stay dense and the specials last, as in the real tokenizer.
    first = max(j["model"]["vocab"].values()) + 1
    assert min(t["id"] for t in j["added_tokens"]) == first
    for i, word in enumerate((safe, unsafe)):
        assert word not in j["model"]["vocab"], word
        j["model"]["vocab"][word] = first + i
    for t in j["added_tokens"]:
        t["id"] += 2
    for proc in j["post_processor"].get("processors", [j["post_processor"]]):
        for special in proc.get("special_tokens", {}).values():
            special["ids"] = [i + 2 for i in special["ids"]]
    top = max(t["id"] for t in j["added_tokens"])
    tok = Tokenizer.from_str(json.dumps(j))
    assert tok.token_to_id("<|begin_of_text|>") == first + 2 and tok.encode("x").ids[0] == first + 2
    tok.save(os.path.join(folder, "tokenizer.json"))
    shutil.copy(os.path.join(src, "tokenizer_config.json"), folder)
    safe_id, unsafe_id = tok.token_to_id(safe), tok.token_to_id(unsafe)
    assert tok.encode(safe, add_special_tokens=False).ids == [safe_id]
    vocab = top + 3
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=2048,
                                   rope_theta=500000.0, bos_token_id=tok.token_to_id("<|begin_of_text|>"),
                                   eos_token_id=tok.token_to_id("<|eot_id|>"), tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(cfg).eval()
    randomize(model, 31)
    save_model(model, folder)
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(folder)
    cases = []
    for prompt, response in CASES:
        text = fill(template, prompt, response)
        ids = tok.encode(text).ids  # the post-processor adds <|begin_of_text|>
        assert ids == hf(text)["input_ids"], "tokenizers and transformers disagree"
        cases.append({"prompt": prompt, "response": response, "ids": ids,
                      "p_safe": judge(model, ids, safe_id, unsafe_id)})
    write_expected(folder, template, safe, unsafe, cases)


def shieldgemma():
    template, safe, unsafe = recipe("shieldgemma")
    folder = os.path.join(OUT, "shieldgemma")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    lines = [fill(template, p, r) for p, r in CASES] * 3
    lines += ["Yes", "No", "Yes, it does.", "No, it does not.", "Yes or No"] * 20
    lines += ["<start_of_turn>user\nHello! What's the capital of France?<end_of_turn>\n<start_of_turn>model\n",
              "The capital of France is Paris. You are a helpful assistant. Answer briefly."] * 5
    stream = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=stream, model_type="bpe",
                                   vocab_size=420, character_coverage=1.0, byte_fallback=True,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
                                   bos_piece="<bos>", unk_piece="<unk>",
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
                                   split_digits=True, allow_whitespace_only_pieces=True,
                                   remove_extra_whitespaces=False, normalization_rule_name="identity",
                                   add_dummy_prefix=False,
                                   minloglevel=2)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(stream.getvalue())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        pieces = {0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 4: "<start_of_turn>", 5: "<end_of_turn>"}
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>", "eos_token": "<eos>",
                   "pad_token": "<pad>", "unk_token": "<unk>",
                   "added_tokens_decoder": {str(i): {"content": p, "lstrip": False, "normalized": False,
                                                     "rstrip": False, "single_word": False, "special": True}
                                            for i, p in pieces.items()}}, f, indent=1)
        f.write("\n")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    assert [sp.id_to_piece(i) for i in range(6)] == ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                                                     "<end_of_turn>"]
    safe_id, unsafe_id = sp.piece_to_id(safe), sp.piece_to_id(unsafe)
    assert sp.encode(safe) == [safe_id] and sp.encode(unsafe) == [unsafe_id], (sp.encode(safe), sp.encode(unsafe))
    cfg = transformers.Gemma2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, head_dim=8, vocab_size=sp.get_piece_size(),
                                    max_position_embeddings=2048, query_pre_attn_scalar=8, sliding_window=64,
                                    bos_token_id=2, eos_token_id=1, pad_token_id=0)
    cfg._attn_implementation = "eager"
    model = transformers.Gemma2ForCausalLM(cfg).eval()
    randomize(model, 32)
    save_model(model, folder)
    cases = []
    for prompt, response in CASES:
        ids = [sp.bos_id()] + sp.encode(fill(template, prompt, response))
        assert ids.count(sp.piece_to_id("<start_of_turn>")) == 2, "the turn markers are single tokens"
        cases.append({"prompt": prompt, "response": response, "ids": ids,
                      "p_safe": judge(model, ids, safe_id, unsafe_id)})
    write_expected(folder, template, safe, unsafe, cases)


def main():
    os.makedirs(OUT, exist_ok=True)
    llama_guard3()
    shieldgemma()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, sentencepiece {spm.__version__}")


if __name__ == "__main__":
    main()
