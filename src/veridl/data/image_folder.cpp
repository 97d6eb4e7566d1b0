// Image folders: directory walk, resize + center crop, parallel decoding; the resampling of a stored image's crop
// box (random-resized-crop, Dataset::crop_resize). See data/image.hpp and docs/data.md.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <type_traits>
#include <vector>

#include "veridl/data/image.hpp"
#include "veridl/util/error.hpp"

namespace veridl::data {
namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------------------------------- resize

// Resampling weights along one axis: output position o (0..n_out-1) reads source pixels start[o] ..
// start[o] + count[o] - 1 with weights w[o * taps + k].
struct AxisTaps {
  size_t taps = 0;
  std::vector<size_t> start, count;
  std::vector<float> w;
};

// Triangle filter of half-width `support` source pixels around center(o) (in source pixel coordinates), reading
// only pixels first .. last (edge weights renormalised).
template <class Center>
AxisTaps make_taps(size_t n_out, double support, Center center_of, size_t first_px, size_t last_px) {
  AxisTaps t;
  t.taps = static_cast<size_t>(std::ceil(2 * support)) + 1;
  t.start.resize(n_out);
  t.count.resize(n_out);
  t.w.assign(n_out * t.taps, 0.f);
  const auto first_pos = static_cast<double>(first_px), last = static_cast<double>(last_px);
  std::vector<double> wbuf(t.taps);
  for (size_t o = 0; o < n_out; ++o) {
    const double center = center_of(o);
    // Pixels strictly inside (center - support, center + support), clamped to [first, last].
    double lo = std::max(first_pos, std::floor(center - support) + 1), hi = std::min(last, std::ceil(center + support) - 1);
    if (lo > hi) lo = hi = std::clamp(std::round(center), first_pos, last);  // cannot happen; keeps the weights defined
    const auto first = static_cast<size_t>(lo), n = std::min(static_cast<size_t>(hi - lo) + 1, t.taps);
    double sum = 0;
    double* wp = wbuf.data();
    for (size_t k = 0; k < n; ++k) {
      wp[k] = std::max(0.0, 1 - std::abs(static_cast<double>(first + k) - center) / support);
      sum += wp[k];
    }
    if (!(sum > 0)) {  // cannot happen either: the nearest pixel is always within the support
      wp[0] = sum = 1;
      for (size_t k = 1; k < n; ++k) wp[k] = 0;
    }
    t.start[o] = first;
    t.count[o] = n;
    for (size_t k = 0; k < n; ++k) t.w[o * t.taps + k] = static_cast<float>(wp[k] / sum);
  }
  return t;
}

// Output o is position o + offset of the axis scaled from n_in to n_scaled pixels (resize + center crop).
AxisTaps axis_taps(size_t n_in, size_t n_scaled, size_t offset, size_t n_out) {
  const double scale = static_cast<double>(n_scaled) / static_cast<double>(n_in);
  // Triangle filter of half-width `support` source pixels: 1 (bilinear) when enlarging, 1/scale when shrinking so
  // that every source pixel contributes (an area-like average, no aliasing from skipped pixels).
  const double support = scale < 1 ? 1 / scale : 1;
  return make_taps(
      n_out, support, [&](size_t o) { return (static_cast<double>(o + offset) + 0.5) / scale - 0.5; }, 0, n_in - 1);
}

// Source pixels box0 .. box0 + len - 1 resized to n_out pixels; nothing outside the box is read.
AxisTaps box_taps(size_t box0, size_t len, size_t n_out) {
  const double scale = static_cast<double>(n_out) / static_cast<double>(len);
  const double support = scale < 1 ? 1 / scale : 1;
  const auto b0 = static_cast<double>(box0);
  return make_taps(
      n_out, support, [&](size_t o) { return b0 + (static_cast<double>(o) + 0.5) / scale - 0.5; }, box0,
      box0 + len - 1);
}

// The samples of one image: sample (x, y, c) at px[y * row + x * pixel + c * chan]. T is uint8_t (0..255:
// decoded and stored images, IDX/CIFAR bytes) or float ([0,1]: resized image-folder floats).
template <class T>
struct View {
  const T* px;
  size_t w, h, ch;
  size_t row, pixel, chan;
};

template <class T>
constexpr float kMaxSample = std::is_same_v<T, uint8_t> ? 255.f : 1.f;

View<uint8_t> interleaved(const uint8_t* px, size_t w, size_t h, size_t ch) { return {px, w, h, ch, w * ch, ch, 1}; }

void check_target(const char* what, const ImageShape& shape) {
  if ((shape.C != 1 && shape.C != 3) || shape.H == 0 || shape.W == 0)
    throw Error(fmt::format("{}: target {}x{}x{} must have 1 or 3 channels and positive sides", what, shape.C, shape.H,
                            shape.W));
}

template <class T>
void check_source(const char* what, const View<T>& v) {
  if (v.w == 0 || v.h == 0 || (v.ch != 1 && v.ch != 3) || !v.px)
    throw Error(fmt::format("{}: bad source image {}x{}x{}", what, v.ch, v.h, v.w));
}

// Separable resampling with the given taps (a horizontal pass over the source rows the vertical pass reads, then the
// vertical pass), grey/RGB conversion, scaled to [0,1]; CHW floats into out.
template <class T>
void apply_taps(const View<T>& v, const AxisTaps& tx, const AxisTaps& ty, const ImageShape& shape, float* out) {
  const size_t C = shape.C, H = shape.H, W = shape.W, ch = v.ch;
  // Horizontal pass: tmp[(y - y0) * W * ch + x * ch + c].
  const size_t y0 = ty.start.front(), y1 = ty.start.back() + ty.count.back();  // start is non-decreasing
  std::vector<float> tmp((y1 - y0) * W * ch);
  for (size_t y = y0; y < y1; ++y) {
    const T* row = v.px + y * v.row;
    float* dst = tmp.data() + (y - y0) * W * ch;
    for (size_t x = 0; x < W; ++x) {
      const float* wk = tx.w.data() + x * tx.taps;
      const T* src = row + tx.start[x] * v.pixel;
      for (size_t c = 0; c < ch; ++c) {
        float acc = 0;
        for (size_t k = 0; k < tx.count[x]; ++k) acc += wk[k] * static_cast<float>(src[k * v.pixel + c * v.chan]);
        dst[x * ch + c] = acc;
      }
    }
  }
  // Vertical pass, channel conversion, p/255.
  auto to_unit = [](float x) { return std::clamp(x, 0.f, kMaxSample<T>) / kMaxSample<T>; };
  for (size_t y = 0; y < H; ++y) {
    const float* wk = ty.w.data() + y * ty.taps;
    for (size_t x = 0; x < W; ++x) {
      float val[3] = {0, 0, 0};
      for (size_t c = 0; c < ch; ++c) {
        float acc = 0;
        for (size_t k = 0; k < ty.count[y]; ++k) acc += wk[k] * tmp[((ty.start[y] + k - y0) * W + x) * ch + c];
        val[c] = acc;
      }
      const size_t at = y * W + x;
      if (C == ch) {
        for (size_t c = 0; c < C; ++c) out[c * H * W + at] = to_unit(val[c]);
      } else if (C == 3) {  // grey -> RGB
        const float g = to_unit(val[0]);
        out[at] = out[H * W + at] = out[2 * H * W + at] = g;
      } else {  // RGB -> grey: ITU-R BT.601 luma
        out[at] = to_unit(0.299f * val[0] + 0.587f * val[1] + 0.114f * val[2]);
      }
    }
  }
}

template <class T>
void resize_center_crop_view(const View<T>& v, const ImageShape& shape, float* out) {
  check_target("resize_center_crop", shape);
  check_source("resize_center_crop", v);
  const size_t H = shape.H, W = shape.W, w = v.w, h = v.h;
  // Scale so that the image covers H x W, keeping its aspect ratio; each axis is then an exact integer size.
  const double s = std::max(static_cast<double>(H) / static_cast<double>(h), static_cast<double>(W) / static_cast<double>(w));
  const size_t sh = std::max(H, static_cast<size_t>(std::llround(static_cast<double>(h) * s)));
  const size_t sw = std::max(W, static_cast<size_t>(std::llround(static_cast<double>(w) * s)));
  apply_taps(v, axis_taps(w, sw, (sw - W) / 2, W), axis_taps(h, sh, (sh - H) / 2, H), shape, out);
}

template <class T>
void resized_crop_view(const View<T>& v, const CropBox& box, const ImageShape& shape, float* out) {
  check_target("resized_crop", shape);
  check_source("resized_crop", v);
  if (box.w == 0 || box.h == 0 || box.w > v.w || box.h > v.h || box.x0 > v.w - box.w || box.y0 > v.h - box.h)
    throw Error(fmt::format("resized_crop: box {}x{} at ({}, {}) is not inside the {}x{} image", box.w, box.h, box.x0,
                            box.y0, v.w, v.h));
  apply_taps(v, box_taps(box.x0, box.w, shape.W), box_taps(box.y0, box.h, shape.H), shape, out);
}

}  // namespace

void resize_center_crop(const DecodedImage& img, const ImageShape& shape, float* out) {
  resize_center_crop_view(interleaved(img.pixels.get(), img.width, img.height, img.channels), shape, out);
}

void resize_center_crop(const StoredImage& img, const ImageShape& shape, float* out) {
  resize_center_crop_view(interleaved(img.pixels.data(), img.width, img.height, img.channels), shape, out);
}

void resized_crop(const DecodedImage& img, const CropBox& box, const ImageShape& shape, float* out) {
  resized_crop_view(interleaved(img.pixels.get(), img.width, img.height, img.channels), box, shape, out);
}

StoredImage store_image(DecodedImage img, size_t side) {
  const size_t w = img.width, h = img.height, ch = img.channels;
  StoredImage st;
  st.channels = img.channels;
  const size_t shorter = std::min(w, h);
  if (shorter <= side || side == 0) {
    st.width = img.width;
    st.height = img.height;
    st.pixels.assign(img.pixels.get(), img.pixels.get() + img.size());
    return st;
  }
  const double s = static_cast<double>(side) / static_cast<double>(shorter);
  const size_t sw = w == shorter ? side : std::max<size_t>(side, static_cast<size_t>(std::llround(static_cast<double>(w) * s)));
  const size_t sh = h == shorter ? side : std::max<size_t>(side, static_cast<size_t>(std::llround(static_cast<double>(h) * s)));
  std::vector<float> planar(ch * sh * sw);
  resized_crop_view(interleaved(img.pixels.get(), w, h, ch), CropBox{0, 0, w, h}, ImageShape{ch, sh, sw},
                    planar.data());
  img.pixels.reset();
  st.width = static_cast<uint32_t>(sw);
  st.height = static_cast<uint32_t>(sh);
  st.pixels.resize(sw * sh * ch);
  for (size_t c = 0; c < ch; ++c)
    for (size_t i = 0; i < sw * sh; ++i)
      st.pixels[i * ch + c] = static_cast<uint8_t>(std::lround(planar[c * sw * sh + i] * 255.f));
  return st;
}

std::pair<size_t, size_t> Dataset::stored_size(size_t i) const {
  if (i >= n) throw Error(fmt::format("dataset '{}': image {} requested, it holds {}", source, i, n));
  if (has_stored()) return {stored[i].width, stored[i].height};
  return {W, H};
}

void Dataset::crop_resize(size_t i, const CropBox& box, float* dst) const {
  if (i >= n) throw Error(fmt::format("dataset '{}': image {} requested, it holds {}", source, i, n));
  const ImageShape shape{C, H, W};
  const size_t D = image_size();
  if (has_stored()) {
    const StoredImage& st = stored[i];
    resized_crop_view(interleaved(st.pixels.data(), st.width, st.height, st.channels), box, shape, dst);
  } else if (has_bytes()) {  // IDX, CIFAR-10: planar C x H x W bytes
    resized_crop_view(View<uint8_t>{pixels.data() + i * D, W, H, C, W, 1, H * W}, box, shape, dst);
  } else {
    resized_crop_view(View<float>{images.data() + i * D, W, H, C, W, 1, H * W}, box, shape, dst);
  }
}

namespace {

// ------------------------------------------------------------------------------------------------ folder walking

std::string shown(const fs::path& p) {
  std::string s = p.string();
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

bool image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// The non-hidden entries of `dir`, sorted by name (bytes).
std::vector<fs::path> entries(const fs::path& dir, const std::string& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec))
    if (!hidden(it->path())) out.push_back(it->path());
  if (ec) throw Error(fmt::format("image folder '{}': cannot list '{}': {}", folder, shown(dir), ec.message()));
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();  // char_traits<char> compares as unsigned char: byte order
  });
  return out;
}

std::vector<std::string> class_names(const fs::path& part, const std::string& folder) {
  std::vector<std::string> names;
  for (const fs::path& p : entries(part, folder)) {
    if (!is_dir(p))
      throw Error(fmt::format("image folder '{}': '{}' is not a directory; {}/ holds one sub-directory per class "
                              "(hidden files are ignored)",
                              folder, shown(p), part.filename().string()));
    names.push_back(p.filename().string());
  }
  if (names.empty())
    throw Error(fmt::format("image folder '{}': '{}' holds no class sub-directories (expected {}/<class>/*.jpg|png)",
                            folder, shown(part), part.filename().string()));
  return names;
}

struct Item {
  std::string path;
  int32_t label;
};

std::vector<Item> list_images(const fs::path& part, const std::vector<std::string>& classes, const std::string& folder) {
  std::vector<Item> items;
  for (size_t k = 0; k < classes.size(); ++k) {
    const fs::path cdir = part / classes[k];
    size_t found = 0;
    for (const fs::path& p : entries(cdir, folder)) {
      if (is_dir(p))
        throw Error(fmt::format("image folder '{}': '{}' is a directory; class directories hold only image files", folder,
                                shown(p)));
      if (!image_extension(p))
        throw Error(fmt::format("image folder '{}': '{}' is not an image file (expected .png, .jpg or .jpeg; hidden "
                                "files are ignored)",
                                folder, shown(p)));
      items.push_back({p.string(), static_cast<int32_t>(k)});
      ++found;
    }
    if (found == 0) throw Error(fmt::format("image folder '{}': class directory '{}' holds no images", folder, shown(cdir)));
  }
  return items;
}

std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShow = 5;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShow; ++i) s += fmt::format("{}'{}'", i ? ", " : "", shown(names[i]));
  if (names.size() > kShow) s += fmt::format(" and {} more", names.size() - kShow);
  return s;
}

// Decodes every item into a Dataset, in item order, in parallel. On failures, the error of the first failing item
// (in item order) is thrown, whatever the thread count or timing.
// Resized (TrainImages::Resized: floats of `shape`) or kept for random-resized-crop (TrainImages::Stored).
Dataset decode_all(const std::vector<Item>& items, const ImageShape& shape, size_t num_classes, const std::string& source,
                   TrainImages keep) {
  Dataset ds;
  ds.n = items.size();
  ds.C = shape.C;
  ds.H = shape.H;
  ds.W = shape.W;
  ds.num_classes = num_classes;
  ds.source = source;
  const size_t D = ds.image_size();
  const bool store = keep == TrainImages::Stored;
  const size_t side = stored_side(shape.H, shape.W);
  if (store)
    ds.stored.resize(ds.n);
  else
    ds.images.resize(ds.n * D);
  ds.labels.resize(ds.n);
  for (size_t i = 0; i < ds.n; ++i) ds.labels[i] = items[i].label;

  std::vector<std::string> errors(ds.n);
  std::vector<char> oom(ds.n, 0);
  std::atomic<size_t> first_bad{ds.n};
  const auto n = static_cast<std::ptrdiff_t>(ds.n);
#pragma omp parallel for schedule(dynamic, 1)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    if (k > first_bad.load(std::memory_order_relaxed)) continue;  // an earlier file already failed
    bool failed = true;
    try {
      DecodedImage img = decode_image_file(items[k].path);
      if (store)
        ds.stored[k] = store_image(std::move(img), side);
      else
        resize_center_crop(img, shape, ds.images.data() + k * D);
      failed = false;
    } catch (const std::bad_alloc&) {
      oom[k] = 1;
    } catch (const std::exception& e) {
      errors[k] = e.what();
    } catch (...) {
      errors[k] = "image file '" + items[k].path + "': unknown error";
    }
    if (failed) {
      size_t cur = first_bad.load();
      while (k < cur && !first_bad.compare_exchange_weak(cur, k)) {
      }
    }
  }
  const size_t bad = first_bad.load();
  if (bad < ds.n) {
    if (oom[bad]) throw std::bad_alloc();
    throw Error(errors[bad]);
  }
  return ds;
}

}  // namespace

bool looks_like_class_folder(const std::string& dir) {
  std::error_code ec;
  bool any = false;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (!is_dir(it->path())) return false;
    any = true;
  }
  return any && !ec;
}

namespace {
// The network's input must be what images load as: 1 (grey) or 3 (RGB) channels of a sensible size.
void check_input_shape(const std::string& folder, const ImageShape& shape) {
  if ((shape.C != 1 && shape.C != 3) || shape.H == 0 || shape.W == 0 || shape.H > kMaxImageSide ||
      shape.W > kMaxImageSide)
    throw Error(fmt::format("image folder '{}': the network's input is {}x{}x{}, but images load as 1 (grey) or 3 (RGB) "
                            "channels of 1..{} pixels a side",
                            folder, shape.C, shape.H, shape.W, kMaxImageSide));
}
}  // namespace

Split load_class_folder(const std::string& dir, const ImageShape& shape, TrainImages train_images) {
  const std::string folder = shown(dir);
  check_input_shape(folder, shape);
  const fs::path root(dir);
  const std::vector<std::string> classes = class_names(root, folder);
  if (classes.size() < 2)
    throw Error(fmt::format("image folder '{}': holds {} class director{} ({}); a classifier needs at least two", folder,
                            classes.size(), classes.size() == 1 ? "y" : "ies", name_list(classes)));
  if (shape.classes != 0 && classes.size() != shape.classes)
    throw Error(fmt::format("image folder '{}': holds {} classes but the network's last layer has {} outputs (its "
                            "fanOut must equal the number of classes)",
                            folder, classes.size(), shape.classes));
  Split s;
  s.name = dir;
  s.train = decode_all(list_images(root, classes, folder), shape, classes.size(), folder, train_images);
  s.test.C = shape.C;
  s.test.H = shape.H;
  s.test.W = shape.W;
  s.test.num_classes = classes.size();
  s.test.source = "none (the single image folder " + folder + " has no test split)";
  return s;
}

bool looks_like_image_folder(const std::string& dir) {
  const fs::path d(dir);
  return is_dir(d / "train") || is_dir(d / "val") || is_dir(d / "test");
}

Split load_image_folder(const std::string& dir, const ImageShape& shape, TrainImages train_images) {
  const std::string folder = shown(dir);
  check_input_shape(folder, shape);
  const fs::path root(dir), train = root / "train";
  if (!is_dir(train))
    throw Error(fmt::format("image folder '{}': no train/ directory (expected train/<class>/*.jpg|png and "
                            "val/<class>/*.jpg|png)",
                            folder));
  const fs::path val = is_dir(root / "val") ? root / "val" : root / "test";
  if (!is_dir(val))
    throw Error(fmt::format("image folder '{}': no val/ or test/ directory beside train/ (expected val/<class>/*.jpg|png)",
                            folder));

  // train/, val/ and test/ together: val/ is the validation set, test/ the test set; otherwise the one of them
  // beside train/ is the test set.
  const fs::path test = root / "test";
  const bool own_val = val.filename() == "val" && is_dir(test);
  const std::vector<std::string> classes = class_names(train, folder);
  for (const fs::path& part : own_val ? std::vector<fs::path>{val, test} : std::vector<fs::path>{val}) {
    const std::string vname = part.filename().string();
    const std::vector<std::string> vclasses = class_names(part, folder);
    if (classes != vclasses) {
      std::vector<std::string> only_train, only_val;
      std::set_difference(classes.begin(), classes.end(), vclasses.begin(), vclasses.end(), std::back_inserter(only_train));
      std::set_difference(vclasses.begin(), vclasses.end(), classes.begin(), classes.end(), std::back_inserter(only_val));
      std::string why;
      if (!only_train.empty())
        why += fmt::format("{} {} missing from {}/", only_train.size() == 1 ? "class" : "classes", name_list(only_train),
                           vname);
      if (!only_val.empty())
        why += fmt::format("{}{} {} not in train/", why.empty() ? "" : "; ", only_val.size() == 1 ? "class" : "classes",
                           name_list(only_val));
      throw Error(fmt::format("image folder '{}': {}/ must hold the same classes as train/: {}", folder, vname, why));
    }
  }

  // The classes are known now, before any image is decoded: a folder that cannot train a classifier, or one whose
  // classes the network's last layer does not match, stops here.
  if (classes.size() < 2)
    throw Error(fmt::format("image folder '{}': train/ holds {} class director{} ({}); a classifier needs at least two",
                            folder, classes.size(), classes.size() == 1 ? "y" : "ies", name_list(classes)));
  if (shape.classes != 0 && classes.size() != shape.classes)
    throw Error(fmt::format("image folder '{}': train/ holds {} classes but the network's last layer has {} outputs "
                            "(its fanOut must equal the number of classes)",
                            folder, classes.size(), shape.classes));
  const std::vector<Item> train_items = list_images(train, classes, folder);
  const std::vector<Item> val_items = list_images(val, classes, folder);
  const std::vector<Item> test_items = own_val ? list_images(test, classes, folder) : std::vector<Item>{};
  Split s;
  s.name = dir;
  s.classes = classes;
  s.train = decode_all(train_items, shape, classes.size(), shown(train), train_images);
  if (own_val) {
    s.val = decode_all(val_items, shape, classes.size(), shown(val), TrainImages::Resized);
    s.test = decode_all(test_items, shape, classes.size(), shown(test), TrainImages::Resized);
  } else {
    s.test = decode_all(val_items, shape, classes.size(), shown(val), TrainImages::Resized);
  }
  return s;
}

}  // namespace veridl::data
