#include "app/demo_pages.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "app/assets.h"
#include "app/cache_route.h"

namespace edge::app {

namespace {

constexpr std::string_view kSiteName = "Shelfmates";
constexpr std::string_view kHtml = "text/html; charset=utf-8";

constexpr std::string_view kStylesheet = R"(/* Shelfmates: the edge demo site */
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --accent: #8a3b12; --paper: #fbf8f3; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 Georgia, "Times New Roman", serif; color: var(--ink); background: var(--paper); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; justify-content: space-between; gap: 1rem;
  padding: .75rem 1.5rem; background: #fff; border-bottom: 1px solid var(--line); }
.brand { font-size: 1.4rem; font-weight: bold; letter-spacing: .02em; }
.userbar { display: flex; align-items: center; gap: .75rem; font-family: system-ui, sans-serif; font-size: .9rem; }
.userbar form { margin: 0; }
.columns { display: grid; grid-template-columns: minmax(0, 3fr) minmax(14rem, 1fr); gap: 2rem;
  max-width: 68rem; margin: 0 auto; padding: 1.5rem; }
@media (max-width: 48rem) { .columns { grid-template-columns: 1fr; } }
main > section, main > article, aside > section { margin-bottom: 2rem; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0 0 .5rem; }
h2 { font-size: 1.2rem; margin: 0 0 .75rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1rem; margin: .75rem 0 .25rem; font-family: system-ui, sans-serif; }
.byline, .meta, .count, .hint, .year, .empty { color: var(--muted); }
.meta, .hint, .count, .pager, aside { font-family: system-ui, sans-serif; font-size: .9rem; }
.blurb { font-size: 1.1rem; }
ul.tags { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem; }
ul.tags a { display: inline-block; padding: .1rem .6rem; border: 1px solid var(--line); border-radius: 1rem;
  background: #fff; font-family: system-ui, sans-serif; font-size: .85rem; }
ol.books li, ul.books li { margin: .25rem 0; }
.review-list { list-style: none; padding: 0; }
.review-list li { padding: .75rem 0; border-bottom: 1px solid var(--line); }
.review-list .text { margin: .25rem 0 0; white-space: pre-line; }
.stars { color: #c07a00; letter-spacing: .05em; }
.review-form, .login { display: grid; gap: .5rem; max-width: 36rem; margin-top: 1rem; }
textarea, input, select, button { font: inherit; padding: .4rem .6rem; border: 1px solid var(--line); border-radius: .3rem; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
.userbar button { padding: .2rem .6rem; background: #fff; color: var(--accent); }
.cloud { line-height: 2; }
.cloud a { margin-right: .5rem; white-space: nowrap; }
.cloud .s1 { font-size: .8rem; } .cloud .s2 { font-size: .95rem; } .cloud .s3 { font-size: 1.1rem; }
.cloud .s4 { font-size: 1.3rem; } .cloud .s5 { font-size: 1.6rem; font-weight: bold; }
.error { color: #b00020; }
.pager { display: flex; gap: 1rem; }
footer { max-width: 68rem; margin: 0 auto; padding: 1rem 1.5rem 2rem; color: var(--muted);
  font-family: system-ui, sans-serif; font-size: .8rem; border-top: 1px solid var(--line); }
)";

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string plural(uint64_t n, std::string_view one, std::string_view many) {
  return with_commas(n) + " " + std::string(n == 1 ? one : many);
}

std::string stars(uint8_t rating) {
  std::string out = "<span class=\"stars\" title=\"" + std::to_string(rating) + " of 5\">";
  for (uint8_t i = 1; i <= 5; ++i) out += i <= rating ? "\u2605" : "\u2606";
  return out + "</span>";
}

std::string include(std::string_view src) {
  std::string out = "<esi:include src=\"";
  out.append(src);
  out += "\"/>\n";
  return out;
}

std::string link(std::string_view kind, uint32_t id, std::string_view text) {
  std::string out = "<a href=\"/";
  out.append(kind).append("/").append(std::to_string(id)).append("\">");
  out += html_escape(text);
  return out + "</a>";
}

std::string book_link(const DemoData& data, uint32_t book) { return link("book", book, data.book_title(book)); }
std::string author_link(const DemoData& data, uint32_t author) { return link("author", author, data.author_name(author)); }

// The document around a page's content. `header_extra` goes in the top bar (the userbar include
// for templates); plain pages have none, so no include is left for a processor to find there.
std::string layout(std::string_view title, std::string_view header_extra, std::string_view main_html,
                   std::string_view aside_html) {
  std::string out;
  out.reserve(1024 + main_html.size() + aside_html.size());
  out += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  out += html_escape(title);
  if (title != kSiteName) out.append(" \u00b7 ").append(kSiteName);
  out += "</title>\n<link rel=\"stylesheet\" href=\"" + stylesheet_path() + "\">\n</head>\n<body>\n";
  out += "<header class=\"top\">\n<a class=\"brand\" href=\"/\">";
  out.append(kSiteName).append("</a>\n").append(header_extra);
  out += "</header>\n<div class=\"columns\">\n<main>\n";
  out.append(main_html);
  out += "</main>\n<aside>\n";
  out.append(aside_html);
  out += "</aside>\n</div>\n<footer>A demo site for edge: every page is a template of fragments, each cached "
         "on its own and purged when its data changes.</footer>\n</body>\n</html>\n";
  return out;
}

Reply html_reply(int status, std::string body, std::string_view cache_control) {
  Reply r;
  r.status = status;
  r.headers.add("Content-Type", kHtml);
  r.headers.add("Cache-Control", cache_control);
  r.body = std::move(body);
  return r;
}

Reply template_reply(std::string_view title, std::string_view main_html, std::string_view aside_html) {
  Reply r = html_reply(200, layout(title, include("/fragments/userbar"), main_html, aside_html), kPageCacheControl);
  r.headers.add("Surrogate-Control", kEsiSurrogateControl);
  return r;
}

Reply fragment_reply(std::string body, std::string_view cache_control, std::string_view surrogate_key) {
  Reply r = html_reply(200, std::move(body), cache_control);
  r.headers.add("Surrogate-Key", surrogate_key);
  return r;
}

std::string tag_page_href(uint32_t tag, uint32_t page) {
  std::string href = "/tag/" + std::to_string(tag);
  if (page > 1) href += "?page=" + std::to_string(page);
  return href;
}

// A query's text for a URL: letters and digits as they are, a space as '+', the rest %XX.
std::string form_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (std::isalnum(b) || c == '-' || c == '_' || c == '.')
      out.push_back(c);
    else if (c == ' ')
      out.push_back('+');
    else
      out.append({'%', kHex[b >> 4], kHex[b & 15]});
  }
  return out;
}

bool contains_folded(std::string_view haystack, std::string_view lower_needle) {
  if (lower_needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + lower_needle.size() <= haystack.size(); ++i) {
    size_t k = 0;
    while (k < lower_needle.size() &&
           std::tolower(static_cast<unsigned char>(haystack[i + k])) == static_cast<unsigned char>(lower_needle[k]))
      ++k;
    if (k == lower_needle.size()) return true;
  }
  return false;
}

std::string search_form(std::string_view query) {
  return "<form class=\"search\" method=\"get\" action=\"/search\"><input name=\"q\" value=\"" + html_escape(query) +
         "\" maxlength=\"" + std::to_string(kMaxSearchQuery) + "\"><button type=\"submit\">Search</button></form>\n";
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string display_date(int64_t unix_seconds) { return http_date(unix_seconds).substr(5, 11); }

// ---- page templates ----

Reply home_page() {
  return template_reply(kSiteName,
                        "<section class=\"intro\">\n<h1>Welcome to " + std::string(kSiteName) +
                            "</h1>\n<p>Readers sharing what they read: browse by tag, follow an author, "
                            "and log in to write a review.</p>\n</section>\n" + include("/fragments/picks"),
                        include("/fragments/tagcloud") + include("/fragments/mostviewed"));
}

Reply book_page(const DemoData& data, uint32_t book) {
  const std::string id = std::to_string(book);
  return template_reply(data.book_title(book),
                        include("/fragments/book/" + id) + include("/fragments/reviews/" + id) +
                            include("/fragments/view/" + id),
                        include("/fragments/mostviewed"));
}

Reply author_page(const DemoData& data, uint32_t author) {
  return template_reply(data.author_name(author), include("/fragments/author/" + std::to_string(author)),
                        include("/fragments/mostviewed"));
}

uint32_t tag_pages(const DemoData& data, uint32_t tag) {
  const size_t books = data.tag_books(tag).size();
  return static_cast<uint32_t>(std::max<size_t>(1, (books + kTagPageSize - 1) / kTagPageSize));
}

Reply tag_page(const DemoData& data, uint32_t tag, uint32_t page) {
  std::string src = "/fragments" + tag_page_href(tag, page);
  return template_reply("Tag: " + data.tag_name(tag), include(src), include("/fragments/tagcloud"));
}

std::string search_query(std::string_view query) {
  std::string out;
  for (char c : query) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      continue;
    }
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxSearchQuery) {
    size_t cut = kMaxSearchQuery;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    out.resize(cut);
    if (!out.empty() && out.back() == ' ') out.pop_back();
  }
  return out;
}

Reply search_page(std::string_view query) {
  std::string main_html = "<section class=\"intro\">\n<h1>Search</h1>\n" + search_form(query) + "</section>\n";
  if (!query.empty()) main_html += include("/fragments/search?q=" + form_encode(query));
  return template_reply(query.empty() ? "Search" : "Search: " + std::string(query), main_html,
                        include("/fragments/tagcloud"));
}

// ---- fragments ----

Reply userbar_fragment(const DemoData& data, std::optional<uint32_t> user) {
  if (!user)
    return fragment_reply("<nav class=\"userbar\"><a href=\"/login\">Log in</a></nav>\n", "public, max-age=60",
                          "userbar");
  std::string body = "<nav class=\"userbar\"><span>Signed in as <strong>";
  body += html_escape(data.user_name(*user));
  body += "</strong></span><form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form></nav>\n";
  return fragment_reply(std::move(body), "public, max-age=60", "userbar user-" + std::to_string(*user));
}

Reply book_fragment(const DemoData& data, uint32_t book) {
  const uint32_t author = data.book_author(book);
  std::string body = "<article class=\"book\">\n<h1>" + html_escape(data.book_title(book)) + "</h1>\n";
  body += "<p class=\"byline\">by " + author_link(data, author) + " \u00b7 " + std::to_string(data.book_year(book)) +
          " \u00b7 " + std::to_string(data.book_pages(book)) + " pages</p>\n";
  body += "<p class=\"blurb\">" + html_escape(data.book_blurb(book)) + "</p>\n<ul class=\"tags\">";
  for (uint16_t tag : data.book_tags(book)) body += "<li>" + link("tag", tag, data.tag_name(tag)) + "</li>";
  body += "</ul>\n";
  std::string more;
  size_t shown = 0;
  for (uint32_t other : data.author_books(author)) {
    if (other == book) continue;
    if (shown++ == 5) break;
    more += "<li>" + book_link(data, other) + "</li>";
  }
  if (!more.empty())
    body += "<section class=\"more\">\n<h2>More by " + html_escape(data.author_name(author)) +
            "</h2>\n<ul class=\"books\">" + more + "</ul>\n</section>\n";
  body += "</article>\n";
  return fragment_reply(std::move(body), "public, max-age=3600",
                        "bookinfo-" + std::to_string(book) + " author-" + std::to_string(author));
}

Reply reviews_fragment(const DemoData& data, uint32_t book, std::span<const PostedReview> posted) {
  const auto generated = data.book_reviews(book);
  const size_t total = generated.size() + posted.size();
  std::string body = "<section class=\"reviews\" id=\"reviews\">\n<h2>Reviews <span class=\"count\">(" +
                     with_commas(total) + ")</span></h2>\n";
  if (total == 0) {
    body += "<p class=\"empty\">No reviews yet. Be the first.</p>\n";
  } else {
    body += "<ol class=\"review-list\">\n";
    auto item = [&](uint32_t user, uint8_t rating, int64_t time, std::string_view text) {
      body += "<li><p class=\"meta\"><strong>" + html_escape(data.user_name(user)) + "</strong> ";
      if (rating) body += stars(rating) + " ";
      body += "<span class=\"date\">" + display_date(time) + "</span></p><p class=\"text\">" + html_escape(text) +
              "</p></li>\n";
    };
    size_t shown = 0;
    for (auto it = posted.rbegin(); it != posted.rend() && shown < kReviewsShown; ++it, ++shown)
      item(it->user, it->rating, it->time, it->text);
    for (auto it = generated.rbegin(); it != generated.rend() && shown < kReviewsShown; ++it, ++shown) {
      const DemoReview& review = data.review(*it);
      item(review.user, review.rating, review.time, data.review_text(*it));
    }
    body += "</ol>\n";
    if (total > shown) body += "<p class=\"count\">and " + plural(total - shown, "older review", "older reviews") + "</p>\n";
  }
  const std::string id = std::to_string(book);
  body += "<form class=\"review-form\" method=\"post\" action=\"/book/" + id + "/reviews\">\n";
  body += "<label for=\"review-text\">Your review</label>\n<textarea id=\"review-text\" name=\"text\" rows=\"4\" "
          "maxlength=\"" + std::to_string(kMaxReviewBytes) + "\" required></textarea>\n";
  body += "<label>Rating <select name=\"rating\"><option value=\"\">none</option>";
  for (int r = 5; r >= 1; --r) body += "<option value=\"" + std::to_string(r) + "\">" + std::to_string(r) + " of 5</option>";
  body += "</select></label>\n<button type=\"submit\">Post review</button>\n";
  body += "<p class=\"hint\">You will be asked to log in first if you have not.</p>\n</form>\n</section>\n";
  return fragment_reply(std::move(body), "public, max-age=600", "book-" + id);
}

Reply author_fragment(const DemoData& data, uint32_t author) {
  const auto books = data.author_books(author);
  std::string body = "<section class=\"author\">\n<h1>" + html_escape(data.author_name(author)) + "</h1>\n";
  body += "<p class=\"count\">" + plural(books.size(), "book", "books") + "</p>\n<ul class=\"books\">\n";
  for (size_t i = 0; i < books.size() && i < kAuthorBooksShown; ++i)
    body += "<li>" + book_link(data, books[i]) + " <span class=\"year\">" + std::to_string(data.book_year(books[i])) +
            "</span></li>\n";
  body += "</ul>\n";
  if (books.size() > kAuthorBooksShown)
    body += "<p class=\"count\">and " + plural(books.size() - kAuthorBooksShown, "more", "more") + "</p>\n";
  body += "</section>\n";
  return fragment_reply(std::move(body), "public, max-age=3600", "author-" + std::to_string(author));
}

Reply tag_fragment(const DemoData& data, uint32_t tag, uint32_t page) {
  const auto books = data.tag_books(tag);
  const uint32_t pages = tag_pages(data, tag);
  const size_t first = static_cast<size_t>(page - 1) * kTagPageSize;
  std::string body = "<section class=\"tag\">\n<h1>" + html_escape(data.tag_name(tag)) + "</h1>\n";
  body += "<p class=\"count\">" + plural(books.size(), "book", "books");
  if (pages > 1) body += ", page " + std::to_string(page) + " of " + with_commas(pages);
  body += "</p>\n";
  if (first < books.size()) {
    body += "<ol class=\"books\" start=\"" + std::to_string(first + 1) + "\">\n";
    for (size_t i = first; i < books.size() && i < first + kTagPageSize; ++i)
      body += "<li>" + book_link(data, books[i]) + " by " + author_link(data, data.book_author(books[i])) + "</li>\n";
    body += "</ol>\n";
  }
  if (pages > 1) {
    body += "<nav class=\"pager\">";
    if (page > 1) body += "<a href=\"" + tag_page_href(tag, page - 1) + "\">\u2190 previous</a>";
    if (page < pages) body += "<a href=\"" + tag_page_href(tag, page + 1) + "\">next \u2192</a>";
    body += "</nav>\n";
  }
  body += "</section>\n";
  return fragment_reply(std::move(body), "public, max-age=3600", "tag-" + std::to_string(tag));
}

Reply tagcloud_fragment(const DemoData& data) {
  struct Entry {
    std::string name;
    uint16_t tag;
    int size;  // 1..5
  };
  // Sizes by rank (the biggest fifth of the tags shown is size 5), listed by name: a few tags are
  // far bigger than the rest, so sizes by count would leave all but those looking alike.
  const auto popular = data.tags_by_popularity();
  const size_t shown = std::min(kTagCloudSize, popular.size());
  std::vector<Entry> entries;
  for (size_t rank = 0; rank < shown; ++rank)
    entries.push_back({data.tag_name(popular[rank]), popular[rank], static_cast<int>(5 - rank * 5 / shown)});
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  std::string body = "<section class=\"tagcloud\">\n<h2>Tags</h2>\n<p class=\"cloud\">\n";
  for (const Entry& e : entries)
    body += "<a class=\"s" + std::to_string(e.size) + "\" href=\"/tag/" + std::to_string(e.tag) + "\">" +
            html_escape(e.name) + "</a>\n";
  body += "</p>\n</section>\n";
  return fragment_reply(std::move(body), "public, max-age=3600", "tagcloud");
}

Reply picks_fragment(const DemoData& data) {
  std::string body = "<section class=\"picks\">\n<h2>Staff picks</h2>\n<ul class=\"books\">\n";
  for (uint32_t book : data.picks(kPicks))
    body += "<li>" + book_link(data, book) + " by " + author_link(data, data.book_author(book)) + "</li>\n";
  body += "</ul>\n</section>\n";
  return fragment_reply(std::move(body), "public, max-age=3600", "picks");
}

namespace {

std::string view_list(const DemoData& data, std::span<const ViewCount> top, std::string_view title, std::string_view none) {
  std::string body = "<h3>" + std::string(title) + "</h3>\n";
  if (top.empty()) return body + "<p class=\"empty\">" + std::string(none) + "</p>\n";
  body += "<ol class=\"books\">\n";
  for (const ViewCount& v : top)
    body += "<li>" + book_link(data, v.book) + " <span class=\"count\">" + plural(v.views, "view", "views") + "</span></li>\n";
  return body + "</ol>\n";
}

}  // namespace

Reply most_viewed_fragment(const DemoData& data, std::span<const ViewCount> last_hour, std::span<const ViewCount> last_day) {
  std::string body = "<section class=\"mostviewed\">\n<h2>Most viewed</h2>\n";
  if (last_day.empty()) {
    body += "<p class=\"empty\">Nothing viewed yet.</p>\n";
  } else {
    body += view_list(data, last_hour, "In the last hour", "Nothing viewed in the last hour.");
    body += view_list(data, last_day, "In the last day", "");
  }
  body += "</section>\n";
  return fragment_reply(std::move(body), "public, max-age=10", "mostviewed");
}

Reply search_fragment(const DemoData& data, std::string_view query) {
  std::string list;
  size_t found = 0;
  for (uint32_t book = 1; book <= data.sizes().books; ++book) {
    if (!contains_folded(data.book_title(book), query) && !contains_folded(data.author_name(data.book_author(book)), query))
      continue;
    if (found++ < kSearchResults) list += "<li>" + book_link(data, book) + "</li>";
  }
  std::string body = "<section class=\"results\">\n<h2>" + plural(found, "book", "books") + " for \u201c" +
                     html_escape(query) + "\u201d</h2>\n";
  if (!list.empty()) body += "<ul class=\"books\">" + list + "</ul>\n";
  if (found > kSearchResults)
    body += "<p class=\"count\">the first " + std::to_string(kSearchResults) + " shown</p>\n";
  body += "</section>\n";
  return fragment_reply(std::move(body), "public, max-age=300", "search");
}

Reply view_fragment() {
  Reply r;
  r.headers.add("Content-Type", kHtml);
  r.headers.add("Cache-Control", "no-store");
  return r;
}

// ---- plain pages ----

Reply login_page(const DemoData& data, std::string_view next, std::string_view error, int status) {
  std::string main_html = "<section>\n<h1>Log in</h1>\n";
  if (!error.empty()) main_html += "<p class=\"error\">" + html_escape(error) + "</p>\n";
  main_html += "<form class=\"login\" method=\"post\" action=\"/login\">\n";
  main_html += "<input type=\"hidden\" name=\"next\" value=\"" + html_escape(next) + "\">\n";
  main_html += "<label for=\"user\">User name or number</label>\n<input id=\"user\" name=\"user\" required autofocus>\n";
  main_html += "<button type=\"submit\">Log in</button>\n</form>\n";
  const uint32_t users = data.sizes().users;
  if (users > 0) {
    main_html += "<p class=\"hint\">No passwords in this demo. Try ";
    for (uint32_t id = 1; id <= std::min<uint32_t>(users, 3); ++id)
      main_html += "<code>" + html_escape(data.user_name(id)) + "</code>, ";
    main_html += "or any number from 1 to " + with_commas(users) + ".</p>\n";
  }
  main_html += "</section>\n";
  return html_reply(status, layout("Log in", "", main_html, ""), "no-store");
}

Reply message_page(int status, std::string_view title, std::string_view message, std::string_view back_href) {
  std::string main_html = "<section>\n<h1>" + html_escape(title) + "</h1>\n<p>" + html_escape(message) +
                          "</p>\n<p><a href=\"" + html_escape(back_href) + "\">Back</a></p>\n</section>\n";
  return html_reply(status, layout(title, "", main_html, ""), "no-store");
}

Reply not_found_page() { return message_page(404, "Not found", "There is no such page here.", "/"); }

const std::string& stylesheet_path() {
  static const std::string path = "/static/demo-" + hex16(fnv1a64(kStylesheet)).substr(0, 12) + ".css";
  return path;
}

Reply stylesheet(std::optional<std::string_view> if_none_match) {
  static const std::string etag = "\"" + hex16(fnv1a64(kStylesheet)) + "\"";
  Reply r;
  const bool not_modified = if_none_match && if_none_match_matches(*if_none_match, etag);
  r.status = not_modified ? 304 : 200;
  r.headers.add("Content-Type", "text/css; charset=utf-8");
  r.headers.add("Cache-Control", "public, max-age=31536000, immutable");
  r.headers.add("ETag", etag);
  if (!not_modified) r.body = kStylesheet;
  return r;
}

}  // namespace edge::app
