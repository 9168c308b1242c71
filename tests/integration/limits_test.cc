// Hostile and malformed clients: every one gets its 4xx and a closed connection, never a
// forwarded request, and the timeouts and limits of the `limits:` section hold.
#include <doctest/doctest.h>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr char kToken[] = "limits-test-token";

// An edge with one backend and an admin port, to read the bounds' counters from /stats.
struct Watched {
  Watched(const std::string& servers, const std::string& backend_extra, const std::string& limits,
          const std::string& more = "")
      : edge(single_backend_config(servers, backend_extra, limits) + "admin:\n  address: \"127.0.0.1:0\"\n  token_file: \"" +
             secrets.write("admin.token", kToken) + "\"\n" + more),
        admin_port(edge.admin_port) {
    REQUIRE(wait_for_port(admin_port));
  }
  // A figure of a section ("limits" unless told) of the admin port's /stats.
  long stat(const std::string& name, const std::string& of = "\"limits\":{") {
    Response r = exchange(admin_port, "GET /stats HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " +
                                          std::string(kToken) + "\r\nConnection: close\r\n\r\n");
    const size_t section = r.body.find(of);
    const size_t at = r.body.find("\"" + name + "\":", section);
    if (section == std::string::npos || at == std::string::npos)
      throw std::runtime_error("no " + name + " in /stats: " + r.body);
    return std::stol(r.body.substr(at + name.size() + 3));
  }

  TempDir secrets;
  Edge edge;
  uint16_t admin_port;
};

bool pattern_ok(const std::string& body) {
  for (size_t i = 0; i < body.size(); ++i)
    if (body[i] != static_cast<char>('a' + i % 26)) return false;
  return true;
}

// Reads the body of a /bytes response of `size` bytes slowly (a short pause between reads),
// calling `during` every so often. Returns what it got of the body.
template <typename During>
std::string read_slowly(Client& client, size_t size, During during) {
  std::string received;
  size_t head_end = std::string::npos;
  for (int i = 0;; ++i) {
    std::string more = client.read_some(64 * 1024);
    if (more.empty()) break;
    received += more;
    if (head_end == std::string::npos) head_end = received.find("\r\n\r\n");
    if (head_end != std::string::npos && received.size() - head_end - 4 >= size) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (i % 64 == 0) during();
  }
  return head_end == std::string::npos ? std::string() : received.substr(head_end + 4);
}


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

TEST_CASE("a slowloris connection is counted once, under header_timeout; a request is counted") {
  App app("app");
  Watched w(yaml_address(app.port), "", "header_timeout: 1s, idle_timeout: 30s");
  const std::string closes = "\"closes\":{";
  // Every reason but client_closed, which the harness's own probes of the port may still add to.
  auto closes_counted = [&] {
    long sum = 0;
    for (const char* reason : {"keep_alive_done", "idle_timeout", "header_timeout", "body_timeout",
                               "slow_upload", "send_timeout", "bad_request", "client_abort", "write_error",
                               "upstream_broken", "too_many_connections", "shutdown"})
      sum += w.stat(reason, closes);
    return sum;
  };
  const long requests_before = w.stat("requests", "\"connections\":{");
  const long header_timeouts_before = w.stat("header_timeout", closes);
  const long keep_alive_done_before = w.stat("keep_alive_done", closes);
  const long closes_before = closes_counted();
  {
    Client slow(w.edge.port, std::chrono::seconds(10));
    slow.send("GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n");  // never finished
    CHECK(slow.read_response().status == 408);
    CHECK(slow.wait_closed());
  }
  {
    Client done(w.edge.port);
    done.send("GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    CHECK(done.read_response().status == 200);
    CHECK(done.wait_closed());
  }
  // Both connections are counted once they are closed on edge's side too.
  for (int i = 0; i < 500 && closes_counted() < closes_before + 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(w.stat("header_timeout", closes) == header_timeouts_before + 1);
  CHECK(w.stat("keep_alive_done", closes) == keep_alive_done_before + 1);
  CHECK(closes_counted() == closes_before + 2);
  CHECK(w.stat("requests", "\"connections\":{") == requests_before + 1);
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

TEST_CASE("max_header_fields: one field too many gets 431 and is closed; the limit itself passes") {
  App app("app");
  Watched w(yaml_address(app.port), "", "max_header_fields: 20");
  auto head_with = [](int fields) {
    std::string req = "GET /health HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < fields; ++i) req += "X-F" + std::to_string(i) + ": v\r\n";
    return req + "\r\n";
  };
  Client ok(w.edge.port);
  ok.send(head_with(20));
  CHECK(ok.read_response().status == 200);
  expect_refused(w.edge.port, head_with(21), 431);
  // Thousands of tiny fields, well under max_header_bytes, are refused just the same.
  std::string many = "GET /health HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 2000; ++i) many += "A:\r\n";
  expect_refused(w.edge.port, many + "\r\n", 431);
  CHECK(w.stat("too_many_fields") == 2);
}

TEST_CASE("min_upload_rate: an upload of a byte a second gets 408 once the grace has passed") {
  App app("app");
  Watched w(yaml_address(app.port), "", "min_upload_rate: 100, upload_rate_grace: 1s, body_timeout: 30s");
  Client client(w.edge.port, std::chrono::seconds(15));
  client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
  // One byte a second (body_timeout alone would take it for ever), until edge answers.
  for (int i = 0; i < 12; ++i) {
    pollfd p{client.fd(), POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) break;
    client.send("x");
  }
  Response r = client.read_response();
  CHECK(r.status == 408);
  CHECK(client.wait_closed());
  CHECK(w.stat("slow_uploads") == 1);
  // A body that comes at once is not concerned, however long after the grace the next one is.
  Client fast(w.edge.port);
  fast.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(fast.read_response().status == 200);
}

TEST_CASE("send_timeout: a client that stops reading for longer is closed; one that keeps reading is not") {
  App app("app");
  Watched w(yaml_address(app.port), "", "send_timeout: 1s, buffer_memory: 64k");
  const size_t size = 50 * 1024 * 1024;
  {
    // Reads for a while, then pauses 1.75 s: past send_timeout (and within twice it, which is
    // where it used to be able to survive).
    Client client(w.edge.port, std::chrono::seconds(10));
    client.set_receive_buffer(16 * 1024);
    client.send("GET /bytes?n=" + std::to_string(size) + " HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t got = 0;
    for (int i = 0; i < 5; ++i) {
      got += client.read_some(16 * 1024).size();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1750));
    for (std::string more = client.read_some(); !more.empty(); more = client.read_some()) got += more.size();
    CHECK(got < size);  // closed before the end: the reads above stopped at the close
    CHECK(w.stat("send_timeouts") == 1);
  }
  {
    // Reads a little every 300 ms, never leaving a second without progress: gets all of it.
    const size_t small = 1024 * 1024;
    Client client(w.edge.port, std::chrono::seconds(10));
    client.set_receive_buffer(128 * 1024);
    client.send("GET /bytes?n=" + std::to_string(small) + " HTTP/1.1\r\nHost: a\r\n\r\n");
    std::string received;
    size_t head_end = std::string::npos;
    while (head_end == std::string::npos || received.size() - head_end - 4 < small) {
      std::string more = client.read_some(256 * 1024);
      REQUIRE_FALSE(more.empty());
      received += more;
      if (head_end == std::string::npos) head_end = received.find("\r\n\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    CHECK(pattern_ok(received.substr(head_end + 4)));
    CHECK(w.stat("send_timeouts") == 1);
  }
}

TEST_CASE("max_temp_file_size: a slow client's 50 MB response completes byte-exact, the temp file held at the cap") {
  App app("app");
  Watched w(yaml_address(app.port), "", "buffer_memory: 64k, max_temp_file_size: 256k");
  const size_t size = 50 * 1024 * 1024;
  Client client(w.edge.port, std::chrono::seconds(20));
  client.set_receive_buffer(64 * 1024);
  client.send("GET /bytes?n=" + std::to_string(size) + " HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // edge buffers what it may meanwhile
  long most_seen = 0;
  std::string body = read_slowly(client, size, [&] { most_seen = std::max(most_seen, w.stat("temp_bytes")); });
  CHECK(body.size() == size);
  CHECK(pattern_ok(body));
  CHECK(most_seen <= 256 * 1024);
  CHECK(w.stat("temp_bytes_peak") > 0);  // it did spill
  CHECK(w.stat("temp_bytes_peak") <= 256 * 1024);
  CHECK(w.stat("paused_at_file_cap") > 0);  // and the backend waited for the client
  CHECK(w.stat("temp_bytes") == 0);         // the file is gone with the response
}

TEST_CASE("max_temp_total: responses wait for their clients once the process's temp space is used up") {
  App app("app");
  Watched w(yaml_address(app.port), "", "buffer_memory: 64k, max_temp_total: 192k");
  const size_t size = 8 * 1024 * 1024;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(std::make_unique<Client>(w.edge.port, std::chrono::seconds(20)));
    clients.back()->set_receive_buffer(64 * 1024);
    clients.back()->send("GET /bytes?n=" + std::to_string(size) + " HTTP/1.1\r\nHost: a\r\n\r\n");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both responses spill meanwhile
  for (auto& client : clients) {
    std::string body = read_slowly(*client, size, [] {});
    CHECK(body.size() == size);
    CHECK(pattern_ok(body));
  }
  CHECK(w.stat("temp_bytes_peak") <= 192 * 1024);
  CHECK(w.stat("paused_at_temp_total") > 0);
}

TEST_CASE("max_conns: a client that leaves does not free its server's slot before the server has answered") {
  App app("single");
  Watched w("{address: " + yaml_address(app.port) + ", max_conns: 1}", "queue: {max: 10, timeout: 10s}", "");
  {
    Client a(w.edge.port);
    // A POST passes (a GET would be a cache fill, which goes on without its client anyway).
    a.send("POST /wait?ms=1500 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    // The slow request is at the server (in progress with this /stats call) before A leaves.
    for (int i = 0; i < 200 && app_stat(app.port, "in_progress") < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Client b(w.edge.port);
  b.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(b.read_response().status == 200);
  // B was let through only once A's response had been written: the server is idle now, but for
  // this /stats call. (edge-app keeps a /wait whose client left in progress until its time is up.)
  CHECK(app_stat(app.port, "in_progress") == 1);
  CHECK(w.stat("slots_held") == 1);
  // The connection A's response came on is kept alive and the slot is free again.
  CHECK(get(w.edge.port, "a", "/health").status == 200);
}

TEST_CASE("cache.max_variants: a URL's made-up variants push out one another, not the one in use") {
  App app("app");
  Watched w(yaml_address(app.port), "", "", "cache: { max_variants: 2 }\n");
  const std::string target = "/cache/v?cc=max-age%3D60&vary=X-Variant";
  auto fetch = [&](const std::string& variant) {
    return exchange(w.edge.port, "GET " + target + " HTTP/1.1\r\nHost: a\r\nX-Variant: " + variant +
                                     "\r\nConnection: close\r\n\r\n");
  };
  REQUIRE(fetch("popular").status == 200);
  CHECK(fetch("popular").header("X-Cache") == std::string_view("HIT"));
  for (int i = 0; i < 20; ++i) REQUIRE(fetch("junk" + std::to_string(i)).status == 200);
  CHECK(fetch("popular").header("X-Cache") == std::string_view("HIT"));
  CHECK(fetch("junk0").header("X-Cache") == std::string_view("MISS"));
  CHECK(w.stat("variants_replaced") >= 19);
}
