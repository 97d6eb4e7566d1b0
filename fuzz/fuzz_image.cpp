// libFuzzer harness: decode_image_file (PNG via libpng, JPEG via libjpeg-turbo, sniffed by magic bytes),
// resize_center_crop and a random-resized-crop on an arbitrary file, put in a memfd. veridl::Error is the expected
// outcome of bad input; any other exception, crash, hang, leak or sanitizer report is a bug (in particular a longjmp
// out of libpng/libjpeg that skips a destructor shows up as a leak). A decoded image must be self-consistent, and its resized crops must
// hold values in [0,1]. Sides are capped at 1024 here (the loader's 16384 would let a 30-byte header ask libjpeg
// for gigabytes, over the fuzzer's memory limit) — the cap is the same code path, only the number differs.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/data/image.hpp"
#include "veridl/util/error.hpp"

namespace {

constexpr uint32_t kFuzzMaxSide = 1024;

void check(const veridl::data::DecodedImage& img) {
  using veridl_fuzz::die;
  if (img.width == 0 || img.height == 0 || img.width > kFuzzMaxSide || img.height > kFuzzMaxSide)
    die("decode_image accepted an empty or oversized image");
  if (img.channels != 1 && img.channels != 3) die("decode_image returned neither grey nor RGB");
  if (!img.pixels) die("decode_image returned no pixels");
  for (const veridl::data::ImageShape& shape :
       {veridl::data::ImageShape{3, 7, 5}, veridl::data::ImageShape{1, 4, 4}, veridl::data::ImageShape{3, 1, 9}}) {
    std::vector<float> out(shape.C * shape.H * shape.W, -1.f);
    veridl::data::resize_center_crop(img, shape, out.data());
    for (float v : out)
      if (!(v >= 0.f && v <= 1.f)) die("resize_center_crop produced a value outside [0,1] (or left one unwritten)");
    // A random-resized-crop box (any seed gives a box inside the image) resized to the shape.
    const veridl::data::CropBox box = veridl::data::random_resized_crop_box(img.width, img.height, img.size());
    if (box.w == 0 || box.h == 0 || box.x0 + box.w > img.width || box.y0 + box.h > img.height)
      die("random_resized_crop_box returned a box outside the image");
    std::fill(out.begin(), out.end(), -1.f);
    veridl::data::resized_crop(img, box, shape, out.data());
    for (float v : out)
      if (!(v >= 0.f && v <= 1.f)) die("resized_crop produced a value outside [0,1] (or left one unwritten)");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  veridl_fuzz::MemFile file(veridl_fuzz::as_view(data, size));
  try {
    check(veridl::data::decode_image_file(file.path(), kFuzzMaxSide));
  } catch (const veridl::Error&) {
  }
  return 0;
}
