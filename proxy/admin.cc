#include "proxy/admin.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <charconv>
#include <cstdio>
#include <ctime>

#include "http/deadline.h"
#include "http/message.h"
#include "http/parser.h"
#include "http/writer.h"
#include "proxy/admin_render.h"

namespace edge::proxy {

// ---- the pure parts (proxy/admin_render.h) ----

namespace admin {

namespace {

void append_number(std::string& out, int64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void append_unsigned(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

const char* balance_name(conf::Balance balance) {
  switch (balance) {
    case conf::Balance::kLeastConn:
      return "least_conn";
    case conf::Balance::kRoundRobin:
      return "round_robin";
  }
  return "unknown";
}
}  // namespace

std::optional<std::string> percent_decode(std::string_view segment) {
  std::optional<std::string> out = http::percent_decode(segment, false);
  // A name never holds a NUL, and a '/' here could only have come from %2F.
  if (out && out->find_first_of(std::string_view("\0/", 2)) != std::string::npos) return std::nullopt;
  return out;
}

Route parse_route(std::string_view path) {
  Route route;
  constexpr std::string_view kPrefix = "/backends";
  if (!path.starts_with(kPrefix)) return route;
  std::string_view rest = path.substr(kPrefix.size());
  if (rest.empty()) {
    route.kind = Route::kBackends;
    return route;
  }
  if (rest == ".txt") {
    route.kind = Route::kBackendsText;
    return route;
  }
  if (rest.front() != '/') return route;
  rest.remove_prefix(1);
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    size_t slash = rest.find('/');
    if ((slash == std::string_view::npos) != (i == 2)) return route;  // exactly three segments
    parts[i] = rest.substr(0, slash);
    if (parts[i].empty()) return route;
    if (slash != std::string_view::npos) rest.remove_prefix(slash + 1);
  }
  Route::Kind kind;
  if (parts[2] == "drain")
    kind = Route::kDrain;
  else if (parts[2] == "enable")
    kind = Route::kEnable;
  else
    return route;
  std::optional<std::string> backend = percent_decode(parts[0]);
  std::optional<std::string> server = percent_decode(parts[1]);
  if (!backend || !server) return route;
  route.kind = kind;
  route.backend = std::move(*backend);
  route.server = std::move(*server);
  return route;
}

std::string_view allowed_methods(Route::Kind kind) {
  switch (kind) {
    case Route::kBackends:
    case Route::kBackendsText:
      return "GET, HEAD";
    case Route::kDrain:
    case Route::kEnable:
      return "POST";
    case Route::kNotFound:
      break;
  }
  return "";
}

bool method_allowed(Route::Kind kind, std::string_view method) {
  switch (kind) {
    case Route::kBackends:
    case Route::kBackendsText:
      return method == "GET" || method == "HEAD";
    case Route::kDrain:
    case Route::kEnable:
      return method == "POST";
    case Route::kNotFound:
      break;
  }
  return false;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = http::trim(authorization);
  constexpr std::string_view kScheme = "Bearer";
  if (authorization.size() <= kScheme.size() || !http::iequals(authorization.substr(0, kScheme.size()), kScheme))
    return std::nullopt;
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ' && rest.front() != '\t') return std::nullopt;
  std::string_view token = http::trim(rest);
  if (token.empty()) return std::nullopt;
  for (char c : token)
    if (c == ' ' || c == '\t') return std::nullopt;
  return token;
}

TokenDigest digest_token(std::string_view token) {
  TokenDigest digest{};
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), digest.bytes, &len, EVP_sha256(), nullptr) != 1 ||
      len != sizeof digest.bytes) {
    // Cannot happen with a working libcrypto; an unmatchable digest keeps the port shut.
    for (unsigned char& b : digest.bytes) b = 0xff;
  }
  return digest;
}

bool token_matches(std::string_view presented, const TokenDigest& expected) {
  TokenDigest digest = digest_token(presented);
  return CRYPTO_memcmp(digest.bytes, expected.bytes, sizeof digest.bytes) == 0;
}

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out.append(escaped);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string render_backends_json(const balancer::Balancer& balancer, int64_t now_ms) {
  std::string out = "{\"backends\":[";
  for (size_t b = 0; b < balancer.size(); ++b) {
    const balancer::BackendState& backend = balancer.backend(b);
    const conf::Backend& config = backend.config();
    if (b > 0) out.push_back(',');
    out.append("{\"name\":").append(json_string(config.name));
    out.append(",\"balance\":\"").append(balance_name(config.balance)).append("\"");
    out.append(",\"queued\":");
    append_unsigned(out, backend.queued());
    out.append(",\"servers\":[");
    for (size_t s = 0; s < backend.size(); ++s) {
      const balancer::ServerState& server = backend.server(s);
      if (s > 0) out.push_back(',');
      out.append("{\"address\":").append(json_string(server.config().address.text()));
      out.append(",\"state\":").append(json_string(balancer::mode_name(server.mode(now_ms, config.slow_start))));
      out.append(",\"in_flight\":");
      append_number(out, server.in_flight());
      out.append(",\"served\":");
      append_unsigned(out, server.served());
      out.append(",\"failed\":");
      append_unsigned(out, server.failed());
      out.append(",\"weight\":");
      append_unsigned(out, server.config().weight);
      out.append(",\"max_conns\":");
      append_unsigned(out, server.config().max_conns);
      out.append(",\"last_check\":");
      if (!server.checked()) {
        out.append("null");
      } else {
        balancer::ServerState::CheckResult check = server.last_check();
        out.append("{\"ok\":").append(check.ok ? "true" : "false");
        out.append(",\"status\":");
        append_number(out, check.status);
        out.append(",\"detail\":").append(json_string(check.detail));
        out.append(",\"age_ms\":");
        append_number(out, now_ms > check.at_ms ? now_ms - check.at_ms : 0);
        out.push_back('}');
      }
      out.push_back('}');
    }
    out.append("]}");
  }
  out.append("]}\n");
  return out;
}

std::string render_backends_text(const balancer::Balancer& balancer, int64_t now_ms) {
  std::string out;
  for (size_t b = 0; b < balancer.size(); ++b) {
    const balancer::BackendState& backend = balancer.backend(b);
    const conf::Backend& config = backend.config();
    const size_t queued = backend.queued();
    for (size_t s = 0; s < backend.size(); ++s) {
      const balancer::ServerState& server = backend.server(s);
      out.append(config.name).push_back(' ');
      out.append(server.config().address.text()).push_back(' ');
      out.append(balancer::mode_name(server.mode(now_ms, config.slow_start)));
      out.append(" in_flight=");
      append_number(out, server.in_flight());
      out.append(" queued=");
      append_unsigned(out, queued);
      out.append(" served=");
      append_unsigned(out, server.served());
      out.append(" failed=");
      append_unsigned(out, server.failed());
      out.append(" check=");
      if (!server.checked()) {
        out.push_back('-');
      } else {
        balancer::ServerState::CheckResult check = server.last_check();
        if (check.status > 0) {
          append_number(out, check.status);
        } else if (check.detail.empty()) {
          out.append(check.ok ? "ok" : "failed");
        } else {
          // One word, so the line stays split-able on spaces: "connection refused" ->
          // "connection_refused".
          for (char c : check.detail) out.push_back(c == ' ' || c == '\t' || c == '\n' || c == '\r' ? '_' : c);
        }
      }
      out.push_back('\n');
    }
  }
  return out;
}

}  // namespace admin

// ---- the listener and its connections ----

namespace {

constexpr uint64_t kHeaderTimeoutMs = 10'000;  // a request, from its first byte to its end
constexpr uint64_t kIdleTimeoutMs = 60'000;    // between requests on a kept-alive connection
constexpr uint64_t kSendTimeoutMs = 60'000;    // a response the client does not read
constexpr uint64_t kLingerMs = 2'000;
constexpr size_t kMaxConnections = 64;  // the admin port is for a few operators and scripts
constexpr size_t kReadBufferSize = 16 * 1024;
constexpr http::RequestParser::Limits kLimits{8 * 1024, 8 * 1024, 64 * 1024};

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kText = "text/plain; charset=utf-8";

struct Reply {
  int status = 200;
  std::string_view content_type = kJson;
  std::string body;
  std::string extra_headers;  // whole lines, CRLF included
};

Reply json_error(int status, std::string_view message) {
  return {status, kJson, "{\"error\":" + admin::json_string(message) + "}\n", {}};
}

class Conn;

// The AdminServer's state; AdminServer::Impl is this under another name.
class Admin {
 public:
  Admin(uv_loop_t* loop, const conf::Config& config, balancer::Balancer& balancer)
      : loop_(loop), config_(config), balancer_(balancer), token_(admin::digest_token(config.admin.token)) {}
  ~Admin() { close(); }

  bool open(std::string& error);
  void close();

  uv_loop_t* loop() const { return loop_; }
  bool closing() const { return closed_; }
  uv_buf_t read_buffer() { return uv_buf_init(read_buffer_, sizeof read_buffer_); }
  void unlink(Conn* c);
  Reply answer(const http::RequestHead& head);

 private:
  static void on_connection(uv_stream_t* listener, int status);
  Reply server_action(const admin::Route& route, std::string_view method);

  uv_loop_t* loop_;
  const conf::Config& config_;
  balancer::Balancer& balancer_;
  admin::TokenDigest token_;
  uv_tcp_t* listener_ = nullptr;  // owned; freed in its close callback
  bool closed_ = false;
  Conn* conns_ = nullptr;  // intrusive list of open connections
  size_t conn_count_ = 0;
  char read_buffer_[kReadBufferSize];  // consumed by each read callback before the next read
};

// One admin connection: requests one at a time; pipelined bytes wait in input_ (at most one
// read's worth: the connection stops reading while it answers).
class Conn final : http::StreamWriter::Owner {
 public:
  explicit Conn(Admin* admin) : admin_(admin), parser_(kLimits), writer_(this) {}
  void start(uv_stream_t* listener);
  void close_now();

  Conn* prev = nullptr;
  Conn* next = nullptr;

 private:
  enum class Phase {
    kWaiting,  // no byte of the next request yet
    kRequest,  // a request is arriving
    kWriting,  // the response is being written
    kClosing,  // the last response is written; draining until EOF or kLingerMs
  };

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_closed(uv_handle_t* handle);
  void on_write_done(int status) override;

  void drive();
  void begin_request();
  void respond();
  void respond_error(int status, std::string_view detail);
  void send(const Reply& reply, bool head_request, bool http10);
  void linger();
  void on_timer();
  void set_reading(bool on);
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  Admin* admin_;  // borrowed until close_now()
  uv_tcp_t tcp_;
  http::Deadline deadline_;
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 0;
  Phase phase_ = Phase::kWaiting;
  http::RequestParser parser_;
  http::StreamWriter writer_;
  std::string input_;  // read, not yet parsed
  size_t input_pos_ = 0;
  bool after_head_ = false;  // feed again after kHead, even with no bytes left
  std::string out_;          // the response, borrowed by writer_ until on_write_done
  uint64_t requests_ = 0;
  bool keep_alive_ = true;
  bool closed_ = false;
  bool reading_ = false;
  bool driving_ = false;
  bool eof_ = false;
};

// ---- Admin ----

bool Admin::open(std::string& error) {
  const conf::Address& address = config_.admin.address;
  const sockaddr_storage storage = address.to_sockaddr();
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  int rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&storage), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128, &Admin::on_connection);
  if (rc == 0) return true;
  error = conf::Error{config_.admin.mark, "cannot listen on " + address.text() + ": " + uv_strerror(rc)}.text();
  close();
  return false;
}

void Admin::close() {
  closed_ = true;
  if (listener_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    listener_ = nullptr;
  }
  while (conns_) conns_->close_now();  // unlinks it
}

void Admin::on_connection(uv_stream_t* listener, int status) {
  auto* admin = static_cast<Admin*>(listener->data);
  if (status < 0 || admin->closed_) return;
  auto* c = new Conn(admin);
  c->next = admin->conns_;
  if (admin->conns_) admin->conns_->prev = c;
  admin->conns_ = c;
  ++admin->conn_count_;
  c->start(listener);
  if (admin->conn_count_ > kMaxConnections) c->close_now();
}

void Admin::unlink(Conn* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (conns_ == c) conns_ = c->next;
  c->prev = c->next = nullptr;
  --conn_count_;
}

Reply Admin::answer(const http::RequestHead& head) {
  bool authorized = false;
  if (head.headers.count("Authorization") == 1) {
    std::optional<std::string_view> token = admin::bearer_token(*head.headers.get("Authorization"));
    // Evaluated whatever the header held, so a malformed one takes as long as a wrong one.
    authorized = admin::token_matches(token.value_or(std::string_view{}), token_) && token &&
                 !config_.admin.token.empty();
  }
  if (!authorized) {
    Reply reply = json_error(401, "unauthorized");
    reply.extra_headers = "WWW-Authenticate: Bearer\r\n";
    return reply;
  }

  const admin::Route route = admin::parse_route(head.path());
  if (route.kind == admin::Route::kNotFound) return json_error(404, "not found");
  if (route.kind == admin::Route::kDrain || route.kind == admin::Route::kEnable)
    return server_action(route, head.method);
  if (!admin::method_allowed(route.kind, head.method)) {
    Reply reply = json_error(405, "method not allowed");
    reply.extra_headers = "Allow: " + std::string(admin::allowed_methods(route.kind)) + "\r\n";
    return reply;
  }
  const int64_t now = balancer::now_ms();
  if (route.kind == admin::Route::kBackendsText) return {200, kText, admin::render_backends_text(balancer_, now), {}};
  return {200, kJson, admin::render_backends_json(balancer_, now), {}};
}

Reply Admin::server_action(const admin::Route& route, std::string_view method) {
  const int b = config_.backend_index(route.backend);
  if (b < 0) return json_error(404, "unknown backend");
  balancer::BackendState& backend = balancer_.backend(static_cast<size_t>(b));
  // The same address listed twice in a backend is one server to an operator: both change.
  std::vector<size_t> matches;
  for (size_t s = 0; s < backend.size(); ++s)
    if (backend.server(s).config().address.text() == route.server) matches.push_back(s);
  if (matches.empty()) return json_error(404, "unknown server");
  if (!admin::method_allowed(route.kind, method)) {
    Reply reply = json_error(405, "method not allowed");
    reply.extra_headers = "Allow: " + std::string(admin::allowed_methods(route.kind)) + "\r\n";
    return reply;
  }
  const bool drain = route.kind == admin::Route::kDrain;
  for (size_t s : matches) backend.server(s).set_draining(drain);
  const balancer::ServerState& server = backend.server(matches.front());
  const char* state = balancer::mode_name(server.mode(balancer::now_ms(), backend.config().slow_start));
  std::fprintf(stderr, "edge: admin: backend %s server %s %s\n", route.backend.c_str(), route.server.c_str(),
               drain ? "draining" : "enabled");
  std::string body = "{\"backend\":" + admin::json_string(route.backend) +
                     ",\"server\":" + admin::json_string(route.server) + ",\"state\":" + admin::json_string(state) +
                     "}\n";
  return {200, kJson, std::move(body), {}};
}

// ---- Conn ----

void Conn::start(uv_stream_t* listener) {
  uv_tcp_init(admin_->loop(), &tcp_);
  tcp_.data = this;
  deadline_.init(admin_->loop(), [](void* owner) { static_cast<Conn*>(owner)->on_timer(); }, this);
  shutdown_req_.data = this;
  open_handles_ = 2;
  if (uv_accept(listener, stream()) != 0) return close_now();
  uv_tcp_nodelay(&tcp_, 1);
  deadline_.set(kHeaderTimeoutMs);  // the first request's clock starts at accept
  set_reading(true);
}

void Conn::close_now() {
  if (closed_) return;
  closed_ = true;
  writer_.abort();  // a write in flight is cancelled by the close; its callback must not reach us
  admin_->unlink(this);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Conn::on_closed);
  uv_close(deadline_.handle(), &Conn::on_closed);
}

void Conn::on_closed(uv_handle_t* handle) {
  auto* c = handle->type == UV_TIMER ? static_cast<Conn*>(static_cast<http::Deadline*>(handle->data)->owner())
                                     : static_cast<Conn*>(handle->data);
  if (--c->open_handles_ == 0) delete c;
}

void Conn::set_reading(bool on) {
  if (on == reading_ || closed_ || eof_) return;
  if (on) {
    if (uv_read_start(stream(), &Conn::on_alloc, &Conn::on_read) != 0) return close_now();
  } else {
    uv_read_stop(stream());
  }
  reading_ = on;
}

void Conn::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  *buf = static_cast<Conn*>(handle->data)->admin_->read_buffer();
}

void Conn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(stream->data);
  if (nread == 0 || c->closed_) return;
  if (nread < 0) {
    uv_read_stop(stream);
    c->reading_ = false;
    c->eof_ = true;
    // A client that half-closed after its request still gets the answer, then the close.
    if (nread == UV_EOF && c->phase_ == Phase::kWriting) {
      c->keep_alive_ = false;
      return;
    }
    return c->close_now();
  }
  if (c->phase_ == Phase::kClosing) return;  // lingering: leftovers are discarded
  c->input_.append(buf->base, static_cast<size_t>(nread));
  c->drive();
}

// Parses and answers what input_ holds, one request at a time. Loops rather than recursing, so
// pipelined requests answered synchronously do not grow the stack: a nested call (from a write
// that completed at once) returns and lets this loop go on.
void Conn::drive() {
  if (driving_ || closed_) return;
  driving_ = true;
  while (!closed_ && (phase_ == Phase::kWaiting || phase_ == Phase::kRequest)) {
    std::string_view data(input_.data() + input_pos_, input_.size() - input_pos_);
    if (data.empty() && !after_head_) break;
    after_head_ = false;
    http::ParseResult r = parser_.feed(data);
    input_pos_ += r.consumed;
    switch (r.event) {
      case http::ParseEvent::kError:
        respond_error(parser_.error_status(), parser_.error_reason());
        break;
      case http::ParseEvent::kHead:
        if (phase_ == Phase::kWaiting) begin_request();
        parser_.set_body_sink(nullptr);  // no admin request needs its body
        if (parser_.head().method == "CONNECT") {
          respond_error(405, "CONNECT is not served here");
          break;
        }
        after_head_ = true;
        break;
      case http::ParseEvent::kMessage:
        if (phase_ == Phase::kWaiting) begin_request();
        respond();
        break;
      case http::ParseEvent::kNeedMore:
        if (phase_ == Phase::kWaiting && parser_.in_message()) begin_request();
        break;
    }
  }
  if (input_pos_ >= input_.size()) {
    input_.clear();
    input_pos_ = 0;
  } else if (input_pos_ > 0 && phase_ != Phase::kClosing) {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
  }
  if (!closed_) {
    if (phase_ == Phase::kWaiting || phase_ == Phase::kRequest)
      set_reading(true);
    else if (phase_ == Phase::kWriting)
      set_reading(false);
  }
  driving_ = false;
}

void Conn::begin_request() {
  phase_ = Phase::kRequest;
  // A fresh connection's clock started at accept; a kept-alive one's starts now.
  if (requests_ > 0) deadline_.set(kHeaderTimeoutMs);
}

void Conn::respond() {
  ++requests_;
  const http::RequestHead& head = parser_.head();
  keep_alive_ = head.keep_alive && !eof_ && !admin_->closing();
  send(admin_->answer(head), head.is_head(), head.version_minor == 0);
}

void Conn::respond_error(int status, std::string_view detail) {
  // The request cannot be trusted, nor what follows it: answer and close.
  keep_alive_ = false;
  after_head_ = false;
  Reply reply{status, kJson,
              "{\"error\":" + admin::json_string(http::reason_phrase(status)) +
                  ",\"detail\":" + admin::json_string(detail) + "}\n",
              {}};
  send(reply, false, false);
}

void Conn::send(const Reply& reply, bool head_request, bool http10) {
  char number[24];
  std::string& out = out_;
  out.clear();
  out.append("HTTP/1.1 ");
  out.append(number, static_cast<size_t>(std::to_chars(number, number + sizeof number, reply.status).ptr - number));
  out.append(" ").append(http::reason_phrase(reply.status)).append("\r\n");
  char date[32];
  size_t date_len = http::format_http_date(static_cast<int64_t>(std::time(nullptr)), date);
  out.append("Date: ").append(date, date_len).append("\r\n");
  out.append("Content-Type: ").append(reply.content_type).append("\r\n");
  out.append("Content-Length: ");
  out.append(number, static_cast<size_t>(std::to_chars(number, number + sizeof number, reply.body.size()).ptr - number));
  out.append("\r\n");
  out.append("Cache-Control: no-store\r\n");
  out.append(reply.extra_headers);
  if (!keep_alive_)
    out.append("Connection: close\r\n");
  else if (http10)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head_request) out.append(reply.body);

  phase_ = Phase::kWriting;
  set_reading(false);
  deadline_.set(kSendTimeoutMs);
  writer_.start(stream(), &out_, nullptr, false);  // may call on_write_done at once
}

void Conn::on_write_done(int status) {
  if (closed_) return;
  if (status < 0) return close_now();
  out_.clear();
  if (!keep_alive_) return linger();
  phase_ = Phase::kWaiting;
  deadline_.set(kIdleTimeoutMs);
  drive();  // pipelined requests, then reading again; from inside drive(), its loop goes on
}

void Conn::linger() {
  // Closing at once could reset the connection under the response just written if the client
  // is still sending: half-close, drain its leftovers for a moment, then close.
  phase_ = Phase::kClosing;
  input_.clear();
  input_pos_ = 0;
  if (eof_) return close_now();
  deadline_.set(kLingerMs);
  if (uv_shutdown(&shutdown_req_, stream(), &Conn::on_shutdown) != 0) return close_now();
  set_reading(true);
}

void Conn::on_shutdown(uv_shutdown_t*, int) {}

void Conn::on_timer() {
  switch (phase_) {
    case Phase::kWaiting:  // nothing of a request: nobody to answer
    case Phase::kWriting:  // the client does not read its answer
    case Phase::kClosing:  // the client never closed its side
      return close_now();
    case Phase::kRequest:
      return respond_error(408, "the request did not arrive in time");
  }
}

}  // namespace

// ---- AdminServer ----

struct AdminServer::Impl : Admin {
  using Admin::Admin;
};

AdminServer::AdminServer(uv_loop_t* loop, const conf::Config& config, balancer::Balancer& balancer)
    : impl_(new Impl(loop, config, balancer)) {}

AdminServer::~AdminServer() { delete impl_; }

bool AdminServer::open(std::string& error) { return impl_->open(error); }

void AdminServer::close() { impl_->close(); }

}  // namespace edge::proxy
