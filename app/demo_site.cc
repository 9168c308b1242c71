#include "app/demo_site.h"

#include <cstdio>
#include <vector>

#include "app/query.h"
#include "app/websocket.h"

namespace edge::app {

namespace {

// A decimal id from 1 to max, written canonically (no sign, no leading zero), so one object has
// one URL and one cache key.
std::optional<uint32_t> parse_id(std::string_view text, uint32_t max) {
  if (text.empty() || text[0] == '0') return std::nullopt;
  auto id = parse_uint(text, max);
  if (!id) return std::nullopt;
  return static_cast<uint32_t>(*id);
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string_view trim_space(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

Reply method_not_allowed(std::string_view allow) {
  Reply r = text_reply(405, "method not allowed\n");
  r.headers.add("Allow", allow);
  return r;
}

Reply redirect(const std::string& location) {
  Reply r = text_reply(303, "see " + location + "\n");
  r.headers.add("Location", location);
  return r;
}

// 415 or 413 for a form body we will not read; nullopt when it may be parsed.
std::optional<Reply> refuse_form(const http::RequestHead& head, const http::Body& body) {
  if (auto type = head.headers.get("Content-Type")) {
    const std::string_view media = http::trim(type->substr(0, type->find(';')));
    if (!http::iequals(media, "application/x-www-form-urlencoded"))
      return text_reply(415, "send the form as application/x-www-form-urlencoded\n");
  }
  if (body.size() > kMaxFormBytes) return text_reply(413, "form too large\n");
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!http::iequals(headers.name(i), "Cookie")) continue;
    std::string_view list = headers.value(i);
    while (!list.empty()) {
      const size_t semi = list.find(';');
      const std::string_view pair = http::trim(list.substr(0, semi));
      const size_t eq = pair.find('=');
      if (eq != std::string_view::npos && http::trim(pair.substr(0, eq)) == name) return http::trim(pair.substr(eq + 1));
      if (semi == std::string_view::npos) break;
      list.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

std::string safe_local_path(std::string_view path) {
  if (path.empty() || path[0] != '/' || starts_with(path, "//")) return "/";
  for (char c : path)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return "/";
  return std::string(path);
}

std::optional<ReviewForm> parse_review_form(std::string_view body, std::string& error) {
  auto form = parse_query(body);
  if (!form) {
    error = "The form could not be read.";
    return std::nullopt;
  }
  ReviewForm out;
  std::string text;
  // Both stores keep text as UTF-8 (PostgreSQL's text can hold nothing else), so it is refused
  // here rather than changed there.
  if (!ws::valid_utf8(query_get(*form, "text").value_or(""))) {
    error = "A review is text in UTF-8.";
    return std::nullopt;
  }
  for (char c : query_get(*form, "text").value_or("")) {
    if (c == '\r') continue;
    text.push_back(static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' ? ' ' : c);
  }
  out.text = trim_space(text);
  if (out.text.empty()) {
    error = "Write something first.";
    return std::nullopt;
  }
  if (out.text.size() > kMaxReviewBytes) {
    error = "A review may have at most " + std::to_string(kMaxReviewBytes) + " bytes.";
    return std::nullopt;
  }
  if (auto rating = query_get(*form, "rating"); rating && !rating->empty()) {
    auto value = parse_uint(*rating, 5);
    if (!value || *value == 0) {
      error = "A rating is a number from 1 to 5.";
      return std::nullopt;
    }
    out.rating = static_cast<uint8_t>(*value);
  }
  return out;
}

DemoSite::DemoSite(uint64_t seed, TokenSource tokens, std::unique_ptr<Store> store, DemoSizes sizes)
    : data_(seed, sizes), tokens_(std::move(tokens)), store_(std::move(store)) {}

Reply DemoSite::store_unavailable(StoreStatus status) const {
  std::fprintf(stderr, "edge-app: store %s: %s\n", status == StoreStatus::kBusy ? "busy" : "failed",
               store_->last_error().c_str());
  Reply r = text_reply(503, "The site's store is not answering; try again in a moment.\n");
  r.headers.add("Retry-After", "1");
  r.headers.add("Cache-Control", "no-store");
  return r;
}

std::optional<Reply> DemoSite::handle(const http::RequestHead& head, const http::Body& body, int64_t now) {
  const std::string_view path = head.path();
  const bool read = head.method == "GET" || head.is_head();
  const bool post = head.method == "POST";

  if (path == "/") return read ? home_page() : method_not_allowed("GET, HEAD");
  if (path == stylesheet_path()) return read ? stylesheet(head.headers.get("If-None-Match")) : method_not_allowed("GET, HEAD");
  if (path == "/login") {
    if (post) return login(head, body, now);
    if (!read) return method_not_allowed("GET, HEAD, POST");
    auto query = parse_query(query_of(head.target));
    if (!query) return bad_request("malformed query string");
    return login_page(data_, safe_local_path(query_get(*query, "next").value_or("/")));
  }
  if (path == "/logout") return post ? logout(head) : method_not_allowed("POST");
  if (starts_with(path, "/fragments/")) return read ? fragment(head, path.substr(11), now) : method_not_allowed("GET, HEAD");

  if (starts_with(path, "/book/")) {
    const std::string_view rest = path.substr(6);
    const size_t slash = rest.find('/');
    const auto book = parse_id(rest.substr(0, slash), data_.sizes().books);
    if (!book) return not_found_page();
    if (slash == std::string_view::npos) return read ? book_page(data_, *book) : method_not_allowed("GET, HEAD");
    if (rest.substr(slash) != "/reviews") return not_found_page();
    return post ? post_review(head, body, *book, now) : method_not_allowed("POST");
  }
  if (path == "/search") {
    if (!read) return method_not_allowed("GET, HEAD");
    auto query = parse_query(query_of(head.target));
    if (!query) return bad_request("malformed query string");
    return search_page(search_query(query_get(*query, "q").value_or("")));
  }
  if (starts_with(path, "/author/")) {
    const auto author = parse_id(path.substr(8), data_.sizes().authors);
    if (!author) return not_found_page();
    return read ? author_page(data_, *author) : method_not_allowed("GET, HEAD");
  }
  if (starts_with(path, "/tag/")) {
    const auto tag = parse_id(path.substr(5), data_.sizes().tags);
    if (!tag) return not_found_page();
    if (!read) return method_not_allowed("GET, HEAD");
    auto query = parse_query(query_of(head.target));
    if (!query) return bad_request("malformed query string");
    auto page = parse_id(query_get(*query, "page").value_or("1"), tag_pages(data_, *tag));
    if (!page) return not_found_page();
    return tag_page(data_, *tag, *page);
  }
  return std::nullopt;
}

Reply DemoSite::fragment(const http::RequestHead& head, std::string_view rest, int64_t now) {
  if (rest == "userbar") {
    std::optional<uint32_t> user;
    if (StoreStatus s = request_user(head, user); s != StoreStatus::kOk) return store_unavailable(s);
    return userbar_fragment(data_, user);
  }
  if (rest == "tagcloud") return tagcloud_fragment(data_);
  if (rest == "picks") return picks_fragment(data_);
  if (rest == "search") {
    auto query = parse_query(query_of(head.target));
    if (!query) return bad_request("malformed query string");
    const std::string q = search_query(query_get(*query, "q").value_or(""));
    return q.empty() ? not_found_page() : search_fragment(data_, q);
  }
  if (rest == "mostviewed") {
    std::vector<ViewCount> hour, day;
    StoreStatus s = store_->most_viewed(now, ViewWindow::kHour, kMostViewed, hour);
    if (s == StoreStatus::kOk) s = store_->most_viewed(now, ViewWindow::kDay, kMostViewed, day);
    if (s != StoreStatus::kOk) return store_unavailable(s);
    return most_viewed_fragment(data_, hour, day);
  }

  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return not_found_page();
  const std::string_view kind = rest.substr(0, slash);
  const std::string_view id_text = rest.substr(slash + 1);
  const DemoSizes& sizes = data_.sizes();

  if (kind == "book" || kind == "reviews" || kind == "view") {
    const auto book = parse_id(id_text, sizes.books);
    if (!book) return not_found_page();
    if (kind == "book") return book_fragment(data_, *book);
    if (kind == "reviews") {
      std::vector<PostedReview> posted;
      if (StoreStatus s = store_->posted_reviews(*book, posted); s != StoreStatus::kOk) return store_unavailable(s);
      // The store numbers its reviews from 1; on the page they follow the generated ones.
      for (PostedReview& r : posted) r.id += sizes.reviews;
      return reviews_fragment(data_, *book, posted);
    }
    if (head.method == "GET")
      if (StoreStatus s = store_->add_view(*book, now); s != StoreStatus::kOk) return store_unavailable(s);
    return view_fragment();
  }
  if (kind == "author") {
    const auto author = parse_id(id_text, sizes.authors);
    return author ? author_fragment(data_, *author) : not_found_page();
  }
  if (kind == "tag") {
    const auto tag = parse_id(id_text, sizes.tags);
    if (!tag) return not_found_page();
    auto query = parse_query(query_of(head.target));
    if (!query) return bad_request("malformed query string");
    auto page = parse_id(query_get(*query, "page").value_or("1"), tag_pages(data_, *tag));
    return page ? tag_fragment(data_, *tag, *page) : not_found_page();
  }
  return not_found_page();
}

StoreStatus DemoSite::request_user(const http::RequestHead& head, std::optional<uint32_t>& user) {
  user.reset();
  auto token = cookie_value(head.headers, kSessionCookie);
  if (!token || token->empty()) return StoreStatus::kOk;
  return store_->session_user(*token, user);
}

Reply DemoSite::login(const http::RequestHead& head, const http::Body& body, int64_t now) {
  if (auto refused = refuse_form(head, body)) return std::move(*refused);
  auto form = parse_query(body.to_string());
  if (!form) return login_page(data_, "/", "The form could not be read.", 400);
  const std::string next = safe_local_path(query_get(*form, "next").value_or("/"));
  const std::string_view name = trim_space(query_get(*form, "user").value_or(""));
  const auto user = data_.find_user(name);
  if (!user) return login_page(data_, next, name.empty() ? "Who are you?" : "There is no user called \"" + std::string(name) + "\".", 403);

  std::string token = tokens_();
  if (StoreStatus s = store_->open_session(token, *user, now); s != StoreStatus::kOk) return store_unavailable(s);
  Reply r = redirect(next);
  r.headers.add("Set-Cookie", std::string(kSessionCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Lax");
  return r;
}

Reply DemoSite::logout(const http::RequestHead& head) {
  if (auto token = cookie_value(head.headers, kSessionCookie); token && !token->empty())
    if (StoreStatus s = store_->end_session(*token); s != StoreStatus::kOk) return store_unavailable(s);
  Reply r = redirect("/");
  r.headers.add("Set-Cookie", std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
  return r;
}

Reply DemoSite::post_review(const http::RequestHead& head, const http::Body& body, uint32_t book, int64_t now) {
  const std::string page = "/book/" + std::to_string(book);
  std::optional<uint32_t> user;
  if (StoreStatus s = request_user(head, user); s != StoreStatus::kOk) return store_unavailable(s);
  if (!user) return redirect("/login?next=" + page);
  if (auto refused = refuse_form(head, body)) return std::move(*refused);
  std::string error;
  auto form = parse_review_form(body.to_string(), error);
  if (!form) return message_page(400, "Review not posted", error, page);
  PostedReview review;
  review.user = *user;
  review.rating = form->rating;
  review.time = now;
  review.text = std::move(form->text);
  uint32_t id = 0;
  const StoreStatus stored = store_->add_review(book, review, id);
  if (stored == StoreStatus::kFull)
    return message_page(503, "Review not posted", "This demo's store holds no more reviews.", page);
  if (stored != StoreStatus::kOk) return store_unavailable(stored);

  Reply r = redirect(page);
  r.purge_tag = "book-" + std::to_string(book);
  return r;
}

}  // namespace edge::app
