#include "http/uri.h"

#include <doctest/doctest.h>

#include <string>

using namespace edge::http;

namespace {
std::string host_of(std::string_view authority) {
  std::string out;
  return canonical_host(authority, out) ? out : std::string("<invalid>");
}
std::string target_of(std::string_view path_query) {
  std::string out;
  return canonical_target(path_query, out) ? out : std::string("<invalid>");
}
}  // namespace

TEST_CASE("canonical_host: lower case, no port, no trailing dot") {
  CHECK(host_of("Example.COM") == "example.com");
  CHECK(host_of("example.com:8080") == "example.com");
  CHECK(host_of("example.com.") == "example.com");
  CHECK(host_of("example.com.:80") == "example.com");
  CHECK(host_of("127.0.0.1:8080") == "127.0.0.1");
  CHECK(host_of("[::1]:8080") == "[::1]");
  CHECK(host_of("[2001:DB8::1]") == "[2001:db8::1]");
  CHECK(host_of("a_b-c~d") == "a_b-c~d");
  CHECK(host_of("h:65535") == "h");
  CHECK(host_of("h:00080") == "h");
}

TEST_CASE("canonical_host: what an attacker puts in Host is refused, not guessed at") {
  for (std::string_view bad : {"", ".", ":80", "evil@victim.test", "victim.test:@evil.example", "victim.test:1:2",
                               "victim.test:", "victim.test:65536", "victim.test:123456", "victim.test:8o",
                               "victim.test :80", " victim.test", "victim.test ", "vic tim.test", "victim.test\t",
                               "victim.test,evil.example", "victim.test;evil", "victim.test/x", "victim.test?x",
                               "victim.test#x", "victim%2etest", "victim.test\\evil", "a..b", ".victim.test",
                               "victim.test..", "[::1", "[::1]x", "[::1]:", "[not-ip]", "[]", "[v1.x]",
                               "[::1]:99999", "vict\xc3\xafm.test", "victim.test\r\nX: y", "*", "*.victim.test"}) {
    CAPTURE(bad);
    CHECK(host_of(bad) == "<invalid>");
  }
  CHECK(host_of(std::string(255, 'a')) == std::string(255, 'a'));
  CHECK(host_of(std::string(256, 'a')) == "<invalid>");
  CHECK(host_of(std::string_view("victim.test\0evil", 16)) == "<invalid>");
}

TEST_CASE("split_request_target: the forms a reverse proxy takes") {
  auto origin = split_request_target("GET", "/a?b", false);
  REQUIRE(origin);
  CHECK(origin->form == TargetForm::kOrigin);
  CHECK(origin->path_query == "/a?b");

  auto absolute = split_request_target("GET", "HTTP://Victim.test:80/a?b", false);
  REQUIRE(absolute);
  CHECK(absolute->form == TargetForm::kAbsolute);
  CHECK(absolute->authority == "Victim.test:80");
  CHECK(absolute->path_query == "/a?b");
  auto bare = split_request_target("GET", "http://victim.test", false);
  REQUIRE(bare);
  CHECK(bare->path_query == "");
  auto query_only = split_request_target("GET", "http://victim.test?x=1", false);
  REQUIRE(query_only);
  CHECK(query_only->authority == "victim.test");
  CHECK(query_only->path_query == "?x=1");

  auto star = split_request_target("OPTIONS", "*", false);
  REQUIRE(star);
  CHECK(star->form == TargetForm::kAsterisk);
  CHECK(split_request_target("GET", "https://victim.test/", true));
}

TEST_CASE("split_request_target: refused forms") {
  for (std::string_view method : {"GET", "HEAD", "POST", "DELETE"}) CHECK_FALSE(split_request_target(method, "*", false));
  for (std::string_view bad : {"", "a/b", "victim.test:80", "victim.test/x", "https://victim.test/",
                               "ftp://victim.test/", "file:///etc/passwd", "http:/victim.test/", "http//victim.test/",
                               "http://evil@victim.test/", "http://user:pass@victim.test/", "http://victim.test@evil/",
                               "/a#frag", "/a?b#c", "http://victim.test/#x", "*x"}) {
    CAPTURE(bad);
    CHECK_FALSE(split_request_target("GET", bad, false));
  }
}

TEST_CASE("canonical_target: dot segments and percent-encoding, as the cache key reads them") {
  CHECK(target_of("/") == "/");
  CHECK(target_of("") == "/");
  CHECK(target_of("?q") == "/?q");
  CHECK(target_of("/a/b?c=%2e%2e") == "/a/b?c=%2e%2e");  // the query is kept as received
  CHECK(target_of("/static/../admin") == "/admin");
  CHECK(target_of("/static/%2e%2e/admin") == "/admin");
  CHECK(target_of("/static/%2E%2E/admin") == "/admin");
  CHECK(target_of("/static/.%2e/admin") == "/admin");
  CHECK(target_of("/./a/./b/.") == "/a/b/");
  CHECK(target_of("/a/b/..") == "/a/");
  CHECK(target_of("/../../x") == "/x");
  CHECK(target_of("/%7euser/%41") == "/~user/A");
  CHECK(target_of("/a%2fb") == "/a%2Fb");  // an encoded slash is not a separator
  CHECK(target_of("/a%2F..%2Fb") == "/a%2F..%2Fb");
  CHECK(target_of("//double") == "//double");
  CHECK(target_of("*") == "*");
}

TEST_CASE("canonical_target: refused targets") {
  for (std::string_view bad : {"/a%", "/a%2", "/a%zz", "/a%%341", "/a?b=%", "/a?b=%g1", "/a b", "/a\tb", "/a\\..\\b",
                               "/a\x7f", "/a\xc3\xa9", "/a#b", "/a?#", "a/b", "/a\r\nb"}) {
    CAPTURE(bad);
    CHECK(target_of(bad) == "<invalid>");
  }
}

TEST_CASE("canonical_target is idempotent") {
  for (std::string_view t : {"/a/../b/%7e/%2f/./c?x=1", "/%2e%2e/%2E/x", "/a/b/../../../c/", "/%41%42%2B"}) {
    const std::string once = target_of(t);
    CAPTURE(t);
    CHECK(target_of(once) == once);
  }
}
