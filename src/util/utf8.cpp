// UTF-8 helpers. See gaft/utf8.h.
#include "gaft/utf8.h"

namespace gaft::utf8 {

namespace {

// Length of the well-formed prefix of the sequence at text[pos] (Unicode Table 3-7), and whether the
// whole sequence is well formed. ASCII: {1, true}; a lead byte that can start nothing: {0, false}.
struct Prefix {
  size_t valid_bytes;
  bool complete;
};

Prefix well_formed_prefix(const std::string& text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return {1, true};
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return {0, false};
  }
  size_t n = 1;
  for (; n < len; ++n) {
    if (pos + n >= text.size()) return {n, false};
    const uint8_t b = byte(pos + n);
    const bool ok = n == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {n, false};
  }
  return {len, true};
}

}  // namespace

size_t first_invalid(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const Prefix p = well_formed_prefix(text, pos);
    if (!p.complete) return pos;
    pos += p.valid_bytes;
  }
  return std::string::npos;
}

uint32_t next(const std::string& text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(text[i])); };
  const uint32_t b0 = byte(*pos);
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const uint32_t cp = ((b0 & 0x1F) << 6) | (byte(*pos + 1) & 0x3F);
    *pos += 2;
    return cp;
  }
  if (b0 < 0xF0) {
    const uint32_t cp = ((b0 & 0x0F) << 12) | ((byte(*pos + 1) & 0x3F) << 6) | (byte(*pos + 2) & 0x3F);
    *pos += 3;
    return cp;
  }
  const uint32_t cp = ((b0 & 0x07) << 18) | ((byte(*pos + 1) & 0x3F) << 12) | ((byte(*pos + 2) & 0x3F) << 6) |
                      (byte(*pos + 3) & 0x3F);
  *pos += 4;
  return cp;
}

void append(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string repair(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Prefix p = well_formed_prefix(bytes, pos);
    if (p.complete) {
      out.append(bytes, pos, p.valid_bytes);
      pos += p.valid_bytes;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the maximal subpart (at least the one bad byte)
      pos += p.valid_bytes == 0 ? 1 : p.valid_bytes;
    }
  }
  return out;
}

bool is_white_space(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return true;
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string strip(const std::string& text) {
  const auto is_python_space = [](uint32_t cp) { return is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); };
  size_t begin = 0, end = 0, pos = 0;
  bool seen = false;
  while (pos < text.size()) {
    const size_t at = pos;
    const Prefix p = well_formed_prefix(text, pos);
    bool space = false;
    if (p.complete) {
      space = is_python_space(next(text, &pos));
    } else {
      pos += p.valid_bytes == 0 ? 1 : p.valid_bytes;  // ill-formed bytes are kept, as text
    }
    if (space) continue;
    if (!seen) begin = at;
    seen = true;
    end = pos;
  }
  return seen ? text.substr(begin, end - begin) : std::string();
}

}  // namespace gaft::utf8
