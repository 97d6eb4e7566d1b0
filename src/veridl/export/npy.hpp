// NumPy .npy files (format 1.0; versions 2.0 and 3.0 are read too): little-endian f32 ('<f4') and i32
// ('<i4'), C order. What `veridl export`'s users feed to iree-run-module (--input=@x.npy) and what it
// writes back (--output=@y.npy).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veridl::hlo {

struct NpyArray {
  std::vector<int64_t> shape;  // {} for a scalar
  std::string dtype;           // "f32" or "i32"
  std::vector<float> f32;      // the data, when dtype is f32
  std::vector<int32_t> i32;    // the data, when dtype is i32
  size_t size() const;         // number of elements
};

// Writes `shape`'s product of elements from `data`. Throws veridl::Error naming the file.
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const int32_t* data);

// Reads a '<f4' or '<i4' C-order array. Throws veridl::Error (one line naming the file) otherwise.
NpyArray read_npy(const std::string& path);

}  // namespace veridl::hlo
