#include "proxy/worker.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>

#include "http/message.h"
#include "http/tcp_transport.h"
#include "log/error_log.h"
#include "proxy/client.h"
#include "proxy/fetch.h"
#include "proxy/h2_client.h"
#include "uring/transport.h"

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

const char* rule_action_key(RuleAction action) {
  switch (action) {
#define EDGE_KEY(name, key, text) \
  case RuleAction::name: return key;
    EDGE_RULE_ACTIONS(EDGE_KEY)
#undef EDGE_KEY
    case RuleAction::kCount: break;
  }
  return "?";
}


namespace {
// Label slots for the per-host and per-server figures: room for the start's hosts (servers)
// twice over, and never fewer than this, so reloads can add some.
constexpr size_t kMinHostSlots = 256;
constexpr size_t kMinServerSlots = 256;

size_t server_count(const conf::Config& config) {
  size_t n = 0;
  for (const conf::Backend& backend : config.backends) n += backend.servers.size();
  return n;
}
// Keys per time slot and weight in /top's summaries: a key heavier than 1/64th of a slot's
// traffic is always held.
constexpr size_t kTopCapacity = 64;
}  // namespace

Shared::Shared(conf::Config config, tls::Contexts tls_in)
    : host_slots(std::max(kMinHostSlots, 2 * config.hosts.size())),
      server_slots(std::max(kMinServerSlots, 2 * server_count(config))),
      store(config.cache.memory, config.cache.max_object, config.cache.max_variants),
      bounds(config.limits.max_temp_total),
      tls(std::move(tls_in)),
      rate_limiter(config.limits.rate_limit_clients) {
  if (config.cache.memcached.enabled) tier = std::make_unique<Tier>(config);
  generation = std::make_shared<const Generation>(std::move(config), std::move(tls.by_backend), nullptr, host_slots,
                                                      server_slots);
}

Worker::Worker(Shared& shared, int index)
    : shared_(shared),
      index_(index),
      read_buffer_(new char[kReadBufferSize]),
      cache_counters_(shared.host_slots.capacity()),
      metrics_(shared.host_slots.capacity(), shared.server_slots.capacity()),
      top_(top::kByCount, top::Windows(kTopCapacity)) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stop_async_, &Worker::on_stop);
  stop_async_.data = this;
  if (shared.generation->config.io == conf::Io::kUring) {
    std::string error;
    ring_ = uring::Ring::create(&loop_, &error);
    if (!ring_ && index == 0) edge::log::warn("edge: io: uring refused (%s): using epoll", error.c_str());
  }
  uv_prepare_init(&loop_, &flush_prepare_);
  flush_prepare_.data = this;
  tasks_ = std::make_unique<LoopTasks>(&loop_, &Worker::on_note, this);
  poster_ = tasks_->poster();
  use_generation(shared.generation);
}

Worker::~Worker() {
  // Whatever is still open (a worker that never ran, idle pool connections) is closed here, and
  // the loop runs until every close callback has freed its owner.
  for (auto& [id, pool] : pools_) pool->shutdown();
  for (auto& [id, pool] : retired_pools_) pool->shutdown();
  tasks_->close();
  http::Deadline::stop_all(&loop_);
  if (ring_) ring_->stop_holding_loop();
  // The deadlines' timer and the ring stay until the closes under way have completed.
  uv_walk(
      &loop_,
      [](uv_handle_t* handle, void* ring) noexcept {
        if (uv_is_closing(handle) || http::Deadline::is_shared_timer(handle)) return;
        if (ring && static_cast<uring::Ring*>(ring)->owns(handle)) return;
        uv_close(handle, nullptr);
      },
      ring_);
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (ring_) ring_->close();
  http::Deadline::release_loop(&loop_);
  uv_run(&loop_, UV_RUN_DEFAULT);
  pools_.clear();
  retired_pools_.clear();
  uv_loop_close(&loop_);
}

void Worker::use_generation(GenerationRef generation) {
  // A reference of this worker's own: every request copies it, and a count shared with the
  // other workers would bounce between their cores.
  const Generation* raw = generation.get();
  generation_ = GenerationRef(raw, [keep = std::move(generation)](const Generation*) {});
  h2c_addresses_.clear();
  for (const conf::Listen& listen : raw->config.listen)
    if (listen.h2c) h2c_addresses_.push_back(listen.address.text());
  std::unordered_map<uint64_t, std::unique_ptr<Pool>> pools;
  const balancer::Balancer& balancer = raw->balancer;
  for (size_t b = 0; b < balancer.size(); ++b) {
    for (size_t s = 0; s < balancer.backend(b).size(); ++s) {
      const uint64_t id = balancer.backend(b).server(s).id();
      auto it = pools_.find(id);
      if (it == pools_.end()) {
        pools.emplace(id, std::make_unique<Pool>(&loop_, generation_, b, s));
      } else {
        it->second->rebind(generation_, b, s);
        pools.emplace(id, std::move(it->second));
        pools_.erase(it);
      }
    }
  }
  for (auto& [id, pool] : pools_) {
    pool->shutdown();
    retired_pools_.emplace(id, std::move(pool));
  }
  pools_ = std::move(pools);
  prune_retired_pools();
}

void Worker::prune_retired_pools() {
  std::erase_if(retired_pools_, [](const auto& entry) {
    return entry.second->open_connections() == 0 && entry.second->generation().use_count() == 1;
  });
}

Pool& Worker::pool(const GenerationRef& generation, int backend, int server) {
  const uint64_t id = generation->balancer.backend(static_cast<size_t>(backend)).server(static_cast<size_t>(server)).id();
  if (auto it = pools_.find(id); it != pools_.end()) return *it->second;
  if (auto it = retired_pools_.find(id); it != retired_pools_.end()) return *it->second;
  // A request of a generation older than the pool's last one (a retry, after the pool of a
  // removed server was pruned): a pool of its own, bound to that generation.
  auto pool = std::make_unique<Pool>(&loop_, generation, static_cast<size_t>(backend), static_cast<size_t>(server));
  return *retired_pools_.emplace(id, std::move(pool)).first->second;
}

void Worker::record_top(std::string_view host, std::string_view target, uint64_t bytes, bool miss,
                        uint64_t backend_us) {
  const int64_t now = static_cast<int64_t>(uv_now(&loop_));
  top_key_.assign(host).append(target);
  const top::HashedKey key(top_key_);  // hashed once for the two to four summaries
  top_[static_cast<size_t>(top::By::kRequests)].add(now, key, 1);
  if (bytes) top_[static_cast<size_t>(top::By::kBytes)].add(now, key, bytes);
  if (miss) top_[static_cast<size_t>(top::By::kMisses)].add(now, key, 1);
  if (backend_us) top_[static_cast<size_t>(top::By::kBackendTime)].add(now, key, backend_us);
}

top::Ranking Worker::top_ranking(const top::Query& query) {
  top::Windows& windows = top_[static_cast<size_t>(query.by)];
  std::vector<top::Ranking> slots;
  for (const top::SpaceSaving* slot : windows.covering(static_cast<int64_t>(uv_now(&loop_)), query.window))
    slots.push_back(top::ranking_of(*slot));
  top::Ranking ranking = top::merge_rankings(slots, SIZE_MAX);
  if (!query.host.empty()) {
    // Keys are the host, then the target, which starts with '/'.
    std::erase_if(ranking.hitters, [&](const top::Hitter& hitter) {
      return !hitter.key.starts_with(query.host) || hitter.key.size() == query.host.size() ||
             hitter.key[query.host.size()] != '/';
    });
  }
  return ranking;
}

void Worker::adopt_listener(const std::string& address, int fd, const tls::ServerContext* tls) {
  auto listener = std::make_unique<Listener>();
  listener->worker = this;
  listener->address = address;
  listener->tls = tls;
  uv_tcp_init(&loop_, &listener->tcp);
  uv_tcp_open(&listener->tcp, fd);
  listener->tcp.data = listener.get();
  if (running_ && !stopping_) listen_on(*listener);
  listeners_.push_back(std::move(listener));
}

void Worker::listen_on(Listener& listener) {
  uv_listen(reinterpret_cast<uv_stream_t*>(&listener.tcp), 4096, &Worker::on_connection);
}

void Worker::use_tls(const std::string& address, const tls::ServerContext* tls) {
  for (auto& listener : listeners_)
    if (listener->address == address) listener->tls = tls;
}

void Worker::free_listener(uv_handle_t* handle) noexcept { delete static_cast<Listener*>(handle->data); }

void Worker::close_listener(const std::string& address) {
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    // Closed by a drain already: the list keeps it until the worker goes.
    if ((*it)->address != address || uv_is_closing(reinterpret_cast<uv_handle_t*>(&(*it)->tcp))) {
      ++it;
      continue;
    }
    Listener* listener = it->release();
    it = listeners_.erase(it);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), &Worker::free_listener);
  }
}

uv_buf_t Worker::tls_buffer() {
  if (!tls_buffer_) tls_buffer_ = std::make_unique<char[]>(kReadBufferSize);
  return uv_buf_init(tls_buffer_.get(), kReadBufferSize);
}

std::unique_ptr<http::Transport> Worker::accept_transport(uv_stream_t* listener, int* accepted) {
  if (ring_) {
    auto socket = std::make_unique<uring::UringTransport>(*ring_);
    *accepted = socket->accept(listener);
    return socket;
  }
  auto tcp = std::make_unique<http::TcpTransport>(&loop_, read_buffer());
  *accepted = tcp->accept(listener);
  return tcp;
}

std::unique_ptr<http::Transport> Worker::new_transport() {
  if (ring_) return std::make_unique<uring::UringTransport>(*ring_);
  return std::make_unique<http::TcpTransport>(&loop_, read_buffer());
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  running_ = true;
  for (auto& listener : listeners_) listen_on(*listener);
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::request_drain(std::function<void()> on_drained) {
  on_drained_ = std::move(on_drained);
  drain_requested_.store(true, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see Server::begin_drain
  uv_async_send(&stop_async_);
}

void Worker::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see Server::begin_drain
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
  close_listeners();
  // Closing a client removes it from the list: work on a copy.
  std::vector<ClientConn*> clients = clients_;
  for (ClientConn* conn : clients) conn->drain();
  check_drained();
}

void Worker::close_listeners() {
  for (auto& listener : listeners_) {
    uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(&listener->tcp);
    if (!uv_is_closing(handle)) uv_close(handle, nullptr);
  }
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
    close_listeners();
  }
  stopped_ = true;
  std::vector<ClientConn*> clients = clients_;
  for (ClientConn* conn : clients) conn->shutdown();
  // What is left are fills nobody on this worker reads any more (and background refreshes).
  std::vector<Fetch*> fetches;
  for (auto& [id, fetch] : fetches_) fetches.push_back(fetch);
  for (Fetch* fetch : fetches) fetch->shutdown();
  for (auto& [id, pool] : pools_) pool->shutdown();
  for (auto& [id, pool] : retired_pools_) pool->shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), nullptr);
  flushes_.clear();
  tasks_->close();
}

void Worker::defer_flush(H2Client* client) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&flush_prepare_))) return;
  if (flushes_.empty()) uv_prepare_start(&flush_prepare_, &Worker::on_flush_prepare);
  flushes_.push_back(client);
}

void Worker::cancel_flush(H2Client* client) {
  std::erase(flushes_, client);
  // One being flushed now is skipped: flushing_ is walked by index and checked.
  for (H2Client*& c : flushing_)
    if (c == client) c = nullptr;
}

void Worker::on_flush_prepare(uv_prepare_t* prepare) noexcept {
  auto* self = static_cast<Worker*>(prepare->data);
  self->flushing_.swap(self->flushes_);
  for (size_t i = 0; i < self->flushing_.size(); ++i)
    if (H2Client* client = self->flushing_[i]) client->run_deferred_flush();
  self->flushing_.clear();
  if (self->flushes_.empty()) uv_prepare_stop(prepare);
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
  if (it != w->fetches_.end()) return it->second->on_granted(note.b);
  // The fetch ended while its grant was on the way: the slot goes back to its generation.
  auto orphan = w->orphan_grants_.find(note.target);
  if (orphan == w->orphan_grants_.end()) return;
  orphan->second->balancer.backend(static_cast<size_t>(note.a)).release(note.b, balancer::Outcome::kCancelled,
                                                                        balancer::now_ms());
  w->orphan_grants_.erase(orphan);
}

void Worker::on_connection(uv_stream_t* listener, int status) noexcept {
  if (status < 0) return;
  const auto* entry = static_cast<const Listener*>(listener->data);
  // Whether the listener takes h2c is its configuration's: a reload may switch it.
  const std::vector<std::string>& h2c = entry->worker->h2c_addresses_;
  const bool takes_h2c = !entry->tls && std::find(h2c.begin(), h2c.end(), entry->address) != h2c.end();
  ClientConn::accept(*entry->worker, listener, entry->tls, takes_h2c);
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
