#include "proxy/router.h"

#include <algorithm>

namespace edge::proxy {

Router::Router(const conf::Config& config) : config_(config) {
  for (size_t h = 0; h < config.hosts.size(); ++h) {
    for (const std::string& name : config.hosts[h].match) {
      if (name == "*") {
        catch_all_ = static_cast<int>(h);
      } else if (name.starts_with("*.")) {
        wildcards_.push_back({name.substr(1), static_cast<int>(h)});
      } else {
        exact_.emplace(name, static_cast<int>(h));
      }
    }
  }
  std::stable_sort(wildcards_.begin(), wildcards_.end(),
                   [](const Wildcard& a, const Wildcard& b) { return a.suffix.size() > b.suffix.size(); });
}

RouteMatch Router::match(std::string_view host, std::string_view path) const {
  int found = -1;
  if (auto it = exact_.find(host); it != exact_.end()) {
    found = it->second;
  } else {
    for (const Wildcard& w : wildcards_) {
      if (host.size() > w.suffix.size() && host.ends_with(w.suffix)) {
        found = w.host;
        break;
      }
    }
    if (found < 0) found = catch_all_;
  }
  if (found < 0) return {};

  const conf::Host& entry = config_.hosts[static_cast<size_t>(found)];
  RouteMatch result{found, -1, entry.backend};
  size_t best = 0;
  for (size_t r = 0; r < entry.routes.size(); ++r) {
    const conf::Route& route = entry.routes[r];
    if (route.path_prefix.size() > best && path.starts_with(route.path_prefix)) {
      best = route.path_prefix.size();
      result.route = static_cast<int>(r);
      result.backend = route.backend >= 0 ? route.backend : entry.backend;
    }
  }
  return result;
}

}  // namespace edge::proxy
