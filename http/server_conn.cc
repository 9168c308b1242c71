#include "http/server_conn.h"

#include <algorithm>

namespace edge::http {

namespace {
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace

ServerConn::ServerConn(uv_loop_t* loop, const Settings& settings)
    : loop_(loop), settings_(settings), parser_(settings.limits), writer_(this) {
  deadline_.init(loop, [](void* owner) noexcept { static_cast<ServerConn*>(owner)->on_deadline(); }, this);
  open_handles_ = 1;
}

ServerConn::~ServerConn() = default;

void ServerConn::start(std::unique_ptr<Transport> transport) {
  transport_ = std::move(transport);
  ++open_handles_;
  if (settings_.header_timeout_ms) deadline_.set(settings_.header_timeout_ms);
  set_reading(true);
}

void ServerConn::close(Close why) {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  // The write in flight is cancelled by the transport's close; its completion must not reach us.
  writer_.abort();
  deadline_.clear();
  on_close(refused_ ? reason_ : why);
  if (transport_) transport_->close(this);
  deadline_.close(&ServerConn::on_deadline_closed);
}

void ServerConn::on_closed() { release_one(); }

void ServerConn::on_deadline_closed(void* self) noexcept { static_cast<ServerConn*>(self)->release_one(); }

void ServerConn::release_one() {
  if (--open_handles_ == 0) delete this;
}

void ServerConn::set_reading(bool on) {
  if (on == reading_ || closed() || peer_ended_ || !transport_) return;
  if (on) {
    if (transport_->read_start(this) < 0) return close(Close::kPeerClosed);
  } else {
    transport_->read_stop();
  }
  reading_ = on;
}

// ---- input ----

void ServerConn::on_data(const char* data, size_t len) {
  bytes_read_ += len;
  switch (phase_) {
    case Phase::kClosed:
    case Phase::kClosing:
      return;  // lingering: the peer's leftovers are discarded
    case Phase::kHandling:
      pending_.append(data, len);
      if (pending_.size() > settings_.max_pending) set_reading(false);
      return;
    case Phase::kTaken:
      return on_taken_data({data, len});
    default:
      if (sniffing_) return sniff_then_process(data, len);
      return process({data, len});
  }
}

void ServerConn::sniff_then_process(const char* data, size_t len) {
  std::string_view seen(data, len);
  if (!pending_.empty()) {
    pending_.append(data, len);
    seen = pending_;
  }
  switch (sniff(seen)) {
    case Sniff::kMore:
      if (pending_.empty()) pending_.assign(data, len);
      if (pending_.size() > settings_.max_pending) close(Close::kBadRequest);
      return;
    case Sniff::kTake: {
      phase_ = Phase::kTaken;
      sniffing_ = false;
      deadline_.clear();
      std::string taken = std::move(pending_);
      pending_.clear();
      on_taken_data(taken.empty() ? std::string_view(data, len) : std::string_view(taken));
      return;
    }
    case Sniff::kHttp1:
      break;
  }
  sniffing_ = false;
  if (pending_.empty()) return process(seen);
  std::string input = std::move(pending_);
  pending_.clear();
  process(input);
}

void ServerConn::on_end(int status) {
  reading_ = false;
  peer_ended_ = true;
  switch (phase_) {
    case Phase::kClosed:
      return;
    case Phase::kTaken:
      return on_taken_end(status);
    case Phase::kHandling:
      // Nothing more can be read: this response is the last. Whether a peer that left before
      // its answer started still gets it is the handler's call.
      keep_alive_ = false;
      if (!responding_) on_peer_end(status);
      return;
    case Phase::kClosing:
      return close(Close::kKeepAliveDone);
    default:
      return close(Close::kPeerClosed);
  }
}

// A request answered at once (a pipelined one, or one whose write completed inside respond())
// ends its exchange inside parse(); the next requests are then parsed by this loop, not by a
// nested call, so a long burst does not grow the stack.
void ServerConn::process(std::string_view data) {
  in_process_ = true;
  parse(data);
  while (process_again_ && phase_ == Phase::kWaiting) {
    process_again_ = false;
    std::string input = std::move(pending_);
    pending_.clear();
    parse(input);
  }
  process_again_ = false;
  in_process_ = false;
}

void ServerConn::parse(std::string_view data) {
  // After a head the parser is fed again even with no bytes left: a body-less request is
  // complete right at its head.
  bool after_head = false;
  while ((!data.empty() || after_head) && !closed()) {
    after_head = false;
    if (phase_ == Phase::kHandling || phase_ == Phase::kClosing) return;  // answered at its head
    ParseResult r = parser_.feed(data);
    data.remove_prefix(r.consumed);
    switch (r.event) {
      case ParseEvent::kError:
        return refuse(parser_.error_status(), Close::kBadRequest);
      case ParseEvent::kHead: {
        phase_ = Phase::kBody;
        head_ended_at_ = deadline_.now();
        Body* sink = on_head(parser_.head());
        if (phase_ != Phase::kBody) return;  // answered or closed at the head
        parser_.set_body_sink(sink);
        if (settings_.body_timeout_ms)
          deadline_.set(settings_.body_timeout_ms);
        else
          deadline_.clear();
        after_head = true;
        break;
      }
      case ParseEvent::kMessage:
        pending_.append(data);
        if (pending_.size() > settings_.max_pending) set_reading(false);
        phase_ = Phase::kHandling;
        deadline_.clear();
        ++requests_;
        responding_ = false;
        keep_alive_ = !peer_ended_;
        on_request(parser_.head());
        return;
      case ParseEvent::kNeedMore:
        break;
    }
  }
  if (closed()) return;
  if (phase_ == Phase::kWaiting && parser_.in_message()) {
    phase_ = Phase::kHead;
    // A fresh connection's clock started at accept; a kept-alive one's starts now.
    if (requests_ > 0 && settings_.header_timeout_ms) deadline_.set(settings_.header_timeout_ms);
  } else if (phase_ == Phase::kBody) {
    on_body_read();
    if (phase_ == Phase::kBody && settings_.body_timeout_ms) deadline_.set(settings_.body_timeout_ms);
  }
}

void ServerConn::refuse(int status, Close why) {
  refused_ = true;
  reason_ = why;
  parser_.set_body_sink(nullptr);
  on_refuse(status, why);
  if (!closed() && !responding_) close(why);
}

// ---- output ----

void ServerConn::respond(const std::string* head, BodySource* body, bool chunked, bool release, bool keep_alive) {
  if (closed()) return;
  // Answered before the request was complete: its body (or what follows it) cannot be trusted
  // to be read as a next request.
  const bool early = phase_ != Phase::kHandling;
  if (early) {
    parser_.set_body_sink(nullptr);
    phase_ = Phase::kHandling;
  }
  responding_ = true;
  keep_alive_ = keep_alive_ && keep_alive && !early && !refused_;
  if (settings_.send_timeout_ms) {
    progress_mark_ = 0;
    queued_mark_ = 0;
    progress_at_ = deadline_.now();
    deadline_.set(send_check_interval());
  } else {
    deadline_.clear();
  }
  writer_.start(transport_.get(), head, body, chunked, release);
}

void ServerConn::respond_more(const std::string* head, BodySource* body, bool chunked, bool release) {
  if (closed()) return;
  writer_.start(transport_.get(), head, body, chunked, release);
}

void ServerConn::send_continue() {
  if (closed() || !transport_) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kContinue), sizeof kContinue - 1);
  transport_->write(&buf, 1, nullptr);  // a failing socket shows at the next read or write
}

void ServerConn::send_interim(std::string head) {
  if (closed() || !transport_ || responding_) return;
  interim_heads_.push_back(std::move(head));
  const std::string& kept = interim_heads_.back();
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kept.data()), static_cast<unsigned>(kept.size()));
  transport_->write(&buf, 1, nullptr);  // a failing socket shows at the next read or write
}

void ServerConn::on_write_done(int status) {
  if (closed()) return;
  if (status < 0) return close(Close::kWriteError);
  // The next part, handed over from on_response_written(), may be written at once: that
  // completion comes back here and is taken by this loop.
  if (in_written_) {
    written_again_ = true;
    return;
  }
  in_written_ = true;
  do {
    written_again_ = false;
    on_response_written();
  } while (written_again_ && !closed());
  in_written_ = false;
  if (closed() || writer_.active()) return;
  end_exchange();
}

void ServerConn::end_exchange() {
  responding_ = false;
  interim_heads_.clear();  // written: the response that followed them is
  if (take_after_response_ && !refused_ && !peer_ended_) {
    phase_ = Phase::kTaken;
    deadline_.clear();
    set_reading(true);
    std::string taken = std::move(pending_);
    pending_.clear();
    on_taken();
    if (!taken.empty() && phase_ == Phase::kTaken) on_taken_data(taken);  // not if it ended at once
    return;
  }
  if (!keep_alive_ || refused_ || peer_ended_) return linger();
  phase_ = Phase::kWaiting;
  if (settings_.idle_timeout_ms)
    deadline_.set(settings_.idle_timeout_ms);
  else
    deadline_.clear();
  set_reading(true);
  if (pending_.empty() || closed()) return;
  if (in_process_) {
    process_again_ = true;
    return;
  }
  std::string input = std::move(pending_);
  pending_.clear();
  process(input);
}

void ServerConn::linger() {
  // Closing at once could reset the connection under the response just written if the peer is
  // still sending: half-close, drain its leftovers for a moment, then close.
  phase_ = Phase::kClosing;
  pending_.clear();
  if (peer_ended_) return close(Close::kKeepAliveDone);
  if (transport_->shutdown() != 0) return close(Close::kKeepAliveDone);
  deadline_.set(settings_.linger_ms);
  set_reading(true);
}

// ---- time ----

void ServerConn::on_deadline() {
  switch (phase_) {
    case Phase::kWaiting:
      // Nothing of a request has arrived: there is nobody to answer.
      return close(requests_ == 0 ? Close::kHeaderTimeout : Close::kIdleTimeout);
    case Phase::kHead:
      return refuse(408, Close::kHeaderTimeout);
    case Phase::kBody:
      return refuse(408, Close::kBodyTimeout);
    case Phase::kHandling:
      if (!responding_) return on_timer();
      if (writer_.active()) check_send_progress();
      return;
    case Phase::kClosing:
      return close(Close::kKeepAliveDone);
    case Phase::kTaken:
      return on_timer();
    case Phase::kClosed:
      return;
  }
}

// send_timeout is checked every quarter of itself, so a peer is closed between send_timeout and
// 1.25 times it after the last progress seen, not up to twice it after.
uint64_t ServerConn::send_check_interval() const { return std::max<uint64_t>(1, settings_.send_timeout_ms / 4); }

void ServerConn::check_send_progress() {
  // send_timeout bounds how long a peer may leave us unable to write, not the whole download:
  // progress (a write completed, or the transport's queue shrank) resets the clock, and
  // waiting for the body to grow is not the peer's doing.
  const uint64_t now = deadline_.now();
  const size_t queued = transport_->queued_bytes();
  if (!writer_.write_in_flight() || writer_.bytes_written() != progress_mark_ || queued != queued_mark_) {
    progress_mark_ = writer_.bytes_written();
    queued_mark_ = queued;
    progress_at_ = now;
  } else if (now - progress_at_ >= settings_.send_timeout_ms) {
    return close(Close::kSendTimeout);
  }
  deadline_.set(send_check_interval());
}

}  // namespace edge::http
