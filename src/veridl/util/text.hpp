#pragma once
// Text from a user's file shown in a message: printable, one line, valid UTF-8.
#include <cstddef>
#include <string>

namespace veridl {

// `s` with every byte that is not part of printable text shown as \xNN: control characters (newlines included,
// so a message stays one line), DEL, and bytes that are not valid UTF-8 (a stray 0xff, a truncated or overlong
// sequence). Valid UTF-8 characters are kept. Longer than `max_len` bytes: cut, with "..." appended.
inline std::string printable(const std::string& s, size_t max_len = 200) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  auto escape = [&](unsigned char b) {
    out += "\\x";
    out += hex[b >> 4];
    out += hex[b & 15];
  };
  for (size_t i = 0; i < s.size();) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b < 0x20 || b == 0x7f)
        escape(b);
      else
        out += static_cast<char>(b);
      ++i;
      continue;
    }
    // The length and the smallest code point of a UTF-8 sequence starting with b (0: not a lead byte).
    const size_t len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    unsigned cp = len == 2 ? b & 0x1fu : len == 3 ? b & 0x0fu : b & 0x07u;
    for (size_t k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = (c & 0xc0) == 0x80;
      cp = (cp << 6) | (c & 0x3fu);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
      ok = false;  // overlong, a surrogate, or past U+10FFFF
    if (!ok) {
      escape(b);
      ++i;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  return out;
}

}  // namespace veridl
