#include "app/demo_site.h"

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "app/routes.h"
#include "app/sqlite_store.h"

using namespace edge::app;

namespace {
constexpr DemoSizes kSmall{300, 100, 40, 200, 20};

std::unique_ptr<Store> private_store() {
  std::string error;
  auto store = open_sqlite_store(":memory:", kDefaultBusyTimeout, error);
  REQUIRE_MESSAGE(store, error);
  return store;
}

// A site whose session tokens are t1, t2, ..., on a store of its own.
struct Site {
  int tokens = 0;
  DemoSite site{3, [this] { return "t" + std::to_string(++tokens); }, private_store(), kSmall};

  std::optional<uint32_t> user_of(std::string_view token) {
    std::optional<uint32_t> user;
    REQUIRE(site.store().session_user(token, user) == StoreStatus::kOk);
    return user;
  }
  uint64_t review_count() {
    uint64_t n = 0;
    REQUIRE(site.store().posted_review_count(n) == StoreStatus::kOk);
    return n;
  }
  std::vector<PostedReview> reviews_of(uint32_t book) {
    std::vector<PostedReview> out;
    REQUIRE(site.store().posted_reviews(book, out) == StoreStatus::kOk);
    return out;
  }
  std::vector<ViewCount> most_viewed(int64_t now, ViewWindow window, size_t n) {
    std::vector<ViewCount> out;
    REQUIRE(site.store().most_viewed(now, window, n, out) == StoreStatus::kOk);
    return out;
  }

  std::optional<Reply> send(std::string_view method, std::string_view target, std::string_view cookie = {},
                            std::string_view body = {}, std::string_view content_type = "application/x-www-form-urlencoded") {
    edge::http::RequestHead head;
    head.method = method;
    head.target = target;
    head.headers.add("Host", "books.test");
    if (!cookie.empty()) head.headers.add("Cookie", cookie);
    if (!body.empty() && !content_type.empty()) head.headers.add("Content-Type", content_type);
    edge::http::Body request_body;
    request_body.append(body);
    request_body.set_complete();
    return site.handle(head, request_body, 1700000000);
  }
  Reply get(std::string_view target, std::string_view cookie = {}) {
    auto r = send("GET", target, cookie);
    REQUIRE(r);
    return *r;
  }
  Reply post(std::string_view target, std::string_view body, std::string_view cookie = {}) {
    auto r = send("POST", target, cookie, body);
    REQUIRE(r);
    return *r;
  }
  // Logs in and returns the Cookie field value for the session.
  std::string login(std::string_view user) {
    Reply r = post("/login", "user=" + std::string(user));
    REQUIRE(r.status == 303);
    std::string set_cookie(r.headers.get("Set-Cookie").value_or(""));
    return set_cookie.substr(0, set_cookie.find(';'));
  }
};

std::string field(const Reply& r, std::string_view name) {
  auto v = r.headers.get(name);
  return v ? std::string(*v) : "<absent>";
}

edge::http::Headers cookies(std::initializer_list<std::string_view> values) {
  edge::http::Headers h;
  for (std::string_view v : values) h.add("Cookie", v);
  return h;
}
}  // namespace

TEST_CASE("demo site: its paths, and only its paths") {
  Site s;
  CHECK(s.get("/").status == 200);
  CHECK(s.get("/book/1").status == 200);
  CHECK(s.get("/book/300").status == 200);
  CHECK(s.get("/author/100").status == 200);
  CHECK(s.get("/tag/40").status == 200);
  CHECK(s.get("/login").status == 200);
  CHECK(s.get(stylesheet_path()).status == 200);
  for (std::string_view fragment : {"/fragments/userbar", "/fragments/book/1", "/fragments/reviews/1", "/fragments/author/1",
                                    "/fragments/tag/1", "/fragments/tagcloud", "/fragments/picks", "/fragments/mostviewed",
                                    "/fragments/view/1"})
    CHECK(s.get(fragment).status == 200);
  // Ids that do not exist, or are not written canonically.
  for (std::string_view missing : {"/book/0", "/book/301", "/book/01", "/book/x", "/book/1/", "/book/1/other", "/author/101",
                                   "/tag/41", "/tag/1?page=0", "/tag/1?page=999", "/fragments/book/301", "/fragments/nope",
                                   "/fragments/reviews/", "/fragments/view/0"})
    CHECK(s.get(missing).status == 404);
  // Everything else is somebody else's: the test endpoints and the generated assets.
  for (std::string_view other : {"/health", "/echo", "/cache/x", "/count?url=%2F", "/stats", "/static/site.css", "/books",
                                 "/loginx", "/fragment/userbar"})
    CHECK_FALSE(s.send("GET", other));
}

TEST_CASE("demo site: methods") {
  Site s;
  Reply r = *s.send("DELETE", "/book/1");
  CHECK(r.status == 405);
  CHECK(field(r, "Allow") == "GET, HEAD");
  CHECK(s.send("POST", "/fragments/userbar")->status == 405);
  CHECK(field(*s.send("GET", "/logout"), "Allow") == "POST");
  CHECK(field(*s.send("GET", "/book/1/reviews"), "Allow") == "POST");
  CHECK(field(*s.send("PUT", "/login"), "Allow") == "GET, HEAD, POST");
  CHECK(s.send("HEAD", "/book/1")->status == 200);
}

TEST_CASE("demo site: views are counted by GET of the view fragment, and ranked per window") {
  Site s;
  for (int i = 0; i < 3; ++i) s.get("/fragments/view/7");
  s.get("/fragments/view/9");
  s.get("/fragments/view/5");
  s.send("HEAD", "/fragments/view/9");  // not a view
  const int64_t now = 1700000000;
  for (ViewWindow window : {ViewWindow::kHour, ViewWindow::kDay}) {
    auto top = s.most_viewed(now, window, 10);
    REQUIRE(top.size() == 3);
    CHECK(top[0].book == 7);
    CHECK(top[0].views == 3);
    CHECK(top[1].book == 5);  // ties: lower id first
    CHECK(top[2].book == 9);
    CHECK(top[2].views == 1);
    CHECK(s.most_viewed(now, window, 1).size() == 1);
  }
  CHECK(s.most_viewed(now + 2 * 3600, ViewWindow::kHour, 10).empty());
  CHECK(s.most_viewed(now + 2 * 3600, ViewWindow::kDay, 10).size() == 3);
  CHECK(s.most_viewed(now + 25 * 3600, ViewWindow::kDay, 10).empty());
  Reply list = s.get("/fragments/mostviewed");
  CHECK(list.body.find("In the last hour") < list.body.find("In the last day"));
  CHECK(list.body.find("href=\"/book/7\"") < list.body.find("href=\"/book/5\""));
  CHECK(list.body.find("3 views") != std::string::npos);
}

TEST_CASE("demo site: login by name or number opens a session; logout ends it") {
  Site s;
  const std::string name(s.site.data().user_name(4));
  Reply r = s.post("/login", "user=" + name + "&next=%2Fbook%2F3");
  CHECK(r.status == 303);
  CHECK(field(r, "Location") == "/book/3");
  CHECK(field(r, "Set-Cookie") == "session=t1; Path=/; HttpOnly; SameSite=Lax");
  CHECK(field(r, "Cache-Control") == "no-store");
  CHECK(s.user_of("t1") == 4u);

  Reply bar = s.get("/fragments/userbar", "theme=dark; session=t1");
  CHECK(bar.body.find(name) != std::string::npos);
  CHECK(field(bar, "Surrogate-Key") == "userbar user-4");
  CHECK(s.get("/fragments/userbar", "session=nope").body.find("href=\"/login\"") != std::string::npos);

  CHECK(s.login("12") == "session=t2");
  CHECK(s.user_of("t2") == 12u);

  Reply out = s.post("/logout", "", "session=t1");
  CHECK(out.status == 303);
  CHECK(field(out, "Location") == "/");
  CHECK(field(out, "Set-Cookie").find("session=;") == 0);
  CHECK(field(out, "Set-Cookie").find("Max-Age=0") != std::string::npos);
  CHECK_FALSE(s.user_of("t1"));
  CHECK(s.user_of("t2") == 12u);
  CHECK(s.get("/fragments/userbar", "session=t1").body.find("href=\"/login\"") != std::string::npos);
}

TEST_CASE("demo site: a failed login opens nothing") {
  Site s;
  Reply unknown = s.post("/login", "user=nobody&next=/book/2");
  CHECK(unknown.status == 403);
  CHECK(unknown.body.find("There is no user called &quot;nobody&quot;") != std::string::npos);
  CHECK(unknown.body.find("value=\"/book/2\"") != std::string::npos);
  CHECK(field(unknown, "Set-Cookie") == "<absent>");
  CHECK(s.post("/login", "user=").status == 403);
  CHECK(s.post("/login", "user=21").status == 403);  // kSmall has 20 users
  CHECK(s.post("/login", "user=%zz").status == 400);
  CHECK(s.send("POST", "/login", "", "{\"user\":\"1\"}", "application/json")->status == 415);
  CHECK(s.post("/login", "user=1&pad=" + std::string(kMaxFormBytes, 'x')).status == 413);
  CHECK(s.tokens == 0);
  // A login never sends anyone off the site.
  CHECK(field(s.post("/login", "user=1&next=//evil.example/"), "Location") == "/");
  CHECK(field(s.post("/login", "user=1&next=https://evil.example/"), "Location") == "/");
}

TEST_CASE("demo site: posting a review needs a session, stores it, and asks for a purge of book-<id>") {
  Site s;
  Reply anonymous = s.post("/book/3/reviews", "text=hello");
  CHECK(anonymous.status == 303);
  CHECK(field(anonymous, "Location") == "/login?next=/book/3");
  CHECK(anonymous.purge_tag.empty());
  CHECK(s.review_count() == 0);

  const std::string cookie = s.login("5");
  Reply posted = s.post("/book/3/reviews", "text=Loved+it+%3Cb%3E&rating=4", cookie);
  CHECK(posted.status == 303);
  CHECK(field(posted, "Location") == "/book/3");
  CHECK(field(posted, "Cache-Control") == "no-store");
  CHECK(posted.purge_tag == "book-3");
  auto reviews = s.reviews_of(3);
  REQUIRE(reviews.size() == 1);
  CHECK(reviews[0].text == "Loved it <b>");
  CHECK(reviews[0].rating == 4);
  CHECK(reviews[0].user == 5);
  CHECK(reviews[0].time == 1700000000);
  CHECK(reviews[0].id == 1);  // the store's own number; the page shows kSmall.reviews + 1

  Reply fragment = s.get("/fragments/reviews/3");
  CHECK(fragment.body.find("Loved it &lt;b&gt;") != std::string::npos);
  CHECK(fragment.body.find(std::string(s.site.data().user_name(5))) != std::string::npos);
  CHECK(s.get("/fragments/reviews/4").body.find("Loved it") == std::string::npos);

  // Bad forms store nothing and purge nothing.
  for (std::string_view bad : {"text=", "text=+%0D%0A+", "rating=3", "text=x&rating=6", "text=x&rating=0", "text=%"}) {
    Reply r = s.post("/book/3/reviews", bad, cookie);
    CHECK(r.status == 400);
    CHECK(r.purge_tag.empty());
  }
  CHECK(s.post("/book/3/reviews", "text=" + std::string(kMaxReviewBytes + 1, 'x'), cookie).status == 400);
  CHECK(s.post("/book/301/reviews", "text=x", cookie).status == 404);
  CHECK(s.review_count() == 1);
}

TEST_CASE("review form parsing") {
  std::string error;
  auto form = parse_review_form("text=%20%20line+one%0D%0Aline%09two%01%20&rating=", error);
  REQUIRE(form);
  CHECK(form->text == "line one\nline\ttwo");
  CHECK(form->rating == 0);
  form = parse_review_form("rating=5&text=ok&text=ignored", error);
  REQUIRE(form);
  CHECK(form->text == "ok");
  CHECK(form->rating == 5);
  CHECK_FALSE(parse_review_form("text=ok&rating=five", error));
  CHECK(error == "A rating is a number from 1 to 5.");
  CHECK_FALSE(parse_review_form("", error));
  CHECK(error == "Write something first.");
  CHECK(parse_review_form("text=" + std::string(kMaxReviewBytes, 'x'), error));
  CHECK_FALSE(parse_review_form("text=caf%E9", error));  // Latin-1, not UTF-8
  CHECK(error == "A review is text in UTF-8.");
  CHECK(parse_review_form("text=caf%C3%A9", error)->text == "caf\xC3\xA9");
}

TEST_CASE("cookies and redirect targets") {
  CHECK(cookie_value(cookies({"session=abc"}), "session") == "abc");
  CHECK(cookie_value(cookies({"a=1; session=abc ; b=2"}), "session") == "abc");
  CHECK(cookie_value(cookies({"a=1", "session=second"}), "session") == "second");
  CHECK(cookie_value(cookies({"session=first; session=again"}), "session") == "first");
  CHECK_FALSE(cookie_value(cookies({"xsession=1; sessionx=2"}), "session"));
  CHECK_FALSE(cookie_value(cookies({}), "session"));
  CHECK(cookie_value(cookies({"session="}), "session") == "");

  CHECK(safe_local_path("/book/1?x=2") == "/book/1?x=2");
  CHECK(safe_local_path("/") == "/");
  CHECK(safe_local_path("") == "/");
  CHECK(safe_local_path("//evil.example") == "/");
  CHECK(safe_local_path("/\\evil.example") == "/");
  CHECK(safe_local_path("http://evil.example/") == "/");
  CHECK(safe_local_path("/a\r\nSet-Cookie: x") == "/");
}

TEST_CASE("the demo through route(): reached only when the context lends a site") {
  Site s;
  edge::http::RequestHead head;
  head.method = "GET";
  head.target = "/book/1";
  edge::http::Body body;
  RouteContext without{"n1", {}, nullptr};
  CHECK(route(head, body, without).status == 404);
  RouteContext with{"n1", {}, nullptr};
  with.demo = &s.site;
  CHECK(route(head, body, with).status == 200);
  head.target = "/health";
  CHECK(route(head, body, with).body == "ok\n");
}

TEST_CASE("demo site: a store that stays busy gives 503 with Retry-After, never a 500") {
  char dir_template[] = "/tmp/edge-site-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string path = dir + "/store.db";
  std::string error;
  auto store = open_sqlite_store(path, std::chrono::milliseconds(20), error);
  REQUIRE_MESSAGE(store, error);
  int tokens = 0;
  DemoSite site{3, [&] { return "t" + std::to_string(++tokens); }, std::move(store), kSmall};
  {
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    edge::http::RequestHead head;
    head.method = "GET";
    head.target = "/fragments/view/3";
    edge::http::Body body;
    auto r = site.handle(head, body, 1700000000);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(field(*r, "Retry-After") == "1");
    CHECK(field(*r, "Cache-Control") == "no-store");
    head.method = "POST";
    head.target = "/login";
    body.append("user=1");
    body.set_complete();
    r = site.handle(head, body, 1700000000);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(field(*r, "Set-Cookie") == "<absent>");
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(other);
  }
  edge::http::RequestHead head;
  head.method = "GET";
  head.target = "/fragments/view/3";
  edge::http::Body body;
  CHECK(site.handle(head, body, 1700000000)->status == 200);
  std::filesystem::remove_all(dir);
}

TEST_CASE("demo site: search scans every title and author for the query, in any case") {
  Site s;
  const std::string title = s.site.data().book_title(7);
  const std::string word = title.substr(title.rfind(' ') + 1);  // the title's last word
  Reply page = s.get("/search?q=++" + word + "++");
  CHECK(page.status == 200);
  CHECK(field(page, "Surrogate-Control") == "content=\"ESI/1.0\"");
  std::string lower;
  for (char c : word) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  CHECK(page.body.find("<esi:include src=\"/fragments/search?q=" + lower + "\"/>") != std::string::npos);

  Reply results = s.get("/fragments/search?q=" + word);
  CHECK(results.status == 200);
  CHECK(field(results, "Surrogate-Key") == "search");
  CHECK(field(results, "Cache-Control") == "public, max-age=300");
  CHECK(results.body.find("href=\"/book/7\"") != std::string::npos);
  size_t matches = 0;
  for (uint32_t b = 1; b <= kSmall.books; ++b) {
    std::string t = s.site.data().book_title(b) + "|" + s.site.data().author_name(s.site.data().book_author(b));
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    matches += t.find(lower) != std::string::npos;
  }
  CHECK(results.body.find(std::to_string(matches) + (matches == 1 ? " book " : " books ")) != std::string::npos);
  CHECK(s.get("/fragments/search?q=" + lower).body == results.body);

  Reply none = s.get("/fragments/search?q=%3Cscript%3Ezzzz");
  CHECK(none.body.find("0 books for \u201c&lt;script&gt;zzzz\u201d") != std::string::npos);
  CHECK(s.get("/fragments/search?q=+").status == 404);
  Reply form_only = s.get("/search");
  CHECK(form_only.status == 200);
  CHECK(form_only.body.find("/fragments/search") == std::string::npos);
  CHECK(s.send("POST", "/search", "", "q=x")->status == 405);
  CHECK(s.get("/search?q=%zz").status == 400);
}

TEST_CASE("search queries are kept in one form: trimmed, spaces folded, lower case, bounded") {
  CHECK(search_query("  The\t GARDEN \r\n") == "the garden");
  CHECK(search_query("") == "");
  CHECK(search_query("   ") == "");
  CHECK(search_query(std::string(100, 'x')) == std::string(kMaxSearchQuery, 'x'));
  // Cut at a character's start, never inside one: 63 ASCII bytes and a two-byte character.
  const std::string cut = search_query(std::string(63, 'a') + "\xC3\xA9" + "tail");
  CHECK(cut == std::string(63, 'a'));
}
