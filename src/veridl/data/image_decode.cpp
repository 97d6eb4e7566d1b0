// PNG (libpng) and JPEG (libjpeg-turbo, jpeglib.h API) decoding into 8-bit grey or RGB. See data/image.hpp.
//
// Both libraries report errors by longjmp (libpng: png_error -> our error function -> png_longjmp; libjpeg: our
// error_exit and emit_message(-1) -> longjmp). A longjmp skips destructors, so the code is split in three layers:
//   decode_png / decode_jpeg   C++ with RAII: owns the library handles and the DecodeJob (output buffer, message);
//   png_run / jpeg_run         calls setjmp, then the body; holds no local with a destructor;
//   png_body / jpeg_body       the library calls; no local with a destructor either (only ints and raw pointers).
// The callbacks write into the DecodeJob (which lives in the RAII layer, above the setjmp frame), never throw, and
// the RAII layer turns the outcome into a veridl::Error after the library frames are gone.
#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>

#include "veridl/data/image.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::data {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A};
constexpr uint8_t kJpegSignature[3] = {0xFF, 0xD8, 0xFF};
constexpr int kMaxJpegScans = 500;                    // progressive JPEGs: more scans is a decoding-time bomb
constexpr uint64_t kMaxImageFileBytes = uint64_t{1} << 30;  // 1 GiB: no real training image is this large

enum class Fail { None, Truncated, Corrupt, Size, Unsupported, NoMemory };

// What the library callbacks report back. Lives in the caller's frame, above every setjmp.
struct DecodeJob {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  uint32_t max_side = kMaxImageSide;
  Fail fail = Fail::None;
  char msg[JMSG_LENGTH_MAX + 64] = {};
  DecodedImage out;
};

// Copies a library message, keeping it on one printable line.
void set_message(DecodeJob* job, Fail kind, const char* text) {
  job->fail = kind;
  size_t n = 0;
  for (; text[n] != '\0' && n + 1 < sizeof(job->msg); ++n) {
    unsigned char c = static_cast<unsigned char>(text[n]);
    job->msg[n] = (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  job->msg[n] = '\0';
}

// Header dims check, before any pixel buffer exists. False (and the message set) if they are unusable.
bool dims_ok(DecodeJob* job, uint64_t w, uint64_t h) {
  if (w == 0 || h == 0) {
    std::snprintf(job->msg, sizeof(job->msg), "image is %llux%llu", static_cast<unsigned long long>(w),
                  static_cast<unsigned long long>(h));
    job->fail = Fail::Size;
    return false;
  }
  if (w > job->max_side || h > job->max_side) {
    std::snprintf(job->msg, sizeof(job->msg), "%llux%llu image exceeds the %u pixel side limit",
                  static_cast<unsigned long long>(w), static_cast<unsigned long long>(h), job->max_side);
    job->fail = Fail::Size;
    return false;
  }
  return true;
}

// The output buffer, without initialising it (a huge image that turns out truncated touches only what it wrote).
bool allocate(DecodeJob* job, uint32_t w, uint32_t h, uint32_t channels) {
  job->out.width = w;
  job->out.height = h;
  job->out.channels = channels;
  job->out.pixels.reset(new (std::nothrow) uint8_t[job->out.size()]);
  if (!job->out.pixels) {
    job->fail = Fail::NoMemory;
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------------------ PNG

void png_on_error(png_structp png, png_const_charp text) {
  auto* job = static_cast<DecodeJob*>(png_get_error_ptr(png));
  if (job->fail == Fail::None) {
    char line[sizeof(job->msg)];
    std::snprintf(line, sizeof(line), "corrupt PNG data: %s", text ? text : "unknown libpng error");
    set_message(job, Fail::Corrupt, line);
  }
  png_longjmp(png, 1);
}

// Warnings concern ancillary chunks (a bad CRC in a text chunk, an odd colour profile): the pixels are unaffected.
void png_on_warning(png_structp, png_const_charp) {}

void png_on_read(png_structp png, png_bytep dst, size_t n) {
  auto* job = static_cast<DecodeJob*>(png_get_io_ptr(png));
  if (job->size - job->pos < n) {
    std::snprintf(job->msg, sizeof(job->msg), "truncated PNG (the file ends after %zu bytes)", job->size);
    job->fail = Fail::Truncated;
    png_error(png, "truncated");
  }
  std::memcpy(dst, job->data + job->pos, n);
  job->pos += n;
}

// No local with a destructor: png_error longjmps through this frame.
bool png_body(DecodeJob* job, png_structp png, png_infop info) {
  png_set_user_limits(png, 0x7fffffffU, 0x7fffffffU);  // our own side limit below, with our own message
  png_read_info(png, info);
  const uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (!dims_ok(job, w, h)) return false;
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  // Alpha is dropped; a palette with a tRNS chunk expands to RGBA, so strip that too.
  if ((color & PNG_COLOR_MASK_ALPHA) || (color == PNG_COLOR_TYPE_PALETTE && png_get_valid(png, info, PNG_INFO_tRNS)))
    png_set_strip_alpha(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const uint32_t channels = png_get_channels(png, info);
  if (png_get_bit_depth(png, info) != 8 || (channels != 1 && channels != 3) ||
      png_get_rowbytes(png, info) != size_t{w} * channels) {
    std::snprintf(job->msg, sizeof(job->msg), "unsupported PNG layout (colour type %d, %d bits)", color, depth);
    job->fail = Fail::Unsupported;
    return false;
  }
  if (!allocate(job, w, h, channels)) return false;
  for (int pass = 0; pass < passes; ++pass)
    for (uint32_t y = 0; y < h; ++y) png_read_row(png, job->out.pixels.get() + size_t{y} * w * channels, nullptr);
  png_read_end(png, nullptr);  // reads up to IEND: a file cut after the pixel data is still truncated
  return true;
}

// The setjmp frame: no local with a destructor.
bool png_run(DecodeJob* job, png_structp png, png_infop info) {
  if (setjmp(png_jmpbuf(png))) return false;
  return png_body(job, png, info);
}

struct PngHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngHandles() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void decode_png(DecodeJob& job) {
  // The IHDR dims first, from the bytes, so that a 0x0 or huge image gets its own message (libpng's IHDR
  // check would otherwise report it as a generic error).
  if (job.size >= 24 && std::memcmp(job.data + 12, "IHDR", 4) == 0 && !dims_ok(&job, be32(job.data + 16), be32(job.data + 20)))
    return;
  PngHandles h;
  h.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
  if (!h.png) throw std::bad_alloc();
  h.info = png_create_info_struct(h.png);
  if (!h.info) throw std::bad_alloc();
  png_set_read_fn(h.png, &job, png_on_read);
  if (!png_run(&job, h.png, h.info) && job.fail == Fail::None) set_message(&job, Fail::Corrupt, "corrupt PNG data: decoding failed");
}

// ----------------------------------------------------------------------------------------------------------- JPEG

struct JpegErrorMgr {
  jpeg_error_mgr pub;  // first: libjpeg hands us &pub as cinfo->err
  jmp_buf jump;
};

// Records the current libjpeg message and longjmps back to jpeg_run.
[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* job = static_cast<DecodeJob*>(cinfo->client_data);
  if (job->fail == Fail::None) {
    char text[JMSG_LENGTH_MAX] = {};
    (*cinfo->err->format_message)(cinfo, text);
    const int code = cinfo->err->msg_code;
    const char* body = text;
    static constexpr char kCorrupt[] = "Corrupt JPEG data: ";
    if (std::strncmp(body, kCorrupt, sizeof(kCorrupt) - 1) == 0) body += sizeof(kCorrupt) - 1;
    char line[sizeof(job->msg)] = {};
    Fail kind = Fail::Corrupt;
    if (code == JWRN_JPEG_EOF) {
      std::snprintf(line, sizeof(line), "truncated JPEG (the file ends after %zu bytes, before the end-of-image marker)",
                    job->size);
      kind = Fail::Truncated;
    } else if (code == JERR_EMPTY_IMAGE) {
      auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
      std::snprintf(line, sizeof(line), "image is %ux%u", d->image_width, d->image_height);  // from the SOF just read
      kind = Fail::Size;
    } else if (code == JERR_BAD_PRECISION || code == JERR_CONVERSION_NOTIMPL || code == JERR_NOT_COMPILED) {
      std::snprintf(line, sizeof(line), "unsupported JPEG: %s", body);
      kind = Fail::Unsupported;
    } else {
      std::snprintf(line, sizeof(line), "corrupt JPEG data: %s", body);
    }
    set_message(job, kind, line);
  }
  longjmp(reinterpret_cast<JpegErrorMgr*>(cinfo->err)->jump, 1);
}

void jpeg_on_error_exit(j_common_ptr cinfo) { jpeg_fail(cinfo); }

// Level -1 is a warning about corrupt but decodable data (or a missing end of file): an error here, so that we never
// train on garbage. Levels >= 0 are trace messages.
void jpeg_on_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);
}

void jpeg_on_output_message(j_common_ptr) {}  // never print

void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* job = static_cast<DecodeJob*>(cinfo->client_data);
    char line[96];
    std::snprintf(line, sizeof(line), "corrupt JPEG data: more than %d progressive scans", kMaxJpegScans);
    set_message(job, Fail::Corrupt, line);
    longjmp(reinterpret_cast<JpegErrorMgr*>(cinfo->err)->jump, 1);
  }
}

// No local with a destructor: libjpeg longjmps through this frame.
bool jpeg_body(DecodeJob* job, j_decompress_ptr cinfo) {
  jpeg_mem_src(cinfo, job->data, static_cast<unsigned long>(job->size));
  jpeg_read_header(cinfo, TRUE);
  if (!dims_ok(job, cinfo->image_width, cinfo->image_height)) return false;
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: cinfo->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK:
      set_message(job, Fail::Unsupported, "CMYK JPEG is not supported (convert it to RGB, e.g. `convert x.jpg -colorspace sRGB x.jpg`)");
      return false;
    default:
      std::snprintf(job->msg, sizeof(job->msg), "unsupported JPEG colour space (%d components, not grey, YCbCr or RGB)",
                    cinfo->num_components);
      job->fail = Fail::Unsupported;
      return false;
  }
  cinfo->dct_method = JDCT_ISLOW;  // the accurate integer IDCT: the same bits on every machine
  jpeg_start_decompress(cinfo);
  const uint32_t w = cinfo->output_width, h = cinfo->output_height, channels = cinfo->output_components;
  if (w != cinfo->image_width || h != cinfo->image_height || (channels != 1 && channels != 3)) {
    set_message(job, Fail::Unsupported, "unsupported JPEG layout");
    return false;
  }
  if (!allocate(job, w, h, channels)) return false;
  while (cinfo->output_scanline < h) {
    JSAMPROW row = job->out.pixels.get() + size_t{cinfo->output_scanline} * w * channels;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {  // cannot happen with a memory source; never loop forever
      set_message(job, Fail::Corrupt, "corrupt JPEG data: decoder returned no scanline");
      return false;
    }
  }
  jpeg_finish_decompress(cinfo);  // reads to the end-of-image marker: warnings on the way are errors too
  return true;
}

struct JpegDecoder {
  jpeg_decompress_struct cinfo{};  // zeroed: jpeg_destroy_decompress is a no-op if creation failed
  JpegErrorMgr err{};
  jpeg_progress_mgr progress{};
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
};

// The setjmp frame: no local with a destructor.
bool jpeg_run(DecodeJob* job, JpegDecoder* d) {
  d->cinfo.err = jpeg_std_error(&d->err.pub);
  d->err.pub.error_exit = jpeg_on_error_exit;
  d->err.pub.emit_message = jpeg_on_emit_message;
  d->err.pub.output_message = jpeg_on_output_message;
  d->cinfo.client_data = job;
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);  // keeps err and client_data
  d->progress.progress_monitor = jpeg_on_progress;
  d->cinfo.progress = &d->progress;
  return jpeg_body(job, &d->cinfo);
}

void decode_jpeg(DecodeJob& job) {
  JpegDecoder d;
  if (!jpeg_run(&job, &d) && job.fail == Fail::None) set_message(&job, Fail::Corrupt, "corrupt JPEG data: decoding failed");
}

// ---------------------------------------------------------------------------------------------------- sniffing

// " (a GIF file)" etc. for formats people mistake for PNG/JPEG; "" otherwise.
std::string known_other_format(std::span<const uint8_t> b) {
  auto is = [&](size_t at, const char* s) {
    size_t n = std::strlen(s);
    return b.size() >= at + n && std::memcmp(b.data() + at, s, n) == 0;
  };
  if (is(0, "GIF8")) return ", a GIF file";
  if (is(0, "BM")) return ", a BMP file";
  if (is(0, "RIFF") && is(8, "WEBP")) return ", a WebP file";
  if (b.size() >= 4 && ((b[0] == 'I' && b[1] == 'I' && b[2] == 42 && b[3] == 0) ||
                         (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && b[3] == 42)))
    return ", a TIFF file";
  if (b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b) return ", gzip data";
  if (is(4, "ftypavif") || is(4, "ftypheic")) return ", an AVIF/HEIF file";
  return "";
}

std::string shown_path(const std::string& p) {
  std::string s = p;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

}  // namespace

DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& path, uint32_t max_side) {
  auto error = [&](const std::string& why) { return Error(fmt::format("image file '{}': {}", shown_path(path), why)); };
  if (bytes.empty()) throw error("not a PNG or JPEG file (the file is empty)");
  DecodeJob job;
  job.data = bytes.data();
  job.size = bytes.size();
  job.max_side = max_side;
  const size_t head = std::min<size_t>(bytes.size(), 8);
  if (std::memcmp(bytes.data(), kPngSignature, std::min<size_t>(head, 8)) == 0) {
    if (bytes.size() < 8) throw error(fmt::format("truncated PNG (the file ends after {} bytes)", bytes.size()));
    decode_png(job);
  } else if (std::memcmp(bytes.data(), kJpegSignature, std::min<size_t>(head, 3)) == 0) {
    if (bytes.size() < 3) throw error(fmt::format("truncated JPEG (the file ends after {} bytes)", bytes.size()));
    decode_jpeg(job);
  } else {
    std::string start;
    for (size_t i = 0; i < std::min<size_t>(bytes.size(), 4); ++i) start += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
    throw error(fmt::format("not a PNG or JPEG file (starts with {}{})", start, known_other_format(bytes)));
  }
  if (job.fail == Fail::NoMemory) throw std::bad_alloc();
  if (job.fail != Fail::None) throw error(job.msg);
  return std::move(job.out);
}

DecodedImage decode_image_file(const std::string& path, uint32_t max_side) {
  std::vector<uint8_t> bytes = read_whole_file(path, "image file", kMaxImageFileBytes);
  return decode_image(bytes, path, max_side);
}

}  // namespace veridl::data
