// The error log as an operator reads it: times and levels, the version, a port another process
// serves refused at start, and health checks' changes.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool is_log_line(std::string_view line) { return log_message(line).size() < line.size(); }

// Polls the process's output until a line's message starts with `prefix`; false after 20 s.
bool eventually_says(Process& process, std::string_view prefix) {
  try {
    wait_for_line(process, prefix, "edge");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}
}  // namespace

TEST_CASE("edge --version prints the version and the build's options") {
  Process p(edge_bin(), {"--version"});
  auto code = p.wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  const std::string out = p.output();
  CAPTURE(out);
  CHECK(out.starts_with("edge "));
  CHECK(out.find_first_of("0123456789") == 5);
  CHECK(contains(out, "\nbuild type: "));
  CHECK(contains(out, "\nsanitizers: "));
  CHECK(contains(out, "\nopenssl: OpenSSL "));
  CHECK(contains(out, "\nlibuv: 1."));
}

TEST_CASE("every line edge writes while it runs carries the time and a level") {
  App app("backend");
  Edge edge(single_backend_config(yaml_address(app.port)));
  CHECK(get(edge.port, "x", "/").status == 200);
  Process& process = edge.process;
  process.kill(SIGTERM);
  REQUIRE(process.wait(std::chrono::seconds(20)) == std::optional<int>(0));
  const std::string output = process.output();
  CAPTURE(output);
  size_t lines = 0;
  for (size_t at = 0; at < output.size();) {
    const size_t end = output.find('\n', at);
    REQUIRE(end != std::string::npos);
    std::string_view line(output.data() + at, end - at);
    CHECK(is_log_line(line));
    at = end + 1;
    ++lines;
  }
  CHECK(lines >= 4);
  CHECK(contains(output, " info edge: starting edge "));
  CHECK(contains(output, " info edge: listening on 127.0.0.1:" + std::to_string(edge.port) + "\n"));
  CHECK(contains(output, " info edge: serving (config "));
  CHECK(contains(output, " info edge: stopping (SIGTERM)"));
  CHECK(contains(output, " info edge: stopped (exit code 0)\n"));
}

TEST_CASE("the start line says when the workers run on io_uring") {
  App app("backend");
  const char* forced = std::getenv("EDGE_IO");  // overrides the file's io
  const bool want_uring = !forced || std::string_view(forced) == "uring";
  Edge edge("io: uring\n" + single_backend_config(yaml_address(app.port)));
  CHECK(get(edge.port, "x", "/").status == 200);
  edge.process.kill(SIGTERM);
  REQUIRE(edge.process.wait(std::chrono::seconds(20)) == std::optional<int>(0));
  const std::string output = edge.process.output();
  CAPTURE(output);
  const bool refused = contains(output, " warn edge: io: uring refused (");
  CHECK(contains(output, "workers, io_uring)\n") == (want_uring && !refused));
}

TEST_CASE("a second edge on a port the first one serves is refused, and the first keeps serving") {
  App app("backend");
  Edge first(single_backend_config(yaml_address(app.port)));
  TempDir dir;
  std::string yaml = single_backend_config(yaml_address(app.port));
  yaml.replace(yaml.find("{{port}}"), 8, std::to_string(first.port));
  const std::string path = dir.write("second.yaml", yaml);
  Process second(edge_bin(), {"--config", path});
  auto code = second.wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  const std::string said = second.output();
  CAPTURE(said);
  // A configuration error, as --check writes them: no time, no level.
  CHECK(said.starts_with(path + ":2:"));
  CHECK(contains(said, ": cannot listen on 127.0.0.1:" + std::to_string(first.port) +
                           ": address already in use by another process\n"));
  CHECK(!contains(said, "serving"));
  for (int i = 0; i < 8; ++i) CHECK(get(first.port, "x", "/").status == 200);
}

TEST_CASE("a health-checked server that goes down and comes back leaves a down and an up line") {
  App a("a");
  auto b = std::make_unique<App>("b");
  const uint16_t b_port = b->port;
  Edge edge(single_backend_config(yaml_address(a.port) + ", " + yaml_address(b_port),
                                  "health: {path: /health, interval: 100ms, timeout: 500ms, rise: 2, fall: 1}"));
  const std::string server = "127.0.0.1:" + std::to_string(b_port);
  b.reset();
  CHECK(eventually_says(edge.process, "edge: backend app server " + server + " is down "));
  b = std::make_unique<App>("b", std::vector<std::string>{"--port", std::to_string(b_port)});
  CHECK(eventually_says(edge.process, "edge: backend app server " + server + " is up "));
  const std::string output = edge.process.output();
  CAPTURE(output);
  CHECK(contains(output, " warn edge: backend app server " + server + " is down after 1 failed health check (last: "));
  CHECK(contains(output, " info edge: backend app server " + server + " is up after 2 passed health checks (last: 200)"));
}

TEST_CASE("a server ejected by passive failures leaves an ejected and a returned line") {
  App a("a");
  auto b = std::make_unique<App>("b");
  const uint16_t b_port = b->port;
  Edge edge(single_backend_config(yaml_address(a.port) + ", " + yaml_address(b_port),
                                  "balance: round_robin\n    eject: {failures: 2, cooldown: 100ms}"));
  const std::string server = "127.0.0.1:" + std::to_string(b_port);
  b.reset();
  // Refused by b, each request moves on to a; the second refusal in a row ejects b.
  const std::string ejected = "edge: backend app server " + server + " ejected for 100 ms after 2 failures in a row";
  for (int i = 0; i < 200 && !contains(edge.process.output(), ejected); ++i) CHECK(get(edge.port, "x", "/").status == 200);
  CHECK(eventually_says(edge.process, ejected));
  b = std::make_unique<App>("b", std::vector<std::string>{"--port", std::to_string(b_port)});
  const std::string returned = "edge: backend app server " + server + " returned after passive ejection";
  for (int i = 0; i < 2000 && !contains(edge.process.output(), returned); ++i) {
    CHECK(get(edge.port, "x", "/").status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(eventually_says(edge.process, returned));
  const std::string output = edge.process.output();
  CAPTURE(output);
  CHECK(contains(output, " warn " + ejected + "\n"));
  CHECK(contains(output, " info " + returned + "\n"));
}
