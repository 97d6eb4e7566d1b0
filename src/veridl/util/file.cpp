#include "veridl/util/file.hpp"

#include <fmt/core.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "veridl/util/error.hpp"

namespace veridl {

std::string file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISREG(mode)) return "a regular file";
  return "not a regular file";
}

std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  auto fail = [&](const std::string& why) { return Error(fmt::format("cannot read {} '{}': {}", what, path, why)); };
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below, by its type).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw fail(std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw fail("it is a directory");
  if (!S_ISREG(st.st_mode))
    throw fail(fmt::format("it is {}, not a regular file", file_type_name(st.st_mode)));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    throw fail(fmt::format("it is {} bytes, more than the limit of {} bytes", size, max_bytes));
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(static_cast<size_t>(size));
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(fmt::format("out of memory while loading {} '{}' ({} bytes)", what, path, size));
  } catch (const std::length_error&) {
    throw OutOfMemory(fmt::format("out of memory while loading {} '{}' ({} bytes)", what, path, size));
  }
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t k = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) throw fail(std::strerror(errno));
    if (k == 0) break;  // shrank since fstat: what is there
    got += static_cast<size_t>(k);
  }
  bytes.resize(got);
  uint8_t probe = 0;
  ssize_t more;
  do more = ::read(fd, &probe, 1);
  while (more < 0 && (errno == EINTR || errno == EAGAIN));
  if (more > 0) throw fail(fmt::format("the file grew past its {} bytes while being read", size));
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
