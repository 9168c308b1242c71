// h2/session: the server side of one HTTP/2 connection (RFC 9113) as bytes in and bytes out,
// over nghttp2 (framing, HPACK, flow control), with no socket and no loop: whoever owns the
// connection feeds receive() what it read and writes what produce() gives it.
//
// What the session owns and decides:
// - The streams' request heads, built from their HEADERS as strictly as the HTTP/1.1 parser
//   builds one (http/parser.h): nghttp2's own checks (pseudo-header fields present once each and
//   first, no connection-specific field, TE only "trailers", lower-case names, no CR, LF or NUL,
//   no white space around a value, Content-Length against the DATA received) and edge's:
//   `:scheme` http or https, `:authority` naming the same host as a Host field (which it then
//   replaces), Cookie fields joined into one (RFC 9113 8.2.3), the count of fields and the
//   decoded size of the list bounded. A malformed request is a stream error (RST_STREAM
//   PROTOCOL_ERROR, nobody else sees it); a head too large is refused with 431 through the
//   handler, and the connection then goes away (GOAWAY ENHANCE_YOUR_CALM after the streams it
//   already took), as an HTTP/1.1 connection closes after a 431.
// - The defences against the known attacks, each ending the connection with GOAWAY and its error:
//   rapid reset (RST_STREAM beyond a token bucket, nghttp2's limiter), CONTINUATION floods (more
//   CONTINUATION frames than max_continuations after one HEADERS, nghttp2's), frames that carry no
//   request (SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA and empty CONTINUATION) beyond
//   a token bucket of their own (ENHANCE_YOUR_CALM), ACKs piling up for a peer that does not read
//   (nghttp2's max_outbound_ack), an oversized or malformed frame (FRAME_SIZE_ERROR,
//   PROTOCOL_ERROR, nghttp2's).
// - Responses: respond() takes a response head as proxy/heads writes it for HTTP/1.1 (status
//   line, fields, the empty line) and turns it into HEADERS (names lower-cased, hop-by-hop fields
//   dropped) and the body into DATA frames read from a BodySource as flow control allows.
//
// The Handler (the proxy's connection) makes the streams, is told of their heads, their ends and
// their closes, and frees them. Calls into the handler come from inside receive() and
// produce(); the handler may call respond(), resume(), reset() and goaway() from them, never
// receive() or produce().
//
// Ownership: the Session owns its nghttp2 session; Streams are the handler's (made by
// open_stream, freed by the handler once on_stream_close has returned or when the Session goes).
// Bodies and heads handed to respond() are borrowed until on_stream_written or on_stream_close.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/body.h"
#include "http/message.h"

namespace edge::h2 {

// The fields of an HTTP/1.1 response head as HTTP/2 sends them (response_fields()): the status,
// then each field with its name lower-cased, without the hop-by-hop ones. One string holds every
// name and value, so a response costs no allocation once the buffers have grown.
struct ResponseFields {
  using Field = http::HeadIndex::Field;  // offsets in `text`
  int status = 0;
  char status_text[4] = {};
  std::string text;
  std::vector<Field> fields;
  std::string_view name(size_t i) const { return {text.data() + fields[i].name, fields[i].name_len}; }
  std::string_view value(size_t i) const { return {text.data() + fields[i].value, fields[i].value_len}; }
};
// Reads a head as proxy/heads writes it (status line, field lines, the empty line) into `out`:
// Connection and the fields it names, Keep-Alive, Transfer-Encoding, Upgrade and
// Proxy-Connection are left out. false: not a response head.
bool response_fields(std::string_view head, ResponseFields& out);

// RFC 9113 7.
enum class Error : uint32_t {
  kNoError = 0x0,
  kProtocol = 0x1,
  kInternal = 0x2,
  kFlowControl = 0x3,
  kSettingsTimeout = 0x4,
  kStreamClosed = 0x5,
  kFrameSize = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompression = 0x9,
  kConnect = 0xa,
  kEnhanceYourCalm = 0xb,
  kInadequateSecurity = 0xc,
  kHttp11Required = 0xd,
};

// The client connection preface (RFC 9113 3.4).
inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Limits {
  uint32_t max_concurrent_streams = 100;
  uint32_t max_header_list_size = 16 * 1024;  // decoded, RFC 9113's way: name + value + 32 a field
  uint32_t max_header_fields = 100;
  uint32_t max_frame_size = 16 * 1024;           // what edge receives
  uint32_t initial_window_size = 256 * 1024;     // a stream's receive window
  uint32_t connection_window_size = 1024 * 1024; // the connection's receive window
  // Frames that carry no request, per connection: a bucket of `idle_frames_burst` refilled at
  // `idle_frames_per_second`.
  uint32_t idle_frames_burst = 1000;
  uint32_t idle_frames_per_second = 100;
  // RST_STREAM from the client: a bucket of `resets_burst` refilled at `resets_per_second`.
  uint32_t resets_burst = 200;
  uint32_t resets_per_second = 33;
  uint32_t max_continuations = 8;
};

class Stream {
 public:
  explicit Stream(int32_t id) : id_(id) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int32_t id() const { return id_; }
  // Ready to carry another stream: nothing of the last one is left but the buffers' capacity.
  void reuse(int32_t id);
  http::RequestHead& head() { return head_; }
  // Where the request body goes (set by the handler at on_stream_head; null: discarded).
  void set_body_sink(http::Body* body) { sink_ = body; }
  bool head_done() const { return head_done_; }  // a request head was read (sound or not)
  bool request_complete() const { return request_complete_; }
  bool responding() const { return body_ != nullptr || response_started_; }
  uint64_t body_bytes_received() const { return body_received_; }
  uint64_t bytes_sent() const { return bytes_sent_; }  // of the response, frames included
  // The loop time (ms) the response last made progress or was waiting on the body, not on the
  // client's window: the handler's send_timeout check reads it.
  uint64_t progress_at() const { return progress_at_; }

 protected:
  virtual ~Stream() = default;

 private:
  friend class Session;

  int32_t id_;
  http::RequestHead head_;
  std::string authority_;
  std::string scheme_;
  std::string cookies_;
  http::Body* sink_ = nullptr;
  uint32_t list_bytes_ = 0;
  bool too_large_ = false;
  bool malformed_ = false;
  bool head_done_ = false;
  bool refused_ = false;  // answered or reset at its head: its end is not a request
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_done_ = false;
  // The response being written.
  ResponseFields response_;
  http::BodySource* body_ = nullptr;
  bool release_ = true;
  bool deferred_ = false;  // DATA waits for the body to grow
  uint64_t offset_ = 0;
  uint64_t body_received_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t progress_at_ = 0;
  std::string scratch_;
  // A body written inline after the head (respond()), as a source.
  struct InlineBody final : http::BodySource {
    std::string_view bytes;
    int peek(uint64_t offset, http::IoSlice* out, int max, size_t max_bytes, std::string&) const override {
      if (offset >= bytes.size() || max < 1) return 0;
      out[0] = {bytes.data() + offset, std::min<size_t>(bytes.size() - offset, max_bytes)};
      return 1;
    }
    uint64_t size() const override { return bytes.size(); }
    bool complete() const override { return true; }
  } inline_body_;
};

class Session {
 public:
  class Handler {
   public:
    virtual Stream* open_stream(int32_t id) = 0;
    // The head is complete and sound: set the stream's body sink, or respond now.
    virtual void on_stream_head(Stream& stream) = 0;
    // The head cannot be served: answer `status` (431) on the stream; the connection then goes.
    virtual void on_stream_refused(Stream& stream, int status) = 0;
    virtual void on_stream_request(Stream& stream) = 0;  // the request is complete
    // The last frame of the response (END_STREAM) is out of the session.
    virtual void on_stream_written(Stream& stream) = 0;
    // The stream is gone (answered, reset by either side, or the connection's end): the handler
    // lets go of everything the stream holds and frees it after returning.
    virtual void on_stream_close(Stream& stream, uint32_t error) = 0;

   protected:
    ~Handler() = default;
  };

  Session(Handler& handler, const Limits& limits, uint64_t max_body_bytes);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The loop's time in ms, for the buckets and the streams' progress: set before each call.
  void set_now(uint64_t now_ms) { now_ = now_ms; }

  // Consumes what the client sent. false: the connection is over for a fatal error (what
  // produce() still gives says so to the client: a GOAWAY), see end_error().
  bool receive(const char* data, size_t len);
  // Appends the frames to send to `out`, up to about `max` bytes. false: a fatal error.
  bool produce(std::string& out, size_t max);
  // Nothing more to read or to write: the connection may close.
  bool finished() const;
  bool wants_write() const;

  // A response for a stream (see above). `body` null: no body, unless `head` carries bytes past
  // its empty line (an answer edge makes, its body inline): those are the body, borrowed like the
  // head until the stream ends. With `release`, bytes sent are released from the body. With
  // `index` (borrowed as the head), the fields are where it says and the head is not read again.
  void respond(Stream& stream, std::string_view head, const http::HeadIndex* index, http::BodySource* body,
               bool release);
  // An interim response (103) before the final one, from an HTTP/1.1 head text.
  void respond_interim(Stream& stream, std::string_view head);
  // The body of the stream's response grew or completed.
  void resume(Stream& stream);
  void reset(Stream& stream, Error error);
  // Graceful: new streams are refused from now on, those taken go on. With an error (a
  // defence), the error is the GOAWAY's.
  void goaway(Error error = Error::kNoError);
  // Ends the connection now: GOAWAY with `error`, nothing more is read.
  void terminate(Error error);
  // The stream's response has bytes to send that the client's flow-control windows hold back.
  bool waits_on_window(const Stream& stream) const;
  // The handler freed every stream (the connection closed): the session calls nobody again.
  void forget_streams();
  // A notice that a GOAWAY follows (RFC 9113 6.8's two steps), for a graceful stop.
  void shutdown_notice();
  bool going_away() const { return going_away_; }
  // The error the connection ended with (GOAWAY sent or received), for the close's reason.
  uint32_t end_error() const { return end_error_; }
  bool end_error_sent() const { return end_sent_; }
  size_t open_streams() const { return open_streams_; }
  // Every stream the handler holds, for its timers.
  template <typename Fn>
  void for_each_stream(Fn&& fn);

 private:
  struct Callbacks;
  friend struct Callbacks;

  void header(Stream& stream, std::string_view name, std::string_view value);
  bool finish_head(Stream& stream);
  // A token bucket: `burst` tokens, refilled at `per_second`.
  struct Bucket {
    double tokens;
    uint64_t refilled_at = 0;
    bool take(uint64_t now, uint32_t burst, uint32_t per_second);
  };
  void append_cookies(Stream& stream);
  Stream* find_stream(int32_t id);  // the handler's stream of `id`, null if none
  void remember_error(uint32_t code, bool sent);

  Handler& handler_;
  Limits limits_;
  uint64_t max_body_bytes_;
  nghttp2_session* session_ = nullptr;
  uint64_t now_ = 0;
  Bucket idle_frames_;
  Bucket resets_;
  size_t open_streams_ = 0;
  bool going_away_ = false;
  bool fatal_ = false;
  uint32_t end_error_ = 0;
  bool end_sent_ = false;
  std::vector<Stream*> streams_;  // open ones, unordered
  int32_t last_id_ = 0;           // find_stream's last answer (0: none, the connection's id)
  Stream* last_stream_ = nullptr;
  std::vector<nghttp2_nv> nv_;    // a response's fields as nghttp2 takes them
};

template <typename Fn>
void Session::for_each_stream(Fn&& fn) {
  // A copy: fn may reset a stream, and a reset may close it while the list is walked.
  std::vector<Stream*> streams = streams_;
  for (Stream* stream : streams) fn(*stream);
}

}  // namespace edge::h2
