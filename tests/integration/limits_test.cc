// Hostile and malformed clients: every one gets its 4xx and a closed connection, never a
// forwarded request, and the timeouts and limits of the `limits:` section hold.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {


void expect_refused(uint16_t port, const std::string& raw, int status) {
  Client client(port);
  client.send(raw);
  Response r = client.read_response();
  CHECK(r.status == status);
  CHECK(r.header("Connection") == std::string_view("close"));
  CHECK(client.wait_closed());
}
}  // namespace

TEST_CASE("malformed and smuggling-shaped requests get 4xx, are closed, and never reach the backend") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "max_header_bytes: 2k, max_request_line: 1k, max_body_bytes: 1k"));
  long before = app_stat(app.port, "served");
  struct Case {
    std::string name, raw;
    int status;
  };
  const std::vector<Case> cases = {
      {"CL and TE", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"two CLs", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400},
      {"bad chunk size", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\nabc\r\n", 400},
      {"bad header name", "GET /echo HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400},
      {"bad header value", std::string("GET /echo HTTP/1.1\r\nHost: a\r\nX: a\x7f\x01\r\n\r\n"), 400},
      {"missing Host", "GET /echo HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"bad version", "GET /echo HTTP/3.1\r\nHost: a\r\n\r\n", 505},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
      {"unknown method", "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"not http", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400},
      {"long request line", "GET /" + std::string(1500, 'x') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"huge head", "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(3000, 'y') + "\r\n\r\n", 431},
      {"body too large", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413},
      {"chunked body too large",
       "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + std::string(2048, 'z') + "\r\n0\r\n\r\n", 413},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    expect_refused(edge.port, c.raw, c.status);
  }
  CHECK(app_stat(app.port, "served") == before + 1);  // only the first /stats call reached it
}

TEST_CASE("header_timeout: a head that dribbles in gets 408 and is closed (slowloris)") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "header_timeout: 1s, idle_timeout: 30s"));
  Client client(edge.port, std::chrono::seconds(10));
  client.send("GET /echo HTTP/1.1\r\n");
  client.send("Host: a\r\n");
  client.send("X-Slow: 1\r\n");  // never finished
  Response r = client.read_response();
  CHECK(r.status == 408);
  CHECK(client.wait_closed());

  // A connection that sends nothing at all is closed without a word.
  Client silent(edge.port, std::chrono::seconds(10));
  CHECK(silent.wait_closed());
}

TEST_CASE("idle_timeout closes a kept-alive connection; body_timeout a stalled upload") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "idle_timeout: 1s, body_timeout: 1s, header_timeout: 30s"));
  Client idle(edge.port);
  idle.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(idle.read_response().status == 200);
  CHECK(idle.wait_closed());

  Client upload(edge.port);
  upload.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part");
  Response r = upload.read_response();
  CHECK(r.status == 408);
  CHECK(upload.wait_closed());
}

TEST_CASE("max_connections: one over the cap is told 503 and closed; the others keep working") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port), "", "max_connections: 3"));
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(edge.port));
    held.back()->send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(held.back()->read_response().status == 200);
  }
  Client extra(edge.port);
  Response r = extra.read_response();
  CHECK(r.status == 503);
  CHECK(extra.wait_closed());
  held[0]->send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(held[0]->read_response().status == 200);
  held.clear();
  // Freed slots are taken again (the edge notices the closes asynchronously: retry briefly).
  int status = 0;
  for (int attempt = 0; attempt < 50 && status != 200; ++attempt) {
    status = get(edge.port, "a", "/health").status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(status == 200);
}

TEST_CASE("a client that leaves mid-request does not disturb the next one") {
  App app("app");
  Edge edge(single_backend_config(yaml_address(app.port)));
  for (int i = 0; i < 20; ++i) {
    Client c(edge.port);
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nabc");
  }
  {
    Client c(edge.port);
    c.send("GET /wait?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n");
  }
  CHECK(get(edge.port, "a", "/health").status == 200);
}
