// http/body: a message body being buffered, in RAM up to a limit and then in a temporary file.
//
// A Body is written by one producer (the parser feeding it a request or response body) and read
// by one consumer (a StreamWriter), on one loop thread. The consumer reads by offset and may
// release what it has written, so a slow client never makes the body grow in RAM past the limit:
// bytes past `memory_limit` (counting only what is not yet released) go to an unlinked file in
// `temp_dir`, which disappears with the Body.
//
// The file is bounded too: by `file_limit` for this body and by the process's TempSpace for all
// bodies together. A file whose every byte was released is emptied and its space given back.
// What happens at the bounds depends on the reader:
//   - streamed (the default): append() still takes whatever it is given (in RAM, past
//     memory_limit), but full() tells the producer to stop reading its source, and the
//     BodyProducer is told (on_body_drained) when releases have made room again. So a reader
//     that does not read holds the producer back instead of growing the body.
//   - kept whole (`whole`: a request body, a page compiled only once complete): every byte is
//     needed before any is used, so nobody would ever release; full() is never true and an append
//     that would pass a bound fails (-EFBIG past file_limit, -ENOSPC past the TempSpace).
//
// Ownership: the Body owns its RAM chunks and its file descriptor. Pointers handed out by peek()
// borrow; they stay valid until release_before() passes them or the Body is cleared/destroyed.
// The TempSpace and the BodyProducer are borrowed (the producer until it unsets itself).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edge::http {

struct IoSlice {
  const char* data;
  size_t len;
};

// What a StreamWriter writes a message body from: a Body being buffered for one exchange, or a
// SharedBody held by the cache. Offsets are absolute from the body's first byte.
class BodySource {
 public:
  // Up to `max` slices covering bytes from `offset` on, at most `max_bytes` in all; 0 when
  // nothing is available past offset yet, or a negative errno. `scratch` may be used for bytes
  // that are not in memory.
  virtual int peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const = 0;
  virtual uint64_t size() const = 0;
  virtual bool complete() const = 0;
  // The writer is done with every byte before `offset` (a source may free them).
  virtual void release_before(uint64_t) {}
  // Whether peek() may return slices of `scratch` (bytes read from a file), which the next
  // peek() overwrites: a reader combining several sources in one frame must stop after such a one.
  virtual bool uses_scratch() const { return false; }

 protected:
  ~BodySource() = default;
};

// The bytes all Bodies of a process hold in temporary files, against one limit. Any thread.
class TempSpace {
 public:
  explicit TempSpace(uint64_t limit) : limit_(limit) {}
  // Takes up to `bytes` of the space, as much as the limit leaves; returns how much it took.
  uint64_t reserve(uint64_t bytes);
  void give_back(uint64_t bytes) { in_use_.fetch_sub(bytes, std::memory_order_relaxed); }
  bool exhausted() const { return in_use_.load(std::memory_order_relaxed) >= limit_; }
  uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> in_use_{0};
  std::atomic<uint64_t> peak_{0};
};

// Whoever fills a streamed Body and stops when it is full().
class BodyProducer {
 public:
  // The reader released bytes and the body is no longer full(): the producer may go on.
  virtual void on_body_drained() = 0;

 protected:
  ~BodyProducer() = default;
};

class Body final : public BodySource {
 public:
  struct Options {
    uint64_t memory_limit = 1024 * 1024;
    const std::string* temp_dir = nullptr;  // borrowed for the Body's life; null: never spill
    uint64_t file_limit = std::numeric_limits<uint64_t>::max();  // bytes in this body's file
    TempSpace* space = nullptr;  // borrowed for the Body's life; null: no shared bound
    bool whole = false;          // kept whole: see above
  };

  Body() = default;
  explicit Body(Options options) : options_(options) {}
  ~Body();
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  void set_options(Options options) { options_ = options; }
  // The reader needs every byte before it can use any (see above); from the next append on.
  void keep_whole() { options_.whole = true; }
  void set_producer(BodyProducer* producer) { producer_ = producer; }

  // A streamed body over memory_limit in RAM whose file may take no more: the producer should
  // stop until on_body_drained().
  bool full() const;
  // Which bound made it full: this body's file_limit (else the process's TempSpace).
  bool at_file_limit() const { return file_size_ >= options_.file_limit; }

  // Appends bytes. Returns 0, or a negative errno when the temporary file cannot be written
  // (the body is then unusable and the message must fail).
  int append(std::string_view bytes);
  void set_complete() { complete_ = true; }

  uint64_t size() const override { return size_; }
  bool complete() const override { return complete_; }
  bool spilled() const { return fd_ >= 0; }
  bool uses_scratch() const override { return spilled(); }
  uint64_t memory_bytes() const { return memory_bytes_; }

  // Fills `out` with up to `max` slices covering bytes from `offset` on, at most `max_bytes` in
  // all. RAM bytes are referenced in place; file bytes are read into `scratch` (at most one read
  // of scratch.capacity()-sized data per call). Returns the number of slices, 0 when nothing is
  // available past offset, or a negative errno on a read error.
  int peek(uint64_t offset, IoSlice* out, int max, size_t max_bytes, std::string& scratch) const override;

  // Frees the RAM chunks that lie wholly before `offset`. Offsets stay absolute.
  void release_before(uint64_t offset) override;

  // Back to empty, keeping options; reusable for the next message.
  void clear();

  // The whole body as one string (tests and small bodies); reads the file part too.
  std::string to_string() const;

 private:
  struct Segment {
    uint64_t start;  // absolute offset of the first byte
    uint64_t len;
    std::unique_ptr<char[]> ram;  // null for a file segment
    size_t ram_capacity = 0;
    uint64_t file_offset = 0;
  };

  int append_to_file(std::string_view bytes);
  bool may_spill() const;
  void empty_file();

  Options options_;
  BodyProducer* producer_ = nullptr;
  std::vector<Segment> segments_;
  size_t first_live_ = 0;  // segments before this index were released
  uint64_t size_ = 0;
  uint64_t memory_bytes_ = 0;
  uint64_t file_size_ = 0;       // bytes in the file (taken from the TempSpace)
  uint64_t live_file_bytes_ = 0;  // of which not yet released
  int fd_ = -1;
  bool complete_ = false;
};

}  // namespace edge::http
