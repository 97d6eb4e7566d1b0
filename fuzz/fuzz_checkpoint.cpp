// libFuzzer harness: load_safetensors on arbitrary files (each input in a memfd). veridl::Error is the expected
// outcome of bad input; any other exception, crash, hang, leak or sanitizer report is a bug. A checkpoint that
// loads must be savable again (save_safetensors into a private tmpfs directory) and reload bit-identically.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "fuzz_util.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/util/error.hpp"

namespace {

using veridl::train::Checkpoint;
using veridl_fuzz::die;

// A private directory for the round-trip saves, removed at exit (a crash may leave it behind: it is empty then,
// as each saved file is removed right after it is reloaded). Never destroyed, so the exit handler can use it.
const std::string& scratch_dir() {
  static const std::string* dir = [] {
    std::string base = "/dev/shm";
    struct stat st {};
    if (::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || ::access(base.c_str(), W_OK) != 0) {
      const char* t = std::getenv("TMPDIR");
      base = t && *t ? t : "/tmp";
    }
    std::string tmpl = base + "/veridl-fuzz-ckpt-XXXXXX";
    if (!::mkdtemp(tmpl.data())) die("cannot create a scratch directory under " + base);
    auto* d = new std::string(tmpl);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

bool same(const Checkpoint& a, const Checkpoint& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.shape != y.shape || x.data.size() != y.data.size()) return false;
    if (!x.data.empty() && std::memcmp(x.data.data(), y.data.data(), x.data.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  veridl_fuzz::MemFile file(veridl_fuzz::as_view(data, size));
  Checkpoint ckpt;
  try {
    ckpt = veridl::train::load_safetensors(file.path());
  } catch (const veridl::Error&) {
    return 0;
  }
  for (const auto& t : ckpt.tensors) {
    size_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) die("load_safetensors returned a negative dim");
      n *= static_cast<size_t>(d);
    }
    if (n != t.data.size()) die("load_safetensors returned a tensor whose shape product != data size");
  }
  const std::string path = scratch_dir() + "/roundtrip.safetensors";
  Checkpoint back;
  try {
    veridl::train::save_safetensors(path, ckpt);
    back = veridl::train::load_safetensors(path);
  } catch (const veridl::Error& e) {
    die(std::string("a loaded checkpoint does not save+reload: ") + e.what());
  }
  std::remove(path.c_str());
  if (!same(ckpt, back)) die("load -> save -> load changed the checkpoint");
  return 0;
}
