// load/mix: what edge-demo-load asks for and what it counts, as pure functions: the Zipf
// popularity of books, authors and tags, the page mix and the choice of each next request, the
// latency histogram, the fragments each page includes, and the report (a summary for people and
// a JSON object for scripts) made from a Results. No I/O, no clock: load/runner.h drives them.
//
// Contract:
// - Deterministic: a Mix and an Rng with the same seeds give the same requests, in the same
//   order, on every platform (app/rng.h).
// - Zipf(alpha) over ranks 1..n; rank k is drawn with probability k^-alpha / H(n, alpha). Ranks
//   map to ids through a permutation made from a seed, so the popular ids are scattered over
//   1..n and stay the same for that seed.
// - A Mix owns its samplers and the home page's picks; a PlannedRequest owns its strings.
// - LatencyHistogram: log-linear buckets from 1 us to 60 s (values outside are counted at the
//   bound), each less than 0.8% wide; percentiles come back within about 0.4%, never below the
//   smallest value recorded nor above the largest, and those two exactly (q = 0 and q = 1).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "app/rng.h"

namespace edge::load {

class Zipf {
 public:
  // n >= 1, alpha >= 0 (0: uniform).
  Zipf(uint32_t n, double alpha, uint64_t permutation_seed);

  uint32_t size() const { return static_cast<uint32_t>(ids_.size()); }
  uint32_t rank(app::Rng& rng) const;  // 1..n
  uint32_t id_of_rank(uint32_t rank) const { return ids_[rank - 1]; }
  uint32_t sample(app::Rng& rng) const { return id_of_rank(rank(rng)); }
  // The probability of drawing this rank.
  double share(uint32_t rank) const;
  std::span<const uint32_t> ids_by_rank() const { return ids_; }

 private:
  std::vector<double> cdf_;  // cdf_[k - 1]: the probability of a rank <= k; the last is exactly 1
  std::vector<uint32_t> ids_;  // ids_[k - 1]: the id of rank k
};

// The pages counted, and their names in the report.
enum class PageKind : uint8_t { kHome, kBook, kAuthor, kTag, kSearch };
inline constexpr size_t kPageKinds = 5;
inline constexpr std::array<std::string_view, kPageKinds> kPageNames = {"home", "book", "author", "tag", "search"};

// What a request is: one of the pages, or a posted review.
enum class RequestKind : uint8_t { kHome, kBook, kAuthor, kTag, kSearch, kPost };
inline constexpr PageKind page_of(RequestKind kind) { return static_cast<PageKind>(kind); }  // not kPost

// The page requests (all but the posts), as shares of them. A hot book is one of the home page's
// picks, uniformly; the other books, authors and tags follow their Zipf; tag pages are page 1. A
// search asks for one word of the titles' vocabulary, or two (half the time), each by a Zipf over
// the words: popular queries repeat, the long tail does not, and each new query costs its app
// server a scan of the whole catalogue (the site's one expensive answer, which is what makes a
// server busy for a while and the balancer's choice matter).
enum class PagePick : uint8_t { kHome, kHotBook, kBook, kAuthor, kTag, kSearch };
struct PageShare {
  PagePick pick;
  double share;
};
inline constexpr std::array<PageShare, 6> kPageMix = {{
    {PagePick::kHome, 0.05},
    {PagePick::kHotBook, 0.10},
    {PagePick::kBook, 0.49},
    {PagePick::kSearch, 0.01},
    {PagePick::kAuthor, 0.20},
    {PagePick::kTag, 0.15},
}};

// The fragments a page template includes. This table mirrors the list at the top of
// app/demo_pages.h: change both together.
enum class Fragment : uint8_t { kUserbar, kPicks, kTagcloud, kMostviewed, kBook, kReviews, kView, kAuthor, kTag, kSearch };
inline constexpr size_t kFragmentKinds = 10;
inline constexpr std::array<std::string_view, kFragmentKinds> kFragmentNames = {
    "userbar", "picks", "tagcloud", "mostviewed", "book", "reviews", "view", "author", "tag", "search"};
inline constexpr std::array<std::array<uint8_t, kFragmentKinds>, kPageKinds> kPageFragments = {{
    // userbar picks tagcloud mostviewed book reviews view author tag search
    {{1, 1, 1, 1, 0, 0, 0, 0, 0, 0}},  // home
    {{1, 0, 0, 1, 1, 1, 1, 0, 0, 0}},  // book
    {{1, 0, 0, 1, 0, 0, 0, 1, 0, 0}},  // author
    {{1, 0, 1, 0, 0, 0, 0, 0, 1, 0}},  // tag
    {{1, 0, 1, 0, 0, 0, 0, 0, 0, 1}},  // search
}};

struct MixOptions {
  double alpha = 1.0;       // the Zipf exponent of books, authors and tags
  double signed_in = 0.10;  // the share of page requests that carry a session cookie
  double posts = 0.01;      // the share of all requests that post a review
  uint64_t seed = 1;        // makes the permutations of ids (requests follow the caller's Rng)
};

struct PlannedRequest {
  RequestKind kind = RequestKind::kHome;
  std::string target;  // "/book/17", "/book/17/reviews"
  std::string body;    // a post's form, url-encoded; empty for pages
  std::optional<size_t> session;  // which signed-in user's cookie it carries
};

// The catalogue's sizes (DemoData::sizes()), the home page's picks (DemoData::picks(kPicks)) and
// the words searched for (search_words()).
struct Catalogue {
  uint32_t books = 1;
  uint32_t authors = 1;
  uint32_t tags = 1;
  std::vector<uint32_t> picks;
  std::vector<std::string> words;
};

// The distinct words of at least 4 letters in the titles of books 1..books, lower case, in the
// order first seen.
std::vector<std::string> search_words(const std::function<std::string(uint32_t)>& title, uint32_t books);

class Mix {
 public:
  // Every size must be at least 1; an empty `picks` makes hot books ordinary Zipf books, and
  // empty `words` make every search ask for "the".
  Mix(Catalogue catalogue, MixOptions options);

  // The next request, drawn with `rng`. `sessions` is how many signed-in users there are:
  // posts always carry one of them (chosen uniformly), pages with probability signed_in; with
  // none, nothing carries a cookie (and posts will be sent to the login page).
  PlannedRequest next(app::Rng& rng, size_t sessions) const;

  const Zipf& books() const { return books_; }
  const Zipf& authors() const { return authors_; }
  const Zipf& tags() const { return tags_; }
  const MixOptions& options() const { return options_; }

 private:
  MixOptions options_;
  std::vector<uint32_t> picks_;
  std::vector<std::string> words_;
  Zipf books_;
  Zipf authors_;
  Zipf tags_;
  Zipf word_ranks_;
};

// `count` distinct user ids spread evenly over 1..users (count <= users).
std::vector<uint32_t> spread_users(uint32_t count, uint32_t users);

// A short review sentence, and `text` as application/x-www-form-urlencoded ("a b,c" -> "a+b%2Cc").
std::string review_sentence(app::Rng& rng);
std::string form_encode(std::string_view text);

// The request's bytes: HTTP/1.1, keep-alive, with this Host and, when `session_token` is not
// empty, Cookie: session=<token>.
std::string request_bytes(const PlannedRequest& request, std::string_view host, std::string_view session_token);

class LatencyHistogram {
 public:
  static constexpr uint64_t kMinNs = 1000;            // 1 us
  static constexpr uint64_t kMaxNs = 60000000000ull;  // 60 s

  void record(uint64_t ns);
  uint64_t count() const { return count_; }
  uint64_t min_ns() const { return count_ ? min_ : 0; }
  uint64_t max_ns() const { return max_; }
  // The value at or below which a share q (0..1) of the values recorded lie (q = 1: the largest);
  // 0 when there are none.
  uint64_t percentile_ns(double q) const;

 private:
  static constexpr int kSubBits = 7;  // 128 linear buckets in each power of two
  static constexpr int kFirstExponent = 9;   // the power of two below kMinNs
  static constexpr int kLastExponent = 35;   // the power of two below kMaxNs
  static constexpr size_t kBuckets = (kLastExponent - kFirstExponent + 1) << kSubBits;
  static size_t bucket_of(uint64_t ns);
  static uint64_t middle_of(size_t bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

// Why a request failed (or a connection could not be made): errors in the report.
enum class ErrorKind : uint8_t { kConnect, kTimeout, kClosed, kRead, kWrite, kBadResponse, kTooLarge };
inline constexpr size_t kErrorKinds = 7;
inline constexpr std::array<std::string_view, kErrorKinds> kErrorNames = {
    "connect", "timeout", "closed", "read", "write", "bad response", "too large"};

struct Results {
  double seconds = 0;  // from the start of the run until its last connection closed
  uint32_t connections = 0;
  uint64_t logins = 0;
  uint64_t requests = 0;  // answered, whatever the status
  std::array<uint64_t, 4> status{};  // 2xx, 3xx, 4xx, 5xx
  std::array<uint64_t, kErrorKinds> errors{};
  LatencyHistogram latency;  // of the answered requests, from write to the last byte
  std::array<uint64_t, kPageKinds> pages{};  // pages answered with a 2xx
  uint64_t posts = 0;                        // posts answered with 303 (not to the login page)
  uint64_t posts_to_login = 0;               // posts answered 303 to /login: the session was unknown
  uint64_t signed_in_requests = 0;           // answered requests that carried a session cookie

  // Counts one answer (any status from 100 to 599); `location` is its Location field, if any.
  void record_answer(RequestKind kind, int status, bool signed_in, uint64_t latency_ns,
                     std::string_view location = {});
  uint64_t error_count() const;
  double requests_per_second() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
};

// Fragment includes the 2xx pages made, by Fragment (kPageFragments times the page counts).
std::array<uint64_t, kFragmentKinds> fragment_uses(const Results& results);

// The report: lines for people, and the JSON object for scripts (one line, with a newline).
std::string summary_text(const Results& results);
std::string results_json(const Results& results);

}  // namespace edge::load
