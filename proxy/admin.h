// proxy/admin: the admin port. A separate listener (never reachable through the client
// listeners), on the main thread's loop; every request must carry `Authorization: Bearer
// <token>` (compared in constant time), else 401.
//
//   GET  /backends                         JSON: per backend and server, state and counters
//   GET  /backends.txt                     one line per server, for people and grep
//   POST /backends/<backend>/<server>/drain   out of rotation; requests in flight finish
//   POST /backends/<backend>/<server>/enable  back into rotation
//
// <server> is the server's address as configured (127.0.0.1:8210).
//
// Ownership: the AdminServer borrows the configuration and the Balancer for its whole life; it
// owns its listener and connections and frees them through close callbacks after close().
#pragma once

#include <uv.h>

#include <string>

#include "balancer/balancer.h"
#include "conf/config.h"

namespace edge::proxy {

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, const conf::Config& config, balancer::Balancer& balancer);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens on config.admin.address; on failure `error` says why, with the position
  // of the admin section.
  bool open(std::string& error);
  // Closes the listener and every connection; the loop must run afterwards to free them.
  void close();

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace edge::proxy
