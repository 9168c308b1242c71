// load/options: edge-demo-load's command line.
//
//   edge-demo-load --target HOST:PORT --seconds N [--connections 32] [--seed 1] [--data-seed 1]
//                  [--alpha 1.0] [--signed-in 0.10] [--posts 0.01] [--users 50] [--host-header localhost]
//                  [--json FILE] [--progress auto|on|off] [--help]
//
// Each flag takes its value as the next argument or after '=' (--seconds=10). Pure: nothing is
// opened or resolved here (the target is a numeric address; --users is checked against the data
// by main, which knows its sizes).
#pragma once

#include <cstdint>
#include <string>

#include "app/options.h"

namespace edge::load {

enum class Progress : uint8_t { kAuto, kOn, kOff };

struct Options {
  app::HostPort target;  // required
  double seconds = 0;    // required: how long requests are issued, > 0
  uint32_t connections = 32;
  uint64_t seed = 1;       // the requests' sequence (each connection's) and the ids' popularity
  uint64_t data_seed = 1;  // the demo data's seed: the app servers' --seed
  double alpha = 1.0;      // the Zipf exponent
  double signed_in = 0.10; // share of page requests with a session cookie
  double posts = 0.01;     // share of requests that post a review
  uint32_t users = 50;     // users signed in before the run
  std::string host_header = "localhost";
  std::string json_path;  // empty: no JSON file
  Progress progress = Progress::kAuto;
};

struct ParsedFlags {
  Options options;
  bool help = false;
  std::string error;  // non-empty: what is wrong (the caller prints it with usage() and exits 2)
};

ParsedFlags parse_flags(int argc, const char* const* argv);
std::string usage();

}  // namespace edge::load
