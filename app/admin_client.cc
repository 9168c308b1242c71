#include "app/admin_client.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "http/log_text.h"
#include "http/oneshot.h"

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

// One purge in flight: its exchange with the admin port, and who is to be told.
class AdminClient::Exchange {
 public:
  Exchange(AdminClient* owner, uint64_t ticket, std::string_view tag, Done done)
      : owner_(owner), ticket_(ticket), tag_(tag), done_(std::move(done)) {}

  void start() {
    http::OneShot::Options options;
    options.timeout_ms = owner_->timeout_ms_;
    options.max_body_bytes = kMaxAnswerBytes;
    shot_ = http::OneShot::start(owner_->loop_, reinterpret_cast<const sockaddr*>(&owner_->address_),
                                 purge_request(tag_, owner_->admin_, owner_->token_), options,
                                 [this](const http::OneShot::Outcome& outcome) { ended(outcome); });
  }

  // Forgets the caller: done will not be called, but the purge goes on.
  void abandon() { done_ = nullptr; }

  // Ends the purge without a word (the client is stopping).
  void discard() {
    shot_->stop();
    owner_->unlink(this);
    delete this;
  }

  uint64_t ticket() const { return ticket_; }
  Exchange* prev = nullptr;
  Exchange* next = nullptr;

 private:
  // Why the purge failed; empty for a purge.
  std::string describe(const http::OneShot::Outcome& outcome) const {
    using Failure = http::OneShot::Failure;
    switch (outcome.failure) {
      case Failure::kNone: break;
      case Failure::kConnect: return std::string("connect: ") + outcome.detail;
      case Failure::kWrite: return std::string("write: ") + outcome.detail;
      case Failure::kRead: return std::string("read: ") + outcome.detail;
      case Failure::kClosed:
      case Failure::kTruncated:
        return std::string("the connection closed before the answer was complete (") + outcome.detail + ")";
      case Failure::kBadResponse: return std::string("bad answer: ") + outcome.detail;
      case Failure::kTooLarge: return "the answer is too large";
      case Failure::kTimeout: return "no answer within " + std::to_string(owner_->timeout_ms_) + " ms";
    }
    const int status = outcome.parser.head().status;
    if (status >= 200 && status < 300) return {};
    std::string body = outcome.body.to_string();
    body = body.substr(0, body.find('\n'));
    if (body.size() > 200) body.resize(200);
    return "status " + std::to_string(status) + (body.empty() ? "" : ": " + body);
  }

  // Unlinks and frees the exchange first, so that done may purge again, stop or cancel.
  void ended(const http::OneShot::Outcome& outcome) {
    const std::string why = describe(outcome);
    if (!why.empty())
      std::fprintf(stderr, "edge-app: purge of tag %s at %s failed: %s\n", http::escape_for_log(tag_).c_str(),
                   host_port_text(owner_->admin_).c_str(), http::escape_for_log(why).c_str());
    Done done = std::move(done_);
    owner_->unlink(this);
    delete this;
    if (done) done(why.empty());
  }

  AdminClient* owner_;
  uint64_t ticket_;
  std::string tag_;
  Done done_;
  http::OneShot* shot_ = nullptr;  // until it ends or is stopped
};

AdminClient::AdminClient(uv_loop_t* loop, HostPort admin, std::string token, uint64_t timeout_ms)
    : loop_(loop), admin_(std::move(admin)), token_(std::move(token)), timeout_ms_(timeout_ms) {
  const bool parsed = uv_ip4_addr(admin_.host.c_str(), admin_.port, reinterpret_cast<sockaddr_in*>(&address_)) == 0 ||
                      uv_ip6_addr(admin_.host.c_str(), admin_.port, reinterpret_cast<sockaddr_in6*>(&address_)) == 0;
  // A failed parse leaves a family set; no family at all makes every purge fail to connect.
  if (!parsed) address_ = {};
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
