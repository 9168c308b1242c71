// http/server_conn: the HTTP/1.1 server side of one connection, whatever serves it: the
// requests read from a Transport one at a time, their responses written in order, the time
// each phase may take, keep-alive, the lingering close, and the connection's end.
//
// Phases:
//   kWaiting  -> no byte of the next request yet (header_timeout for a fresh connection,
//                idle_timeout between requests): the deadline closes quietly
//   kHead     -> a request head is arriving (header_timeout for the whole head)
//   kBody     -> its body is arriving (body_timeout between reads)
//   kHandling -> the request is complete, or was answered at its head: the handler answers with
//                respond(); meanwhile pipelined bytes are kept (at most max_pending, past which
//                the connection stops reading) and parsed once the response is written
//   kClosing  -> the last response is written: half-closed, the peer's leftovers drained for
//                linger_ms, then closed
//   kClosed   -> close() ran; the object is freed once its transport and timer have closed
//   kTaken    -> the handler took the connection for another protocol: HTTP/2 before its first
//                request (see sniff() below), or a tunnel once a 101 is written
//                (take_after_response())
//
// The handler is the derived class: it implements the pure virtual functions below and may
// override the others. The core calls them from the libuv callbacks it receives, and also from
// inside respond(), respond_more() and kick() when the write completes at once (the response
// ends there, and the next pipelined request may be read right away), and on_close() from
// inside close(). After any of those calls the handler checks closed() before going on.
//   on_head(head)      the head is complete: return the Body the request body goes to (null:
//                      discarded), or answer now with respond() (the connection then closes
//                      after it: the body is never read), or close().
//   on_request(head)   the request is complete: respond() now or later. Until the response
//                      starts, set_timer() arms the connection's deadline for the handler
//                      (on_timer()), e.g. a bounded wait for someone else's work.
//   on_refuse(status, why)  the request cannot go on: a malformed request (the parser's status,
//                      kBadRequest) or a head or body that took too long (408, kHeaderTimeout or
//                      kBodyTimeout). Answer with respond(..., keep_alive=false), or close().
//                      `why` is what the connection's end will be counted as.
//   on_body_read()     bytes of the body arrived (a rate check may respond or close)
//   on_peer_end(status) the peer ended its side (or failed) after the request was complete and
//                      before the response started; by default the response is still written
//                      and the connection closes after it; close() to give up instead.
//   on_response_written() the message handed to respond()/respond_more() is written: hand the
//                      next part of the same response with respond_more(), or let it end (the
//                      connection goes on to the next request or closes).
//   on_close(why)      once, from close(): the connection is over. Nothing of the core may be
//                      used from then on, except that the object stays alive until freed.
//
// Another protocol: before the first request's first byte, sniff(data) sees the bytes read so
// far (kept while it answers kMore, within header_timeout, at most max_pending). kTake hands the
// connection over: those bytes and every later read go to on_taken_data(), the peer's end to
// on_taken_end(), the deadline to on_timer(); the handler writes through transport() and ends with
// close() as ever. kHttp1 parses them as HTTP/1.1, and sniff() is not asked again.
//
// Responses: respond(head, body, chunked, release, keep_alive) hands the writer (http/writer.h)
// a head and a body source, both borrowed until on_response_written() or close(); kick() when
// the body grew or completed. The handler frames the head itself (Connection: close when
// keep_alive is false, or when peer_ended()); the core closes after a response that is not
// keep-alive, after one given at the head, after a refusal, and after the peer ended.
// While a response is written, send_timeout bounds the time without progress (bytes leaving
// the transport's queue or a write completing), checked every quarter of itself; waiting for
// the handler does not count.
//
// Ownership and the one deferred-deletion rule: a ServerConn is made with new and owns itself;
// it owns its Transport and Deadline. close(why) is the only way out: on_close(why) is called,
// then the transport and the timer are closed, and when both have completed the object deletes
// itself (virtual destructor: the handler with it). Every path (timeouts, errors, the peer's
// end, the handler's own close) goes through close(), at most once; every close is reported
// once, under the first reason decided (a refusal's reason wins over how its write ends).
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "http/body.h"
#include "http/deadline.h"
#include "http/parser.h"
#include "http/transport.h"
#include "http/writer.h"

namespace edge::http {

class ServerConn : Transport::Reader, Transport::Closed, StreamWriter::Owner {
 public:
  enum class Phase { kWaiting, kHead, kBody, kHandling, kClosing, kClosed, kTaken };
  enum class Sniff { kHttp1, kMore, kTake };
  // Why a connection ended, as far as the core can tell. kHandler: the handler closed it for a
  // reason of its own (it knows which).
  enum class Close {
    kPeerClosed,     // the peer ended (or failed) with no request in progress
    kKeepAliveDone,  // after the last response: the linger ended or the peer closed
    kIdleTimeout,    // no next request within idle_timeout
    kHeaderTimeout,  // no (complete) first head within header_timeout
    kBodyTimeout,    // no body bytes within body_timeout
    kSendTimeout,    // the peer did not read the response for send_timeout
    kBadRequest,     // the parser refused the request
    kPeerAbort,      // the peer left before its response started (the handler's call)
    kWriteError,     // writing the response failed
    kHandler,
  };

  struct Settings {
    RequestParser::Limits limits;
    uint64_t header_timeout_ms = 0;  // 0: none, as for each timeout
    uint64_t body_timeout_ms = 0;
    uint64_t idle_timeout_ms = 0;
    uint64_t send_timeout_ms = 0;
    uint64_t linger_ms = 2000;
    size_t max_pending = 64 * 1024;
  };

  ServerConn(uv_loop_t* loop, const Settings& settings);
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  // Takes the connection's transport and starts reading (a transport that cannot read closes
  // the connection as kPeerClosed). The first head's clock starts now.
  void start(std::unique_ptr<Transport> transport);
  // Ends the connection now (see the deletion rule above). Idempotent.
  void close(Close why);

  void respond(const std::string* head, BodySource* body, bool chunked, bool release, bool keep_alive);
  // The next part of the response given to respond(), from on_response_written(); `head` is
  // usually null.
  void respond_more(const std::string* head, BodySource* body, bool chunked, bool release);
  void kick() { writer_.kick(); }
  // Writes "HTTP/1.1 100 Continue" ahead of everything else (from on_head).
  void send_continue();
  // Writes an interim response's head (103 Early Hints) before the response starts; nothing
  // once it has. Kept until the exchange ends, as the transport writes from it.
  void send_interim(std::string head);
  // The connection closes (lingering) once the response in progress is written.
  void close_after_response() { keep_alive_ = false; }
  // Once the response in progress (a 101) is written, the connection is the handler's, as
  // after sniff()'s kTake: the bytes read past the request, then every later read, go to
  // on_taken_data(), the peer's end to on_taken_end(); no deadline runs until set_timer().
  void take_after_response() { take_after_response_ = true; }
  // While taken: stop or resume reading (the handler's back-pressure).
  void pause_reading(bool paused) { set_reading(!paused); }
  // While taken: half-close after what is queued, drain the peer's leftovers for linger_ms,
  // then close (kKeepAliveDone), as after a last response.
  void finish_taken() { linger(); }
  // The handler's deadline while it handles a request, before its response starts.
  void set_timer(uint64_t ms) { deadline_.set(ms); }
  void clear_timer() { deadline_.clear(); }

  Phase phase() const { return phase_; }
  bool closed() const { return phase_ == Phase::kClosed; }
  bool responding() const { return responding_; }  // a response to this request has started
  bool writing() const { return writer_.active(); }
  bool reading() const { return reading_; }
  bool peer_ended() const { return peer_ended_; }
  uint64_t requests() const { return requests_; }        // complete requests read
  uint64_t head_ended_at() const { return head_ended_at_; }  // now() of the last head's end
  uint64_t now() const { return deadline_.now(); }  // the loop's time (a ManualClock's in tests)
  uint64_t bytes_written() const { return writer_.bytes_written(); }  // of the current message
  uint64_t bytes_read() const { return bytes_read_; }  // from the transport, since start
  RequestParser& parser() { return parser_; }
  uv_loop_t* loop() const { return loop_; }
  Transport* transport() { return transport_.get(); }

 protected:
  virtual ~ServerConn();

  virtual Body* on_head(RequestHead& head) = 0;
  virtual void on_request(RequestHead& head) = 0;
  virtual void on_refuse(int status, Close why) = 0;
  virtual void on_body_read() {}
  virtual void on_peer_end(int) {}
  virtual void on_timer() {}
  virtual void on_response_written() {}
  virtual void on_close(Close why) = 0;
  virtual Sniff sniff(std::string_view) { return Sniff::kHttp1; }
  virtual void on_taken() {}  // take_after_response(): the connection is the handler's now
  virtual void on_taken_data(std::string_view) {}
  virtual void on_taken_end(int) {}

 private:
  // Transport::Reader, Transport::Closed, StreamWriter::Owner
  void on_data(const char* data, size_t len) override;
  void on_end(int status) override;
  void on_closed() override;
  void on_write_done(int status) override;

  void process(std::string_view data);
  void sniff_then_process(const char* data, size_t len);
  void parse(std::string_view data);
  void refuse(int status, Close why);
  void begin_response(bool keep_alive);
  void end_exchange();
  void linger();
  void set_reading(bool on);
  void on_deadline();
  void check_send_progress();
  uint64_t send_check_interval() const;
  static void on_deadline_closed(void* self) noexcept;
  void release_one();

  uv_loop_t* loop_;
  Settings settings_;
  std::unique_ptr<Transport> transport_;
  Deadline deadline_;
  RequestParser parser_;
  StreamWriter writer_;
  std::string pending_;  // received while a request was handled: parsed once it is answered
  // Written by send_interim; a list never moves them, and costs nothing while empty (a deque
  // allocates at once).
  std::list<std::string> interim_heads_;
  Phase phase_ = Phase::kWaiting;
  Close reason_ = Close::kHandler;  // a refusal's reason, decided before its response is written
  bool refused_ = false;
  bool take_after_response_ = false;
  bool reading_ = false;
  bool peer_ended_ = false;
  bool responding_ = false;
  bool keep_alive_ = true;
  bool in_process_ = false;
  bool sniffing_ = true;  // no byte has been parsed yet: sniff() decides first
  bool process_again_ = false;
  bool in_written_ = false;
  bool written_again_ = false;
  int open_handles_ = 0;
  uint64_t requests_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t head_ended_at_ = 0;
  uint64_t progress_mark_ = 0;  // bytes written at the last send check
  size_t queued_mark_ = 0;      // bytes the transport still held then
  uint64_t progress_at_ = 0;    // loop time (ms) of the last check that saw progress
};

}  // namespace edge::http
