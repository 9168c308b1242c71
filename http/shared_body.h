// http/shared_body: a body written once by one thread and read, while it grows and after, by any
// number of deliveries on any threads: the body of a cached object, and of a fetch that other
// requests wait on.
//
// Contract:
// - One producer calls append() and finish() (or fail()), on one thread. Readers on any thread
//   see a prefix of the bytes that grows (size() is published with release ordering after the
//   bytes are written) and, once complete() or failed(), never changes again.
// - Bytes never move once appended: they live in blocks that are only ever added, so a reader
//   holding a slice is never invalidated by a later append. A body whose size is known in advance
//   (`expected`) gets one block of that size, so a stored object is contiguous.
// - Blocks of BodyArena::kMinBlock and more come from the process's body arena when it has room
//   (http/body_arena.h), so the transports can send them without copying; smaller ones, and all
//   of them where there is no arena, from the heap.
// - Ownership: shared (std::shared_ptr) by the cached object, the fetch filling it and every
//   delivery writing it; the last one frees it. Nothing is ever copied per delivery.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/body.h"

namespace edge::http {

class SharedBody final : public BodySource {
 public:
  explicit SharedBody(uint64_t expected = 0);
  SharedBody(const SharedBody&) = delete;
  SharedBody& operator=(const SharedBody&) = delete;
  ~SharedBody();

  static std::shared_ptr<SharedBody> from(std::string_view bytes);  // complete at once

  // Producer side.
  void append(std::string_view bytes);
  void finish();  // complete: no more bytes
  void fail();    // the producer gave up: readers must stop after what they have

  // Reader side, any thread.
  uint64_t size() const override { return size_.load(std::memory_order_acquire); }
  bool complete() const override { return state_.load(std::memory_order_acquire) == kComplete; }
  bool failed() const { return state_.load(std::memory_order_acquire) == kFailed; }
  int peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;
  std::string to_string() const;  // tests and small bodies
  uint64_t capacity() const;  // bytes allocated for the body; the producer's, or once complete
  // What the body holds beside this object, for memory accounting: its blocks (heap blocks as
  // the heap counts them, http/heap.h) and their list. Not to be called while it grows.
  uint64_t memory() const;

 private:
  struct Block {
    char* data = nullptr;
    uint64_t start = 0;  // absolute offset of data[0]
    uint64_t capacity : 63 = 0;
    uint64_t in_arena : 1 = 0;
  };
  void add_block(uint64_t capacity);
  size_t block_count() const { return first_.data ? 1 + (more_ ? more_->size() : 0) : 0; }
  const Block& block(size_t i) const { return i == 0 ? first_ : (*more_)[i - 1]; }
  Block& last_block() { return more_ ? more_->back() : first_; }
  void lock() const;
  void unlock() const { locked_.clear(std::memory_order_release); }
  enum State : uint8_t { kGrowing, kComplete, kFailed };

  // The first block is kept here, the others in `more_`: most bodies have one, and a stored
  // object pays for no list. The lock guards `more_` (the pointer and the vector, not the bytes)
  // while the body grows, for as long as a scan of it takes; a complete body is read without
  // it. A whole mutex would cost more than most of the rest of the object.
  Block first_;
  std::unique_ptr<std::vector<Block>> more_;
  std::atomic<uint64_t> size_{0};
  std::atomic<State> state_{kGrowing};
  mutable std::atomic_flag locked_;
};

// The bytes [first, first + length) of another source, seen from offset 0: the body of a range
// response. Borrows the source, which must outlive the window's use.
class BodyWindow final : public BodySource {
 public:
  void reset(const BodySource* inner, uint64_t first, uint64_t length) {
    inner_ = inner;
    first_ = first;
    length_ = length;
  }
  int peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;
  uint64_t size() const override;
  bool complete() const override { return inner_->complete() || inner_->size() >= first_ + length_; }
  bool uses_scratch() const override { return inner_->uses_scratch(); }

 private:
  const BodySource* inner_ = nullptr;
  uint64_t first_ = 0;
  uint64_t length_ = 0;
};

}  // namespace edge::http
