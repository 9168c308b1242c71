#include "load/runner.h"

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>

#include "http/message.h"
#include "http/oneshot.h"
#include "http/parser.h"
#include "http/tcp_transport.h"

namespace edge::load {

namespace {

constexpr size_t kParallelSignIns = 8;

// Each connection draws from a stream of its own, the same for the same seed and index.
uint64_t connection_seed(uint64_t seed, uint32_t index) {
  app::Rng rng{seed ^ ((0xC0FFEEull + index) * 0x9E3779B97F4A7C15ull)};
  return rng.next();
}

std::string describe(const http::OneShot::Outcome& outcome) {
  using Failure = http::OneShot::Failure;
  switch (outcome.failure) {
    case Failure::kNone:
      return "";
    case Failure::kConnect:
      return std::string("cannot connect: ") + outcome.detail;
    case Failure::kTimeout:
      return "no answer within " + std::to_string(kRequestTimeoutMs / 1000) + " s";
    case Failure::kTooLarge:
      return "the answer is too large";
    default:
      return outcome.detail;
  }
}

// The value of the session cookie a response sets, or "" when it sets none.
std::string session_set(const http::Headers& headers) {
  const std::string prefix = "session=";
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Set-Cookie")) continue;
    std::string_view value = headers.value(i);
    if (value.substr(0, prefix.size()) != prefix) continue;
    value.remove_prefix(prefix.size());
    return std::string(http::trim(value.substr(0, value.find(';'))));
  }
  return "";
}

// Logins go a few at a time, each on a connection of its own: they are not what is measured,
// and a login that fails should stop the run before it starts.
class SignInRun {
 public:
  SignInRun(uv_loop_t* loop, const sockaddr* target, std::string_view host, std::span<const uint32_t> users)
      : loop_(loop), target_(target), host_(host), users_(users), out_{std::vector<std::string>(users.size()), ""} {}

  SignIn run() {
    while (in_flight_ < kParallelSignIns && start_next()) {}
    // The loop may hold other handles: run it until every exchange is done (each OneShot then
    // frees itself on the loop's next turns).
    while (in_flight_ > 0) uv_run(loop_, UV_RUN_ONCE);
    if (!out_.error.empty()) out_.tokens.clear();
    return std::move(out_);
  }

 private:
  bool start_next() {
    if (next_ >= users_.size() || !out_.error.empty()) return false;
    const size_t index = next_++;
    const std::string body = "user=" + std::to_string(users_[index]);
    std::string request = http::simple_request(
        "POST", "/login", host_,
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + std::to_string(body.size()) + "\r\n");
    request += body;
    http::OneShot::Options options;
    options.timeout_ms = kRequestTimeoutMs;
    options.max_body_bytes = kMaxResponseBodyBytes;
    ++in_flight_;
    http::OneShot::start(loop_, target_, std::move(request), options,
                         [this, index](const http::OneShot::Outcome& outcome) { done(index, outcome); });
    return true;
  }

  void done(size_t index, const http::OneShot::Outcome& outcome) {
    --in_flight_;
    const std::string who = "signing in user " + std::to_string(users_[index]) + ": ";
    if (outcome.failure != http::OneShot::Failure::kNone) {
      fail(who + describe(outcome));
    } else if (int status = outcome.parser.head().status; status != 303) {
      fail(who + "POST /login was answered " + std::to_string(status) + " (303 expected)");
    } else if (std::string token = session_set(outcome.parser.head().headers); token.empty()) {
      fail(who + "the answer set no session cookie");
    } else {
      out_.tokens[index] = std::move(token);
    }
    start_next();
  }

  void fail(std::string message) {
    if (out_.error.empty()) out_.error = std::move(message);
  }

  uv_loop_t* loop_;
  const sockaddr* target_;
  std::string host_;
  std::span<const uint32_t> users_;
  SignIn out_;
  size_t next_ = 0;
  size_t in_flight_ = 0;
};

class Driver;

class Connection final : http::Transport::Connected,
                         http::Transport::Reader,
                         http::Transport::Closed,
                         http::Output::WriteDone {
 public:
  Connection(Driver& driver, uint32_t index, uint64_t seed);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() { connect(); }
  // No more requests: closes now, or once the request in flight is over.
  void stop();
  // Once down, at the very end.
  void close_timer();

 private:
  enum class State { kDown, kBackoff, kConnecting, kReady, kInFlight, kClosing };
  enum class Then { kReconnect, kBackoff };

  void connect();
  void send_next();
  void answered(bool reusable);
  void fail(ErrorKind kind);
  void close(Then then);
  void arm_timer(uint64_t ms) { uv_timer_start(&timer_, &Connection::on_timer, ms, 0); }
  void on_connected(int status) override;
  void on_data(const char* data, size_t len) override;
  void on_end(int status) override;
  void on_closed() override;
  void on_written(int status) override;
  static void on_timer(uv_timer_t* timer) noexcept;

  Driver& driver_;
  app::Rng rng_;
  uv_timer_t timer_;  // the connect or request timeout, or the back-off before connecting again
  std::unique_ptr<http::TcpTransport> transport_;
  std::unique_ptr<http::ResponseParser> parser_;  // one per transport: a broken stream breaks it
  PlannedRequest request_;
  std::string bytes_;  // the request's, borrowed by a write until on_written
  uint64_t sent_at_ns_ = 0;
  State state_ = State::kDown;
  Then then_ = Then::kReconnect;
  bool write_pending_ = false;
};

class Driver {
 public:
  Driver(uv_loop_t* loop, const RunConfig& config, const Mix& mix, std::span<const std::string> tokens)
      : loop_(loop), config_(config), mix_(mix), tokens_(tokens) {
    results_.connections = config.connections;
    uv_timer_init(loop_, &deadline_);
    uv_timer_init(loop_, &progress_);
    uv_signal_init(loop_, &interrupt_);
    deadline_.data = progress_.data = interrupt_.data = this;
    connections_.reserve(config.connections);
    for (uint32_t i = 0; i < config.connections; ++i)
      connections_.push_back(std::make_unique<Connection>(*this, i, config.seed));
    open_handles_ = 3 + connections_.size();  // the three above and a timer per connection
  }

  Results run() {
    // Building the data and signing in took time the loop did not see.
    uv_update_time(loop_);
    started_ns_ = last_tick_ns_ = uv_hrtime();
    running_ = true;
    uv_timer_start(&deadline_, &Driver::on_deadline, static_cast<uint64_t>(config_.seconds * 1000 + 0.5), 0);
    if (config_.progress != ProgressStyle::kNone) uv_timer_start(&progress_, &Driver::on_progress, 1000, 1000);
    uv_signal_start(&interrupt_, &Driver::on_interrupt, SIGINT);
    for (auto& connection : connections_) connection->start();
    // The loop may hold other handles (a server in a test): run it until ours are gone.
    while (!finished_ || open_handles_ > 0) uv_run(loop_, UV_RUN_ONCE);
    results_.seconds = static_cast<double>(ended_ns_ - started_ns_) / 1e9;
    return results_;
  }

  uv_loop_t* loop() const { return loop_; }
  const sockaddr* target() const { return reinterpret_cast<const sockaddr*>(&config_.target); }
  std::string_view host() const { return config_.host_header; }
  const Mix& mix() const { return mix_; }
  std::span<const std::string> tokens() const { return tokens_; }
  uv_buf_t read_buffer() { return uv_buf_init(read_buffer_, sizeof read_buffer_); }
  bool running() const { return running_; }
  uint64_t request_timeout_ms() const { return config_.request_timeout_ms; }
  void handle_closed() { --open_handles_; }

  void record_answer(RequestKind kind, int status, bool signed_in, uint64_t latency_ns, std::string_view location) {
    results_.record_answer(kind, status, signed_in, latency_ns, location);
  }
  void record_error(ErrorKind kind) { ++results_.errors[static_cast<size_t>(kind)]; }

  // A connection closed for good after the run stopped; the last one ends the run.
  void connection_down() {
    if (++down_ < connections_.size()) return;
    finished_ = true;
    ended_ns_ = uv_hrtime();
    // The line rewritten in place is left as the last word; separate lines need no end.
    if (progress_shown_ && config_.progress == ProgressStyle::kRewritten) std::fputs("\n", stderr);
    for (auto& connection : connections_) connection->close_timer();
    for (auto* handle : {reinterpret_cast<uv_handle_t*>(&deadline_), reinterpret_cast<uv_handle_t*>(&progress_),
                         reinterpret_cast<uv_handle_t*>(&interrupt_)})
      uv_close(handle, [](uv_handle_t* closed) noexcept { static_cast<Driver*>(closed->data)->handle_closed(); });
  }

 private:
  static void on_deadline(uv_timer_t* timer) noexcept { static_cast<Driver*>(timer->data)->stop(); }
  static void on_interrupt(uv_signal_t* signal, int) noexcept { static_cast<Driver*>(signal->data)->stop(); }
  static void on_progress(uv_timer_t* timer) noexcept { static_cast<Driver*>(timer->data)->print_progress(); }

  void stop() {
    if (!running_) return;
    running_ = false;
    uv_timer_stop(&deadline_);
    uv_signal_stop(&interrupt_);
    for (auto& connection : connections_) connection->stop();
  }

  void print_progress() {
    const uint64_t now = uv_hrtime();
    const double interval = static_cast<double>(now - last_tick_ns_) / 1e9;
    const double rate = interval > 0 ? static_cast<double>(results_.requests - last_requests_) / interval : 0;
    last_tick_ns_ = now;
    last_requests_ = results_.requests;
    const std::string line = progress_line(static_cast<double>(now - started_ns_) / 1e9, config_.seconds, rate,
                                           results_.latency.percentile_ns(0.99), results_.error_count());
    if (config_.progress == ProgressStyle::kRewritten) {
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
    progress_shown_ = true;
  }

  uv_loop_t* loop_;
  const RunConfig& config_;
  const Mix& mix_;
  std::span<const std::string> tokens_;
  Results results_;
  uv_timer_t deadline_;
  uv_timer_t progress_;
  uv_signal_t interrupt_;
  std::vector<std::unique_ptr<Connection>> connections_;
  size_t down_ = 0;
  size_t open_handles_ = 0;
  bool running_ = false;
  bool finished_ = false;
  bool progress_shown_ = false;
  uint64_t started_ns_ = 0;
  uint64_t ended_ns_ = 0;
  uint64_t last_tick_ns_ = 0;
  uint64_t last_requests_ = 0;
  // Every delivery is consumed before the next read: one buffer serves every connection.
  char read_buffer_[64 * 1024];
};

Connection::Connection(Driver& driver, uint32_t index, uint64_t seed)
    : driver_(driver), rng_{connection_seed(seed, index)} {
  uv_timer_init(driver_.loop(), &timer_);
  timer_.data = this;
}

void Connection::close_timer() {
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
           [](uv_handle_t* closed) noexcept { static_cast<Connection*>(closed->data)->driver_.handle_closed(); });
}

void Connection::connect() {
  transport_ = std::make_unique<http::TcpTransport>(driver_.loop(), driver_.read_buffer());
  parser_ = std::make_unique<http::ResponseParser>();
  state_ = State::kConnecting;
  arm_timer(driver_.request_timeout_ms());
  if (transport_->connect(driver_.target(), this) < 0) fail(ErrorKind::kConnect);
}

void Connection::on_connected(int status) {
  if (status < 0) return fail(ErrorKind::kConnect);
  if (transport_->read_start(this) < 0) return fail(ErrorKind::kRead);
  uv_timer_stop(&timer_);
  state_ = State::kReady;
  if (!driver_.running()) return close(Then::kReconnect);
  send_next();
}

void Connection::send_next() {
  request_ = driver_.mix().next(rng_, driver_.tokens().size());
  const std::string_view token = request_.session ? std::string_view(driver_.tokens()[*request_.session]) : "";
  bytes_ = request_bytes(request_, driver_.host(), token);
  parser_->expect_response(false);
  state_ = State::kInFlight;
  arm_timer(driver_.request_timeout_ms());
  sent_at_ns_ = uv_hrtime();
  uv_buf_t buffer = uv_buf_init(bytes_.data(), static_cast<unsigned>(bytes_.size()));
  const int written = transport_->write(&buffer, 1, this);
  if (written < 0) return fail(ErrorKind::kWrite);
  write_pending_ = static_cast<size_t>(written) < bytes_.size();
}

void Connection::on_written(int status) {
  write_pending_ = false;
  // A write cancelled by our own close is not the server's doing.
  if (status < 0 && state_ == State::kInFlight) fail(ErrorKind::kWrite);
}

void Connection::on_data(const char* data, size_t len) {
  if (state_ == State::kClosing) return;
  // Bytes nobody asked for: the stream can no longer be trusted to line up with requests.
  if (state_ != State::kInFlight) return close(Then::kReconnect);
  std::string_view rest(data, len);
  bool again = false;
  while (!rest.empty() || again) {
    const http::ParseResult r = parser_->feed(rest);
    rest.remove_prefix(r.consumed);
    again = r.event == http::ParseEvent::kHead;
    if (r.event == http::ParseEvent::kError) return fail(ErrorKind::kBadResponse);
    if (parser_->body_bytes() > kMaxResponseBodyBytes) return fail(ErrorKind::kTooLarge);
    if (r.event == http::ParseEvent::kHead && parser_->head().content_length.value_or(0) > kMaxResponseBodyBytes)
      return fail(ErrorKind::kTooLarge);
    if (r.event == http::ParseEvent::kMessage) return answered(rest.empty());
    if (r.event == http::ParseEvent::kNeedMore && r.consumed == 0) break;
  }
}

void Connection::on_end(int status) {
  if (state_ == State::kInFlight) {
    // An answer delimited by the close is complete now; anything else in flight is lost.
    if (status == UV_EOF && parser_->finish() == http::ParseEvent::kMessage) return answered(false);
    return fail(status == UV_EOF ? ErrorKind::kClosed : ErrorKind::kRead);
  }
  if (state_ == State::kReady) close(Then::kReconnect);
}

void Connection::answered(bool reusable) {
  const uint64_t latency = uv_hrtime() - sent_at_ns_;
  uv_timer_stop(&timer_);
  const http::ResponseHead& head = parser_->head();
  const bool post = request_.kind == RequestKind::kPost;
  const std::string_view location = post ? head.headers.get("Location").value_or("") : "";
  driver_.record_answer(request_.kind, head.status, request_.session.has_value(), latency, location);
  state_ = State::kReady;
  // An answer that came before the whole request was written leaves the stream in doubt.
  if (!driver_.running() || !reusable || write_pending_ || !head.keep_alive) return close(Then::kReconnect);
  send_next();
}

void Connection::fail(ErrorKind kind) {
  driver_.record_error(kind);
  close(kind == ErrorKind::kConnect ? Then::kBackoff : Then::kReconnect);
}

void Connection::close(Then then) {
  uv_timer_stop(&timer_);
  state_ = State::kClosing;
  then_ = then;
  transport_->close(this);
}

void Connection::on_closed() {
  transport_.reset();
  parser_.reset();
  write_pending_ = false;
  if (!driver_.running()) {
    state_ = State::kDown;
    return driver_.connection_down();
  }
  if (then_ == Then::kReconnect) return connect();
  state_ = State::kBackoff;
  arm_timer(kConnectBackoffMs);
}

void Connection::stop() {
  switch (state_) {
    case State::kBackoff:
      uv_timer_stop(&timer_);
      state_ = State::kDown;
      return driver_.connection_down();
    case State::kConnecting:
    case State::kReady:
      return close(Then::kReconnect);
    case State::kDown:
    case State::kInFlight:  // answered() or a failure closes it
    case State::kClosing:   // on_closed() sees the run is over
      return;
  }
}

void Connection::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Connection*>(timer->data);
  switch (self->state_) {
    case State::kBackoff:
      return self->connect();
    case State::kConnecting:
      return self->fail(ErrorKind::kConnect);
    case State::kInFlight:
      return self->fail(ErrorKind::kTimeout);
    default:
      return;
  }
}

}  // namespace

SignIn sign_in(uv_loop_t* loop, const sockaddr* target, std::string_view host_header, std::span<const uint32_t> users) {
  return SignInRun(loop, target, host_header, users).run();
}

Results run_load(uv_loop_t* loop, const RunConfig& config, const Mix& mix, std::span<const std::string> tokens) {
  // The Driver holds the loop's handles and a large read buffer: on the heap, not the stack.
  auto driver = std::make_unique<Driver>(loop, config, mix, tokens);
  return driver->run();
}

std::string progress_line(double elapsed_s, double total_s, double requests_per_second, uint64_t p99_ns,
                          uint64_t errors) {
  char line[160];
  std::snprintf(line, sizeof line, "%5.0f/%g s  %8.0f req/s  p99 %8.2f ms  errors %llu", elapsed_s, total_s,
                requests_per_second, static_cast<double>(p99_ns) / 1e6, static_cast<unsigned long long>(errors));
  return line;
}

}  // namespace edge::load
