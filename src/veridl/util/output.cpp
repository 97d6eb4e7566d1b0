#include "veridl/util/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl {

namespace fs = std::filesystem;

namespace {

// The directory a file path lives in ("." for a bare name).
std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

uint64_t free_bytes(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

// Creates the missing directories of `dir`, outermost first, into `created`.
void make_dirs(const std::string& flag, const std::string& path, const std::string& dir,
               std::vector<std::string>* created) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw Error(fmt::format("{}: cannot write to '{}': '{}' is {}, not a directory", flag, path, dir,
                              S_ISREG(st.st_mode) ? "a file" : file_type_name(st.st_mode)));
    return;
  }
  if (errno != ENOENT && errno != ENOTDIR)  // ENOTDIR: a file further up, which the parent's check names
    throw Error(fmt::format("{}: cannot write to '{}': directory '{}': {}", flag, path, dir, std::strerror(errno)));
  const std::string parent = dir_of(dir);
  if (parent != dir) make_dirs(flag, path, parent, created);
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    throw Error(fmt::format("{}: cannot create the directory '{}' for '{}': {}", flag, dir, path, std::strerror(errno)));
  if (created) created->push_back(dir);
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

void check_output(const std::string& flag, const std::string& path, uint64_t bytes, std::vector<std::string>* created) {
  if (path.empty()) throw Error(flag + ": the path is empty (leave the option out to write nothing)");
  if (path.back() == '/') throw Error(fmt::format("{} '{}' names a directory; give a file path in it", flag, path));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      throw Error(fmt::format("{} '{}' is a directory; give a file path (e.g. {}/{})", flag, path, path,
                              flag == "--out" ? "model.safetensors" : "summary.json"));
    if (!S_ISREG(st.st_mode))
      throw Error(fmt::format("{} '{}' is {}, not a regular file; VeriDL writes a new file and renames it there", flag,
                              path, file_type_name(st.st_mode)));
  } else if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: a file on the way, which make_dirs names
    throw Error(fmt::format("{}: cannot write to '{}': {}", flag, path, std::strerror(errno)));
  }
  const std::string dir = dir_of(path);
  make_dirs(flag, path, dir, created);
  // A probe under a fresh name (mkstemp never opens an existing file), with room for the whole file reserved.
  std::string probe = dir + "/." + base_of(path) + ".probe.XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0)
    throw Error(fmt::format("{}: cannot write to '{}': cannot create a file in '{}': {}", flag, path, dir,
                            std::strerror(errno)));
  const int rc = bytes > 0 ? ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)) : 0;
  ::close(fd);
  ::unlink(probe.c_str());
  if (rc == ENOSPC || rc == EDQUOT)
    throw Error(fmt::format("{}: no room for '{}' ({} needed, {} free on its filesystem{})", flag, path,
                            human_bytes(bytes), human_bytes(free_bytes(dir)), rc == EDQUOT ? ", or over quota" : ""));
  if (rc == EFBIG)
    throw Error(fmt::format("{}: '{}' ({}) would exceed the file size limit (ulimit -f)", flag, path, human_bytes(bytes)));
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL)
    throw Error(fmt::format("{}: cannot write to '{}': {}", flag, path, std::strerror(rc)));
  if (rc != 0 && free_bytes(dir) < bytes)  // no fallocate here: the free space is all we can check
    throw Error(fmt::format("{}: no room for '{}' ({} needed, {} free on its filesystem)", flag, path, human_bytes(bytes),
                            human_bytes(free_bytes(dir))));
}

std::vector<std::string> remove_stale_temps(const std::string& path) {
  std::vector<std::string> removed;
  const std::string dir = dir_of(path), prefix = base_of(path) + ".tmp.";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return removed;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() - prefix.size() > 9)
      continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    const bool gone = pid == ::getpid() || (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH);
    if (!gone) continue;
    const std::string full = dir == "." && path.rfind("./", 0) != 0 ? name : dir + "/" + name;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::unlink(full.c_str()) == 0) removed.push_back(full);
  }
  return removed;
}

OutputLock::OutputLock(const std::string& flag, const std::string& path) : lock_path_(path + ".lock") {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
      throw Error(fmt::format("{}: cannot create the lock file '{}': {}", flag, lock_path_, std::strerror(errno)));
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &fl) != 0) {
      const int err = errno;
      struct flock q {};
      q.l_type = F_WRLCK;
      q.l_whence = SEEK_SET;
      const bool held = (err == EACCES || err == EAGAIN) && ::fcntl(fd, F_GETLK, &q) == 0;
      ::close(fd);
      if (held && q.l_type == F_UNLCK) continue;  // released in between: try again
      if (held)
        throw Error(fmt::format("{} '{}' is in use by another run (pid {} holds the lock '{}'); wait for it to finish "
                                "or choose another path",
                                flag, path, q.l_pid, lock_path_));
      throw Error(fmt::format("{}: cannot lock '{}': {}", flag, lock_path_, std::strerror(err)));
    }
    // A run that releases its lock removes the file: the file locked must still be the one at the path.
    struct stat a {}, b {};
    if (::fstat(fd, &a) == 0 && ::stat(lock_path_.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      const std::string pid = std::to_string(::getpid()) + "\n";  // for people; the lock itself names the holder
      if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) { /* informative only */ }
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw Error(fmt::format("{}: cannot lock '{}': it keeps being replaced", flag, lock_path_));
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(lock_path_.c_str());  // while still locked: a waiting run then sees a new file, not ours
  ::close(fd_);
}

namespace {

// A "Key:   123 kB" line of a /proc file, in bytes (nullopt if absent).
std::optional<uint64_t> proc_kb(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return std::nullopt;
}

std::optional<uint64_t> read_number(const std::string& file) {
  std::ifstream in(file);
  std::string s;
  if (!(in >> s) || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;  // "max", missing
  return std::stoull(s);
}

}  // namespace

AvailableMemory available_memory() {
  AvailableMemory a;
  auto consider = [&](uint64_t bytes, std::string source) {
    if (bytes < a.bytes) {
      a.bytes = bytes;
      a.source = std::move(source);
    }
  };
  if (auto m = proc_kb("/proc/meminfo", "MemAvailable")) consider(*m, "the machine's available memory (MemAvailable)");
  {  // cgroup v2: "0::/path"
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
      if (line.compare(0, 3, "0::") == 0) {
        const std::string dir = "/sys/fs/cgroup" + line.substr(3);
        auto max = read_number(dir + "/memory.max"), cur = read_number(dir + "/memory.current");
        if (max && cur) consider(*max > *cur ? *max - *cur : 0, "the cgroup's memory limit (memory.max)");
      }
  }
  struct rlimit r {};
  if (::getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    const uint64_t used = proc_kb("/proc/self/status", "VmSize").value_or(0);
    consider(r.rlim_cur > used ? r.rlim_cur - used : 0, "the address-space limit (ulimit -v)");
  }
  if (::getrlimit(RLIMIT_DATA, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    const uint64_t used = proc_kb("/proc/self/status", "VmData").value_or(0);
    consider(r.rlim_cur > used ? r.rlim_cur - used : 0, "the data-segment limit (ulimit -d)");
  }
  return a;
}

}  // namespace veridl
