// libFuzzer harness: load_idx (and read_file_maybe_gzip) on arbitrary files. The first input byte picks the mode:
//   0: the rest is the images file, paired with a fixed valid labels file (2 labels)
//   1: the rest is the labels file, paired with a fixed valid images file (2 images of 2x2)
//   2 (and anything else): the rest is "<images file>--next-file--<labels file>" (no separator: empty labels file)
// Each file lives in a memfd. veridl::Error is the expected outcome of bad input; any other exception, crash, hang,
// leak or sanitizer report is a bug. A loaded dataset must be self-consistent.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/util/error.hpp"

namespace {

using namespace std::string_view_literals;

// IDX labels: magic 0x00000801, n = 2, labels 3 and 7.
constexpr std::string_view kValidLabels = "\x00\x00\x08\x01\x00\x00\x00\x02\x03\x07"sv;
// IDX images: magic 0x00000803, n = 2, rows = 2, cols = 2, then 8 pixels.
constexpr std::string_view kValidImages =
    "\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x40\x80\xff\x01\x02\x03\x04"sv;

void check(const veridl::data::Dataset& ds) {
  using veridl_fuzz::die;
  if (ds.n == 0 || ds.C != 1 || ds.H == 0 || ds.W == 0) die("load_idx accepted an empty or shapeless dataset");
  if (ds.pixels.size() != ds.n * ds.image_size() || !ds.images.empty())
    die("load_idx: the bytes are not exactly n * C * H * W (or floats were kept too)");
  if (ds.labels.size() != ds.n) die("load_idx: labels.size() != n");
  for (int32_t l : ds.labels)
    if (l < 0 || static_cast<size_t>(l) >= ds.num_classes) die("load_idx accepted a label out of range");
  for (float p : ds.floats())
    if (!(p >= 0.f && p <= 1.f)) die("load_idx produced a pixel outside [0,1]");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = veridl_fuzz::as_view(data + 1, size - 1);
  std::string_view images, labels;
  switch (data[0]) {
    case 0:
      images = rest;
      labels = kValidLabels;
      break;
    case 1:
      images = kValidImages;
      labels = rest;
      break;
    default: {
      auto parts = veridl_fuzz::split(rest, veridl_fuzz::kNextFile, 2);
      images = parts[0];
      labels = parts.size() > 1 ? parts[1] : std::string_view{};
    }
  }
  veridl_fuzz::MemFile img(images), lbl(labels);
  try {
    check(veridl::data::load_idx(img.path(), lbl.path()));
  } catch (const veridl::Error&) {
  }
  return 0;
}
