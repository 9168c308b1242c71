// proxy/router: which host entry and route a request belongs to, from the configuration.
//
// Built once at start from a validated Config and then only read, by every worker thread.
// Host names are compared lower case, without a port. Precedence: an exact name, then the
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

class Router {
 public:
  explicit Router(const conf::Config& config);

  // `host_header` as received (any case, maybe with a port); `path` without the query.
  RouteMatch match(std::string_view host_header, std::string_view path) const;

 private:
  struct Wildcard {
    std::string suffix;  // ".example.com"
    int host;
  };
  const conf::Config& config_;
  std::unordered_map<std::string, int> exact_;
  std::vector<Wildcard> wildcards_;  // longest suffix first
  int catch_all_ = -1;
};

// "Example.COM:8080" -> "example.com"; "[::1]:80" -> "::1". Writes into `out` (reused).
std::string_view normalize_host(std::string_view host_header, std::string& out);

}  // namespace edge::proxy
