#include "proxy/generation.h"

namespace edge::proxy {

int HostSlots::slot(const std::string& label) {
  if (auto it = slots_.find(label); it != slots_.end()) return it->second;
  if (slots_.size() >= capacity_) return -1;
  const int slot = static_cast<int>(slots_.size());
  slots_.emplace(label, slot);
  return slot;
}

Generation::Generation(conf::Config config_in, std::vector<std::unique_ptr<tls::ClientContext>> backend_tls,
                       const Generation* previous, HostSlots& slots)
    : number(previous ? previous->number + 1 : 1),
      config(std::move(config_in)),
      router(config),
      balancer(config, previous ? &previous->balancer : nullptr),
      backend_contexts(std::move(backend_tls)) {
  for (const conf::Backend& backend : config.backends) {
    std::vector<sockaddr_storage> addresses;
    for (const conf::Server& server : backend.servers) addresses.push_back(server.address.to_sockaddr());
    server_addresses.push_back(std::move(addresses));
  }
  for (const conf::Host& host : config.hosts) host_slots.push_back(slots.slot(HostSlots::label(host)));
}

}  // namespace edge::proxy
