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
