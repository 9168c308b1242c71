// Pages assembled from fragments (ESI and SSI) through the real binaries: what reaches the
// backend is counted by edge-app's per-URL counters; templates and fragments come from its
// /cache endpoint (body=, surrogate=), so each test writes its own pages.
#include <doctest/doctest.h>

#include <string>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

namespace {

std::string config_for(const App& app, const std::string& esi = "{}") {
  return R"(
workers: 2
listen: [{address: "127.0.0.1:{{port}}"}]
esi: )" + esi + R"(
backends:
  app: {servers: [)" + yaml_address(app.port) + R"(]}
hosts:
  - match: ["*"]
    backend: app
    routes:
      - {path: /cache/user/, key_cookies: [user]}
      - {path: /cache/auto/, esi: on}
)";
}

// A fragment: /cache/<name> answering `body`, cacheable unless `params` says otherwise.
std::string fragment(const std::string& name, const std::string& body, const std::string& params = "cc=max-age%3D60") {
  return "/cache/" + name + "?" + params + "&body=" + percent_encode(body);
}

// A page whose body is `tmpl`, marked for assembly by Surrogate-Control.
std::string page(const std::string& name, const std::string& tmpl, const std::string& params = "cc=max-age%3D60") {
  return "/cache/" + name + "?" + params + "&surrogate=" + percent_encode("content=\"ESI/1.0\"") +
         "&body=" + percent_encode(tmpl);
}

std::string include(const std::string& src, const std::string& attributes = "") {
  return "<esi:include src=\"" + src + "\"" + attributes + "/>";
}

Response view(uint16_t port, const std::string& target, const std::string& headers = "") {
  return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: site.test\r\n" + headers + "Connection: close\r\n\r\n");
}

}  // namespace

TEST_CASE("esi: a page is assembled from its fragments, each cached on its own terms") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string one = fragment("one", "ONE");
  const std::string two = fragment("two", "TWO", "cc=no-store");
  const std::string p = page("p1", "<h1>" + include(one) + "|" + include(two) + "</h1>");
  Response first = view(edge.port, p);
  CHECK(first.status == 200);
  CHECK(first.body == "<h1>ONE|TWO</h1>");
  CHECK(!first.header("Surrogate-Control"));
  Response second = view(edge.port, p);
  CHECK(second.body == "<h1>ONE|TWO</h1>");
  CHECK(!second.header("ETag"));
  CHECK(app_count(app.port, p) == 1);    // the template, stored once
  CHECK(app_count(app.port, one) == 1);  // a cached fragment
  CHECK(app_count(app.port, two) == 2);  // an uncacheable one, fetched for every page
}

TEST_CASE("esi: with every part cached the page has a Content-Length; esi: on needs no Surrogate-Control") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string f = fragment("cl", "x");
  const std::string p = "/cache/auto/page?cc=max-age%3D60&body=" + percent_encode("[" + include(f) + "]");
  view(edge.port, p);
  Response r = view(edge.port, p);
  CHECK(r.body == "[x]");
  CHECK(r.header("Content-Length").value_or("") == "3");
}

TEST_CASE("esi: an assembled page's trace shows the assemble step") {
  App app("origin");
  Edge edge(config_for(app) + "cache: {x_trace: on}\n");
  const std::string p = page("traced", "<p>" + include(fragment("t1", "T1")) + "</p>");
  const auto steps = [](const Response& r) {
    std::string names;
    const std::string trace(r.header("X-Edge-Trace").value_or(""));
    for (size_t pos = 0; pos < trace.size();) {
      const size_t colon = trace.find(':', pos);
      if (colon == std::string::npos) break;
      names += (names.empty() ? "" : " ") + trace.substr(pos, colon - pos);
      const size_t space = trace.find(' ', colon);
      pos = space == std::string::npos ? trace.size() : space + 1;
    }
    return names;
  };
  Response first = view(edge.port, p);
  CHECK(first.body == "<p>T1</p>");
  CHECK(steps(first) == "recv lookup miss assemble");
  Response second = view(edge.port, p);
  CHECK(second.body == "<p>T1</p>");
  CHECK(steps(second) == "recv lookup hit assemble");
}

TEST_CASE("esi: nested includes and the depth limit") {
  App app("origin");
  Edge edge(config_for(app, "{max_depth: 3}"));
  // Three levels of includes are allowed: a -> b -> c -> d; e would be the fourth.
  const std::string e = page("e", "E");
  const std::string d = page("d", "D" + include(e));
  const std::string c = page("c", "C" + include(d));
  const std::string b = page("b", "B" + include(c));
  const std::string a = page("a", "A" + include(b));
  Response r = view(edge.port, a);
  CHECK(r.status == 200);
  CHECK(r.body == "ABCD");
  CHECK(app_count(app.port, d) == 1);
  CHECK(app_count(app.port, e) == 0);
}

TEST_CASE("esi: a page that includes itself is cut at the loop") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string self = "/cache/auto/self?cc=max-age%3D60&include_self=1";
  Response r = view(edge.port, self);
  CHECK(r.status == 200);
  CHECK(r.body == "self:");
  CHECK(app_count(app.port, self) == 1);
}

TEST_CASE("esi: a failing include falls back to alt, then to nothing with onerror=continue") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string broken = fragment("broken", "never", "status=500");
  const std::string alt = fragment("alt", "ALT");
  const std::string p = page("alts", "<" + include(broken, " alt=\"" + alt + "\"") + "|" +
                                         include(broken, " onerror=\"continue\"") + "|" + include(broken) + ">");
  Response r = view(edge.port, p);
  CHECK(r.status == 200);
  CHECK(r.body == "<ALT||>");
}

TEST_CASE("esi: with on_error: fail a failing include fails the page with 502") {
  App app("origin");
  Edge edge(config_for(app, "{on_error: fail}"));
  const std::string broken = fragment("broken2", "never", "status=503");
  CHECK(view(edge.port, page("failing", "x" + include(broken) + "y")).status == 502);
  // onerror="continue" still continues.
  CHECK(view(edge.port, page("continuing", "x" + include(broken, " onerror=\"continue\"") + "y")).body == "xy");
}

TEST_CASE("esi: a slow include is given up after include_timeout") {
  App app("origin");
  Edge edge(config_for(app, "{include_timeout: 300ms}"));
  const std::string slow = fragment("slow", "SLOW", "cc=max-age%3D60&delay=5000");
  const std::string alt = fragment("fast", "FAST");
  Response r = view(edge.port, page("slowpage", "a" + include(slow, " alt=\"" + alt + "\"") + "b"));
  CHECK(r.status == 200);
  CHECK(r.body == "aFASTb");
}

TEST_CASE("esi: all includes of a level are fetched at once") {
  App app("origin");
  Edge edge(config_for(app));
  std::string tmpl;
  for (int i = 0; i < 10; ++i) tmpl += include(fragment("par" + std::to_string(i), std::to_string(i), "cc=max-age%3D60&delay=300"));
  Response r = view(edge.port, page("parallel", tmpl));
  CHECK(r.body == "0123456789");
  // Ten at the backend together: the page did not fetch them one after another.
  CHECK(app_stat(app.port, "peak_in_progress") >= 10);
}

TEST_CASE("esi: what precedes the first unfinished include is sent at once") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string slow = fragment("late", "LATE", "cc=max-age%3D60&delay=1500");
  const std::string p = page("streamed", "BEFORE" + include(slow) + "AFTER");
  Client client(edge.port);
  client.send("GET " + p + " HTTP/1.1\r\nHost: site.test\r\n\r\n");
  std::string seen;
  while (seen.find("BEFORE") == std::string::npos) {
    std::string more = client.read_some();
    if (more.empty()) break;
    seen += more;
  }
  CHECK(seen.find("BEFORE") != std::string::npos);
  CHECK(seen.find("LATE") == std::string::npos);  // the slow include has not answered yet
  CHECK(seen.find("Transfer-Encoding: chunked") != std::string::npos);
  while (seen.find("AFTER") == std::string::npos) {
    std::string more = client.read_some();
    if (more.empty()) break;
    seen += more;
  }
  // Chunked: the include and the text after it come in order, in chunks of their own.
  CHECK(seen.find("LATE") != std::string::npos);
  CHECK(seen.find("LATE") < seen.find("AFTER"));
}

TEST_CASE("esi: personalised fragments per cookie, one template for everyone") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string bar = "/cache/user/bar?cc=max-age%3D60";  // its body names the request, count included
  const std::string p = page("home", "[" + include(bar) + "]");
  Response ann = view(edge.port, p, "Cookie: user=ann\r\n");
  Response bob = view(edge.port, p, "Cookie: user=bob\r\n");
  CHECK(ann.body != bob.body);
  CHECK(app_count(app.port, p) == 1);
  CHECK(app_count(app.port, bar) == 2);
  CHECK(view(edge.port, p, "Cookie: user=ann\r\n").body == ann.body);
  CHECK(view(edge.port, p, "Cookie: user=bob\r\n").body == bob.body);
  CHECK(app_count(app.port, bar) == 2);
  // A third user costs one backend request: their fragment.
  view(edge.port, p, "Cookie: user=cat\r\n");
  CHECK(app_count(app.port, bar) == 3);
  CHECK(app_count(app.port, p) == 1);
}

TEST_CASE("esi: purging a fragment changes every page that includes it, not the pages") {
  App app("origin");
  TempDir secrets;
  Edge edge(config_for(app) + "admin: {address: \"127.0.0.1:0\", token_file: \"" + secrets.write("token", "t0k") +
            "\"}\n");
  const uint16_t admin_port = edge.admin_port;
  REQUIRE(wait_for_port(admin_port));
  const std::string reviews = "/cache/reviews?cc=max-age%3D60&tag=book-7";  // body carries its count
  const std::string p1 = page("book7", "A" + include(reviews));
  const std::string p2 = page("shelf", "B" + include(reviews));
  const std::string before1 = view(edge.port, p1).body;
  const std::string before2 = view(edge.port, p2).body;
  CHECK(app_count(app.port, reviews) == 1);
  Response purge = exchange(admin_port,
                            "POST /purge?tag=book-7 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k\r\nContent-Length: "
                            "0\r\nConnection: close\r\n\r\n");
  CHECK(purge.status == 200);
  const std::string after1 = view(edge.port, p1).body;
  const std::string after2 = view(edge.port, p2).body;
  CHECK(after1 != before1);
  CHECK(after2 != before2);
  CHECK(app_count(app.port, reviews) == 2);
  CHECK(app_count(app.port, p1) == 1);
  CHECK(app_count(app.port, p2) == 1);
}

TEST_CASE("esi: SSI include virtual, file= refused, and pages that are not stored are assembled too") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string f = fragment("ssi", "VIRTUAL");
  const std::string p = page("ssipage", "<!--# include virtual=\"" + f + "\" -->|<!--# include file=\"/etc/passwd\" -->|",
                             "cc=no-store");
  Response r = view(edge.port, p);
  CHECK(r.body == "VIRTUAL||");
  CHECK(view(edge.port, p).body == "VIRTUAL||");
  CHECK(app_count(app.port, p) == 2);
  CHECK(app_count(app.port, f) == 1);
}

TEST_CASE("esi: a revalidated page keeps its compiled template") {
  App app("origin");
  Edge edge(config_for(app));
  const std::string f = fragment("kept", "K");
  const std::string p = page("reval", "<" + include(f) + ">", "cc=no-cache&etag=%22t%22");
  CHECK(view(edge.port, p).body == "<K>");
  Response again = view(edge.port, p);
  CHECK(again.header("X-Cache").value_or("") == "REVALIDATED");
  CHECK(again.body == "<K>");
  CHECK(app_count(app.port, p) == 2);
}
