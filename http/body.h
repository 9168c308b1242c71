// http/body: a message body being buffered, in RAM up to a limit and then in a temporary file.
//
// A Body is written by one producer (the parser feeding it a request or response body) and read
// by one consumer (a StreamWriter), on one loop thread. The consumer reads by offset and may
// release what it has written, so a slow client never makes the body grow in RAM past the limit:
// bytes past `memory_limit` (counting only what is not yet released) go to an unlinked file in
// `temp_dir`, which disappears with the Body.
//
// Ownership: the Body owns its RAM chunks and its file descriptor. Pointers handed out by peek()
// borrow; they stay valid until release_before() passes them or the Body is cleared/destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
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

class Body final : public BodySource {
 public:
  struct Options {
    uint64_t memory_limit = 1024 * 1024;
    const std::string* temp_dir = nullptr;  // borrowed for the Body's life; null: never spill
  };

  Body() = default;
  explicit Body(Options options) : options_(options) {}
  ~Body();
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  void set_options(Options options) { options_ = options; }

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

  Options options_;
  std::vector<Segment> segments_;
  size_t first_live_ = 0;  // segments before this index were released
  uint64_t size_ = 0;
  uint64_t memory_bytes_ = 0;
  uint64_t file_size_ = 0;
  int fd_ = -1;
  bool complete_ = false;
};

}  // namespace edge::http
