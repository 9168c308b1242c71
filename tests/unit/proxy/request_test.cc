// The request's steps against a scripted backend, on the test's own loop: what each request
// becomes (hit, miss, wait, pass, deliver, relay, synth), the head it is answered with, what
// reached the backend, and the trace of its steps.
#include "proxy/request.h"
#include "proxy/tunnel.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "http/parser.h"
#include "tests/unit/proxy/backend_rig.h"

using namespace edge;
using proxy::Request;
using test_rig::Reply;
using test_rig::Rig;

namespace {

// The connection's side: keeps what the request sends, reads the body once it is complete.
struct FakeClient final : Request::Client {
  bool http10 = false;
  int sent = 0;
  int kicks = 0;
  std::optional<proxy::CloseReason> broken;
  std::string head;
  const http::BodySource* body = nullptr;
  bool keep_alive = true;

  proxy::ClientFraming framing(bool may_keep_alive) override { return {http10, may_keep_alive}; }
  void send(const Response& response) override {
    ++sent;
    head = *response.head;
    body = response.body;
    keep_alive = response.keep_alive;
  }
  void send_interim(std::string interim) override { interims.push_back(std::move(interim)); }
  std::vector<std::string> interims;
  void kick() override { ++kicks; }
  void broke_off(proxy::CloseReason reason) override { broken = reason; }
  std::string_view client_ip() override { return "192.0.2.7"; }
  bool secure() override { return false; }
  uint64_t bytes_sent() override { return head.size(); }
  bool start_tunnel(proxy::Fetch::Upgraded upstream) override {
    proxy::abandon_upgraded(std::move(upstream));
    return false;
  }

  bool body_complete() const { return !body || body->complete(); }
  std::string body_text() const {
    std::string out;
    if (!body) return out;
    std::string scratch;
    http::IoSlice slices[16];
    int n = 0;
    while ((n = body->peek(out.size(), slices, 16, SIZE_MAX, scratch)) > 0)
      for (int i = 0; i < n; ++i) out.append(slices[i].data, slices[i].len);
    return out;
  }
  int status() const { return head.size() > 12 ? std::stoi(head.substr(9, 3)) : 0; }
  bool has(std::string_view line) const { return head.find(std::string(line) + "\r\n") != std::string::npos; }
};

// A request as the connection reads it: parsed from bytes, held for the request's life.
struct Incoming {
  http::RequestParser parser{{8192, 8192, 1 << 20, 100}};
  http::Body body;
  explicit Incoming(std::string_view bytes) {
    parser.set_body_sink(&body);
    for (;;) {
      const http::ParseResult r = parser.feed(bytes);
      bytes.remove_prefix(r.consumed);
      REQUIRE(r.event != http::ParseEvent::kError);
      if (r.event == http::ParseEvent::kMessage) break;
      REQUIRE((r.event == http::ParseEvent::kHead || !bytes.empty()));
    }
  }
  http::RequestHead& head() { return parser.head(); }
};

// One request through its steps: recv at the head, start once complete, then the loop until
// the response is sent and its body complete.
struct Run {
  FakeClient client;
  std::unique_ptr<Request> request;
  std::unique_ptr<Incoming> in;
  int refused = 0;

  Run(Rig& rig, std::string_view bytes, bool wait = true) {
    request = std::make_unique<Request>(*rig.worker, client);
    in = std::make_unique<Incoming>(bytes);
    client.http10 = in->head().version_minor == 0;
    refused = request->recv(in->head());
    if (refused) return;
    request->start(in->head(), in->body);
    if (wait) rig.run_until([&] { return client.sent > 0 && client.body_complete(); });
  }
  ~Run() { request->done(); }
  std::string steps() const {
    std::string out;
    const proxy::Trace& trace = request->trace();
    for (size_t i = 0; i < trace.size(); ++i) out += (i ? " " : "") + std::string(proxy::step_name(trace[i].step));
    return out;
  }
};

std::string ok(std::string_view cache_control, std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 200 OK\r\nCache-Control: " + std::string(cache_control) + "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra) + "\r\n" + std::string(body);
}

std::string get(std::string_view target, std::string_view fields = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test.example\r\n" + std::string(fields) + "\r\n";
}

}  // namespace

TEST_CASE("request: a miss is fetched and delivered, the next request is a hit with Age") {
  Rig rig;
  rig.backend.script({ok("max-age=60", "hello", "ETag: \"e1\"\r\n"), "", false, false});
  {
    Run miss(rig, get("/a"));
    CHECK(miss.client.status() == 200);
    CHECK(miss.client.has("X-Cache: MISS"));
    CHECK(miss.client.has("Content-Length: 5"));
    CHECK(miss.client.body_text() == "hello");
    CHECK(miss.steps() == "recv lookup miss deliver");
  }
  Run hit(rig, get("/a"));
  CHECK(hit.client.status() == 200);
  CHECK(hit.client.has("X-Cache: HIT"));
  CHECK(hit.client.head.find("\r\nAge: ") != std::string::npos);
  CHECK(hit.client.has("Via: 1.1 edge"));
  CHECK(hit.client.body_text() == "hello");
  CHECK(hit.steps() == "recv lookup hit deliver");
  CHECK(rig.backend.requests() == 1);
}

TEST_CASE("request: a stored object answers the client's conditions and ranges itself") {
  Rig rig;
  rig.backend.script({ok("max-age=60", "0123456789", "ETag: \"e1\"\r\n"), "", false, false});
  { Run fill(rig, get("/r")); }
  {
    Run not_modified(rig, get("/r", "If-None-Match: \"e1\"\r\n"));
    CHECK(not_modified.client.status() == 304);
    CHECK(not_modified.client.body == nullptr);
    CHECK(not_modified.client.head.find("Content-Length") == std::string::npos);
  }
  {
    Run failed(rig, get("/r", "If-Match: \"other\"\r\n"));
    CHECK(failed.client.status() == 412);
    CHECK(failed.steps() == "recv lookup hit deliver synth");
  }
  {
    Run partial(rig, get("/r", "Range: bytes=2-4\r\n"));
    CHECK(partial.client.status() == 206);
    CHECK(partial.client.has("Content-Range: bytes 2-4/10"));
    CHECK(partial.client.has("Content-Length: 3"));
    CHECK(partial.client.body_text() == "234");
  }
  Run unsatisfiable(rig, get("/r", "Range: bytes=20-30\r\n"));
  CHECK(unsatisfiable.client.status() == 416);
  CHECK(unsatisfiable.client.has("Content-Range: bytes */10"));
  CHECK(rig.backend.requests() == 1);
}

TEST_CASE("request: a response that may not be stored is relayed to its requester and marks the key") {
  Rig rig;
  rig.backend.script({ok("no-store", "mine", "Surrogate-Control: no-store-remote\r\nKeep-Alive: timeout=5\r\n"), "", false,
                      false});
  Run pass(rig, get("/private"));
  CHECK(pass.client.status() == 200);
  CHECK(pass.client.has("X-Cache: PASS"));
  CHECK(pass.client.body_text() == "mine");
  CHECK(pass.client.head.find("Surrogate-Control") == std::string::npos);  // addressed to edge
  CHECK(pass.client.head.find("Keep-Alive") == std::string::npos);         // hop-by-hop
  CHECK(pass.steps() == "recv lookup miss pass relay");
  CHECK(rig.hit_for_pass("/private"));
}

TEST_CASE("request: a second request for a key being fetched waits on the same fill") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 6\r\n\r\nab", "cdef", true, false});
  Run first(rig, get("/shared"), false);
  rig.run_until([&] { return rig.backend.requests() == 1; });
  Run second(rig, get("/shared"), false);
  CHECK(second.request->waiting_for_fill());
  rig.run_until([&] { return first.client.sent == 1 && second.client.sent == 1; });
  rig.backend.send_rest();
  rig.run_until([&] { return first.client.body_complete() && second.client.body_complete(); });
  CHECK(first.client.body_text() == "abcdef");
  CHECK(second.client.body_text() == "abcdef");
  CHECK(first.steps() == "recv lookup miss deliver");
  CHECK(second.steps() == "recv lookup wait deliver");
  CHECK(second.client.has("X-Cache: HIT"));
  CHECK(rig.backend.requests() == 1);
}

TEST_CASE("request: a backend that resets before answering gets the client a 502 made by edge") {
  Rig rig;
  rig.backend.script({"", "", false, true});
  Run reset(rig, get("/gone"));
  CHECK(reset.client.status() == 502);
  CHECK(reset.client.has("Content-Type: text/html"));
  CHECK(reset.client.head.find("X-Cache") == std::string::npos);
  CHECK(reset.steps() == "recv lookup miss synth");
}

TEST_CASE("request: recv refuses what it cannot route and drops fields the key does not describe") {
  Rig rig("hosts:\n  - match: [test.example]\n    backend: app\n");
  FakeClient client;
  Request request(*rig.worker, client);
  {
    Incoming connect("CONNECT test.example:443 HTTP/1.1\r\nHost: test.example:443\r\n\r\n");
    CHECK(request.recv(connect.head()) == 405);
  }
  {
    Incoming bad_host("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    CHECK(request.recv(bad_host.head()) == 400);
  }
  {
    Incoming expect("GET / HTTP/1.1\r\nHost: test.example\r\nExpect: something\r\n\r\n");
    CHECK(request.recv(expect.head()) == 417);
  }
  {
    Incoming elsewhere("GET / HTTP/1.1\r\nHost: other.example\r\n\r\n");
    CHECK(request.recv(elsewhere.head()) == 0);
    CHECK(request.early_status() == 404);
    request.start(elsewhere.head(), elsewhere.body);
    CHECK(client.status() == 404);
    CHECK(client.keep_alive);
    request.done();
  }
  Incoming spoofed(get("/x?cc=no-store", "X-Forwarded-Host: evil.example\r\nX-Original-URL: /admin\r\n"));
  CHECK(request.recv(spoofed.head()) == 0);
  CHECK_FALSE(spoofed.head().headers.get("X-Forwarded-Host"));
  CHECK_FALSE(spoofed.head().headers.get("X-Original-URL"));
  rig.backend.script({ok("no-store", "x"), "", false, false});
  request.start(spoofed.head(), spoofed.body);
  rig.run_until([&] { return client.status() == 200 && client.body_complete(); });
  const std::string& forwarded = rig.backend.request(0);
  CHECK(forwarded.find("X-Forwarded-Host: test.example\r\n") != std::string::npos);
  CHECK(forwarded.find("evil") == std::string::npos);
  CHECK(forwarded.find("X-Original-URL") == std::string::npos);
  CHECK(forwarded.find("X-Forwarded-For: 192.0.2.7\r\n") != std::string::npos);
  request.done();
}

TEST_CASE("request: an HTTP/1.0 client gets a body of unknown length as the end of the connection") {
  Rig rig;
  rig.backend.script({"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                      "0\r\n\r\n", true, false});
  Run old(rig, "GET /stream HTTP/1.0\r\nHost: test.example\r\n\r\n", false);
  rig.run_until([&] { return old.client.sent == 1; });
  CHECK(old.client.head.find("Transfer-Encoding") == std::string::npos);
  CHECK(old.client.head.find("Content-Length") == std::string::npos);
  CHECK_FALSE(old.client.keep_alive);
  CHECK(old.client.has("Connection: close"));
  rig.backend.send_rest();
  rig.run_until([&] { return old.client.body_complete(); });
  CHECK(old.client.body_text() == "abc");
}
