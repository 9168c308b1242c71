// Feeds arbitrary bytes to the configuration loader. Beyond "no crash", it checks the contract
// of conf/config.h on every input: a config or errors, never both; every error names the file;
// a loaded config has its lists filled, its backend indexes and its numbers in range, and an
// enabled admin port a token and an address no listener has.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void check_config(const edge::conf::Config& config) {
  const int backends = static_cast<int>(config.backends.size());
  require(config.workers >= 1);
  require(!config.listen.empty());
  require(backends > 0);
  require(!config.hosts.empty());
  for (const auto& backend : config.backends) {
    require(!backend.servers.empty());
    for (const auto& server : backend.servers) {
      require(server.weight >= 1 && server.weight <= 256);
      require(server.max_conns <= 1000000);
    }
    require(backend.queue.max <= 1000000 && backend.queue.timeout.count() > 0);
    const auto& health = backend.health;
    require(!health.path.empty() && health.path.front() == '/');
    require(health.interval.count() > 0 && health.timeout.count() > 0);
    require(health.rise >= 1 && health.rise <= 100 && health.fall >= 1 && health.fall <= 100);
    require(backend.eject.failures <= 1000 && backend.eject.cooldown.count() > 0);
    require(backend.slow_start.count() >= 0);
  }
  if (config.admin.enabled) {
    const std::string& token = config.admin.token;
    require(!token.empty() && token.front() > ' ' && token.back() > ' ');
    for (const auto& listen : config.listen) {
      require(listen.address.text() != config.admin.address.text());
    }
  }
  for (const auto& host : config.hosts) {
    require(!host.match.empty());
    require(host.backend >= 0 && host.backend < backends);
    for (const auto& route : host.routes) {
      require(!route.path_prefix.empty() && route.path_prefix.front() == '/');
      require(route.backend >= -1 && route.backend < backends);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  edge::conf::LoadResult result = edge::conf::load_string(yaml, "fuzz.yaml");
  require(result.config.has_value() == result.errors.empty());
  for (const auto& error : result.errors) {
    require(error.mark.file == "fuzz.yaml");
    require(error.mark.line >= 0 && error.mark.col >= 0);
    require(!error.message.empty());
  }
  if (result.config) check_config(*result.config);
  return 0;
}
