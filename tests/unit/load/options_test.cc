#include "load/options.h"

#include <doctest/doctest.h>

#include <vector>

using namespace edge::load;

namespace {
ParsedFlags parse(std::vector<const char*> args) {
  args.insert(args.begin(), "edge-demo-load");
  return parse_flags(static_cast<int>(args.size()), args.data());
}
}  // namespace

TEST_CASE("load options: defaults") {
  ParsedFlags f = parse({"--target", "127.0.0.1:8080", "--seconds", "10"});
  REQUIRE(f.error.empty());
  CHECK_FALSE(f.help);
  CHECK(f.options.target.host == "127.0.0.1");
  CHECK(f.options.target.port == 8080);
  CHECK(f.options.seconds == 10);
  CHECK(f.options.connections == 32);
  CHECK(f.options.seed == 1);
  CHECK(f.options.data_seed == 1);
  CHECK(f.options.alpha == 1.0);
  CHECK(f.options.signed_in == doctest::Approx(0.10));
  CHECK(f.options.posts == doctest::Approx(0.01));
  CHECK(f.options.users == 50);
  CHECK(f.options.host_header == "localhost");
  CHECK(f.options.json_path.empty());
  CHECK(f.options.progress == Progress::kAuto);
}

TEST_CASE("load options: every flag, in both spellings") {
  ParsedFlags f = parse({"--target=[::1]:9000", "--seconds=2.5", "--connections", "4", "--seed=7", "--data-seed",
                         "3", "--alpha=0.8", "--signed-in", "0.5", "--posts=0", "--users", "10", "--host-header",
                         "demo.localhost", "--json=/tmp/out.json", "--progress", "off"});
  REQUIRE(f.error.empty());
  CHECK(f.options.target.host == "::1");
  CHECK(f.options.target.port == 9000);
  CHECK(f.options.seconds == 2.5);
  CHECK(f.options.connections == 4);
  CHECK(f.options.seed == 7);
  CHECK(f.options.data_seed == 3);
  CHECK(f.options.alpha == doctest::Approx(0.8));
  CHECK(f.options.signed_in == doctest::Approx(0.5));
  CHECK(f.options.posts == 0);
  CHECK(f.options.users == 10);
  CHECK(f.options.host_header == "demo.localhost");
  CHECK(f.options.json_path == "/tmp/out.json");
  CHECK(f.options.progress == Progress::kOff);
  CHECK(parse({"--target", "localhost:80", "--seconds", "1", "--progress=on"}).options.progress == Progress::kOn);
  CHECK(parse({"--help"}).help);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"--help"}).error.empty());  // help needs no target
}

TEST_CASE("load options: bad command lines are errors") {
  const auto error = [](std::vector<const char*> extra) {
    std::vector<const char*> args = {"--target", "127.0.0.1:8080", "--seconds", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return parse(args).error;
  };
  CHECK(parse({"--seconds", "1"}).error == "--target is required");
  CHECK(parse({"--target", "127.0.0.1:1"}).error == "--seconds is required");
  CHECK(error({"--bogus"}) == "unknown flag: --bogus");
  CHECK(error({"--connections"}) == "missing value for --connections");
  CHECK_FALSE(error({"--target", "example.com:80"}).empty());  // numeric addresses only
  CHECK_FALSE(error({"--target", "127.0.0.1"}).empty());
  CHECK_FALSE(error({"--target", "127.0.0.1:0"}).empty());
  CHECK_FALSE(error({"--seconds", "0"}).empty());
  CHECK_FALSE(error({"--seconds", "-1"}).empty());
  CHECK_FALSE(error({"--seconds", "soon"}).empty());
  CHECK_FALSE(error({"--seconds", "1e3"}).empty());
  CHECK_FALSE(error({"--connections", "0"}).empty());
  CHECK_FALSE(error({"--connections", "10001"}).empty());
  CHECK_FALSE(error({"--alpha", "-0.5"}).empty());
  CHECK_FALSE(error({"--alpha", "nan"}).empty());
  CHECK_FALSE(error({"--signed-in", "1.5"}).empty());
  CHECK_FALSE(error({"--posts", "+0.1"}).empty());
  CHECK_FALSE(error({"--users", "0"}).empty());
  CHECK_FALSE(error({"--seed", "x"}).empty());
  CHECK_FALSE(error({"--host-header", "a b"}).empty());
  CHECK_FALSE(error({"--host-header", ""}).empty());
  CHECK_FALSE(error({"--json="}).empty());
  CHECK(error({"--progress", "sometimes"}) == "--progress needs auto, on or off, not 'sometimes'");
  CHECK_FALSE(usage().empty());
}
