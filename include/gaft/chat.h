// Chat templates: a conversation rendered to token ids in the format of a model family, with an
// assistant-only loss mask (assistant content and its end-of-turn token are trained; system, user, and
// the role headers are not).
//
// Families (names as in the config's tokenizer.chat_template), as the Hugging Face templates render them:
//   plain   "User: ...\n\nAssistant: ..." + EOS (models without a template)
//   llama2  <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] assistant </s>     (Llama-2-chat)
//   llama3  <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>   (Llama-3-Instruct)
//   chatml  <|im_start|>role\ncontent<|im_end|>\n          (Qwen2 / Qwen2.5 / Qwen3)
//   mistral <s>[INST] user [/INST]assistant</s>             (Mistral-Instruct v0.1; no system role)
//   gemma   <bos><start_of_turn>user\n{system\n\n}content<end_of_turn>\n<start_of_turn>model\ncontent<end_of_turn>\n
//           (Gemma 3 instruction models: a system message opens the first user turn; Gemma 2's own template
//           refuses one, gaft renders it as Gemma 3 does)
//   granite <|start_of_role|>role<|end_of_role|>content<|end_of_text|>\n   (Granite 3.x instruction models)
//   phi3    <|role|>\ncontent<|end|>\n ... then <|assistant|>\n, or EOS after a finished conversation (Phi-3, 3.5)
//   phi4    <|im_start|>role<|im_sep|>content<|im_end|>, a user turn followed by <|im_start|>assistant<|im_sep|>
//           (Phi-4)
//   phi4_mini <|role|>content<|end|> ... then <|assistant|>, or EOS after a finished conversation (Phi-4-mini)
// Each message is tokenized on its own (segment by segment), so the ids of a conversation's first n
// messages plus the generation prompt are always a prefix of the ids of the whole conversation: the
// trainer relies on this to split a chat into prompt and response.
//
// Where that differs from tokenizing the whole rendered text (what Hugging Face does):
//   - SentencePiece models put "▁" before every segment: an assistant reply that follows "[/INST]" directly
//     (mistral) is encoded "▁reply", not "reply"; a segment that starts with a space (llama2's " reply ")
//     takes the dummy prefix as that space, which is what the whole text gives.
//   - chatml and llama3 contents that start with whitespace holding a newline: the regex would join it to
//     the "\n" of the header; here the two stay apart.
//   - text inside a message that spells a special token ("<|im_end|>") is cut out as that token by the BPE
//     backend, as in Hugging Face; with SentencePiece it stays text.
// Template details kept from the Hugging Face originals: llama2 strips user and assistant contents, llama3
// trims all contents, llama2 and mistral require user/assistant alternation (after llama2's optional system
// message). Not kept: the default system prompt that Qwen2/Qwen2.5's templates insert when a conversation
// has none (it differs per model; put a system message in the data to have one), nor Granite 3.1+'s ("Knowledge
// Cutoff Date: April 2024.\nToday's Date: <today>.\nYou are Granite, developed by IBM. ..."; Granite 3.0's
// template has none, and gaft renders as it does), tools and tool calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gaft/config.h"
#include "gaft/tokenizer.h"

namespace gaft {

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

struct TokenizedChat {
  std::vector<int64_t> ids;        // [T]
  std::vector<uint8_t> loss_mask;  // [T] 1 on assistant content and its end-of-turn token(s)
};

// kAuto: recognised from tokenizer_config.json's "chat_template" beside `tokenizer_path` (a file or a
// directory; also chat_template.jinja / chat_template.json there, as newer transformers save it); kPlain
// when there is none. Never returns kAuto. A template gaft does not recognise is a DataError naming the
// file, with a hint to set tokenizer.chat_template.
// Recognised by: "<|im_start|>" chatml, "<|start_header_id|>" llama3, "[INST]" with "<<SYS>>" llama2, "[INST]"
// without it mistral, "<|start_of_role|>" granite, "<start_of_turn>" gemma, "<|user|>" with a newline after it
// phi3, "<|end|>" with "<|user|>" or "'<|' + message['role'] + '|>'" phi4_mini (in this order); "<|im_sep|>" phi4
// before all (Phi-4's template also holds "<|im_start|>").
ChatTemplate resolve_chat_template(ChatTemplate configured, const std::string& tokenizer_path);

// The conversation's ids and loss mask. add_generation_prompt: append the header that opens an
// assistant turn (for generation; nothing for llama2, mistral and none, whose user turn ends the prompt).
// DataError for an unknown role, a system message not in first place, a role order the template cannot
// express (llama2, mistral), or a special token the template needs and the tokenizer lacks.
// kNone: the messages' contents concatenated (BOS first when the tokenizer adds one), every assistant
// token trained, EOS after the last message when it is the assistant's.
// e.g. chatml, [{user, "Hi"}, {assistant, "Yo"}]:
//   <|im_start|> user\n Hi <|im_end|> \n <|im_start|> assistant\n Yo <|im_end|> \n
//   mask:   0      0    0     0       0      0            0       1     1      0
TokenizedChat apply_chat_template(const Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt);

// The same conversation as text, special tokens written as their pieces ("<|im_start|>", "<s>"): what
// Hugging Face's apply_chat_template(..., tokenize=False) renders. For logs and tests.
std::string render_chat(const Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

// Token ids that end an assistant turn in this template (e.g. <|eot_id|>, <|im_end|>; EOS otherwise):
// the stop tokens of generation. The tokenizer's EOS follows the turn token when it is a different one.
std::vector<int64_t> end_of_turn_ids(const Tokenizer& tok, ChatTemplate tmpl);

std::string to_string(ChatTemplate tmpl);

}  // namespace gaft
