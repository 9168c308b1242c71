#include "proxy/worker.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <limits>

#include "http/message.h"
#include "proxy/client.h"
#include "proxy/fetch.h"

namespace edge::proxy {

const char* close_reason_key(CloseReason reason) {
  switch (reason) {
#define EDGE_KEY(name, key, text) \
  case CloseReason::name: return key;
    EDGE_CLOSE_REASONS(EDGE_KEY)
#undef EDGE_KEY
    case CloseReason::kCount: break;
  }
  return "?";
}


Shared::Shared(conf::Config config_in)
    : config(std::move(config_in)),
      router(config),
      balancer(config),
      store(config.cache.memory, config.cache.max_object, config.cache.max_variants),
      bounds(config.limits.max_temp_total) {
  if (config.cache.memcached.enabled) tier = std::make_unique<Tier>(config);
  for (const conf::Backend& backend : config.backends) {
    std::vector<sockaddr_storage> addresses;
    for (const conf::Server& server : backend.servers) addresses.push_back(server.address.to_sockaddr());
    server_addresses.push_back(std::move(addresses));
  }
}

Worker::Worker(Shared& shared, int index)
    : shared_(shared),
      index_(index),
      read_buffer_(new char[kReadBufferSize]),
      cache_counters_(shared.config.hosts.size()) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stop_async_, &Worker::on_stop);
  stop_async_.data = this;
  tasks_ = std::make_unique<LoopTasks>(&loop_, &Worker::on_note, this);
  poster_ = tasks_->poster();
  const conf::Config& config = shared.config;
  for (size_t b = 0; b < config.backends.size(); ++b) {
    std::vector<std::unique_ptr<Pool>> pools;
    const tls::ClientContext* tls = b < shared.tls.by_backend.size() ? shared.tls.by_backend[b].get() : nullptr;
    for (size_t s = 0; s < config.backends[b].servers.size(); ++s)
      pools.push_back(std::make_unique<Pool>(&loop_, config.backends[b], config.backends[b].servers[s],
                                             shared.server_addresses[b][s], tls));
    pools_.push_back(std::move(pools));
  }
}

Worker::~Worker() {
  // Whatever is still open (a worker that never ran, idle pool connections) is closed here, and
  // the loop runs until every close callback has freed its owner.
  for (auto& pools : pools_)
    for (auto& pool : pools) pool->shutdown();
  tasks_->close();
  uv_walk(
      &loop_,
      [](uv_handle_t* handle, void*) noexcept {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  pools_.clear();
  uv_loop_close(&loop_);
}

void Worker::adopt_listener(int fd, const tls::ServerContext* tls, size_t listen) {
  auto listener = std::make_unique<Listener>();
  listener->worker = this;
  listener->tls = tls;
  listener->listen = listen;
  uv_tcp_init(&loop_, &listener->tcp);
  uv_tcp_open(&listener->tcp, fd);
  listener->tcp.data = listener.get();
  listeners_.push_back(std::move(listener));
}

uv_buf_t Worker::tls_buffer() {
  if (!tls_buffer_) tls_buffer_ = std::make_unique<char[]>(kReadBufferSize);
  return uv_buf_init(tls_buffer_.get(), kReadBufferSize);
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  for (auto& listener : listeners_)
    uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), 4096, &Worker::on_connection);
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::request_drain(std::function<void()> on_drained) {
  on_drained_ = std::move(on_drained);
  drain_requested_.store(true, std::memory_order_release);
  uv_async_send(&stop_async_);
}

void Worker::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  uv_async_send(&stop_async_);
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::on_stop(uv_async_t* async) noexcept {
  auto* w = static_cast<Worker*>(async->data);
  if (w->stop_requested_.load(std::memory_order_acquire)) return w->stop_now();
  if (w->drain_requested_.load(std::memory_order_acquire)) w->drain();
}

void Worker::drain() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& listener : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), nullptr);
  // Closing a client removes it from the list: work on a copy.
  std::vector<ClientConn*> clients = clients_;
  for (ClientConn* conn : clients) conn->drain();
  check_drained();
}

void Worker::check_drained() {
  if (!stopping_ || stopped_ || drained_told_ || !clients_.empty()) return;
  drained_told_ = true;
  if (on_drained_) on_drained_();
}

void Worker::stop_now() {
  if (stopped_) return;
  if (!stopping_) {
    stopping_ = true;
    for (auto& listener : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), nullptr);
  }
  stopped_ = true;
  std::vector<ClientConn*> clients = clients_;
  for (ClientConn* conn : clients) conn->shutdown();
  // What is left are fills nobody on this worker reads any more (and background refreshes).
  std::vector<Fetch*> fetches;
  for (auto& [id, fetch] : fetches_) fetches.push_back(fetch);
  for (Fetch* fetch : fetches) fetch->shutdown();
  for (auto& pools : pools_)
    for (auto& pool : pools) pool->shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  tasks_->close();
}

void Worker::add_fetch(Fetch* fetch) { fetches_.emplace(fetch->id(), fetch); }

void Worker::remove_fetch(Fetch* fetch) { fetches_.erase(fetch->id()); }

void Worker::add_subscriber(uint64_t id, FillSubscriber* subscriber) { subscribers_.emplace(id, subscriber); }

void Worker::remove_subscriber(uint64_t id) { subscribers_.erase(id); }

namespace {
enum NoteKind : int { kGrant, kFillEvent };
}

void Worker::post_grant(uint64_t fetch, int backend, int server) {
  tasks_->post(LoopTasks::Note{kGrant, backend, server, fetch});
}

void Worker::post_fill_event(uint64_t subscriber) { tasks_->post(LoopTasks::Note{kFillEvent, 0, 0, subscriber}); }

void Worker::on_note(void* worker, const LoopTasks::Note& note) {
  auto* w = static_cast<Worker*>(worker);
  if (note.kind == kFillEvent) {
    // A subscriber that left meanwhile is no longer registered: its event is dropped.
    auto it = w->subscribers_.find(note.target);
    if (it != w->subscribers_.end()) it->second->on_fill_event();
    return;
  }
  auto it = w->fetches_.find(note.target);
  if (it != w->fetches_.end()) {
    it->second->on_granted(note.b);
  } else {
    // The fetch ended while its grant was on the way: the slot goes back.
    w->shared_.balancer.backend(static_cast<size_t>(note.a)).release(note.b, balancer::Outcome::kCancelled,
                                                                     balancer::now_ms());
  }
}

void Worker::on_connection(uv_stream_t* listener, int status) noexcept {
  if (status < 0) return;
  const auto* entry = static_cast<const Listener*>(listener->data);
  ClientConn::accept(*entry->worker, listener, entry->tls);
}

http::Body::Options Worker::body_options(bool whole) {
  const conf::Limits& l = limits();
  http::Body::Options options{l.buffer_memory, &l.temp_dir, l.max_temp_file_size, &shared_.bounds.temp_space, whole};
  // A request body is bounded by max_body_bytes already, and must be whole before it is sent.
  if (whole) options.file_limit = std::numeric_limits<uint64_t>::max();
  return options;
}

std::string_view Worker::date() {
  uint64_t now = uv_now(&loop_) / 1000;
  if (now != date_second_ || date_len_ == 0) {
    date_second_ = now;
    date_len_ = http::format_http_date(static_cast<int64_t>(std::time(nullptr)), date_);
  }
  return {date_, date_len_};
}

void Worker::add_client(ClientConn* conn) {
  conn->registry_index_ = clients_.size();
  clients_.push_back(conn);
}

void Worker::remove_client(ClientConn* conn) {
  size_t i = conn->registry_index_;
  clients_[i] = clients_.back();
  clients_[i]->registry_index_ = i;
  clients_.pop_back();
  check_drained();
}

}  // namespace edge::proxy
