// compress/codec and compress/stream: every coding round trips through the real libraries, in one
// piece and cut at every byte, and hostile compressed input is refused within bounds.
#include "compress/codec.h"

#include <doctest/doctest.h>

#include <string>

#include "compress/stream.h"
#include "http/shared_body.h"

using namespace edge;
using compress::Coding;

namespace {

const Coding kCodings[] = {Coding::kBr, Coding::kZstd, Coding::kGzip};

std::string page(size_t size) {
  std::string text;
  for (size_t i = 0; text.size() < size; ++i)
    text += "<li class=\"book\"><a href=\"/book/" + std::to_string(i * 7919 % 1000) + "\">A title</a></li>\n";
  text.resize(size);
  return text;
}

// Decodes `encoded` fed `step` bytes at a time.
std::optional<std::string> decode_in_steps(Coding coding, const std::string& encoded, size_t step) {
  auto decoder = compress::Decoder::make(coding);
  std::string out;
  compress::Decoder::Result result = compress::Decoder::Result::kMore;
  for (size_t at = 0; at < encoded.size(); at += step) {
    result = decoder->decode(std::string_view(encoded).substr(at, step), out, 1 << 20);
    if (result == compress::Decoder::Result::kCorrupt || result == compress::Decoder::Result::kTooLarge)
      return std::nullopt;
  }
  if (result != compress::Decoder::Result::kEnd) return std::nullopt;
  return out;
}

}  // namespace

TEST_CASE("codec: whole bodies round trip in every coding and level range, and shrink") {
  const std::string text = page(20000);
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    const auto index = static_cast<size_t>(coding);
    for (int level : {compress::kMinLevel[index], compress::kMaxLevel[index]}) {
      std::optional<std::string> encoded = compress::encode_all(coding, level, text);
      REQUIRE(encoded);
      CHECK(encoded->size() < text.size() / 4);
      CHECK(compress::decode_all(coding, *encoded, text.size()) == text);
    }
    CHECK(compress::Encoder::make(coding, compress::kMaxLevel[index] + 1) == nullptr);
    CHECK(compress::Encoder::make(coding, compress::kMinLevel[index] - 1) == nullptr);
    std::optional<std::string> empty = compress::encode_all(coding, compress::kMinLevel[index], "");
    REQUIRE(empty);
    CHECK(compress::decode_all(coding, *empty, 0) == std::string());
  }
  CHECK(compress::Encoder::make(Coding::kIdentity, 0) == nullptr);
  CHECK(compress::Decoder::make(Coding::kIdentity) == nullptr);
}

// Under ThreadSanitizer every encoder's allocations are slow, and the size walk below took three
// minutes there while it can find nothing a single thread does: it takes every 29th size there.
#if defined(__SANITIZE_THREAD__)
constexpr size_t kStepStride = 29;
#else
constexpr size_t kStepStride = 1;
#endif

TEST_CASE("codec: a small page encoded and decoded in pieces of every size, flushed anywhere") {
  const std::string text = page(700);
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    for (size_t step = 1; step <= text.size(); step += kStepStride) {
      CAPTURE(step);
      auto encoder = compress::Encoder::make(coding, 5);
      std::string encoded;
      for (size_t at = 0; at < text.size(); at += step) {
        const auto mode = at / step % 3 == 1 ? compress::Encoder::Mode::kFlush : compress::Encoder::Mode::kProcess;
        REQUIRE(encoder->encode(std::string_view(text).substr(at, step), mode, encoded));
      }
      REQUIRE(encoder->encode({}, compress::Encoder::Mode::kFinish, encoded));
      CHECK(decode_in_steps(coding, encoded, step) == text);
    }
  }
}

TEST_CASE("codec: a flush makes everything so far decodable before the stream ends") {
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    auto encoder = compress::Encoder::make(coding, 5);
    std::string encoded;
    REQUIRE(encoder->encode("<html><body>first part", compress::Encoder::Mode::kFlush, encoded));
    auto decoder = compress::Decoder::make(coding);
    std::string out;
    CHECK(decoder->decode(encoded, out, 1000) == compress::Decoder::Result::kMore);
    CHECK(out == "<html><body>first part");
  }
}

TEST_CASE("codec: corrupt, truncated, trailing and bomb inputs are refused") {
  const std::string text(1 << 20, 'a');  // a megabyte of one byte: a few hundred bytes encoded
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    const std::string encoded = *compress::encode_all(coding, 5, text);
    CHECK(encoded.size() < 5000);
    CHECK(compress::decode_all(coding, encoded, text.size()) == text);
    // The bomb: its output bound is what stops it, not the memory.
    CHECK(compress::decode_all(coding, encoded, 64 * 1024) == std::nullopt);
    {
      auto decoder = compress::Decoder::make(coding);
      std::string out;
      CHECK(decoder->decode(encoded, out, 64 * 1024) == compress::Decoder::Result::kTooLarge);
      CHECK(out.size() <= 64 * 1024 + compress::Decoder::kSlack);
    }
    CHECK(compress::decode_all(coding, encoded.substr(0, encoded.size() / 2), text.size()) == std::nullopt);
    CHECK(compress::decode_all(coding, encoded + "x", text.size()) == std::nullopt);
    std::string flipped = encoded;
    for (size_t i = 0; i < flipped.size(); i += 7) flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
    CHECK(compress::decode_all(coding, flipped, text.size()) == std::nullopt);
    CHECK(compress::decode_all(coding, "not compressed at all", text.size()) == std::nullopt);
  }
}

TEST_CASE("CompressingSource: a growing body is compressed as the writer reads, flushed when it waits") {
  const std::string text = page(300000);
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    http::SharedBody inner;
    compress::CompressingSource source;
    REQUIRE(source.start(&inner, coding, 3, false));
    std::string sent;
    std::string scratch;
    auto drain = [&] {
      http::IoSlice slices[4];
      while (true) {
        const int n = source.peek(sent.size(), slices, 4, 4096, scratch);
        REQUIRE(n >= 0);
        if (n == 0) break;
        for (int i = 0; i < n; ++i) sent.append(slices[i].data, slices[i].len);
        source.release_before(sent.size());
      }
    };
    size_t given = 0;
    for (size_t piece : {1ul, 10ul, 1000ul, 100000ul, 198989ul}) {
      inner.append(std::string_view(text).substr(given, piece));
      given += piece;
      drain();
      // Everything given so far can be read by the client already.
      auto decoder = compress::Decoder::make(coding);
      std::string so_far;
      CHECK(decoder->decode(sent, so_far, text.size()) == compress::Decoder::Result::kMore);
      CHECK(so_far == text.substr(0, given));
      CHECK_FALSE(source.complete());
    }
    REQUIRE(given == text.size());
    inner.finish();
    drain();
    CHECK(source.complete());
    CHECK(source.size() == sent.size());
    CHECK(source.bytes_in() == text.size());
    CHECK(compress::decode_all(coding, sent, text.size()) == text);
  }
}

TEST_CASE("codec: a bounded window still round trips, at the stream window and the smallest") {
  const std::string text = page(300000);
  for (Coding coding : kCodings) {
    CAPTURE(compress::coding_name(coding));
    for (int window_log : {compress::kStreamWindowLog, 10, 30}) {
      CAPTURE(window_log);
      auto encoder = compress::Encoder::make(coding, 3, window_log);
      REQUIRE(encoder);
      std::string encoded;
      REQUIRE(encoder->encode(text, compress::Encoder::Mode::kFinish, encoded));
      CHECK(encoded.size() < text.size() / 4);
      CHECK(compress::decode_all(coding, encoded, text.size()) == text);
    }
  }
}
