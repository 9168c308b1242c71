#include "app/admin_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/loopback_port.h"
#include "tests/unit/scripted_server.h"

using namespace edge::app;
using edge::testing::LoopbackPort;
using edge::testing::ScriptedServer;
using Loop = edge::testing::TestLoop;

namespace {

constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"purged\":2}\n";
}  // namespace

TEST_CASE("purge_request: the documented request, the tag percent-encoded") {
  CHECK(purge_request("book-42", HostPort{"127.0.0.1", 9090}, "s3cret") ==
        "POST /purge?tag=book-42 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nAuthorization: Bearer s3cret\r\n"
        "Content-Length: 0\r\nConnection: close\r\nUser-Agent: edge-app\r\n\r\n");
  CHECK(purge_request("a b&c/é", HostPort{"::1", 1}, "t").rfind("POST /purge?tag=a%20b%26c%2F%C3%A9 HTTP/1.1\r\nHost: [::1]:1\r\n", 0) == 0);
}

TEST_CASE("read_token_file: the content without surrounding white space") {
  const std::string path = "/tmp/edge-app-token-test-" + std::to_string(::getpid());
  std::string error;
  {
    std::ofstream(path) << "  demo-token\n";
  }
  CHECK(read_token_file(path, error) == "demo-token");
  {
    std::ofstream(path) << " \n\t";
  }
  CHECK_FALSE(read_token_file(path, error));
  CHECK(error.find("holds no token") != std::string::npos);
  std::remove(path.c_str());
  CHECK_FALSE(read_token_file(path, error));
  CHECK(error.find("cannot read") != std::string::npos);
}

TEST_CASE("admin client: a 2xx answer is a purge; the request is the documented one") {
  Loop l;
  ScriptedServer admin(&l.loop, kOk);
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  std::optional<bool> done;
  const uint64_t ticket = client.purge_tag("book-7", [&](bool ok) { done = ok; });
  CHECK(ticket != 0);
  CHECK_FALSE(done);  // never from inside purge_tag()
  CHECK(client.in_flight() == 1);
  l.run_until(done);
  CHECK(done == true);
  CHECK(client.in_flight() == 0);
  REQUIRE(admin.requests().size() == 1);
  CHECK(admin.requests()[0] == purge_request("book-7", HostPort{"127.0.0.1", admin.port()}, "tok"));
  client.stop();
  admin.close();
}

TEST_CASE("admin client: a refusal, a wrong token, garbage and silence all end in done(false)") {
  Loop l;
  SUBCASE("connection refused") {
    LoopbackPort refused(LoopbackPort::Mode::kRefusing);
    AdminClient client(&l.loop, HostPort{"127.0.0.1", refused.port()}, "tok");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    CHECK_FALSE(done);
    l.run_until(done);
    CHECK(done == false);
    client.stop();
  }
  SUBCASE("401") {
    ScriptedServer admin(&l.loop, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 25\r\n\r\n{\"error\":\"unauthorized\"}\n");
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "wrong");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    client.stop();
    admin.close();
  }
  SUBCASE("not HTTP") {
    ScriptedServer admin(&l.loop, "SSH-2.0-nope\r\n\r\n");
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    client.stop();
    admin.close();
  }
  SUBCASE("no answer within the time-out") {
    ScriptedServer admin(&l.loop, "", ScriptedServer::After::kHold);
    AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok", 50);
    std::optional<bool> done;
    client.purge_tag("book-1", [&](bool ok) { done = ok; });
    l.run_until(done);
    CHECK(done == false);
    CHECK(admin.requests().size() == 1);
    client.stop();
    admin.close();
  }
}

TEST_CASE("admin client: a cancelled purge still reaches the admin port, but done is not called") {
  Loop l;
  ScriptedServer admin(&l.loop, kOk);
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  bool called = false;
  std::optional<bool> other;
  const uint64_t ticket = client.purge_tag("book-1", [&](bool) { called = true; });
  client.purge_tag("book-2", [&](bool ok) { other = ok; });
  client.cancel(ticket);
  client.cancel(12345);  // unknown: ignored
  while (client.in_flight() > 0 && uv_run(&l.loop, UV_RUN_ONCE) != 0) {
  }
  CHECK_FALSE(called);
  CHECK(other == true);
  CHECK(admin.requests().size() == 2);
  client.stop();
  admin.close();
}

TEST_CASE("admin client: stop() ends the purges in flight without calling done, and refuses new ones") {
  Loop l;
  ScriptedServer admin(&l.loop, "", ScriptedServer::After::kHold);
  AdminClient client(&l.loop, HostPort{"127.0.0.1", admin.port()}, "tok");
  bool called = false;
  client.purge_tag("book-1", [&](bool) { called = true; });
  uv_run(&l.loop, UV_RUN_NOWAIT);
  client.stop();
  client.stop();
  CHECK(client.in_flight() == 0);
  CHECK(client.purge_tag("book-2", [&](bool) { called = true; }) == 0);
  admin.close();
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK_FALSE(called);
}
