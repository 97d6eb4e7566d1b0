// File reading (raw or gzip), IDX and CIFAR-10 binary loaders. See docs/data.md.
#include "veridl/data/dataset.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>

#include "veridl/data/image.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::data {
namespace {

constexpr uint64_t kMaxDecompressed = uint64_t{1} << 32;  // 4 GiB: larger is not a dataset we load
constexpr uint32_t kIdxImagesMagic = 0x00000803;           // uint8, 3 dims
constexpr uint32_t kIdxLabelsMagic = 0x00000801;           // uint8, 1 dim
constexpr uint32_t kMaxSide = 4096;                        // rows/cols above this are absurd
constexpr size_t kNumClasses = 10;
constexpr size_t kCifarSide = 32;
constexpr size_t kCifarImage = 3 * kCifarSide * kCifarSide;  // 3072
constexpr size_t kCifarRecord = 1 + kCifarImage;              // 3073
constexpr uint64_t kMaxCifarFile = 60'000 * kCifarRecord;     // the whole dataset in one file
// Bytes a gzipped IDX file may inflate to beyond its declared size, so that a little trailing data still gets the
// exact "N bytes of trailing data" message; more than this is refused while inflating.
constexpr uint64_t kTrailingSlack = uint64_t{1} << 20;

// A data file larger than the largest dataset we load is refused before it is read (a gzip file is smaller still).
std::vector<uint8_t> read_raw(const std::string& path, const std::string& what) {
  return read_whole_file(path, what, kMaxDecompressed + kTrailingSlack);
}

std::string too_big(const std::string& what, const std::string& path, uint64_t max_out, bool declared) {
  if (declared)
    return fmt::format("{} '{}': gzip data decompresses past the size its header declares (stopped at {} bytes)",
                       what, path, max_out);
  return fmt::format("{} '{}': gzip data decompresses to more than {} bytes", what, path, max_out);
}

// Inflates `in`, stopping with an error as soon as the output passes what the content's own header allows:
// `limit.max_total` sees the first `limit.head_bytes` of output (fewer if the stream ends first) and returns the
// most bytes the whole output may hold (it may also throw, e.g. on a wrong magic number). So a gzip bomb is
// refused after inflating its header plus at most the declared size, never inflated whole first.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path, const std::string& what,
                            const SizeLimit& limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    throw Error(fmt::format("cannot read {} '{}': zlib initialisation failed", what, path));
  struct InflateGuard {
    z_stream* z;
    ~InflateGuard() { inflateEnd(z); }
  } guard{&zs};

  constexpr size_t kMaxChunk = size_t{1} << 30;  // z_stream counters are 32-bit
  uint64_t max_out = kMaxDecompressed;
  bool header_seen = !limit.max_total;
  auto see_header = [&](const uint8_t* data, size_t n) {
    header_seen = true;
    max_out = std::min(max_out, limit.max_total(std::span<const uint8_t>(data, n)));
  };
  std::vector<uint8_t> out(std::clamp<size_t>(in.size() * 4, std::max<size_t>(size_t{1} << 16, limit.head_bytes),
                                              kMaxDecompressed));
  size_t in_pos = 0, produced = 0;
  for (;;) {
    if (zs.avail_in == 0 && in_pos < in.size()) {
      size_t k = std::min(in.size() - in_pos, kMaxChunk);
      zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
      zs.avail_in = static_cast<uInt>(k);
      in_pos += k;
    }
    if (!header_seen && produced >= limit.head_bytes) see_header(out.data(), produced);
    if (produced > max_out)
      throw Error(too_big(what, path, max_out, bool(limit.max_total)));
    if (produced == out.size()) {
      if (out.size() > max_out)  // cannot happen (checked above); keeps the growth below bounded by max_out + 1
        throw Error(fmt::format("{} '{}': gzip data decompresses to more than {} bytes", what, path, max_out));
      out.resize(std::min<uint64_t>(out.size() * 2, max_out + 1));
    }
    size_t room = std::min(out.size() - produced, kMaxChunk);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(room);
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (rc == Z_STREAM_END) {
      size_t rest = zs.avail_in + (in.size() - in_pos);
      if (rest == 0) break;
      size_t at = in.size() - rest;
      if (rest >= 2 && in[at] == 0x1f && in[at + 1] == 0x8b) {  // another gzip member follows
        inflateReset(&zs);
        continue;
      }
      throw Error(fmt::format("{} '{}': {} bytes of trailing garbage after the gzip data", what, path, rest));
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) {
      if (zs.avail_in == 0 && in_pos == in.size())
        throw Error(fmt::format("{} '{}': truncated gzip stream ({} compressed bytes, {} decompressed before the end)",
                                what, path, in.size(), produced));
      continue;
    }
    throw Error(fmt::format("{} '{}': corrupt gzip data (zlib: {})", what, path,
                            zs.msg ? zs.msg : "error " + std::to_string(rc)));
  }
  if (!header_seen) see_header(out.data(), produced);
  if (produced > max_out)
    throw Error(too_big(what, path, max_out, bool(limit.max_total)));
  out.resize(produced);
  return out;
}

std::string describe_idx_magic(uint32_t m) {
  if ((m >> 16) != 0) return "not an IDX file";
  const char* type = nullptr;
  switch ((m >> 8) & 0xff) {
    case 0x08: type = "uint8"; break;
    case 0x09: type = "int8"; break;
    case 0x0B: type = "int16"; break;
    case 0x0C: type = "int32"; break;
    case 0x0D: type = "float32"; break;
    case 0x0E: type = "float64"; break;
    default: return "not an IDX file";
  }
  uint32_t dims = m & 0xff;
  std::string s = fmt::format("IDX {} with {} dim{}", type, dims, dims == 1 ? "" : "s");
  if (m == kIdxImagesMagic) s += ", an images file";
  if (m == kIdxLabelsMagic) s += ", a labels file";
  return s;
}

void check_magic(std::span<const uint8_t> bytes, uint32_t expected, size_t header_bytes,
                 const std::string& what, const std::string& path) {
  if (bytes.size() >= 4) {  // the magic first: a file of the wrong kind is the likelier mistake
    uint32_t magic = be32(bytes.data());
    if (magic != expected)
      throw Error(fmt::format("{} '{}': wrong magic 0x{:08X} ({}), expected 0x{:08X} ({})", what, path, magic,
                              describe_idx_magic(magic), expected, describe_idx_magic(expected)));
  }
  if (bytes.size() < header_bytes)
    throw Error(fmt::format("{} '{}': holds {} bytes, too short for the {}-byte IDX header", what, path,
                            bytes.size(), header_bytes));
}

void check_payload(size_t got, uint64_t expected, const std::string& shape, const std::string& what,
                   const std::string& path) {
  if (got < expected)
    throw Error(fmt::format("{} '{}': truncated payload: expected {} bytes ({}), got {}", what, path, expected,
                            shape, got));
  if (got > expected)
    throw Error(fmt::format("{} '{}': expected {} payload bytes ({}), got {} ({} bytes of trailing data)", what,
                            path, expected, shape, got, got - expected));
}

}  // namespace

void Dataset::copy_images(size_t first, size_t count, float* dst) const {
  const size_t D = image_size();
  if (first > n || count > n - first)
    throw Error(fmt::format("dataset '{}': images [{}, {}) requested, it holds {}", source, first, first + count, n));
  if (has_stored()) {  // resized and center-cropped from the stored image, as the test split is from the file
    for (size_t i = 0; i < count; ++i) resize_center_crop(stored[first + i], ImageShape{C, H, W}, dst + i * D);
  } else if (has_bytes()) {
    // p / 255 correctly rounded to float, in float arithmetic: 1/255 = kHi + kLo + (a rest below kLo's ulp), with
    // kHi = 0x1.01p-8 (9 significant bits: p * kHi, at most 17 bits, is exact) and kLo the rest rounded to float;
    // p * kHi + p * kLo then rounds once to the correctly rounded quotient for each of the 256 bytes, and so does
    // fma(p, kLo, p * kHi) where a compiler contracts the sum (both forms checked for every byte when this was
    // written; the compiled one by Dataset.PixelConversionIsTheDivision). Multiplies vectorize far cheaper than the
    // division (which had most of a linear model's step) or a table lookup, and at the base ISA's 4 float lanes
    // twice as wide as the double product p * (1/255) this replaced (the same floats): the gather of a batch is a
    // good part of a linear model's step (docs/results-history.md, "Session 31").
    const uint8_t* __restrict px = pixels.data() + first * D;
    float* __restrict out = dst;
    constexpr float kHi = 0x1.01p-8f, kLo = 0x1.010102p-24f;
    static_assert(static_cast<double>(kHi) + static_cast<double>(kLo) - 1.0 / 255.0 < 0x1p-48 &&
                  1.0 / 255.0 - (static_cast<double>(kHi) + static_cast<double>(kLo)) < 0x1p-48);
    for (size_t i = 0; i < count * D; ++i) {
      const float p = static_cast<float>(px[i]);
      out[i] = p * kHi + p * kLo;
    }
  } else {
    std::copy_n(images.data() + first * D, count * D, dst);
  }
}

void Dataset::prefetch(size_t i) const {
  constexpr size_t kLine = 64;
  const size_t D = image_size();
  const char* p = nullptr;
  size_t len = 0;
  if (has_bytes()) {
    p = reinterpret_cast<const char*>(pixels.data() + i * D);
    len = D;
  } else if (!images.empty()) {
    p = reinterpret_cast<const char*>(images.data() + i * D);
    len = D * sizeof(float);
  }
  for (size_t o = 0; o < len; o += kLine) __builtin_prefetch(p + o);
  if (len) __builtin_prefetch(p + len - 1);
}

std::vector<float> Dataset::floats() const {
  std::vector<float> out(n * image_size());
  copy_images(0, n, out.data());
  return out;
}

Dataset subset(const Dataset& ds, const std::vector<uint32_t>& idx, const std::string& source) {
  Dataset out;
  out.n = idx.size();
  out.C = ds.C;
  out.H = ds.H;
  out.W = ds.W;
  out.num_classes = ds.num_classes;
  out.source = source;
  const size_t D = ds.image_size();
  out.labels.reserve(idx.size());
  if (ds.has_bytes()) out.pixels.reserve(idx.size() * D);
  if (!ds.images.empty()) out.images.reserve(idx.size() * D);
  for (uint32_t i : idx) {
    if (i >= ds.n) throw Error(fmt::format("dataset '{}': example {} requested, it holds {}", ds.source, i, ds.n));
    out.labels.push_back(ds.labels[i]);
    if (ds.has_bytes()) out.pixels.insert(out.pixels.end(), ds.pixels.begin() + i * D, ds.pixels.begin() + (i + 1) * D);
    if (!ds.images.empty())
      out.images.insert(out.images.end(), ds.images.begin() + i * D, ds.images.begin() + (i + 1) * D);
    if (ds.has_stored()) out.stored.push_back(ds.stored[i]);
  }
  return out;
}

void hold_out_validation(Split& s, double fraction) {
  if (!(fraction > 0 && fraction < 1))
    throw Error(fmt::format("--val-split must be in [0, 1) (the fraction of the training data held out), got {}", fraction));
  const size_t n = s.train.n, k = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  if (k == 0 || k >= n)
    throw Error(fmt::format("--val-split {}: {} of the {} training images would be held out; both parts need at least "
                            "one (use --val-split 0 for no validation set)",
                            fraction, k, n));
  // Fisher-Yates with splitmix64: a permutation that depends on nothing but the seed and n.
  std::vector<uint32_t> perm(n);
  for (size_t i = 0; i < n; ++i) perm[i] = static_cast<uint32_t>(i);
  uint64_t state = kValidationSeed;
  auto next = [&] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  for (size_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[next() % (i + 1)]);
  std::vector<uint32_t> val(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(k));
  std::vector<uint32_t> rest(perm.begin() + static_cast<std::ptrdiff_t>(k), perm.end());
  std::sort(val.begin(), val.end());
  std::sort(rest.begin(), rest.end());
  s.val = subset(s.train, val, fmt::format("{} of the {} training images held out (--val-split {})", k, n, fraction));
  s.train = subset(s.train, rest, s.train.source);
}

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, const std::string& what, const SizeLimit& limit) {
  std::vector<uint8_t> bytes = read_raw(path, what);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return gunzip(bytes, path, what, limit);
  if (limit.max_total)  // the same header checks for a raw file (its size is already known)
    limit.max_total(std::span<const uint8_t>(bytes.data(), std::min(bytes.size(), limit.head_bytes)));
  return bytes;
}

namespace {
// The images of an IDX images file into ds (n, C = 1, H, W, pixels).
void read_idx_images(Dataset& ds, const std::string& images_path) {
  const std::string img_what = "IDX images file";
  // The header is checked first (for a gzip file, before the rest is inflated).
  auto check_header = [&](std::span<const uint8_t> head) -> uint64_t {
    check_magic(head, kIdxImagesMagic, 16, img_what, images_path);
    uint32_t n = be32(head.data() + 4), rows = be32(head.data() + 8), cols = be32(head.data() + 12);
    if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide)
      throw Error(fmt::format("{} '{}': absurd dims n={} rows={} cols={} (rows and cols must be in 1..{})",
                              img_what, images_path, n, rows, cols, kMaxSide));
    if (n == 0) throw Error(fmt::format("{} '{}': holds zero images (n = 0)", img_what, images_path));
    const uint64_t declared = uint64_t{n} * rows * cols;
    if (declared > kMaxDecompressed)
      throw Error(fmt::format("{} '{}': header declares {} x {} x {} = {} bytes of pixels, more than the {} byte limit",
                              img_what, images_path, n, rows, cols, declared, kMaxDecompressed));
    return 16 + declared + kTrailingSlack;
  };
  std::vector<uint8_t> bytes = read_file_maybe_gzip(images_path, img_what, {16, check_header});
  uint32_t n = be32(bytes.data() + 4), rows = be32(bytes.data() + 8), cols = be32(bytes.data() + 12);
  uint64_t expected = uint64_t{n} * rows * cols;
  check_payload(bytes.size() - 16, expected, fmt::format("{} x {} x {}", n, rows, cols), img_what, images_path);
  ds.n = n;
  ds.C = 1;
  ds.H = rows;
  ds.W = cols;
  bytes.erase(bytes.begin(), bytes.begin() + 16);  // the header; the pixels are kept as they are
  bytes.resize(expected);
  ds.pixels = std::move(bytes);
}
}  // namespace

Dataset load_idx_images(const std::string& images_path) {
  Dataset ds;
  ds.source = images_path;
  ds.num_classes = kNumClasses;
  read_idx_images(ds, images_path);
  ds.labels.assign(ds.n, 0);
  return ds;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  const std::string lbl_what = "IDX labels file";
  Dataset ds;
  ds.source = images_path + ", " + labels_path;
  ds.num_classes = kNumClasses;
  read_idx_images(ds, images_path);
  {
    auto check_header = [&](std::span<const uint8_t> head) -> uint64_t {
      check_magic(head, kIdxLabelsMagic, 8, lbl_what, labels_path);
      uint32_t n = be32(head.data() + 4);
      if (n == 0) throw Error(fmt::format("{} '{}': holds zero labels (n = 0)", lbl_what, labels_path));
      return 8 + uint64_t{n} + kTrailingSlack;
    };
    std::vector<uint8_t> bytes = read_file_maybe_gzip(labels_path, lbl_what, {8, check_header});
    uint32_t n = be32(bytes.data() + 4);
    check_payload(bytes.size() - 8, n, fmt::format("{} labels", n), lbl_what, labels_path);
    if (n != ds.n)
      throw Error(fmt::format("IDX files disagree: '{}' holds {} images but '{}' holds {} labels", images_path, ds.n,
                              labels_path, n));
    ds.labels.resize(n);
    for (size_t i = 0; i < n; ++i) {
      uint8_t l = bytes[8 + i];
      if (l >= kNumClasses)
        throw Error(fmt::format("{} '{}': label {} at index {} is out of range [0,{})", lbl_what, labels_path, l, i,
                                kNumClasses));
      ds.labels[i] = l;
    }
  }
  return ds;
}

Dataset load_cifar10(const std::vector<std::string>& batch_files) {
  const std::string what = "CIFAR-10 batch file";
  if (batch_files.empty()) throw Error("load_cifar10: no CIFAR-10 batch files given");
  std::vector<std::vector<uint8_t>> contents;
  contents.reserve(batch_files.size());
  size_t total = 0;
  for (const std::string& path : batch_files) {
    std::vector<uint8_t> bytes =
        read_file_maybe_gzip(path, what, {0, [](std::span<const uint8_t>) { return kMaxCifarFile; }});
    if (bytes.empty()) throw Error(fmt::format("{} '{}': holds zero records (the file is empty)", what, path));
    if (bytes.size() % kCifarRecord != 0)
      throw Error(fmt::format("{} '{}': size {} bytes is not a whole number of {}-byte records ({} records + {} bytes)",
                              what, path, bytes.size(), kCifarRecord, bytes.size() / kCifarRecord,
                              bytes.size() % kCifarRecord));
    size_t records = bytes.size() / kCifarRecord;
    for (size_t r = 0; r < records; ++r) {
      uint8_t l = bytes[r * kCifarRecord];
      if (l >= kNumClasses)
        throw Error(fmt::format("{} '{}': label {} in record {} is out of range [0,{})", what, path, l, r,
                                kNumClasses));
    }
    total += records;
    contents.push_back(std::move(bytes));
  }

  Dataset ds;
  ds.n = total;
  ds.C = 3;
  ds.H = ds.W = kCifarSide;
  ds.num_classes = kNumClasses;
  ds.pixels.resize(total * kCifarImage);
  ds.labels.resize(total);
  size_t i = 0;
  for (size_t f = 0; f < contents.size(); ++f) {
    if (f) ds.source += ", ";
    ds.source += batch_files[f];
    const std::vector<uint8_t>& bytes = contents[f];
    for (size_t r = 0; r < bytes.size() / kCifarRecord; ++r, ++i) {
      const uint8_t* rec = bytes.data() + r * kCifarRecord;
      ds.labels[i] = rec[0];
      std::copy_n(rec + 1, kCifarImage, ds.pixels.data() + i * kCifarImage);
    }
  }
  return ds;
}

}  // namespace veridl::data
