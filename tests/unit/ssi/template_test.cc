#include "ssi/template.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace edge::ssi;

namespace {

// The page a template makes, with each include written as {src} (or {src|alt} and a trailing
// '+' for onerror="continue" on ESI), so one string shows both text and includes.
std::string render(std::string_view body, const Template& t, bool details = false) {
  std::string out;
  for (const Segment& s : t.segments) {
    if (s.kind == Segment::kText) {
      out.append(body.substr(s.offset, s.length));
      continue;
    }
    const Include& include = t.includes[s.include];
    out += '{';
    out += include.src;
    if (details && !include.alt.empty()) out += '|' + include.alt;
    if (details && include.continue_on_error) out += '+';
    out += '}';
  }
  return out;
}

std::string esi(std::string_view body) { return render(body, compile(body, Syntax::kEsi)); }
std::string ssi(std::string_view body) { return render(body, compile(body, Syntax::kSsi)); }
std::string both(std::string_view body) { return render(body, compile(body, Syntax::kBoth)); }

Template fed_at(std::string_view body, Syntax syntax, const std::vector<size_t>& cuts) {
  Parser parser(syntax);
  size_t from = 0;
  for (size_t cut : cuts) {
    parser.feed(body.substr(from, cut - from));
    from = cut;
  }
  parser.feed(body.substr(from));
  return parser.finish();
}

Template byte_by_byte(std::string_view body, Syntax syntax) {
  Parser parser(syntax);
  for (char c : body) parser.feed(std::string_view(&c, 1));
  return parser.finish();
}

// The segments' own promises (template.h): ordered, disjoint, non-empty, within the body,
// touching text merged, includes numbered in order.
void check_shape(const Template& t) {
  uint64_t end = 0;
  uint32_t next_include = 0;
  const Segment* previous = nullptr;
  for (const Segment& s : t.segments) {
    CHECK(s.length > 0);
    CHECK(s.offset >= end);
    CHECK(s.offset + s.length <= t.source_size);
    if (s.kind == Segment::kInclude) CHECK(s.include == next_include++);
    if (previous && previous->kind == Segment::kText && s.kind == Segment::kText)
      CHECK(previous->offset + previous->length < s.offset);
    end = s.offset + s.length;
    previous = &s;
  }
  CHECK(next_include == t.includes.size());
}

// A page with every construct, for the chunking tests.
constexpr std::string_view kPage =
    "<html><!-- header --><esi:include src=\"/h?a=1&amp;b=2\" alt='/alt' onerror=\"continue\"/>"
    "<p>a &lt; b</p><esi:remove><a href=\"/nav\">nav</a></esi:remove>"
    "<!--esi <esi:include src=\"/inner\"/> <!-- plain --> -->"
    "<esi:comment text=\"gone\"/><esi:vars>$(HTTP_HOST)</esi:vars>"
    "<!--# include virtual=\"/ssi/frag\" --><!--#include file=\"/etc/passwd\"--><!--# echo var=\"x\" -->"
    "<![CDATA[<esi:include src=\"/no\"/>]]><esi:include src=\"/open\"></esi:include>"
    "<esi:include src=\"/cut\" <esi:remove>tail</esi:remove>-->end</html>";

}  // namespace

TEST_CASE("ssi: a body without constructs is one text segment, an empty body none") {
  const std::string_view body = "<html><p class=\"x\">hello &amp; <b>bye</b> -- > </p></html>";
  for (Syntax syntax : {Syntax::kEsi, Syntax::kSsi, Syntax::kBoth}) {
    Template t = compile(body, syntax);
    REQUIRE(t.segments.size() == 1);
    CHECK(t.segments[0].offset == 0);
    CHECK(t.segments[0].length == body.size());
    CHECK(t.source_size == body.size());
    CHECK_FALSE(t.has_includes());
    CHECK(t.is_verbatim());

    Template empty = compile("", syntax);
    CHECK(empty.segments.empty());
    CHECK(empty.source_size == 0);
    CHECK(empty.is_verbatim());
  }
}

TEST_CASE("ssi: esi:include, in all the ways it is written") {
  Template t = compile("a<esi:include src=\"/x\"/>b", Syntax::kEsi);
  REQUIRE(t.segments.size() == 3);
  CHECK(t.segments[1].kind == Segment::kInclude);
  CHECK(t.segments[1].offset == 1);
  CHECK(t.segments[1].length == 23);
  REQUIRE(t.includes.size() == 1);
  CHECK(t.includes[0] == Include{"/x", "", false});
  CHECK(t.has_includes());
  CHECK_FALSE(t.is_verbatim());

  auto one = [](std::string_view body) {
    Template t = compile(body, Syntax::kEsi);
    REQUIRE(t.includes.size() == 1);
    return t.includes[0];
  };
  CHECK(one("<esi:include src=\"/x\" alt=\"/y\" onerror=\"continue\"/>") == Include{"/x", "/y", true});
  CHECK(one("<esi:include onerror='continue' alt='/y' src='/x'/>") == Include{"/x", "/y", true});
  CHECK(one("<esi:include\n\tsrc = \"/x\"\r\n  alt=\t'/y'   />") == Include{"/x", "/y", false});
  CHECK(one("<esi:include src=\"http://other.example/x?a=1\"/>").src == "http://other.example/x?a=1");
  CHECK(one("<esi:include src=\"frag.html\"/>").src == "frag.html");
  CHECK(one("<esi:include src=\"/x\" onerror=\"abort\"/>").continue_on_error == false);
  CHECK(one("<esi:include src=\"/x\" dca=\"none\" data-x='1'/>").src == "/x");  // unknown attributes ignored
  CHECK(one("<esi:include src=\"a>b\"/>").src == "a>b");  // '>' is allowed inside a quoted value
  CHECK(one("<esi:include src='say \"hi\"'/>").src == "say \"hi\"");

  SUBCASE("the open form, and its end tag dropped") {
    CHECK(esi("a<esi:include src=\"/x\">b</esi:include>c") == "a{/x}bc");
    CHECK(esi("a<esi:include src=\"/x\"></esi:include >c") == "a{/x}c");
  }
  SUBCASE("without src, or with an empty one: dropped, counting as nothing") {
    Template none = compile("a<esi:include alt=\"/y\"/>b<esi:include src=\"\"/>c", Syntax::kEsi);
    CHECK(render("a<esi:include alt=\"/y\"/>b<esi:include src=\"\"/>c", none) == "abc");
    CHECK(none.includes.empty());
    CHECK(none.refused == 0);
  }
  SUBCASE("attribute names are lower case, as ESI 1.0 writes them") {
    CHECK(esi("a<esi:include SRC=\"/x\"/>b") == "ab");  // SRC is an unknown attribute: no src
    CHECK(esi("a<ESI:INCLUDE src=\"/x\"/>b") == "a<ESI:INCLUDE src=\"/x\"/>b");
  }
  SUBCASE("includes are numbered in order") {
    const std::string_view body = "<esi:include src=\"/1\"/>-<esi:include src=\"/2\"/><esi:include src=\"/3\"/>";
    Template many = compile(body, Syntax::kEsi);
    REQUIRE(many.includes.size() == 3);
    CHECK(many.includes[2].src == "/3");
    CHECK(render(body, many) == "{/1}-{/2}{/3}");
    check_shape(many);
  }
}

TEST_CASE("ssi: esi:remove drops its content, and nothing inside it is looked at") {
  CHECK(esi("a<esi:remove>b<esi:include src=\"/x\"/>c</esi:remove>d") == "ad");
  CHECK(esi("a<esi:remove><!-- </esi:remove> -->b") == "a -->b");  // comments do not hide its end
  CHECK(esi("a<esi:remove><!--esi c -->b</esi:remove>d") == "ad");
  CHECK(esi("a<esi:remove>x<esi:remove>y</esi:remove>z</esi:remove>d") == "azd");  // no nesting; stray end tag dropped
  CHECK(esi("a<esi:remove></esi:remove   >b") == "ab");
  CHECK(esi("a<esi:remove/>b") == "ab");
  CHECK(esi("a</esi:remove>b") == "ab");  // a stray end tag is dropped
  CHECK(esi("a<esi:remove>b</esi:removed>c</esi:remove>d") == "ad");
}

TEST_CASE("ssi: esi:comment is dropped") {
  CHECK(esi("a<esi:comment text=\"for developers\"/>b") == "ab");
  CHECK(esi("a<esi:comment text='x'></esi:comment>b") == "ab");
  Template t = compile("a<esi:comment text=\"x\"/>b", Syntax::kEsi);
  REQUIRE(t.segments.size() == 2);  // two ranges: the comment between them is gone
  CHECK_FALSE(t.is_verbatim());
}

TEST_CASE("ssi: <!--esi --> loses its wrapper, and its content is template text") {
  CHECK(esi("a<!--esi b<esi:include src=\"/x\"/>c-->d") == "a b{/x}cd");
  CHECK(esi("a<!--esi-->b") == "ab");
  CHECK(esi("a<!--esi\n<p>shown</p>\n-->b") == "a\n<p>shown</p>\nb");
  CHECK(esi("<!--esi <!-- note --> x -->") == " <!-- note --> x ");  // a plain comment inside ends first
  CHECK(esi("<!--esi a<esi:remove>b-->c</esi:remove>d-->e") == " ade");
  CHECK(esi("a-->b") == "a-->b");  // outside a wrapper, "-->" is text
  CHECK(esi("<!--esi <!--esi x --> y -->") == " <!--esi x --> y ");
}

TEST_CASE("ssi: comments and CDATA are text, and hide what looks like markup in them") {
  CHECK(esi("a<!-- <esi:include src=\"/x\"/> -->b<esi:include src=\"/y\"/>") ==
        "a<!-- <esi:include src=\"/x\"/> -->b{/y}");
  CHECK(esi("<![CDATA[<esi:include src=\"/x\"/>]]><esi:include src=\"/y\"/>") ==
        "<![CDATA[<esi:include src=\"/x\"/>]]>{/y}");
  CHECK(esi("<!----><esi:include src=\"/y\"/>") == "<!---->{/y}");
  Template t = compile("a<!-- x -->b", Syntax::kEsi);
  CHECK(t.segments.size() == 1);
  CHECK(t.is_verbatim());
}

TEST_CASE("ssi: ESI elements it does not know pass through as text") {
  CHECK(esi("<esi:try><esi:attempt><esi:include src=\"/x\"/></esi:attempt></esi:try>") ==
        "<esi:try><esi:attempt>{/x}</esi:attempt></esi:try>");
  CHECK(esi("<esi:vars>$(HTTP_HOST)</esi:vars>") == "<esi:vars>$(HTTP_HOST)</esi:vars>");
  CHECK(esi("<esi:includes src=\"/x\"/>") == "<esi:includes src=\"/x\"/>");
  CHECK(esi("<esi:include1 src=\"/x\"/>") == "<esi:include1 src=\"/x\"/>");
  CHECK(esi("<esi:/>") == "<esi:/>");
}

TEST_CASE("ssi: SSI include virtual, file refused, other directives are text") {
  CHECK(ssi("a<!--# include virtual=\"/x\" -->b") == "a{/x}b");
  CHECK(ssi("a<!--#include virtual=\"/x\"-->b") == "a{/x}b");
  CHECK(ssi("a<!--#   include \n virtual = '/x?a=1&amp;b=2'   -->b") == "a{/x?a=1&b=2}b");
  CHECK(ssi("a<!--# include virtual=\"/x\" wait=\"yes\" -->b") == "a{/x}b");  // other parameters ignored
  Template t = compile("<!--# include virtual=\"/x\" -->", Syntax::kSsi);
  REQUIRE(t.includes.size() == 1);
  CHECK(t.includes[0] == Include{"/x", "", true});  // SSI includes always continue

  SUBCASE("file= is refused: nothing in its place, and counted") {
    Template refused = compile("a<!--# include file=\"/etc/passwd\" -->b<!--# include virtual=\"/x\" file=\"y\" -->c",
                               Syntax::kSsi);
    CHECK(render("a<!--# include file=\"/etc/passwd\" -->b<!--# include virtual=\"/x\" file=\"y\" -->c", refused) ==
          "abc");
    CHECK(refused.refused == 2);
    CHECK(refused.includes.empty());
    CHECK_FALSE(refused.is_verbatim());
  }
  SUBCASE("an include without virtual is dropped") {
    Template t2 = compile("a<!--# include -->b", Syntax::kSsi);
    CHECK(render("a<!--# include -->b", t2) == "ab");
    CHECK(t2.refused == 0);
  }
  SUBCASE("other directives pass through") {
    CHECK(ssi("<!--# echo var=\"x\" --><!--# set var=\"a\" value=\"b\" --><!--#config timefmt=\"%A\" -->") ==
          "<!--# echo var=\"x\" --><!--# set var=\"a\" value=\"b\" --><!--#config timefmt=\"%A\" -->");
    CHECK(ssi("<!--# INCLUDE virtual=\"/x\" -->") == "<!--# INCLUDE virtual=\"/x\" -->");
    CHECK(ssi("<!-- include virtual=\"/x\" -->") == "<!-- include virtual=\"/x\" -->");
  }
}

TEST_CASE("ssi: the syntax chooses which constructs are recognised") {
  const std::string_view body = "<esi:include src=\"/e\"/><!--# include virtual=\"/s\" --><!--esi x -->";
  CHECK(esi(body) == "{/e}<!--# include virtual=\"/s\" --> x ");
  CHECK(ssi(body) == "<esi:include src=\"/e\"/>{/s}<!--esi x -->");
  CHECK(both(body) == "{/e}{/s} x ");
  // In both, an SSI directive that is not an include is an HTML comment to ESI.
  CHECK(both("<!--# echo var=\"<esi:include src='/x'/>\" -->") == "<!--# echo var=\"<esi:include src='/x'/>\" -->");
  CHECK(both("<!--esi <!--# include virtual=\"/s\" --> -->") == " {/s} ");
}

TEST_CASE("ssi: entities in attribute values are decoded") {
  auto src = [](std::string_view value) {
    std::string body = "<esi:include src=\"" + std::string(value) + "\"/>";
    Template t = compile(body, Syntax::kEsi);
    REQUIRE(t.includes.size() == 1);
    return t.includes[0].src;
  };
  CHECK(src("/x?a=1&amp;b=2") == "/x?a=1&b=2");
  CHECK(src("&lt;&gt;&quot;&apos;&#39;") == "<>\"''");
  CHECK(src("&#x27;&#X41;&#65;&#xe9;&#x20AC;&#x1F600;") == "'AA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(src("&amp;amp;") == "&amp;");  // decoded once
  CHECK(src("a&b&c;&nbsp;&#;&#x;&#12a;&#0;&#xD800;&#x110000;&#99999999999;&") ==
        "a&b&c;&nbsp;&#;&#x;&#12a;&#0;&#xD800;&#x110000;&#99999999999;&");
  Template t = compile("<esi:include src=\"/x\" alt=\"/y?a&amp;b\"/>", Syntax::kEsi);
  CHECK(t.includes[0].alt == "/y?a&b");
  CHECK(src("/a%20b") == "/a%20b");  // percent-encoding is the URL's business, not ours
}

TEST_CASE("ssi: a src with control characters is refused") {
  Template t = compile("a<esi:include src=\"/x&#10;Host: evil\"/>b<esi:include src=\"/x\ny\"/>c", Syntax::kEsi);
  CHECK(t.includes.empty());
  CHECK(t.refused == 2);
  CHECK(render("a<esi:include src=\"/x&#10;Host: evil\"/>b<esi:include src=\"/x\ny\"/>c", t) == "abc");
}

TEST_CASE("ssi: malformed markup is text, from its '<' on, and nothing is lost") {
  struct Case {
    std::string_view body;
    std::string_view expected;
  };
  const Case cases[] = {
      {"a<esi:include src=/x/>b", "a<esi:include src=/x/>b"},                    // unquoted value
      {"a<esi:include src=\"/x/>b", "a<esi:include src=\"/x/>b"},                // unterminated value
      {"a<esi:include src=\"/x\"/ >b", "a<esi:include src=\"/x\"/ >b"},          // '/' not before '>'
      {"a<esi:include src\"/x\"/>b", "a<esi:include src\"/x\"/>b"},              // no '='
      {"a<esi:include src=\"/x\"alt=\"/y\"/>b", "a<esi:include src=\"/x\"alt=\"/y\"/>b"},  // no space
      {"a<esi:include src=\"/x\" src=\"/y\"/>b", "a<esi:include src=\"/x\" src=\"/y\"/>b"},  // repeated
      {"a<esi:include src=\"/x\" =\"/y\"/>b", "a<esi:include src=\"/x\" =\"/y\"/>b"},  // no name
      {"a<esi:include src=\"/x\"", "a<esi:include src=\"/x\""},                  // cut by the end
      {"a<esi:include", "a<esi:include"},
      {"a<esi:", "a<esi:"},
      {"a<", "a<"},
      {"a<!--esi", "a"},           // a wrapper is dropped when met, even if nothing follows
      {"a<!--es", "a<!--es"},
      {"a</esi:remove", "a</esi:remove"},
      {"a<!--# include virtual=\"/x\"", "a<!--# include virtual=\"/x\""},
      {"a<!--# include virtual=\"/x\" ->b", "a<!--# include virtual=\"/x\" ->b"},
      {"a<!--# include virtual=/x -->b", "a<!--# include virtual=/x -->b"},
      // A broken tag does not hide the next one: the search goes on after its '<'.
      {"a<esi:include src=\"/x/> b <esi:include src=\"/y\"/>c", "a<esi:include src=\"/x/> b {/y}c"},
      {"<esi:include src=\"<esi:include src=\"/y\"/>", "<esi:include src=\"{/y}"},
      // esi:remove never closed: from its tag to the end is text, verbatim.
      {"a<esi:remove>b<esi:include src=\"/x\"/>c", "a<esi:remove>b<esi:include src=\"/x\"/>c"},
      {"a<esi:remove>b</esi:remove", "a<esi:remove>b</esi:remove"},
      // <!--esi never closed: its content is template text up to the end.
      {"a<!--esi b<esi:include src=\"/x\"/>c", "a b{/x}c"},
      // Unclosed comments and CDATA: text to the end, nothing recognised in them.
      {"a<!-- b<esi:include src=\"/x\"/>", "a<!-- b<esi:include src=\"/x\"/>"},
      {"a<![CDATA[ b<esi:include src=\"/x\"/>", "a<![CDATA[ b<esi:include src=\"/x\"/>"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    Template t = compile(c.body, Syntax::kBoth);
    CHECK(render(c.body, t) == c.expected);
    check_shape(t);
    CHECK(byte_by_byte(c.body, Syntax::kBoth) == t);
  }
}

TEST_CASE("ssi: a construct longer than kMaxConstruct is text; one that fits is not") {
  const std::string head = "<esi:include src=\"";
  const std::string tail = "\"/>";
  const std::string fits = head + std::string(kMaxConstruct - head.size() - tail.size(), 'x') + tail;
  const std::string too_long = head + std::string(kMaxConstruct - head.size() - tail.size() + 1, 'x') + tail;
  REQUIRE(fits.size() == kMaxConstruct);

  Template a = compile("a" + fits + "b", Syntax::kEsi);
  CHECK(a.includes.size() == 1);
  CHECK(a.segments.size() == 3);
  Template b = compile("a" + too_long + "b", Syntax::kEsi);
  CHECK(b.includes.empty());
  CHECK(b.is_verbatim());

  for (const std::string& body : {"a" + fits + "b", "a" + too_long + "b", "ab" + head + std::string(100000, 'y')}) {
    const Template whole = compile(body, Syntax::kEsi);
    CHECK(byte_by_byte(body, Syntax::kEsi) == whole);
    for (size_t cut : {size_t{1}, size_t{2}, size_t{10}, kMaxConstruct - 1, kMaxConstruct, kMaxConstruct + 1,
                       kMaxConstruct + 2, body.size() - 1}) {
      CAPTURE(cut);
      CHECK(fed_at(body, Syntax::kEsi, {std::min(cut, body.size())}) == whole);
    }
  }

  SUBCASE("so does an esi:remove longer than that: its end is found whatever lies between") {
    const std::string body = "a<esi:remove>" + std::string(3 * kMaxConstruct, 'z') + "</esi:remove>b";
    CHECK(esi(body) == "ab");
    CHECK(byte_by_byte(body, Syntax::kEsi) == compile(body, Syntax::kEsi));
  }
}

TEST_CASE("ssi: a chunk boundary at any byte gives the same template") {
  for (Syntax syntax : {Syntax::kEsi, Syntax::kSsi, Syntax::kBoth}) {
    CAPTURE(static_cast<int>(syntax));
    const Template whole = compile(kPage, syntax);
    check_shape(whole);
    CHECK(byte_by_byte(kPage, syntax) == whole);
    for (size_t cut = 0; cut <= kPage.size(); ++cut) {
      CAPTURE(cut);
      CHECK(fed_at(kPage, syntax, {cut}) == whole);
    }
  }

  SUBCASE("and two boundaries anywhere") {
    const std::string_view body =
        "x<!--esi <esi:include src='/a&amp;b' alt=\"/c\"/>--><esi:remove>r</esi:remove>"
        "<!--# include virtual=\"/s\" -->y";
    const Template whole = compile(body, Syntax::kBoth);
    CHECK(whole.includes.size() == 2);
    for (size_t first = 0; first <= body.size(); ++first) {
      for (size_t second = first; second <= body.size(); ++second) {
        if (fed_at(body, Syntax::kBoth, {first, second}) != whole) {
          FAIL("differs when cut at " << first << " and " << second);
        }
      }
    }
  }
}

TEST_CASE("ssi: the page a template makes") {
  const Template t = compile(kPage, Syntax::kBoth);
  CHECK(render(kPage, t, true) ==
        "<html><!-- header -->{/h?a=1&b=2|/alt+}"
        "<p>a &lt; b</p>"
        " {/inner} <!-- plain --> "
        "<esi:vars>$(HTTP_HOST)</esi:vars>"
        "{/ssi/frag+}<!--# echo var=\"x\" -->"
        "<![CDATA[<esi:include src=\"/no\"/>]]>{/open}"
        "<esi:include src=\"/cut\" -->end</html>");
  CHECK(t.includes.size() == 4);
  CHECK(t.refused == 1);
  CHECK(t.source_size == kPage.size());
  for (const Segment& s : t.segments) {
    if (s.kind == Segment::kInclude) CHECK(kPage.substr(s.offset, s.length).find("include") != std::string_view::npos);
  }
}

TEST_CASE("ssi: memory counts the segments, the includes and their strings") {
  const Template plain = compile("hello", Syntax::kEsi);
  CHECK(plain.memory() >= sizeof(Template) + sizeof(Segment));
  const std::string long_src(200, 'a');
  const std::string body = "<esi:include src=\"/" + long_src + "\"/>";
  const Template t = compile(body, Syntax::kEsi);
  CHECK(t.memory() >= sizeof(Template) + sizeof(Segment) + sizeof(Include) + 201);
  CHECK(t.memory() > plain.memory());
}

TEST_CASE("ssi: a parser is ready for another body after finish") {
  Parser parser(Syntax::kEsi);
  parser.feed("a<esi:remove>b");
  Template first = parser.finish();
  CHECK(render("a<esi:remove>b", first) == "a<esi:remove>b");
  parser.feed("<esi:include src=\"/x\"/>");
  Template second = parser.finish();
  CHECK(second.source_size == 23);
  CHECK(render("<esi:include src=\"/x\"/>", second) == "{/x}");
}
