// The admin port's browser side over real sockets: signing in with the token for a session
// cookie, what the cookie may do (GETs; POSTs only with the session's CSRF token and from the
// port's own origin), signing out, sessions expiring, the bearer token unchanged beside them,
// the status page and its headers, GET /events after purges and reloads, and hostile input
// (huge or repeated cookies, malformed or oversized sign-in forms).
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <thread>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
constexpr char kToken[] = "status-page-t0ken-that-is-long-enough";
constexpr char kCookie[] = "edge_admin_session";

std::string server(const App& app) { return "127.0.0.1:" + std::to_string(app.port); }

struct Site {
  explicit Site(const std::string& admin_extra = "") : admin_extra_(admin_extra) { REQUIRE(wait_for_port(admin_port)); }
  std::string admin_extra_;
  App app{"origin"};
  TempDir secrets;
  Edge edge{R"(
workers: 1
listen: [{address: "127.0.0.1:{{port}}"}]
admin:
  address: "127.0.0.1:0"
  token_file: ")" + secrets.write("admin.token", std::string(kToken) + "\n") + R"("
)" + admin_extra_ + R"(
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - match: ["*"]
    backend: app
)"};
  uint16_t admin_port = edge.admin_port;
  std::string host() const { return "127.0.0.1:" + std::to_string(admin_port); }
};

// One request on a fresh connection to the admin port: `headers` whole lines, `body` sent with
// its Content-Length (a POST always has one).
Response send(const Site& s, const std::string& method, const std::string& target, const std::string& headers = "",
              const std::string& body = "") {
  std::string raw = method + " " + target + " HTTP/1.1\r\nHost: " + s.host() + "\r\n" + headers;
  if (method == "POST" || !body.empty()) raw += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return exchange(s.admin_port, raw + "Connection: close\r\n\r\n" + body, method);
}

Response sign_in(const Site& s, const std::string& token, const std::string& headers = "") {
  return send(s, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n" + headers,
              "token=" + percent_encode(token));
}

struct Session {
  std::string cookie;  // "Cookie: ...\r\n"
  std::string csrf;
};

// The cookie's value in a Set-Cookie field, up to its first ';'.
std::string cookie_value(const Response& r) {
  std::string set = std::string(r.header("Set-Cookie").value_or(""));
  const std::string prefix = std::string(kCookie) + "=";
  if (!set.starts_with(prefix)) return "";
  return set.substr(prefix.size(), set.find(';') - prefix.size());
}

// The CSRF token in the status page's meta element.
std::string csrf_of(const std::string& page) {
  const std::string marker = "<meta name=\"edge-csrf\" content=\"";
  const size_t at = page.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return page.substr(start, page.find('"', start) - start);
}

Session signed_in(const Site& s) {
  Response r = sign_in(s, kToken);
  REQUIRE(r.status == 303);
  Session session;
  session.cookie = "Cookie: " + std::string(kCookie) + "=" + cookie_value(r) + "\r\n";
  Response page = send(s, "GET", "/", session.cookie);
  REQUIRE(page.status == 200);
  session.csrf = csrf_of(page.body);
  REQUIRE(session.csrf.size() == 32);
  return session;
}

std::string csrf_header(const Session& session) { return "X-Edge-CSRF: " + session.csrf + "\r\n"; }

bool is_sign_in_page(const Response& r) {
  return r.body.find("action=\"/login\"") != std::string::npos && r.body.find("edge-csrf") == std::string::npos;
}

// Polls `condition` until it holds or a generous deadline passes.
template <typename Condition>
bool eventually(Condition condition, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}
}  // namespace

TEST_CASE("signing in: a wrong token gets the form again, the right one a session cookie") {
  Site s;
  Response form = send(s, "GET", "/");
  CHECK(form.status == 200);
  CHECK(is_sign_in_page(form));
  CHECK(form.header("Content-Type") == "text/html; charset=utf-8");
  CHECK(form.header("Cache-Control") == "no-store");

  Response wrong = sign_in(s, "not-the-token");
  CHECK(wrong.status == 401);
  CHECK(is_sign_in_page(wrong));
  CHECK(wrong.body.find("Wrong token.") != std::string::npos);
  CHECK(!wrong.header("Set-Cookie"));
  CHECK(eventually([&] { return s.edge.process.output().find("sign-in refused from 127.0.0.1: wrong token") != std::string::npos; }));
  CHECK(sign_in(s, "").status == 401);
  CHECK(send(s, "POST", "/login", "", "nothing=here").status == 401);

  Response right = sign_in(s, kToken);
  CHECK(right.status == 303);
  CHECK(right.header("Location") == "/");
  const std::string set = std::string(right.header("Set-Cookie").value_or(""));
  const std::string id = cookie_value(right);
  CHECK(id.size() == 64);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(set.find("; Path=/") != std::string::npos);
  CHECK(set.find("; HttpOnly") != std::string::npos);
  CHECK(set.find("; SameSite=Strict") != std::string::npos);
  CHECK(set.find("; Max-Age=28800") != std::string::npos);  // the default 8 h
  CHECK(set.find("Secure") == std::string::npos);            // plain HTTP: the browser would drop it
  CHECK(cookie_value(sign_in(s, kToken)) != id);             // every sign-in its own session

  // The status page, with its security headers, to the session only.
  Response page = send(s, "GET", "/", "Cookie: " + std::string(kCookie) + "=" + id + "\r\n");
  CHECK(page.status == 200);
  CHECK(csrf_of(page.body).size() == 32);
  const std::string csp = std::string(page.header("Content-Security-Policy").value_or(""));
  CHECK(csp.starts_with("default-src 'none'; script-src 'nonce-"));
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(page.header("X-Frame-Options") == "DENY");
  CHECK(page.header("Referrer-Policy") == "same-origin");
  CHECK(page.header("X-Content-Type-Options") == "nosniff");
  CHECK(page.header("Cache-Control") == "no-store");
  // The nonce in the policy is the script's, and fresh for each response.
  const std::string nonce = csp.substr(csp.find("'nonce-") + 7, 32);
  CHECK(page.body.find("<script nonce=\"" + nonce + "\">") != std::string::npos);
  Response again = send(s, "GET", "/", "Cookie: " + std::string(kCookie) + "=" + id + "\r\n");
  CHECK(std::string(again.header("Content-Security-Policy").value_or("")) != csp);
  // The bearer token alone gets the form: the page's script needs a session.
  CHECK(is_sign_in_page(send(s, "GET", "/", "Authorization: Bearer " + std::string(kToken) + "\r\n")));
}

TEST_CASE("a session cookie: GETs as the bearer token, POSTs only with its CSRF token from the port's own origin") {
  Site s;
  Session session = signed_in(s);
  const std::string drain = "/backends/app/" + server(s.app) + "/drain";
  const std::string enable = "/backends/app/" + server(s.app) + "/enable";

  for (const char* path : {"/backends", "/backends.txt", "/stats", "/metrics", "/events", "/top"})
    CHECK_MESSAGE(send(s, "GET", path, session.cookie).status == 200, path);

  Response no_csrf = send(s, "POST", drain, session.cookie);
  CHECK(no_csrf.status == 403);
  CHECK(no_csrf.body.find("X-Edge-CSRF") != std::string::npos);
  CHECK(send(s, "POST", drain, session.cookie + "X-Edge-CSRF: " + std::string(32, '0') + "\r\n").status == 403);
  CHECK(send(s, "POST", drain, session.cookie + csrf_header(session) + csrf_header(session)).status == 403);
  Response foreign = send(s, "POST", drain, session.cookie + csrf_header(session) + "Origin: http://evil.test\r\n");
  CHECK(foreign.status == 403);
  CHECK(foreign.body.find("another origin") != std::string::npos);
  CHECK(send(s, "POST", drain, session.cookie + csrf_header(session) + "Sec-Fetch-Site: cross-site\r\n").status == 403);
  CHECK(send(s, "GET", "/backends", session.cookie).body.find("\"state\":\"up\"") != std::string::npos);

  Response drained = send(s, "POST", drain,
                          session.cookie + csrf_header(session) + "Origin: http://" + s.host() +
                              "\r\nSec-Fetch-Site: same-origin\r\n");
  CHECK(drained.status == 200);
  CHECK(drained.body.find("\"state\":\"draining\"") != std::string::npos);
  Response enabled = send(s, "POST", enable, session.cookie + csrf_header(session));
  CHECK(enabled.status == 200);
  CHECK(enabled.body.find("\"state\":\"up\"") != std::string::npos);

  // The bearer token needs none of that, cookie or not.
  CHECK(send(s, "POST", drain, "Authorization: Bearer " + std::string(kToken) + "\r\nOrigin: http://evil.test\r\n")
            .status == 200);
  CHECK(admin_request(s.admin_port, kToken, "POST", enable).status == 200);

  // Signing in from another origin is refused too (a forced sign-in into the attacker's session).
  CHECK(sign_in(s, kToken, "Origin: http://evil.test\r\n").status == 403);
  CHECK(sign_in(s, kToken, "Origin: http://" + s.host() + "\r\n").status == 303);
  CHECK(sign_in(s, kToken, "Origin: null\r\n").status == 403);
  CHECK(sign_in(s, kToken, "Origin: null\r\nSec-Fetch-Site: same-origin\r\n").status == 303);

  // Signing out needs the CSRF token too, then ends the session.
  CHECK(send(s, "POST", "/logout", session.cookie).status == 403);
  Response out = send(s, "POST", "/logout", session.cookie + csrf_header(session));
  CHECK(out.status == 200);
  CHECK(out.body == "{\"signed_out\":true}\n");
  CHECK(std::string(out.header("Set-Cookie").value_or("")).find("Max-Age=0") != std::string::npos);
  CHECK(send(s, "GET", "/backends", session.cookie).status == 401);
  CHECK(is_sign_in_page(send(s, "GET", "/", session.cookie)));
  CHECK(send(s, "POST", enable, session.cookie + csrf_header(session)).status == 401);
  CHECK(admin_request(s.admin_port, kToken, "GET", "/backends").status == 200);
}

TEST_CASE("a session ends at admin.session_ttl") {
  Site s("  session_ttl: 1s\n");
  Response r = sign_in(s, kToken);
  REQUIRE(r.status == 303);
  CHECK(std::string(r.header("Set-Cookie").value_or("")).find("; Max-Age=1") != std::string::npos);
  const std::string cookie = "Cookie: " + std::string(kCookie) + "=" + cookie_value(r) + "\r\n";
  CHECK(eventually([&] { return send(s, "GET", "/stats", cookie).status == 401; }));
  CHECK(is_sign_in_page(send(s, "GET", "/", cookie)));
  CHECK(admin_request(s.admin_port, kToken, "GET", "/stats").status == 200);
}

TEST_CASE("GET /events: purges, bans and reloads, by the port and by SIGHUP, newest first") {
  Site s;
  Session session = signed_in(s);
  CHECK(send(s, "GET", "/events", session.cookie).body == "{\"events\":[]}\n");
  CHECK(admin_request(s.admin_port, kToken, "POST", "/purge?url=" + percent_encode("http://books.test/a?b=1")).status ==
        200);
  CHECK(send(s, "POST", "/purge?tag=shelf&soft=1", session.cookie + csrf_header(session)).status == 200);
  CHECK(admin_request(s.admin_port, kToken, "POST", "/ban?prefix=/old/").status == 200);
  CHECK(admin_request(s.admin_port, kToken, "POST", "/reload").status == 200);
  std::string events = send(s, "GET", "/events", session.cookie).body;
  const size_t reload = events.find("\"kind\":\"reload\",\"detail\":\"admin: generation 2");
  const size_t ban = events.find("\"kind\":\"ban\",\"detail\":\"hard ban 1: host=* prefix=/old/");
  const size_t tag = events.find("\"kind\":\"purge\",\"detail\":\"soft purge of tag shelf: 0 objects\"");
  const size_t url = events.find("\"kind\":\"purge\",\"detail\":\"hard purge of URL books.test/a?b=1: 0 objects\"");
  CHECK(reload != std::string::npos);
  CHECK(ban != std::string::npos);
  CHECK(tag != std::string::npos);
  CHECK(url != std::string::npos);
  CHECK(reload < ban);
  CHECK(ban < tag);
  CHECK(tag < url);

  // A reload by SIGHUP is told to the port by the server.
  s.edge.process.kill(SIGHUP);
  CHECK(eventually([&] {
    return send(s, "GET", "/events", session.cookie).body.find("\"detail\":\"SIGHUP: generation 3") != std::string::npos;
  }));
}

TEST_CASE("hostile input: huge and repeated cookies, bad forms, a sign-in body over the limit") {
  Site s;
  Session session = signed_in(s);
  const std::string id = session.cookie.substr(session.cookie.find('=') + 1, 64);
  // The session cookie twice (even the right one): neither is taken.
  CHECK(send(s, "GET", "/stats", "Cookie: " + std::string(kCookie) + "=" + id + "; " + kCookie + "=" + id + "\r\n")
            .status == 401);
  CHECK(send(s, "GET", "/stats", session.cookie + session.cookie).status == 401);
  // Among many others it still counts; a cookie too large for the head is refused as the head.
  std::string many = "Cookie: ";
  for (int i = 0; i < 200; ++i) many += "c" + std::to_string(i) + "=v; ";
  CHECK(send(s, "GET", "/stats", many + kCookie + "=" + id + "\r\n").status == 200);
  Response huge = send(s, "GET", "/stats", "Cookie: x=" + std::string(20000, 'a') + "\r\n");
  CHECK(huge.status >= 400);
  CHECK(huge.status != 200);
  CHECK(send(s, "GET", "/stats", "Cookie: " + std::string(kCookie) + "=" + std::string(64, 'f') + "\r\n").status == 401);
  CHECK(send(s, "GET", "/stats", "Cookie: " + std::string(kCookie) + "=\r\n").status == 401);

  // Malformed forms are wrong tokens.
  for (const char* body : {"token=%zz", "token=a&token=b", "token", "%%%", "token=" "\xff\xfe", ""}) {
    Response r = send(s, "POST", "/login", "", body);
    CHECK_MESSAGE(r.status == 401, body);
  }
  // The right token twice is ambiguous too.
  CHECK(send(s, "POST", "/login", "", "token=" + std::string(kToken) + "&token=" + kToken).status == 401);
  // Over the limit: refused at the head, unread.
  CHECK(send(s, "POST", "/login", "", "token=" + std::string(5000, 'a')).status == 413);
  Response over = exchange(s.admin_port, "POST /login HTTP/1.1\r\nHost: " + s.host() +
                                             "\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n");
  CHECK((over.status == 413 || over.status == 401));
  // Chunked: no length to judge it by before reading, so refused unread.
  std::string chunked = "POST /login HTTP/1.1\r\nHost: " + s.host() + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  chunked += "1388\r\n" + std::string(5000, 'a') + "\r\n0\r\n\r\n";
  CHECK(exchange(s.admin_port, chunked).status == 411);
  // Anything but GET or HEAD without the token is refused at its head, the sign-in page's
  // path included.
  CHECK(send(s, "POST", "/", "", "x").status == 401);
  // Wrong methods.
  CHECK(send(s, "GET", "/login").status == 401);
  CHECK(send(s, "GET", "/login", session.cookie).status == 405);
  CHECK(send(s, "GET", "/logout", session.cookie).status == 405);
  CHECK(send(s, "POST", "/events", session.cookie + csrf_header(session)).status == 405);
  // Still up and serving the session.
  CHECK(send(s, "GET", "/backends", session.cookie).status == 200);
}

TEST_CASE("a URL with markup in /top stays data: the page never inserts it as markup") {
  Site s;
  Session session = signed_in(s);
  const std::string hostile = "/echo?<script>alert(1)</script>";
  Response r = exchange(s.edge.port, "GET " + hostile + " HTTP/1.1\r\nHost: books.test\r\nConnection: close\r\n\r\n");
  CHECK(r.complete);
  CHECK(eventually([&] {
    return send(s, "GET", "/top?window=10s", session.cookie).body.find("<script>alert(1)</script>") != std::string::npos;
  }));
  // It reaches the page only through textContent (proxy/status_page.h; the browser test shows it).
  Response page = send(s, "GET", "/", session.cookie);
  CHECK(page.body.find("innerHTML") == std::string::npos);
  CHECK(page.body.find("textContent") != std::string::npos);
}

TEST_CASE("at admin.max_connections, a signed-in browser's connection is kept as a token's is") {
  Site s("  max_connections: 3\n");
  Session session = signed_in(s);
  auto ask = [&](Client& c, const std::string& path, const std::string& headers) {
    c.send("GET " + path + " HTTP/1.1\r\nHost: " + s.host() + "\r\n" + headers + "\r\n");
    return c.read_response();
  };
  // A browser's kept-alive connection, and one that signed in (and has shown nothing else).
  Client browser(s.admin_port);
  REQUIRE(ask(browser, "/stats", session.cookie).status == 200);
  Client signing_in(s.admin_port);
  const std::string form = "token=" + percent_encode(kToken);
  signing_in.send("POST /login HTTP/1.1\r\nHost: " + s.host() + "\r\nContent-Length: " + std::to_string(form.size()) +
                  "\r\n\r\n" + form);
  REQUIRE(signing_in.read_response().status == 303);
  // One looked at the sign-in page only: it showed nothing, so it is the one let go.
  Client visitor(s.admin_port);
  REQUIRE(ask(visitor, "/", "").status == 200);
  Client newcomer(s.admin_port);
  CHECK(visitor.wait_closed());
  CHECK(ask(browser, "/backends", session.cookie).status == 200);
  CHECK(ask(signing_in, "/backends", session.cookie).status == 200);
  // Every place is now held by a trusted connection (the newcomer took the visitor's and
  // showed the cookie): the next one is closed.
  CHECK(ask(newcomer, "/events", session.cookie).status == 200);
  Client late(s.admin_port);
  CHECK(late.wait_closed());
  CHECK(ask(browser, "/stats", session.cookie).status == 200);
}
