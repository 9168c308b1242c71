// The edge binary and its configuration: --check, --help, and errors with their positions.
#include <doctest/doctest.h>

#include <string>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
struct Run {
  int code;
  std::string output;
};

Run run_edge(const std::vector<std::string>& args) {
  Process p(edge_bin(), args);
  auto code = p.wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  return {*code, p.output()};
}

const char* kValid = R"(workers: 1
listen:
  - address: 127.0.0.1:1
backends:
  app:
    servers: [127.0.0.1:2]
hosts:
  - match: [a.test]
    backend: app
)";
}  // namespace

TEST_CASE("--check accepts a valid file and --help explains itself") {
  TempDir dir;
  std::string path = dir.write("ok.yaml", kValid);
  Run ok = run_edge({"--check", "--config", path});
  CHECK(ok.code == 0);
  Run help = run_edge({"--help"});
  CHECK(help.code == 0);
  CHECK(help.output.find("--config") != std::string::npos);
  CHECK(run_edge({"--bogus"}).code == 2);
  CHECK(run_edge({}).code == 2);
}

TEST_CASE("config errors print file:line:col and exit 2; nothing starts") {
  TempDir dir;
  struct Case {
    const char* name;
    std::string yaml;
    std::string expected;  // "line:col: " prefix and a word of the message
    std::string word;
  };
  const Case cases[] = {
      {"unknown key", std::string(kValid) + "cache_size: 1\n", ":10:1: ", "cache_size"},
      {"typo in limits", "workers: 1\nlimits:\n  header_timout: 1s\n", ":3:3: ", "header_timout"},
      {"bad duration", "workers: 1\nlimits:\n  idle_timeout: soon\n", ":3:17: ", "duration"},
      {"bad size", "workers: 1\nlimits:\n  max_body_bytes: 10q\n", ":3:19: ", "size"},
      {"bad address", "workers: 1\nlisten:\n  - address: 300.1.1.1:80\n", ":3:14: ", "address"},
      {"unknown backend",
       "listen: [{address: 127.0.0.1:1}]\nbackends:\n  app: {servers: [127.0.0.1:2]}\nhosts:\n  - match: a\n    backend: nope\n",
       ":6:14: ", "nope"},
      {"duplicate host",
       "listen: [{address: 127.0.0.1:1}]\nbackends:\n  app: {servers: [127.0.0.1:2]}\nhosts:\n  - {match: a.test, backend: app}\n  - {match: A.test, backend: app}\n",
       ":6:", "a.test"},
      {"wrong type", "workers: [1, 2]\n", ":1:10: ", "workers"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    std::string path = dir.write("bad.yaml", c.yaml);
    Run r = run_edge({"--config", path});
    CHECK(r.code == 2);
    CHECK(r.output.find(path + c.expected) != std::string::npos);
    CHECK(r.output.find(c.word) != std::string::npos);
    CHECK(r.output.find("serving") == std::string::npos);
  }
}

TEST_CASE("a listen address that cannot be bound is reported with its position") {
  TempDir dir;
  App app("holder");  // holds a port
  std::string yaml = "listen:\n  - address: 127.0.0.1:" + std::to_string(app.port) +
                     "\nbackends:\n  app: {servers: [127.0.0.1:2]}\nhosts: [{match: a, backend: app}]\n";
  // SO_REUSEPORT would let two edges share a port, but not with a process that did not ask
  // for it: edge-app does not.
  std::string path = dir.write("busy.yaml", yaml);
  Run r = run_edge({"--config", path});
  CHECK(r.code == 1);
  CHECK(r.output.find(path + ":2:") != std::string::npos);
  CHECK(r.output.find("cannot listen") != std::string::npos);
}

TEST_CASE("the demo's configuration is valid") {
  Run r = run_edge({"--check", "--config", std::string(EDGE_SOURCE_DIR) + "/conf/demo.yaml"});
  CHECK(r.code == 0);
  CAPTURE(r.output);
}
