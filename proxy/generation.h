// proxy/generation: one configuration as the proxy runs it, with what is built from it.
//
// A Generation is immutable once built and shared (std::shared_ptr<const Generation>): the
// process has a current one, and each request, fetch, fill and assembly holds the one it started
// with until it ends, so a reload never changes the configuration under a request in progress
// (its host, route and backend indexes stay those of its generation). Start-up builds the first;
// each successful reload builds the next from the file and the current one (proxy/server.h).
//
// What lives longer than one configuration is not here: the RAM cache, the coalescer, the
// memcached tier, the listeners' TLS contexts and the access log are the process's (Shared); a
// server's live state (balancer::ServerState) passes from one generation's Balancer to the next
// while the server keeps its backend and address.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "balancer/balancer.h"
#include "conf/config.h"
#include "proxy/herd.h"
#include "proxy/router.h"
#include "tls/context.h"

namespace edge::proxy {

// Where each host's figures go (cache::Counters, proxy/metrics.h), kept across reloads by the
// host's label (its first `match` name), so a host's figures survive a reload that reorders,
// adds or removes others; a backend server's likewise by its backend's name and its address.
// Written while a generation is built and read by the admin port, both on the main thread.
class LabelSlots {
 public:
  explicit LabelSlots(size_t capacity) : capacity_(capacity) {}
  size_t capacity() const { return capacity_; }
  // The label's slot, a new one for a new label; -1 when every slot is taken (its events are
  // then not counted).
  int slot(const std::string& label);
  static std::string label(const conf::Host& host) { return host.match.empty() ? std::string() : host.match.front(); }
  // A server's: its backend's name and its address (an address listed twice is one server).
  static std::string label(const conf::Backend& backend, const conf::Server& server) {
    return backend.name + '\n' + server.address.text();
  }

 private:
  size_t capacity_;
  std::unordered_map<std::string, int> slots_;
};

struct Generation {
  // `backend_tls`: the backends' client contexts, in Config::backends order (null without tls).
  // `previous`: the generation being replaced (null at start): its servers' states carry over.
  Generation(conf::Config config, std::vector<std::unique_ptr<tls::ClientContext>> backend_tls,
             const Generation* previous, LabelSlots& host_slots, LabelSlots& server_slots);
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const tls::ClientContext* backend_tls(size_t backend) const {
    return backend < backend_contexts.size() ? backend_contexts[backend].get() : nullptr;
  }
  int host_slot(int host) const { return host >= 0 ? host_slots[static_cast<size_t>(host)] : -1; }
  // The not-storable streak of the fills under a match's cache policy (its route's, or its
  // host's own settings), shared by every worker; a reload starts every route afresh. Null when
  // match.host < 0.
  RouteStreak* route_streak(const RouteMatch& match) const {
    if (match.host < 0) return nullptr;
    return &route_streaks[route_streak_base[static_cast<size_t>(match.host)] + static_cast<size_t>(match.route + 1)];
  }
  int server_slot(int backend, int server) const {
    return backend >= 0 && server >= 0 ? server_slots[static_cast<size_t>(backend)][static_cast<size_t>(server)] : -1;
  }

  const uint64_t number;  // 1 at start, one more for each reload
  const conf::Config config;
  const Router router;  // borrows config
  // Mutable state inside (atomics, queues) but the same object for the generation's life.
  mutable balancer::Balancer balancer;  // borrows config
  std::vector<std::vector<sockaddr_storage>> server_addresses;  // [backend][server]
  std::vector<int> host_slots;                                   // [host] -> LabelSlots slot
  std::vector<std::vector<int>> server_slots;                    // [backend][server] -> slot
  std::vector<std::unique_ptr<tls::ClientContext>> backend_contexts;  // [backend], null without tls
  // [route_streak_base[host] + route + 1]: a host's own settings, then its routes.
  std::vector<size_t> route_streak_base;
  std::unique_ptr<RouteStreak[]> route_streaks;
};

using GenerationRef = std::shared_ptr<const Generation>;

}  // namespace edge::proxy
