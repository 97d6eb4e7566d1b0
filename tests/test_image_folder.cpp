// Image folders: PNG/JPEG decoding (files generated here with libpng and libjpeg), resize + center crop, the folder
// layout, the one-line errors, and `veridl train` on a generated folder.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <omp.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "test_util.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/data/image.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"

using namespace veridl::testutil;

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using veridl::data::DecodedImage;
using veridl::data::ImageShape;
using veridl::data::Split;

// ------------------------------------------------------------------------------------------------ file writers

struct PngSpec {
  uint32_t w = 0, h = 0;
  int color_type = PNG_COLOR_TYPE_RGB, depth = 8;
  Bytes rows;  // packed rows as stored in the file (16-bit samples big-endian)
  std::vector<png_color> palette;
  Bytes trns;
  bool interlace = false;
};

void png_append(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void png_noflush(png_structp) {}

Bytes write_png(const PngSpec& s) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_append, png_noflush);
  png_set_IHDR(png, info, s.w, s.h, s.depth, s.color_type, s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!s.palette.empty()) png_set_PLTE(png, info, s.palette.data(), static_cast<int>(s.palette.size()));
  if (!s.trns.empty()) png_set_tRNS(png, info, s.trns.data(), static_cast<int>(s.trns.size()), nullptr);
  png_write_info(png, info);
  const size_t rowbytes = s.rows.size() / s.h;
  std::vector<png_bytep> rows(s.h);
  for (uint32_t y = 0; y < s.h; ++y) rows[y] = const_cast<png_bytep>(s.rows.data() + y * rowbytes);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// An 8-bit PNG from interleaved samples (channels 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
Bytes png8(uint32_t w, uint32_t h, int channels, const Bytes& px, bool interlace = false) {
  static constexpr int kType[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA};
  PngSpec s;
  s.w = w;
  s.h = h;
  s.color_type = kType[channels];
  s.rows = px;
  s.interlace = interlace;
  return write_png(s);
}

Bytes write_jpeg(uint32_t w, uint32_t h, int comps, J_COLOR_SPACE space, const Bytes& px, int quality = 100,
                 bool progressive = false) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = comps;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < h) {
    JSAMPROW row = const_cast<JSAMPROW>(px.data() + size_t{c.next_scanline} * w * comps);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(buf, buf + size);
  jpeg_destroy_compress(&c);
  std::free(buf);
  return out;
}

// Offset of the SOF0/SOF2 marker (FF C0 / FF C2) in a JPEG we wrote.
size_t sof_at(const Bytes& j) {
  for (size_t i = 2; i + 1 < j.size(); ++i)
    if (j[i] == 0xFF && (j[i + 1] == 0xC0 || j[i + 1] == 0xC2)) return i;
  ADD_FAILURE() << "no SOF marker";
  return 0;
}

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// A PNG that is only a signature, an IHDR chunk (with a correct CRC) and IEND: for header-only checks.
Bytes png_header_only(uint32_t w, uint32_t h) {
  Bytes b = {0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A};
  auto chunk = [&](const char* type, const Bytes& data) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(data.size() >> s));
    Bytes td(type, type + 4);
    td.insert(td.end(), data.begin(), data.end());
    b.insert(b.end(), td.begin(), td.end());
    uLong crc = crc32(0, td.data(), static_cast<uInt>(td.size()));
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(crc >> s));
  };
  Bytes ihdr;
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<uint8_t>(v >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  chunk("IHDR", ihdr);
  chunk("IEND", {});
  return b;
}

// ------------------------------------------------------------------------------------------------ expectations

// HWC samples -> CHW floats p/255 (1 or 3 source channels; grey is replicated to RGB).
std::vector<float> chw(uint32_t w, uint32_t h, int channels, const Bytes& px, size_t C = 3) {
  std::vector<float> out(C * h * w);
  for (size_t c = 0; c < C; ++c)
    for (size_t i = 0; i < size_t{w} * h; ++i)
      out[c * w * h + i] = static_cast<float>(px[i * channels + (channels == 1 ? 0 : c)]) / 255.f;
  return out;
}

std::vector<float> image_of(const veridl::data::Dataset& ds, size_t i) {
  const size_t D = ds.image_size();
  return {ds.images.begin() + static_cast<std::ptrdiff_t>(i * D), ds.images.begin() + static_cast<std::ptrdiff_t>((i + 1) * D)};
}


Bytes pattern(uint32_t w, uint32_t h, int channels, int a, int b, int c) {
  Bytes px(size_t{w} * h * channels);
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x)
      for (int k = 0; k < channels; ++k)
        px[(size_t{y} * w + x) * channels + k] = static_cast<uint8_t>((a * x + b * y + c * k + 7) % 256);
  return px;
}

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("veridl_imgfolder_{}_{}_{}", ::getpid(), info->test_suite_name(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const Bytes& bytes) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return p.string();
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  std::string root() const { return dir_.string(); }

  // A valid minimal folder: classes a and b, one 4x4 RGB PNG each in train/ and val/.
  void minimal() {
    for (const char* part : {"train", "val"})
      for (const char* cls : {"a", "b"}) write(fmt::format("{}/{}/one.png", part, cls), png8(4, 4, 3, pattern(4, 4, 3, 9, 5, 3)));
  }
  std::string load_error(const ImageShape& shape = {3, 4, 4}) {
    return error_of([&] { veridl::data::load_split(root(), shape); });
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------------- decoding

TEST_F(ImageFolder, EveryPngColourTypeLoadsExactly) {
  const uint32_t W = 3, H = 2;  // every image is the target size: the resize is the identity, values are exact
  const Bytes rgb = pattern(W, H, 3, 17, 41, 70), grey = pattern(W, H, 1, 40, 100, 0);
  write("train/Zebra/a_rgb.png", png8(W, H, 3, rgb));
  write("train/Zebra/b_grey.png", png8(W, H, 1, grey));
  Bytes rgba = pattern(W, H, 4, 23, 31, 60);  // alpha (4th sample) varies and must be dropped
  write("train/cat/c_rgba.png", png8(W, H, 4, rgba));
  // Palette with transparency (tRNS): expands to RGB, alpha dropped.
  PngSpec pal;
  pal.w = W;
  pal.h = H;
  pal.color_type = PNG_COLOR_TYPE_PALETTE;
  pal.palette = {{255, 0, 0}, {0, 128, 255}, {12, 34, 56}};
  pal.trns = {0, 128};
  pal.rows = {0, 1, 2, 2, 1, 0};
  write("train/cat/d_palette.png", write_png(pal));
  // 1-bit grey: 0 -> 0, 1 -> 255.
  PngSpec bit;
  bit.w = W;
  bit.h = H;
  bit.color_type = PNG_COLOR_TYPE_GRAY;
  bit.depth = 1;
  bit.rows = {0b10100000, 0b01000000};
  write("train/cat/e_grey1.png", write_png(bit));
  // 16-bit RGB: the high byte is kept.
  PngSpec s16;
  s16.w = W;
  s16.h = H;
  s16.depth = 16;
  for (uint8_t v : rgb) s16.rows.insert(s16.rows.end(), {v, static_cast<uint8_t>(255 - v)});
  write("train/dog/f_rgb16.png", write_png(s16));
  Bytes ga = pattern(W, H, 2, 50, 20, 90);  // grey + alpha
  write("train/dog/g_greyalpha.png", png8(W, H, 2, ga));
  write("train/dog/h_interlaced.png", png8(W, H, 3, rgb, /*interlace=*/true));
  // 16-bit grey + alpha.
  PngSpec ga16;
  ga16.w = W;
  ga16.h = H;
  ga16.depth = 16;
  ga16.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  for (size_t i = 0; i < size_t{W} * H; ++i) ga16.rows.insert(ga16.rows.end(), {grey[i], 0x11, 0x80, 0x00});
  write("train/dog/i_greyalpha16.png", write_png(ga16));
  for (const char* cls : {"Zebra", "cat", "dog"}) write(fmt::format("val/{}/v.png", cls), png8(W, H, 1, grey));

  Split s = veridl::data::load_split(root(), ImageShape{3, H, W});
  EXPECT_EQ(s.name, root());
  EXPECT_EQ(s.train.n, 9u);
  EXPECT_EQ(s.train.C, 3u);
  EXPECT_EQ(s.train.H, H);
  EXPECT_EQ(s.train.W, W);
  EXPECT_EQ(s.train.num_classes, 3u);
  // Classes in byte order ('Z' < 'c'), files by name within a class.
  EXPECT_EQ(s.train.labels, (std::vector<int32_t>{0, 0, 1, 1, 1, 2, 2, 2, 2}));
  EXPECT_EQ(s.test.labels, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(s.test.num_classes, 3u);
  EXPECT_EQ(s.train.source, path("train"));
  EXPECT_EQ(s.test.source, path("val"));

  EXPECT_EQ(image_of(s.train, 0), chw(W, H, 3, rgb));
  EXPECT_EQ(image_of(s.train, 1), chw(W, H, 1, grey));
  Bytes rgba_rgb;
  for (size_t i = 0; i < size_t{W} * H; ++i) rgba_rgb.insert(rgba_rgb.end(), {rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]});
  EXPECT_EQ(image_of(s.train, 2), chw(W, H, 3, rgba_rgb));
  Bytes pal_rgb;
  for (uint8_t i : pal.rows) pal_rgb.insert(pal_rgb.end(), {pal.palette[i].red, pal.palette[i].green, pal.palette[i].blue});
  EXPECT_EQ(image_of(s.train, 3), chw(W, H, 3, pal_rgb));
  EXPECT_EQ(image_of(s.train, 4), chw(W, H, 1, Bytes{255, 0, 255, 0, 255, 0}));
  EXPECT_EQ(image_of(s.train, 5), chw(W, H, 3, rgb));
  Bytes ga_grey;
  for (size_t i = 0; i < size_t{W} * H; ++i) ga_grey.push_back(ga[2 * i]);
  EXPECT_EQ(image_of(s.train, 6), chw(W, H, 1, ga_grey));
  EXPECT_EQ(image_of(s.train, 7), chw(W, H, 3, rgb));
  EXPECT_EQ(image_of(s.train, 8), chw(W, H, 1, grey));
  EXPECT_EQ(image_of(s.test, 2), chw(W, H, 1, grey));
}

TEST_F(ImageFolder, DecodeImageReportsTheSourceLayout) {
  DecodedImage g = veridl::data::decode_image(png8(5, 3, 1, pattern(5, 3, 1, 1, 2, 0)), "g.png");
  EXPECT_EQ(g.width, 5u);
  EXPECT_EQ(g.height, 3u);
  EXPECT_EQ(g.channels, 1u);
  DecodedImage c = veridl::data::decode_image(png8(2, 7, 4, pattern(2, 7, 4, 1, 2, 3)), "c.png");
  EXPECT_EQ(c.channels, 3u);  // alpha dropped
  DecodedImage j = veridl::data::decode_image(write_jpeg(9, 4, 1, JCS_GRAYSCALE, Bytes(36, 99)), "j.jpg");
  EXPECT_EQ(j.width, 9u);
  EXPECT_EQ(j.height, 4u);
  EXPECT_EQ(j.channels, 1u);
  for (uint8_t v : j.view()) EXPECT_EQ(v, 99);
}

TEST_F(ImageFolder, GreyTargetUsesBt601Luma) {
  const Bytes rgb = pattern(3, 2, 3, 17, 41, 70), grey = pattern(3, 2, 1, 40, 100, 0);
  write("train/a/rgb.png", png8(3, 2, 3, rgb));
  write("train/a/zgrey.png", png8(3, 2, 1, grey));
  write("val/a/v.png", png8(3, 2, 1, grey));
  for (const char* part : {"train", "val"}) write(fmt::format("{}/b/v.png", part), png8(3, 2, 1, grey));  // 2 classes
  Split s = veridl::data::load_split(root(), ImageShape{1, 2, 3});
  ASSERT_EQ(s.train.image_size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const double luma = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
    EXPECT_NEAR(s.train.images[i], luma / 255, 1e-6) << i;
  }
  EXPECT_EQ(image_of(s.train, 1), chw(3, 2, 1, grey, 1));  // grey stays exact
}

TEST_F(ImageFolder, JpegGreyRgbAndProgressiveDecodeClose) {
  const uint32_t W = 16, H = 16;
  Bytes grey(W * H), rgb(W * H * 3);
  for (uint32_t y = 0; y < H; ++y)
    for (uint32_t x = 0; x < W; ++x) {
      grey[y * W + x] = static_cast<uint8_t>(60 + 4 * x + 2 * y);  // a smooth ramp
      for (int c = 0; c < 3; ++c) rgb[(y * W + x) * 3 + c] = static_cast<uint8_t>(c == 0 ? 200 : c == 1 ? 100 : 50);
    }
  write("train/grey/g.jpg", write_jpeg(W, H, 1, JCS_GRAYSCALE, grey));
  write("train/rgb/r.JPEG", write_jpeg(W, H, 3, JCS_RGB, rgb));
  write("train/rgb/s.jpeg", write_jpeg(W, H, 3, JCS_RGB, rgb, 95, /*progressive=*/true));
  write("val/grey/g.jpg", write_jpeg(W, H, 1, JCS_GRAYSCALE, grey, 90, true));
  write("val/rgb/r.jpg", write_jpeg(W, H, 3, JCS_RGB, rgb, 90));
  Split s = veridl::data::load_split(root(), ImageShape{3, H, W});
  EXPECT_EQ(s.train.labels, (std::vector<int32_t>{0, 1, 1}));
  auto close = [](const std::vector<float>& got, const std::vector<float>& want, float tol) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << "at " << i;
  };
  close(image_of(s.train, 0), chw(W, H, 1, grey), 2.5f / 255);
  close(image_of(s.train, 1), chw(W, H, 3, rgb), 2.5f / 255);
  close(image_of(s.train, 2), chw(W, H, 3, rgb), 2.5f / 255);
  close(image_of(s.test, 0), chw(W, H, 1, grey), 4.5f / 255);
  close(image_of(s.test, 1), chw(W, H, 3, rgb), 4.5f / 255);
}

// ---------------------------------------------------------------------------------------------- resize and crop

TEST_F(ImageFolder, UpscaleIsBilinearOnAGradientAndExactOnAConstant) {
  // A 4x4 horizontal ramp 0, 40, 80, 120 doubled to 8x8: output x samples source x/2 - 1/4 (pixel centers),
  // clamped at the edges.
  Bytes ramp(16);
  for (size_t i = 0; i < 16; ++i) ramp[i] = static_cast<uint8_t>(40 * (i % 4));
  write("train/a/ramp.png", png8(4, 4, 1, ramp));
  // A 5x3 constant: scale max(6/3, 6/5) = 2 -> 10x6, center crop 6x6.
  write("train/a/wide.png", png8(5, 3, 1, Bytes(15, 77)));
  write("val/a/v.png", png8(8, 8, 1, Bytes(64, 1)));
  for (const char* part : {"train", "val"}) write(fmt::format("{}/b/v.png", part), png8(8, 8, 1, Bytes(64, 1)));
  Split s = veridl::data::load_split(root(), ImageShape{1, 8, 8});
  const std::array<float, 8> want = {0, 10, 30, 50, 70, 90, 110, 120};
  for (size_t y = 0; y < 8; ++y)
    for (size_t x = 0; x < 8; ++x) EXPECT_EQ(s.train.images[y * 8 + x], want[x] / 255.f) << y << "," << x;
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(s.train.images[64 + i], 77 / 255.f);
}

TEST_F(ImageFolder, CenterCropWithoutScaling) {
  // 4 wide x 2 high RGB into 2x2: the scale is 1 (the height already fits), the center columns 1..2 are kept.
  const Bytes px = pattern(4, 2, 3, 30, 70, 11);
  DecodedImage img = veridl::data::decode_image(png8(4, 2, 3, px), "x.png");
  std::vector<float> out(12);
  veridl::data::resize_center_crop(img, ImageShape{3, 2, 2}, out.data());
  for (size_t c = 0; c < 3; ++c)
    for (size_t y = 0; y < 2; ++y)
      for (size_t x = 0; x < 2; ++x) EXPECT_EQ(out[c * 4 + y * 2 + x], px[(y * 4 + x + 1) * 3 + c] / 255.f);
  // A tall image: rows are cropped instead.
  const Bytes tall = pattern(2, 6, 1, 13, 29, 0);
  img = veridl::data::decode_image(png8(2, 6, 1, tall), "t.png");
  veridl::data::resize_center_crop(img, ImageShape{1, 2, 2}, out.data());
  for (size_t y = 0; y < 2; ++y)
    for (size_t x = 0; x < 2; ++x) EXPECT_EQ(out[y * 2 + x], tall[(y + 2) * 2 + x] / 255.f);
}

TEST_F(ImageFolder, ShrinkAveragesInsteadOfSkippingPixels) {
  // A one-pixel checkerboard shrunk 4x: point-sampling bilinear would return pure black or white; the widened
  // triangle filter gives mid-grey away from the edges (its weights sum to 1/2 on each colour).
  const uint32_t n = 16;
  Bytes board(n * n);
  for (uint32_t y = 0; y < n; ++y)
    for (uint32_t x = 0; x < n; ++x) board[y * n + x] = ((x + y) % 2) ? 255 : 0;
  DecodedImage img = veridl::data::decode_image(png8(n, n, 1, board), "b.png");
  std::vector<float> out(16);
  veridl::data::resize_center_crop(img, ImageShape{1, 4, 4}, out.data());
  for (size_t y = 1; y < 3; ++y)
    for (size_t x = 1; x < 3; ++x) EXPECT_NEAR(out[y * 4 + x], 0.5f, 1e-6) << y << "," << x;
  for (float v : out) EXPECT_TRUE(v > 0.3f && v < 0.7f) << v;
  // A constant stays exactly constant under any scale.
  img = veridl::data::decode_image(png8(37, 23, 3, Bytes(37 * 23 * 3, 201)), "c.png");
  std::vector<float> c(3 * 5 * 7);
  veridl::data::resize_center_crop(img, ImageShape{3, 5, 7}, c.data());
  for (float v : c) EXPECT_NEAR(v, 201 / 255.f, 1e-6);
}

TEST_F(ImageFolder, TestDirStandsInForValAndHiddenEntriesAreIgnored) {
  write("train/a/x.png", png8(4, 4, 3, pattern(4, 4, 3, 1, 2, 3)));
  write("train/a/.DS_Store", {1, 2, 3});
  write("train/a/._x.png", {0, 0, 0});  // macOS resource fork: hidden, ignored
  write("train/.cache/junk.txt", {1});
  write("train/.hidden_file", {1});
  write("test/a/y.png", png8(4, 4, 3, pattern(4, 4, 3, 3, 2, 1)));
  for (const char* part : {"train", "test"}) write(fmt::format("{}/b/z.png", part), png8(4, 4, 3, pattern(4, 4, 3, 5, 2, 1)));
  Split s = veridl::data::load_split(root(), ImageShape{3, 4, 4});
  EXPECT_EQ(s.train.n, 2u);
  EXPECT_EQ(s.test.n, 2u);
  EXPECT_EQ(s.test.source, path("test"));
  EXPECT_EQ(s.train.num_classes, 2u);
}

TEST_F(ImageFolder, ResultDoesNotDependOnTheThreadCount) {
  for (int k = 0; k < 12; ++k) {
    const auto w = static_cast<uint32_t>(9 + k), h = static_cast<uint32_t>(13 - k / 2);
    const Bytes px = pattern(w, h, 3, 5 + k, 3, 40);
    write(fmt::format("train/c{}/i{:02d}.png", k % 3, k), png8(w, h, 3, px));
    write(fmt::format("train/c{}/j{:02d}.jpg", k % 3, k), write_jpeg(w, h, 3, JCS_RGB, px, 80));
  }
  for (int c = 0; c < 3; ++c) write(fmt::format("val/c{}/v.png", c), png8(5, 5, 1, Bytes(25, static_cast<uint8_t>(c))));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Split one = veridl::data::load_split(root(), ImageShape{3, 7, 6});
  omp_set_num_threads(2);
  Split two = veridl::data::load_split(root(), ImageShape{3, 7, 6});
  omp_set_num_threads(saved);
  EXPECT_EQ(one.train.images, two.train.images);  // bit for bit
  EXPECT_EQ(one.train.labels, two.train.labels);
  EXPECT_EQ(one.train.n, 24u);
}

// ------------------------------------------------------------------------------------------------ decode errors

TEST_F(ImageFolder, DecodeErrorsAreOneLineNamingTheFile) {
  using veridl::data::decode_image;
  auto err = [](const Bytes& b, uint32_t max_side = veridl::data::kMaxImageSide) {
    return error_of([&] { decode_image(b, "d/x.jpg", max_side); });
  };
  const std::string html = "<!DOCTYPE html><html>";
  EXPECT_EQ(err(Bytes(html.begin(), html.end())), "image file 'd/x.jpg': not a PNG or JPEG file (starts with 3c 21 44 4f)");
  EXPECT_EQ(err(Bytes{'G', 'I', 'F', '8', '9', 'a', 0, 0}),
            "image file 'd/x.jpg': not a PNG or JPEG file (starts with 47 49 46 38, a GIF file)");
  EXPECT_EQ(err({}), "image file 'd/x.jpg': not a PNG or JPEG file (the file is empty)");
  EXPECT_EQ(err({0x42}), "image file 'd/x.jpg': not a PNG or JPEG file (starts with 42)");

  // PNG: truncated anywhere (in the signature, the pixel data, or just before IEND).
  const Bytes png = png8(20, 20, 3, pattern(20, 20, 3, 7, 11, 13));
  EXPECT_EQ(err(Bytes(png.begin(), png.begin() + 5)), "image file 'd/x.jpg': truncated PNG (the file ends after 5 bytes)");
  const size_t half = png.size() / 2;
  EXPECT_EQ(err(Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(half))),
            fmt::format("image file 'd/x.jpg': truncated PNG (the file ends after {} bytes)", half));
  EXPECT_EQ(err(Bytes(png.begin(), png.end() - 12)),
            fmt::format("image file 'd/x.jpg': truncated PNG (the file ends after {} bytes)", png.size() - 12));
  for (size_t cut = 1; cut < png.size(); ++cut)  // every prefix is refused with one line, never accepted
    ASSERT_EQ(err(Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(cut))).find("truncated PNG"), 22u) << cut;
  Bytes bad_crc = png;
  bad_crc[png.size() / 2] ^= 0x55;  // inside IDAT: zlib's check (or the chunk CRC) no longer matches
  EXPECT_EQ(err(bad_crc), "image file 'd/x.jpg': corrupt PNG data: IDAT: incorrect data check");
  // Header dims are checked before anything is allocated.
  EXPECT_EQ(err(png_header_only(0, 0)), "image file 'd/x.jpg': image is 0x0");
  EXPECT_EQ(err(png_header_only(100000, 100000)),
            "image file 'd/x.jpg': 100000x100000 image exceeds the 16384 pixel side limit");
  EXPECT_EQ(err(png, 16), "image file 'd/x.jpg': 20x20 image exceeds the 16 pixel side limit");

  // JPEG.
  const Bytes jpg = write_jpeg(32, 24, 3, JCS_RGB, pattern(32, 24, 3, 5, 9, 60), 90);
  const size_t jhalf = jpg.size() / 2;
  EXPECT_EQ(err(Bytes(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>(jhalf))),
            fmt::format("image file 'd/x.jpg': truncated JPEG (the file ends after {} bytes, before the end-of-image "
                        "marker)",
                        jhalf));
  EXPECT_EQ(err(Bytes(jpg.begin(), jpg.begin() + 2)), "image file 'd/x.jpg': truncated JPEG (the file ends after 2 bytes)");
  for (size_t cut = 3; cut < jpg.size(); ++cut) {  // every prefix is refused (a JPEG has no checksum, but an end marker)
    std::string m = err(Bytes(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>(cut)));
    ASSERT_EQ(m.find("image file 'd/x.jpg': "), 0u) << cut << ": " << m;
    ASSERT_EQ(m.find('\n'), std::string::npos) << m;
  }
  // Corrupt but decodable: libjpeg only warns; we refuse.
  Bytes extra = jpg;
  extra.insert(extra.begin() + static_cast<std::ptrdiff_t>(sof_at(jpg)), {'a', 'b', 'c'});  // garbage between markers
  EXPECT_EQ(err(extra), "image file 'd/x.jpg': corrupt JPEG data: 3 extraneous bytes before marker 0xc0");
  // A libjpeg error (error_exit): a SOF marker whose length does not match its component count.
  Bytes bad_len = jpg;
  put16(bad_len, sof_at(jpg) + 2, 5);
  EXPECT_EQ(err(bad_len), "image file 'd/x.jpg': corrupt JPEG data: Bogus marker length");
  Bytes zero = jpg;
  put16(zero, sof_at(jpg) + 5, 0);
  put16(zero, sof_at(jpg) + 7, 0);
  EXPECT_EQ(err(zero), "image file 'd/x.jpg': image is 0x0");
  Bytes huge = jpg;
  put16(huge, sof_at(jpg) + 7, 20000);  // width
  EXPECT_EQ(err(huge), "image file 'd/x.jpg': 20000x24 image exceeds the 16384 pixel side limit");
  EXPECT_EQ(err(write_jpeg(4, 4, 4, JCS_CMYK, Bytes(64, 10))),
            "image file 'd/x.jpg': CMYK JPEG is not supported (convert it to RGB, e.g. `convert x.jpg -colorspace sRGB "
            "x.jpg`)");
  // A PNG named .jpg is fine: the magic bytes decide.
  EXPECT_EQ(decode_image(png, "d/x.jpg").width, 20u);
}

// ------------------------------------------------------------------------------------------------ folder errors

TEST_F(ImageFolder, BadFilesInTheFolderNameTheFile) {
  minimal();
  const std::string html = "<!DOCTYPE html>";
  write("train/b/two.jpg", Bytes(html.begin(), html.end()));
  EXPECT_EQ(load_error(),
            "image file '" + path("train/b/two.jpg") + "': not a PNG or JPEG file (starts with 3c 21 44 4f)");
  fs::remove(path("train/b/two.jpg"));

  // With several bad files, the first in (class, name) order is reported, whatever the threads do.
  const Bytes png = png8(4, 4, 3, pattern(4, 4, 3, 1, 1, 1));
  write("train/b/p.png", Bytes(png.begin(), png.begin() + 40));
  write("train/b/q.png", Bytes{1, 2, 3, 4});
  write("train/a/z.png", Bytes(png.begin(), png.begin() + 30));
  EXPECT_EQ(load_error(), "image file '" + path("train/a/z.png") + "': truncated PNG (the file ends after 30 bytes)");
  fs::remove(path("train/a/z.png"));
  EXPECT_EQ(load_error(), "image file '" + path("train/b/p.png") + "': truncated PNG (the file ends after 40 bytes)");
  fs::remove(path("train/b/p.png"));
  fs::remove(path("train/b/q.png"));

  write("val/a/notes.txt", {'h', 'i'});
  EXPECT_EQ(load_error(), "image folder '" + root() + "': '" + path("val/a/notes.txt") +
                              "' is not an image file (expected .png, .jpg or .jpeg; hidden files are ignored)");
  fs::remove(path("val/a/notes.txt"));
  fs::create_directories(path("val/a/nested"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': '" + path("val/a/nested") +
                              "' is a directory; class directories hold only image files");
  fs::remove(path("val/a/nested"));
  write("train/README.md", {'#'});
  EXPECT_EQ(load_error(), "image folder '" + root() + "': '" + path("train/README.md") +
                              "' is not a directory; train/ holds one sub-directory per class (hidden files are ignored)");
  fs::remove(path("train/README.md"));
  EXPECT_NO_THROW(veridl::data::load_split(root(), ImageShape{3, 4, 4}));
}

TEST_F(ImageFolder, LayoutErrors) {
  minimal();
  fs::create_directories(path("train/c"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': val/ must hold the same classes as train/: class 'c' missing from val/");
  fs::create_directories(path("val/c"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': class directory '" + path("train/c") + "' holds no images");
  write("val/c/.keep", {});  // hidden: still empty
  write("train/c/x.png", png8(4, 4, 1, Bytes(16, 3)));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': class directory '" + path("val/c") + "' holds no images");
  fs::remove_all(path("train/c"));
  fs::create_directories(path("val/d"));
  EXPECT_EQ(load_error(), "image folder '" + root() +
                              "': val/ must hold the same classes as train/: classes 'c', 'd' not in train/");
  fs::remove_all(path("val/c"));
  fs::remove_all(path("val/b"));
  EXPECT_EQ(load_error(), "image folder '" + root() +
                              "': val/ must hold the same classes as train/: class 'b' missing from val/; class 'd' not in train/");
  fs::remove_all(path("val"));
  EXPECT_EQ(load_error(), "image folder '" + root() +
                              "': no val/ or test/ directory beside train/ (expected val/<class>/*.jpg|png)");
  fs::rename(path("train"), path("val"));
  EXPECT_EQ(load_error(), "image folder '" + root() +
                              "': no train/ directory (expected train/<class>/*.jpg|png and val/<class>/*.jpg|png)");
  fs::create_directories(path("train"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': '" + path("train") +
                              "' holds no class sub-directories (expected train/<class>/*.jpg|png)");
}

// The class count is checked when the class directories are listed, before any image is decoded (the corrupt
// image below would otherwise be the error): fewer than two classes, or not the network's output width.
TEST_F(ImageFolder, ClassCountIsCheckedBeforeAnyImageIsDecoded) {
  minimal();
  write("train/a/broken.png", Bytes{1, 2, 3});
  EXPECT_EQ(load_error({3, 4, 4, 3}), "image folder '" + root() +
                                          "': train/ holds 2 classes but the network's last layer has 3 outputs (its "
                                          "fanOut must equal the number of classes)");
  EXPECT_NE(load_error({3, 4, 4, 2}).find("broken.png"), std::string::npos);  // the right count: decoding goes on
  fs::remove_all(path("train/b"));
  fs::remove_all(path("val/b"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': train/ holds 1 class directory ('a'); a classifier needs at least two");
  // Through the command line: the spec's output width is the class count asked for.
  fs::remove(path("train/a/broken.png"));
  for (const char* part : {"train", "val"}) write(fmt::format("{}/b/one.png", part), png8(4, 4, 3, pattern(4, 4, 3, 1, 2, 3)));
  const Cmd c = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + root());
  EXPECT_NE(c.status, 0);
  EXPECT_NE(c.out.find("train/ holds 2 classes but the network's last layer has 10 outputs"), std::string::npos) << c.out;
}

// train/, val/ and test/ together: val/ is the validation set (evaluated every epoch), test/ the test set; the
// hold-out split then does not apply.
TEST_F(ImageFolder, TrainValAndTestFoldersAreValidationAndTest) {
  minimal();
  for (const char* cls : {"a", "b"}) {
    write(fmt::format("test/{}/t1.png", cls), png8(4, 4, 3, pattern(4, 4, 3, 2, 7, 1)));
    write(fmt::format("test/{}/t2.png", cls), png8(4, 4, 3, pattern(4, 4, 3, 4, 1, 9)));
  }
  Split s = veridl::data::load_split(root(), ImageShape{3, 4, 4});
  EXPECT_EQ(s.train.n, 2u);
  EXPECT_EQ(s.val.n, 2u);
  EXPECT_EQ(s.val.source, path("val"));
  EXPECT_EQ(s.test.n, 4u);
  EXPECT_EQ(s.test.source, path("test"));
  fs::remove_all(path("test/b"));
  EXPECT_EQ(load_error(), "image folder '" + root() + "': test/ must hold the same classes as train/: class 'b' missing from test/");
  write("test/b/t.png", png8(4, 4, 3, pattern(4, 4, 3, 2, 7, 1)));
  const std::string spec = write("tiny.json", [] {
    std::string j = R"({"name": "Tiny-RGB", "imageH": 4, "imageW": 4, "channels": 3,
      "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 48, "fanOut": 2}],
      "recipe": {"optimizer": "sgd", "lr": 0.1, "batch": 2, "epochs": 1}})";
    return Bytes(j.begin(), j.end());
  }());
  Cmd t = sh("train --spec " + spec + " --data " + root() + " --no-progress --threads 2");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("train: 2 images (48 floats/image), validation: 2 images, test: 3 images"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("  val accuracy: "), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("  test accuracy: "), std::string::npos) << t.out;
  Cmd v = sh("train --spec " + spec + " --data " + root() + " --no-progress --val-split 0.5");
  EXPECT_NE(v.out.find("--val-split does not apply: the dataset '" + root() + "' has its own validation set"),
            std::string::npos)
      << v.out;
}

TEST_F(ImageFolder, ShapeErrors) {
  minimal();
  EXPECT_EQ(error_of([&] { veridl::data::load_split(root()); }),
            "directory '" + root() +
                "' is an image folder: its images are resized to the network's input, so load_split needs the input "
                "shape (C x H x W)");
  EXPECT_EQ(load_error({2, 4, 4}), "image folder '" + root() +
                                       "': the network's input is 2x4x4, but images load as 1 (grey) or 3 (RGB) "
                                       "channels of 1..16384 pixels a side");
  // The IDX/CIFAR message now mentions image folders too.
  fs::remove_all(path("train"));
  fs::remove_all(path("val"));
  std::string m = load_error();
  EXPECT_NE(m.find("holds no dataset"), std::string::npos) << m;
  EXPECT_NE(m.find("or an image folder train/<class>/*.jpg|png with val/<class>/*.jpg|png"), std::string::npos) << m;
}

// ------------------------------------------------------------------------------------------ random-resized-crop

// Every part occurs in the (multi-line) output.
::testing::AssertionResult has_all(const std::string& out, std::initializer_list<std::string> parts) {
  for (const std::string& p : parts)
    if (out.find(p) == std::string::npos) return ::testing::AssertionFailure() << "no \"" << p << "\" in:\n" << out;
  return ::testing::AssertionSuccess();
}

// A w x h RGB image whose pixel (x, y) is (x * kx, y * ky, 77): a crop's box can be read back from the output.
Bytes coordinates(uint32_t w, uint32_t h, int kx = 1, int ky = 1) {
  Bytes px(size_t{w} * h * 3);
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x) {
      uint8_t* p = &px[(size_t{y} * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * kx);
      p[1] = static_cast<uint8_t>(y * ky);
      p[2] = 77;
    }
  return px;
}

// Independent bilinear resize of a box (an enlargement: box sides at most the output's), written from the definition:
// output pixel o samples source coordinate x0 + (o + 1/2) * w / W - 1/2, clamped to the box, interpolated linearly
// between its two neighbours (in double).
std::vector<double> bilinear_crop(const std::function<double(size_t, size_t, size_t)>& px, size_t C,
                                  const veridl::data::CropBox& box, size_t H, size_t W) {
  auto axis = [](size_t b0, size_t len, size_t n, size_t o, size_t& i0, size_t& i1, double& t) {
    double c = double(b0) + (double(o) + 0.5) * double(len) / double(n) - 0.5;
    c = std::clamp(c, double(b0), double(b0 + len - 1));
    i0 = static_cast<size_t>(std::floor(c));
    i1 = std::min(i0 + 1, b0 + len - 1);
    t = c - double(i0);
  };
  std::vector<double> out(C * H * W);
  for (size_t y = 0; y < H; ++y)
    for (size_t x = 0; x < W; ++x) {
      size_t y0, y1, x0, x1;
      double ty, tx;
      axis(box.y0, box.h, H, y, y0, y1, ty);
      axis(box.x0, box.w, W, x, x0, x1, tx);
      for (size_t c = 0; c < C; ++c)
        out[(c * H + y) * W + x] = (1 - ty) * ((1 - tx) * px(c, y0, x0) + tx * px(c, y0, x1)) +
                                   ty * ((1 - tx) * px(c, y1, x0) + tx * px(c, y1, x1));
    }
  return out;
}

TEST_F(ImageFolder, ResizedCropOfACoordinateImageReadsBackItsBox) {
  // A 200 x 150 image shrunk into 32 x 32 crops: the filter averages a linear ramp to (nearly) its value at the
  // output pixel's center, x0 + (o + 1/2) w / 32 - 1/2, so a least-squares line through the interior outputs gives
  // back x0 and w (and y0, h from the green ramp), which must be the box random_resized_crop_box chose.
  const uint32_t w = 200, h = 150;
  const DecodedImage img = veridl::data::decode_image(png8(w, h, 3, coordinates(w, h)), "c.png");
  const size_t S = 32;
  std::vector<float> out(3 * S * S);
  // Fit v(o) = a + b (o + 1/2) over o in [lo, hi): b = side / S, a = start - 1/2.
  auto fit = [&](auto value) {
    const size_t lo = 6, hi = S - 6;
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = double(hi - lo);
    for (size_t o = lo; o < hi; ++o) {
      const double t = double(o) + 0.5, v = value(o);
      sx += t;
      sy += v;
      sxx += t * t;
      sxy += t * v;
    }
    const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
    return std::pair<double, double>{a + 0.5, b * double(S)};  // start, side
  };
  size_t upscaled = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    const veridl::data::CropBox box = veridl::data::random_resized_crop_box(w, h, seed);
    veridl::data::resized_crop(img, box, ImageShape{3, S, S}, out.data());
    const auto [x0, bw] = fit([&](size_t o) { return 255.0 * out[0 * S * S + (S / 2) * S + o]; });  // red along a row
    const auto [y0, bh] = fit([&](size_t o) { return 255.0 * out[1 * S * S + o * S + S / 2]; });    // green down a column
    ASSERT_NEAR(x0, double(box.x0), 0.25) << "seed " << seed << " box " << box.w << "x" << box.h;
    ASSERT_NEAR(bw, double(box.w), 0.25) << "seed " << seed;
    ASSERT_NEAR(y0, double(box.y0), 0.25) << "seed " << seed;
    ASSERT_NEAR(bh, double(box.h), 0.25) << "seed " << seed;
    // Nothing outside the box is read: the ramps stay within the box's values.
    for (size_t k = 0; k < S * S; ++k) {
      ASSERT_GE(out[k] * 255.f, float(box.x0) - 1e-3f);
      ASSERT_LE(out[k] * 255.f, float(box.x0 + box.w - 1) + 1e-3f);
      ASSERT_GE(out[S * S + k] * 255.f, float(box.y0) - 1e-3f);
      ASSERT_LE(out[S * S + k] * 255.f, float(box.y0 + box.h - 1) + 1e-3f);
      ASSERT_NEAR(out[2 * S * S + k], 77 / 255.f, 1e-6);
    }
    upscaled += box.w < S;
  }
  EXPECT_EQ(upscaled, 0u);  // every crop of this image is at least 42 pixels a side: all shrinks
}

TEST_F(ImageFolder, ResizedCropEnlargingIsBilinearAndTheWholeBoxIsTheResize) {
  // A 24 x 18 image cropped into 40 x 40: every box is enlarged, so the filter is plain bilinear, clamped to the box.
  const uint32_t w = 24, h = 18;
  const Bytes px = pattern(w, h, 3, 9, 13, 50);
  const DecodedImage img = veridl::data::decode_image(png8(w, h, 3, px), "p.png");
  auto sample = [&](size_t c, size_t y, size_t x) { return double(px[(y * w + x) * 3 + c]) / 255.0; };
  std::vector<float> out(3 * 40 * 40);
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    const veridl::data::CropBox box = veridl::data::random_resized_crop_box(w, h, seed);
    veridl::data::resized_crop(img, box, ImageShape{3, 40, 40}, out.data());
    const std::vector<double> want = bilinear_crop(sample, 3, box, 40, 40);
    for (size_t k = 0; k < out.size(); ++k) ASSERT_NEAR(out[k], want[k], 2e-6) << "seed " << seed << " at " << k;
  }
  // The whole image as the box, at its own size: an exact copy; at a size of the same aspect ratio: the resize
  // (resize_center_crop has nothing to crop then).
  veridl::data::resized_crop(img, {0, 0, w, h}, ImageShape{3, h, w}, out.data());
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 3 * w * h), chw(w, h, 3, px));
  const DecodedImage big = veridl::data::decode_image(png8(64, 48, 3, pattern(64, 48, 3, 3, 5, 7)), "b.png");
  std::vector<float> a(3 * 24 * 32), b(3 * 24 * 32);
  veridl::data::resized_crop(big, {0, 0, 64, 48}, ImageShape{3, 24, 32}, a.data());
  veridl::data::resize_center_crop(big, ImageShape{3, 24, 32}, b.data());
  for (size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(a[k], b[k], 1e-6) << k;
  // A box that is not inside the image is refused.
  EXPECT_EQ(error_of([&] { veridl::data::resized_crop(img, {20, 0, 5, 4}, ImageShape{3, 4, 4}, out.data()); }),
            "resized_crop: box 5x4 at (20, 0) is not inside the 24x18 image");
}

TEST_F(ImageFolder, ResizedCropOfIdxBytesIsBilinearToo) {
  // IDX / CIFAR-10 images are cropped from their own bytes (the decision for non-folder data: apply, not refuse).
  veridl::data::Dataset ds;
  ds.n = 2;
  ds.C = 1;
  ds.H = 12;
  ds.W = 10;
  for (size_t i = 0; i < 2; ++i)
    for (size_t y = 0; y < 12; ++y)
      for (size_t x = 0; x < 10; ++x) ds.pixels.push_back(static_cast<uint8_t>(20 * x + 7 * y + 3 * i));
  ds.labels = {0, 1};
  std::vector<float> out(120);
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    const veridl::data::CropBox box = veridl::data::random_resized_crop_box(10, 12, seed);
    ds.crop_resize(1, box, out.data());
    const auto want = bilinear_crop([&](size_t, size_t y, size_t x) { return double(ds.pixels[120 + y * 10 + x]) / 255.0; },
                                    1, box, 12, 10);
    for (size_t k = 0; k < 120; ++k) ASSERT_NEAR(out[k], want[k], 2e-6) << seed << " " << k;
  }
  ds.crop_resize(0, {0, 0, 10, 12}, out.data());  // the whole image: the image
  const std::vector<float> all = ds.floats();
  EXPECT_EQ(out, std::vector<float>(all.begin(), all.begin() + 120));
}

// An Imagenette-like folder: class folders (WordNet ids) of JPEGs whose shorter side is 160 or 320 pixels.
void imagenette(const std::function<std::string(const std::string&, const Bytes&)>& write, int per_class_train,
                int per_class_val) {
  const char* classes[] = {"n01440764", "n02102040", "n02979186"};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < per_class_train + per_class_val; ++i) {
      // 160 px (213 x 160 landscape, 160 x 240 portrait) and 320 px (427 x 320) images, as in Imagenette's versions.
      const uint32_t w = i % 3 == 0 ? 213 : i % 3 == 1 ? 160 : 427, h = i % 3 == 0 ? 160 : i % 3 == 1 ? 240 : 320;
      Bytes px(size_t{w} * h * 3);
      for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c)
            px[(size_t{y} * w + x) * 3 + c] =
                static_cast<uint8_t>((x * 7 + y * 3 + i * 11 + 40 * c) % 160 + (c == k ? 60 : 0));
      const std::string part = i < per_class_train ? "train" : "val";
      write(fmt::format("{}/{}/{}_{}.JPEG", part, classes[k], classes[k], i), write_jpeg(w, h, 3, JCS_RGB, px, 85));
    }
}

TEST_F(ImageFolder, StoredTrainingImagesForResizedCrop) {
  // Net input 32 x 32: images are stored with their shorter side at ceil(32 * 8/7) = 37, or as they are if smaller.
  Bytes big(96 * 64 * 3);  // smooth ramps: resizing in two steps (stored, then cropped) stays close to one step
  for (size_t y = 0; y < 64; ++y)
    for (size_t x = 0; x < 96; ++x)
      for (size_t c = 0; c < 3; ++c) big[(y * 96 + x) * 3 + c] = static_cast<uint8_t>(x + y + 30 * c);
  const Bytes small = pattern(30, 20, 1, 7, 9, 0);
  write("train/a/big.png", png8(96, 64, 3, big));
  write("train/a/small.png", png8(30, 20, 1, small));
  write("train/b/tall.png", png8(40, 75, 3, pattern(40, 75, 3, 2, 4, 6)));
  write("val/a/v.png", png8(96, 64, 3, big));
  write("val/b/v.png", png8(30, 20, 1, small));
  EXPECT_EQ(veridl::data::stored_side(32, 32), 37u);
  EXPECT_EQ(veridl::data::stored_side(224, 224), 256u);
  const ImageShape shape{3, 32, 32};
  Split s = veridl::data::load_split(root(), shape, veridl::data::TrainImages::Stored);
  ASSERT_EQ(s.train.n, 3u);
  EXPECT_TRUE(s.train.images.empty());  // kept once: as stored bytes
  ASSERT_EQ(s.train.stored.size(), 3u);
  EXPECT_EQ(s.train.C, 3u);
  EXPECT_EQ(s.train.H, 32u);
  EXPECT_EQ(s.train.image_size(), 3u * 32 * 32);
  // 96 x 64 -> shorter side 37, longer round(96 * 37 / 64) = round(55.5) = 56 (llround: half away from zero).
  EXPECT_EQ(s.train.stored_size(0), (std::pair<size_t, size_t>{56, 37}));
  EXPECT_EQ(s.train.stored[0].channels, 3u);
  EXPECT_EQ(s.train.stored_size(1), (std::pair<size_t, size_t>{30, 20}));  // smaller than 37: as decoded
  EXPECT_EQ(s.train.stored[1].channels, 1u);                               // grey stays grey (1 byte a pixel)
  EXPECT_EQ(s.train.stored[1].pixels, small);
  EXPECT_EQ(s.train.stored_size(2), (std::pair<size_t, size_t>{37, 69}));  // 40 x 75: round(75 * 37 / 40) = 69
  // The shrunk image is the whole-image resize, rounded to bytes.
  const DecodedImage dbig = veridl::data::decode_image(png8(96, 64, 3, big), "b.png");
  std::vector<float> f(3 * 37 * 56);
  veridl::data::resized_crop(dbig, {0, 0, 96, 64}, ImageShape{3, 37, 56}, f.data());
  for (size_t c = 0; c < 3; ++c)
    for (size_t k = 0; k < 37 * 56; ++k)
      ASSERT_EQ(s.train.stored[0].pixels[k * 3 + c], static_cast<uint8_t>(std::lround(f[c * 37 * 56 + k] * 255.f))) << k;
  // The test split is resized and center-cropped as without the option; copy_images of a stored image is its resize +
  // center crop (exactly the file's when it was kept as decoded).
  Split plain = veridl::data::load_split(root(), shape);
  EXPECT_EQ(s.test.images, plain.test.images);
  EXPECT_TRUE(s.test.stored.empty());
  std::vector<float> got(3 * 32 * 32);
  s.train.copy_images(1, 1, got.data());
  EXPECT_EQ(got, image_of(plain.train, 1));
  s.train.copy_images(0, 1, got.data());
  const std::vector<float> want = image_of(plain.train, 0);
  for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], want[k], 3.0 / 255) << k;  // from the stored bytes
  // Crop boxes are in the stored image's coordinates.
  std::vector<float> whole(3 * 32 * 32);
  EXPECT_EQ(error_of([&] { s.train.crop_resize(0, {0, 0, 57, 37}, whole.data()); }),
            "resized_crop: box 57x37 at (0, 0) is not inside the 56x37 image");
}

TEST_F(ImageFolder, ResizedCropsAreSeededPerExampleAndChangeEveryEpoch) {
  imagenette([&](const std::string& rel, const Bytes& b) { return write(rel, b); }, 2, 1);
  Split s = veridl::data::load_split(root(), ImageShape{3, 24, 24}, veridl::data::TrainImages::Stored);
  ASSERT_EQ(s.train.n, 6u);
  veridl::data::AugmentConfig cfg;
  cfg.resized_crop = true;
  const size_t D = s.train.image_size();
  auto crop = [&](size_t i, uint64_t batch_seed, size_t b) {
    std::vector<float> out(D);
    veridl::data::gather_example(s.train, i, cfg, batch_seed, b, out.data());
    return out;
  };
  for (size_t i = 0; i < s.train.n; ++i) {
    EXPECT_EQ(crop(i, 10003, 2), crop(i, 10003, 2));  // the same seed, epoch and place: the same crop, bit for bit
    EXPECT_NE(crop(i, 3, 2), crop(i, 10003, 2));      // batch 3 of epoch 0 vs of epoch 1
    EXPECT_NE(crop(i, 3, 2), crop(i, 3, 1));          // another place in the batch
    // It is the crop of the box drawn for that example's stream.
    const auto [w, h] = s.train.stored_size(i);
    std::vector<float> want(D);
    s.train.crop_resize(i, veridl::data::random_resized_crop_box(w, h, veridl::data::example_seed(10003, 2)), want.data());
    EXPECT_EQ(crop(i, 10003, 2), want);
  }
  // Without the option the gather is the resized, center-cropped image.
  cfg.resized_crop = false;
  std::vector<float> plain(D);
  s.train.copy_images(4, 1, plain.data());
  EXPECT_EQ(crop(4, 10003, 2), plain);
}

TEST_F(ImageFolder, TrainingWithResizedCropIsBitIdenticalForAnyThreadCount) {
  imagenette([&](const std::string& rel, const Bytes& b) { return write(rel, b); }, 4, 1);
  const Split s = veridl::data::load_split(root(), ImageShape{3, 16, 16}, veridl::data::TrainImages::Stored);
  const veridl::net::NetSpec spec =
      veridl::net::NetBuilder("Tiny-RGB").image(16, 16, 3).flatten().dense(768, 3).build();
  auto run = [&](int threads, bool resized_crop) {
    veridl::train::TrainConfig c;
    c.epochs = 2;
    c.batch = 4;
    c.threads = threads;
    c.augment.resized_crop = resized_crop;
    c.augment.flip = true;
    c.normalize = veridl::data::Normalize::ImageNet;
    c.log = std::fopen("/dev/null", "w");
    veridl::train::TrainResult r = veridl::train::train(spec, c, s);
    std::fclose(c.log);
    return r;
  };
  const int saved = omp_get_max_threads();
  const auto a = run(2, true), b = run(2, true), one = run(1, true), off = run(2, false);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.step_loss, b.step_loss);
  EXPECT_EQ(a.model.params, b.model.params);
  EXPECT_EQ(a.model.params, one.model.params);
  EXPECT_NE(a.step_loss, off.step_loss);  // the crops are used
}

// ---------------------------------------------------------------------------------------------- command line


TEST_F(ImageFolder, CliTrainsAndEvaluatesOnAGeneratedFolder) {
  // Two colours, images of assorted sizes and formats: the network sees 8x8 RGB.
  for (int i = 0; i < 8; ++i) {
    const auto w = static_cast<uint32_t>(8 + i), h = static_cast<uint32_t>(12 - i / 2);
    Bytes red(size_t{w} * h * 3), blue(size_t{w} * h * 3);
    for (size_t p = 0; p < size_t{w} * h; ++p) {
      red[3 * p] = static_cast<uint8_t>(200 + i);
      red[3 * p + 1] = red[3 * p + 2] = 20;
      blue[3 * p] = blue[3 * p + 1] = 30;
      blue[3 * p + 2] = static_cast<uint8_t>(210 - i);
    }
    const std::string part = i < 6 ? "train" : "val";
    write(fmt::format("{}/red/r{}.png", part, i), png8(w, h, 3, red));
    write(fmt::format("{}/blue/b{}.jpg", part, i), write_jpeg(w, h, 3, JCS_RGB, blue, 90));
  }
  const std::string spec = write("tiny.json", [] {
    std::string s = R"({"name": "Tiny-RGB", "imageH": 8, "imageW": 8, "channels": 3,
      "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 192, "fanOut": 2, "activation": "identity"}],
      "recipe": {"optimizer": "sgd", "lr": 0.1, "batch": 4, "epochs": 1}})";
    return Bytes(s.begin(), s.end());
  }());
  const std::string ck = path("m.safetensors");
  Cmd t = sh("train --spec " + spec + " --data " + root() + " --no-progress --threads 2 --val-split 0 --out " + ck);
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("train: 12 images (192 floats/image), test: 4 images, from " + root()), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("Epoch  1/1: loss="), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("test accuracy: "), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("val accuracy: "), std::string::npos) << t.out;  // --val-split 0: no validation set
  EXPECT_NE(t.out.find("/4 = "), std::string::npos) << t.out;
  // eval takes the folder from the checkpoint's metadata and the shape from its spec.
  Cmd e = sh("eval --checkpoint " + ck);
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("test accuracy: "), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("/4 = "), std::string::npos) << e.out;

  // A bad image: exit 2 and one line naming it.
  write("val/red/broken.png", {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0});
  Cmd b = sh("train --spec " + spec + " --data " + root() + " --no-progress");
  EXPECT_EQ(b.status, 2) << b.out;
  EXPECT_EQ(b.out, "veridl train: error: image file '" + path("val/red/broken.png") +
                       "': truncated PNG (the file ends after 10 bytes)\n");
}


TEST_F(ImageFolder, CliTrainsAnImagenetteLayoutWithResizedCropAndImageNetNormalisation) {
  imagenette([&](const std::string& rel, const Bytes& b) { return write(rel, b); }, 4, 2);
  auto spec_file = [&](const std::string& name, const std::string& recipe_extra) {
    const std::string text = R"({"name": "Tiny-Imagenette", "imageH": 32, "imageW": 32, "channels": 3,
      "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 3072, "fanOut": 3, "activation": "identity"}],
      "recipe": {"optimizer": "sgd", "lr": 0.001, "batch": 4, "epochs": 1, "augmentFlip": true)" +
                             recipe_extra + "}}";
    return write(name, Bytes(text.begin(), text.end()));
  };
  // Both options from the recipe.
  const std::string spec = spec_file("rrc.json", R"(, "augmentResizedCrop": true, "normalize": "imagenet")");
  const std::string ck = path("m.safetensors");
  Cmd t = sh("train --spec " + spec + " --data " + root() + " --no-progress --threads 2 --val-split 0 --out " + ck);
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_TRUE(has_all(t.out, {"train: 12 images (3072 floats/image), test: 6 images",
                               "augmentation: random crop pad 0, horizontal flip on, random-resized-crop (scale "
                               "0.08-1, ratio 3/4-4/3) from images stored at shorter side <= 37",
                               "normalization: imagenet (mean 0.485 0.456 0.406, std 0.229 0.224 0.225)",
                               "Epoch  1/1: loss=", "test accuracy: ", "/6 = "}))
      << t.out;
  // The checkpoint records both (for resume and for eval); eval normalises the test images as training did: its
  // mean loss is the normalised evaluation's, not the raw one's.
  const veridl::train::Checkpoint c = veridl::train::load_safetensors(ck);
  EXPECT_TRUE(mentions(c.metadata.at("config"), {R"("augmentResizedCrop":true)", R"("normalize":"imagenet")"}));
  const veridl::train::Resumable r = veridl::train::load_resume_state(ck);
  EXPECT_TRUE(r.cfg.augment.resized_crop);
  EXPECT_EQ(r.cfg.normalize, veridl::data::Normalize::ImageNet);
  EXPECT_EQ(veridl::train::checkpoint_normalization(c, r.spec, ck), veridl::data::Normalize::ImageNet);
  const veridl::net::Plan plan = veridl::net::compile(r.spec, 1);
  const veridl::train::Model model = veridl::train::model_from_checkpoint(plan, c, ck);
  const Split s = veridl::data::load_split(root(), ImageShape{3, 32, 32});
  const double with = veridl::train::evaluate(plan, model, s.test, veridl::data::Normalize::ImageNet).loss;
  const double without = veridl::train::evaluate(plan, model, s.test).loss;
  ASSERT_NE(fmt::format("{:.6f}", with), fmt::format("{:.6f}", without));
  Cmd e = sh("eval --checkpoint " + ck);
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_TRUE(has_all(e.out, {fmt::format("mean loss {:.6f}", with)})) << e.out;

  // The same from the command line's flags, over a recipe without them: the same run, bit for bit.
  const std::string plain_spec = spec_file("plain.json", "");
  const std::string ck2 = path("m2.safetensors");
  Cmd f = sh("train --spec " + plain_spec + " --data " + root() +
             " --resized-crop --normalize imagenet --no-progress --threads 1 --val-split 0 --out " + ck2);
  ASSERT_EQ(f.status, 0) << f.out;
  const veridl::train::Checkpoint c2 = veridl::train::load_safetensors(ck2);
  EXPECT_EQ(veridl::train::model_from_checkpoint(plan, c2, ck2).params, model.params);
  // Without them the run differs.
  Cmd g = sh("train --spec " + plain_spec + " --data " + root() + " --no-progress --threads 2 --val-split 0 --out " + ck2);
  ASSERT_EQ(g.status, 0) << g.out;
  EXPECT_EQ(g.out.find("random-resized-crop"), std::string::npos) << g.out;
  EXPECT_EQ(g.out.find("normalization"), std::string::npos) << g.out;
  EXPECT_NE(veridl::train::model_from_checkpoint(plan, veridl::train::load_safetensors(ck2), ck2).params, model.params);
}

TEST_F(ImageFolder, ResizedCropAndNormaliseErrorsAreOneLineBeforeAnyWork) {
  auto spec_with = [&](const std::string& name, int channels, const std::string& recipe) {
    const std::string text = fmt::format(R"({{"name": "T", "imageH": 8, "imageW": 8, "channels": {},
      "layers": [{{"type": "flatten"}}, {{"type": "dense", "fanIn": {}, "fanOut": 2}}], "recipe": {{{}}}}})",
                                         channels, 64 * channels, recipe);
    return write(name, Bytes(text.begin(), text.end()));
  };
  // --data names nothing that exists: every error below comes before the data is looked at.
  const std::string nodata = " --data " + path("no-such-data") + " --no-progress";
  const std::string bad_name = spec_with("a.json", 3, R"("normalize": "imagnet")");
  Cmd a = sh("train --spec " + bad_name + nodata);
  EXPECT_EQ(a.status, 2);
  EXPECT_EQ(a.out, "veridl train: error: " + bad_name + ": recipe: field 'normalize' must be \"none\", \"imagenet\", \"mnist\", \"fashion-mnist\" or \"cifar10\", got \"imagnet\"\n");
  const std::string bad_bool = spec_with("b.json", 3, R"("augmentResizedCrop": 1)");
  Cmd b = sh("train --spec " + bad_bool + nodata);
  EXPECT_EQ(b.status, 2);
  EXPECT_EQ(b.out, "veridl train: error: " + bad_bool + ": recipe: field 'augmentResizedCrop' must be true or false, got 1\n");
  const std::string grey = spec_with("c.json", 1, R"("normalize": "imagenet")");
  Cmd c = sh("train --spec " + grey + nodata);
  EXPECT_EQ(c.status, 2);
  EXPECT_EQ(c.out, "veridl train: error: " + grey +
                       ": recipe.normalize: \"imagenet\" needs an RGB input (channels 3), but the network's input has 1 "
                       "channel\n");
  const std::string ok = spec_with("d.json", 3, R"("augmentResizedCrop": true, "normalize": "none")");
  Cmd d = sh("train --spec " + ok + nodata + " --normalize ImageNet");
  EXPECT_EQ(d.status, 2);
  EXPECT_EQ(d.out, "veridl train: error: --normalize: 'ImageNet' is not supported (supported: none, imagenet, mnist, "
                   "fashion-mnist, cifar10, or per-channel mean and std)\n");
  Cmd m = sh("train --spec " + repo("specs/mnist_linear.json") + nodata + " --normalize imagenet");
  EXPECT_EQ(m.status, 2);
  EXPECT_EQ(m.out, "veridl train: error: --normalize: 'imagenet' has 3 channels (mean/std values) but the input has 1 "
                   "channel\n");
  // The recipe's fields are checked in-process too, with the same messages.
  EXPECT_EQ(error_of([] { veridl::net::parse_netspec(R"({"name": "T", "layers": [{"type": "flatten"},
      {"type": "dense", "fanIn": 784, "fanOut": 2}], "recipe": {"normalize": "imagenet"}})", "s.json"); }),
            "s.json: recipe.normalize: \"imagenet\" needs an RGB input (channels 3), but the network's input has 1 channel");
  // Resuming cannot change them.
  Cmd r = sh("train --resume " + path("x.safetensors") + " --resized-crop");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(has_all(r.out, {"--resized-crop cannot be changed when resuming"})) << r.out;
}

TEST_F(ImageFolder, ResizedCropOnIdxDataCropsTheFixedSizeImages) {
  // Not an image folder: the crops are taken from the 28 x 28 digits themselves (documented in docs/data.md).
  Cmd t = sh("train --spec " + repo("specs/mnist_linear.json") + " --resized-crop --epochs 1 --no-progress --threads 2");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_TRUE(has_all(t.out, {"random-resized-crop (scale 0.08-1, ratio 3/4-4/3) from the 28x28 images",
                               "val accuracy: "}))
      << t.out;
}

}  // namespace
