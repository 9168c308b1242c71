// The edge in front of real edge-app servers: routing, forwarding, HTTP/1.x connection handling.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
std::string config_for(const App& a, const App& b, const App& c) {
  return R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
backends:
  books:  {servers: ["127.0.0.1:)" + std::to_string(a.port) + R"("]}
  api:    {servers: ["127.0.0.1:)" + std::to_string(b.port) + R"("]}
  others: {servers: ["127.0.0.1:)" + std::to_string(c.port) + R"("]}
hosts:
  - match: [books.test, www.books.test]
    backend: books
    routes:
      - {path: /api/, backend: api}
  - match: ["*.wild.test"]
    backend: others
)";
}

struct Site {
  App books{"books"};
  App api{"api"};
  App others{"others"};
  Edge edge{config_for(books, api, others)};
};

std::string request(const std::string& target, const std::string& host, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n";
}
}  // namespace

TEST_CASE("requests are routed by host and path prefix; an unknown host gets 404") {
  Site site;
  CHECK(get(site.edge.port, "books.test", "/echo").header("X-Backend") == std::string_view("books"));
  CHECK(get(site.edge.port, "WWW.Books.Test:80", "/echo").header("X-Backend") == std::string_view("books"));
  Response api = get(site.edge.port, "books.test", "/api/echo");
  CHECK(api.status == 404);  // edge-app has no /api/echo, but the api server answered it
  CHECK(api.header("X-Backend") == std::string_view("api"));
  CHECK(get(site.edge.port, "a.b.wild.test", "/echo").header("X-Backend") == std::string_view("others"));
  Response none = get(site.edge.port, "nobody.test", "/echo");
  CHECK(none.status == 404);
  CHECK_FALSE(none.header("X-Backend"));
  CHECK(none.body.find("404") != std::string::npos);
}

TEST_CASE("hop-by-hop headers are stripped both ways; X-Forwarded-For, X-Forwarded-Proto and Via are added") {
  Site site;
  Client client(site.edge.port);
  client.send(request("/echo", "books.test",
                      "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
                      "Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n"
                      "X-Forwarded-Proto: https\r\nX-Kept: yes\r\n"));
  Response r = client.read_response();
  REQUIRE(r.status == 200);
  const std::string& echo = r.body;
  CHECK(echo.find("X-Secret") == std::string::npos);
  CHECK(echo.find("Keep-Alive") == std::string::npos);
  CHECK(echo.find("Proxy-Connection") == std::string::npos);
  CHECK(echo.find("\"TE\"") == std::string::npos);
  CHECK(echo.find("X-Kept") != std::string::npos);
  CHECK(echo.find("10.0.0.1, 127.0.0.1") != std::string::npos);
  CHECK(echo.find("https") == std::string::npos);
  CHECK(echo.find("\"X-Forwarded-Proto\",\"http\"") != std::string::npos);
  CHECK(echo.find("1.1 edge") != std::string::npos);
  CHECK(r.header("Via") == std::string_view("1.1 edge"));
  CHECK(r.header("Date"));

  // The backend's own hop-by-hop headers do not reach the client, and its Connection: close
  // does not close the client's connection.
  client.send(request("/headers?Connection=close&Keep-Alive=timeout%3D1&X-Foo=bar", "books.test"));
  Response h = client.read_response();
  CHECK(h.status == 200);
  CHECK(h.header("X-Foo") == std::string_view("bar"));
  CHECK_FALSE(h.header("Keep-Alive"));
  CHECK_FALSE(h.header("Connection"));
  client.send(request("/health", "books.test"));
  CHECK(client.read_response().status == 200);
}

TEST_CASE("keep-alive carries many requests; pipelined requests are answered in order") {
  Site site;
  Client client(site.edge.port);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(client.send(request("/echo?i=" + std::to_string(i), "books.test")));
    Response r = client.read_response();
    REQUIRE(r.status == 200);
    CHECK(r.body.find("/echo?i=" + std::to_string(i)) != std::string::npos);
  }
  // Three at once, the middle one slow: the answers still come in order.
  client.send(request("/echo?n=1", "books.test") + request("/wait?ms=200", "books.test") +
              request("/echo?n=3", "books.test"));
  Response a = client.read_response(), b = client.read_response(), c = client.read_response();
  CHECK(a.body.find("/echo?n=1") != std::string::npos);
  CHECK(b.body.find("waited") != std::string::npos);
  CHECK(c.body.find("/echo?n=3") != std::string::npos);
}

TEST_CASE("HTTP/1.0: closes by default, keeps alive on request, never gets chunked") {
  Site site;
  {
    Client client(site.edge.port);
    client.send("GET /health HTTP/1.0\r\nHost: books.test\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(client.wait_closed());
  }
  {
    Client client(site.edge.port);
    client.send("GET /chunked?n=5000 HTTP/1.0\r\nHost: books.test\r\nConnection: keep-alive\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.body.size() == 5000);
    CHECK_FALSE(r.header("Transfer-Encoding"));
    client.send("GET /health HTTP/1.0\r\nHost: books.test\r\nConnection: keep-alive\r\n\r\n");
    CHECK(client.read_response().status == 200);
  }
  {
    // No Host at all is fine in HTTP/1.0; with no catch-all it matches no host entry.
    Client client(site.edge.port);
    client.send("GET /health HTTP/1.0\r\n\r\n");
    CHECK(client.read_response().status == 404);
  }
}

TEST_CASE("HEAD gets the head only; bodies in Content-Length and chunked reach the backend whole") {
  Site site;
  Client client(site.edge.port);
  client.send("HEAD /bytes?n=1234 HTTP/1.1\r\nHost: books.test\r\n\r\n");
  Response head = client.read_response("HEAD");
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == std::string_view("1234"));
  CHECK(head.body.empty());

  client.send("POST /echo HTTP/1.1\r\nHost: books.test\r\nContent-Length: 11\r\n\r\nhello world");
  Response post = client.read_response();
  CHECK(post.body.find("\"body_bytes\":11") != std::string::npos);
  CHECK(post.body.find("hello world") != std::string::npos);

  client.send("POST /echo HTTP/1.1\r\nHost: books.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              "6\r\nchunky\r\n7\r\n upload\r\n0\r\n\r\n");
  Response chunked = client.read_response();
  CHECK(chunked.body.find("\"body_bytes\":13") != std::string::npos);
  CHECK(chunked.body.find("chunky upload") != std::string::npos);
  // The backend sees a Content-Length, not the client's chunking.
  CHECK(chunked.body.find("Transfer-Encoding") == std::string::npos);
}

TEST_CASE("a chunked backend response reaches an HTTP/1.1 client intact") {
  Site site;
  Client client(site.edge.port);
  client.send(request("/chunked?n=200000", "books.test"));
  Response r = client.read_response();
  REQUIRE(r.status == 200);
  REQUIRE(r.body.size() == 200000);
  for (size_t i = 0; i < r.body.size(); i += 997) REQUIRE(r.body[i] == static_cast<char>('a' + i % 26));
}

TEST_CASE("Expect: 100-continue gets 100 before the body, and the body gets through") {
  Site site;
  Client client(site.edge.port);
  client.send("POST /echo HTTP/1.1\r\nHost: books.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = client.read_some(64);
  CHECK(interim.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
  client.send("abcde");
  Response r = client.read_response();
  CHECK(r.status == 200);
  CHECK(r.body.find("\"body_bytes\":5") != std::string::npos);
  // The backend never sees the expectation: the edge already honoured it.
  CHECK(r.body.find("100-continue") == std::string::npos);

  Client other(site.edge.port);
  other.send("POST /echo HTTP/1.1\r\nHost: books.test\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\n");
  CHECK(other.read_response().status == 417);
}

TEST_CASE("the backend's own error responses pass through unchanged") {
  Site site;
  Response r = get(site.edge.port, "books.test", "/status?code=503");
  CHECK(r.status == 503);
  CHECK(r.header("X-Backend") == std::string_view("books"));
  Response missing = get(site.edge.port, "books.test", "/no/such/page");
  CHECK(missing.status == 404);
  CHECK(missing.header("X-Backend") == std::string_view("books"));
}

TEST_CASE("an absolute-form target is routed by its own host and forwarded in origin form") {
  Site site;
  Client client(site.edge.port);
  client.send("GET http://books.test/echo?x=1 HTTP/1.1\r\nHost: nobody.test\r\n\r\n");
  Response r = client.read_response();
  CHECK(r.status == 200);
  CHECK(r.header("X-Backend") == std::string_view("books"));
  CHECK(r.body.find("\"target\":\"/echo?x=1\"") != std::string::npos);
  CHECK(r.body.find("[\"Host\",\"books.test\"]") != std::string::npos);
  CHECK(r.body.find("nobody.test") == std::string::npos);

  client.send("GET HTTP://A.Wild.Test?q HTTP/1.1\r\nHost: books.test\r\n\r\n");
  Response wild = client.read_response();
  CHECK(wild.header("X-Backend") == std::string_view("others"));
  CHECK(app_count(site.others.port, "/?q") == 1);  // forwarded in origin form, with the path it lacked
}

namespace {
// The local ports of the TCP sockets the process `pid` has listening, one per socket, sorted:
// its fds that are sockets, looked up in the kernel's table of IPv4 TCP sockets.
std::vector<int> listening_ports(pid_t pid) {
  std::vector<std::string> inodes;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) inodes.push_back(target.substr(8, target.size() - 9));
  }
  std::vector<int> ports;
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the column names
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeouts, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeouts >> inode;
    if (state != "0A" || std::find(inodes.begin(), inodes.end(), inode) == inodes.end()) continue;  // 0A: LISTEN
    ports.push_back(std::stoi(local.substr(local.find(':') + 1), nullptr, 16));
  }
  std::sort(ports.begin(), ports.end());
  return ports;
}
}  // namespace

TEST_CASE("on port 0 each listener and the admin port get a port, reported; every worker shares its listener's") {
  App app("app");
  TempDir secrets;
  Edge with_admin(single_backend_config(yaml_address(app.port), "", "", 2) +
                  "admin: {address: \"127.0.0.1:0\", token_file: \"" + secrets.write("token", "t0k") + "\"}\n");
  // A second listener on port 0 beside {{port}}'s, added to the list the configuration has.
  std::string yaml = single_backend_config(yaml_address(app.port), "", "", 2);
  yaml.replace(yaml.find("]"), 1, ", {address: \"127.0.0.1:0\"}]");
  Edge two_listeners(yaml);
  const std::string said = two_listeners.process.output();
  std::vector<int> reported;
  for (size_t at = said.find("edge: listening on 127.0.0.1:"); at != std::string::npos;
       at = said.find("edge: listening on 127.0.0.1:", at + 1))
    reported.push_back(std::stoi(said.substr(at + 29)));
  REQUIRE(reported.size() == 2);
  CHECK(reported[0] == two_listeners.port);
  CHECK(reported[0] != reported[1]);
  for (int port : reported) CHECK(get(static_cast<uint16_t>(port), "a", "/health").status == 200);
  std::vector<int> expected = {reported[0], reported[0], reported[1], reported[1]};  // two workers each
  std::sort(expected.begin(), expected.end());
  CHECK(listening_ports(two_listeners.process.pid()) == expected);

  REQUIRE(with_admin.admin_port != 0);
  CHECK(with_admin.admin_port != with_admin.port);
  CHECK(exchange(with_admin.admin_port, "GET /stats HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k\r\n\r\n").status == 200);
  std::vector<int> admin_expected = {with_admin.port, with_admin.port, with_admin.admin_port};
  std::sort(admin_expected.begin(), admin_expected.end());
  CHECK(listening_ports(with_admin.process.pid()) == admin_expected);
}
