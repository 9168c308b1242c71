#include "proxy/generation.h"

namespace edge::proxy {

int LabelSlots::slot(const std::string& label) {
  if (auto it = slots_.find(label); it != slots_.end()) return it->second;
  if (slots_.size() >= capacity_) return -1;
  const int slot = static_cast<int>(slots_.size());
  slots_.emplace(label, slot);
  return slot;
}

Generation::Generation(conf::Config config_in, std::vector<std::unique_ptr<tls::ClientContext>> backend_tls,
                       const Generation* previous, LabelSlots& host_label_slots,
                       LabelSlots& server_label_slots)
    : number(previous ? previous->number + 1 : 1),
      config(std::move(config_in)),
      router(config),
      balancer(config, previous ? &previous->balancer : nullptr),
      backend_contexts(std::move(backend_tls)) {
  for (const conf::Backend& backend : config.backends) {
    std::vector<sockaddr_storage> addresses;
    for (const conf::Server& server : backend.servers) addresses.push_back(server.address.to_sockaddr());
    server_addresses.push_back(std::move(addresses));
    std::vector<int> slots;
    for (const conf::Server& server : backend.servers) slots.push_back(server_label_slots.slot(LabelSlots::label(backend, server)));
    server_slots.push_back(std::move(slots));
  }
  for (const conf::Host& host : config.hosts) host_slots.push_back(host_label_slots.slot(LabelSlots::label(host)));
  size_t streaks = 0;
  for (const conf::Host& host : config.hosts) {
    route_streak_base.push_back(streaks);
    streaks += host.routes.size() + 1;
  }
  route_streaks = std::make_unique<RouteStreak[]>(streaks);
}

}  // namespace edge::proxy
