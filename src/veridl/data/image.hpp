#pragma once
// Image folders (Imagenette / ImageNet style): DIR/train/<class>/*.{png,jpg,jpeg} and DIR/val/<class>/... (or
// DIR/test/<class>/...). PNG (libpng) and JPEG (libjpeg-turbo) decoding, detected by magic bytes; resize so the
// image covers the network's H x W (separable triangle filter, widened when shrinking), center crop, grey/RGB
// conversion. Every failure throws veridl::Error with one line naming the file or directory. See docs/data.md.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "veridl/data/dataset.hpp"

namespace veridl::data {

// The big-endian 32-bit number at p (IDX and CIFAR headers, PNG chunks).
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Whether p is a directory (or a symlink to one); false on any error.
inline bool is_dir(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

// Larger sides are refused from the file's header, before anything is allocated.
inline constexpr uint32_t kMaxImageSide = 16384;

// A decoded image: 8-bit samples, rows top to bottom, interleaved (HWC); channels is 1 (grey) or 3 (RGB).
struct DecodedImage {
  uint32_t width = 0, height = 0, channels = 0;
  std::unique_ptr<uint8_t[]> pixels;  // width * height * channels bytes
  size_t size() const { return size_t{width} * height * channels; }
  std::span<const uint8_t> view() const { return {pixels.get(), size()}; }
};

// Decodes a PNG or JPEG held in `bytes` (the format comes from the magic bytes, never the extension). PNG: palette,
// grey (1/2/4/8/16 bit), grey+alpha, RGB, RGBA, 16-bit, interlaced; alpha is dropped, 16-bit samples keep their high
// byte. JPEG: grey and RGB (YCbCr); CMYK/YCCK is refused. libjpeg warnings (corrupt but decodable data, a missing
// end of file) are errors too. `path` is only used in messages: "image file '<path>': <reason>".
DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& path,
                          uint32_t max_side = kMaxImageSide);

// Reads and decodes one file (errors as above; "cannot read image file '<path>': ..." if it cannot be read).
DecodedImage decode_image_file(const std::string& path, uint32_t max_side = kMaxImageSide);

// Writes `img` into `out` (shape.C * shape.H * shape.W floats, CHW, values p/255 in [0,1]): scales the image by
// s = max(H / height, W / width) so that it covers H x W (the shorter side becomes the target's for a square
// target), resampling each axis with a triangle (bilinear) filter that is widened to 1/s source pixels when
// shrinking (so a shrink averages every source pixel instead of skipping some), then crops the center H x W.
// Grey -> RGB replicates; RGB -> grey is ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B. Deterministic; an image
// already H x W is copied exactly. shape.C must be 1 or 3.
void resize_center_crop(const DecodedImage& img, const ImageShape& shape, float* out);
void resize_center_crop(const StoredImage& img, const ImageShape& shape, float* out);

// Writes the `box` of `img` (inside the image) resized to shape.C x H x W floats into `out`: each axis scaled
// independently from the box's side to the target's (the aspect ratio is not kept), with the filter of
// resize_center_crop; pixels outside the box are never read (edges clamp to the box, as cropping first and then
// resizing does). The resize step of torchvision's RandomResizedCrop. Grey/RGB conversion as above.
void resized_crop(const DecodedImage& img, const CropBox& box, const ImageShape& shape, float* out);

// The image as kept for random-resized-crop (Dataset::stored): unchanged when its shorter side is at most `side`,
// else shrunk (the filter above, each sample rounded to the nearest byte) so that its shorter side is `side` and
// its longer side round(longer x side / shorter) pixels. Channels are kept (grey stays grey).
StoredImage store_image(DecodedImage img, size_t side);

// An image folder as a train/test split (test = val/, or test/ if there is no val/). Classes are the
// sub-directories of train/, sorted by bytes, labelled 0..K-1; val/ must hold the same classes. Images are ordered
// by (class, file name) and decoded in parallel (OpenMP); the result does not depend on the thread count.
// Hidden entries (names starting with '.') are skipped; any other non-image entry is an error.
// The test split is resized and center-cropped to `shape`; the training split too, or with TrainImages::Stored
// kept as store_image(img, stored_side(shape.H, shape.W)) for random-resized-crop.
Split load_image_folder(const std::string& dir, const ImageShape& shape,
                        TrainImages train_images = TrainImages::Resized);

// A single image folder DIR/<class>/*.{png,jpg,jpeg} (no train/, val/ or test/): every image is training data, in
// the same order and with the same checks as train/ above; the test set is empty (n = 0) and there is no validation
// set (the trainer holds one out with --val-split).
Split load_class_folder(const std::string& dir, const ImageShape& shape,
                        TrainImages train_images = TrainImages::Resized);
// True if every non-hidden entry of `dir` is a directory, and there is one (read as a single image folder when no
// dataset file name is there).
bool looks_like_class_folder(const std::string& dir);

// True if `dir` has a train/, val/ or test/ sub-directory: load_split then reads it as an image folder (when it is
// not an IDX or CIFAR-10 directory).
bool looks_like_image_folder(const std::string& dir);

}  // namespace veridl::data
