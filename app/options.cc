#include "app/options.h"

#include <uv.h>

#include <algorithm>
#include <string_view>

#include "app/query.h"

namespace edge::app {

std::optional<Flag> next_flag(int argc, const char* const* argv, int& i, std::span<const std::string_view> known,
                              std::string& error) {
  const std::string_view arg = argv[i];
  if (arg == "--help" || arg == "-h") return Flag{"--help", {}};
  Flag flag{arg, {}};
  bool has_value = false;
  if (size_t eq = arg.find('='); arg.substr(0, 2) == "--" && eq != std::string_view::npos) {
    flag = {arg.substr(0, eq), arg.substr(eq + 1)};
    has_value = true;
  }
  if (std::find(known.begin(), known.end(), flag.name) == known.end()) {
    error = "unknown flag: " + std::string(arg);
    return std::nullopt;
  }
  if (!has_value) {
    if (i + 1 >= argc) {
      error = "missing value for " + std::string(flag.name);
      return std::nullopt;
    }
    flag.value = argv[++i];
  }
  return flag;
}

ParsedFlags parse_flags(int argc, const char* const* argv) {
  static constexpr std::string_view kFlags[] = {"--host",         "--port",   "--name",  "--idle-timeout-ms",
                                                "--drop-after",   "--seed",   "--admin", "--admin-token-file",
                                                "--store",        "--store-busy-timeout-ms"};
  ParsedFlags out;
  for (int i = 1; i < argc; ++i) {
    const std::optional<Flag> next = next_flag(argc, argv, i, kFlags, out.error);
    if (!next) return out;
    if (next->name == "--help") {
      out.help = true;
      continue;
    }
    const std::string_view flag = next->name;
    const std::string_view value = next->value;
    if (flag == "--host") {
      if (value.empty()) {
        out.error = "--host needs an address";
        return out;
      }
      out.options.host = value;
    } else if (flag == "--port") {
      auto port = parse_uint(value, 65535);
      if (!port) {
        out.error = "--port needs a number from 0 to 65535, not '" + std::string(value) + "'";
        return out;
      }
      out.options.port = static_cast<uint16_t>(*port);
    } else if (flag == "--name") {
      // The name goes into a header field: keep it printable and on one line.
      for (char c : value) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out.error = "--name must not contain control characters";
          return out;
        }
      }
      if (value.empty()) {
        out.error = "--name needs a value";
        return out;
      }
      out.options.name = value;
    } else if (flag == "--drop-after") {
      auto n = parse_uint(value, UINT32_MAX);
      if (!n) {
        out.error = "--drop-after needs a number of responses, not '" + std::string(value) + "'";
        return out;
      }
      out.options.drop_after = *n;
    } else if (flag == "--seed") {
      auto seed = parse_uint(value);
      if (!seed) {
        out.error = "--seed needs a number, not '" + std::string(value) + "'";
        return out;
      }
      out.options.seed = *seed;
    } else if (flag == "--admin") {
      out.options.admin = parse_host_port(value);
      if (!out.options.admin) {
        out.error = "--admin needs HOST:PORT with a numeric address, not '" + std::string(value) + "'";
        return out;
      }
    } else if (flag == "--admin-token-file") {
      if (value.empty()) {
        out.error = "--admin-token-file needs a path";
        return out;
      }
      out.options.admin_token_file = value;
    } else if (flag == "--store") {
      if (!value.starts_with("sqlite:") && !value.starts_with("postgresql://") && !value.starts_with("postgres://")) {
        out.error = "--store needs sqlite:PATH or postgresql://..., not '" + std::string(value) + "'";
        return out;
      }
      out.options.store = value;
    } else if (flag == "--store-busy-timeout-ms") {
      auto ms = parse_uint(value, 10 * 60 * 1000);
      if (!ms) {
        out.error = "--store-busy-timeout-ms needs a number of milliseconds up to 600000, not '" + std::string(value) + "'";
        return out;
      }
      out.options.store_busy_timeout_ms = *ms;
    } else {
      auto ms = parse_uint(value, UINT32_MAX);
      if (!ms) {
        out.error = "--idle-timeout-ms needs a number of milliseconds, not '" + std::string(value) + "'";
        return out;
      }
      out.options.idle_timeout_ms = *ms;
    }
  }
  if (out.options.admin.has_value() != !out.options.admin_token_file.empty())
    out.error = "--admin and --admin-token-file go together";
  return out;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host, port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return std::nullopt;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  auto port = parse_uint(port_text, 65535);
  if (!port || *port == 0 || host.empty()) return std::nullopt;
  HostPort out{std::string(host == "localhost" ? "127.0.0.1" : host), static_cast<uint16_t>(*port)};
  // Only numeric addresses: the loop never waits for a resolver.
  sockaddr_in v4;
  sockaddr_in6 v6;
  if (uv_ip4_addr(out.host.c_str(), 0, &v4) != 0 && uv_ip6_addr(out.host.c_str(), 0, &v6) != 0) return std::nullopt;
  return out;
}

std::string usage() {
  return "usage: edge-app [--host ADDR] [--port N] [--name NAME] [--idle-timeout-ms N] [--drop-after N]\n"
         "                [--seed N] [--admin HOST:PORT --admin-token-file PATH] [--store SPEC]\n"
         "                [--store-busy-timeout-ms N]\n"
         "  --host ADDR            address to listen on (default 127.0.0.1)\n"
         "  --port N               port to listen on (default 8080; 0 picks a free one)\n"
         "  --name NAME            sent back in X-Backend on every response (default edge-app)\n"
         "  --idle-timeout-ms N    close keep-alive connections idle this long (default 60000; 0: never)\n"
         "  --drop-after N         after N responses on a connection, close it when the next request\n"
         "                         arrives, without answering (default 0: never)\n"
         "  --seed N               the demo site's data set (default 1)\n"
         "  --admin HOST:PORT      the edge's admin port: posting a review purges its tag there\n"
         "  --admin-token-file P   the admin port's bearer token (with --admin)\n"
         "  --store SPEC           where sessions, posted reviews and views live, shared by every\n"
         "                         server given the same one: sqlite:PATH (a SQLite file, WAL mode) or\n"
         "                         postgresql://USER@HOST:PORT/DB (default sqlite::memory:, this\n"
         "                         server's own)\n"
         "  --store-busy-timeout-ms N  how long a write waits for a busy store before the request\n"
         "                         gets 503 (default 5000)\n"
         "One thread, one libuv loop. Endpoints: /health /echo /stats /bytes?n= /wait?ms= /cpu?ms=\n"
         "/static/<name>.css|js|png /status?code= /headers?k=v /chunked?n= /slowhead?ms= /close\n"
         "/garbage /truncate /ws (a WebSocket echo; ?close_after=N&greeting=TEXT), and the demo site\n"
         "at / (pages made of ESI fragments under /fragments/).\n"
         "SIGTERM or SIGINT stops it cleanly.\n";
}

}  // namespace edge::app
