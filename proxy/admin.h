// proxy/admin: the admin port. A separate listener (never reachable through the client
// listeners), on the main thread's loop; every request must carry `Authorization: Bearer
// <token>` (compared in constant time) or the cookie of a session signed in with that token
// (proxy/admin_session.h), else 401; only the sign-in page (GET / without a session) and its
// form (POST /login) are answered to anyone. A POST authenticated by the cookie must also carry
// the session's X-Edge-CSRF token and must not come from another origin, else 403.
//
// Nobody without the token can stall the port or lock operators out of it:
//   - a request without the token is answered 401 as soon as its head is read (a body it
//     announces is never waited for, nor one over the port's 64 KiB limit) and its connection
//     is closed; the sign-in form alone is read, up to 4 KiB with a Content-Length, and a wrong
//     token in it closes the connection too;
//   - a connection that has not completed a head within admin.header_timeout (5 s) is closed;
//   - at admin.max_connections (64), a new connection takes the place of the oldest one that
//     has not yet made a request with the token (or a live session's cookie, or signed in with
//     the token); connections that have are kept, and when every place is theirs the newcomer
//     is closed. A flood of idle or refused connections thus only
//     ever displaces itself. (A flood faster than an operator's round trip could still push out
//     the operator's own new connection before its head arrives: the port belongs on loopback
//     or a management network.)
//
//   GET  /backends                         JSON: per backend and server, state and counters
//   GET  /backends.txt                     one line per server, for people and grep
//   POST /backends/<backend>/<server>/drain   out of rotation; requests in flight finish
//   POST /backends/<backend>/<server>/enable  back into rotation
//   POST /purge?url=<absolute URL>[&soft=1]   every variant of that URL   -> {"purged": n}
//   POST /purge?url=<absolute URL>&every_query=1[&soft=1]
//                                          the URL's path with any query string or none: a ban
//                                          (admin::every_query_ban), answered as /ban is
//   POST /purge?tag=<tag>[&soft=1]            every object with that Surrogate-Key/xkey tag
//                                             -> {"purged": n}
//   POST /ban?[host=<host>&]prefix=<path>[&regex=<RE2 regex>][&soft=1]
//                                          a lazy ban (prefix, regex or both; no host: every
//                                          host)   -> {"ban": <id>, "active_bans": n}
//   GET  /stats                            JSON: cache events per host, hit ratio, store figures,
//                                          the bounds on hostile input (proxy/bounds.h), the
//                                          client connections (proxy/stats.h)
//   GET  /metrics                          the same, and the backends, in Prometheus text format
//   GET  /top?window=10s|1m|10m|1h&by=requests|bytes|misses|backend_time&host=H&n=20
//                                          the heaviest URLs of the window, every worker's
//                                          summaries merged (top/heavy_hitters.h): JSON
//                                          {"window","by","total","top":[{"host","target",
//                                          "count","error"}]}; count is an upper bound and
//                                          count - error a lower one. Defaults 1m, requests, 20.
//   POST /reload                           the configuration file read again and applied, as on
//                                          SIGHUP (proxy/server.h) -> 200 {"reloaded": true,
//                                          "generation": n, "changes": [...]}, or 422
//                                          {"reloaded": false, "errors": ["file:line:col: ..."]}
//                                          with the running configuration kept
//
//   GET  /                                 with a session: the status page (proxy/status_page.h);
//                                          else the sign-in form
//   POST /login                            form field token=<the admin token> -> 303 to / with
//                                          the session cookie; a wrong one -> 401 and the form
//                                          again, logged, the connection closed; a body over
//                                          4 KiB -> 413, one without Content-Length -> 411
//   POST /logout                           ends the cookie's session -> {"signed_out": bool}
//   GET  /events                           the recent purges, bans and reloads (SIGHUP's through
//                                          note_reload), newest first (proxy/admin_events.h):
//                                          {"events":[{"at","kind","detail"}]}
//
// <server> is the server's address as configured (127.0.0.1:8210).
// Query values are percent-decoded ('+' stays '+': URLs and regular expressions use it). A
// missing, unknown, repeated or bad parameter (a URL that is not absolute http(s), a regex
// cache::BanRegex refuses, with its reason) gets 400 {"error": "..."}. soft=1 marks objects
// invalidated (stale from then on, so revalidated or served within grace) instead of removing
// them. Purges and bans are logged (values through http::escape_for_log).
// A purge URL's key is cache::cache_key of its authority and path+query, as the proxy keys
// requests; the scheme is not part of it. The proxy's main loop sweeps bans (Store::sweep_bans),
// so active_bans drops back once no stored object predates them.
// The exact bodies of /stats and /metrics are in proxy/admin_render.h.
//
// The port's own settings (address, token, limits) and the cluster's peers are those of the
// configuration it started with: a reload does not change them. Everything else it shows or acts
// on (backends, hosts) is the current generation's.
//
// Sessions and events live in memory on this loop and end with the process; a session lasts
// admin.session_ttl from its sign-in.
//
// Ownership: the AdminServer borrows the reference to the current generation (which reloads
// replace, on this loop), the Store, the workers' cache Counters, Stats and metrics and the Bounds for its
// whole life; it owns its listener and connections and frees them through close callbacks after
// close().
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/balancer.h"
#include "cache/counters.h"
#include "cache/store.h"
#include "conf/config.h"
#include "proxy/generation.h"
#include "proxy/metrics.h"
#include "top/heavy_hitters.h"
#include "top/windows.h"

namespace edge::proxy {

struct Bounds;
struct Stats;
class Tier;

// What a reload did: applied (the new generation's number and what changed, a line each), or
// refused (each reason, `file:line:col: message` where the file says where).
struct Reloaded {
  bool ok = false;
  uint64_t generation = 0;
  std::vector<std::string> changes;
  std::vector<std::string> errors;
};

class AdminServer {
 public:
  // `reload`: what POST /reload runs, on this loop; it calls back (later, on this loop) with
  // the outcome.
  using Reload = std::function<void(std::function<void(const Reloaded&)>)>;
  // `top`: what GET /top runs, on this loop; it calls back (later, on this loop) with every
  // worker's ranking merged, or nullopt while edge stops.
  using Top = std::function<void(const top::Query&, std::function<void(std::optional<top::Ranking>)>)>;
  // `worker_metrics`: each worker's (proxy/metrics.h), for /metrics, /backends' response_ms.
  AdminServer(uv_loop_t* loop, const GenerationRef& generation, cache::Store& store,
              std::vector<const cache::Counters*> counters, Tier* tier, const Bounds* bounds,
              std::vector<const Stats*> worker_stats, Reload reload, Top top = {},
              std::vector<const WorkerMetrics*> worker_metrics = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens on config.admin.address, or takes ownership of `inherited_fd`, a socket
  // already listening there (a binary upgrade's, proxy/handoff.h); on failure `error` says why,
  // with the position of the admin section.
  bool open(std::string& error, int inherited_fd = -1);
  // The address open() bound: config.admin.address with the kernel's choice for a port 0.
  conf::Address address() const;
  // The listening socket (still owned here), -1 once closed: what a binary upgrade offers.
  int fd() const;
  // Closes the listener and every connection; the loop must run afterwards to free them.
  void close();
  // A reload that did not come through the port (SIGHUP), for GET /events; on this loop.
  void note_reload(std::string_view cause, const Reloaded& outcome);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::proxy
