// http/oneshot: one HTTP exchange on a fresh connection: connect, write the request, read one
// response (its head, or all of it), close. The one client for exchanges that need no pool:
// health checks, purges sent to other nodes, test clients.
//
// Contract:
// - start() connects to `address` (read during start() only), writes `request` as it is (the
//   caller builds it; any bytes, even malformed ones, are sent unchanged; simple_request() builds
//   a plain one), reads the response with a ResponseParser and closes the connection. The request
//   is not half-closed after it is written.
// - Wait::kHead ends once the head of the final response is complete (the body is never read);
//   Wait::kMessage once the whole response is, or the peer closed a response delimited by the
//   close. Interim (1xx) responses are skipped; bytes after the response are ignored. The body
//   goes to a Body in RAM; one over `max_body_bytes` fails with kTooLarge.
// - done(outcome) is called exactly once, from the loop, never from inside start() (a failure
//   found at once waits for the loop's next turn), unless stop() comes first: then never.
// - A failed write does not end the exchange by itself: a server may answer a request and
//   close before reading all of it, so reading goes on, and the write's error is the outcome
//   only if the read then ends without any byte of a response.
// - `timeout_ms` bounds the whole exchange: connect, write and read.
// - The connection is a Transport (http/transport.h): a TcpTransport unless Options::transport
//   makes another (a TLS client over a TcpTransport, say). Whatever it is, the Failures and their
//   statuses are what its connect, reads and writes report.
// - Never throws; start() never blocks (run() blocks its thread, by design). The process must
//   ignore SIGPIPE.
//
// Ownership: the OneShot owns itself (its transport, timer, request bytes, parser and body) and
// frees itself once its transport's close has completed and then its timer closed, after done
// has returned or after stop(). The pointer start() returns only serves stop(): it is valid until
// done is called or stop() returns. The Outcome, its parser, body and transport are borrowed for
// the duration of done.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "http/body.h"
#include "http/parser.h"
#include "http/transport.h"

namespace edge::http {

class OneShot final : Transport::Connected, Transport::Reader, Transport::Closed, Output::WriteDone {
 public:
  enum class Wait { kHead, kMessage };

  // Makes the exchange's transport on `loop`, not yet connected, reading into `read_buffer` (the
  // OneShot's own, valid until the transport's close has completed). Null when it cannot: the
  // exchange then fails with kConnect, UV_ENOMEM.
  using TransportFactory = std::function<std::unique_ptr<Transport>(uv_loop_t* loop, uv_buf_t read_buffer)>;

  enum class Failure {
    kNone,         // the response (head or message, as asked) is complete
    kConnect,      // connecting failed: uv_status (UV_ECONNREFUSED, UV_EINVAL for a bad address, ...)
    kWrite,        // writing failed and no response came: uv_status (UV_EPIPE, UV_ECONNRESET, ...)
    kRead,         // reading failed: uv_status (UV_ECONNRESET, ...)
    kClosed,       // the peer closed before any byte of a response
    kTruncated,    // the peer closed in the middle of the response
    kBadResponse,  // the bytes are not a valid HTTP response (or its head is over max_head_bytes)
    kTooLarge,     // the body passed max_body_bytes
    kTimeout,      // not done within timeout_ms
  };

  struct Options {
    Wait wait = Wait::kMessage;
    bool head_request = false;  // the request is a HEAD: its response has no body
    uint64_t timeout_ms = 10000;
    uint64_t max_head_bytes = 64 * 1024;
    uint64_t max_body_bytes = std::numeric_limits<uint64_t>::max();
    TransportFactory transport;  // null: a TcpTransport
  };

  struct Outcome {
    Failure failure;
    int uv_status;       // the libuv error for kConnect, kWrite and kRead; else 0
    const char* detail;  // uv_strerror(uv_status) for those three; the parser's reason for kClosed,
                         // kTruncated and kBadResponse; "" otherwise
    ResponseParser& parser;  // what was read, whatever the failure: head() once started()
    Body& body;              // the body read so far
    const Transport* transport;  // the connection, closing (its own reasons, e.g. TLS's); null if
                                 // the factory made none
  };
  using Done = std::function<void(const Outcome&)>;

  static OneShot* start(uv_loop_t* loop, const sockaddr* address, std::string request, Options options, Done done);
  // Abandons the exchange: done is never called. Only before done has been called.
  void stop();

  // Runs one exchange on a loop of its own and returns once done has returned: for tests and
  // tools, never on a thread that runs a loop.
  static void run(const sockaddr* address, std::string request, Options options, Done done);

  OneShot(const OneShot&) = delete;
  OneShot& operator=(const OneShot&) = delete;

 private:
  OneShot(uv_loop_t* loop, std::string request, Options options, Done done);
  ~OneShot() = default;

  // The transport's Connected, Reader, Closed and WriteDone.
  void on_connected(int status) override;
  void on_data(const char* data, size_t len) override;
  void on_end(int status) override;
  void on_closed() override;
  void on_written(int status) override;
  static void on_timer(uv_timer_t* timer) noexcept;

  void fail_later(Failure failure, int uv_status);
  void finish(Failure failure, int uv_status = 0);
  void close();

  std::unique_ptr<Transport> transport_;
  uv_timer_t timer_;
  std::string request_;  // borrowed by the write until its completion
  Options options_;
  Done done_;
  ResponseParser parser_;
  Body body_;
  Failure pending_failure_ = Failure::kNone;  // found inside start(), reported by the timer
  int pending_status_ = 0;
  int write_status_ = 0;  // a failed write's error, while reading goes on
  bool finished_ = false;
  char buffer_[16 * 1024];
};

// "<method> <target> HTTP/1.1" with Host, the extra header lines (each ending in CRLF) and
// Connection: close, without a body.
std::string simple_request(std::string_view method, std::string_view target, std::string_view host,
                           std::string_view extra_headers = {});

}  // namespace edge::http
