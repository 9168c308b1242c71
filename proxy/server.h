// proxy/server: the edge process: opens the listeners, runs the workers, stops on a signal.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/admin.h"
#include "proxy/worker.h"

namespace edge::proxy {

class Server {
 public:
  // `tls`: the listeners' TLS contexts, built from `config` (tls/context.h).
  Server(conf::Config config, tls::Contexts tls);
  ~Server();

  // Binds every listen address once per worker (SO_REUSEPORT); a port 0 is the kernel's choice
  // for the first worker and the same port for the others. On failure, `error` says which
  // address and why, with its position in the configuration.
  bool open(std::string& error);
  // Runs the workers until SIGINT or SIGTERM; returns the process exit code. Once every socket
  // listens, it writes to stderr one line per listen address and one for the admin port, with
  // the ports actually bound (what an operator or a test that asked for port 0 reads):
  //   edge: listening on 127.0.0.1:43817
  //   edge: admin listening on 127.0.0.1:43818
  int run();

 private:
  // SIGUSR1: the access log reopens its file (log/access_log.h).
  // SIGHUP: the certificates of the TLS listeners are read again from the configuration file;
  // connections accepted afterwards use them. Anything wrong, and the current ones stay (the
  // reasons go to stderr). Until edge reloads its whole configuration, only certificates change.
  void reload_certificates();

  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;  // on run()'s loop, while it runs
};

}  // namespace edge::proxy
