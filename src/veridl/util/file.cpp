#include "veridl/util/file.hpp"

#include <fmt/core.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "veridl/util/error.hpp"

namespace veridl {

namespace {
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
}  // namespace

std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& what) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0)
    throw Error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw Error(fmt::format("cannot read {} '{}': it is a directory", what, path));
  std::vector<uint8_t> bytes;
  if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
  constexpr size_t kChunk = size_t{1} << 20;
  size_t got = 0;
  for (;;) {
    bytes.resize(got + kChunk);
    size_t k = std::fread(bytes.data() + got, 1, kChunk, f.get());
    got += k;
    if (k < kChunk) {
      if (std::ferror(f.get()))
        throw Error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
      break;
    }
  }
  bytes.resize(got);
  return bytes;
}

void write_file_atomic(const std::string& path, std::span<const std::span<const char>> parts, const std::string& what) {
  auto fail = [&](int err) {
    return Error(fmt::format("cannot write {}'{}': {}", what.empty() ? "" : what + " ", path,
                             err ? std::strerror(err) : "short write"));
  };
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw fail(errno);
  auto discard = [&](int err) {  // the temporary file is ours: remove it, report err
    std::remove(tmp.c_str());
    return fail(err);
  };
  auto abandon = [&](int err) {
    ::close(fd);
    return discard(err);
  };
  for (std::span<const char> part : parts) {
    const char* p = part.data();
    size_t left = part.size();
    while (left > 0) {
      errno = 0;
      const ssize_t k = ::write(fd, p, left);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) throw abandon(errno);
      p += k;
      left -= static_cast<size_t>(k);
    }
  }
  if (::fsync(fd) != 0) throw abandon(errno);
  if (::close(fd) != 0) throw discard(errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw discard(errno);
  // Best effort: make the rename itself durable. The file is complete and in place whatever happens here.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, std::max<size_t>(slash, 1));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_text_atomic(const std::string& path, const std::string& text, const std::string& what) {
  const std::span<const char> part(text.data(), text.size());
  write_file_atomic(path, std::span(&part, 1), what);
}

}  // namespace veridl
