// app/server: the app server's listener and connections on one libuv loop (one thread).
//
// Contract:
// - HTTP/1.1 with keep-alive and pipelining (answered in order: the next request is parsed only
//   once the previous response is fully written), HTTP/1.0, HEAD (no body), request bodies with
//   Content-Length or chunked coding, "Expect: 100-continue".
// - Malformed input gets the parser's status (400, 413, 414, 431, 501, 505) and the connection
//   is closed. A connection that is closed after a response is shut down first and drained for a
//   moment, so the client reads the whole response rather than a reset.
// - Every response has Date and X-Backend, and Content-Length (except chunked ones, and 204/304).
// - What each request gets is decided by app/routes.h; the server carries out the Reply: timers
//   for /wait (the loop keeps serving other connections), a busy loop for /cpu (it does not),
//   generated bodies written piece by piece (a 1 GiB /bytes never sits in memory).
// - Every request head parsed is counted in counts() under its target (counts_request() decides),
//   before it is routed, so /cache reports its own count and /count sees every earlier request.
// - A Reply with `gather` is held (the loop goes on serving) until that many requests for its
//   target are held together or its gather_ms have passed, and then carried out with
//   X-Gathered: how many were held together at that moment. A connection the server sees
//   closed meanwhile leaves the group (like /wait, it may notice only when it answers).
// - Idle keep-alive connections are closed after Options::idle_timeout_ms.
// - A Reply of kind kWebSocket (/ws, app/websocket.h) is a 101; once it is written the server
//   connection core hands the connection over (take_after_response) and it speaks WebSocket:
//   the greeting, if any, goes out first, then every frame the client sends is read into a
//   buffer and answered by the connection's ws::EchoSession, however the reads split it. Bytes
//   a client sent after its handshake before it had the 101 (RFC 6455 forbids it) are read as
//   frames too.
//   Back-pressure: while more than kMaxWebSocketQueue bytes of answers wait to be written (the
//   client reads slowly or not at all), the connection stops reading and answering; it resumes
//   once they are written. So a connection holds at most about kMaxWebSocketQueue plus one
//   message of answers, and one frame of input, whatever the client does.
//   The end: once the server's close frame (an echoed close, close_after, an error in the
//   client's frames) or, after the client ended its side, every answer is written, the
//   connection half-closes and lingers as after a last response. If those last answers are
//   not taken within 2 s, the connection is closed. A reset ends it at once. Otherwise there
//   is no time limit (idle_timeout_ms is for HTTP); Server::stop() closes it without a close
//   frame.
//   Stats: the handshake is a request, in progress until the 101 is written and then served;
//   the open WebSocket counts in Stats::websockets (and websockets_opened) until its connection
//   closes, never in in_progress.
// - The demo site (app/demo_site.h) is generated from Options::seed when the Server is made and
//   lives as long as it. With Options::admin, a Reply that names a purge_tag is held until the
//   purge at the edge's admin port has answered or failed (app/admin_client.h); the loop goes on
//   serving other connections meanwhile. Without it, the reply goes out at once.
//
// Ownership: the Server owns its listener, every Connection, the DemoSite and the AdminClient; a
// Connection frees itself by the server connection core's rule (http/server_conn.h), and keeps a
// WebSocket's session and buffers until then (a write in flight borrows them). stop()
// closes them all (and the admin client's purges in flight); the owner then runs the loop until
// it has no more handles, and only then destroys the Server.
#pragma once

#include <uv.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "app/admin_client.h"
#include "app/demo_site.h"
#include "app/options.h"
#include "app/routes.h"

namespace edge::app {

class Connection;

// The most bytes of WebSocket answers a connection queues before it stops reading.
inline constexpr size_t kMaxWebSocketQueue = 1024 * 1024;

class Server {
 public:
  // `store` is the demo's (main opens it from options.store); `admin_token` is the bearer token
  // for options.admin (main reads it from the token file).
  Server(uv_loop_t* loop, Options options, std::unique_ptr<Store> store, std::string admin_token = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens. Returns 0 or a negative libuv error (nothing to clean up but stop()).
  int listen();
  // The port actually bound (differs from options().port when that was 0).
  uint16_t port() const;
  // Closes the listener and every connection, whatever it is doing. Idempotent.
  void stop();

  const Options& options() const { return options_; }
  const Stats& stats() const { return stats_; }
  const RequestCounts& counts() const { return counts_; }
  DemoSite& demo() { return demo_; }
  uv_loop_t* loop() const { return loop_; }

 private:
  friend class Connection;

  static void on_connection(uv_stream_t* listener, int status) noexcept;

  // The current time as an HTTP date, formatted once a second.
  std::string_view date();
  void request_started();
  // Counts a request for `target` in counts_; returns its count (0 when not counted).
  uint64_t count_request(std::string_view target);
  void request_finished(bool served);
  void websocket_opened();
  void websocket_closed();
  void link(Connection* c);
  void unlink(Connection* c);
  // Holds `c` with the others held for `target`; once `want` are held, lets them all go.
  void gather(Connection* c, const std::string& target, uint32_t want);
  // Takes `c` out of `target`'s group; returns how many the group held with it.
  size_t leave_gathering(Connection* c, const std::string& target);

  uv_loop_t* loop_;
  Options options_;
  Stats stats_;
  RequestCounts counts_;
  AssetCache assets_;
  DemoSite demo_;
  std::unique_ptr<AdminClient> admin_;  // null without Options::admin
  uv_tcp_t listener_;
  bool listener_open_ = false;
  bool stopped_ = false;
  Connection* connections_ = nullptr;  // intrusive list of open connections
  std::unordered_map<std::string, std::vector<Connection*>> gathering_;  // by target
  char read_buffer_[64 * 1024];        // shared: a read callback consumes it before the next read
  std::time_t date_second_ = -1;
  char date_[32] = {};
  size_t date_len_ = 0;
};

}  // namespace edge::app
