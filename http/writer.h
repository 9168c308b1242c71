// http/writer: writes one message (a head, then a Body as it grows) to a Transport's Output.
//
// Contract:
// - One message at a time, one write in flight at a time. Output::write tries the bytes at once,
//   so a small message costs no queued write at all; one write call per frame, no copy.
// - The head string and the Body are borrowed: the owner keeps both alive and unchanged (the
//   Body may grow) until on_write_done() or abort(). With `release`, written RAM chunks of the
//   Body are freed as they go, so a slow reader does not pin the whole body in memory; without
//   it the Body stays whole (a request body that may have to be sent again).
// - With `chunked`, the body is framed with chunked transfer coding and terminated after
//   the Body completes.
// - The owner calls kick() whenever the Body grew or completed. on_write_done(status) is called
//   exactly once per start(): 0 when the whole message is written, or a negative libuv error.
//   It may be called from inside start() or kick().
// - The Output must outlive any write in flight; closing the transport cancels the write,
//   whose completion (ECANCELED) still arrives before the transport's close completion.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "http/body.h"
#include "http/transport.h"

namespace edge::http {

class StreamWriter final : Output::WriteDone {
 public:
  class Owner {
   public:
    virtual void on_write_done(int status) = 0;

   protected:
    ~Owner() = default;
  };

  explicit StreamWriter(Owner* owner) : owner_(owner) {}
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  void start(Output* output, const std::string* head, BodySource* body, bool chunked, bool release = true);
  void kick();
  // Forget the message without calling back (the owner is tearing the stream down).
  void abort() { active_ = false; }

  bool active() const { return active_; }
  bool write_in_flight() const { return in_flight_; }
  uint64_t bytes_written() const { return total_written_; }

 private:
  void on_written(int status) override;
  void pump();
  void advance(size_t bytes);
  void finish(int status);

  static constexpr int kMaxSlices = 64;

  Owner* owner_;
  Output* output_ = nullptr;
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
  // What the write in flight covers, to advance once it completes.
  size_t pending_bytes_ = 0;
  // Chunk-size lines for the slices in flight; they must outlive the write. Made for the first
  // chunked body: most connections never send one.
  static constexpr size_t kChunkLine = 20;
  std::unique_ptr<char[]> chunk_lines_;
  std::string file_scratch_;
};

}  // namespace edge::http
