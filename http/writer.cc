#include "http/writer.h"

#include <charconv>

namespace edge::http {

namespace {
// Bounds one write so a slow reader's socket is not handed megabytes at once: the written part
// of the body is released between writes.
constexpr size_t kMaxWriteBytes = 256 * 1024;
// A body that is not released as it goes (a cached one, shared by every delivery) costs nothing
// more to hand over whole: fewer, larger writes mean fewer wake-ups per response.
constexpr size_t kMaxSharedWriteBytes = 16 * 1024 * 1024;
constexpr char kCrLf[] = "\r\n";
constexpr char kLastChunk[] = "0\r\n\r\n";
}  // namespace

void StreamWriter::start(Output* output, const std::string* head, BodySource* body, bool chunked, bool release) {
  output_ = output;
  release_ = release;
  head_ = head;
  body_ = body;
  chunked_ = chunked;
  active_ = true;
  terminator_written_ = false;
  head_offset_ = 0;
  body_offset_ = 0;
  total_written_ = 0;
  pump();
}

void StreamWriter::kick() {
  if (active_ && !in_flight_) pump();
}

void StreamWriter::finish(int status) {
  active_ = false;
  owner_->on_write_done(status);
}

void StreamWriter::pump() {
  struct Frame {
    uv_buf_t bufs[2 + 3 * kMaxSlices];
    unsigned count = 0;
    size_t bytes = 0;
    void add(const char* data, size_t len) {
      bufs[count++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
      bytes += len;
    }
  };

  while (active_ && !in_flight_) {
    Frame frame;
    const bool has_head = head_ && head_offset_ < head_->size();
    if (has_head) frame.add(head_->data(), head_->size());

    size_t body_bytes = 0;
    if (body_) {
      IoSlice slices[kMaxSlices];
      int n = body_->peek(body_offset_, slices, kMaxSlices, release_ ? kMaxWriteBytes : kMaxSharedWriteBytes,
                          file_scratch_);
      if (n < 0) return finish(n);
      if (chunked_ && n > 0 && !chunk_lines_) chunk_lines_ = std::make_unique<char[]>(kMaxSlices * kChunkLine);
      for (int i = 0; i < n; ++i) {
        if (chunked_) {
          char* line = chunk_lines_.get() + static_cast<size_t>(i) * kChunkLine;
          char* end = std::to_chars(line, line + kChunkLine - 2, slices[i].len, 16).ptr;
          *end++ = '\r';
          *end++ = '\n';
          frame.add(line, static_cast<size_t>(end - line));
        }
        frame.add(slices[i].data, slices[i].len);
        if (chunked_) frame.add(kCrLf, 2);
        body_bytes += slices[i].len;
      }
    }
    const bool body_done = !body_ || (body_->complete() && body_offset_ + body_bytes == body_->size());
    const bool add_terminator = chunked_ && body_done && !terminator_written_;
    if (add_terminator) frame.add(kLastChunk, sizeof kLastChunk - 1);

    if (frame.count == 0) {
      if (body_done) finish(0);
      return;  // wait for kick()
    }

    int written = output_->write(frame.bufs, frame.count, this);
    if (written < 0) return finish(written);
    pending_bytes_ = frame.bytes;
    // What did not go out at once is queued; the frame's bytes stay valid until on_written.
    if (static_cast<size_t>(written) < frame.bytes) in_flight_ = true;
    if (has_head) head_offset_ = head_->size();
    body_offset_ += body_bytes;
    if (add_terminator) terminator_written_ = true;
    if (!in_flight_) advance(frame.bytes);
  }
}

void StreamWriter::advance(size_t bytes) {
  total_written_ += bytes;
  if (body_ && release_) body_->release_before(body_offset_);
}

void StreamWriter::on_written(int status) {
  in_flight_ = false;
  if (!active_) return;
  if (status < 0) return finish(status);
  advance(pending_bytes_);
  pump();
}

}  // namespace edge::http
