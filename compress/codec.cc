#include "compress/codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>

namespace edge::compress {

namespace {

constexpr size_t kChunk = 16 * 1024;

// Grows `out` by `want` bytes; returns them, for the library to write into.
std::pair<char*, size_t> grow(std::string& out, size_t want) {
  const size_t start = out.size();
  out.resize(start + want);
  return {out.data() + start, want};
}

// ---- gzip (zlib) ----

class GzipEncoder final : public Encoder {
 public:
  bool init(int level, int window_log) {
    // deflate's window is at most 32 KiB; a smaller one and a smaller hash for a bounded stream.
    const int bits = window_log == 0 ? 15 : std::clamp(window_log, 9, 15);
    ok_ = deflateInit2(&z_, level, Z_DEFLATED, bits + 16, window_log == 0 ? 8 : 7, Z_DEFAULT_STRATEGY) == Z_OK;
    return ok_;
  }
  ~GzipEncoder() override {
    if (ok_) deflateEnd(&z_);
  }
  bool encode(std::string_view in, Mode mode, std::string& out) override {
    if (!ok_) return false;
    const int flush = mode == Mode::kFinish ? Z_FINISH : mode == Mode::kFlush ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    while (true) {
      const size_t start = out.size();
      auto [room, size] = grow(out, kChunk);
      z_.next_out = reinterpret_cast<Bytef*>(room);
      z_.avail_out = static_cast<uInt>(size);
      const int ret = deflate(&z_, flush);
      out.resize(start + (size - z_.avail_out));
      if (ret == Z_STREAM_ERROR) return ok_ = false;
      if (ret == Z_STREAM_END) return true;
      if (z_.avail_out != 0 && z_.avail_in == 0 && mode != Mode::kFinish) return true;
    }
  }

 private:
  z_stream z_{};
  bool ok_ = false;
};

class GzipDecoder final : public Decoder {
 public:
  bool init() {
    ok_ = inflateInit2(&z_, 15 + 16) == Z_OK;
    return ok_;
  }
  ~GzipDecoder() override {
    if (ok_) inflateEnd(&z_);
  }
  Result decode(std::string_view in, std::string& out, uint64_t max_out) override {
    if (!ok_) return Result::kCorrupt;
    if (ended_) return in.empty() ? Result::kEnd : Result::kCorrupt;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    while (true) {
      const size_t start = out.size();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, max_out - std::min(max_out, produced_) + 1));
      auto [room, size] = grow(out, want);
      z_.next_out = reinterpret_cast<Bytef*>(room);
      z_.avail_out = static_cast<uInt>(size);
      const int ret = inflate(&z_, Z_NO_FLUSH);
      const size_t made = size - z_.avail_out;
      out.resize(start + made);
      produced_ += made;
      if (produced_ > max_out) return Result::kTooLarge;
      if (ret == Z_STREAM_END) {
        ended_ = true;
        return z_.avail_in == 0 ? Result::kEnd : Result::kCorrupt;
      }
      if (ret != Z_OK && ret != Z_BUF_ERROR) return Result::kCorrupt;
      if (z_.avail_in == 0 && z_.avail_out != 0) return Result::kMore;
      if (ret == Z_BUF_ERROR && made == 0) return Result::kMore;
    }
  }

 private:
  z_stream z_{};
  uint64_t produced_ = 0;
  bool ok_ = false;
  bool ended_ = false;
};

// ---- br (libbrotli) ----

class BrotliEncoder final : public Encoder {
 public:
  bool init(int level, int window_log) {
    state_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
    if (!state_ || !BrotliEncoderSetParameter(state_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(level))) return false;
    return window_log == 0 ||
           BrotliEncoderSetParameter(state_, BROTLI_PARAM_LGWIN, static_cast<uint32_t>(std::clamp(window_log, 10, 24)));
  }
  ~BrotliEncoder() override {
    if (state_) BrotliEncoderDestroyInstance(state_);
  }
  bool encode(std::string_view in, Mode mode, std::string& out) override {
    const BrotliEncoderOperation op = mode == Mode::kFinish  ? BROTLI_OPERATION_FINISH
                                      : mode == Mode::kFlush ? BROTLI_OPERATION_FLUSH
                                                             : BROTLI_OPERATION_PROCESS;
    const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
    size_t avail_in = in.size();
    while (true) {
      size_t avail_out = 0;
      if (!BrotliEncoderCompressStream(state_, op, &avail_in, &next_in, &avail_out, nullptr, nullptr)) return false;
      size_t size = 0;
      const uint8_t* taken = BrotliEncoderTakeOutput(state_, &size);
      out.append(reinterpret_cast<const char*>(taken), size);
      if (avail_in == 0 && !BrotliEncoderHasMoreOutput(state_) &&
          (op != BROTLI_OPERATION_FINISH || BrotliEncoderIsFinished(state_)))
        return true;
    }
  }

 private:
  BrotliEncoderState* state_ = nullptr;
};

class BrotliDecoder final : public Decoder {
 public:
  bool init() {
    state_ = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    return state_ != nullptr;
  }
  ~BrotliDecoder() override {
    if (state_) BrotliDecoderDestroyInstance(state_);
  }
  Result decode(std::string_view in, std::string& out, uint64_t max_out) override {
    if (ended_) return in.empty() ? Result::kEnd : Result::kCorrupt;
    const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
    size_t avail_in = in.size();
    while (true) {
      size_t avail_out = 0;
      const BrotliDecoderResult result =
          BrotliDecoderDecompressStream(state_, &avail_in, &next_in, &avail_out, nullptr, nullptr);
      if (result == BROTLI_DECODER_RESULT_ERROR) return Result::kCorrupt;
      while (BrotliDecoderHasMoreOutput(state_)) {
        size_t size = static_cast<size_t>(std::min<uint64_t>(kChunk, max_out - std::min(max_out, produced_) + 1));
        const uint8_t* taken = BrotliDecoderTakeOutput(state_, &size);
        out.append(reinterpret_cast<const char*>(taken), size);
        produced_ += size;
        if (produced_ > max_out) return Result::kTooLarge;
      }
      if (result == BROTLI_DECODER_RESULT_SUCCESS) {
        ended_ = true;
        return avail_in == 0 ? Result::kEnd : Result::kCorrupt;
      }
      if (result == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) return Result::kMore;
    }
  }

 private:
  BrotliDecoderState* state_ = nullptr;
  uint64_t produced_ = 0;
  bool ended_ = false;
};

// ---- zstd ----

class ZstdEncoder final : public Encoder {
 public:
  bool init(int level, int window_log) {
    context_ = ZSTD_createCCtx();
    if (!context_ || ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1)))
      return false;
    if (window_log == 0) return true;
    // The hash and chain tables follow the window down, which is where zstd's memory goes.
    const int bits = std::clamp(window_log, 10, 24);
    return !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_windowLog, bits)) &&
           !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_hashLog, bits - 2)) &&
           !ZSTD_isError(ZSTD_CCtx_setParameter(context_, ZSTD_c_chainLog, bits - 2));
  }
  ~ZstdEncoder() override { ZSTD_freeCCtx(context_); }
  bool encode(std::string_view in, Mode mode, std::string& out) override {
    const ZSTD_EndDirective directive = mode == Mode::kFinish  ? ZSTD_e_end
                                        : mode == Mode::kFlush ? ZSTD_e_flush
                                                               : ZSTD_e_continue;
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    while (true) {
      const size_t start = out.size();
      auto [room, size] = grow(out, ZSTD_CStreamOutSize());
      ZSTD_outBuffer output{room, size, 0};
      const size_t remaining = ZSTD_compressStream2(context_, &output, &input, directive);
      out.resize(start + output.pos);
      if (ZSTD_isError(remaining)) return false;
      if (directive == ZSTD_e_continue ? input.pos == input.size : remaining == 0) return true;
    }
  }

 private:
  ZSTD_CCtx* context_ = nullptr;
};

class ZstdDecoder final : public Decoder {
 public:
  bool init() {
    context_ = ZSTD_createDCtx();
    // A frame may ask for a window of up to 2 GiB; 8 MiB is what RFC 8878's web profile allows.
    return context_ && !ZSTD_isError(ZSTD_DCtx_setParameter(context_, ZSTD_d_windowLogMax, 23));
  }
  ~ZstdDecoder() override { ZSTD_freeDCtx(context_); }
  Result decode(std::string_view in, std::string& out, uint64_t max_out) override {
    if (ended_) return in.empty() ? Result::kEnd : Result::kCorrupt;
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    while (true) {
      const size_t start = out.size();
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(ZSTD_DStreamOutSize(), max_out - std::min(max_out, produced_) + 1));
      auto [room, size] = grow(out, want);
      ZSTD_outBuffer output{room, size, 0};
      const size_t hint = ZSTD_decompressStream(context_, &output, &input);
      out.resize(start + output.pos);
      produced_ += output.pos;
      if (ZSTD_isError(hint)) return Result::kCorrupt;
      if (produced_ > max_out) return Result::kTooLarge;
      if (hint == 0) {
        ended_ = true;
        return input.pos == input.size ? Result::kEnd : Result::kCorrupt;
      }
      if (input.pos == input.size && output.pos < output.size) return Result::kMore;
    }
  }

 private:
  ZSTD_DCtx* context_ = nullptr;
  uint64_t produced_ = 0;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<Encoder> Encoder::make(Coding coding, int level, int window_log) {
  const auto index = static_cast<size_t>(coding);
  if (coding == Coding::kIdentity || level < kMinLevel[index] || level > kMaxLevel[index]) return nullptr;
  switch (coding) {
    case Coding::kGzip: {
      auto encoder = std::make_unique<GzipEncoder>();
      return encoder->init(level, window_log) ? std::move(encoder) : nullptr;
    }
    case Coding::kBr: {
      auto encoder = std::make_unique<BrotliEncoder>();
      return encoder->init(level, window_log) ? std::move(encoder) : nullptr;
    }
    case Coding::kZstd: {
      auto encoder = std::make_unique<ZstdEncoder>();
      return encoder->init(level, window_log) ? std::move(encoder) : nullptr;
    }
    case Coding::kIdentity: break;
  }
  return nullptr;
}

std::unique_ptr<Decoder> Decoder::make(Coding coding) {
  switch (coding) {
    case Coding::kGzip: {
      auto decoder = std::make_unique<GzipDecoder>();
      return decoder->init() ? std::move(decoder) : nullptr;
    }
    case Coding::kBr: {
      auto decoder = std::make_unique<BrotliDecoder>();
      return decoder->init() ? std::move(decoder) : nullptr;
    }
    case Coding::kZstd: {
      auto decoder = std::make_unique<ZstdDecoder>();
      return decoder->init() ? std::move(decoder) : nullptr;
    }
    case Coding::kIdentity: break;
  }
  return nullptr;
}

std::optional<std::string> encode_all(Coding coding, int level, std::string_view in) {
  // No match reaches further back than the whole body: a window just big enough compresses the
  // same, and spares the encoder the tables of a large one (megabytes for brotli and zstd,
  // allocated and faulted in afresh for every small object stored).
  int window_log = 10;
  while (window_log < 24 && (uint64_t{1} << window_log) < in.size()) ++window_log;
  std::unique_ptr<Encoder> encoder = Encoder::make(coding, level, window_log);
  std::string out;
  if (!encoder || !encoder->encode(in, Encoder::Mode::kFinish, out)) return std::nullopt;
  return out;
}

std::optional<std::string> decode_all(Coding coding, std::string_view in, uint64_t max_out) {
  std::unique_ptr<Decoder> decoder = Decoder::make(coding);
  std::string out;
  if (!decoder || decoder->decode(in, out, max_out) != Decoder::Result::kEnd) return std::nullopt;
  return out;
}

}  // namespace edge::compress
