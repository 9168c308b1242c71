// cli/top_command: `edge top`, GET /top of an admin port watched live in a terminal, as top
// shows processes.
//
//   edge top --admin HOST:PORT --token-file FILE [--window 10s|1m|10m|1h]
//            [--by requests|bytes|misses|backend_time] [--host H] [-n N] [--interval SECONDS] [--once]
//
// Every interval (1 s unless told) it asks the port (Authorization: Bearer <token>, the token
// file's content trimmed of white space as admin.token_file is) and draws the answer in the
// terminal's alternate screen, in place (cli/top_view.h lays it out, escaping whatever a client
// chose). The terminal is in cbreak mode while it runs, and given back as it was on every way
// out: `q`, SIGINT, SIGTERM, SIGHUP (each an exit 0), an error; the suspend key is off meanwhile,
// so a stopped view cannot leave the shell in those modes. Keys: q quits, w cycles the window, b
// the weight, + and - change the number of rows asked (by 5; by 1 below 5). SIGWINCH redraws at
// the new size. A failed request
// (refused, timed out, 401, 503 while edge stops, an answer that does not parse) is said on the
// status line with the last good ranking kept, and asked again at the next interval.
//
// With --once, or when stdout is not a terminal, it prints one snapshot as plain text (cut to
// the terminal's width when stdout is one) and exits: 0, or 1 with the reason on stderr. Bad
// arguments: the usage on stderr, exit 2.
//
// Blocking: each request is one http::OneShot run on a loop of its own, bounded by a time-out;
// the process must ignore SIGPIPE (run_top does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "top/windows.h"

namespace edge::cli {

struct TopOptions {
  std::string admin;       // as given: "127.0.0.1:9090"
  std::string token_file;
  top::Query query;
  double interval_seconds = 1.0;
  bool once = false;
};

// The arguments after "top"; nullopt with `error` for a bad or missing one (--help: nullopt and
// an empty error).
std::optional<TopOptions> parse_top_options(const std::vector<std::string>& args, std::string& error);

// GET /top's target for a query: "/top?window=1m&by=requests&n=20[&host=...]".
std::string top_target(const top::Query& query);

// The usage text of `edge top`.
const char* top_usage();

// `edge top ...`: argv[1] is "top". Returns the process's exit code.
int run_top(int argc, char** argv);

}  // namespace edge::cli
