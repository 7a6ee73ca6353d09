// Chat templates, rendered segment by segment with a loss mask. See gaft/chat.h.
#include "gaft/chat.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gaft/adapter_folder.h"
#include "gaft/error.h"
#include "gaft/read_file.h"
#include "gaft/utf8.h"

namespace fs = std::filesystem;

namespace gaft {

namespace {

const char* const kTemplateHint =
    "set tokenizer.chat_template to none, plain, llama2, llama3, chatml, mistral, gemma, granite, phi3, phi4 or "
    "phi4_mini";

// One piece of a rendered conversation: a single token (id >= 0; text is its piece), or text to encode.
struct Segment {
  std::string text;
  int64_t id = -1;
  uint8_t mask = 0;  // 1: trained (assistant content, end of turn)
};

// Collects the segments of one conversation; resolves special tokens as they are needed.
class Segments {
 public:
  Segments(const Tokenizer& tok, ChatTemplate tmpl) : tok_(tok), tmpl_(tmpl) {}

  void text(std::string s, uint8_t mask) { list_.push_back({std::move(s), -1, mask}); }
  // A special token looked up by its piece, e.g. "<|im_start|>".
  void token(const std::string& piece, uint8_t mask) {
    const int64_t id = tok_.token_to_id(piece);
    if (id < 0) missing("the token \"" + piece + "\"");
    list_.push_back({piece, id, mask});
  }
  // A role header: the opening special token, the role's name as text, the closing special token (untrained),
  // e.g. <|start_header_id|>assistant<|end_header_id|>.
  void header(const std::string& open, const std::string& role, const std::string& close) {
    token(open, 0);
    text(role, 0);
    token(close, 0);
  }
  void bos(uint8_t mask) {
    if (tok_.bos_id() < 0) missing("a BOS token");
    list_.push_back({tok_.id_to_piece(tok_.bos_id()), tok_.bos_id(), mask});
  }
  void eos(uint8_t mask) {
    if (tok_.eos_id() < 0) missing("an EOS token");
    list_.push_back({tok_.id_to_piece(tok_.eos_id()), tok_.eos_id(), mask});
  }
  std::vector<Segment>& list() { return list_; }

 private:
  [[noreturn]] void missing(const std::string& what) const {
    throw DataError("the " + to_string(tmpl_) + " chat template needs " + what + ", and the tokenizer " +
                        tok_.path() + " has none",
                    "use the tokenizer of the model the template belongs to, or " + std::string(kTemplateHint));
  }
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  std::vector<Segment> list_;
};

[[noreturn]] void bad_message(ChatTemplate tmpl, size_t index, const std::string& what) {
  throw DataError("chat message " + std::to_string(index + 1) + ": " + what + " (chat template " + to_string(tmpl) +
                  ")");
}

// Roles every template shares: system, user, assistant; a system message only in first place.
void check_roles(ChatTemplate tmpl, const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      bad_message(tmpl, i, "unknown role \"" + role + "\"; expected system, user or assistant");
    if (role == "system" && i != 0) bad_message(tmpl, i, "a system message must be the first message");
  }
}

// llama2 / mistral: user and assistant alternate, starting with the user, from message `first` on.
void check_alternation(ChatTemplate tmpl, const std::vector<ChatMessage>& messages, size_t first) {
  for (size_t i = first; i < messages.size(); ++i) {
    const char* expected = (i - first) % 2 == 0 ? "user" : "assistant";
    if (messages[i].role != expected)
      bad_message(tmpl, i, "role \"" + messages[i].role + "\" where \"" + expected +
                               "\" was expected: user and assistant must alternate, starting with the user");
  }
}

uint8_t trained(const ChatMessage& m) { return m.role == "assistant" ? 1 : 0; }

std::vector<Segment> build(const Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                           bool add_generation_prompt) {
  TORCH_CHECK(tmpl != ChatTemplate::kAuto, "chat template kAuto must be resolved (resolve_chat_template) first");
  check_roles(tmpl, messages);
  Segments s(tok, tmpl);
  switch (tmpl) {
    case ChatTemplate::kAuto:
      break;
    case ChatTemplate::kNone:
      // prompt + response as they are
      if (tok.add_bos()) s.bos(0);
      for (const ChatMessage& m : messages) s.text(m.content, trained(m));
      if (!messages.empty() && messages.back().role == "assistant") s.eos(1);
      break;
    case ChatTemplate::kPlain:
      // User: q\n\nAssistant: a</s>User: ...
      if (tok.add_bos()) s.bos(0);
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          s.text(m.content + "\n\n", 0);
        } else if (m.role == "user") {
          s.text("User: " + m.content + "\n\n", 0);
        } else {
          s.text("Assistant:", 0);
          s.text(" " + m.content, 1);
          s.eos(1);
        }
      }
      if (add_generation_prompt) s.text("Assistant:", 0);
      break;
    case ChatTemplate::kLlama2: {
      // <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
      const bool has_system = !messages.empty() && messages[0].role == "system";
      const size_t first = has_system ? 1 : 0;
      check_alternation(tmpl, messages, first);
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user") {
          std::string content = m.content;
          if (i == first && has_system) content = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + content;
          s.bos(0);
          s.text("[INST] " + utf8::strip(content) + " [/INST]", 0);
        } else {
          s.text(" " + utf8::strip(m.content) + " ", 1);
          s.eos(1);
        }
      }
      break;  // the user turn ends the prompt: no generation header
    }
    case ChatTemplate::kLlama3:
      // <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>...
      for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (i == 0) s.token("<|begin_of_text|>", 0);
        s.header("<|start_header_id|>", m.role, "<|end_header_id|>");
        s.text("\n\n", 0);
        s.text(utf8::strip(m.content), trained(m));
        s.token("<|eot_id|>", trained(m));
      }
      if (add_generation_prompt) {
        s.header("<|start_header_id|>", "assistant", "<|end_header_id|>");
        s.text("\n\n", 0);
      }
      break;
    case ChatTemplate::kChatml:
      // <|im_start|>{role}\n{content}<|im_end|>\n...
      for (const ChatMessage& m : messages) {
        s.token("<|im_start|>", 0);
        s.text(m.role + "\n", 0);
        s.text(m.content, trained(m));
        s.token("<|im_end|>", trained(m));
        s.text("\n", 0);
      }
      if (add_generation_prompt) {
        s.token("<|im_start|>", 0);
        s.text("assistant\n", 0);
      }
      break;
    case ChatTemplate::kMistral:
      // <s>[INST] {user} [/INST]{assistant}</s>[INST] {user} [/INST]
      if (!messages.empty() && messages[0].role == "system")
        bad_message(tmpl, 0, "the Mistral-Instruct template has no system role; fold the system text into the "
                             "first user message, or use another template");
      check_alternation(tmpl, messages, 0);
      s.bos(0);
      for (const ChatMessage& m : messages) {
        if (m.role == "user") {
          s.text("[INST] " + m.content + " [/INST]", 0);
        } else {
          s.text(m.content, 1);
          s.eos(1);
        }
      }
      break;
    case ChatTemplate::kGemma: {
      // <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n{assistant}<end_of_turn>\n
      // Contents trimmed, the system text not (Gemma 3's template); user and assistant alternate.
      const bool has_system = !messages.empty() && messages[0].role == "system";
      const size_t first = has_system ? 1 : 0;
      check_alternation(tmpl, messages, first);
      s.bos(0);
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        s.token("<start_of_turn>", 0);
        s.text(std::string(m.role == "assistant" ? "model" : "user") + "\n" +
                   (i == first && has_system ? messages[0].content + "\n\n" : std::string()),
               0);
        s.text(utf8::strip(m.content), trained(m));
        s.token("<end_of_turn>", trained(m));
        s.text("\n", 0);
      }
      if (add_generation_prompt) {
        s.token("<start_of_turn>", 0);
        s.text("model\n", 0);
      }
      break;
    }
    case ChatTemplate::kGranite:
      // <|start_of_role|>{role}<|end_of_role|>{content}<|end_of_text|>\n... (Granite 3.x instruct; contents as
      // they are, any role order). No default system message when the conversation has none (gaft/chat.h).
      for (const ChatMessage& m : messages) {
        s.header("<|start_of_role|>", m.role, "<|end_of_role|>");
        s.text(m.content, trained(m));
        s.token("<|end_of_text|>", trained(m));
        s.text("\n", 0);
      }
      if (add_generation_prompt) {
        s.header("<|start_of_role|>", "assistant", "<|end_of_role|>");
      }
      break;
    case ChatTemplate::kPhi3:
    case ChatTemplate::kPhi4Mini: {
      // Phi-3 / 3.5: <|role|>\n{content}<|end|>\n; Phi-4-mini: <|role|>{content}<|end|>. Then <|assistant|>(\n) to
      // generate, else EOS. Contents as they are.
      const bool nl = tmpl == ChatTemplate::kPhi3;
      for (const ChatMessage& m : messages) {
        s.token("<|" + m.role + "|>", 0);
        if (nl) s.text("\n", 0);
        s.text(m.content, trained(m));
        s.token("<|end|>", trained(m));
        if (nl) s.text("\n", 0);
      }
      if (add_generation_prompt) {
        s.token("<|assistant|>", 0);
        if (nl) s.text("\n", 0);
      } else {
        s.eos(0);  // after the last <|end|>: generation stops at <|end|>, which is trained
      }
      break;
    }
    case ChatTemplate::kPhi4:
      // <|im_start|>{role}<|im_sep|>{content}<|im_end|>; a user turn ends with <|im_start|>assistant<|im_sep|>
      // (the template writes the generation prompt itself, so add_generation_prompt adds nothing).
      for (const ChatMessage& m : messages) {
        if (m.role == "assistant") {
          s.text(m.content, 1);
          s.token("<|im_end|>", 1);
          continue;
        }
        s.header("<|im_start|>", m.role, "<|im_sep|>");
        s.text(m.content, 0);
        s.token("<|im_end|>", 0);
        if (m.role == "user") s.header("<|im_start|>", "assistant", "<|im_sep|>");
      }
      break;
  }
  return std::move(s.list());
}

// Ids of one text segment. A SentencePiece model with a dummy prefix writes "▁" before it anyway; a segment
// that starts with a space gives that space to the prefix (" reply " -> "▁reply▁", as in the whole text).
std::vector<int64_t> encode_segment(const Tokenizer& tok, const std::string& text) {
  if (text.empty()) return {};
  if (tok.adds_dummy_prefix() && text[0] == ' ') return tok.encode(text.substr(1), false, false);
  return tok.encode(text, false, false);
}


// The "chat_template" value of a tokenizer_config.json / chat_template.json: a string, or a list of
// {"name", "template"} (the "default" one is used). Empty when absent.
std::string template_text(const nlohmann::json& j, const fs::path& file) {
  if (!j.is_object() || !j.contains("chat_template") || j["chat_template"].is_null()) return "";
  const auto& v = j["chat_template"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const auto& t : v)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        return t["template"].get<std::string>();
    if (!v.empty() && v[0].is_object() && v[0].contains("template") && v[0]["template"].is_string())
      return v[0]["template"].get<std::string>();
  }
  throw DataError(file.string() + ": chat_template: expected a string or a list of {\"name\", \"template\"}");
}

}  // namespace

ChatTemplate resolve_chat_template(ChatTemplate configured, const std::string& tokenizer_path) {
  if (configured != ChatTemplate::kAuto) return configured;
  const fs::path p(tokenizer_path);
  const fs::path dir = fs::is_directory(p) ? fs::path(tokenizer_dir_of(p.string())) : p.parent_path();
  fs::path source;
  std::string text;
  if (fs::exists(dir / "tokenizer_config.json")) {
    source = dir / "tokenizer_config.json";
    text = template_text(read_json_file(source.string(), "", kMaxTokenizerBytes), source);
  }
  if (text.empty() && fs::exists(dir / "chat_template.jinja")) {
    source = dir / "chat_template.jinja";
    text = read_text_file(source.string(), "", kMaxTokenizerBytes);
  }
  if (text.empty() && fs::exists(dir / "chat_template.json")) {
    source = dir / "chat_template.json";
    text = template_text(read_json_file(source.string(), "", kMaxTokenizerBytes), source);
  }
  if (text.empty()) return ChatTemplate::kPlain;
  const auto has = [&](const char* s) { return text.find(s) != std::string::npos; };
  if (has("<|im_sep|>")) return ChatTemplate::kPhi4;  // before ChatML: Phi-4's turns are <|im_start|>role<|im_sep|>
  if (has("<|im_start|>")) return ChatTemplate::kChatml;
  if (has("<|start_header_id|>")) return ChatTemplate::kLlama3;
  if (has("[INST]")) return has("<<SYS>>") ? ChatTemplate::kLlama2 : ChatTemplate::kMistral;
  // Granite before Gemma: Granite Guardian's template writes "<start_of_turn>" as text inside its user turn.
  if (has("<|start_of_role|>")) return ChatTemplate::kGranite;
  if (has("<start_of_turn>")) return ChatTemplate::kGemma;
  // Phi-3's "<|user|>\n" (a newline escaped in the Jinja string, or a real one); Phi-4-mini's "<|' + role + '|>".
  if (has("<|user|>\\n") || has("<|user|>\n")) return ChatTemplate::kPhi3;
  if (has("<|end|>") && (has("<|user|>") || has("'<|' + message['role'] + '|>'"))) return ChatTemplate::kPhi4Mini;
  throw DataError(source.string() + ": chat_template is none that gaft recognises (ChatML, Llama 2, Llama 3, "
                                    "Mistral, Gemma, Granite, Phi-3, Phi-4, Phi-4-mini): it has none of "
                                    "\"<|im_start|>\", \"<|start_header_id|>\", \"[INST]\", \"<start_of_turn>\", "
                                    "\"<|start_of_role|>\", \"<|im_sep|>\", \"<|end|>\"",
                  kTemplateHint);
}

TokenizedChat apply_chat_template(const Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) {
  TokenizedChat out;
  for (const Segment& seg : build(tok, tmpl, messages, add_generation_prompt)) {
    const std::vector<int64_t> ids = seg.id >= 0 ? std::vector<int64_t>{seg.id} : encode_segment(tok, seg.text);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.loss_mask.insert(out.loss_mask.end(), ids.size(), seg.mask);
  }
  return out;
}

std::string render_chat(const Tokenizer& tok, ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  std::string text;
  for (const Segment& seg : build(tok, tmpl, messages, add_generation_prompt)) text += seg.text;
  return text;
}

std::vector<int64_t> end_of_turn_ids(const Tokenizer& tok, ChatTemplate tmpl) {
  TORCH_CHECK(tmpl != ChatTemplate::kAuto, "chat template kAuto must be resolved (resolve_chat_template) first");
  Segments s(tok, tmpl);
  if (tmpl == ChatTemplate::kLlama3) s.token("<|eot_id|>", 1);
  if (tmpl == ChatTemplate::kChatml) s.token("<|im_end|>", 1);
  if (tmpl == ChatTemplate::kGemma) s.token("<end_of_turn>", 1);
  if (tmpl == ChatTemplate::kGranite) s.token("<|end_of_text|>", 1);  // also Granite's EOS
  if (tmpl == ChatTemplate::kPhi3 || tmpl == ChatTemplate::kPhi4Mini) s.token("<|end|>", 1);
  if (tmpl == ChatTemplate::kPhi4) s.token("<|im_end|>", 1);
  std::vector<int64_t> ids;
  for (const Segment& seg : s.list()) ids.push_back(seg.id);
  if (tok.eos_id() >= 0 && (ids.empty() || ids[0] != tok.eos_id())) ids.push_back(tok.eos_id());
  if (ids.empty()) s.eos(1);  // throws: the template ends turns with EOS and there is none
  return ids;
}

std::string to_string(ChatTemplate tmpl) {
  switch (tmpl) {
    case ChatTemplate::kAuto: return "auto";
    case ChatTemplate::kNone: return "none";
    case ChatTemplate::kPlain: return "plain";
    case ChatTemplate::kLlama2: return "llama2";
    case ChatTemplate::kLlama3: return "llama3";
    case ChatTemplate::kChatml: return "chatml";
    case ChatTemplate::kMistral: return "mistral";
    case ChatTemplate::kGemma: return "gemma";
    case ChatTemplate::kGranite: return "granite";
    case ChatTemplate::kPhi3: return "phi3";
    case ChatTemplate::kPhi4: return "phi4";
    case ChatTemplate::kPhi4Mini: return "phi4_mini";
  }
  return "unknown";
}

}  // namespace gaft
