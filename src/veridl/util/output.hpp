#pragma once
// Output files of a run, checked before any work: the path is a file (not a directory, not a device), its
// directory exists (created if missing), the filesystem has room for it, no other run writes it, and temp files
// left by a killed run are cleaned up. Every failure is a one-line veridl::Error naming the option and the path.
#include <cstdint>
#include <string>
#include <vector>

namespace veridl {

// Checks that `path` (given by option `flag`, e.g. "--out") can receive a file of about `bytes` bytes, written as
// write_file_atomic does (a temp file beside it, renamed over it):
//  - the path is not empty, not a directory, and if it exists a regular file (not a FIFO, device or socket);
//  - its directory exists: missing directories are created (`created` lists them, outermost first);
//  - a probe file is created beside it (mkstemp: never an existing name, so no user file is touched or removed) and
//    `bytes` are reserved in it with posix_fallocate: a full filesystem, a quota or a file-size limit (ulimit -f)
//    fails here, with the free space; the probe is removed.
void check_output(const std::string& flag, const std::string& path, uint64_t bytes, std::vector<std::string>* created);

// Removes `<path>.tmp.<pid>` files (write_file_atomic's temp files) whose process is gone (killed mid-write) or is
// this process (a reused pid: nothing here has started writing yet). Returns the names removed. A temp file of a
// live process, anything not a regular file, or a name that is not exactly <base>.tmp.<digits> is left alone.
std::vector<std::string> remove_stale_temps(const std::string& path);

// An advisory lock (fcntl, released by the kernel when the process ends, however it ends) on `<path>.lock`, held
// while the object lives: a second run writing the same output is refused with
// "<flag> '<path>' is in use by another run (pid N holds <path>.lock)". The lock file is removed on release.
class OutputLock {
 public:
  OutputLock(const std::string& flag, const std::string& path);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

// The memory this process can still allocate, and what limits it: the smallest of the machine's available memory
// (MemAvailable), the cgroup's limit minus its use (memory.max - memory.current), and the address-space and data
// limits (ulimit -v, RLIMIT_DATA) minus what the process already maps. `source` names the smallest one.
struct AvailableMemory {
  uint64_t bytes = UINT64_MAX;
  std::string source = "unlimited";
};
AvailableMemory available_memory();

// 1536 -> "1.5 KiB", 3.2e9 -> "3.0 GiB".
std::string human_bytes(uint64_t bytes);

}  // namespace veridl
