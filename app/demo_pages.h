// app/demo_pages: the demo site's HTML, as Replies. Each page is a template of ESI includes that
// the edge assembles from separately cached fragments; each fragment says how long it may be
// cached and which Surrogate-Key tags purge it. Pure functions of the data and of the run-time
// state handed in (app/demo_site.h owns that state and decides which of these answers a request).
//
// Page templates (GET, HEAD): Content-Type: text/html; charset=utf-8,
// Surrogate-Control: content="ESI/1.0", Cache-Control: public, max-age=300. Their includes:
//   /                   userbar, picks, tagcloud, mostviewed
//   /book/<id>          userbar, book/<id>, reviews/<id>, view/<id>, mostviewed
//   /author/<id>        userbar, author/<id>, mostviewed
//   /tag/<id>[?page=N]  userbar, tag/<id>[?page=N], tagcloud
//   /search?q=WORDS     userbar, search?q=<the query as search_query() keeps it>, tagcloud; a
//                       missing or empty query shows the form alone (no results include)
// Fragments under /fragments/ (GET, HEAD), text/html; Cache-Control and Surrogate-Key:
//   userbar             public, max-age=60    userbar [user-<uid>]   who is logged in, from the
//                                             session cookie: the edge keys it by that cookie
//                                             (key_cookies: [session]), so no Vary
//   book/<id>           public, max-age=3600  bookinfo-<id> author-<aid>   title, author, tags,
//                                             blurb, more by the author; nothing reviews change
//   reviews/<id>        public, max-age=600   book-<id>    the reviews, newest first, and the
//                                             review form (shown to everyone: posting without a
//                                             session is sent to /login first)
//   author/<id>         public, max-age=3600  author-<id>  the author's books
//   tag/<id>[?page=N]   public, max-age=3600  tag-<id>     the tag's books, kTagPageSize a page
//   tagcloud            public, max-age=3600  tagcloud     the kTagCloudSize biggest tags
//   picks               public, max-age=3600  picks        kPicks books chosen by the seed
//   mostviewed          public, max-age=10    mostviewed   the kMostViewed most viewed books of
//                                             the last hour and of the last day
//   search?q=WORDS      public, max-age=300   search       the first kSearchResults books whose
//                                             title or author's name holds the query (any case),
//                                             by id, and how many there are in all: a scan of the
//                                             whole catalogue, the site's one expensive answer
//   view/<id>           no-store, empty body  (counts a view of book <id>: app/demo_site.h)
// The stylesheet, stylesheet_path(): text/css, public, max-age=31536000, immutable, with a strong
// ETag (its name carries a hash of its content, so a new stylesheet is a new URL).
// A page or fragment for an id that does not exist, or a tag page past the last, is
// not_found_page() (404, no-store).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "app/demo_data.h"
#include "app/routes.h"

namespace edge::app {

inline constexpr std::string_view kPageCacheControl = "public, max-age=300";
inline constexpr std::string_view kEsiSurrogateControl = "content=\"ESI/1.0\"";
inline constexpr size_t kTagPageSize = 50;
inline constexpr size_t kTagCloudSize = 60;
inline constexpr size_t kPicks = 8;
inline constexpr size_t kMostViewed = 10;
inline constexpr size_t kReviewsShown = 50;     // newest first; the count says how many in all
inline constexpr size_t kAuthorBooksShown = 200;
inline constexpr size_t kMaxReviewBytes = 4000;  // of a posted review's text
inline constexpr size_t kSearchResults = 50;
inline constexpr size_t kMaxSearchQuery = 64;     // bytes, after search_query()

// A review posted at run time (its id follows the generated ones).
struct PostedReview {
  uint32_t id = 0;
  uint32_t user = 0;
  uint8_t rating = 0;  // 1..5, or 0: none given
  int64_t time = 0;    // Unix seconds
  std::string text;    // as posted (trimmed, at most kMaxReviewBytes); escaped when rendered
};

struct ViewCount {
  uint32_t book = 0;
  uint64_t views = 0;
};

// Page templates. The id must exist (the caller checks; see DemoData::has_*); tag_page's page is
// 1-based and must be within tag_pages().
Reply home_page();
Reply book_page(const DemoData& data, uint32_t book);
Reply author_page(const DemoData& data, uint32_t author);
Reply tag_page(const DemoData& data, uint32_t tag, uint32_t page);
uint32_t tag_pages(const DemoData& data, uint32_t tag);  // at least 1
// `query` as kept: spaces at either end trimmed, runs of spaces made one, ASCII letters lower
// case, at most kMaxSearchQuery bytes (cut at a character's start). One query, one cache key.
std::string search_query(std::string_view query);
Reply search_page(std::string_view query);  // the query as search_query() keeps it

// Fragments, with the same preconditions.
Reply userbar_fragment(const DemoData& data, std::optional<uint32_t> user);
Reply book_fragment(const DemoData& data, uint32_t book);
// `posted` in the order posted (oldest first).
Reply reviews_fragment(const DemoData& data, uint32_t book, std::span<const PostedReview> posted);
Reply author_fragment(const DemoData& data, uint32_t author);
Reply tag_fragment(const DemoData& data, uint32_t tag, uint32_t page);
Reply tagcloud_fragment(const DemoData& data);
Reply picks_fragment(const DemoData& data);
// `top` most viewed first.
Reply most_viewed_fragment(const DemoData& data, std::span<const ViewCount> last_hour, std::span<const ViewCount> last_day);
Reply view_fragment();
Reply search_fragment(const DemoData& data, std::string_view query);  // as search_query() keeps it

// Plain pages, never cached (no-store). `next` is where a successful login goes (a local path:
// see safe_local_path); `error` is shown above the form when not empty.
Reply login_page(const DemoData& data, std::string_view next, std::string_view error = {}, int status = 200);
Reply message_page(int status, std::string_view title, std::string_view message, std::string_view back_href);
Reply not_found_page();

// The stylesheet's path ("/static/demo-<hash>.css") and its answer (304 when `if_none_match`
// lists its ETag).
const std::string& stylesheet_path();
Reply stylesheet(std::optional<std::string_view> if_none_match);

// `text` with & < > " ' as character references.
std::string html_escape(std::string_view text);
// "06 Nov 1994" for a Unix time.
std::string display_date(int64_t unix_seconds);

}  // namespace edge::app
