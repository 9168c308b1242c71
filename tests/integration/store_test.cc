// Several edge-app processes on one SQLite store, as the demo runs them: a session opened on one
// works on the others, a review posted on one shows on pages the others render, concurrent
// writers through HTTP lose nothing, a locked store is waited for (503 only past its busy
// timeout), and behind edge every page is balanced while a post still purges exactly its tag.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {
constexpr char kToken[] = "store-t0ken";

std::string header(const Response& r, std::string_view name) {
  auto v = r.header(name);
  return v ? std::string(*v) : std::string("<absent>");
}

// A request with the session's cookie, when there is one.
Response send(uint16_t port, std::string_view method, const std::string& target, const std::string& cookie = "",
              const std::string& form = "") {
  return demo_request(port, method, target, cookie.empty() ? "" : "Cookie: " + cookie + "\r\n", form);
}

// The views the most-viewed fragment gives the book in its first list (the last hour), or 0.
long views_of(uint16_t port, int book) {
  const std::string body = send(port, "GET", "/fragments/mostviewed").body;
  const std::string hour = body.substr(0, body.find("In the last day"));
  std::smatch m;
  const std::regex entry("href=\"/book/" + std::to_string(book) + "\"[^<]*</a> <span class=\"count\">([0-9]+) view");
  return std::regex_search(hour, m, entry) ? std::stol(m[1]) : 0;
}

// Three edge-apps on one SQLite file.
struct Servers {
  explicit Servers(std::vector<std::string> extra = {}) {
    for (const char* name : {"a", "b", "c"}) {
      std::vector<std::string> args = {"--store", "sqlite:" + store_path, "--seed", "5"};
      args.insert(args.end(), extra.begin(), extra.end());
      apps.push_back(std::make_unique<App>(name, args));
    }
  }
  uint16_t port(size_t i) const { return apps[i]->port; }
  TempDir dir;
  std::string store_path = dir.path() + "/store.db";
  std::vector<std::unique_ptr<App>> apps;
};
}  // namespace

TEST_CASE("one store: a session opened on one server works on the others, and ends everywhere") {
  Servers s;
  const std::string cookie = demo_login(s.port(0), "7");
  for (size_t i : {1, 2}) {
    Response bar = send(s.port(i), "GET", "/fragments/userbar", cookie);
    CHECK(bar.status == 200);
    CHECK(bar.body.find("Signed in as") != std::string::npos);
    CHECK(header(bar, "Surrogate-Key") == "userbar user-7");
  }
  CHECK(send(s.port(1), "POST", "/logout", cookie).status == 303);
  CHECK(send(s.port(2), "GET", "/fragments/userbar", cookie).body.find("href=\"/login\"") != std::string::npos);
}

TEST_CASE("one store: a review posted on one server is on the pages the others render") {
  Servers s;
  const std::string cookie = demo_login(s.port(2), "3");
  Response posted = send(s.port(0), "POST", "/book/11/reviews", cookie, "text=Seen+everywhere&rating=5");
  CHECK(posted.status == 303);
  CHECK(header(posted, "Location") == "/book/11");
  for (size_t i : {1, 2}) CHECK(send(s.port(i), "GET", "/fragments/reviews/11").body.find("Seen everywhere") != std::string::npos);
  CHECK(send(s.port(1), "GET", "/fragments/reviews/12").body.find("Seen everywhere") == std::string::npos);
  // Without a session the post goes to the login, on any server.
  CHECK(header(send(s.port(1), "POST", "/book/11/reviews", "", "text=x"), "Location") == "/login?next=/book/11");
}

TEST_CASE("one store: concurrent writers on three servers lose no view and no review") {
  Servers s;
  const std::string cookie = demo_login(s.port(0), "2");
  constexpr int kThreads = 6, kViews = 60, kReviewsEach = 5;
  std::atomic<int> bad{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      const uint16_t port = s.port(static_cast<size_t>(t % 3));
      for (int i = 0; i < kViews; ++i)
        if (send(port, "GET", "/fragments/view/21").status != 200) ++bad;
      for (int i = 0; i < kReviewsEach; ++i)
        if (send(port, "POST", "/book/22/reviews", cookie, "text=writer+" + std::to_string(t) + "+review+" + std::to_string(i))
                .status != 303)
          ++bad;
    });
  for (auto& w : writers) w.join();
  CHECK(bad == 0);
  for (size_t i = 0; i < 3; ++i) CHECK(views_of(s.port(i), 21) == kThreads * kViews);
  const std::string reviews = send(s.port(1), "GET", "/fragments/reviews/22").body;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kReviewsEach; ++i)
      CHECK(reviews.find("writer " + std::to_string(t) + " review " + std::to_string(i) + "<") != std::string::npos);
}

TEST_CASE("one store: a locked store is waited for; past the busy timeout the answer is 503, not 500") {
  Servers s({"--store-busy-timeout-ms", "30000"});
  App hasty("hasty", {"--store", "sqlite:" + s.store_path, "--seed", "5", "--store-busy-timeout-ms", "100"});
  const std::string cookie = demo_login(s.port(0), "4");

  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open(s.store_path.c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);

  Response refused = send(hasty.port, "GET", "/fragments/view/30");
  CHECK(refused.status == 503);
  CHECK(header(refused, "Retry-After") == "1");
  CHECK(hasty.process.output().find("store busy") != std::string::npos);

  // The patient server's post waits for the lock: no answer comes while it is held (a request
  // that had not arrived yet would pass this too, never fail it), and once it is let go the
  // review is stored.
  Client poster(s.port(1), std::chrono::milliseconds(500));
  const std::string body = "text=Waited+for+it";
  REQUIRE(poster.send("POST /book/30/reviews HTTP/1.1\r\nHost: books.test\r\nCookie: " + cookie +
                      "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body));
  CHECK(poster.read_some().empty());
  sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  timeval patient{30, 0};
  ::setsockopt(poster.fd(), SOL_SOCKET, SO_RCVTIMEO, &patient, sizeof patient);
  Response posted = poster.read_response();
  CHECK(posted.status == 303);
  CHECK(send(s.port(2), "GET", "/fragments/reviews/30").body.find("Waited for it") != std::string::npos);
  CHECK(send(hasty.port, "GET", "/fragments/view/30").status == 200);
}

TEST_CASE("behind edge, every page balanced: any server takes any request, and a post purges exactly its tag") {
  TempDir secrets;
  const std::string token_path = secrets.write("admin.token", kToken);
  ReservedPort admin;
  Servers s({"--admin", "127.0.0.1:" + std::to_string(admin.port()), "--admin-token-file", token_path});
  Edge edge{R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
admin:
  address: "127.0.0.1:)" + std::to_string(admin.port()) + R"("
  token_file: ")" + token_path + R"("
backends:
  app:
    balance: least_conn
    servers: [)" + yaml_address(s.port(0)) + ", " + yaml_address(s.port(1)) + ", " + yaml_address(s.port(2)) + R"(]
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /fragments/userbar, key_cookies: [session]}
      - {path: /fragments/view/, cache: off}
)"};
  REQUIRE(wait_for_port(admin.port()));

  // Logins, posts, views and fragments all go to whichever server is least busy.
  const std::string cookie = demo_login(edge.port, "5");
  for (int book = 40; book < 70; ++book) {
    CHECK(send(edge.port, "GET", "/fragments/view/" + std::to_string(book)).status == 200);
    CHECK(send(edge.port, "GET", "/fragments/userbar", cookie).body.find("Signed in as") != std::string::npos);
  }
  long servers_with_views = 0;
  for (size_t i = 0; i < 3; ++i) {
    long views = 0;
    for (int book = 40; book < 70; ++book) views += app_count(s.port(i), "/fragments/view/" + std::to_string(book));
    servers_with_views += views > 0;
  }
  CHECK(servers_with_views == 3);

  for (const char* target : {"/fragments/reviews/3", "/fragments/reviews/4", "/fragments/book/3"}) {
    send(edge.port, "GET", target);
    REQUIRE(header(send(edge.port, "GET", target), "X-Cache") == "HIT");
  }
  for (int i = 0; i < 3; ++i) {
    const std::string text = "Balanced+post+" + std::to_string(i);
    Response posted = send(edge.port, "POST", "/book/3/reviews", cookie, "text=" + text);
    CHECK(posted.status == 303);
    Response reviews = send(edge.port, "GET", "/fragments/reviews/3");
    CHECK(header(reviews, "X-Cache") == "MISS");
    CHECK(reviews.body.find("Balanced post " + std::to_string(i)) != std::string::npos);
  }
  CHECK(header(send(edge.port, "GET", "/fragments/reviews/4"), "X-Cache") == "HIT");
  CHECK(header(send(edge.port, "GET", "/fragments/book/3"), "X-Cache") == "HIT");
  for (size_t i = 0; i < 3; ++i) CHECK(s.apps[i]->process.output().find("failed") == std::string::npos);
}
