// app/options: edge-app's command line.
//
//   edge-app [--host ADDR] [--port N] [--name NAME] [--idle-timeout-ms N] [--drop-after N] [--help]
//
// Each flag takes its value as the next argument or after '=' (--port=8210).
#pragma once

#include <cstdint>
#include <string>

namespace edge::app {

struct Options {
  std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 8080;            // 0: any free port (printed at start)
  std::string name = "edge-app";   // sent back as X-Backend
  uint64_t idle_timeout_ms = 60 * 1000;  // 0: never close idle connections
  // After this many responses on one connection, the next request on it is answered by closing
  // the connection without a word: the race a proxy meets when a backend drops a kept-alive
  // connection just as it reuses it. 0: never.
  uint64_t drop_after = 0;
};

struct ParsedFlags {
  Options options;
  bool help = false;
  std::string error;  // non-empty: what is wrong (the caller prints it with usage() and exits 2)
};

ParsedFlags parse_flags(int argc, const char* const* argv);
std::string usage();

}  // namespace edge::app
