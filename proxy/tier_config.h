// proxy/tier_config: the memcached pool's settings from the configuration's cache.memcached map,
// for the proxy's tier and for `edge assets`.
#pragma once

#include "cache/memcached.h"
#include "conf/config.h"

namespace edge::proxy {

inline cache::MemcachedConfig pool_config(const conf::Memcached& memcached) {
  cache::MemcachedConfig pool;
  for (const conf::Address& server : memcached.servers) pool.servers.push_back(server.text());
  pool.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(memcached.timeout);
  pool.threads = static_cast<int>(memcached.threads);
  pool.item_limit = memcached.max_item;
  pool.retry_after = std::chrono::duration_cast<std::chrono::seconds>(memcached.retry);
  if (pool.retry_after.count() < 1) pool.retry_after = std::chrono::seconds(1);
  return pool;
}

}  // namespace edge::proxy
