// UTF-8 helpers shared by the tokenizers and the chat templates: validation, code points, lossy repair,
// whitespace as Unicode and Python define it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gaft::utf8 {

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence, or npos when `text` is
// valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF are invalid).
// e.g. first_invalid("ab\xff") == 2
size_t first_invalid(const std::string& text);

// The code point starting at text[*pos] of a valid UTF-8 string; advances *pos past it.
// e.g. text "é!" (C3 A9 21), pos 0: returns 0xE9, pos becomes 2.
uint32_t next(const std::string& text, size_t* pos);

// Appends the UTF-8 bytes of code point `cp` (<= 0x10FFFF).
void append(std::string* out, uint32_t cp);

// `bytes` with every ill-formed subsequence replaced by U+FFFD, one per maximal subpart (Unicode's
// recommended practice, as Rust's String::from_utf8_lossy and Python's errors="replace" do).
// e.g. "a\xe2\x82" -> "a\uFFFD"; "\xff\xfe" -> "\uFFFD\uFFFD"
std::string repair(const std::string& bytes);

// The Unicode White_Space property (Rust's char::is_whitespace): \t \n \v \f \r, space, U+0085, U+00A0,
// U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
bool is_white_space(uint32_t cp);

// `text` without leading and trailing whitespace as Python's str.strip() sees it (White_Space plus
// U+001C..U+001F): what Jinja's trim filter and .strip() do in Hugging Face chat templates.
std::string strip(const std::string& text);

}  // namespace gaft::utf8
