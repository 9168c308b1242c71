// A backend exchange against a scripted backend on the test's own loop: the response read into
// the fetch's body, the server's slot released with its outcome, a refused server skipped, a
// pooled connection the backend dropped retried once for an idempotent request and never for
// another, a fetch given up while its connection connects.
#include "proxy/fetch.h"

#include <doctest/doctest.h>

#include <string>

#include "tests/unit/loopback_port.h"
#include "tests/unit/proxy/backend_rig.h"

using namespace edge;
using proxy::Fetch;
using test_rig::PassOwner;
using test_rig::Rig;
using testing::LoopbackPort;

namespace {

Fetch::Request request_for(const Rig& rig, const std::string& method, const std::string& path) {
  Fetch::Request request;
  request.generation = rig.shared->generation;
  request.backend = 0;
  request.head = method + " " + path + " HTTP/1.1\r\nHost: test.example\r\n" +
                 (method == "POST" ? "Content-Length: 0\r\n" : "") + "\r\n";
  request.idempotent = method != "POST";
  return request;
}

std::string ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

}  // namespace

TEST_CASE("fetch: the response is read into its body and the server's slot released") {
  Rig rig;
  rig.backend.script({ok("payload"), "", false, false});
  PassOwner owner;
  Fetch::start(*rig.worker, &owner, request_for(rig, "GET", "/f"));
  rig.run_until([&] { return owner.complete; });
  CHECK(owner.status == 200);
  CHECK(owner.body == "payload");
  const balancer::ServerState& server = rig.shared->generation->balancer.backend(0).server(0);
  CHECK(server.in_flight() == 0);
  CHECK(server.served() == 1);
  CHECK(rig.backend.request(0).rfind("GET /f HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("fetch: a server that refuses is skipped for the next one") {
  LoopbackPort refusing(LoopbackPort::Mode::kRefusing);
  Rig rig("hosts:\n  - match: [\"*\"]\n    backend: app\n", "127.0.0.1:" + std::to_string(refusing.port()) + ", ");
  // Round robin: of two fetches, one starts at the refusing server.
  for (int i = 0; i < 2; ++i) {
    rig.backend.script({ok("fine"), "", false, false});
    PassOwner owner;
    Fetch::start(*rig.worker, &owner, request_for(rig, "GET", "/r" + std::to_string(i)));
    rig.run_until([&] { return owner.complete || owner.status >= 500; });
    CHECK(owner.status == 200);
    CHECK(owner.body == "fine");
  }
  CHECK(rig.shared->generation->balancer.backend(0).server(0).failed() >= 1);
  CHECK(rig.backend.requests() == 2);
}

TEST_CASE("fetch: a pooled connection the backend dropped is retried once for a GET, never for a POST") {
  Rig rig;
  {
    rig.backend.script({ok("one"), "", false, false});
    PassOwner owner;
    Fetch::start(*rig.worker, &owner, request_for(rig, "GET", "/first"));
    rig.run_until([&] { return owner.complete; });
  }
  // The kept-alive connection is reset at the next request: a GET goes again on a new one.
  rig.backend.script({"", "", false, true});
  rig.backend.script({ok("two"), "", false, false});
  {
    PassOwner owner;
    Fetch::start(*rig.worker, &owner, request_for(rig, "GET", "/again"));
    rig.run_until([&] { return owner.complete || owner.status >= 500; });
    CHECK(owner.status == 200);
    CHECK(owner.body == "two");
    CHECK(rig.backend.requests() == 3);
  }
  // Pooled again; a POST whose connection is reset is not sent twice.
  rig.backend.script({"", "", false, true});
  PassOwner post;
  Fetch::start(*rig.worker, &post, request_for(rig, "POST", "/form"));
  rig.run_until([&] { return post.status != 0; });
  CHECK(post.status == 502);
  CHECK(rig.backend.requests() == 4);
}

TEST_CASE("fetch: one finished while its connection is still connecting closes it without a request") {
  Rig rig;
  PassOwner owner;
  Fetch* fetch = Fetch::start(*rig.worker, &owner, request_for(rig, "GET", "/gone"));
  REQUIRE(fetch != nullptr);
  fetch->finish();
  // The connect is cancelled with the connection; the fetch and the connection free themselves
  // (the sanitizer runs see a leak or a use after free here), and the owner hears nothing.
  for (int turns = 0; turns < 20; ++turns) uv_run(rig.worker->loop(), UV_RUN_NOWAIT);
  CHECK(owner.status == 0);
  CHECK(rig.backend.requests() == 0);
  CHECK(rig.shared->generation->balancer.backend(0).server(0).in_flight() == 0);
}
