#include "app/admin_client.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "http/body.h"
#include "http/log_text.h"
#include "http/parser.h"

namespace edge::app {

namespace {

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string host_port_text(const HostPort& admin) {
  const bool v6 = admin.host.find(':') != std::string::npos;
  return (v6 ? "[" + admin.host + "]" : admin.host) + ":" + std::to_string(admin.port);
}

}  // namespace

std::string purge_request(std::string_view tag, const HostPort& admin, std::string_view token) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "POST /purge?tag=";
  for (char c : tag) {
    if (unreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    }
  }
  out += " HTTP/1.1\r\nHost: " + host_port_text(admin) + "\r\nAuthorization: Bearer ";
  out.append(token);
  out += "\r\nContent-Length: 0\r\nConnection: close\r\nUser-Agent: edge-app\r\n\r\n";
  return out;
}

std::optional<std::string> read_token_file(const std::string& path, std::string& error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream content;
  content << file.rdbuf();
  const std::string text = content.str();
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t first = text.find_first_not_of(kSpace);
  if (first == std::string::npos) {
    error = path + " holds no token";
    return std::nullopt;
  }
  std::string token = text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  for (char c : token) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      error = path + ": the token has control characters";
      return std::nullopt;
    }
  }
  return token;
}

// One purge: connect, write, read the answer, close. Callbacks that arrive after the exchange
// has finished (a cancelled connect or write reports UV_ECANCELED once the handle closes) find
// finished_ set and do nothing.
class AdminClient::Exchange {
 public:
  Exchange(AdminClient* owner, uint64_t ticket, std::string_view tag, Done done)
      : owner_(owner), ticket_(ticket), tag_(tag), done_(std::move(done)) {
    uv_tcp_init(owner->loop_, &tcp_);
    uv_timer_init(owner->loop_, &timer_);
    tcp_.data = timer_.data = connect_req_.data = write_req_.data = this;
    open_handles_ = 2;
    parser_.set_body_sink(&body_);
    parser_.expect_response(false);
  }

  void start() {
    request_ = purge_request(tag_, owner_->admin_, owner_->token_);
    uv_timer_start(&timer_, &Exchange::on_timer, owner_->timeout_ms_, 0);
    int rc = owner_->address_ok_ ? uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&owner_->address_),
                                                  &Exchange::on_connect)
                                 : UV_EINVAL;
    if (rc < 0) fail_later(std::string("connect: ") + uv_strerror(rc));
  }

  // Forgets the caller: done will not be called.
  void abandon() { done_ = nullptr; }

  // Ends the exchange without a word (the client is stopping).
  void discard() {
    done_ = nullptr;
    finish(true, {});
  }

  uint64_t ticket() const { return ticket_; }
  Exchange* prev = nullptr;
  Exchange* next = nullptr;

 private:
  static void on_connect(uv_connect_t* req, int status) {
    auto* ex = static_cast<Exchange*>(req->data);
    if (ex->finished_) return;
    if (status < 0) return ex->finish(false, std::string("connect: ") + uv_strerror(status));
    uv_buf_t buf = uv_buf_init(ex->request_.data(), static_cast<unsigned>(ex->request_.size()));
    if (int rc = uv_write(&ex->write_req_, reinterpret_cast<uv_stream_t*>(&ex->tcp_), &buf, 1, &Exchange::on_write); rc < 0)
      return ex->finish(false, std::string("write: ") + uv_strerror(rc));
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&ex->tcp_), &Exchange::on_alloc, &Exchange::on_read); rc < 0)
      return ex->finish(false, std::string("read: ") + uv_strerror(rc));
  }

  static void on_write(uv_write_t* req, int status) {
    auto* ex = static_cast<Exchange*>(req->data);
    if (ex->finished_ || status >= 0) return;
    ex->finish(false, std::string("write: ") + uv_strerror(status));
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* ex = static_cast<Exchange*>(handle->data);
    *buf = uv_buf_init(ex->buffer_, sizeof ex->buffer_);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* ex = static_cast<Exchange*>(stream->data);
    if (ex->finished_ || nread == 0) return;
    if (nread == UV_EOF) {
      if (ex->parser_.finish() == http::ParseEvent::kMessage) return ex->answered();
      return ex->finish(false, std::string("the connection closed before the answer was complete (") +
                                   ex->parser_.error_reason() + ")");
    }
    if (nread < 0) return ex->finish(false, std::string("read: ") + uv_strerror(static_cast<int>(nread)));
    std::string_view data(buf->base, static_cast<size_t>(nread));
    bool again = false;
    while (!data.empty() || again) {
      http::ParseResult r = ex->parser_.feed(data);
      data.remove_prefix(r.consumed);
      again = r.event == http::ParseEvent::kHead;
      if (r.event == http::ParseEvent::kMessage) return ex->answered();
      if (r.event == http::ParseEvent::kError)
        return ex->finish(false, std::string("bad answer: ") + ex->parser_.error_reason());
      if (ex->parser_.body_bytes() > kMaxAnswerBytes) return ex->finish(false, "the answer is too large");
      if (r.event == http::ParseEvent::kNeedMore && r.consumed == 0) break;
    }
  }

  static void on_timer(uv_timer_t* timer) {
    auto* ex = static_cast<Exchange*>(timer->data);
    if (ex->finished_) return;
    if (!ex->pending_failure_.empty()) return ex->finish(false, ex->pending_failure_);
    ex->finish(false, "no answer within " + std::to_string(ex->owner_->timeout_ms_) + " ms");
  }

  static void on_closed(uv_handle_t* handle) {
    auto* ex = static_cast<Exchange*>(handle->data);
    if (--ex->open_handles_ == 0) delete ex;
  }

  // done must come later than purge_tag(), so a failure found at once waits for the next turn.
  void fail_later(std::string why) {
    pending_failure_ = std::move(why);
    uv_timer_start(&timer_, &Exchange::on_timer, 0, 0);
  }

  void answered() {
    const int status = parser_.head().status;
    if (status >= 200 && status < 300) return finish(true, {});
    std::string body = body_.to_string();
    body = body.substr(0, body.find('\n'));
    if (body.size() > 200) body.resize(200);
    finish(false, "status " + std::to_string(status) + (body.empty() ? "" : ": " + body));
  }

  // Closes the handles (the exchange frees itself once both are closed), then tells the caller.
  void finish(bool ok, const std::string& why) {
    finished_ = true;
    AdminClient* owner = owner_;
    owner->unlink(this);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Exchange::on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Exchange::on_closed);
    if (!ok)
      std::fprintf(stderr, "edge-app: purge of tag %s at %s failed: %s\n", http::escape_for_log(tag_).c_str(),
                   host_port_text(owner->admin_).c_str(), http::escape_for_log(why).c_str());
    Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(ok);
  }

  AdminClient* owner_;
  uint64_t ticket_;
  std::string tag_;
  Done done_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_connect_t connect_req_;
  uv_write_t write_req_;
  int open_handles_ = 0;
  bool finished_ = false;
  std::string request_;  // borrowed by the write until on_write (or the close that cancels it)
  std::string pending_failure_;
  http::ResponseParser parser_;
  http::Body body_;
  char buffer_[4096];
};

AdminClient::AdminClient(uv_loop_t* loop, HostPort admin, std::string token, uint64_t timeout_ms)
    : loop_(loop), admin_(std::move(admin)), token_(std::move(token)), timeout_ms_(timeout_ms) {
  address_ok_ = uv_ip4_addr(admin_.host.c_str(), admin_.port, reinterpret_cast<sockaddr_in*>(&address_)) == 0 ||
                uv_ip6_addr(admin_.host.c_str(), admin_.port, reinterpret_cast<sockaddr_in6*>(&address_)) == 0;
}

AdminClient::~AdminClient() = default;

uint64_t AdminClient::purge_tag(std::string_view tag, Done done) {
  if (stopped_) return 0;
  auto* ex = new Exchange(this, ++next_ticket_, tag, std::move(done));
  ex->next = exchanges_;
  if (exchanges_) exchanges_->prev = ex;
  exchanges_ = ex;
  ++in_flight_;
  ex->start();
  return ex->ticket();
}

void AdminClient::cancel(uint64_t ticket) {
  for (Exchange* ex = exchanges_; ex; ex = ex->next) {
    if (ex->ticket() == ticket) return ex->abandon();
  }
}

void AdminClient::stop() {
  stopped_ = true;
  while (exchanges_) exchanges_->discard();  // discard() unlinks
}

void AdminClient::unlink(Exchange* ex) {
  if (ex->prev) ex->prev->next = ex->next;
  if (ex->next) ex->next->prev = ex->prev;
  if (exchanges_ == ex) exchanges_ = ex->next;
  ex->prev = ex->next = nullptr;
  --in_flight_;
}

}  // namespace edge::app
