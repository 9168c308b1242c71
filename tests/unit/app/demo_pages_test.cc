#include "app/demo_pages.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace edge::app;

namespace {
const DemoData& data() {
  static const DemoData d(1);
  return d;
}

std::string field(const Reply& r, std::string_view name) {
  auto v = r.headers.get(name);
  return v ? std::string(*v) : "<absent>";
}

// The src of every <esi:include/> in a body, in order.
std::vector<std::string> includes(const std::string& body) {
  std::vector<std::string> out;
  const std::string open = "<esi:include src=\"";
  for (size_t at = body.find(open); at != std::string::npos; at = body.find(open, at + 1)) {
    const size_t start = at + open.size();
    const size_t end = body.find('"', start);
    REQUIRE(body.compare(end, 3, "\"/>") == 0);
    out.push_back(body.substr(start, end - start));
  }
  return out;
}

size_t count(const std::string& haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

void check_template(const Reply& r) {
  CHECK(r.status == 200);
  CHECK(field(r, "Content-Type") == "text/html; charset=utf-8");
  CHECK(field(r, "Surrogate-Control") == "content=\"ESI/1.0\"");
  CHECK(field(r, "Cache-Control") == "public, max-age=300");
  CHECK(r.body.rfind("<!doctype html>", 0) == 0);
  CHECK(r.body.find("<link rel=\"stylesheet\" href=\"" + stylesheet_path() + "\">") != std::string::npos);
}

void check_fragment(const Reply& r, std::string_view cache_control, std::string_view surrogate_key) {
  CHECK(r.status == 200);
  CHECK(field(r, "Content-Type") == "text/html; charset=utf-8");
  CHECK(field(r, "Cache-Control") == cache_control);
  CHECK(field(r, "Surrogate-Key") == surrogate_key);
  CHECK(field(r, "Vary") == "<absent>");
  CHECK(field(r, "Surrogate-Control") == "<absent>");  // fragments hold no includes
  CHECK(includes(r.body).empty());
}
}  // namespace

TEST_CASE("page templates: made of includes, cacheable, marked for ESI") {
  Reply home = home_page();
  check_template(home);
  CHECK(includes(home.body) ==
        std::vector<std::string>{"/fragments/userbar", "/fragments/picks", "/fragments/tagcloud", "/fragments/mostviewed"});

  Reply book = book_page(data(), 42);
  check_template(book);
  CHECK(includes(book.body) == std::vector<std::string>{"/fragments/userbar", "/fragments/book/42", "/fragments/reviews/42",
                                                        "/fragments/view/42", "/fragments/mostviewed"});
  CHECK(book.body.find("<title>" + html_escape(data().book_title(42)) + " \u00b7 Shelfmates</title>") != std::string::npos);

  const uint32_t author = data().book_author(42);
  Reply author_page_reply = author_page(data(), author);
  check_template(author_page_reply);
  CHECK(includes(author_page_reply.body) ==
        std::vector<std::string>{"/fragments/userbar", "/fragments/author/" + std::to_string(author), "/fragments/mostviewed"});

  Reply tag = tag_page(data(), 7, 1);
  check_template(tag);
  CHECK(includes(tag.body) == std::vector<std::string>{"/fragments/userbar", "/fragments/tag/7", "/fragments/tagcloud"});
  CHECK(includes(tag_page(data(), 1, 3).body)[1] == "/fragments/tag/1?page=3");
}

TEST_CASE("the book fragment: details tagged by book and author, but not with the reviews' tag") {
  const uint32_t author = data().book_author(42);
  Reply r = book_fragment(data(), 42);
  check_fragment(r, "public, max-age=3600", "bookinfo-42 author-" + std::to_string(author));
  CHECK(r.body.find(html_escape(data().book_title(42))) != std::string::npos);
  CHECK(r.body.find("href=\"/author/" + std::to_string(author) + "\"") != std::string::npos);
  for (uint16_t tag : data().book_tags(42))
    CHECK(r.body.find("href=\"/tag/" + std::to_string(tag) + "\"") != std::string::npos);
  CHECK(r.body.find(html_escape(data().book_blurb(42))) != std::string::npos);
}

TEST_CASE("the reviews fragment: tagged book-<id>, newest first, posted text escaped, a form for everyone") {
  uint32_t book = 1;  // the most reviewed books have the lowest ids
  REQUIRE(data().book_reviews(book).size() > 2);
  std::vector<PostedReview> posted = {{90001, 3, 5, 1700000000, "first <b>bold</b> & \"quoted\""},
                                      {90002, 4, 0, 1700000100, "second"}};
  Reply r = reviews_fragment(data(), book, posted);
  check_fragment(r, "public, max-age=600", "book-1");
  CHECK(r.body.find("first &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;") != std::string::npos);
  CHECK(r.body.find("<b>bold</b>") == std::string::npos);
  CHECK(r.body.find("second") < r.body.find("first &lt;b&gt;"));
  const auto generated = data().book_reviews(book);
  const std::string newest_generated = html_escape(data().review_text(generated.back()));
  CHECK(r.body.find("first &lt;b&gt;") < r.body.find(newest_generated));
  CHECK(r.body.find("(" + std::to_string(generated.size() + 2) + ")") != std::string::npos);
  CHECK(r.body.find("<form class=\"review-form\" method=\"post\" action=\"/book/1/reviews\">") != std::string::npos);
  CHECK(r.body.find("name=\"text\"") != std::string::npos);
  CHECK(count(r.body, "<li>") == std::min(kReviewsShown, generated.size() + 2));

  // A book nobody reviewed.
  uint32_t quiet = 82000;
  while (!data().book_reviews(quiet).empty()) --quiet;
  Reply empty = reviews_fragment(data(), quiet, {});
  CHECK(empty.body.find("No reviews yet") != std::string::npos);
  CHECK(field(empty, "Surrogate-Key") == "book-" + std::to_string(quiet));
}

TEST_CASE("the userbar: a login link, or the user; cacheable per session, without Vary") {
  Reply anonymous = userbar_fragment(data(), std::nullopt);
  check_fragment(anonymous, "public, max-age=60", "userbar");
  CHECK(anonymous.body.find("href=\"/login\"") != std::string::npos);
  Reply user = userbar_fragment(data(), 17);
  check_fragment(user, "public, max-age=60", "userbar user-17");
  CHECK(user.body.find(std::string(data().user_name(17))) != std::string::npos);
  CHECK(user.body.find("action=\"/logout\"") != std::string::npos);
}

TEST_CASE("listing fragments: author, tag pages, tag cloud, picks") {
  const uint32_t author = data().book_author(42);
  Reply a = author_fragment(data(), author);
  check_fragment(a, "public, max-age=3600", "author-" + std::to_string(author));
  for (uint32_t book : data().author_books(author))
    CHECK(a.body.find("href=\"/book/" + std::to_string(book) + "\"") != std::string::npos);

  const size_t fiction = data().tag_books(1).size();
  REQUIRE(fiction > 2 * kTagPageSize);
  CHECK(tag_pages(data(), 1) == (fiction + kTagPageSize - 1) / kTagPageSize);
  Reply first = tag_fragment(data(), 1, 1);
  check_fragment(first, "public, max-age=3600", "tag-1");
  CHECK(count(first.body, "<li>") == kTagPageSize);
  CHECK(first.body.find("href=\"/tag/1?page=2\"") != std::string::npos);
  CHECK(first.body.find("previous") == std::string::npos);
  Reply second = tag_fragment(data(), 1, 2);
  CHECK(second.body.find("href=\"/tag/1\"") != std::string::npos);  // page 1 has one URL
  CHECK(second.body.find("href=\"/book/" + std::to_string(data().tag_books(1)[kTagPageSize]) + "\"") != std::string::npos);
  Reply last = tag_fragment(data(), 1, tag_pages(data(), 1));
  CHECK(last.body.find("next") == std::string::npos);

  Reply cloud = tagcloud_fragment(data());
  check_fragment(cloud, "public, max-age=3600", "tagcloud");
  CHECK(count(cloud.body, "<a class=\"s") == kTagCloudSize);
  CHECK(cloud.body.find("<a class=\"s5\" href=\"/tag/1\">fiction</a>") != std::string::npos);

  Reply picks = picks_fragment(data());
  check_fragment(picks, "public, max-age=3600", "picks");
  CHECK(count(picks.body, "<li>") == kPicks);
}

TEST_CASE("most viewed and the view counter") {
  Reply none = most_viewed_fragment(data(), {}, {});
  check_fragment(none, "public, max-age=10", "mostviewed");
  CHECK(none.body.find("Nothing viewed yet") != std::string::npos);
  std::vector<ViewCount> hour = {{5, 1234}, {9, 1}};
  std::vector<ViewCount> day = {{9, 4000}, {5, 1234}};
  Reply some = most_viewed_fragment(data(), hour, day);
  const size_t day_at = some.body.find("In the last day");
  REQUIRE(day_at != std::string::npos);
  CHECK(some.body.find("In the last hour") < day_at);
  CHECK(some.body.find("href=\"/book/5\"") < some.body.find("href=\"/book/9\""));
  CHECK(some.body.find("href=\"/book/9\"", day_at) < some.body.find("href=\"/book/5\"", day_at));
  CHECK(some.body.find("1,234 views") != std::string::npos);
  CHECK(some.body.find("4,000 views") > day_at);
  CHECK(some.body.find("1 view<") != std::string::npos);
  Reply quiet_hour = most_viewed_fragment(data(), {}, day);
  CHECK(quiet_hour.body.find("Nothing viewed in the last hour") != std::string::npos);

  Reply view = view_fragment();
  CHECK(view.status == 200);
  CHECK(view.body.empty());
  CHECK(field(view, "Cache-Control") == "no-store");
  CHECK(field(view, "Surrogate-Key") == "<absent>");
}

TEST_CASE("plain pages are never cached and carry no includes") {
  Reply login = login_page(data(), "/book/1?a=\"x\"", "no such <user>", 403);
  CHECK(login.status == 403);
  CHECK(field(login, "Cache-Control") == "no-store");
  CHECK(field(login, "Surrogate-Control") == "<absent>");
  CHECK(includes(login.body).empty());
  CHECK(login.body.find("value=\"/book/1?a=&quot;x&quot;\"") != std::string::npos);
  CHECK(login.body.find("no such &lt;user&gt;") != std::string::npos);
  CHECK(login.body.find("<form class=\"login\" method=\"post\" action=\"/login\">") != std::string::npos);
  CHECK(login.body.find(std::string(data().user_name(1))) != std::string::npos);

  Reply missing = not_found_page();
  CHECK(missing.status == 404);
  CHECK(field(missing, "Cache-Control") == "no-store");
  Reply message = message_page(400, "Review not posted", "Write something first.", "/book/3");
  CHECK(message.status == 400);
  CHECK(message.body.find("href=\"/book/3\"") != std::string::npos);
}

TEST_CASE("the stylesheet: a fingerprinted name, cached for a year, validated by ETag") {
  const std::string& path = stylesheet_path();
  CHECK(path.rfind("/static/demo-", 0) == 0);
  CHECK(path.size() == std::string("/static/demo-").size() + 12 + 4);
  CHECK(path.substr(path.size() - 4) == ".css");
  Reply css = stylesheet(std::nullopt);
  CHECK(css.status == 200);
  CHECK(field(css, "Content-Type") == "text/css; charset=utf-8");
  CHECK(field(css, "Cache-Control") == "public, max-age=31536000, immutable");
  CHECK(css.body.find(".userbar") != std::string::npos);
  const std::string etag = field(css, "ETag");
  CHECK(etag.size() == 18);
  Reply same = stylesheet(std::string_view(etag));
  CHECK(same.status == 304);
  CHECK(same.body.empty());
  CHECK(stylesheet(std::string_view("\"other\"")).status == 200);
}

TEST_CASE("html_escape and display_date") {
  CHECK(html_escape("a<b>&\"c\"'d") == "a&lt;b&gt;&amp;&quot;c&quot;&#39;d");
  CHECK(html_escape("plain") == "plain");
  CHECK(display_date(784111777) == "06 Nov 1994");
  CHECK(display_date(kDemoEpoch) == "01 Jan 2005");
}
