// GET /top on the admin port: the heaviest URLs of a window, from every worker's summaries.
#include <doctest/doctest.h>

#include <string>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

constexpr const char* kToken = "top-test-token";

Response admin_get(uint16_t port, const std::string& target, const std::string& method = "GET") {
  return admin_request(port, kToken, method, target);
}

Response get_on(uint16_t port, const std::string& host, const std::string& target) {
  return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
}

std::string entry(const std::string& host, const std::string& target, long count) {
  return "{\"host\":\"" + host + "\",\"target\":\"" + target + "\",\"count\":" + std::to_string(count) +
         ",\"error\":0}";
}

}  // namespace

TEST_CASE("/top ranks the URLs of a known traffic mix exactly, by requests, misses and host") {
  App app("a");
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{"workers: 2\nlisten: [{address: \"127.0.0.1:{{port}}\"}]\nadmin: {address: \"127.0.0.1:0\", token_file: \"" +
            token + "\"}\nbackends:\n  app: {servers: [" + yaml_address(app.port) +
            "]}\nhosts:\n  - {match: [\"*\"], backend: app}\n"};
  // Fresh connections: the kernel spreads them over both workers, whose counts /top adds up.
  for (int i = 0; i < 30; ++i) REQUIRE(get_on(edge.port, "site.test", "/echo?x=a").status == 200);
  for (int i = 0; i < 20; ++i) REQUIRE(get_on(edge.port, "site.test", "/echo?x=b").status == 200);
  for (int i = 0; i < 5; ++i) REQUIRE(get_on(edge.port, "site.test", "/cache/c?cc=max-age%3D60&body=c").status == 200);
  REQUIRE(get_on(edge.port, "other.test", "/echo?x=d").status == 200);

  Response r = admin_get(edge.admin_port, "/top?window=1m&n=3");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == std::string_view("application/json"));
  CHECK_MESSAGE(r.body == "{\"window\":\"1m\",\"by\":\"requests\",\"total\":56,\"top\":[" +
                              entry("site.test", "/echo?x=a", 30) + "," + entry("site.test", "/echo?x=b", 20) + "," +
                              entry("site.test", "/cache/c?cc=max-age%3D60&body=c", 5) + "]}\n",
                r.body);
  // One miss: the first request for the cached URL; passes are not misses.
  r = admin_get(edge.admin_port, "/top?by=misses&window=10m");
  CHECK_MESSAGE(r.body.find("\"top\":[" + entry("site.test", "/cache/c?cc=max-age%3D60&body=c", 1) + "]") !=
                    std::string::npos,
                r.body);
  r = admin_get(edge.admin_port, "/top?host=OTHER.test&window=1h");
  CHECK_MESSAGE(r.body.find("\"top\":[" + entry("other.test", "/echo?x=d", 1) + "]") != std::string::npos, r.body);
  r = admin_get(edge.admin_port, "/top?by=bytes&n=1");
  CHECK(r.body.find("\"target\":\"/echo?x=a\"") != std::string::npos);
  r = admin_get(edge.admin_port, "/top?by=backend_time&n=50&window=10s");
  CHECK(r.status == 200);
  CHECK(r.body.find("/echo?x=a") != std::string::npos);
  CHECK(r.body.find("/echo?x=d") != std::string::npos);
}

TEST_CASE("/top refuses what it does not know, and needs the token") {
  App app("a");
  TempDir secrets;
  const std::string token = secrets.write("admin.token", std::string(kToken) + "\n");
  Edge edge{"listen: [{address: \"127.0.0.1:{{port}}\"}]\nadmin: {address: \"127.0.0.1:0\", token_file: \"" + token +
            "\"}\nbackends:\n  app: {servers: [" + yaml_address(app.port) +
            "]}\nhosts:\n  - {match: [\"*\"], backend: app}\n"};
  for (const char* bad : {"/top?window=1d", "/top?window=", "/top?by=cpu", "/top?n=0", "/top?n=1001", "/top?n=5x",
                          "/top?n=-1", "/top?host=", "/top?host=a%2Fb", "/top?window=1m&window=1h", "/top?limit=3",
                          "/top?window=%zz"}) {
    Response r = admin_get(edge.admin_port, bad);
    CHECK_MESSAGE(r.status == 400, bad);
    CHECK_MESSAGE(r.body.find("\"error\"") != std::string::npos, bad);
  }
  CHECK(admin_get(edge.admin_port, "/top", "POST").status == 405);
  CHECK(exchange(edge.admin_port, "GET /top HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").status == 401);
  // Nothing served yet: an empty ranking.
  Response r = admin_get(edge.admin_port, "/top");
  CHECK(r.body == "{\"window\":\"1m\",\"by\":\"requests\",\"total\":0,\"top\":[]}\n");
}
