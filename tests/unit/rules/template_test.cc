#include "rules/template.h"

#include <doctest/doctest.h>

#include <string>

using namespace edge;

namespace {

conf::Template text(std::initializer_list<conf::Template::Part> parts) {
  conf::Template t;
  t.parts = parts;
  return t;
}

conf::Template::Part lit(const char* s) { return {conf::Placeholder::kLiteral, s}; }
conf::Template::Part ph(conf::Placeholder p) { return {p, {}}; }

rules::TemplateValues values() {
  rules::TemplateValues v;
  v.host = "example.com";
  v.target = "/old/a/b?x=1&y=2";
  v.route_prefix = 5;
  v.scheme = "https";
  v.method = "GET";
  v.client_ip = "192.0.2.1";
  v.backend = "app";
  v.cache = "HIT";
  v.status = 304;
  return v;
}

}  // namespace

TEST_CASE("placeholders are filled from the request, and control characters never pass") {
  using P = conf::Placeholder;
  std::string out;
  rules::expand(text({ph(P::kScheme), lit("://"), ph(P::kHost), ph(P::kPath), lit("?"), ph(P::kQuery), lit(" "),
                      ph(P::kRest), lit(" "), ph(P::kMethod), lit(" "), ph(P::kClientIp), lit(" "), ph(P::kBackend),
                      lit(" "), ph(P::kCache), lit(" "), ph(P::kStatus)}),
                values(), out);
  CHECK(out == "https://example.com/old/a/b?x=1&y=2 a/b?x=1&y=2 GET 192.0.2.1 app HIT 304");
  rules::TemplateValues v = values();
  v.target = "/no-query";
  v.route_prefix = 100;  // past the target: {rest} is empty rather than out of bounds
  v.host = "a\r\nX-Evil: 1\x7f";
  out.clear();
  rules::expand(text({ph(P::kQuery), lit("|"), ph(P::kRest), lit("|"), ph(P::kHost)}), v, out);
  CHECK(out == "||aX-Evil: 1");
}

TEST_CASE("a redirect's Location never starts with two slashes or a slash and a backslash") {
  using P = conf::Placeholder;
  conf::Redirect redirect;
  redirect.to = text({ph(P::kPath)});
  rules::TemplateValues v = values();
  for (const auto& [target, location] : {std::pair{"//evil.example/x", "/evil.example/x"},
                                         std::pair{"/\\evil.example", "/evil.example"},
                                         std::pair{"/\\/\\//evil.example", "/evil.example"},
                                         std::pair{"/", "/"}, std::pair{"/a//b", "/a//b"}}) {
    CAPTURE(target);
    v.target = target;
    CHECK(rules::redirect_location(redirect, v) == location);
  }
  redirect.to = text({lit("https://example.com"), ph(P::kTarget)});
  v.target = "//evil.example";
  CHECK(rules::redirect_location(redirect, v) == "https://example.com//evil.example");  // a path there
}

TEST_CASE("header edits: dropped names go, whatever their case; added lines come last") {
  conf::HeaderEdits edits;
  edits.dropped = {"Server", "x-powered-by"};
  conf::HeaderRule rule;
  rule.name = "X-Cache-Status";
  rule.value = text({ph(conf::Placeholder::kCache), lit("/"), ph(conf::Placeholder::kStatus)});
  edits.added.push_back(rule);
  std::string head =
      "HTTP/1.1 200 OK\r\nserver: nginx\r\nContent-Type: text/html\r\nX-Powered-By: PHP\r\nX-Servers: 2\r\n"
      "SERVER: again\r\nContent-Length: 3\r\n\r\n";
  rules::edit_response_head(edits, values(), head);
  CHECK(head ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Servers: 2\r\nContent-Length: 3\r\nX-Cache-Status: HIT/304\r\n\r\n");
  std::string only_drops = "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
  edits.added.clear();
  rules::edit_response_head(edits, values(), only_drops);
  CHECK(only_drops == "HTTP/1.1 204 No Content\r\n\r\n");

  http::Headers fields;
  fields.add("Cookie", "a=1");
  fields.add("server", "x");
  fields.add("Accept", "*/*");
  edits.dropped = {"SERVER", "Cookie"};
  rule.name = "X-Client";
  rule.value = text({ph(conf::Placeholder::kClientIp)});
  edits.added = {rule};
  rules::edit_request_fields(edits, values(), fields);
  REQUIRE(fields.size() == 2);
  CHECK(fields.name(0) == "Accept");
  CHECK(fields.get("X-Client") == std::string_view("192.0.2.1"));
}
