#include "proxy/worker.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "http/message.h"
#include "proxy/client.h"

namespace edge::proxy {

const char* close_reason_text(CloseReason reason) {
  switch (reason) {
#define EDGE_TEXT(name, text) \
  case CloseReason::name: return text;
    EDGE_CLOSE_REASONS(EDGE_TEXT)
#undef EDGE_TEXT
    case CloseReason::kCount: break;
  }
  return "?";
}


Shared::Shared(conf::Config config_in) : config(std::move(config_in)), router(config), balancer(config) {
  for (const conf::Backend& backend : config.backends) {
    std::vector<sockaddr_storage> addresses;
    for (const conf::Server& server : backend.servers) addresses.push_back(server.address.to_sockaddr());
    server_addresses.push_back(std::move(addresses));
  }
}

Worker::Worker(Shared& shared, int index)
    : shared_(shared), index_(index), read_buffer_(new char[kReadBufferSize]) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stop_async_, &Worker::on_stop);
  stop_async_.data = this;
  uv_async_init(&loop_, &grants_async_, &Worker::on_grants);
  grants_async_.data = this;
  const conf::Config& config = shared.config;
  for (size_t b = 0; b < config.backends.size(); ++b) {
    std::vector<std::unique_ptr<Pool>> pools;
    for (size_t s = 0; s < config.backends[b].servers.size(); ++s)
      pools.push_back(std::make_unique<Pool>(&loop_, config.backends[b], config.backends[b].servers[s],
                                             shared.server_addresses[b][s]));
    pools_.push_back(std::move(pools));
  }
}

Worker::~Worker() {
  // Whatever is still open (a worker that never ran, idle pool connections) is closed here, and
  // the loop runs until every close callback has freed its owner.
  for (auto& pools : pools_)
    for (auto& pool : pools) pool->shutdown();
  uv_walk(
      &loop_,
      [](uv_handle_t* handle, void*) {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  pools_.clear();
  uv_loop_close(&loop_);
}

void Worker::adopt_listener(int fd) {
  auto tcp = std::make_unique<uv_tcp_t>();
  uv_tcp_init(&loop_, tcp.get());
  uv_tcp_open(tcp.get(), fd);
  tcp->data = this;
  listeners_.push_back(std::move(tcp));
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  for (auto& listener : listeners_)
    uv_listen(reinterpret_cast<uv_stream_t*>(listener.get()), 4096, &Worker::on_connection);
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::request_stop() { uv_async_send(&stop_async_); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::on_stop(uv_async_t* async) {
  auto* w = static_cast<Worker*>(async->data);
  w->stopping_ = true;
  for (auto& listener : w->listeners_) uv_close(reinterpret_cast<uv_handle_t*>(listener.get()), nullptr);
  // Closing a client removes it from the list: work on a copy.
  std::vector<ClientConn*> clients = w->clients_;
  for (ClientConn* conn : clients) conn->shutdown();
  for (auto& pools : w->pools_)
    for (auto& pool : pools) pool->shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&w->stop_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->grants_async_), nullptr);
}

void Worker::add_waiter(ClientConn* conn) { waiters_.emplace(conn->id(), conn); }

void Worker::remove_waiter(ClientConn* conn) { waiters_.erase(conn->id()); }

void Worker::post_grant(Grant grant) {
  {
    std::lock_guard<std::mutex> lock(grants_mutex_);
    grants_.push_back(grant);
  }
  uv_async_send(&grants_async_);
}

void Worker::on_grants(uv_async_t* async) {
  auto* w = static_cast<Worker*>(async->data);
  std::vector<Grant> grants;
  {
    std::lock_guard<std::mutex> lock(w->grants_mutex_);
    grants.swap(w->grants_);
  }
  for (const Grant& grant : grants) {
    auto it = w->waiters_.find(grant.connection);
    if (it != w->waiters_.end()) {
      it->second->on_granted(grant.server);
    } else {
      // The connection left while its grant was on the way: the slot goes back.
      w->shared_.balancer.backend(static_cast<size_t>(grant.backend))
          .release(grant.server, balancer::Outcome::kCancelled, balancer::now_ms());
    }
  }
}

void Worker::on_connection(uv_stream_t* listener, int status) {
  if (status < 0) return;
  auto* w = static_cast<Worker*>(listener->data);
  ClientConn::accept(*w, listener);
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
}

}  // namespace edge::proxy
