#include "veridl/export/npy.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>

#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::hlo {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian host");

size_t NpyArray::size() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

namespace {

void write(const std::string& path, const std::vector<int64_t>& shape, const char* descr, const void* data,
           size_t elem) {
  std::string dims = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) dims += ',';  // the Python tuple (n,)
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  const size_t total = 10 + header.size() + 1;      // magic, version, length, header, newline
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const std::span<const char> parts[] = {{"\x93NUMPY\x01\x00", 8},
                                         {reinterpret_cast<const char*>(&len), 2},
                                         {header.data(), header.size()},
                                         {static_cast<const char*>(data), n * elem}};
  write_file_atomic(path, parts);
}

// The text after `key': ` in the header dict, up to the end of the value.
std::string field(const std::string& h, const std::string& key, const std::string& path) {
  const size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) throw Error(path + ": .npy header has no '" + key + "'");
  size_t v = h.find(':', k);
  if (v == std::string::npos) throw Error(path + ": malformed .npy header");
  ++v;
  while (v < h.size() && h[v] == ' ') ++v;
  if (v >= h.size()) throw Error(path + ": malformed .npy header");
  size_t end;
  if (h[v] == '(') {
    end = h.find(')', v);
    if (end == std::string::npos) throw Error(path + ": malformed .npy shape");
    ++end;
  } else if (h[v] == '\'') {
    end = h.find('\'', v + 1);
    if (end == std::string::npos) throw Error(path + ": malformed .npy header");
    ++end;
  } else {
    end = h.find_first_of(",}", v);
  }
  return h.substr(v, end - v);
}

}  // namespace

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  write(path, shape, "<f4", data, sizeof(float));
}
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const int32_t* data) {
  write(path, shape, "<i4", data, sizeof(int32_t));
}

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw Error(path + ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(path + ": truncated .npy header");
    uint32_t l;
    std::memcpy(&l, bytes.data() + 8, 4);
    hlen = l;
    start = 12;
  } else {
    throw Error(fmt::format("{}: .npy format version {} is not supported", path, major));
  }
  if (bytes.size() < start + hlen) throw Error(path + ": truncated .npy header");
  const std::string h = bytes.substr(start, hlen);
  NpyArray a;
  const std::string descr = field(h, "descr", path);
  if (descr == "'<f4'") {
    a.dtype = "f32";
  } else if (descr == "'<i4'") {
    a.dtype = "i32";
  } else {
    throw Error(path + ": .npy dtype " + descr + " is not supported (only '<f4' and '<i4')");
  }
  if (field(h, "fortran_order", path) != "False") throw Error(path + ": Fortran-order .npy arrays are not supported");
  const std::string shp = field(h, "shape", path);
  for (size_t i = 1; i + 1 < shp.size();) {
    while (i + 1 < shp.size() && (shp[i] == ' ' || shp[i] == ',')) ++i;
    if (i + 1 >= shp.size()) break;
    size_t used = 0;
    long long d = 0;
    try {
      d = std::stoll(shp.substr(i), &used);
    } catch (const std::exception&) {
      throw Error(path + ": malformed .npy shape " + shp);
    }
    if (d < 0) throw Error(path + ": negative dimension in .npy shape " + shp);
    a.shape.push_back(d);
    i += used;
  }
  const size_t n = a.size(), data = start + hlen;
  if (bytes.size() != data + 4 * n)
    throw Error(fmt::format("{}: .npy data is {} bytes, shape {} needs {}", path, bytes.size() - data, shp, 4 * n));
  if (a.dtype == "f32") {
    a.f32.resize(n);
    std::memcpy(a.f32.data(), bytes.data() + data, 4 * n);
  } else {
    a.i32.resize(n);
    std::memcpy(a.i32.data(), bytes.data() + data, 4 * n);
  }
  return a;
}

}  // namespace veridl::hlo
