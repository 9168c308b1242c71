#include "app/server.h"

#include <cinttypes>
#include <cstdio>

#include "app/websocket.h"
#include "http/body.h"
#include "http/parser.h"
#include "http/server_conn.h"
#include "http/tcp_transport.h"

namespace edge::app {

namespace {
// A generated body is handed to the writer this much at a time, so /bytes?n=1073741824 costs a
// few hundred KB of memory, not a gigabyte.
constexpr size_t kPieceBytes = 256 * 1024;
// How long a connection we are closing keeps draining what the client still sends, so that
// unread input does not turn our close into a reset that destroys the response in flight.
constexpr uint64_t kLingerMs = 2000;

// Session tokens: 128 bits from the system's random source, as hex. Should that ever fail, a
// counter mixed with the clock still keeps tokens unique (if guessable), so logins keep working.
std::string new_session_token() {
  unsigned char bytes[16];
  if (uv_random(nullptr, nullptr, bytes, sizeof bytes, 0, nullptr) < 0) {
    static uint64_t counter = 0;
    uint64_t state = uv_hrtime() ^ (++counter * 0x9E3779B97F4A7C15ull);
    for (unsigned char& b : bytes) {
      state = (state ^ (state >> 29)) * 0xBF58476D1CE4E5B9ull + counter;
      b = static_cast<unsigned char>(state >> 56);
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}
}  // namespace

// One client connection: the HTTP side is the server connection core's; this is what a request
// gets (a Reply carried out: at once, after a delay, after a purge, or in generated pieces), and,
// after a 101, the WebSocket echo.
class Connection final : public http::ServerConn {
 public:
  explicit Connection(Server* server);

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  enum class State {
    kIdle,       // no request being answered
    kWaiting,    // a Reply waits for its delay (/wait), on the connection's deadline
    kGathering,  // a Reply waits for others to its target (gather), at most until the deadline
    kPurging,    // a Reply waits for its purge at the edge's admin port
    kWriting,    // the response is being written
  };

  http::Body* on_head(http::RequestHead& head) override;
  void on_request(http::RequestHead& head) override;
  void on_refuse(int status, Close why) override;
  void on_timer() override;
  void on_response_written() override;
  void on_close(Close why) override;
  void on_taken_data(std::string_view data) override;
  void on_taken_end(int status) override;

  friend class Server;  // gather() lets a held request go
  void count_request();
  void fail_request(int status);
  // Held no longer: says how many were held together, then goes on with the reply's delay.
  void gathered(size_t together);
  bool start_purge();
  void on_purged();
  void begin_write();
  void write_piece(const std::string* head);
  void write_message(const std::string* head, http::BodySource* body);
  bool more_pieces() const { return gen_remaining_ > 0 || (gen_chunked_ && !gen_terminated_); }
  void fill_piece();
  void finish_response();

  // The WebSocket after its 101 (see server.h).
  struct WebSocket {
    explicit WebSocket(ws::EchoSession::Settings settings) : session(settings) {}
    ws::EchoSession session;
    std::string in;     // read, not yet taken by the session from in_pos on
    size_t in_pos = 0;
    std::string out;      // answers not yet handed to the transport
    std::string writing;  // handed to the transport, until its write completes
    bool paused = false;  // reading stopped: too much queued
    bool peer_ended = false;
    bool timer_armed = false;  // the wait for the last answers to be taken
  };
  class WebSocketWritten final : public http::Output::WriteDone {
   public:
    explicit WebSocketWritten(Connection* c) : c_(c) {}
    void on_written(int status) override { c_->websocket_written(status); }

   private:
    Connection* c_;
  };
  void start_websocket(ws::EchoSession::Settings settings, const std::optional<std::string>& greeting);
  void run_websocket();
  void flush_websocket();
  void websocket_written(int status);
  size_t websocket_queued() const { return ws_->out.size() + ws_->writing.size(); }

  Server* server_;
  State state_ = State::kIdle;
  bool counted_ = false;  // the current request is counted in Stats::in_progress
  uint64_t target_count_ = 0;  // the current request's count in Server::counts_
  uint64_t purge_ticket_ = 0;  // the AdminClient's ticket while kPurging
  std::string gather_target_;  // while kGathering

  http::Body request_body_;

  Reply reply_;
  bool head_request_ = false;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool close_after_ = false;
  bool first_message_ = true;  // the next write starts the response
  uint64_t responses_ = 0;  // on this connection

  std::string head_;          // borrowed by the writer until on_response_written
  http::Body response_body_;  // the current piece, borrowed likewise
  uint64_t gen_offset_ = 0;  // pattern offset of the next generated byte
  uint64_t gen_remaining_ = 0;
  uint64_t gen_chunk_ = 0;
  bool gen_chunked_ = false;
  bool gen_terminated_ = false;

  std::unique_ptr<WebSocket> ws_;  // from the 101 on; kept until the object is freed
  WebSocketWritten ws_written_{this};
};

// ---- Server ----

Server::Server(uv_loop_t* loop, Options options, std::unique_ptr<Store> store, std::string admin_token)
    : loop_(loop), options_(std::move(options)), demo_(options_.seed, &new_session_token, std::move(store)) {
  if (options_.admin) admin_ = std::make_unique<AdminClient>(loop_, *options_.admin, std::move(admin_token));
}

Server::~Server() = default;

int Server::listen() {
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(options_.host.c_str(), options_.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc < 0) rc = uv_ip6_addr(options_.host.c_str(), options_.port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc < 0) return rc;
  rc = uv_tcp_init(loop_, &listener_);
  if (rc < 0) return rc;
  listener_open_ = true;
  listener_.data = this;
  rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc < 0) return rc;
  return uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, &Server::on_connection);
}

uint16_t Server::port() const {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (!listener_open_ || uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr), &len) < 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (listener_open_) uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  while (connections_) connections_->close(http::ServerConn::Close::kHandler);  // on_close() unlinks
  if (admin_) admin_->stop();
}

void Server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* server = static_cast<Server*>(listener->data);
  if (status < 0 || server->stopped_) return;
  auto* c = new Connection(server);
  server->link(c);
  auto transport =
      std::make_unique<http::TcpTransport>(server->loop_, uv_buf_init(server->read_buffer_, sizeof server->read_buffer_));
  const int rc = transport->accept(listener);
  c->start(std::move(transport));
  if (rc < 0) c->close(http::ServerConn::Close::kPeerClosed);
}


std::string_view Server::date() {
  std::time_t now = std::time(nullptr);
  if (now != date_second_) {
    date_second_ = now;
    date_len_ = http::format_http_date(static_cast<int64_t>(now), date_);
  }
  return {date_, date_len_};
}

void Server::request_started() {
  ++stats_.received;
  ++stats_.in_progress;
  if (stats_.in_progress > stats_.peak_in_progress) stats_.peak_in_progress = stats_.in_progress;
}

uint64_t Server::count_request(std::string_view target) {
  if (const size_t kind = demo_kind(target.substr(0, target.find('?'))); kind < kDemoKinds.size()) ++stats_.demo[kind];
  return counts_request(target) ? counts_.add(target) : 0;
}

void Server::request_finished(bool served) {
  --stats_.in_progress;
  if (served) ++stats_.served;
}

void Server::websocket_opened() {
  ++stats_.websockets;
  ++stats_.websockets_opened;
}

void Server::websocket_closed() { --stats_.websockets; }

void Server::gather(Connection* c, const std::string& target, uint32_t want) {
  std::vector<Connection*>& group = gathering_[target];
  group.push_back(c);
  if (group.size() < want) return;
  std::vector<Connection*> released = std::move(group);
  gathering_.erase(target);
  for (Connection* member : released) member->gathered(released.size());
}

size_t Server::leave_gathering(Connection* c, const std::string& target) {
  auto it = gathering_.find(target);
  if (it == gathering_.end()) return 0;
  const size_t together = it->second.size();
  std::erase(it->second, c);
  if (it->second.empty()) gathering_.erase(it);
  return together;
}

void Server::link(Connection* c) {
  c->next = connections_;
  if (connections_) connections_->prev = c;
  connections_ = c;
}

void Server::unlink(Connection* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (connections_ == c) connections_ = c->next;
  c->prev = c->next = nullptr;
}

// ---- Connection ----

namespace {
http::ServerConn::Settings connection_settings(const Options& options) {
  http::ServerConn::Settings settings;
  // One clock for every phase a client is expected to send in, as before the core: silence
  // past idle_timeout_ms ends the connection without an answer.
  settings.header_timeout_ms = options.idle_timeout_ms;
  settings.body_timeout_ms = options.idle_timeout_ms;
  settings.idle_timeout_ms = options.idle_timeout_ms;
  settings.linger_ms = kLingerMs;
  return settings;
}
}  // namespace

Connection::Connection(Server* server)
    : http::ServerConn(server->loop_, connection_settings(server->options_)), server_(server) {}

void Connection::on_close(Close) {
  if (state_ == State::kGathering) {
    server_->leave_gathering(this, gather_target_);
    state_ = State::kIdle;
  }
  if (purge_ticket_ && server_->admin_) server_->admin_->cancel(purge_ticket_);
  purge_ticket_ = 0;
  if (counted_) {
    counted_ = false;
    server_->request_finished(false);
  }
  if (ws_) server_->websocket_closed();
  server_->unlink(this);
}

void Connection::count_request() {
  if (counted_) return;
  counted_ = true;
  server_->request_started();
}

http::Body* Connection::on_head(http::RequestHead& head) {
  count_request();
  request_body_.clear();
  target_count_ = server_->count_request(head.target);
  const bool expects_body = head.chunked || head.content_length.value_or(0) > 0;
  if (head.version_minor >= 1 && expects_body && head.headers.has_token("Expect", "100-continue")) send_continue();
  return &request_body_;
}

// A delayed answer models work in progress: like a worker busy with it, the server notices that
// its client left only once the work is done (its answer then fails to write, or goes to a client
// that only half-closed), and counts it in progress until then.
void Connection::on_timer() {
  if (ws_) return close(Close::kHandler);  // its answers were not taken in time
  if (state_ == State::kWaiting) return begin_write();
  if (state_ == State::kGathering) gathered(server_->leave_gathering(this, gather_target_));
}

void Connection::gathered(size_t together) {
  if (state_ != State::kGathering) return;
  gather_target_.clear();
  reply_.headers.add("X-Gathered", std::to_string(together));
  if (reply_.delay_ms > 0) {
    uv_update_time(server_->loop_);
    set_timer(reply_.delay_ms);
    state_ = State::kWaiting;
    return;
  }
  begin_write();
}

void Connection::on_request(http::RequestHead& head) {
  count_request();  // a message without a kHead cannot happen, but the books must balance
  reply_ = route(head, request_body_,
                 RouteContext{server_->options_.name, server_->stats_, &server_->assets_, &server_->counts_,
                              target_count_, static_cast<int64_t>(std::time(nullptr)), &server_->demo_});
  const uint64_t drop_after = server_->options_.drop_after;
  if (drop_after > 0 && responses_ >= drop_after) reply_.kind = Reply::Kind::kDrop;
  head_request_ = head.is_head();
  keep_alive_ = head.keep_alive;
  http10_ = head.version_minor == 0;
  request_body_.clear();

  // Started even for a reply that drops the connection: the data has changed either way.
  const bool purging = !reply_.purge_tag.empty() && start_purge();
  if (reply_.kind == Reply::Kind::kDrop) return close(Close::kHandler);
  if (purging) {
    state_ = State::kPurging;
    return;
  }
  if (reply_.kind == Reply::Kind::kRespond && reply_.gather > 0) {
    state_ = State::kGathering;
    gather_target_ = head.target;
    uv_update_time(server_->loop_);
    set_timer(reply_.gather_ms);
    return server_->gather(this, gather_target_, reply_.gather);
  }
  if (reply_.kind == Reply::Kind::kRespond && reply_.delay_ms > 0) {
    // Measure the delay from now, not from the loop's cached time at the start of this turn.
    uv_update_time(server_->loop_);
    set_timer(reply_.delay_ms);
    state_ = State::kWaiting;
    return;
  }
  begin_write();
}

bool Connection::start_purge() {
  if (!server_->admin_) return false;
  purge_ticket_ = server_->admin_->purge_tag(reply_.purge_tag, [this](bool) { on_purged(); });
  return purge_ticket_ != 0;
}

void Connection::on_purged() {
  purge_ticket_ = 0;
  if (closed() || state_ != State::kPurging) return;
  begin_write();
}

void Connection::on_refuse(int status, Close why) {
  // A head or body that stopped arriving is silence, as between requests: no answer.
  if (why != Close::kBadRequest) return close(Close::kHandler);
  fail_request(status);
}

void Connection::fail_request(int status) {
  count_request();
  std::string body(http::reason_phrase(status));
  body += ": ";
  body += parser().error_reason();
  body.push_back('\n');
  reply_ = text_reply(status, std::move(body));
  reply_.close = true;
  head_request_ = false;
  keep_alive_ = false;
  http10_ = false;
  begin_write();
}

void Connection::begin_write() {
  state_ = State::kWriting;
  first_message_ = true;
  gen_remaining_ = 0;
  gen_chunked_ = false;
  gen_terminated_ = true;

  if (reply_.kind == Reply::Kind::kRaw) {
    head_ = std::move(reply_.body);
    close_after_ = true;
    return write_message(&head_, nullptr);
  }

  if (reply_.kind == Reply::Kind::kWebSocket) {
    Framing framing;
    framing.date = server_->date();
    framing.backend = server_->options_.name;
    head_ = format_head(reply_, framing);
    close_after_ = false;
    take_after_response();
    return write_message(&head_, nullptr);
  }

  if (reply_.cpu_ms > 0) {
    // The point of /cpu: hold the loop, as a CPU-bound page holds a single-threaded app server.
    const uint64_t end = uv_hrtime() + reply_.cpu_ms * 1000000ull;
    while (uv_hrtime() < end) {
    }
    uv_update_time(server_->loop_);
  }

  const bool has_body = status_has_body(reply_.status);
  const bool chunked = has_body && reply_.chunked && !http10_;
  bool close = !keep_alive_ || reply_.close || reply_.declared_length.has_value() || peer_ended();
  if (auto connection = reply_.headers.get("Connection")) {
    http::for_each_token(*connection, [&](std::string_view token) {
      if (http::iequals(token, "close")) close = true;
    });
  }
  close_after_ = close;

  Framing framing;
  framing.date = server_->date();
  framing.backend = server_->options_.name;
  framing.close = close;
  framing.keep_alive = !close && http10_;
  framing.chunked = chunked;
  if (has_body && !chunked) framing.content_length = reply_.declared_length.value_or(reply_.body_size());
  head_ = format_head(reply_, framing);

  if (has_body && !head_request_) {
    if (reply_.generated) {
      gen_offset_ = reply_.generated_offset;
      gen_remaining_ = reply_.generated_bytes;
      gen_chunked_ = chunked;
      gen_chunk_ = reply_.chunk_size ? reply_.chunk_size : kMaxChunkBytes;
      gen_terminated_ = !chunked;
      return write_piece(&head_);
    }
    if (!reply_.body.empty()) {
      response_body_.clear();
      response_body_.append(reply_.body);
      response_body_.set_complete();
      return write_message(&head_, &response_body_);
    }
  }
  write_message(&head_, nullptr);
}

void Connection::write_message(const std::string* head, http::BodySource* body) {
  if (!first_message_) return respond_more(head, body, false, false);
  first_message_ = false;
  respond(head, body, false, false, !close_after_);
}

// Writes `head` (null after the first piece) and the next piece of a generated body, if any.
void Connection::write_piece(const std::string* head) {
  if (!more_pieces()) return write_message(head, nullptr);
  fill_piece();
  write_message(head, &response_body_);
}

void Connection::fill_piece() {
  response_body_.clear();
  size_t size = 0;
  while (size < kPieceBytes && gen_remaining_ > 0) {
    uint64_t len = gen_chunked_ ? std::min(gen_chunk_, gen_remaining_)
                                : std::min<uint64_t>(gen_remaining_, kPieceBytes - size);
    if (gen_chunked_) {
      char line[24];
      int n = std::snprintf(line, sizeof line, "%" PRIx64 "\r\n", len);
      response_body_.append({line, static_cast<size_t>(n)});
      size += static_cast<size_t>(n);
    }
    for (uint64_t done = 0; done < len;) {
      std::string_view part = pattern_view(gen_offset_, static_cast<size_t>(std::min(len - done, kMaxChunkBytes)));
      response_body_.append(part);
      done += part.size();
      gen_offset_ += part.size();
    }
    size += static_cast<size_t>(len);
    gen_remaining_ -= len;
    if (gen_chunked_) {
      response_body_.append("\r\n");
      size += 2;
    }
  }
  if (gen_remaining_ == 0 && gen_chunked_ && !gen_terminated_ && size < kPieceBytes) {
    response_body_.append("0\r\n\r\n");
    gen_terminated_ = true;
  }
  response_body_.set_complete();
}

void Connection::on_response_written() {
  if (more_pieces()) return write_piece(nullptr);
  if (reply_.kind != Reply::Kind::kWebSocket) return finish_response();
  const ws::EchoSession::Settings settings{ws::kMaxMessageBytes, reply_.ws_close_after};
  const std::optional<std::string> greeting = std::move(reply_.ws_greeting);
  finish_response();
  // The core hands over a connection whose peer has not ended; one that has ended lingers.
  if (!peer_ended()) start_websocket(settings, greeting);
}

void Connection::finish_response() {
  ++responses_;
  response_body_.clear();
  reply_ = Reply{};
  state_ = State::kIdle;
  if (counted_) {
    counted_ = false;
    server_->request_finished(true);
  }
}

// ---- WebSocket ----

namespace {
// Empties a WebSocket buffer; one that held a large message gives its memory back, so an idle
// WebSocket costs little whatever it once carried.
void empty(std::string& buffer) {
  if (buffer.capacity() > 64 * 1024)
    std::string().swap(buffer);
  else
    buffer.clear();
}
}  // namespace

void Connection::start_websocket(ws::EchoSession::Settings settings, const std::optional<std::string>& greeting) {
  ws_ = std::make_unique<WebSocket>(settings);
  server_->websocket_opened();
  if (greeting) ws::append_frame(ws_->out, ws::kText, *greeting);
  flush_websocket();
}

void Connection::on_taken_data(std::string_view data) {
  // After the server's close frame, the client's bytes are not read (RFC 6455 5.5.1 asks
  // nothing more of them).
  if (!ws_ || ws_->session.closed()) return;
  ws_->in.append(data);
  run_websocket();
}

void Connection::on_taken_end(int status) {
  if (!ws_ || status != UV_EOF) return close(Close::kPeerClosed);
  ws_->peer_ended = true;
  run_websocket();
}

void Connection::websocket_written(int status) {
  if (closed()) return;  // cancelled by the close
  if (status < 0) return close(Close::kWriteError);
  empty(ws_->writing);
  run_websocket();
}

// Answers what is buffered as far as the queue allows, writes, and decides reading and the end.
void Connection::run_websocket() {
  WebSocket& w = *ws_;
  while (!w.session.closed() && websocket_queued() <= kMaxWebSocketQueue) {
    const size_t taken = w.session.consume(std::string_view(w.in).substr(w.in_pos), w.out);
    if (taken == 0) break;
    w.in_pos += taken;
  }
  if (w.in_pos == w.in.size()) {
    empty(w.in);
    w.in_pos = 0;
  } else if (w.in_pos > 0) {
    w.in.erase(0, w.in_pos);
    w.in_pos = 0;
  }
  flush_websocket();
  if (closed()) return;

  const bool over = websocket_queued() > kMaxWebSocketQueue;
  if (over != w.paused) {
    w.paused = over;
    pause_reading(over);
  }
  if (!w.session.closed() && !w.peer_ended) return;
  if (websocket_queued() == 0) return finish_taken();
  if (!w.timer_armed) {
    w.timer_armed = true;
    set_timer(kLingerMs);
  }
}

void Connection::flush_websocket() {
  WebSocket& w = *ws_;
  // One write at a time: what is answered meanwhile gathers in `out` and goes in the next.
  while (w.writing.empty() && !w.out.empty()) {
    w.writing.swap(w.out);
    uv_buf_t buf = uv_buf_init(w.writing.data(), static_cast<unsigned>(w.writing.size()));
    const int written = transport()->write(&buf, 1, &ws_written_);
    if (written < 0) return close(Close::kWriteError);
    if (static_cast<size_t>(written) == w.writing.size()) empty(w.writing);
  }
}

}  // namespace edge::app
