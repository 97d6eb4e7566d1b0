// The decision tape: every data-dependent decision of a forward program (ReLU sign, arg-max, masks)
// goes through a Decisions object. A real-valued run decides by value (and may record); field and dual
// runs cannot decide (the field has no order) and replay a recorded tape instead. A random tape draws
// each decision at random, so patterns the real sample never produced are covered too.
//
// The conventions live here, in one place: gt(x, t) is the strict x > t (so ReLU'(0) = 0), and argmax
// uses strict > while scanning, so ties go to the lowest index.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/calculus/dual.hpp"
#include "veridl/calculus/field.hpp"

namespace veridl {

struct TapeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The real value behind a scalar, if it has one (float, double, Dual<real>); none for the field.
inline std::optional<double> real_value(double x) { return x; }
inline std::optional<double> real_value(float x) { return static_cast<double>(x); }
template <uint64_t P>
std::optional<double> real_value(const Zp<P>&) { return std::nullopt; }
template <class T>
std::optional<double> real_value(const Dual<T>& x) { return real_value(x.v); }

class Decisions {
 public:
  enum class Mode {
    Live,    // decide by value, record nothing (reference training runs)
    Record,  // decide by value and record
    Replay,  // read every decision from the tape; a desynchronised read is a TapeError
    Random,  // draw every decision at random and record it
  };

  Decisions() = default;
  explicit Decisions(Mode m, uint64_t seed = 0) : mode_(m), rng_(seed) {}
  static Decisions replay(const Decisions& recorded) {
    Decisions d(Mode::Replay);
    d.tape_ = recorded.tape_;
    return d;
  }

  Mode mode() const { return mode_; }
  size_t size() const { return tape_.size(); }
  size_t position() const { return pos_; }
  const std::vector<uint32_t>& entries() const { return tape_; }

  // x > t (strict). t is a real threshold (0 for ReLU, 6 for ReLU6).
  template <class T>
  bool gt(const T& x, double t = 0.0) {
    return bit(0x10000000u, "gt", [&] { return need_real(real_value(x), "gt") > t; });
  }

  // Index of the maximum of get(0..n-1); ties go to the lowest index (strict > while scanning).
  template <class Get>
  uint32_t argmax(uint32_t n, Get&& get) {
    if (n == 0) throw TapeError("argmax over zero elements");
    if (n >= (1u << 20)) throw TapeError("argmax over more than 2^20 elements is not supported by the tape");
    const uint32_t kind = 0x20000000u | (n << 8);  // the width is part of the tag: desync detection
    switch (mode_) {
      case Mode::Live:
      case Mode::Record: {
        uint32_t best = 0;
        double bv = need_real(real_value(get(0)), "argmax");
        for (uint32_t i = 1; i < n; ++i) {
          double v = need_real(real_value(get(i)), "argmax");
          if (v > bv) {
            bv = v;
            best = i;
          }
        }
        if (mode_ == Mode::Record) {
          tape_.push_back(kind);
          tape_.push_back(best);
        }
        return best;
      }
      case Mode::Random: {
        uint32_t best = static_cast<uint32_t>(rng_() % n);
        tape_.push_back(kind);
        tape_.push_back(best);
        return best;
      }
      case Mode::Replay: {
        read(kind, true, "argmax");
        if (pos_ >= tape_.size()) throw TapeError("decision tape exhausted in argmax");
        uint32_t best = tape_[pos_++];
        if (best >= n) throw TapeError("decision tape desynchronised: argmax index out of range");
        return best;
      }
    }
    return 0;
  }

  // A random decision (dropout, drop-path): its live value `live` comes from the caller's counter-based
  // generator (noise::keep below), so that the fast kernels, which never see a tape, draw the same one.
  bool draw(bool live) {
    return bit(0x30000000u, "draw", [&] { return live; });
  }

  // A replayed tape must be consumed exactly: a forward whose control flow differs by scalar type reads
  // fewer or more decisions than were recorded.
  void finish() const {
    if (mode_ == Mode::Replay && pos_ != tape_.size())
      throw TapeError("decision tape desynchronised: " + std::to_string(tape_.size() - pos_) +
                      " recorded entries were not replayed");
  }
  void rewind() { pos_ = 0; }

 private:
  Mode mode_ = Mode::Live;
  std::vector<uint32_t> tape_;
  size_t pos_ = 0;
  std::mt19937_64 rng_{0};

  // A one-bit decision tagged `kind`: Live decides with live(), Record also keeps it on the tape, Random draws a
  // fresh bit (and keeps it), Replay reads it back.
  template <class Live>
  bool bit(uint32_t kind, const char* what, Live&& live) {
    switch (mode_) {
      case Mode::Live:
        return live();
      case Mode::Record:
      case Mode::Random: {
        const bool b = mode_ == Mode::Record ? live() : (rng_() & 1u) != 0;
        tape_.push_back(kind | (b ? 1u : 0u));
        return b;
      }
      case Mode::Replay:
        return (read(kind, false, what) & 1u) != 0;
    }
    return false;
  }
  static double need_real(std::optional<double> v, const char* what) {
    if (!v) throw TapeError(std::string("a field run reached a decision (") + what + ") without a replayed tape");
    return *v;
  }
  // exact: the whole entry must equal kind (argmax: tag and width); otherwise only the top nibble (the tag).
  uint32_t read(uint32_t kind, bool exact, const char* what) {
    if (pos_ >= tape_.size()) throw TapeError(std::string("decision tape exhausted at ") + what);
    uint32_t e = tape_[pos_++];
    if (exact ? e != kind : (e & 0xF0000000u) != (kind & 0xF0000000u))
      throw TapeError(std::string("decision tape desynchronised at ") + what + " (entry " + std::to_string(pos_ - 1) + ")");
    return e;
  }
};

// ---- the counter-based generator of the random decisions ----------------------------------------------
// Decision i of a node in one training step is a pure function of (seed, step, node, i): no generator state
// to carry, save or share between threads, the same bits on any thread count, in the reference and in the
// fast kernels, and a host can draw the masks an exported train step takes as inputs. SplitMix64's output
// function over the counter (Steele, Lea, Flood 2014: "Fast splittable pseudorandom number generators").
namespace noise {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// The key of one node in one step: the executor's (net::Executor::set_noise).
constexpr uint64_t node_key(uint64_t seed, uint64_t step, uint64_t node) {
  return mix64(mix64(mix64(seed + kGolden) + step * kGolden) + node * kGolden);
}
// Keep probability q as a 24-bit threshold: decision i keeps iff its top 24 bits are below it.
inline uint32_t keep_threshold(double keep) {
  return static_cast<uint32_t>(std::llround(keep * 16777216.0));
}
constexpr bool keep(uint64_t key, uint64_t i, uint32_t threshold) {
  return (mix64(key + (i + 1) * kGolden) >> 40) < threshold;
}

}  // namespace noise

}  // namespace veridl
