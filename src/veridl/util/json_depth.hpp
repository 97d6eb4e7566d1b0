#pragma once
// Nesting depth of JSON text, found by a linear scan before the text reaches the JSON library.
//
// nlohmann::json parses iteratively, but printing (dump) and some of its other operations recurse once
// per nesting level, so a hostile file of a few hundred KB of "[[[[..." overflowed the stack when an
// error message printed the offending value (a fuzzing finding). VeriDL's own JSON (NetSpecs, checkpoint
// headers, metadata) nests at most a handful of levels; anything deeper than kMaxJsonDepth is refused
// with a one-line error before it is parsed.
#include <cstddef>
#include <string_view>

namespace veridl {

inline constexpr size_t kMaxJsonDepth = 64;

// The deepest nesting of objects and arrays in `text` (brackets inside strings do not count). Stops
// counting at `limit + 1`: the result is then only known to exceed `limit`.
inline size_t json_nesting_depth(std::string_view text, size_t limit = kMaxJsonDepth) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace veridl
