// The admin port's browser side without sockets: the session cookie among others, the sign-in
// form, the cross-origin decision, the session table's expiry and bound, the events ring, and
// the pages' escaping and headers.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "proxy/admin_events.h"
#include "proxy/admin_render.h"
#include "proxy/admin_session.h"
#include "proxy/status_page.h"

using namespace edge;
namespace admin = edge::proxy::admin;

namespace {
http::Headers headers(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  http::Headers out;
  for (const auto& [name, value] : fields) out.add(name, value);
  return out;
}
}  // namespace

TEST_CASE("routes: the pages, the sign-in and out, the events") {
  CHECK(admin::parse_route("/").kind == admin::Route::kPage);
  CHECK(admin::parse_route("/login").kind == admin::Route::kLogin);
  CHECK(admin::parse_route("/logout").kind == admin::Route::kLogout);
  CHECK(admin::parse_route("/events").kind == admin::Route::kEvents);
  CHECK(admin::parse_route("/login/").kind == admin::Route::kNotFound);
  CHECK(admin::method_allowed(admin::Route::kPage, "GET"));
  CHECK(admin::method_allowed(admin::Route::kPage, "HEAD"));
  CHECK_FALSE(admin::method_allowed(admin::Route::kPage, "POST"));
  CHECK(admin::method_allowed(admin::Route::kLogin, "POST"));
  CHECK_FALSE(admin::method_allowed(admin::Route::kLogin, "GET"));
  CHECK(admin::allowed_methods(admin::Route::kLogout) == "POST");
  CHECK(admin::allowed_methods(admin::Route::kEvents) == "GET, HEAD");
}

TEST_CASE("the session cookie among others, in one Cookie field or several") {
  const auto name = admin::kSessionCookie;
  CHECK(admin::cookie_value(headers({{"Cookie", "edge_admin_session=abc"}}), name) == "abc");
  CHECK(admin::cookie_value(headers({{"Cookie", "a=1; edge_admin_session=abc; b=2"}}), name) == "abc");
  CHECK(admin::cookie_value(headers({{"cookie", "a=1;edge_admin_session=\"abc\""}}), name) == "abc");
  CHECK(admin::cookie_value(headers({{"Cookie", "a=1"}, {"Cookie", "edge_admin_session=abc"}}), name) == "abc");
  // A prefix or suffix of the name is another cookie.
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "xedge_admin_session=abc; edge_admin_session_x=d"}}), name));
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "a=1"}}), name));
  CHECK_FALSE(admin::cookie_value(headers({}), name));
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "edge_admin_session="}}), name));
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "edge_admin_session"}}), name));
  // Twice, even with the same value: which one was meant cannot be told.
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "edge_admin_session=a; edge_admin_session=b"}}), name));
  CHECK_FALSE(admin::cookie_value(headers({{"Cookie", "edge_admin_session=a"}, {"Cookie", "edge_admin_session=a"}}), name));
  // Only Cookie fields count.
  CHECK_FALSE(admin::cookie_value(headers({{"Set-Cookie", "edge_admin_session=abc"}}), name));
  // A long field with many pairs.
  std::string many;
  for (int i = 0; i < 500; ++i) many += "c" + std::to_string(i) + "=v; ";
  CHECK(admin::cookie_value(headers({{"Cookie", many + "edge_admin_session=z"}}), name) == "z");
}

TEST_CASE("the sign-in form's fields") {
  CHECK(admin::form_value("token=abc", "token") == "abc");
  CHECK(admin::form_value("x=1&token=a%2Bb+c&y=2", "token") == "a+b c");
  CHECK(admin::form_value("token=", "token") == "");
  CHECK(admin::form_value("token", "token") == "");
  CHECK(admin::form_value("to%6Ben=abc", "token") == "abc");  // the name is decoded too
  CHECK_FALSE(admin::form_value("", "token"));
  CHECK_FALSE(admin::form_value("tokens=abc", "token"));
  CHECK_FALSE(admin::form_value("token=a&token=a", "token"));  // repeated
  CHECK_FALSE(admin::form_value("token=%zz", "token"));        // bad escape
  CHECK_FALSE(admin::form_value("token=%4", "token"));
  CHECK_FALSE(admin::form_value("token=a%00b", "token"));      // a NUL
  CHECK_FALSE(admin::form_value("%zz=1&token=a", "token"));    // a bad field anywhere
  CHECK(admin::form_value("&&token=abc&&", "token") == "abc");
}

TEST_CASE("requests for a signed-in browser must come from the port's own page") {
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}})) == nullptr);
  CHECK(admin::cross_origin_refusal(
            headers({{"Host", "127.0.0.1:9090"}, {"Origin", "http://127.0.0.1:9090"}, {"Sec-Fetch-Site", "same-origin"}})) ==
        nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Sec-Fetch-Site", "none"}})) == nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Origin", "http://evil.test"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Origin", "http://127.0.0.1:9091"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Origin", "https://127.0.0.1:9090"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Origin", "null"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Origin", "null"}, {"Sec-Fetch-Site", "none"}})) !=
        nullptr);
  CHECK(admin::cross_origin_refusal(
            headers({{"Host", "127.0.0.1:9090"}, {"Origin", "null"}, {"Sec-Fetch-Site", "cross-site"}})) != nullptr);
  // What a page's own POSTs carry under a no-referrer policy.
  CHECK(admin::cross_origin_refusal(
            headers({{"Host", "127.0.0.1:9090"}, {"Origin", "null"}, {"Sec-Fetch-Site", "same-origin"}})) == nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Origin", "http://127.0.0.1:9090"}})) != nullptr);  // no Host
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Sec-Fetch-Site", "cross-site"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"}, {"Sec-Fetch-Site", "same-site"}})) != nullptr);
  CHECK(admin::cross_origin_refusal(headers({{"Host", "127.0.0.1:9090"},
                                             {"Origin", "http://127.0.0.1:9090"},
                                             {"Origin", "http://evil.test"}})) != nullptr);
}

TEST_CASE("random ids and constant-time comparison") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string id = admin::random_hex(32);
    CHECK(id.size() == 64);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  CHECK(seen.size() == 100);
  CHECK(admin::secret_equals("abc", "abc"));
  CHECK_FALSE(admin::secret_equals("abc", "abd"));
  CHECK_FALSE(admin::secret_equals("abc", "abcd"));
  CHECK(admin::secret_equals("", ""));
}

TEST_CASE("sessions expire, end, and are bounded in number (the oldest goes)") {
  admin::Sessions sessions(1000, 3);
  std::optional<admin::Sessions::Opened> a = sessions.open(0);
  REQUIRE(a);
  CHECK(a->id.size() == 64);
  CHECK(a->csrf.size() == 32);
  CHECK(a->expires_ms == 1000);
  CHECK(sessions.csrf_of(a->id, 999) == a->csrf);
  CHECK_FALSE(sessions.csrf_of(a->id, 1000));  // expired, and forgotten
  CHECK(sessions.size() == 0);
  CHECK_FALSE(sessions.csrf_of("", 0));
  CHECK_FALSE(sessions.csrf_of(a->csrf, 0));

  auto b = sessions.open(10), c = sessions.open(20), d = sessions.open(30);
  CHECK(sessions.size() == 3);
  auto e = sessions.open(40);  // b, the oldest, makes room
  CHECK(sessions.size() == 3);
  CHECK_FALSE(sessions.csrf_of(b->id, 50));
  CHECK(sessions.csrf_of(c->id, 50) == c->csrf);
  CHECK(sessions.csrf_of(e->id, 50) == e->csrf);
  CHECK(sessions.close(d->id));
  CHECK_FALSE(sessions.close(d->id));
  CHECK_FALSE(sessions.csrf_of(d->id, 50));
  // Expired ones go before any live one is pushed out.
  auto f = sessions.open(1015);  // c (expires 1020) and e live on
  CHECK(sessions.csrf_of(c->id, 1016) == c->csrf);
  auto g = sessions.open(1030);  // c expired: it goes, e stays
  CHECK(sessions.csrf_of(e->id, 1031) == e->csrf);
  CHECK(sessions.csrf_of(f->id, 1031) == f->csrf);
  CHECK(sessions.csrf_of(g->id, 1031) == g->csrf);
}

TEST_CASE("the events ring keeps the newest, renders them newest first") {
  admin::EventRing ring;
  CHECK(ring.render_json() == "{\"events\":[]}\n");
  ring.add(1, "purge", "hard purge of URL example.com/a: 1 object");
  ring.add(2, "reload", "SIGHUP: refused \"x\"\n");
  CHECK(ring.render_json() ==
        "{\"events\":[{\"at\":2,\"kind\":\"reload\",\"detail\":\"SIGHUP: refused \\\"x\\\"\\n\"},"
        "{\"at\":1,\"kind\":\"purge\",\"detail\":\"hard purge of URL example.com/a: 1 object\"}]}\n");
  for (int i = 0; i < 200; ++i) ring.add(100 + i, "ban", std::string(5000, 'x'));
  CHECK(ring.size() == admin::EventRing::kCapacity);
  const std::string json = ring.render_json();
  CHECK(json.starts_with("{\"events\":[{\"at\":299,"));
  CHECK(json.find("\"at\":249,") == std::string::npos);
  CHECK(json.find("\"at\":250,") != std::string::npos);
  CHECK(json.size() < admin::EventRing::kCapacity * (admin::EventRing::kMaxDetail + 64));
}

TEST_CASE("the pages: escaped values, no outside assets, strict headers") {
  CHECK(admin::html_escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const std::string sign_in = admin::render_sign_in_page("<script>alert(1)</script>", "n0nce");
  CHECK(sign_in.find("<script>alert(1)") == std::string::npos);
  CHECK(sign_in.find("&lt;script&gt;alert(1)") != std::string::npos);
  CHECK(sign_in.find("action=\"/login\"") != std::string::npos);
  CHECK(sign_in.find("name=\"token\"") != std::string::npos);
  CHECK(sign_in.find("<style nonce=\"n0nce\">") != std::string::npos);
  CHECK(sign_in.find("{{") == std::string::npos);

  const std::string status = admin::render_status_page("c5rf", "n0nce");
  CHECK(status.find("<meta name=\"edge-csrf\" content=\"c5rf\">") != std::string::npos);
  CHECK(status.find("<script nonce=\"n0nce\">") != std::string::npos);
  CHECK(status.find("{{") == std::string::npos);
  // Self-contained: nothing loaded from elsewhere, and no data inserted as markup.
  CHECK(status.find("http://") == std::string::npos);
  CHECK(status.find("https://") == status.find("https://example.com/path"));
  CHECK(status.find("src=") == std::string::npos);
  CHECK(status.find("innerHTML") == std::string::npos);
  CHECK(status.find("X-Edge-CSRF") != std::string::npos);
  for (const char* part : {"/backends", "/stats", "/top?window=", "/events", "response_ms", "workers", "memcached",
                           "data-server", "last-updated", "error-banner", "purge-form"})
    CHECK_MESSAGE(status.find(part) != std::string::npos, part);

  const std::string headers = admin::page_headers("n0nce");
  CHECK(headers.find("Content-Security-Policy: default-src 'none'; script-src 'nonce-n0nce'; style-src 'nonce-n0nce'; "
                     "connect-src 'self';") == 0);
  CHECK(headers.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(headers.find("form-action 'self'") != std::string::npos);
  CHECK(headers.find("\r\nX-Frame-Options: DENY\r\n") != std::string::npos);
  CHECK(headers.find("\r\nReferrer-Policy: same-origin\r\n") != std::string::npos);
  CHECK(headers.find("\r\nX-Content-Type-Options: nosniff\r\n") != std::string::npos);
}
