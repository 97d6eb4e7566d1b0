// util/file: the one atomic file writer (checkpoints, .npy exports, summaries and exported modules all go
// through it).
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

using veridl::write_file_atomic;
using veridl::write_text_atomic;
using namespace veridl::testutil;

namespace {

class AtomicWrite : public ScratchDirTest {
 protected:
  AtomicWrite() : ScratchDirTest("veridl_file_test_") {}
};

TEST_F(AtomicWrite, PartsAreWrittenBackToBackAndNoTempFileIsLeft) {
  const std::string a = "head", b(100000, 'x'), c;
  const std::span<const char> parts[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  write_file_atomic(path("f.bin"), parts);
  EXPECT_EQ(read_bytes(path("f.bin")), a + b);
  write_text_atomic(path("f.bin"), "replaced");
  EXPECT_EQ(read_bytes(path("f.bin")), "replaced");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.bin"});
}

// The write fails half-way (file size limit): the old file is intact, the temp file removed, and the error
// names the file, what it is and why.
TEST_F(AtomicWrite, FailedWriteLeavesTheOldFileAndNoTempFile) {
  const std::string p = path("f.bin");
  write_text_atomic(p, "old contents");
  const std::string big(1 << 20, 'y');
  const std::string msg = error_under_file_size_limit(64 * 1024, [&] { write_text_atomic(p, big, "summary"); });
  EXPECT_EQ(msg, "cannot write summary '" + p + "': File too large");
  EXPECT_EQ(read_bytes(p), "old contents");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.bin"});
}

TEST_F(AtomicWrite, MissingDirectoryAndDirectoryInPlaceAreOneLineErrors) {
  const std::string missing = path("no/such/f.bin");
  EXPECT_EQ(error_of([&] { write_text_atomic(missing, "x"); }),
            "cannot write '" + missing + "': No such file or directory");
  // A directory where the file should go: the rename fails, the directory and its contents stay.
  std::filesystem::create_directory(path("d"));
  write_bytes(path("d/keep"), "k");
  EXPECT_EQ(error_of([&] { write_text_atomic(path("d"), "x"); }), "cannot write '" + path("d") + "': Is a directory");
  EXPECT_EQ(read_bytes(path("d/keep")), "k");
  EXPECT_EQ(listing(), std::vector<std::string>{"d"});
}

}  // namespace
