// The access log through the real binaries: one JSON line per request with what the client saw,
// and a new file after the old one was moved and edge got SIGUSR1.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// The file's lines once it has at least `count` of them (the writer thread writes in batches);
// what it has after a generous wait otherwise, for the checks to show.
std::vector<std::string> wait_for_lines(const std::string& path, size_t count) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<std::string> lines = lines_of(path);
  while (lines.size() < count && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    lines = lines_of(path);
  }
  return lines;
}

// The raw JSON value of `key` in a line of the log (a string keeps its quotes).
std::string field(const std::string& line, const std::string& key) {
  const std::string name = "\"" + key + "\":";
  const size_t at = line.find(name);
  if (at == std::string::npos) return "<absent>";
  size_t start = at + name.size();
  size_t end = start;
  if (line[start] == '"') {
    for (end = start + 1; end < line.size() && line[end] != '"'; ++end)
      if (line[end] == '\\') ++end;
    ++end;
  } else {
    while (end < line.size() && line[end] != ',' && line[end] != '}') ++end;
  }
  return line.substr(start, end - start);
}

}  // namespace

TEST_CASE("access log: one JSON line per request, and a new file after SIGUSR1") {
  App app("origin");
  Edge edge("workers: 1\n"
            "listen: [{address: \"127.0.0.1:{{port}}\"}]\n"
            "cache: {memory: 64m, max_object: 1m}\n"
            "access_log: {path: access.log, format: json}\n"
            "backends:\n"
            "  app: {servers: [" + yaml_address(app.port) + "]}\n"
            "hosts:\n"
            "  - match: [\"*\"]\n"
            "    backend: app\n");
  const std::string path = edge.dir.path() + "/access.log";
  const std::string server = "\"127.0.0.1:" + std::to_string(app.port) + "\"";

  Response miss = get(edge.port, "shop.example", "/static/app.js");
  Response hit = get(edge.port, "shop.example", "/static/app.js");
  Response pass = get(edge.port, "shop.example", "/bytes?n=10");
  Response not_found = get(edge.port, "shop.example", "/status?code=404");
  CHECK(miss.status == 200);
  CHECK(hit.status == 200);
  CHECK(pass.status == 200);
  CHECK(not_found.status == 404);

  std::vector<std::string> lines = wait_for_lines(path, 4);
  REQUIRE(lines.size() == 4);
  for (const std::string& line : lines) {
    CAPTURE(line);
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    CHECK(field(line, "host") == "\"shop.example\"");
    CHECK(field(line, "method") == "\"GET\"");
    CHECK(field(line, "client") == "\"127.0.0.1\"");
    CHECK(field(line, "worker") == "0");
    CHECK(field(line, "retries") == "0");
    CHECK(field(line, "total_ms") != "<absent>");
  }
  CAPTURE(lines[0]);
  CAPTURE(lines[1]);
  CAPTURE(lines[2]);
  CAPTURE(lines[3]);
  CHECK(field(lines[0], "target") == "\"/static/app.js\"");
  CHECK(field(lines[0], "status") == "200");
  CHECK(field(lines[0], "cache") == "\"MISS\"");
  CHECK(field(lines[0], "backend") == "\"app\"");
  CHECK(field(lines[0], "server") == server);
  CHECK(field(lines[0], "ttfb_ms") != "null");
  // The bytes written, head included: more than the body.
  CHECK(std::stoul(field(lines[0], "bytes")) > miss.body.size());

  CHECK(field(lines[1], "cache") == "\"HIT\"");
  CHECK(field(lines[1], "status") == "200");
  CHECK(field(lines[1], "backend") == "null");
  CHECK(field(lines[1], "server") == "null");
  CHECK(field(lines[1], "ttfb_ms") == "null");
  CHECK(std::stoul(field(lines[1], "bytes")) > hit.body.size());

  CHECK(field(lines[2], "target") == "\"/bytes?n=10\"");
  CHECK(field(lines[2], "cache") == "\"PASS\"");
  CHECK(field(lines[2], "status") == "200");
  CHECK(field(lines[2], "backend") == "\"app\"");
  CHECK(field(lines[2], "server") == server);
  CHECK(std::stoul(field(lines[2], "bytes")) > 10);

  CHECK(field(lines[3], "target") == "\"/status?code=404\"");
  CHECK(field(lines[3], "status") == "404");
  CHECK(field(lines[3], "backend") == "\"app\"");
  CHECK(field(lines[3], "server") == server);

  // logrotate: the file is moved, edge is told, and the next line starts a new file.
  REQUIRE(std::rename(path.c_str(), (path + ".1").c_str()) == 0);
  edge.process.kill(SIGUSR1);
  // The writer reopens as soon as it hears of the signal, lines or not: once the file is there,
  // every later line goes to it.
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(std::filesystem::exists(path));
  Response after = get(edge.port, "shop.example", "/static/app.js");
  CHECK(after.status == 200);
  std::vector<std::string> fresh = wait_for_lines(path, 1);
  REQUIRE(fresh.size() == 1);
  CHECK(field(fresh[0], "cache") == "\"HIT\"");
  CHECK(lines_of(path + ".1").size() == 4);
}

TEST_CASE("access log: a hostile request line and fields stay one line in the combined format") {
  App app("origin");
  Edge edge("workers: 1\n"
            "listen: [{address: \"127.0.0.1:{{port}}\"}]\n"
            "access_log: {path: combined.log}\n"
            "backends:\n"
            "  app: {servers: [" + yaml_address(app.port) + "]}\n"
            "hosts:\n"
            "  - match: [\"*\"]\n"
            "    backend: app\n");
  const std::string path = edge.dir.path() + "/combined.log";
  {
    Client client(edge.port);
    REQUIRE(client.send("GET /bytes?n=1&x=%22%0a HTTP/1.1\r\nHost: shop.example\r\n"
                        "User-Agent: \"} fake\" 200 1 \"-\" \"-\"\tend\r\nReferer: a\\\"b\r\n\r\n"));
    Response r = client.read_response();
    CHECK(r.status == 200);
  }
  {
    // Bytes the parser refuses: the request is answered 400, and logged all the same.
    Client client(edge.port);
    REQUIRE(client.send("GET /x HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: a\x7f\xff\r\n\r\n"));
    Response r = client.read_response();
    CHECK(r.status == 400);
  }
  std::vector<std::string> lines = wait_for_lines(path, 2);
  REQUIRE(lines.size() == 2);
  CAPTURE(lines[0]);
  CAPTURE(lines[1]);
  CHECK(lines[0].rfind("127.0.0.1 - - [", 0) == 0);
  CHECK(lines[0].find("\"GET /bytes?n=1&x=%22%0a HTTP/1.1\" 200 ") != std::string::npos);
  CHECK(lines[0].find("\"\\\"} fake\\\" 200 1 \\\"-\\\" \\\"-\\\"\\x09end\"") != std::string::npos);
  CHECK(lines[0].find("\"a\\\\\\\"b\"") != std::string::npos);
  CHECK(lines[0].find(" host=\"shop.example\" cache=PASS backend=app server=127.0.0.1:") != std::string::npos);
  CHECK(lines[1].rfind("127.0.0.1 - - [", 0) == 0);
  CHECK(lines[1].find("\"GET /x HTTP/1.1\" 400 ") != std::string::npos);
  CHECK(lines[1].find(" cache=- backend=- server=- ") != std::string::npos);
}
