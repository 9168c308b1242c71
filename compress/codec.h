// compress/codec: streaming encoders and decoders for br (libbrotli), zstd (libzstd) and gzip
// (zlib), one stream each.
//
// An Encoder or Decoder is used by one thread at a time and owns its library state. Output is
// appended to the caller's string. A Decoder stops at `max_out` bytes of output in all, so a small
// hostile input cannot make it produce gigabytes (a decompression bomb).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "compress/coding.h"

namespace edge::compress {

class Encoder {
 public:
  enum class Mode {
    kProcess,  // more input follows; output may be held back
    kFlush,    // everything given so far can be decoded from what is output
    kFinish,   // the end: the stream's trailer is output; the encoder takes nothing more
  };
  // Null for identity, a level outside kMinLevel..kMaxLevel, or when the library refuses.
  // `window_log` (10..24; 0: the library's choice for the level) bounds how far back a match may
  // reach, and with it the encoder's memory: what a stream kept open per client costs.
  static std::unique_ptr<Encoder> make(Coding coding, int level, int window_log = 0);
  virtual ~Encoder() = default;
  // False when the library fails (the stream is then unusable).
  virtual bool encode(std::string_view in, Mode mode, std::string& out) = 0;
};

class Decoder {
 public:
  enum class Result { kMore, kEnd, kCorrupt, kTooLarge };
  // kTooLarge is told once the output passes max_out; `out` may hold up to this much beyond it.
  static constexpr size_t kSlack = 1;
  static std::unique_ptr<Decoder> make(Coding coding);  // null for identity
  virtual ~Decoder() = default;
  // Decodes `in`, appending to `out`. kMore: give more input; kEnd: the stream ended (bytes past
  // its end are kCorrupt); kTooLarge: the output would pass `max_out` bytes since the stream began.
  virtual Result decode(std::string_view in, std::string& out, uint64_t max_out) = 0;
};

// The window of encoders that stay open while a response streams: 64 KiB reaches far enough for
// pages, and holds zstd and br to a few hundred KB per stream instead of megabytes.
inline constexpr int kStreamWindowLog = 16;

// A whole body at once. encode_all: nullopt when the library fails.
std::optional<std::string> encode_all(Coding coding, int level, std::string_view in);
// nullopt unless `in` is exactly one complete stream decoding to at most max_out bytes.
std::optional<std::string> decode_all(Coding coding, std::string_view in, uint64_t max_out);

}  // namespace edge::compress
