#include "cache/ban_regex.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace edge::cache;

namespace {

std::shared_ptr<const BanRegex> compiled(const std::string& text) {
  std::string error;
  auto regex = BanRegex::compile(text, error);
  REQUIRE_MESSAGE(regex, error);
  CHECK(error.empty());
  return regex;
}

std::string refusal(const std::string& text) {
  std::string error;
  CHECK(BanRegex::compile(text, error) == nullptr);
  return error;
}

}  // namespace

TEST_CASE("ban regex: a search anywhere in the path, anchors at its ends") {
  auto jpeg = compiled("\\.jpe?g$");
  CHECK(jpeg->text() == "\\.jpe?g$");
  CHECK(jpeg->matches("/a/b.jpeg"));
  CHECK(jpeg->matches("/a/b.jpg"));
  CHECK_FALSE(jpeg->matches("/a/b.jpg?v=1"));
  CHECK_FALSE(jpeg->matches("/a/b.png"));
  auto rooted = compiled("^/cache/(desk|shelf)/1");
  CHECK(rooted->matches("/cache/desk/12"));
  CHECK_FALSE(rooted->matches("/x/cache/desk/1"));
  CHECK(compiled("v=[0-9]+")->matches("/app.js?v=12"));
  // Byte by byte: a byte over 0x7f is one character, and a pattern need not be UTF-8.
  CHECK(compiled("^/caf.$")->matches("/caf\xe9"));
  CHECK(compiled("\xff")->matches("/a\xff"));
  // '.' stops at a line break, as std::regex's did.
  CHECK_FALSE(compiled("a.b")->matches("/a\nb"));
}

TEST_CASE("ban regex: patterns that make a backtracking engine take exponential time finish") {
  // With std::regex the first took 24 s on the admin port for a path of 30 'a's.
  const std::string many_a(4000, 'a');
  for (std::string pattern : {"(a+)+$", "(a|aa)+$", "(a|a)+$", "(.*a){12}$", "^(a+)+b"}) {
    CAPTURE(pattern);
    auto regex = compiled(pattern);
    CHECK_FALSE(regex->matches(many_a + "!"));
  }
  CHECK(compiled("(a+)+$")->matches(many_a));
  CHECK(compiled("(a|aa)+$")->matches("/" + many_a));
}

TEST_CASE("ban regex: counted repetitions over 1000 are refused, whatever RE2 would make of them") {
  // RE2 reads a count too large for an int as literal text: that would ban only paths holding
  // "x{4294967296}", not what the operator wrote.
  for (std::string pattern : {"x{4294967296}", "x{1001}", "x{2,1001}", "x{1001,}", "^/a(b{99999})c", "x{00000001001}"}) {
    CAPTURE(pattern);
    std::string error = refusal(pattern);
    CHECK(error.starts_with("invalid regex: "));
    CHECK(error.find("repetition") != std::string::npos);
  }
  CHECK(refusal("x{4294967296}") == "invalid regex: repetition count over 1000: {4294967296}");
  // Not repetitions: escaped, inside a class, quoted, or not a count; RE2 takes them literally.
  auto escaped = compiled("x\\{5000}");
  CHECK(escaped->matches("/x{5000}"));
  CHECK_FALSE(escaped->matches("/xxxx"));
  CHECK(compiled("[{5000}]")->matches("/5"));
  CHECK(compiled("[]{5000}]")->matches("/]"));
  CHECK(compiled("[[:alpha:]{5000}]")->matches("/{"));
  CHECK(compiled("\\Qx{5000}\\E")->matches("/x{5000}"));
  CHECK(compiled("x{,5000}")->matches("/x{,5000}"));
  CHECK(compiled("x{a}")->matches("/x{a}"));
  CHECK(compiled("x{1000}")->matches("/" + std::string(1000, 'x')));
  CHECK(compiled("x{2,1000}")->matches("/xx"));
}

TEST_CASE("ban regex: syntax errors and constructs RE2 lacks are refused with RE2's reason") {
  CHECK(refusal("(unclosed") == "invalid regex: missing ): (unclosed");
  CHECK(refusal("(a)\\1").starts_with("invalid regex: invalid escape sequence"));
  CHECK(refusal("(?=a)").starts_with("invalid regex: invalid perl operator"));
  CHECK(refusal("[z-a]").starts_with("invalid regex: "));
  CHECK(refusal("*").starts_with("invalid regex: "));
  // Nested counts multiply: RE2 refuses the product over 1000.
  CHECK(refusal("(x{100}){100}").starts_with("invalid regex: "));
}

TEST_CASE("ban regex: the text is capped, and so is the compiled program") {
  CHECK(refusal(std::string(4097, 'a')) == "regex longer than 4096 bytes");
  CHECK(compiled(std::string(4096, 'a'))->matches("/" + std::string(4096, 'a')));
  // 70 bytes of text, 10,000 instructions: over max_mem.
  std::string big;
  for (int i = 0; i < 10; ++i) big += "a{1000}";
  CHECK(refusal(big) == "invalid regex: pattern too large - compile failed");
  // Nesting as deep as the cap allows compiles without exhausting the stack (std::regex's did).
  CHECK(compiled(std::string(2000, '(') + "a" + std::string(2000, ')'))->matches("/a"));
}

TEST_CASE("ban regex: a match whose worst case is too long counts as a match") {
  // a{1000}b on a long run of 'a' is RE2's worst case (path x program steps): not run, banned.
  auto heavy = compiled("a{1000}b");
  CHECK(heavy->matches("/" + std::string(8000, 'a')));
  // A short path is matched for real.
  CHECK_FALSE(heavy->matches("/" + std::string(100, 'a')));
  CHECK(heavy->matches("/" + std::string(100, 'a') + std::string(1000, 'a') + "b"));
  // An ordinary pattern is matched for real on any path a request line can hold.
  CHECK_FALSE(compiled("\\.png$")->matches("/" + std::string(16000, 'a')));
}
