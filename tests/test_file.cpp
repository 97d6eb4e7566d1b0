// util/file: the one atomic file writer (checkpoints, .npy exports, summaries and exported modules all go
// through it) and the whole-file reader.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace fs = std::filesystem;
using veridl::write_file_atomic;
using veridl::write_text_atomic;

namespace {

class AtomicWrite : public ::testing::Test {
 protected:
  fs::path dir_;
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("veridl_file_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  template <class F>
  static std::string error_of(F&& f) {
    try {
      f();
    } catch (const veridl::Error& e) {
      return e.what();
    }
    return "(no error)";
  }
};

TEST_F(AtomicWrite, PartsAreWrittenBackToBackAndNoTempFileIsLeft) {
  const std::string a = "head", b(100000, 'x'), c;
  const std::span<const char> parts[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  write_file_atomic(path("f.bin"), parts);
  EXPECT_EQ(read(path("f.bin")), a + b);
  write_text_atomic(path("f.bin"), "replaced");
  EXPECT_EQ(read(path("f.bin")), "replaced");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.bin"});
}

// The write fails half-way (file size limit): the old file is intact, the temp file removed, and the error
// names the file, what it is and why.
TEST_F(AtomicWrite, FailedWriteLeavesTheOldFileAndNoTempFile) {
  const std::string p = path("f.bin");
  write_text_atomic(p, "old contents");
  const std::string big(1 << 20, 'y');
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = error_of([&] { write_text_atomic(p, big, "summary"); });
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(msg, "cannot write summary '" + p + "': File too large");
  EXPECT_EQ(read(p), "old contents");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.bin"});
}

TEST_F(AtomicWrite, MissingDirectoryAndDirectoryInPlaceAreOneLineErrors) {
  const std::string missing = path("no/such/f.bin");
  EXPECT_EQ(error_of([&] { write_text_atomic(missing, "x"); }),
            "cannot write '" + missing + "': No such file or directory");
  // A directory where the file should go: the rename fails, the directory and its contents stay.
  fs::create_directory(path("d"));
  std::ofstream(path("d/keep")) << "k";
  EXPECT_EQ(error_of([&] { write_text_atomic(path("d"), "x"); }), "cannot write '" + path("d") + "': Is a directory");
  EXPECT_EQ(read(path("d/keep")), "k");
  EXPECT_EQ(listing(), std::vector<std::string>{"d"});
}

}  // namespace
