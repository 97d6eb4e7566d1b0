// safetensors reader/writer (F32 only). See checkpoint.hpp and docs/data.md.
#include "veridl/train/checkpoint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/json_depth.hpp"

namespace veridl::train {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "F32 must be IEEE-754 binary32");

using ojson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeader = 100'000'000;  // the limit of the reference implementation

// File-derived text made safe for a one-line message: control and non-ASCII bytes become '?', long text is cut.
std::string clean(const std::string& s, size_t max_len = 120) {
  std::string out;
  for (char ch : s) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(ch);
    out += (u < 0x20 || u >= 0x7f) ? '?' : ch;
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// product(shape) * 4, or false on overflow.
bool byte_size(const std::vector<int64_t>& shape, uint64_t& bytes) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  if (n > std::numeric_limits<uint64_t>::max() / 4) return false;
  bytes = n * 4;
  return true;
}

std::vector<char> read_all(const std::string& path) {
  const std::vector<uint8_t> b = read_whole_file(path, "checkpoint");
  return std::vector<char>(b.begin(), b.end());
}

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

}  // namespace

const Tensor* Checkpoint::find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void save_safetensors(const std::string& path, const Checkpoint& ckpt) {
  auto fail = [&](const std::string& why) { return Error(fmt::format("cannot write checkpoint '{}': {}", path, why)); };

  // Validate and build the header before touching the file system.
  ojson header = ojson::object();
  if (!ckpt.metadata.empty()) {
    ojson meta = ojson::object();
    for (const auto& [k, v] : ckpt.metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
    const Tensor& t = ckpt.tensors[i];
    if (t.name.empty()) throw fail(fmt::format("tensor #{} has an empty name", i));
    if (t.name == "__metadata__") throw fail("a tensor may not be named '__metadata__'");
    if (!names.insert(t.name).second) throw fail(fmt::format("duplicate tensor name '{}'", clean(t.name)));
    for (int64_t d : t.shape)
      if (d < 0) throw fail(fmt::format("tensor '{}' has a negative dim in shape {}", clean(t.name), shape_str(t.shape)));
    uint64_t bytes = 0;
    if (!byte_size(t.shape, bytes) || bytes != uint64_t{t.data.size()} * 4)
      throw fail(fmt::format("tensor '{}' has shape {} but {} values", clean(t.name), shape_str(t.shape),
                             t.data.size()));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {
    throw fail("a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  unsigned char len_bytes[8];
  for (int b = 0; b < 8; ++b) len_bytes[b] = static_cast<unsigned char>(n >> (8 * b));

  std::vector<std::span<const char>> parts;
  parts.reserve(2 + ckpt.tensors.size());
  parts.emplace_back(reinterpret_cast<const char*>(len_bytes), 8);
  parts.emplace_back(text.data(), text.size());
  for (const Tensor& t : ckpt.tensors)
    parts.emplace_back(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
  write_file_atomic(path, parts, "checkpoint");
}

Checkpoint load_safetensors(const std::string& path) {
  auto fail = [&](const std::string& why) { return Error(fmt::format("checkpoint '{}': {}", path, why)); };

  const std::vector<char> bytes = read_all(path);
  if (bytes.size() < 8)
    throw fail(fmt::format("file is {} bytes, shorter than the 8-byte header length", bytes.size()));
  uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= uint64_t{static_cast<unsigned char>(bytes[b])} << (8 * b);
  const uint64_t after = bytes.size() - 8;
  if (n > after) throw fail(fmt::format("header length {} exceeds the {} bytes after the length field", n, after));
  if (n > kMaxHeader) throw fail(fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxHeader));
  const char* buffer = bytes.data() + 8 + n;
  const uint64_t buffer_size = after - n;

  // JSON text never holds a raw NUL, but the parser would stop at one and accept what came before.
  if (const void* nul = std::memchr(bytes.data() + 8, '\0', n))
    throw fail(fmt::format("invalid JSON header: NUL byte at header offset {}",
                           static_cast<const char*>(nul) - (bytes.data() + 8)));

  if (json_nesting_depth(std::string_view(bytes.data() + 8, n)) > kMaxJsonDepth)
    throw fail(fmt::format("invalid JSON header: nested deeper than {} levels", kMaxJsonDepth));

  // Parse, noting duplicate keys (which the parser would silently merge) in any object.
  std::vector<std::set<std::string>> open_objects;
  std::string top_key, duplicate;
  ojson header;
  try {
    header = ojson::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n),
                          [&](int depth, ojson::parse_event_t ev, ojson& parsed) {
                            if (ev == ojson::parse_event_t::object_start) {
                              open_objects.emplace_back();
                            } else if (ev == ojson::parse_event_t::object_end) {
                              if (!open_objects.empty()) open_objects.pop_back();
                            } else if (ev == ojson::parse_event_t::key && parsed.is_string()) {
                              const std::string& k = parsed.get_ref<const std::string&>();
                              if (depth == 1) top_key = k;
                              if (!open_objects.empty() && !open_objects.back().insert(k).second &&
                                  duplicate.empty())
                                duplicate = depth == 1 ? fmt::format("duplicate tensor name '{}'", clean(k))
                                                       : fmt::format("duplicate key '{}' in the entry '{}'", clean(k),
                                                                     clean(top_key));
                            }
                            return true;
                          });
  } catch (const nlohmann::json::exception& e) {
    throw fail("invalid JSON header: " + clean(e.what(), 240));
  }
  if (!duplicate.empty()) throw fail(duplicate);
  if (!header.is_object()) throw fail("the JSON header is not an object");

  Checkpoint ckpt;
  std::vector<Entry> entries;
  for (const auto& [key, val] : header.items()) {
    const std::string name = clean(key);
    if (key == "__metadata__") {
      if (!val.is_object()) throw fail("__metadata__ is not an object");
      for (const auto& [mk, mv] : val.items()) {
        if (!mv.is_string()) throw fail(fmt::format("__metadata__ value of key '{}' is not a string", clean(mk)));
        ckpt.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    if (key.empty()) throw fail("a tensor has an empty name");
    if (!val.is_object()) throw fail(fmt::format("entry of tensor '{}' is not an object", name));
    auto dtype = val.find("dtype");
    if (dtype == val.end()) throw fail(fmt::format("tensor '{}' has no dtype", name));
    if (!dtype->is_string()) throw fail(fmt::format("tensor '{}': dtype is not a string", name));
    if (*dtype != "F32")
      throw fail(fmt::format("tensor '{}' has dtype '{}'; only F32 is supported", name,
                             clean(dtype->get<std::string>())));
    auto shape = val.find("shape");
    if (shape == val.end()) throw fail(fmt::format("tensor '{}' has no shape", name));
    auto offsets = val.find("data_offsets");
    if (offsets == val.end()) throw fail(fmt::format("tensor '{}' has no data_offsets", name));

    Entry e;
    e.name = key;
    bool ok = shape->is_array();
    if (ok)
      for (const ojson& d : *shape) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
          ok = false;
          break;
        }
        e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
      }
    if (!ok)
      throw fail(fmt::format("tensor '{}': shape must be an array of non-negative integers, got {}", name,
                             clean(shape->dump(), 60)));
    ok = offsets->is_array() && offsets->size() == 2 && (*offsets)[0].is_number_unsigned() &&
         (*offsets)[1].is_number_unsigned();
    if (!ok)
      throw fail(fmt::format("tensor '{}': data_offsets must be [begin, end] with non-negative integers, got {}", name,
                             clean(offsets->dump(), 60)));
    e.begin = (*offsets)[0].get<uint64_t>();
    e.end = (*offsets)[1].get<uint64_t>();
    if (e.begin > e.end)
      throw fail(fmt::format("tensor '{}': data_offsets [{},{}] end before they begin", name, e.begin, e.end));
    if (e.end > buffer_size)
      throw fail(fmt::format("tensor '{}': data_offsets [{},{}] are out of range: the buffer has {} bytes", name,
                             e.begin, e.end, buffer_size));
    uint64_t need = 0;
    if (!byte_size(e.shape, need))
      throw fail(fmt::format("tensor '{}': shape {} is too large", name, shape_str(e.shape)));
    if (need != e.end - e.begin)
      throw fail(fmt::format("tensor '{}': shape {} needs {} bytes but data_offsets [{},{}] span {}", name,
                             shape_str(e.shape), need, e.begin, e.end, e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // The tensors must tile the buffer exactly: sorted by offset, each begins where the previous ended.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < pos)
      throw fail(fmt::format("tensors '{}' and '{}' overlap (data_offsets [{},{}] and [{},{}])",
                             clean(entries[i - 1].name), clean(e.name), entries[i - 1].begin, entries[i - 1].end,
                             e.begin, e.end));
    if (e.begin > pos)
      throw fail(fmt::format("buffer bytes [{},{}) belong to no tensor (gap before tensor '{}')", pos, e.begin,
                             clean(e.name)));
    pos = e.end;
  }
  if (pos != buffer_size)
    throw fail(fmt::format("buffer bytes [{},{}) belong to no tensor (the tensors cover {} of {} bytes)", pos,
                           buffer_size, pos, buffer_size));

  ckpt.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    Tensor t;
    t.name = std::move(e.name);
    t.shape = std::move(e.shape);
    t.data.resize((e.end - e.begin) / 4);
    if (!t.data.empty()) std::memcpy(t.data.data(), buffer + e.begin, e.end - e.begin);
    ckpt.tensors.push_back(std::move(t));
  }
  return ckpt;
}

}  // namespace veridl::train
