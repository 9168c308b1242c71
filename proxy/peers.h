// proxy/peers: tells the other edge nodes of a cluster (the configuration's cluster.peers) what
// this node's admin port was asked to purge or ban, so that their RAM tiers forget it too. (The
// memcached tier they share is told through memcached itself: proxy/tier.)
//
// Contract:
// - notify(target, done) sends `POST <target> HTTP/1.1` to every peer at once, each on a fresh
//   connection to its admin address, with `Host: <address>`, `Authorization: Bearer <its
//   token>`, `Content-Length: 0` and `Connection: close`; reads the answer (through
//   http::OneShot) and closes. A 2xx answer is a success; anything else (refused, reset,
//   garbage, a non-2xx status, an answer whose body is over 64 KiB, no complete answer within
//   cluster.timeout) is a failure described as "<address>: <why>" (for 4xx/5xx: the status and
//   the first 200 bytes of the body).
// - done(result) is called exactly once, on the loop, after every peer has succeeded or failed,
//   never from inside notify(). With no peers it is still called (later, from the loop).
// - Never blocks, never throws; peers are contacted in parallel, so a purge costs one round
//   trip whatever their number.
// - stop(): every notification in flight ends at once and its done is not called; later
//   notify() calls are ignored (done never called). Idempotent. The owner runs the loop until
//   the handles are closed before destroying the notifier (or destroys it after the loop ended:
//   the destructor then only frees memory).
//
// Ownership: borrows the Cluster (peers, tokens, timeout) for its life; starts one http::OneShot
// per peer and notification, which frees itself once its handles are closed.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"

namespace edge::proxy {

class PeerNotifier {
 public:
  struct Result {
    size_t ok = 0;
    std::vector<std::string> failures;  // one per peer that failed: "<address>: <why>"
  };
  using Done = std::function<void(Result)>;

  PeerNotifier(uv_loop_t* loop, const conf::Cluster& cluster);
  ~PeerNotifier();
  PeerNotifier(const PeerNotifier&) = delete;
  PeerNotifier& operator=(const PeerNotifier&) = delete;

  // `target`: an origin-form admin target, e.g. "/purge?tag=book-7&local=1".
  void notify(std::string target, Done done);
  void stop();
  size_t peers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::proxy
