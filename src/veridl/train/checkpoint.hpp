#pragma once
// Checkpoints in the safetensors format (https://huggingface.co/docs/safetensors):
//   u64 little-endian N | N bytes of JSON header, space-padded to a multiple of 8 | byte buffer
// The header maps each tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
// (offsets relative to the buffer) plus an optional "__metadata__" object of string -> string.
// Only F32 tensors are written and accepted. See docs/data.md.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace veridl::train {

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;  // empty = scalar (1 element)
  std::vector<float> data;     // row-major, product(shape) elements
};

struct Checkpoint {
  std::vector<Tensor> tensors;
  std::map<std::string, std::string> metadata;
  const Tensor* find(const std::string& name) const;  // nullptr if absent
};

// Tensors are written in the order given, back to back, through write_file_atomic (util/file.hpp): a temp
// file path + ".tmp.<pid>", fsynced, then renamed over `path`; on any failure the temp file is removed, an
// existing `path` is left untouched, and veridl::Error("cannot write checkpoint '<path>': <reason>") is thrown. Invalid input (empty or duplicate
// names, the name "__metadata__", negative dims, shape product != data size) is rejected before any write.
void save_safetensors(const std::string& path, const Checkpoint& ckpt);

// Validates the whole file (header length, JSON, every entry, offsets tile the buffer exactly, no duplicate
// names, F32 only) and throws veridl::Error naming the file and the fault. Tensors come back in buffer order.
Checkpoint load_safetensors(const std::string& path);

}  // namespace veridl::train
