#include "proxy/peers.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "http/body.h"
#include "http/parser.h"

namespace edge::proxy {

namespace {

constexpr uint64_t kMaxAnswerBytes = 64 * 1024;
constexpr size_t kMaxBodyInFailure = 200;

class Batch;

// The batches in flight, not yet closing: an intrusive list the notifier keeps for stop().
struct BatchList {
  Batch* head = nullptr;
  void link(Batch* batch);
  void unlink(Batch* batch);
};

// One request to one peer: connect, write, read the answer, close. Callbacks that arrive after
// the request has finished (a connect or write cancelled by the close reports UV_ECANCELED
// before the close callback) find finished_ set and do nothing. Once finished, the request no
// longer refers to its batch; it frees itself when its handle is closed.
class PeerRequest {
 public:
  PeerRequest(uv_loop_t* loop, Batch* batch, size_t index, const conf::Peer& peer, std::string_view target)
      : batch_(batch), index_(index), peer_(peer) {
    uv_tcp_init(loop, &tcp_);
    tcp_.data = connect_req_.data = write_req_.data = this;
    message_ = "POST ";
    message_.append(target);
    message_ += " HTTP/1.1\r\nHost: " + peer.address.text() + "\r\nAuthorization: Bearer " + peer.token +
                "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    parser_.set_body_sink(&body_);
    parser_.expect_response(false);
  }

  // May finish at once (and report to the batch) when the connect cannot even start.
  void start() {
    const sockaddr_storage address = peer_.address.to_sockaddr();
    const auto* to = reinterpret_cast<const sockaddr*>(&address);
    if (int rc = uv_tcp_connect(&connect_req_, &tcp_, to, &PeerRequest::on_connect); rc < 0)
      fail(std::string("connect: ") + uv_strerror(rc));
  }

  void fail(const std::string& why) { finish(peer_.address.text() + ": " + why); }

  // Ends the request without reporting it (the notifier is stopping).
  void discard() {
    batch_ = nullptr;
    finish(std::nullopt);
  }

 private:
  static void on_connect(uv_connect_t* req, int status) {
    auto* request = static_cast<PeerRequest*>(req->data);
    if (request->finished_) return;
    if (status < 0) return request->fail(std::string("connect: ") + uv_strerror(status));
    auto* stream = reinterpret_cast<uv_stream_t*>(&request->tcp_);
    uv_buf_t buf = uv_buf_init(request->message_.data(), static_cast<unsigned>(request->message_.size()));
    if (int rc = uv_write(&request->write_req_, stream, &buf, 1, &PeerRequest::on_write); rc < 0)
      return request->fail(std::string("write: ") + uv_strerror(rc));
    if (int rc = uv_read_start(stream, &PeerRequest::on_alloc, &PeerRequest::on_read); rc < 0)
      return request->fail(std::string("read: ") + uv_strerror(rc));
  }

  static void on_write(uv_write_t* req, int status) {
    auto* request = static_cast<PeerRequest*>(req->data);
    if (request->finished_ || status >= 0) return;
    request->fail(std::string("write: ") + uv_strerror(status));
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* request = static_cast<PeerRequest*>(handle->data);
    *buf = uv_buf_init(request->buffer_, sizeof request->buffer_);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* request = static_cast<PeerRequest*>(stream->data);
    if (request->finished_ || nread == 0) return;
    if (nread == UV_EOF) {
      if (request->parser_.finish() == http::ParseEvent::kMessage) return request->answered();
      if (!request->parser_.started()) return request->fail("the connection closed without an answer");
      return request->fail(std::string("the connection closed before the answer was complete (") +
                           request->parser_.error_reason() + ")");
    }
    if (nread < 0) return request->fail(std::string("read: ") + uv_strerror(static_cast<int>(nread)));
    std::string_view data(buf->base, static_cast<size_t>(nread));
    bool again = false;
    while (!data.empty() || again) {
      http::ParseResult r = request->parser_.feed(data);
      data.remove_prefix(r.consumed);
      again = r.event == http::ParseEvent::kHead;
      request->answer_bytes_ += r.consumed;
      if (r.event == http::ParseEvent::kError)
        return request->fail(std::string("bad answer: ") + request->parser_.error_reason());
      if (request->answer_bytes_ > kMaxAnswerBytes) return request->fail("the answer is over 64 KiB");
      if (r.event == http::ParseEvent::kMessage) return request->answered();
      if (r.event == http::ParseEvent::kNeedMore && r.consumed == 0) break;
    }
  }

  static void on_closed(uv_handle_t* handle) { delete static_cast<PeerRequest*>(handle->data); }

  void answered() {
    const int status = parser_.head().status;
    if (status >= 200 && status < 300) return finish(std::string());
    std::string body = body_.to_string();
    if (body.size() > kMaxBodyInFailure) body.resize(kMaxBodyInFailure);
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) body.pop_back();
    fail("status " + std::to_string(status) + (body.empty() ? "" : ": " + body));
  }

  // `failure`: empty for a success, nullopt when nobody is to be told.
  void finish(std::optional<std::string> failure);

  Batch* batch_;
  size_t index_;
  const conf::Peer& peer_;
  uv_tcp_t tcp_;
  uv_connect_t connect_req_;
  uv_write_t write_req_;
  bool finished_ = false;
  std::string message_;  // borrowed by the write until on_write (or the close that cancels it)
  http::ResponseParser parser_;
  http::Body body_;
  uint64_t answer_bytes_ = 0;
  char buffer_[4096];
};

// One notify(): a request per peer and a timer, which is the deadline for them all and also
// defers done to the loop when every request ended inside notify(). The batch frees itself when
// its timer is closed, which happens only once no request refers to it any more.
class Batch {
 public:
  Batch(BatchList* list, uv_loop_t* loop, const conf::Cluster& cluster, std::string_view target,
        PeerNotifier::Done done)
      : list_(list), cluster_(cluster), done_(std::move(done)), failures_(cluster.peers.size()) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    requests_.reserve(cluster.peers.size());
    for (size_t i = 0; i < cluster.peers.size(); ++i)
      requests_.push_back(new PeerRequest(loop, this, i, cluster.peers[i], target));
  }

  void start() {
    starting_ = true;
    remaining_ = requests_.size();
    uv_timer_start(&timer_, &Batch::on_timer, static_cast<uint64_t>(cluster_.timeout.count()), 0);
    // A copy: a request that fails at once clears its slot.
    const std::vector<PeerRequest*> requests = requests_;
    for (PeerRequest* request : requests) request->start();
    starting_ = false;
    if (remaining_ == 0) uv_timer_start(&timer_, &Batch::on_timer, 0, 0);
  }

  // Called once per request, as it finishes; `failure` is empty for a success.
  void ended(size_t index, std::string failure) {
    requests_[index] = nullptr;
    if (failure.empty())
      ++ok_;
    else
      failures_[index] = std::move(failure);
    if (--remaining_ == 0 && !starting_) complete();
  }

  // Ends every request and the timer without a word (the notifier is stopping; the list has
  // already forgotten this batch).
  void discard() {
    done_ = nullptr;
    for (PeerRequest*& slot : requests_) {
      if (PeerRequest* request = std::exchange(slot, nullptr)) request->discard();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Batch::on_closed);
  }

  Batch* prev = nullptr;
  Batch* next = nullptr;

 private:
  static void on_timer(uv_timer_t* timer) {
    auto* batch = static_cast<Batch*>(timer->data);
    if (batch->remaining_ == 0) return batch->complete();
    const std::string why = "no answer within " + std::to_string(batch->cluster_.timeout.count()) + " ms";
    // The last of these completes the batch; every slot is empty by then, so the loop ends.
    for (PeerRequest* request : batch->requests_) {
      if (request) request->fail(why);
    }
  }

  static void on_closed(uv_handle_t* handle) { delete static_cast<Batch*>(handle->data); }

  // Unlinks and closes first, so that done may notify again, stop, or destroy the notifier.
  void complete() {
    list_->unlink(this);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Batch::on_closed);
    PeerNotifier::Result result;
    result.ok = ok_;
    for (std::string& failure : failures_) {
      if (!failure.empty()) result.failures.push_back(std::move(failure));
    }
    PeerNotifier::Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(result));
  }

  BatchList* list_;
  const conf::Cluster& cluster_;
  PeerNotifier::Done done_;
  uv_timer_t timer_;
  std::vector<PeerRequest*> requests_;  // null once finished
  std::vector<std::string> failures_;   // by peer; empty for those that succeeded
  size_t ok_ = 0;
  size_t remaining_ = 0;
  bool starting_ = false;
};

void BatchList::link(Batch* batch) {
  batch->next = head;
  if (head) head->prev = batch;
  head = batch;
}

void BatchList::unlink(Batch* batch) {
  if (batch->prev) batch->prev->next = batch->next;
  if (batch->next) batch->next->prev = batch->prev;
  if (head == batch) head = batch->next;
  batch->prev = batch->next = nullptr;
}

void PeerRequest::finish(std::optional<std::string> failure) {
  finished_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &PeerRequest::on_closed);
  if (Batch* batch = std::exchange(batch_, nullptr); batch && failure) batch->ended(index_, std::move(*failure));
}

}  // namespace

struct PeerNotifier::Impl {
  uv_loop_t* loop;
  const conf::Cluster& cluster;
  bool stopped = false;
  BatchList batches;
};

PeerNotifier::PeerNotifier(uv_loop_t* loop, const conf::Cluster& cluster) : impl_(new Impl{loop, cluster}) {}

// After the loop has ended nothing is in flight and this only frees memory; otherwise stop()
// leaves every batch to its close callbacks, so that none refers to the Impl freed here.
PeerNotifier::~PeerNotifier() { stop(); }

void PeerNotifier::notify(std::string target, Done done) {
  if (impl_->stopped) return;
  auto* batch = new Batch(&impl_->batches, impl_->loop, impl_->cluster, target, std::move(done));
  impl_->batches.link(batch);
  batch->start();
}

void PeerNotifier::stop() {
  impl_->stopped = true;
  while (Batch* batch = impl_->batches.head) {
    impl_->batches.unlink(batch);
    batch->discard();
  }
}

size_t PeerNotifier::peers() const { return impl_->cluster.peers.size(); }

}  // namespace edge::proxy
