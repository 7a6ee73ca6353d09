#!/usr/bin/env python3
"""Reference renderings of chat templates, from transformers' apply_chat_template.

Writes tests/data/chat/<family>.json (read by tests/core/chat_test.cpp; Python is not needed at test time):
the model family's Jinja template as published on the Hugging Face Hub (embedded below), the tokenizer it
was rendered with, and for each conversation the rendered text and ids, once for the whole conversation and
once for its context (all but the last message) with add_generation_prompt=True.

  llama2, mistral  shared/tokenizers/llama2/tokenizer.model through transformers' LlamaTokenizer with
                   legacy=True: every text between special tokens is encoded by SentencePiece with its "▁"
                   dummy prefix, as Meta's reference code and the Llama-2-chat tokenizer config of the time do
  llama3           tests/data/tokenizer/llama3 (tools/make_tokenizer_fixtures.py) through PreTrainedTokenizerFast
  chatml           tests/data/tokenizer/qwen2, same; the Qwen2.5 template for conversations with a system
                   message, the plain ChatML template for those without (Qwen2.5's would insert its default
                   system prompt, which gaft does not: see gaft/chat.h)
  gemma            tests/data/judges/shieldgemma (tools/make_judge_fixtures.py) through GemmaTokenizer
  granite          tests/data/judges/granite_guardian (tools/make_judge_fixtures.py) through
                   PreTrainedTokenizerFast; the Granite 3.1 instruct template for conversations with a system
                   message, the Granite 3.0 instruct template for those without: 3.1's inserts a default system
                   message with today's date ("Knowledge Cutoff Date: April 2024.\nToday's Date: ..."), which gaft
                   does not (see gaft/chat.h). Checked here: with a system message both templates render the same
                   text; without one, 3.1 renders 3.0's text after its dated default system turn and nothing else.
  phi3, phi4,      tests/data/chat/phi (written here): a small GPT-2-style byte-level BPE trained on the fixture
  phi4_mini        conversations, with <|endoftext|> (EOS), <|system|>, <|user|>, <|assistant|>, <|end|>,
                   <|im_start|>, <|im_sep|>, <|im_end|> as special tokens (no lstrip / rstrip), through
                   PreTrainedTokenizerFast. Phi-4 and Phi-4-mini ship byte-level BPE tokenizers; Phi-3's is a
                   SentencePiece model whose added tokens may strip adjacent whitespace, which this fixture does not
                   reproduce (its template text is checked, its tokenization on Phi-3's own tokenizer is not).

usage: tools/make_chat_fixtures.py [--shared ../shared] [--out tests/data/chat] [--only granite ...]
needs: pip install transformers tokenizers sentencepiece protobuf jinja2
"""
import argparse
import datetime
import json
import os

from transformers import GemmaTokenizer, LlamaTokenizer, PreTrainedTokenizerFast

from make_judge_fixtures import byte_level_bpe, ids_of  # tools/, beside this script

# microsoft/Phi-3-mini-4k-instruct, tokenizer_config.json "chat_template" (revision of 2024-05-08; Phi-3.5-mini's
# differs only in skipping an empty system message)
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# microsoft/phi-4, tokenizer_config.json "chat_template"
PHI4_TEMPLATE = (
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
    "message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') %}"
    "{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}"
)

# microsoft/Phi-4-mini-instruct, tokenizer_config.json "chat_template" (tools in a system message left out by gaft)
PHI4_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is "
    "not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' "
    "+ '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

PHI_SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|im_start|>", "<|im_sep|>",
                "<|im_end|>"]

# meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Qwen/Qwen2.5-7B-Instruct, tokenizer_config.json
QWEN25_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)

# The plain ChatML template (transformers' chat-templating documentation, teknium/OpenHermes-2.5-Mistral-7B)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# mistralai/Mistral-7B-Instruct-v0.1 (and Mixtral-8x7B-Instruct-v0.1), tokenizer_config.json
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# google/gemma-3-1b-it, chat_template (text content; the image branch left out)
GEMMA_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {{- message['content'] | trim -}}\n"
    "    {{ '<end_of_turn>\\n' }}\n{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\\n'}}\n{%- endif -%}\n"
)

# ibm-granite/granite-3.0-2b-instruct (and -8b), tokenizer_config.json "chat_template", as its GGUF carries it
# (huggingface/huggingface.js, packages/ollama-utils/src/chat-template-automap.ts, "library/granite3-dense:2b")
GRANITE30_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|start_of_role|>available_tools<|end_of_role|>\n' }}\n"
    "    {%- for tool in tools %}\n"
    "    {{- tool | tojson(indent=4) }}\n"
    "    {%- if not loop.last %}\n"
    "        {{- '\n\n' }}\n"
    "    {%- endif %}\n"
    "    {%- endfor %}\n"
    "    {{- '<|end_of_text|>\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] == 'system' %}\n"
    "    {{- '<|start_of_role|>system<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'user' %}\n"
    "    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'assistant_tool_call' %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'tool_response' %}\n"
    "    {{- '<|start_of_role|>tool_response<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- endif %}\n"
    "    {%- if loop.last and add_generation_prompt %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}"
)

# ibm-granite/granite-3.1-1b-a400m-instruct (the 2b and 8b dense models carry the same), tokenizer_config.json
# "chat_template", as its GGUF carries it (huggingface/huggingface.js, packages/ollama-utils/src/
# chat-template-automap.ts, "library/granite3.1-moe:1b")
GRANITE31_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = \"Knowledge Cutoff Date: April 2024.\nToday's Date: \" + strftime_now('%B %d, %Y') + "
    "\".\nYou are Granite, developed by IBM.\" %}\n"
    "    {%- if tools and documents %}\n"
    "        {%- set system_message = system_message + \" You are a helpful AI assistant with access to the following "
    "tools. When a tool is required to answer the user's query, respond with <|tool_call|> followed by a JSON list of "
    "tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the "
    "ability to fulfill the request.\n\nWrite the response to the user's input by strictly aligning with the facts "
    "in the provided documents. If the information needed to answer the question is not available in the documents, "
    "inform the user that the question cannot be answered based on the available data.\" %}\n"
    "    {%- elif tools %}\n"
    "        {%- set system_message = system_message + \" You are a helpful AI assistant with access to the following "
    "tools. When a tool is required to answer the user's query, respond with <|tool_call|> followed by a JSON list of "
    "tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the "
    "ability to fulfill the request.\" %}\n"
    "    {%- elif documents %}\n"
    "        {%- set system_message = system_message + \" Write the response to the user's input by strictly aligning "
    "with the facts in the provided documents. If the information needed to answer the question is not available in "
    "the documents, inform the user that the question cannot be answered based on the available data.\" %}\n"
    "    {%- else %}\n"
    "        {%- set system_message = system_message + \" You are a helpful AI assistant.\" %}    \n"
    "    {%- endif %}\n"
    "    {%- if 'citations' in controls and documents %}\n"
    "        {%- set system_message = system_message + '\n\nIn your response, use the symbols <co> and </co> to "
    "indicate when a fact comes from a document in the search result, e.g <co>0</co> for a fact from document 0. "
    "Afterwards, list all the citations with their corresponding documents in an ordered list.' %}\n"
    "    {%- endif %}\n"
    "    {%- if 'hallucinations' in controls and documents %}\n"
    "        {%- set system_message = system_message + '\n\nFinally, after the response is written, include a "
    "numbered list of sentences from the response that are potentially hallucinated and not based in the "
    "documents.' %}\n"
    "    {%- endif %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\n' }}\n"
    "{%- if tools %}\n"
    "    {{- '<|start_of_role|>tools<|end_of_role|>' }}\n"
    "    {{- tools | tojson(indent=4) }}\n"
    "    {{- '<|end_of_text|>\n' }}\n"
    "{%- endif %}\n"
    "{%- if documents %}\n"
    "    {{- '<|start_of_role|>documents<|end_of_role|>' }}\n"
    "    {%- for document in documents %}\n"
    "        {{- 'Document ' + loop.index0 | string + '\n' }}\n"
    "        {{- document['text'] }}\n"
    "        {%- if not loop.last %}\n"
    "            {{- '\n\n'}}\n"
    "        {%- endif%}\n"
    "    {%- endfor %}\n"
    "    {{- '<|end_of_text|>\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in loop_messages %}\n"
    "    {{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- if loop.last and add_generation_prompt %}\n"
    "        {{- '<|start_of_role|>assistant' }}\n"
    "            {%- if controls %}\n"
    "                {{- ' ' + controls | tojson()}}\n"
    "            {%- endif %}\n"
    "        {{- '<|end_of_role|>' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}"
)

# What Granite 3.1's template writes before the conversation when it has no system message (strftime_now: today).
GRANITE31_DEFAULT_SYSTEM = ("<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024.\n"
                            "Today's Date: {today}.\nYou are Granite, developed by IBM. You are a helpful AI "
                            "assistant.<|end_of_text|>\n")

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}

CONVERSATIONS = {
    "single_turn": [
        {"role": "user", "content": "Hello! What's the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    "with_system": [
        SYSTEM,
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ],
    "multi_turn": [
        SYSTEM,
        {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And another one, please?"},
        {"role": "assistant", "content": "Green, like grass 🌿."},
    ],
    "multi_turn_no_system": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road? To get to the other side."},
    ],
    "whitespace_unicode": [
        {"role": "user", "content": "  Tell me about café culture in 東京, and don't be shy!  "},
        {"role": "assistant", "content": "  Sure: it's lovely.\n\n- Kissaten 喫茶店\n- Espresso ☕  "},
    ],
    # ChatML: the reply starts with a newline, which the whole-text regex joins to the header's "\n".
    "leading_newline": [
        {"role": "user", "content": "Write a list"},
        {"role": "assistant", "content": "\n1. one\n2. two"},
    ],
}

ALL_CONVERSATIONS = list(CONVERSATIONS)

# Which conversations each family renders (llama2/mistral: alternation rules; mistral: no system role).
FAMILIES = {
    "llama2": ["single_turn", "with_system", "multi_turn", "multi_turn_no_system", "whitespace_unicode"],
    "mistral": ["single_turn", "multi_turn_no_system", "whitespace_unicode"],
    "llama3": ["single_turn", "with_system", "multi_turn", "multi_turn_no_system", "whitespace_unicode",
               "leading_newline"],
    "chatml": ["single_turn", "with_system", "multi_turn", "multi_turn_no_system", "whitespace_unicode",
               "leading_newline"],
    "gemma": ["single_turn", "with_system", "multi_turn", "multi_turn_no_system", "whitespace_unicode",
              "leading_newline"],
    "granite": ["single_turn", "with_system", "multi_turn", "multi_turn_no_system", "whitespace_unicode",
                "leading_newline"],
    "phi3": ALL_CONVERSATIONS,
    "phi4": ALL_CONVERSATIONS,
    "phi4_mini": ALL_CONVERSATIONS,
}


def phi_tokenizer(folder):
    """The Phi templates' fixture tokenizer: byte-level BPE trained on the conversations, Phi's special tokens."""
    lines = [m["content"] for conv in CONVERSATIONS.values() for m in conv] * 5 + ["system", "user", "assistant"] * 5
    byte_level_bpe(folder, lines, PHI_SPECIALS, PHI3_TEMPLATE, vocab_size=600)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def render(tok, template, messages, add_generation_prompt):
    kwargs = dict(chat_template=template, add_generation_prompt=add_generation_prompt)
    text = tok.apply_chat_template(messages, tokenize=False, **kwargs)
    ids = ids_of(tok.apply_chat_template(messages, tokenize=True, **kwargs))
    # apply_chat_template tokenizes the rendered text without adding BOS/EOS again: check that.
    assert ids == tok(text, add_special_tokens=False)["input_ids"], (text, ids)
    return text, ids


def check_granite_templates(tok, messages, add_generation_prompt):
    """Granite 3.0's and 3.1's templates differ only by 3.1's dated default system turn."""
    text30, _ = render(tok, GRANITE30_TEMPLATE, messages, add_generation_prompt)
    text31, _ = render(tok, GRANITE31_TEMPLATE, messages, add_generation_prompt)
    if messages[0]["role"] == "system":
        assert text31 == text30, (text31, text30)
    else:
        today = datetime.datetime.now().strftime("%B %d, %Y")  # transformers' strftime_now
        assert text31 == GRANITE31_DEFAULT_SYSTEM.format(today=today) + text30, (text31, text30)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.join(here, "..")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(repo, "..", "shared"))
    parser.add_argument("--out", default=os.path.join(repo, "tests", "data", "chat"))
    parser.add_argument("--only", nargs="+", choices=sorted(FAMILIES), help="write only these families' files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    llama2 = LlamaTokenizer.from_pretrained(os.path.join(args.shared, "tokenizers", "llama2"), legacy=True)
    llama3 = PreTrainedTokenizerFast.from_pretrained(os.path.join(repo, "tests", "data", "tokenizer", "llama3"))
    qwen2 = PreTrainedTokenizerFast.from_pretrained(os.path.join(repo, "tests", "data", "tokenizer", "qwen2"))
    gemma = GemmaTokenizer.from_pretrained(os.path.join(repo, "tests", "data", "judges", "shieldgemma"))
    granite = PreTrainedTokenizerFast.from_pretrained(os.path.join(repo, "tests", "data", "judges", "granite_guardian"))
    phi = phi_tokenizer(os.path.join(args.out, "phi"))
    setups = {
        "llama2": (llama2, "shared/tokenizers/llama2/tokenizer.model", lambda conv: LLAMA2_TEMPLATE),
        "mistral": (llama2, "shared/tokenizers/llama2/tokenizer.model", lambda conv: MISTRAL_TEMPLATE),
        "llama3": (llama3, "tests/data/tokenizer/llama3", lambda conv: LLAMA3_TEMPLATE),
        "chatml": (qwen2, "tests/data/tokenizer/qwen2",
                   lambda conv: QWEN25_TEMPLATE if conv[0]["role"] == "system" else CHATML_TEMPLATE),
        "gemma": (gemma, "tests/data/judges/shieldgemma", lambda conv: GEMMA_TEMPLATE),
        "granite": (granite, "tests/data/judges/granite_guardian",
                    lambda conv: GRANITE31_TEMPLATE if conv[0]["role"] == "system" else GRANITE30_TEMPLATE),
        "phi3": (phi, "tests/data/chat/phi", lambda conv: PHI3_TEMPLATE),
        "phi4": (phi, "tests/data/chat/phi", lambda conv: PHI4_TEMPLATE),
        "phi4_mini": (phi, "tests/data/chat/phi", lambda conv: PHI4_MINI_TEMPLATE),
    }
    for family, (tok, tok_path, template_for) in setups.items():
        if args.only and family not in args.only:
            continue
        cases = []
        for name in FAMILIES[family]:
            messages = CONVERSATIONS[name]
            template = template_for(messages)
            if family == "granite":
                check_granite_templates(tok, messages, False)
                check_granite_templates(tok, messages[:-1], True)
            text, ids = render(tok, template, messages, False)
            prompt_text, prompt_ids = render(tok, template, messages[:-1], True)
            cases.append({"name": name, "messages": messages, "text": text, "ids": ids,
                          "prompt_text": prompt_text, "prompt_ids": prompt_ids})
        out = {"family": family, "tokenizer": tok_path, "template": template_for([SYSTEM]), "cases": cases}
        if family == "chatml":
            out["template_without_system"] = CHATML_TEMPLATE
        if family == "granite":
            out["template_without_system"] = GRANITE30_TEMPLATE
        with open(os.path.join(args.out, family + ".json"), "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{family}: {len(cases)} conversations")


if __name__ == "__main__":
    main()
