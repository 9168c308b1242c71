#include "load/runner.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/loopback_port.h"
#include "tests/unit/scripted_server.h"

using namespace edge::load;
using edge::testing::LoopbackPort;
using edge::testing::ScriptedServer;
using Loop = edge::testing::TestLoop;

namespace {
Mix small_mix() { return Mix(Catalogue{100, 50, 10, {1, 2, 3}}, MixOptions{1.0, 0.1, 0.05, 1}); }

RunConfig config_for(const sockaddr* target, double seconds) {
  RunConfig config;
  std::memcpy(&config.target, target, sizeof(sockaddr_in));
  config.connections = 2;
  config.seconds = seconds;
  return config;
}

const char* const kLoginAnswer =
    "HTTP/1.1 303 See Other\r\nLocation: /\r\nSet-Cookie: session=tok-1; Path=/; HttpOnly; SameSite=Lax\r\n"
    "Content-Length: 0\r\nConnection: close\r\n\r\n";
}  // namespace

TEST_CASE("load runner: signing in keeps each user's session token") {
  Loop l;
  ScriptedServer server(&l.loop, kLoginAnswer);
  const std::vector<uint32_t> users = {1, 21, 41};
  SignIn result = sign_in(&l.loop, server.address(), "localhost", users);
  CHECK(result.error.empty());
  CHECK(result.tokens == std::vector<std::string>{"tok-1", "tok-1", "tok-1"});
  REQUIRE(server.requests().size() == 3);
  for (const std::string& request : server.requests()) {
    CHECK(request.starts_with("POST /login HTTP/1.1\r\nHost: localhost\r\n"));
    CHECK(request.find("Content-Type: application/x-www-form-urlencoded\r\n") != std::string::npos);
  }
}

TEST_CASE("load runner: a sign-in that fails says why") {
  Loop l;
  {
    ScriptedServer server(&l.loop, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    SignIn result = sign_in(&l.loop, server.address(), "localhost", std::vector<uint32_t>{7});
    CHECK(result.tokens.empty());
    CHECK(result.error == "signing in user 7: POST /login was answered 403 (303 expected)");
  }
  {
    ScriptedServer server(&l.loop, "HTTP/1.1 303 See Other\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    SignIn result = sign_in(&l.loop, server.address(), "localhost", std::vector<uint32_t>{7});
    CHECK(result.error == "signing in user 7: the answer set no session cookie");
  }
  LoopbackPort refusing(LoopbackPort::Mode::kRefusing);
  SignIn result = sign_in(&l.loop, refusing.address(), "localhost", std::vector<uint32_t>{1, 2});
  CHECK(result.tokens.empty());
  CHECK(result.error.starts_with("signing in user 1: cannot connect: "));
}

TEST_CASE("load runner: a closed loop counts answers, and reconnects when the server closes") {
  Loop l;
  ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  const Mix mix = small_mix();
  const std::vector<std::string> tokens = {"tok-a", "tok-b"};
  const uint64_t before = uv_hrtime();
  Results r = run_load(&l.loop, config_for(server.address(), 0.3), mix, tokens);
  const double took = static_cast<double>(uv_hrtime() - before) / 1e9;
  CHECK(took >= 0.29);  // the loop's timers count whole milliseconds
  CHECK(took < 2);
  CHECK(r.seconds >= 0.29);
  CHECK(r.connections == 2);
  CHECK(r.requests > 10);
  CHECK(r.status[0] == r.requests);
  CHECK(r.error_count() == 0);
  CHECK(r.latency.count() == r.requests);
  CHECK(r.posts == 0);  // a 200 is not what a post expects
  uint64_t pages = 0;
  for (uint64_t n : r.pages) pages += n;
  CHECK(pages > 0);
  CHECK(pages <= r.requests);
  CHECK(r.signed_in_requests > 0);
  CHECK(r.signed_in_requests < r.requests);
  REQUIRE(server.requests().size() >= r.requests);
  bool saw_cookie = false;
  for (const std::string& request : server.requests()) {
    CHECK(request.find("Host: localhost\r\n") != std::string::npos);
    saw_cookie = saw_cookie || request.find("Cookie: session=tok-") != std::string::npos;
  }
  CHECK(saw_cookie);
}

TEST_CASE("load runner: errors are counted and the run still ends") {
  Loop l;
  const Mix mix = small_mix();
  SUBCASE("nothing listens") {
    LoopbackPort refusing(LoopbackPort::Mode::kRefusing);
    Results r = run_load(&l.loop, config_for(refusing.address(), 0.25), mix, {});
    CHECK(r.requests == 0);
    CHECK(r.errors[static_cast<size_t>(ErrorKind::kConnect)] >= 2);
    CHECK(r.error_count() == r.errors[static_cast<size_t>(ErrorKind::kConnect)]);
  }
  SUBCASE("not HTTP") {
    ScriptedServer server(&l.loop, "SMTP ready\r\n\r\n");
    Results r = run_load(&l.loop, config_for(server.address(), 0.2), mix, {});
    CHECK(r.requests == 0);
    CHECK(r.errors[static_cast<size_t>(ErrorKind::kBadResponse)] > 0);
  }
  SUBCASE("closed without an answer") {
    ScriptedServer server(&l.loop, "");
    Results r = run_load(&l.loop, config_for(server.address(), 0.2), mix, {});
    CHECK(r.requests == 0);
    CHECK(r.errors[static_cast<size_t>(ErrorKind::kClosed)] + r.errors[static_cast<size_t>(ErrorKind::kRead)] > 0);
  }
  SUBCASE("too large") {
    ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\nContent-Length: 900000000\r\n\r\n",
                          ScriptedServer::After::kHold);
    Results r = run_load(&l.loop, config_for(server.address(), 0.2), mix, {});
    CHECK(r.requests == 0);
    CHECK(r.errors[static_cast<size_t>(ErrorKind::kTooLarge)] > 0);
  }
  SUBCASE("no answer in time: the request in flight at the end is waited for, then counted") {
    ScriptedServer server(&l.loop, "", ScriptedServer::After::kHold);
    RunConfig config = config_for(server.address(), 0.1);
    config.request_timeout_ms = 300;
    const uint64_t before = uv_hrtime();
    Results r = run_load(&l.loop, config, mix, {});
    const double took = static_cast<double>(uv_hrtime() - before) / 1e9;
    CHECK(took >= 0.29);
    CHECK(took < 2);
    CHECK(r.requests == 0);
    CHECK(r.errors[static_cast<size_t>(ErrorKind::kTimeout)] == 2);
  }
  SUBCASE("an answer delimited by the close counts") {
    ScriptedServer server(&l.loop, "HTTP/1.1 200 OK\r\n\r\nwhole body until the close");
    Results r = run_load(&l.loop, config_for(server.address(), 0.2), mix, {});
    CHECK(r.requests > 0);
    CHECK(r.error_count() == 0);
  }
}

TEST_CASE("load runner: the progress line") {
  const std::string line = progress_line(3.2, 10, 12345.6, 4210000, 2);
  CHECK(line.find("3/10 s") != std::string::npos);
  CHECK(line.find("12346 req/s") != std::string::npos);
  CHECK(line.find("p99     4.21 ms") != std::string::npos);
  CHECK(line.find("errors 2") != std::string::npos);
}
