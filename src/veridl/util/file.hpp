#pragma once
// Whole-file reading shared by every loader: one line errors "cannot read <what> '<path>': <reason>"
// (missing file, a directory, a read error).
#include <cstdint>
#include <string>
#include <vector>

namespace veridl {

std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& what);

// Writes `text` to path + ".tmp" and renames it over `path`: a reader never sees a half-written file.
// Throws veridl::Error "cannot write '<path>'".
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace veridl
