// app/options: edge-app's command line.
//
//   edge-app [--host ADDR] [--port N] [--name NAME] [--idle-timeout-ms N] [--drop-after N]
//            [--seed N] [--admin HOST:PORT --admin-token-file PATH] [--store SPEC]
//            [--store-busy-timeout-ms N] [--help]
//
// Each flag takes its value as the next argument or after '=' (--port=8210). --admin and
// --admin-token-file come together or not at all; the token file is read by main, not here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace edge::app {

// A numeric IPv4 or IPv6 address (without brackets) and a port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:9090", "[::1]:9090" or "localhost:9090" (taken as 127.0.0.1); port 1..65535.
std::optional<HostPort> parse_host_port(std::string_view text);

struct Options {
  std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 8080;            // 0: any free port (printed at start)
  std::string name = "edge-app";   // sent back as X-Backend
  uint64_t idle_timeout_ms = 60 * 1000;  // 0: never close idle connections
  // After this many responses on one connection, the next request on it is answered by closing
  // the connection without a word: the race a proxy meets when a backend drops a kept-alive
  // connection just as it reuses it. 0: never.
  uint64_t drop_after = 0;
  uint64_t seed = 1;  // the demo site's data (app/demo_data.h)
  // The edge's admin port, purged when the demo's data changes (app/admin_client.h); none: no
  // purges are attempted.
  std::optional<HostPort> admin;
  std::string admin_token_file;  // the bearer token for `admin`; set exactly when admin is
  // The demo's store (app/store.h: "sqlite:PATH" or "postgresql://..."); main opens it. Only the
  // scheme is checked here.
  std::string store = "sqlite::memory:";
  uint64_t store_busy_timeout_ms = 5000;
};

struct ParsedFlags {
  Options options;
  bool help = false;
  std::string error;  // non-empty: what is wrong (the caller prints it with usage() and exits 2)
};

ParsedFlags parse_flags(int argc, const char* const* argv);
std::string usage();

// One flag of a command line, as edge-app's and edge-demo-load's take them: "--flag value" or
// "--flag=value", and --help or -h alone (returned as "--help", no value).
struct Flag {
  std::string_view name;
  std::string_view value;
};
// The flag at argv[i], one of `known`; `i` moves past its value. nullopt with `error` set for a
// flag not known or a value missing.
std::optional<Flag> next_flag(int argc, const char* const* argv, int& i, std::span<const std::string_view> known,
                              std::string& error);

}  // namespace edge::app
