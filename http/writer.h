// http/writer: writes one message (a head, then a Body as it grows) to a libuv stream.
//
// Contract:
// - One message at a time, one uv_write in flight at a time. Bytes are first tried with
//   uv_try_write, so a small message costs no write request at all.
// - The head string and the Body are borrowed: the owner keeps both alive and unchanged (the
//   Body may grow) until on_write_done() or abort(). With `release`, written RAM chunks of the
//   Body are freed as they go, so a slow reader does not pin the whole body in memory; without
//   it the Body stays whole (a request body that may have to be sent again).
// - With `chunked`, the body is framed with chunked transfer coding and terminated after
//   the Body completes.
// - The owner calls kick() whenever the Body grew or completed. on_write_done(status) is called
//   exactly once per start(): 0 when the whole message is written, or a negative libuv error.
//   It may be called from inside start() or kick().
// - The owner's stream must outlive any write in flight; closing the stream cancels the write,
//   whose callback (ECANCELED) still arrives before the stream's close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "http/body.h"

namespace edge::http {

class StreamWriter {
 public:
  class Owner {
   public:
    virtual void on_write_done(int status) = 0;

   protected:
    ~Owner() = default;
  };

  explicit StreamWriter(Owner* owner) : owner_(owner) { request_.data = this; }
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  void start(uv_stream_t* stream, const std::string* head, BodySource* body, bool chunked, bool release = true);
  void kick();
  // Forget the message without calling back (the owner is tearing the stream down).
  void abort() { active_ = false; }

  bool active() const { return active_; }
  bool write_in_flight() const { return in_flight_; }
  uint64_t bytes_written() const { return total_written_; }

 private:
  static void on_written(uv_write_t* req, int status);
  void pump();
  void advance(size_t bytes);
  void finish(int status);

  static constexpr int kMaxSlices = 64;

  Owner* owner_;
  uv_stream_t* stream_ = nullptr;
  const std::string* head_ = nullptr;
  BodySource* body_ = nullptr;
  bool chunked_ = false;
  bool release_ = true;
  bool active_ = false;
  bool in_flight_ = false;
  bool terminator_written_ = false;
  size_t head_offset_ = 0;
  uint64_t body_offset_ = 0;
  uint64_t total_written_ = 0;
  uv_write_t request_;
  // What the write in flight covers, to advance once it completes.
  size_t pending_bytes_ = 0;
  // Chunk-size lines for the slices in flight; they must outlive the write.
  char chunk_lines_[kMaxSlices][20];
  std::string file_scratch_;
};

}  // namespace edge::http
