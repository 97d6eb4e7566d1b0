#pragma once
// Whole-file reading shared by every loader: one line errors "cannot read <what> '<path>': <reason>"
// (missing file, a directory, a read error); and the one atomic, durable file writer.
#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "veridl/util/error.hpp"

namespace veridl {

constexpr uint64_t kNoSizeLimit = std::numeric_limits<uint64_t>::max();

// Reads a regular file whole. Anything else is refused by its type before a byte is read: a directory, a FIFO, a
// character or block device (a symlink to /dev/zero), a socket ("cannot read <what> '<path>': it is a FIFO, not a
// regular file"); so is a file larger than `max_bytes` ("... is N bytes, more than the M-byte limit for <what>").
// The size comes from the file's metadata, so the buffer is allocated once; failing that allocation throws
// OutOfMemory naming the file and its size. A file that grows while it is read is refused.
std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& what,
                                     uint64_t max_bytes = kNoSizeLimit);

// "a directory", "a FIFO", "a character device", ... for a stat mode that is not a regular file.
std::string file_type_name(mode_t mode);

// An allocation failure while loading or setting up `what`: "out of memory while <what> (<hint>)".
struct OutOfMemory : Error {
  using Error::Error;
};
// Runs f; a std::bad_alloc inside it becomes OutOfMemory("out of memory while <doing>[ (<hint>)]"), so that every
// "out of memory" message names what was being loaded or allocated.
template <class F>
decltype(auto) naming_allocations(const std::string& doing, const std::string& hint, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const std::bad_alloc&) {
    throw OutOfMemory("out of memory while " + doing + (hint.empty() ? "" : " (" + hint + ")"));
  }
}

// Writes `parts`, back to back, to path + ".tmp.<pid>", flushes and fsyncs it, renames it over `path`, then
// fsyncs the directory (best effort): a reader never sees a half-written file, and a failed or interrupted
// write leaves the old file as it was. On failure the temporary file is removed (a directory in its place is
// left alone) and veridl::Error "cannot write <what> '<path>': <reason>" is thrown
// ("cannot write '<path>': <reason>" when `what` is empty).
void write_file_atomic(const std::string& path, std::span<const std::span<const char>> parts,
                       const std::string& what = "");
void write_text_atomic(const std::string& path, const std::string& text, const std::string& what = "");

}  // namespace veridl
