// safetensors checkpoints: bit-exact round trip, layout, atomic writes, and clean errors on corrupt files.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/util/error.hpp"

using namespace veridl::testutil;

namespace {

namespace fs = std::filesystem;
using veridl::train::Checkpoint;
using veridl::train::load_safetensors;
using veridl::train::save_safetensors;
using veridl::train::Tensor;




std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int b = 0; b < 8; ++b) s[static_cast<size_t>(b)] = static_cast<char>(v >> (8 * b));
  return s;
}

// A safetensors file from a header text (padded with spaces to a multiple of 8) and a buffer.
std::string raw_file(std::string header, const std::string& buffer) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + buffer;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Tensors with awkward values and shapes, in deliberately non-alphabetical order.
Checkpoint sample() {
  Checkpoint c;
  Tensor w{"layer1.weight", {2, 3, 4}, {}};
  for (int i = 0; i < 24; ++i) w.data.push_back(static_cast<float>(i) * 0.37f - 4.1f);
  w.data[0] = -0.0f;
  w.data[1] = std::numeric_limits<float>::infinity();
  w.data[2] = -std::numeric_limits<float>::infinity();
  w.data[3] = from_bits(0x7fc12345u);  // quiet NaN with a payload
  w.data[4] = std::numeric_limits<float>::denorm_min();
  w.data[5] = std::numeric_limits<float>::max();
  w.data[6] = std::numeric_limits<float>::lowest();
  c.tensors.push_back(w);
  c.tensors.push_back({"zeta.scalar", {}, {3.25f}});
  c.tensors.push_back({"empty", {0, 5}, {}});
  c.tensors.push_back({"alpha.bias", {3}, {1.f, -2.f, 1e-30f}});
  return c;
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const Tensor &x = a.tensors[i], &y = b.tensors[i];
    EXPECT_EQ(x.name, y.name) << i;
    EXPECT_EQ(x.shape, y.shape) << x.name;
    ASSERT_EQ(x.data.size(), y.data.size()) << x.name;
    for (size_t k = 0; k < x.data.size(); ++k) EXPECT_EQ(bits(x.data[k]), bits(y.data[k])) << x.name << "[" << k << "]";
  }
  EXPECT_EQ(a.metadata, b.metadata);
}

class CheckpointTest : public ScratchDirTest {
 protected:
  CheckpointTest() : ScratchDirTest("veridl_ckpt_test_") {}
  // The message of loading a file with these bytes.
  std::string load_error(const std::string& bytes, const std::string& name = "bad.safetensors") {
    write_bytes(dir_ / name, bytes);
    return error_of([&] { load_safetensors(path(name)); });
  }
};

using CheckpointRoundTrip = CheckpointTest;
using CheckpointSave = CheckpointTest;
using CheckpointLoad = CheckpointTest;

// ---------------------------------------------------------------------------------------------------- round trip

TEST_F(CheckpointRoundTrip, BitExactAndOrderAsGiven) {
  Checkpoint c = sample();
  save_safetensors(path("m.safetensors"), c);
  Checkpoint back = load_safetensors(path("m.safetensors"));
  expect_same(c, back);
  EXPECT_TRUE(back.metadata.empty());
  EXPECT_EQ(listing(), std::vector<std::string>{"m.safetensors"});  // no temp file left behind
}

TEST_F(CheckpointRoundTrip, Metadata) {
  Checkpoint c = sample();
  c.metadata = {{"epoch", "7"},
                {"spec", "{\"layers\": [1, 2]}"},
                {"note", "line one\nline two\t\"quoted\" \\ backslash"},
                {"unicode", "\xce\xb8 \xe2\x88\x82"},
                {"empty", ""}};
  save_safetensors(path("m.safetensors"), c);
  Checkpoint back = load_safetensors(path("m.safetensors"));
  expect_same(c, back);
  EXPECT_EQ(back.metadata.at("note"), "line one\nline two\t\"quoted\" \\ backslash");
}

TEST_F(CheckpointRoundTrip, EmptyCheckpoint) {
  save_safetensors(path("e.safetensors"), Checkpoint{});
  EXPECT_EQ(read_bytes(dir_ / "e.safetensors"), le64(8) + "{}      ");
  Checkpoint back = load_safetensors(path("e.safetensors"));
  EXPECT_TRUE(back.tensors.empty());
  EXPECT_TRUE(back.metadata.empty());
}

TEST_F(CheckpointRoundTrip, OverwritesExistingFile) {
  Checkpoint a = sample(), b;
  b.tensors.push_back({"only", {2}, {5.f, 6.f}});
  save_safetensors(path("m.safetensors"), a);
  save_safetensors(path("m.safetensors"), b);
  expect_same(b, load_safetensors(path("m.safetensors")));
  EXPECT_EQ(listing(), std::vector<std::string>{"m.safetensors"});
}

TEST_F(CheckpointRoundTrip, Find) {
  Checkpoint c = sample();
  ASSERT_NE(c.find("alpha.bias"), nullptr);
  EXPECT_EQ(c.find("alpha.bias")->data[1], -2.f);
  EXPECT_EQ(c.find("nope"), nullptr);
}

// The bytes follow the safetensors layout exactly, so other readers can open the file.
TEST_F(CheckpointRoundTrip, FileLayout) {
  Checkpoint c = sample();
  c.metadata["epoch"] = "3";
  save_safetensors(path("m.safetensors"), c);
  std::string bytes = read_bytes(dir_ / "m.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= uint64_t{static_cast<unsigned char>(bytes[static_cast<size_t>(b)])} << (8 * b);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_LE(8 + n, bytes.size());
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padded with spaces only
  nlohmann::json j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"], (nlohmann::json{{"epoch", "3"}}));
  EXPECT_EQ(j["layer1.weight"]["dtype"], "F32");
  EXPECT_EQ(j["layer1.weight"]["shape"], (nlohmann::json{2, 3, 4}));
  EXPECT_EQ(j["layer1.weight"]["data_offsets"], (nlohmann::json{0, 96}));
  EXPECT_EQ(j["zeta.scalar"]["shape"], nlohmann::json::array());
  EXPECT_EQ(j["zeta.scalar"]["data_offsets"], (nlohmann::json{96, 100}));
  EXPECT_EQ(j["empty"]["shape"], (nlohmann::json{0, 5}));
  EXPECT_EQ(j["empty"]["data_offsets"], (nlohmann::json{100, 100}));
  EXPECT_EQ(j["alpha.bias"]["data_offsets"], (nlohmann::json{100, 112}));
  ASSERT_EQ(bytes.size(), 8 + n + 112);
  // The buffer is the little-endian float32 values, tensor after tensor.
  const char* buf = bytes.data() + 8 + n;
  uint32_t u;
  std::memcpy(&u, buf + 12, 4);
  EXPECT_EQ(u, 0x7fc12345u);
  std::memcpy(&u, buf + 96, 4);
  EXPECT_EQ(u, bits(3.25f));
  EXPECT_EQ(static_cast<unsigned char>(buf[96 + 3]), bits(3.25f) >> 24);  // little-endian: top byte last
}

// ---------------------------------------------------------------------------------------------------- save

TEST_F(CheckpointSave, RejectsInvalidInputBeforeWriting) {
  std::string p = path("m.safetensors");
  auto expect_rejected = [&](Checkpoint c, std::initializer_list<std::string> parts) {
    EXPECT_TRUE(mentions(error_of([&] { save_safetensors(p, c); }), parts));
    EXPECT_TRUE(listing().empty());
  };
  Checkpoint dup;
  dup.tensors = {{"w", {1}, {1.f}}, {"w", {1}, {2.f}}};
  expect_rejected(dup, {"cannot write checkpoint '" + p + "'", "duplicate tensor name 'w'"});
  expect_rejected(Checkpoint{{{"", {1}, {1.f}}}, {}}, {p, "tensor #0 has an empty name"});
  expect_rejected(Checkpoint{{{"__metadata__", {1}, {1.f}}}, {}}, {p, "'__metadata__'"});
  expect_rejected(Checkpoint{{{"w", {2, 3}, {1.f, 2.f}}}, {}}, {p, "tensor 'w' has shape [2,3] but 2 values"});
  expect_rejected(Checkpoint{{{"w", {-1, -2}, {1.f, 2.f}}}, {}}, {p, "tensor 'w' has a negative dim in shape [-1,-2]"});
  expect_rejected(Checkpoint{{{"w\xff", {1}, {1.f}}}, {}}, {p, "not valid UTF-8"});
}

TEST_F(CheckpointSave, MissingDirectory) {
  std::string p = path("no/such/dir/m.safetensors");
  EXPECT_TRUE(mentions(error_of([&] { save_safetensors(p, sample()); }),
                       {"cannot write checkpoint '" + p + "': No such file or directory"}));
}

TEST_F(CheckpointSave, PathIsADirectoryIsLeftAlone) {
  fs::create_directory(dir_ / "m.safetensors");
  write_bytes(dir_ / "m.safetensors" / "keep", "x");
  std::string p = path("m.safetensors");
  EXPECT_TRUE(mentions(error_of([&] { save_safetensors(p, sample()); }), {"cannot write checkpoint '" + p + "': "}));
  EXPECT_EQ(listing(), std::vector<std::string>{"m.safetensors"});  // temp file removed
  EXPECT_EQ(read_bytes(dir_ / "m.safetensors" / "keep"), "x");
}

// The temp file cannot be created (a directory sits at its name): the old checkpoint stays intact.
TEST_F(CheckpointSave, OldFileIntactWhenTempCannotBeCreated) {
  std::string p = path("m.safetensors");
  Checkpoint old = sample();
  save_safetensors(p, old);
  std::string before = read_bytes(p);
  fs::path tmp = p + ".tmp." + std::to_string(::getpid());
  fs::create_directory(tmp);
  Checkpoint next;
  next.tensors.push_back({"new", {1}, {1.f}});
  EXPECT_TRUE(mentions(error_of([&] { save_safetensors(p, next); }),
                       {"cannot write checkpoint '" + p + "': Is a directory"}));
  EXPECT_EQ(read_bytes(p), before);
  expect_same(old, load_safetensors(p));
  EXPECT_TRUE(fs::is_directory(tmp));  // not ours: not removed
}

// The write fails half-way (file size limit, EFBIG): the old checkpoint stays intact and no temp file is left.
TEST_F(CheckpointSave, OldFileIntactWhenWriteFailsMidway) {
  std::string p = path("m.safetensors");
  Checkpoint old = sample();
  save_safetensors(p, old);
  std::string before = read_bytes(p);

  Checkpoint big;
  big.tensors.push_back({"big", {1 << 18}, std::vector<float>(1 << 18, 0.5f)});  // 1 MiB
  const std::string msg = error_under_file_size_limit(64 * 1024, [&] { save_safetensors(p, big); });

  EXPECT_TRUE(mentions(msg, {"cannot write checkpoint '" + p + "': File too large"}));
  EXPECT_EQ(read_bytes(p), before);
  expect_same(old, load_safetensors(p));
  EXPECT_EQ(listing(), std::vector<std::string>{"m.safetensors"});
}

TEST_F(CheckpointSave, UnwritableDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  std::string p = path("m.safetensors");
  save_safetensors(p, sample());
  std::string before = read_bytes(p);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_TRUE(mentions(error_of([&] { save_safetensors(p, Checkpoint{}); }),
                       {"cannot write checkpoint '" + p + "': Permission denied"}));
  fs::permissions(dir_, fs::perms::owner_all);
  EXPECT_EQ(read_bytes(p), before);
}

// ---------------------------------------------------------------------------------------------------- load errors

TEST_F(CheckpointLoad, MissingOrDirectory) {
  std::string p = path("missing.safetensors");
  EXPECT_TRUE(mentions(error_of([&] { load_safetensors(p); }),
                       {"cannot read checkpoint '" + p + "': No such file or directory"}));
  EXPECT_TRUE(mentions(error_of([&] { load_safetensors(dir_.string()); }),
                       {"cannot read checkpoint '" + dir_.string() + "': it is a directory"}));
}

TEST_F(CheckpointLoad, ShorterThanLengthField) {
  std::string p = path("bad.safetensors");
  EXPECT_TRUE(mentions(load_error("abc"), {"checkpoint '" + p + "'", "file is 3 bytes, shorter than the 8-byte"}));
  EXPECT_TRUE(mentions(load_error(""), {p, "file is 0 bytes"}));
}

TEST_F(CheckpointLoad, HeaderLengthBeyondFile) {
  EXPECT_TRUE(mentions(load_error(le64(100) + "{}"),
                       {path("bad.safetensors"), "header length 100 exceeds the 2 bytes after the length field"}));
  EXPECT_TRUE(mentions(load_error(le64(~uint64_t{0}) + "{}"), {"header length 18446744073709551615 exceeds"}));
}

TEST_F(CheckpointLoad, InvalidJson) {
  std::string p = path("bad.safetensors");
  EXPECT_TRUE(mentions(load_error(raw_file("{\"w\": ", "")), {p, "invalid JSON header"}));
  EXPECT_TRUE(mentions(load_error(raw_file("{\"w\"\n:\n\n1,}", "")), {p, "invalid JSON header"}));  // stays one line
  EXPECT_TRUE(mentions(load_error(raw_file("[1, 2]", "")), {p, "the JSON header is not an object"}));
  EXPECT_TRUE(mentions(load_error(le64(8) + std::string("{}\0\0\0\0\0\0", 8)),
                       {p, "invalid JSON header: NUL byte at header offset 2"}));
}

// Found by fuzzing: a header nested a million levels deep overflowed the stack. It is refused before parsing.
TEST_F(CheckpointLoad, DeeplyNestedHeader) {
  const size_t depth = 1'000'000;
  std::string deep = "{\"w\": {\"dtype\": \"F32\", \"shape\": " + std::string(depth, '[') + std::string(depth, ']') +
                     ", \"data_offsets\": [0, 0]}}";
  EXPECT_TRUE(mentions(load_error(raw_file(deep, "")), {path("bad.safetensors"), "nested deeper than 64 levels"}));
  // 64 levels is the limit, not less: brackets inside strings do not count.
  std::string names = "{\"[[[[{{{{\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}}";
  EXPECT_NO_THROW(load_safetensors([&] {
    write_bytes(dir_ / "ok.safetensors", raw_file(names, ""));
    return path("ok.safetensors");
  }()));
}

TEST_F(CheckpointLoad, MissingFields) {
  std::string p = path("bad.safetensors");
  std::string buf(8, '\0');
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", buf)),
                       {p, "tensor 'w' has no dtype"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", buf)),
                       {p, "tensor 'w' has no shape"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2]}})", buf)),
                       {p, "tensor 'w' has no data_offsets"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": [1, 2]})", buf)), {p, "entry of tensor 'w' is not an object"}));
}

TEST_F(CheckpointLoad, BadFieldValues) {
  std::string p = path("bad.safetensors");
  std::string buf(8, '\0');
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}})", buf)),
                       {p, "tensor 'w' has dtype 'BF16'; only F32 is supported"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": 32, "shape": [2], "data_offsets": [0, 8]}})", buf)),
                       {p, "tensor 'w': dtype is not a string"}));
  for (const char* shape : {"[-2]", "[2.0]", "[\"2\"]", "2", "[18446744073709551615]"})
    EXPECT_TRUE(mentions(load_error(raw_file(std::string(R"({"w": {"dtype": "F32", "shape": )") + shape +
                                                 R"(, "data_offsets": [0, 8]}})",
                                             buf)),
                         {p, "tensor 'w': shape must be an array of non-negative integers"}))
        << shape;
  for (const char* offs : {"[0]", "[0, 8, 8]", "[-1, 8]", "[0, 8.5]", "{}"})
    EXPECT_TRUE(mentions(load_error(raw_file(std::string(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": )") +
                                                 offs + "}}",
                                             buf)),
                         {p, "tensor 'w': data_offsets must be [begin, end]"}))
        << offs;
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", buf)),
                       {p, "tensor 'w': data_offsets [8,0] end before they begin"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"__metadata__": {"epoch": 3}})", "")),
                       {p, "__metadata__ value of key 'epoch' is not a string"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"__metadata__": "epoch 3"})", "")), {p, "__metadata__ is not an object"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", buf)),
                       {p, "a tensor has an empty name"}));
}

TEST_F(CheckpointLoad, ShapeDoesNotMatchOffsets) {
  EXPECT_TRUE(mentions(
      load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", std::string(20, 'x'))),
      {path("bad.safetensors"), "tensor 'w': shape [2,3] needs 24 bytes but data_offsets [0,20] span 20"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 8],
                                                 "data_offsets": [0, 8]}})",
                                           std::string(8, 'x'))),
                       {"tensor 'w': shape [4611686018427387904,8] is too large"}));
}

TEST_F(CheckpointLoad, OffsetsOutOfRangeOverlappingOrNotCovering) {
  std::string p = path("bad.safetensors");
  EXPECT_TRUE(mentions(
      load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", std::string(8, 'x'))),
      {p, "tensor 'w': data_offsets [4,12] are out of range: the buffer has 8 bytes"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                           std::string(12, 'x'))),
                       {p, "tensors 'a' and 'b' overlap (data_offsets [0,8] and [4,12])"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                                           std::string(8, 'x'))),
                       {p, "tensors 'a' and 'b' overlap"}));
  EXPECT_TRUE(mentions(
      load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", std::string(12, 'x'))),
      {p, "buffer bytes [8,12) belong to no tensor (the tensors cover 8 of 12 bytes)"}));
  EXPECT_TRUE(mentions(
      load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", std::string(8, 'x'))),
      {p, "buffer bytes [0,4) belong to no tensor (gap before tensor 'w')"}));
}

TEST_F(CheckpointLoad, DuplicateNamesAndKeys) {
  std::string p = path("bad.safetensors");
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                           std::string(8, 'x'))),
                       {p, "duplicate tensor name 'w'"}));
  EXPECT_TRUE(mentions(load_error(raw_file(R"({"w": {"dtype": "F32", "shape": [1], "shape": [2],
                                                     "data_offsets": [0, 8]}})",
                                           std::string(8, 'x'))),
                       {p, "duplicate key 'shape' in the entry 'w'"}));
}

TEST_F(CheckpointLoad, HostileNamesStayOnOneLine) {
  std::string msg = load_error(raw_file(R"({"evil\nname": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})",
                                        std::string(8, 'x')));
  EXPECT_TRUE(mentions(msg, {"tensor 'evil?name' has dtype 'I64'"}));
}

// Every proper prefix of a valid file is rejected with a clean error.
TEST_F(CheckpointLoad, TruncatedAtEveryLength) {
  Checkpoint c = sample();
  c.metadata["epoch"] = "1";
  save_safetensors(path("good.safetensors"), c);
  std::string good = read_bytes(dir_ / "good.safetensors");
  std::string p = path("cut.safetensors");
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(p, good.substr(0, len));
    std::string msg = error_of([&] { load_safetensors(p); });
    ASSERT_TRUE(mentions(msg, {"checkpoint '" + p + "'"})) << "prefix length " << len;
  }
  write_bytes(p, good);
  expect_same(c, load_safetensors(p));
}

// Any change of the header length field is detected.
TEST_F(CheckpointLoad, HeaderLengthBitFlips) {
  save_safetensors(path("good.safetensors"), sample());
  std::string good = read_bytes(dir_ / "good.safetensors");
  for (size_t bit = 0; bit < 64; ++bit) {
    std::string bad = good;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    ASSERT_TRUE(mentions(load_error(bad), {path("bad.safetensors")})) << "bit " << bit;
  }
}

// Corrupting any header byte either still yields a well-formed checkpoint or a veridl::Error: never a crash.
TEST_F(CheckpointLoad, HeaderByteCorruptionNeverCrashes) {
  Checkpoint c = sample();
  c.metadata["k"] = "v";
  save_safetensors(path("good.safetensors"), c);
  std::string good = read_bytes(dir_ / "good.safetensors");
  std::string p = path("bad.safetensors");
  uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= uint64_t{static_cast<unsigned char>(good[static_cast<size_t>(b)])} << (8 * b);
  size_t errors = 0, loaded = 0;
  for (size_t i = 8; i < 8 + n; ++i)
    for (int x : {0x01, 0x08, 0x20, 0x80, 0xFF}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ x);
      write_bytes(p, bad);
      try {
        Checkpoint back = load_safetensors(p);
        ++loaded;
        size_t total = 0;
        for (const Tensor& t : back.tensors) total += t.data.size() * 4;
        ASSERT_LE(total, good.size());
      } catch (const veridl::Error& e) {
        ++errors;
        ASSERT_TRUE(mentions(e.what(), {"checkpoint '" + p + "'"})) << "byte " << i;
      } catch (const std::exception& e) {
        FAIL() << "byte " << i << " xor " << x << ": unexpected exception " << e.what();
      }
    }
  EXPECT_GT(errors, 0u);
  EXPECT_GT(loaded, 0u);  // e.g. a flipped letter inside a tensor name or metadata value is still a valid file
}

}  // namespace
