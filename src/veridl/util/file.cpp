#include "veridl/util/file.hpp"

#include <fmt/core.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
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

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("cannot write '" + path + "'");
    f << text;
    if (!f.flush()) throw Error("cannot write '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot write '" + path + "'");
  }
}

}  // namespace veridl
