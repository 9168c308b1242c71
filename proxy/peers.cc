#include "proxy/peers.h"

#include <cstdint>
#include <string_view>
#include <utility>

#include "http/oneshot.h"

namespace edge::proxy {

namespace {

constexpr uint64_t kMaxAnswerBytes = 64 * 1024;
constexpr size_t kMaxBodyInFailure = 200;

// Why one peer failed, without its address; empty for a success.
std::string describe(const http::OneShot::Outcome& outcome, const conf::Cluster& cluster) {
  using Failure = http::OneShot::Failure;
  switch (outcome.failure) {
    case Failure::kNone: break;
    case Failure::kConnect: return std::string("connect: ") + outcome.detail;
    case Failure::kWrite: return std::string("write: ") + outcome.detail;
    case Failure::kRead: return std::string("read: ") + outcome.detail;
    case Failure::kClosed: return "the connection closed without an answer";
    case Failure::kTruncated:
      return std::string("the connection closed before the answer was complete (") + outcome.detail + ")";
    case Failure::kBadResponse: return std::string("bad answer: ") + outcome.detail;
    case Failure::kTooLarge: return "the answer is over 64 KiB";
    case Failure::kTimeout: return "no answer within " + std::to_string(cluster.timeout.count()) + " ms";
  }
  const int status = outcome.parser.head().status;
  if (status >= 200 && status < 300) return {};
  std::string body = outcome.body.to_string();
  if (body.size() > kMaxBodyInFailure) body.resize(kMaxBodyInFailure);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) body.pop_back();
  return "status " + std::to_string(status) + (body.empty() ? "" : ": " + body);
}

class Batch;

// The batches in flight, not yet closing: an intrusive list the notifier keeps for stop().
struct BatchList {
  Batch* head = nullptr;
  void link(Batch* batch);
  void unlink(Batch* batch);
};

// One notify(): an exchange per peer, and a timer that defers done to the loop when there is
// no peer at all. The batch frees itself when its timer is closed, which happens once no
// exchange refers to it any more.
class Batch {
 public:
  Batch(BatchList* list, uv_loop_t* loop, const conf::Cluster& cluster, PeerNotifier::Done done)
      : list_(list), cluster_(cluster), done_(std::move(done)), exchanges_(cluster.peers.size(), nullptr),
        failures_(cluster.peers.size()) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
  }

  void start(std::string_view target) {
    remaining_ = exchanges_.size();
    if (remaining_ == 0) {
      uv_timer_start(&timer_, &Batch::on_timer, 0, 0);
      return;
    }
    http::OneShot::Options options;
    options.timeout_ms = static_cast<uint64_t>(cluster_.timeout.count());
    options.max_body_bytes = kMaxAnswerBytes;
    for (size_t i = 0; i < exchanges_.size(); ++i) {
      const conf::Peer& peer = cluster_.peers[i];
      const sockaddr_storage address = peer.address.to_sockaddr();
      std::string request = http::simple_request(
          "POST", target, peer.address.text(), "Authorization: Bearer " + peer.token + "\r\nContent-Length: 0\r\n");
      auto on_done = [this, i](const http::OneShot::Outcome& outcome) { ended(i, outcome); };
      exchanges_[i] = http::OneShot::start(timer_.loop, reinterpret_cast<const sockaddr*>(&address), std::move(request),
                                           options, std::move(on_done));
    }
  }

  // Ends every exchange and the timer without a word (the notifier is stopping; the list has
  // already forgotten this batch).
  void discard() {
    done_ = nullptr;
    for (http::OneShot*& slot : exchanges_) {
      if (http::OneShot* shot = std::exchange(slot, nullptr)) shot->stop();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Batch::on_closed);
  }

  Batch* prev = nullptr;
  Batch* next = nullptr;

 private:
  static void on_timer(uv_timer_t* timer) noexcept { static_cast<Batch*>(timer->data)->complete(); }
  static void on_closed(uv_handle_t* handle) noexcept { delete static_cast<Batch*>(handle->data); }

  // Called once per exchange, as it ends.
  void ended(size_t index, const http::OneShot::Outcome& outcome) {
    exchanges_[index] = nullptr;
    if (std::string why = describe(outcome, cluster_); why.empty())
      ++ok_;
    else
      failures_[index] = cluster_.peers[index].address.text() + ": " + why;
    if (--remaining_ == 0) complete();
  }

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
  std::vector<http::OneShot*> exchanges_;  // null once ended
  std::vector<std::string> failures_;      // by peer; empty for those that succeeded
  size_t ok_ = 0;
  size_t remaining_ = 0;
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
  auto* batch = new Batch(&impl_->batches, impl_->loop, impl_->cluster, std::move(done));
  impl_->batches.link(batch);
  batch->start(target);
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
