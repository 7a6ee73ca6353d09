#!/usr/bin/env python3
"""Reference ids for gaft's byte-level BPE tokenizer, from Hugging Face's `tokenizers` and `transformers`.

Writes tests/data/tokenizer/ (read by tests/core/bpe_tokenizer_test.cpp; Python is not needed at test time):

  gpt2_ids.json        GPT-2's vocab.json + merges.txt (shared/tokenizers/gpt2, not copied) on CORPUS
  llama3/              a tiny tokenizer.json trained here with Llama 3's pre-tokenizer (regex, ignore_merges,
                       <|begin_of_text|> post-processor, <|start_header_id|> ... special tokens) + configs
  llama3_ids.json      its ids on CORPUS
  qwen2/               the same with Qwen2's pre-tokenizer regex, NFC normalizer, ChatML special tokens and
                       non-special added tokens (<tool_call>, lstrip/rstrip and single_word ones) + configs
  qwen2_ids.json       its ids on CORPUS

Each case: text, ids (no BOS/EOS), ids_with_specials (as the post-processor adds them), decoded (skipping
special tokens) and decoded_all (keeping them). Every id list is checked twice: `tokenizers` directly and
`transformers` (GPT2TokenizerFast / PreTrainedTokenizerFast) must agree.

usage: tools/make_tokenizer_fixtures.py [--shared ../shared] [--out tests/data/tokenizer]
needs: pip install tokenizers transformers
"""
import argparse
import json
import os
import random
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import GPT2TokenizerFast, PreTrainedTokenizerFast

# Pre-tokenizer patterns as published in the models' tokenizer.json files.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Hand-written cases: the corners of the regexes and of the byte-level mapping.
CORPUS = [
    "",
    " ",
    "a",
    "Hello world",
    "Hello, world! How are you today?",
    "don't DON'T I'm we'll they've she'd it's O'Neil's rock'n'roll 'quoted'",
    "I'M YOU'RE THEY'LL He'S",
    "  leading spaces and trailing  ",
    "multiple    spaces\tand\ttabs\t\t\tend",
    "line one\nline two\n\nline four\r\nwindows\r\n",
    "\n\n\n",
    " \n \n  \n",
    "numbers: 7 42 123 1234 12345 3.14159 1,000,000 -17 +3e10 0x1F",
    "a long digit run 12345678901234567890123456789012345678901234567890",
    "Café naïve résumé Ångström über straße façade coöperate",
    "日本語のテキストと中文文本和한국어 텍스트",
    "emoji: 😀🎉👍🏽 👨‍👩‍👧 flags 🇫🇷🇯🇵 ❤️",
    "code:\ndef f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    'int main() { printf("%d\\n", 42); return 0; }',
    "mixed: αβγ δ ε ζ Ω ≈ ∑ ∫ √2 ½ ² ³ ⅓",
    "tabs\t\t\tand  \n  mixed \u00a0 nbsp \u3000 ideographic space\u2003em",
    "punctuation!!! ??? ... --- *** ((nested)) [[brackets]] {{braces}}",
    "URL https://example.com/path?q=1&r=two#frag and e-mail someone@example.org",
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी",
    "x" * 70,
    " " * 50 + "x",
    "trailing whitespace run" + " " * 20,
    "\u200bzero\u200bwidth\u200b joiner\u200d",
    "ﬁ ligature and full-width ＡＢＣ１２３",
]

# Cases for the special and added tokens of the trained tokenizers (plain text for GPT-2 except <|endoftext|>).
SPECIAL_CASES = {
    "gpt2": ["before<|endoftext|>after", "<|endoftext|><|endoftext|> two", "not special: <|endoftext|"],
    "llama3": [
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
        "text <|eot_id|> more<|end_of_text|>",
        "a  <|mask|>  b",
        "<|mask|>x",
        "broken <|eot_id| and <|start_header_id",
        "zqjzqj! ignore_merges: a zqj, zqjzqjzqj",
    ],
    "qwen2": [
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "call <tool_call>{\"name\": \"f\"}</tool_call> done",
        "qwen is here, qwenish not, _qwen_ no, (qwen) yes, qwen",
        "x   <mask>   y <mask>",
        "<|endoftext|>",
    ],
}

# The text the tiny tokenizers are trained on: enough for a few hundred merges of every kind.
TRAIN_TEXT = """
The quick brown fox jumps over the lazy dog. Hello world! How are you today? I'm fine, thanks.
We don't know what they've done, but it's clear she'd like to help. You're right; we'll see.
def main():
    for i in range(10):
        print(i * 2, "hello", [1, 2, 3])
    return None
int main() { printf("%d\\n", 42); return 0; }
Numbers 1 12 123 1234 2024 3.14159 1,000,000 and dates 2023-01-15.
Café résumé naïve über straße Ångström. 日本語のテキスト。中文文本。한국어 텍스트.
Emoji 😀 🎉 👍 and symbols ≈ ∑ √ ½. Tabs\tand\tspaces   and newlines\n\nagain.
The assistant answers the user's question. The system prompt says: be helpful and harmless.
User: What is the capital of France? Assistant: The capital of France is Paris.
"""


def train_corpus():
    rng = random.Random(7)
    lines = [line for line in TRAIN_TEXT.splitlines() if line.strip()]
    out = []
    for _ in range(400):
        out.append(" ".join(rng.choice(lines) for _ in range(3)))
    return out + CORPUS


def random_cases(n, seed):
    """Strings drawn from letters, digits, spaces, newlines, punctuation, accents, CJK and emoji."""
    pools = ["abcdefghij", "ABCXYZ", "0123456789", " ", "  ", "\n", "\t", "\r\n", ".,;:!?-'\"()[]{}#@&*/\\",
             "'s", "'t", "'re", "'LL", "éàüøñç", "日本中文", "한국", "😀🎉👍", "\u00a0", "\u3000", "αβγ"]
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        cases.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(5, 40))))
    return cases


def train_tokenizer(pattern, ignore_merges, nfc, bos, specials, extra_added, extra_vocab=()):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizers.NFC() if nfc else None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=900, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_corpus(), trainer)
    if extra_vocab:
        # Words in the vocabulary that no merge sequence reaches: only ignore_merges finds them whole.
        j = json.loads(tok.to_str())
        for token in extra_vocab:
            j["model"]["vocab"][token] = len(j["model"]["vocab"])
        tok = Tokenizer.from_str(json.dumps(j))
    # As in the real models, special tokens come after the BPE vocabulary.
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens(extra_added)
    byte_level = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    if bos:
        template = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                 special_tokens=[(bos, tok.token_to_id(bos))])
        tok.post_processor = processors.Sequence([byte_level, template])
    else:
        tok.post_processor = byte_level
    return tok


def cases_for(encode, decode, texts):
    out = []
    for text in texts:
        ids, with_specials = encode(text)
        out.append({"text": text, "ids": ids, "ids_with_specials": with_specials,
                    "decoded": decode(ids, True), "decoded_all": decode(ids, False)})
    return out


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def check_same(name, a, b, text):
    if a != b:
        raise SystemExit(f"{name}: tokenizers and transformers disagree on {text!r}:\n{a}\n{b}")


def gpt2_fixture(shared, out):
    folder = os.path.join(shared, "tokenizers", "gpt2")
    hf = GPT2TokenizerFast.from_pretrained(folder)
    raw = Tokenizer(models.BPE.from_file(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens(["<|endoftext|>"])

    def encode(text):
        ids = raw.encode(text, add_special_tokens=False).ids
        check_same("gpt2", ids, hf(text, add_special_tokens=False)["input_ids"], text)
        return ids, ids  # GPT-2 adds neither BOS nor EOS

    def decode(ids, skip):
        return raw.decode(ids, skip_special_tokens=skip)

    texts = CORPUS + SPECIAL_CASES["gpt2"] + random_cases(60, seed=1)
    write_json(os.path.join(out, "gpt2_ids.json"),
               {"source": "shared/tokenizers/gpt2 through transformers.GPT2TokenizerFast and tokenizers.models.BPE",
                "cases": cases_for(encode, decode, texts)})


def trained_fixture(out, name, tok, config, generation_config, texts):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    write_json(os.path.join(folder, "tokenizer_config.json"), config)
    if generation_config is not None:
        write_json(os.path.join(folder, "generation_config.json"), generation_config)
    hf = PreTrainedTokenizerFast.from_pretrained(folder)
    reloaded = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))

    def encode(text):
        # gaft does not apply the NFC normalizer (see gaft/bpe_tokenizer.h): every text here is already NFC.
        assert unicodedata.is_normalized("NFC", text), text
        ids = reloaded.encode(text, add_special_tokens=False).ids
        with_specials = reloaded.encode(text).ids
        check_same(name, ids, hf(text, add_special_tokens=False)["input_ids"], text)
        check_same(name, with_specials, hf(text)["input_ids"], text)
        return ids, with_specials

    def decode(ids, skip):
        return reloaded.decode(ids, skip_special_tokens=skip)

    write_json(os.path.join(out, f"{name}_ids.json"),
               {"source": f"tests/data/tokenizer/{name}/tokenizer.json through tokenizers and transformers",
                "vocab_size": reloaded.get_vocab_size(with_added_tokens=True),
                "cases": cases_for(encode, decode, texts)})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "tokenizer"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    gpt2_fixture(args.shared, args.out)

    llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                       "<|eot_id|>"]
    llama3 = train_tokenizer(LLAMA3_PATTERN, ignore_merges=True, nfc=False, bos="<|begin_of_text|>",
                             specials=llama3_specials,
                             extra_added=[AddedToken("<|mask|>", special=True, lstrip=True, rstrip=True,
                                                     normalized=False)],
                             extra_vocab=["zqjzqj", "Ġzqj"])
    trained_fixture(args.out, "llama3", llama3,
                    {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                     "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": False},
                    {"bos_token_id": llama3.token_to_id("<|begin_of_text|>"),
                     "eos_token_id": [llama3.token_to_id("<|end_of_text|>"), llama3.token_to_id("<|eot_id|>")]},
                    CORPUS + SPECIAL_CASES["llama3"] + random_cases(60, seed=2))

    qwen2 = train_tokenizer(QWEN2_PATTERN, ignore_merges=False, nfc=True, bos=None,
                            specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                            extra_added=[AddedToken("<tool_call>", special=False, normalized=False),
                                         AddedToken("</tool_call>", special=False, normalized=False),
                                         AddedToken("qwen", special=False, single_word=True, normalized=True),
                                         AddedToken("<mask>", special=False, lstrip=True, normalized=False)])
    trained_fixture(args.out, "qwen2", qwen2,
                    {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
                     "pad_token": "<|endoftext|>", "add_bos_token": False, "clean_up_tokenization_spaces": False},
                    None,
                    CORPUS + SPECIAL_CASES["qwen2"] + random_cases(60, seed=3))
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(args.out) for f in files)
    print(f"wrote {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
