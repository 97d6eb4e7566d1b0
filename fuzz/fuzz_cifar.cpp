// libFuzzer harness: load_cifar10 (and read_file_maybe_gzip) on arbitrary batch files. The input is 1 to 4 files
// separated by "--next-file--", each in its own memfd. veridl::Error is the expected outcome of bad input; any
// other exception, crash, hang, leak or sanitizer report is a bug. A loaded dataset must be self-consistent.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/util/error.hpp"

namespace {

void check(const veridl::data::Dataset& ds) {
  using veridl_fuzz::die;
  if (ds.n == 0 || ds.C != 3 || ds.H != 32 || ds.W != 32) die("load_cifar10 accepted an empty or misshapen dataset");
  if (ds.pixels.size() != ds.n * ds.image_size() || !ds.images.empty())
    die("load_cifar10: the bytes are not exactly n * 3072 (or floats were kept too)");
  if (ds.labels.size() != ds.n) die("load_cifar10: labels.size() != n");
  for (int32_t l : ds.labels)
    if (l < 0 || static_cast<size_t>(l) >= ds.num_classes) die("load_cifar10 accepted a label out of range");
  for (float p : ds.floats())
    if (!(p >= 0.f && p <= 1.f)) die("load_cifar10 produced a pixel outside [0,1]");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = veridl_fuzz::split(veridl_fuzz::as_view(data, size), veridl_fuzz::kNextFile, 4);
  std::vector<std::unique_ptr<veridl_fuzz::MemFile>> files;
  std::vector<std::string> paths;
  for (std::string_view p : parts) {
    files.push_back(std::make_unique<veridl_fuzz::MemFile>(p));
    paths.push_back(files.back()->path());
  }
  try {
    check(veridl::data::load_cifar10(paths));
  } catch (const veridl::Error&) {
  }
  return 0;
}
