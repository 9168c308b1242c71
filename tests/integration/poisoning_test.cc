// Cache poisoning, tried as an attacker would: an attacker's request first, then a victim's;
// the victim must never get an answer shaped by the attacker. Two recording backends, one for
// victim.test and one for everything else (evil.example), so an answer from the wrong backend
// is told apart.
#include <doctest/doctest.h>

#include <string>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

struct Site {
  RecordingBackend victim;
  RecordingBackend evil;
  Edge edge;
  Site()
      : edge("workers: 1\n"
             "listen: [{address: 127.0.0.1:{{port}}}]\n"
             "backends:\n"
             "  victim: {servers: [" + yaml_address(victim.port()) + "]}\n"
             "  evil: {servers: [" + yaml_address(evil.port()) + "]}\n"
             "hosts:\n"
             "  - {match: [victim.test], backend: victim}\n"
             "  - {match: [evil.example, \"*\"], backend: evil}\n") {}

  Response send(const std::string& raw) { return exchange(edge.port, raw); }
  Response victim_get(const std::string& target, const std::string& extra = "") {
    return send("GET " + target + " HTTP/1.1\r\nHost: victim.test\r\n" + extra + "Connection: close\r\n\r\n");
  }
};

// The victim's answer is the victim backend's, for exactly this target.
void check_clean(const Response& r, const std::string& target) {
  CHECK(r.status == 200);
  CHECK(r.body == target + " host=victim.test xfh=victim.test");
}

}  // namespace

TEST_CASE("Host read differently by the router and the key: refused") {
  Site site;
  for (std::string host : {"evil@victim.test", "victim.test:1:2", "victim.test:@evil.example", "victim.test,evil.example",
                           "victim.test evil.example", "evil.example@victim.test:80"}) {
    CAPTURE(host);
    Response attack = site.send("GET /cached/home HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
    CHECK(attack.status == 400);
  }
  Response attack = site.send("GET http://evil@victim.test/cached/home HTTP/1.1\r\nHost: victim.test\r\n\r\n");
  CHECK(attack.status == 400);
  CHECK(site.victim.requests().empty());
  CHECK(site.evil.requests().empty());
  Response victim = site.victim_get("/cached/home");
  check_clean(victim, "/cached/home");
  CHECK(victim.header("X-Cache") == std::string_view("MISS"));
}

TEST_CASE("an absolute-form target for another host is stored under that host") {
  Site site;
  Response attack = site.send("GET http://evil.example/cached/home HTTP/1.1\r\nHost: victim.test\r\nConnection: close\r\n\r\n");
  CHECK(attack.status == 200);
  CHECK(attack.body == "/cached/home host=evil.example xfh=evil.example");
  Response victim = site.victim_get("/cached/home");
  check_clean(victim, "/cached/home");
  CHECK(site.victim.requests().size() == 1);
}

TEST_CASE("ports: neither keyed nor forwarded, so every spelling of the host gets the same answer") {
  Site site;
  Response attack = site.send("GET /cached/port HTTP/1.1\r\nHost: VICTIM.test.:1234\r\nConnection: close\r\n\r\n");
  check_clean(attack, "/cached/port");
  Response victim = site.victim_get("/cached/port");
  check_clean(victim, "/cached/port");
  CHECK(victim.header("X-Cache") == std::string_view("HIT"));
}

TEST_CASE("paths: what is keyed is what the backend was asked") {
  Site site;
  struct Case {
    std::string attack;     // the attacker's target
    std::string canonical;  // what it means, and what the backend is asked
  };
  for (const Case& c : {Case{"/cached/static/../secret", "/cached/secret"},
                        Case{"/cached/static/%2e%2e/secret2", "/cached/secret2"},
                        Case{"/cached/./static/./x", "/cached/static/x"},
                        Case{"/cached/%73tatic/y", "/cached/static/y"}}) {
    CAPTURE(c.attack);
    Response attack = site.send("GET " + c.attack + " HTTP/1.1\r\nHost: victim.test\r\nConnection: close\r\n\r\n");
    check_clean(attack, c.canonical);
    // The victim asking for the canonical resource gets the canonical resource's answer.
    Response victim = site.victim_get(c.canonical);
    check_clean(victim, c.canonical);
  }
  // A fragment is not a request-target's: refused, nothing stored.
  CHECK(site.send("GET /cached/page#x HTTP/1.1\r\nHost: victim.test\r\n\r\n").status == 400);
  check_clean(site.victim_get("/cached/page"), "/cached/page");
}

TEST_CASE("Connection cannot remove Host, and a field it names cannot select a variant the backend never saw") {
  Site site;
  CHECK(site.send("GET /cached/h HTTP/1.1\r\nHost: victim.test\r\nConnection: Host\r\n\r\n").status == 400);

  Response attack = site.send(
      "GET /cached/vary/p HTTP/1.1\r\nHost: victim.test\r\nX-Var: evil\r\nConnection: close, X-Var\r\n\r\n");
  CHECK(attack.status == 200);
  CHECK(attack.body == "/cached/vary/p host=victim.test xfh=victim.test xvar=");
  // A victim whose request really carries X-Var: evil gets an answer made for it.
  Response victim = site.victim_get("/cached/vary/p", "X-Var: evil\r\n");
  CHECK(victim.status == 200);
  CHECK(victim.body == "/cached/vary/p host=victim.test xfh=victim.test xvar=evil");
  // And one without X-Var shares the attacker's (it asked the same thing).
  Response plain = site.victim_get("/cached/vary/p");
  CHECK(plain.body == "/cached/vary/p host=victim.test xfh=victim.test xvar=");
  CHECK(plain.header("X-Cache") == std::string_view("HIT"));
}

TEST_CASE("unkeyed fields never reach the backend: X-Forwarded-Host is edge's, rewrites are dropped") {
  Site site;
  Response attack = site.send(
      "GET /cached/home2 HTTP/1.1\r\nHost: victim.test\r\nX-Forwarded-Host: evil.example\r\n"
      "X-Original-URL: /cached/admin\r\nX-Rewrite-URL: /cached/admin\r\nX-HTTP-Method-Override: DELETE\r\n"
      "Connection: close\r\n\r\n");
  check_clean(attack, "/cached/home2");
  const std::string seen = site.victim.requests().at(0);
  CHECK(seen.find("evil") == std::string::npos);
  CHECK(seen.find("admin") == std::string::npos);
  CHECK(seen.find("DELETE") == std::string::npos);
  check_clean(site.victim_get("/cached/home2"), "/cached/home2");
}

TEST_CASE("drop_request_fields: a route's own list replaces the default") {
  RecordingBackend backend;
  Edge edge("workers: 1\n"
            "listen: [{address: 127.0.0.1:{{port}}}]\n"
            "backends: {b: {servers: [" + yaml_address(backend.port()) + "]}}\n"
            "hosts:\n"
            "  - match: [victim.test]\n"
            "    backend: b\n"
            "    drop_request_fields: [X-Debug]\n"
            "    routes: [{path: /keep/, drop_request_fields: []}]\n");
  exchange(edge.port, "GET /a HTTP/1.1\r\nHost: victim.test\r\nX-Debug: 1\r\nX-Original-URL: /x\r\nConnection: close\r\n\r\n");
  exchange(edge.port, "GET /keep/a HTTP/1.1\r\nHost: victim.test\r\nX-Debug: 1\r\nConnection: close\r\n\r\n");
  const std::vector<std::string> seen = backend.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].find("X-Debug") == std::string::npos);
  CHECK(seen[0].find("X-Original-URL: /x") != std::string::npos);
  CHECK(seen[1].find("X-Debug: 1") != std::string::npos);
}

TEST_CASE("a client's no-cache does not replace a fresh object for everyone") {
  Site site;
  check_clean(site.victim_get("/cached/news"), "/cached/news");
  // The backend would answer this client differently (fields the key does not describe).
  site.victim.answer_once("/cached/news",
                          "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 8\r\n\r\npoisoned");
  Response attack = site.victim_get("/cached/news", "Cache-Control: no-cache\r\n");
  CHECK(attack.body == "poisoned");
  CHECK(attack.header("X-Cache") == std::string_view("PASS"));
  Response victim = site.victim_get("/cached/news");
  check_clean(victim, "/cached/news");
  CHECK(victim.header("X-Cache") == std::string_view("HIT"));
  // Pragma: no-cache likewise.
  site.victim.answer_once("/cached/news",
                          "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 8\r\n\r\npoisoned");
  CHECK(site.victim_get("/cached/news", "Pragma: no-cache\r\n").body == "poisoned");
  check_clean(site.victim_get("/cached/news"), "/cached/news");
}

TEST_CASE("fields a response's Connection nominates are never stored nor replayed (RFC 9110 7.6.1)") {
  Site site;
  site.victim.answer_once("/cached/hop",
                          "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nConnection: X-Hop, keep-alive\r\n"
                          "X-Hop: for this hop\r\nX-Kept: end to end\r\nContent-Length: 2\r\n\r\nok");
  Response first = site.victim_get("/cached/hop");
  CHECK(first.body == "ok");
  CHECK_FALSE(first.header("X-Hop"));
  CHECK(first.header("X-Kept") == std::string_view("end to end"));
  Response hit = site.victim_get("/cached/hop");
  CHECK(hit.header("X-Cache") == std::string_view("HIT"));
  CHECK(hit.body == "ok");
  CHECK_FALSE(hit.header("X-Hop"));
  CHECK(hit.header("X-Kept") == std::string_view("end to end"));
  CHECK(hit.header("Connection") != std::string_view("X-Hop, keep-alive"));
}
