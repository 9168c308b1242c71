// edge: the reverse proxy's command line.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "conf/config.h"
#include "proxy/server.h"

namespace {
void usage(FILE* out) {
  std::fputs(
      "usage: edge --config FILE [--check]\n"
      "\n"
      "  --config FILE   the YAML configuration to run\n"
      "  --check         validate the configuration and exit (0 valid, 2 invalid)\n"
      "  --help          this text\n",
      out);
}

// The memcached tier's keys are read and checked ahead of the code that acts on them; a user who
// sets them must not believe they work yet.
void warn_inactive_keys(const edge::conf::Config& config) {
  auto inactive = [](const edge::conf::CachePolicy& policy) {
    return !policy.ram || policy.static_source != edge::conf::StaticSource::kNone;
  };
  bool used = config.cache.memcached.enabled || !config.cluster.peers.empty();
  for (const auto& host : config.hosts) {
    used = used || inactive(host.cache);
    for (const auto& route : host.routes) used = used || inactive(route.cache);
  }
  if (used)
    std::fputs("edge: warning: cache.memcached, static, key, ram and cluster are checked but not acted on yet\n",
               stderr);
}
}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = arg.substr(9);
    } else {
      std::fprintf(stderr, "edge: unknown argument '%s'\n", arg.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs("edge: --config FILE is required\n", stderr);
    usage(stderr);
    return 2;
  }

  edge::conf::LoadResult loaded = edge::conf::load_file(config_path);
  if (!loaded.config) {
    for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.text().c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  warn_inactive_keys(*loaded.config);
  std::signal(SIGPIPE, SIG_IGN);
  edge::proxy::Server server(std::move(*loaded.config));
  std::string error;
  if (!server.open(error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  return server.run();
}
