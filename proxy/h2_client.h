// proxy/h2_client: a client connection that speaks HTTP/2 (h2 by ALPN on a TLS listener, h2c by
// prior knowledge on a cleartext one with `h2c: on`). Its ClientConn took the connection before
// the first request (http/server_conn's sniff) and hands it every byte read; this class runs the
// h2::Session over them and gives each stream a Request of its own, so a stream takes the same
// steps as an HTTP/1.1 request (cache, pass, ESI, balancer, access log) over the same seam,
// Request::Client.
//
// Writing: the session's frames go out in one buffer, one write in flight at a time; while it is
// in flight the session is not asked for more, so DATA is read from the bodies only as fast as
// the client takes it (a passed body is released as it goes; the backend behind it is read into
// its Body and spilled as for HTTP/1.1, so a slow stream never holds a backend). What a read
// produced is written when the read is done; what other events produce (a backend's bytes, a
// fill's news) is written once before the loop next waits (Worker::defer_flush).
//
// Time, on the connection's one deadline, checked every quarter of the shortest timeout while
// streams are open: a header block unfinished after http2.header_timeout ends the connection;
// a stream whose upload is silent for body_timeout is answered 408; a stream whose response
// waits on the client's flow-control window, or a write the socket does not take, for
// send_timeout is reset (the connection closes for the latter); no stream for
// http2.idle_timeout: GOAWAY and close.
//
// A drain (reload's binary upgrade, stop) sends GOAWAY's notice, then the GOAWAY a second later;
// the streams taken are answered and the connection closes once they are.
//
// Ownership: the ClientConn owns this object (made at the first byte, destroyed in its close);
// this object owns the Session and the streams (each with its Request and request body).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "h2/session.h"
#include "http/transport.h"
#include "proxy/stats.h"

namespace edge::proxy {

class ClientConn;
class Worker;

class H2Client final : h2::Session::Handler, http::Output::WriteDone {
 public:
  H2Client(Worker& worker, ClientConn& conn);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  void on_data(std::string_view data);
  void on_end(int status);
  void on_timer();
  void drain();
  // The connection closed: every stream's request ends and the streams are freed. Nothing of
  // this object is used afterwards but its destructor.
  void release_streams();
  // Worker::defer_flush's call.
  void run_deferred_flush();
  // Why the connection ended, for its close (edge's decision when it made one).
  CloseReason close_reason(CloseReason otherwise) const;

 private:
  class Stream;

  // h2::Session::Handler
  h2::Stream* open_stream(int32_t id) override;
  void on_stream_head(h2::Stream& stream) override;
  void on_stream_refused(h2::Stream& stream, int status) override;
  void on_stream_request(h2::Stream& stream) override;
  void on_stream_written(h2::Stream& stream) override;
  void on_stream_close(h2::Stream& stream, uint32_t error) override;
  // http::Output::WriteDone
  void on_written(int status) override;

  // Frames are waiting: written now if the session is not in a call, else when it returns.
  void want_flush();
  void flush();
  // After the session's last frames: half-close, drain the peer's leftovers, close.
  void finish(CloseReason reason);
  void arm_timer();
  uint64_t now() const;

  Worker& worker_;
  ClientConn& conn_;
  std::unique_ptr<h2::Session> session_;
  // Streams closed, kept for the next ones (their buffers grown); let go once the connection
  // has been idle for a tick.
  std::vector<Stream*> spare_;
  static constexpr size_t kMaxSpare = 32;  // a browser's burst of requests, reused whole
  std::string out_;  // the write in flight, or being filled
  bool writing_ = false;
  bool in_session_ = false;     // inside receive() or produce(): flush when it returns
  bool flush_wanted_ = false;
  bool flush_deferred_ = false;  // in the worker's list
  bool finishing_ = false;
  bool draining_ = false;
  uint64_t drain_goaway_at_ = 0;
  uint64_t write_started_at_ = 0;
  uint64_t idle_since_ = 0;
  uint64_t tick_ms_ = 1000;
  std::optional<CloseReason> reason_;
};

}  // namespace edge::proxy
