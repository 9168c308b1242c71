#include "load/options.h"

#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>
#include <utility>

#include "app/query.h"

namespace edge::load {

namespace {

constexpr std::string_view kFlags[] = {"--target", "--seconds",   "--connections", "--seed",        "--data-seed",
                                       "--alpha",  "--signed-in", "--posts",       "--users",       "--host-header",
                                       "--json",   "--progress"};

std::optional<double> parse_number(std::string_view text, double low, double high) {
  double value = 0;
  const char* end = text.data() + text.size();
  // from_chars takes no sign, white space or hex prefix by itself; refuse them all the same.
  if (text.empty() || text[0] == '+' || text[0] == '-' || text[0] == ' ') return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), end, value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != end || !std::isfinite(value) || value < low || value > high) return std::nullopt;
  return value;
}

bool printable_line(std::string_view value) {
  for (char c : value)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

ParsedFlags parse_flags(int argc, const char* const* argv) {
  ParsedFlags out;
  Options& o = out.options;
  bool have_target = false;
  const auto fail = [&](std::string message) {
    out.error = std::move(message);
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    const std::optional<app::Flag> next = app::next_flag(argc, argv, i, kFlags, out.error);
    if (!next) return out;
    if (next->name == "--help") {
      out.help = true;
      continue;
    }
    const std::string_view flag = next->name;
    const std::string_view value = next->value;
    const std::string quoted = "'" + std::string(value) + "'";
    if (flag == "--target") {
      auto target = app::parse_host_port(value);
      if (!target) return fail("--target needs HOST:PORT with a numeric address, not " + quoted);
      o.target = *target;
      have_target = true;
    } else if (flag == "--seconds") {
      auto seconds = parse_number(value, 0, 7 * 24 * 3600);
      if (!seconds || *seconds <= 0) return fail("--seconds needs a number of seconds above 0, not " + quoted);
      o.seconds = *seconds;
    } else if (flag == "--connections") {
      auto n = app::parse_uint(value, 10000);
      if (!n || *n == 0) return fail("--connections needs a number from 1 to 10000, not " + quoted);
      o.connections = static_cast<uint32_t>(*n);
    } else if (flag == "--seed" || flag == "--data-seed") {
      auto seed = app::parse_uint(value);
      if (!seed) return fail(std::string(flag) + " needs a number, not " + quoted);
      (flag == "--seed" ? o.seed : o.data_seed) = *seed;
    } else if (flag == "--alpha") {
      auto alpha = parse_number(value, 0, 10);
      if (!alpha) return fail("--alpha needs a number from 0 to 10, not " + quoted);
      o.alpha = *alpha;
    } else if (flag == "--signed-in" || flag == "--posts") {
      auto share = parse_number(value, 0, 1);
      if (!share) return fail(std::string(flag) + " needs a share from 0 to 1, not " + quoted);
      (flag == "--posts" ? o.posts : o.signed_in) = *share;
    } else if (flag == "--users") {
      auto n = app::parse_uint(value, 65535);
      if (!n || *n == 0) return fail("--users needs a number from 1 to 65535, not " + quoted);
      o.users = static_cast<uint32_t>(*n);
    } else if (flag == "--host-header") {
      if (value.empty() || !printable_line(value) || value.find(' ') != std::string_view::npos)
        return fail("--host-header needs a host name without spaces or control characters, not " + quoted);
      o.host_header = value;
    } else if (flag == "--json") {
      if (value.empty()) return fail("--json needs a file name");
      o.json_path = value;
    } else {
      if (value == "auto") {
        o.progress = Progress::kAuto;
      } else if (value == "on") {
        o.progress = Progress::kOn;
      } else if (value == "off") {
        o.progress = Progress::kOff;
      } else {
        return fail("--progress needs auto, on or off, not " + quoted);
      }
    }
  }
  if (out.help) return out;
  if (!have_target) return fail("--target is required");
  if (o.seconds <= 0) return fail("--seconds is required");
  return out;
}

std::string usage() {
  return "usage: edge-demo-load --target HOST:PORT --seconds N [--connections 32] [--seed 1] [--data-seed 1]\n"
         "                      [--alpha 1.0] [--signed-in 0.10] [--posts 0.01] [--users 50]\n"
         "                      [--host-header localhost] [--json FILE] [--progress auto|on|off]\n"
         "  --target HOST:PORT   the server to load (edge, or an edge-app), numeric address\n"
         "  --seconds N          how long requests are issued (those in flight then are waited for)\n"
         "  --connections N      keep-alive connections, each with one request at a time (default 32)\n"
         "  --seed N             the sequence of requests and which ids are popular (default 1)\n"
         "  --data-seed N        the demo data's seed, the app servers' --seed (default 1)\n"
         "  --alpha X            Zipf exponent of book, author and tag popularity (default 1.0)\n"
         "  --signed-in X        share of page requests sent with a session cookie (default 0.10)\n"
         "  --posts X            share of requests that post a review (default 0.01)\n"
         "  --users N            users signed in before the run (default 50)\n"
         "  --host-header NAME   the Host of every request (default localhost)\n"
         "  --json FILE          also write the results as a JSON object to FILE\n"
         "  --progress MODE      a line a second on stderr: auto (when stderr is a terminal), on, off\n"
         "Pages: home 5%, hot book (a home page pick) 10%, book 50%, author 20%, tag 15%.\n"
         "Exit status: 0 the run completed, 1 it could not start, 2 a bad command line.\n"
         "SIGINT ends the run early, with its results.\n";
}

}  // namespace edge::load
