// Helpers shared by the libFuzzer harnesses in fuzz/. See fuzz/README.md.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace veridl_fuzz {

// Fails the run loudly: libFuzzer reports the abort as a crash and saves the input.
[[noreturn]] inline void die(const std::string& why) {
  std::fprintf(stderr, "veridl fuzz invariant violated: %s\n", why.c_str());
  std::abort();
}

// An anonymous in-memory file holding `bytes`, reachable by a path (/proc/self/fd/N) for loaders that only take
// paths. memfd when available, else an unlinked temporary file; either way nothing is left behind on disk.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) {
    fd_ = ::memfd_create("veridl-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) {
      const char* dir = std::getenv("TMPDIR");
      std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/veridl-fuzz-XXXXXX";
      fd_ = ::mkstemp(tmpl.data());
      if (fd_ < 0) die(std::string("cannot create a temporary file: ") + std::strerror(errno));
      ::unlink(tmpl.c_str());
    }
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t k = ::write(fd_, bytes.data() + off, bytes.size() - off);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) die(std::string("cannot write a temporary file: ") + std::strerror(errno));
      off += static_cast<size_t>(k);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Splits `data` at every occurrence of `sep`, into at most `max_parts` parts (the last part keeps any further
// separators). No separator: one part, the whole input.
inline std::vector<std::string_view> split(std::string_view data, std::string_view sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    size_t at = data.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(data.substr(0, at));
    data.remove_prefix(at + sep.size());
  }
  parts.push_back(data);
  return parts;
}

// Separates the files of a multi-file input (fuzz_idx mode 2, fuzz_cifar). Listed in the .dict files.
inline constexpr std::string_view kNextFile = "--next-file--";

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace veridl_fuzz
