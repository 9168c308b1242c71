#include "app/options.h"

#include <doctest/doctest.h>

#include <vector>

using namespace edge::app;

namespace {
ParsedFlags parse(std::vector<const char*> args) {
  args.insert(args.begin(), "edge-app");
  return parse_flags(static_cast<int>(args.size()), args.data());
}
}  // namespace

TEST_CASE("defaults") {
  ParsedFlags f = parse({});
  CHECK(f.error.empty());
  CHECK_FALSE(f.help);
  CHECK(f.options.host == "127.0.0.1");
  CHECK(f.options.port == 8080);
  CHECK(f.options.name == "edge-app");
  CHECK(f.options.idle_timeout_ms == 60000);
}

TEST_CASE("every flag, in both spellings") {
  ParsedFlags f = parse({"--port", "8210", "--name=books-1", "--host", "::1", "--idle-timeout-ms=250"});
  CHECK(f.error.empty());
  CHECK(f.options.port == 8210);
  CHECK(f.options.name == "books-1");
  CHECK(f.options.host == "::1");
  CHECK(f.options.idle_timeout_ms == 250);
  CHECK(parse({"--help"}).help);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"--port=0"}).options.port == 0);
}

TEST_CASE("bad flags are errors") {
  CHECK(parse({"--bogus"}).error == "unknown flag: --bogus");
  CHECK(parse({"--port"}).error == "missing value for --port");
  CHECK(parse({"--port", "65536"}).error == "--port needs a number from 0 to 65535, not '65536'");
  CHECK_FALSE(parse({"--port", "-1"}).error.empty());
  CHECK_FALSE(parse({"--port="}).error.empty());
  CHECK_FALSE(parse({"--name="}).error.empty());
  CHECK_FALSE(parse({"--name", "a\nb"}).error.empty());
  CHECK_FALSE(parse({"--idle-timeout-ms", "soon"}).error.empty());
  CHECK_FALSE(parse({"port", "1"}).error.empty());
  CHECK_FALSE(usage().empty());
}

TEST_CASE("demo flags: --seed, and --admin with --admin-token-file") {
  ParsedFlags f = parse({});
  CHECK(f.options.seed == 1);
  CHECK_FALSE(f.options.admin);
  CHECK(f.options.admin_token_file.empty());

  f = parse({"--seed", "42", "--admin=127.0.0.1:9090", "--admin-token-file", "conf/demo-admin.token"});
  CHECK(f.error.empty());
  CHECK(f.options.seed == 42);
  REQUIRE(f.options.admin);
  CHECK(f.options.admin->host == "127.0.0.1");
  CHECK(f.options.admin->port == 9090);
  CHECK(f.options.admin_token_file == "conf/demo-admin.token");

  CHECK(parse({"--admin", "127.0.0.1:9090"}).error == "--admin and --admin-token-file go together");
  CHECK(parse({"--admin-token-file", "t"}).error == "--admin and --admin-token-file go together");
  CHECK_FALSE(parse({"--admin", "admin.example:9090", "--admin-token-file", "t"}).error.empty());
  CHECK_FALSE(parse({"--seed", "-1"}).error.empty());
  CHECK_FALSE(parse({"--admin-token-file="}).error.empty());
}

TEST_CASE("parse_host_port") {
  auto v4 = parse_host_port("127.0.0.1:9090");
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 9090);
  auto v6 = parse_host_port("[::1]:8080");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8080);
  CHECK(parse_host_port("localhost:1")->host == "127.0.0.1");
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", ":9090", "::1:9090", "[::1]9090",
                          "[127.0.0.1]:9090", "example.com:80", "[::1:80"})
    CHECK_MESSAGE(!parse_host_port(bad), bad);
}
