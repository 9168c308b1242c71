// compress/stream: a body compressed as it is written, for responses whose encodings are not
// stored (passed through, assembled, or stored before their encodings exist).
//
// A CompressingSource is the BodySource a StreamWriter writes: it reads its inner source only
// when the writer asks for more, compresses a bounded amount at a time, and flushes the encoder
// whenever the inner source has nothing more yet, so a slow backend's bytes still reach the
// client as they come. The writer's back-pressure thus reaches the inner source unchanged.
//
// Memory: the encoder (compress::kStreamWindowLog bounds it: about 200 KB for gzip, 600-800 KB
// for zstd and br at the stream levels) lives until the inner source is compressed to its end,
// and the output waiting for the writer is bounded by kPending.
//
// Ownership: the inner source is borrowed until reset(); the writer must be started with
// `release` (compressed bytes are freed once written), whatever the inner source allows, which
// `release_inner` says. One loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "compress/codec.h"
#include "http/body.h"

namespace edge::compress {

class CompressingSource final : public http::BodySource {
 public:
  // False when the encoder cannot be made (the source is then unusable). `live`, when given,
  // counts the encoders alive: one more from here until this one is freed (its stream compressed
  // to the end, or reset()).
  bool start(http::BodySource* inner, Coding coding, int level, bool release_inner, uint32_t* live = nullptr);
  void reset();

  int peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;
  uint64_t size() const override { return out_start_ + out_.size(); }
  bool complete() const override { return finished_; }
  void release_before(uint64_t offset) override;

  uint64_t bytes_in() const { return in_offset_; }  // of the inner source, compressed so far

 private:
  // Compresses what the inner source has, until `kPending` bytes of output wait.
  int pump() const;
  void free_encoder() const;

  static constexpr size_t kPending = 64 * 1024;

  http::BodySource* inner_ = nullptr;
  bool release_inner_ = false;
  mutable std::unique_ptr<Encoder> encoder_;
  mutable uint32_t* live_ = nullptr;
  mutable std::string out_;        // compressed bytes not yet released
  mutable uint64_t out_start_ = 0;  // the offset of out_[0]
  mutable uint64_t in_offset_ = 0;
  mutable bool unflushed_ = false;  // input went in since the last flush
  mutable bool finished_ = false;
  mutable std::string scratch_;
};

}  // namespace edge::compress
