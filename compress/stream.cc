#include "compress/stream.h"

#include <cerrno>

namespace edge::compress {

bool CompressingSource::start(http::BodySource* inner, Coding coding, int level, bool release_inner,
                              uint32_t* live) {
  reset();
  inner_ = inner;
  release_inner_ = release_inner;
  encoder_ = Encoder::make(coding, level, kStreamWindowLog);
  if (encoder_ && live) {
    live_ = live;
    ++*live_;
  }
  return encoder_ != nullptr;
}

void CompressingSource::free_encoder() const {
  encoder_.reset();
  if (live_) --*live_;
  live_ = nullptr;
}

void CompressingSource::reset() {
  inner_ = nullptr;
  free_encoder();
  out_.clear();
  out_start_ = 0;
  in_offset_ = 0;
  unflushed_ = false;
  finished_ = false;
}

int CompressingSource::pump() const {
  if (finished_) return 0;
  if (!encoder_ || !inner_) return -EINVAL;
  http::IoSlice slices[16];
  while (!finished_ && out_.size() < kPending) {
    const int n = inner_->peek(in_offset_, slices, 16, kPending, scratch_);
    if (n < 0) return n;
    if (n == 0) {
      if (inner_->complete() && in_offset_ == inner_->size()) {
        if (!encoder_->encode({}, Encoder::Mode::kFinish, out_)) return -EIO;
        finished_ = true;
        free_encoder();  // its state is most of what a stream costs; a slow reader keeps only the output
      } else if (unflushed_) {
        // Nothing more yet: what came so far goes out now rather than waiting in the encoder.
        if (!encoder_->encode({}, Encoder::Mode::kFlush, out_)) return -EIO;
        unflushed_ = false;
      }
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!encoder_->encode({slices[i].data, slices[i].len}, Encoder::Mode::kProcess, out_)) return -EIO;
      in_offset_ += slices[i].len;
      unflushed_ = true;
    }
    if (release_inner_) inner_->release_before(in_offset_);
  }
  return 0;
}

int CompressingSource::peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string&) const {
  if (max <= 0 || offset < out_start_) return 0;
  if (offset >= size()) {
    if (const int failed = pump(); failed < 0) return failed;
    if (offset >= size()) return 0;
  }
  const size_t at = static_cast<size_t>(offset - out_start_);
  out[0] = {out_.data() + at, std::min(out_.size() - at, max_bytes)};
  return 1;
}

void CompressingSource::release_before(uint64_t offset) {
  if (offset <= out_start_) return;
  const size_t drop = static_cast<size_t>(std::min<uint64_t>(offset - out_start_, out_.size()));
  out_.erase(0, drop);
  out_start_ += drop;
}

}  // namespace edge::compress
