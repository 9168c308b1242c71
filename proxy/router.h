// proxy/router: which host entry and route a request belongs to, from the configuration.
//
// Built once at start from a validated Config and then only read, by every worker thread.
// Hosts are given canonical (http::canonical_host: lower case, no port, no trailing dot). Precedence: an exact name, then the
// longest `*.domain` wildcard, then `*`. Inside a host, the longest matching path prefix wins.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conf/config.h"

namespace edge::proxy {

struct RouteMatch {
  int host = -1;     // index into Config::hosts; -1: no entry matches (404)
  int route = -1;    // index into that host's routes; -1: the host's own settings
  int backend = -1;  // index into Config::backends
};

// The cache policy a match runs under: its route's, else its host's. `match.host` must be >= 0.
inline const conf::CachePolicy& policy_of(const conf::Config& config, const RouteMatch& match) {
  const conf::Host& host = config.hosts[static_cast<size_t>(match.host)];
  return match.route >= 0 ? host.routes[static_cast<size_t>(match.route)].cache : host.cache;
}

// The rules a match runs under: its route's, else its host's. `match.host` must be >= 0.
inline const conf::Rules& rules_of(const conf::Config& config, const RouteMatch& match) {
  const conf::Host& host = config.hosts[static_cast<size_t>(match.host)];
  return match.route >= 0 ? host.routes[static_cast<size_t>(match.route)].rules : host.rules;
}

class Router {
 public:
  explicit Router(const conf::Config& config);

  // `host` canonical ("" for a request that named none); `path` canonical, without the query.
  RouteMatch match(std::string_view host, std::string_view path) const;

 private:
  struct Wildcard {
    std::string suffix;  // ".example.com"
    int host;
  };
  const conf::Config& config_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, Hash, std::equal_to<>> exact_;
  std::vector<Wildcard> wildcards_;  // longest suffix first
  int catch_all_ = -1;
};

}  // namespace edge::proxy
