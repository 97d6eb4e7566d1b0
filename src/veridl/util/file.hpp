#pragma once
// Whole-file reading shared by every loader: one line errors "cannot read <what> '<path>': <reason>"
// (missing file, a directory, a read error); and the one atomic, durable file writer.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veridl {

std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& what);

// Writes `parts`, back to back, to path + ".tmp.<pid>", flushes and fsyncs it, renames it over `path`, then
// fsyncs the directory (best effort): a reader never sees a half-written file, and a failed or interrupted
// write leaves the old file as it was. On failure the temporary file is removed (a directory in its place is
// left alone) and veridl::Error "cannot write <what> '<path>': <reason>" is thrown
// ("cannot write '<path>': <reason>" when `what` is empty).
void write_file_atomic(const std::string& path, std::span<const std::span<const char>> parts,
                       const std::string& what = "");
void write_text_atomic(const std::string& path, const std::string& text, const std::string& what = "");

}  // namespace veridl
