#include "load/mix.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

using namespace edge::load;
using edge::app::Rng;

namespace {
double harmonic(uint32_t n, double alpha) {
  double sum = 0;
  for (uint32_t k = 1; k <= n; ++k) sum += std::pow(static_cast<double>(k), -alpha);
  return sum;
}

Catalogue small_catalogue() { return Catalogue{1000, 500, 100, {3, 14, 15, 92, 65, 358, 979, 323}}; }

bool starts_with(const std::string& s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

uint32_t id_after(const std::string& target, std::string_view prefix) {
  return static_cast<uint32_t>(std::stoul(target.substr(prefix.size())));
}

size_t count_of(const std::string& text, char c) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), c));
}
}  // namespace

TEST_CASE("load search_words: the titles' distinct words of four letters or more, lower case, first seen first") {
  const std::vector<std::string> titles = {"The Gentle Garden", "A Garden in Riga", "When the Tide's Clock Turns"};
  const auto words = search_words([&](uint32_t book) { return titles[book - 1]; }, 3);
  CHECK(words == std::vector<std::string>{"gentle", "garden", "riga", "when", "tide", "clock", "turns"});
  CHECK(search_words([&](uint32_t book) { return titles[book - 1]; }, 0).empty());
}

TEST_CASE("load zipf: rank 1 draws its share 1/H(n, alpha), and popularity falls with rank") {
  const uint32_t n = 1000;
  for (double alpha : {1.0, 0.8}) {
    Zipf zipf(n, alpha, 7);
    Rng rng{42};
    std::vector<uint64_t> counts(n + 1);
    const int draws = 200000;
    for (int i = 0; i < draws; ++i) {
      const uint32_t rank = zipf.rank(rng);
      REQUIRE(rank >= 1);
      REQUIRE(rank <= n);
      ++counts[rank];
    }
    const double expected = 1.0 / harmonic(n, alpha);
    CHECK(zipf.share(1) == doctest::Approx(expected).epsilon(1e-9));
    CHECK(static_cast<double>(counts[1]) / draws == doctest::Approx(expected).epsilon(0.04));
    CHECK(counts[1] > counts[2]);
    CHECK(counts[2] > counts[3]);
    CHECK(counts[3] > counts[5]);
    // In aggregate: the mean count per rank of each decade falls.
    const auto mean = [&](uint32_t from, uint32_t to) {
      return static_cast<double>(std::accumulate(counts.begin() + from, counts.begin() + to + 1, uint64_t{0})) /
             (to - from + 1);
    };
    CHECK(mean(1, 1) > mean(2, 10));
    CHECK(mean(2, 10) > mean(11, 100));
    CHECK(mean(11, 100) > mean(101, 1000));
  }
}

TEST_CASE("load zipf: shares sum to 1, alpha 0 is uniform, a single rank always comes up") {
  Zipf zipf(500, 1.2, 1);
  double sum = 0;
  for (uint32_t rank = 1; rank <= 500; ++rank) sum += zipf.share(rank);
  CHECK(sum == doctest::Approx(1.0));
  Zipf uniform(100, 0, 1);
  CHECK(uniform.share(1) == doctest::Approx(0.01));
  CHECK(uniform.share(100) == doctest::Approx(0.01));
  Zipf one(1, 1.0, 1);
  Rng rng{3};
  for (int i = 0; i < 100; ++i) CHECK(one.sample(rng) == 1);
}

TEST_CASE("load zipf: ranks map to ids through a seeded permutation") {
  const uint32_t n = 82000;
  Zipf zipf(n, 1.0, 11);
  std::vector<uint32_t> ids(zipf.ids_by_rank().begin(), zipf.ids_by_rank().end());
  REQUIRE(ids.size() == n);
  std::vector<uint32_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint32_t> every(n);
  std::iota(every.begin(), every.end(), 1u);
  CHECK(sorted == every);  // a bijection onto 1..n
  // Scattered: the most popular ids are not simply the lowest.
  CHECK_FALSE((ids[0] == 1 && ids[1] == 2 && ids[2] == 3));
  // Fixed for a seed, different for another.
  Zipf same(n, 1.0, 11);
  Zipf other(n, 1.0, 12);
  CHECK(std::equal(ids.begin(), ids.end(), same.ids_by_rank().begin()));
  CHECK_FALSE(std::equal(ids.begin(), ids.end(), other.ids_by_rank().begin()));
  Rng rng{5};
  for (int i = 0; i < 10000; ++i) {
    const uint32_t id = zipf.sample(rng);
    REQUIRE(id >= 1);
    REQUIRE(id <= n);
  }
}

TEST_CASE("load mix: the shares of posts and of each page over 100k draws") {
  const Mix mix(small_catalogue(), MixOptions{});
  const std::set<uint32_t> picks = {3, 14, 15, 92, 65, 358, 979, 323};
  Rng rng{1};
  const int draws = 100000;
  int posts = 0, home = 0, book = 0, hot = 0, author = 0, tag = 0, search = 0, signed_pages = 0;
  for (int i = 0; i < draws; ++i) {
    const PlannedRequest r = mix.next(rng, 50);
    if (r.session) REQUIRE(*r.session < 50);
    switch (r.kind) {
      case RequestKind::kPost: {
        ++posts;
        REQUIRE(starts_with(r.target, "/book/"));
        REQUIRE(r.target.ends_with("/reviews"));
        const uint32_t id = id_after(r.target, "/book/");
        REQUIRE(id >= 1);
        REQUIRE(id <= 1000);
        REQUIRE(r.session);  // posts are always signed in
        REQUIRE(starts_with(r.body, "text="));
        const size_t rating = r.body.find("&rating=");
        REQUIRE(rating != std::string::npos);
        const int stars = std::stoi(r.body.substr(rating + 8));
        REQUIRE(stars >= 1);
        REQUIRE(stars <= 5);
        REQUIRE(r.body.find(' ') == std::string::npos);
        continue;
      }
      case RequestKind::kHome:
        ++home;
        REQUIRE(r.target == "/");
        break;
      case RequestKind::kBook: {
        ++book;
        REQUIRE(starts_with(r.target, "/book/"));
        const uint32_t id = id_after(r.target, "/book/");
        REQUIRE(id >= 1);
        REQUIRE(id <= 1000);
        if (picks.count(id)) ++hot;
        break;
      }
      case RequestKind::kAuthor: {
        ++author;
        REQUIRE(starts_with(r.target, "/author/"));
        const uint32_t id = id_after(r.target, "/author/");
        REQUIRE(id >= 1);
        REQUIRE(id <= 500);
        break;
      }
      case RequestKind::kSearch:
        ++search;
        REQUIRE(starts_with(r.target, "/search?q="));
        REQUIRE(r.target.find(' ') == std::string::npos);
        break;
      case RequestKind::kTag: {
        ++tag;
        REQUIRE(starts_with(r.target, "/tag/"));
        const uint32_t id = id_after(r.target, "/tag/");
        REQUIRE(id >= 1);
        REQUIRE(id <= 100);
        break;
      }
    }
    REQUIRE(r.body.empty());
    if (r.session) ++signed_pages;
  }
  const double pages = draws - posts;
  CHECK(posts / static_cast<double>(draws) == doctest::Approx(0.01).epsilon(0.15));
  CHECK(home / pages == doctest::Approx(0.05).epsilon(0.06));
  CHECK(book / pages == doctest::Approx(0.59).epsilon(0.02));
  CHECK(search / pages == doctest::Approx(0.01).epsilon(0.2));
  CHECK(author / pages == doctest::Approx(0.20).epsilon(0.03));
  CHECK(tag / pages == doctest::Approx(0.15).epsilon(0.04));
  CHECK(hot / pages >= 0.10 * 0.95);  // the picks, plus whatever the Zipf draws of them
  CHECK(signed_pages / pages == doctest::Approx(0.10).epsilon(0.05));
  double total = 0;
  for (const PageShare& share : kPageMix) total += share.share;
  CHECK(total == doctest::Approx(1.0));
}

TEST_CASE("load mix: the same seed gives the same requests; no sessions, no cookies") {
  const Mix mix(small_catalogue(), MixOptions{1.0, 0.5, 0.2, 9});
  Rng a{77}, b{77};
  for (int i = 0; i < 1000; ++i) {
    const PlannedRequest x = mix.next(a, 10), y = mix.next(b, 10);
    REQUIRE(x.target == y.target);
    REQUIRE(x.body == y.body);
    REQUIRE(x.session == y.session);
  }
  Rng rng{1};
  int posts = 0;
  for (int i = 0; i < 1000; ++i) {
    const PlannedRequest r = mix.next(rng, 0);
    CHECK_FALSE(r.session);
    posts += r.kind == RequestKind::kPost;
  }
  CHECK(posts > 0);
  // All posts, or none; everyone signed in.
  const Mix all_posts(small_catalogue(), MixOptions{1.0, 1.0, 1.0, 1});
  const Mix no_posts(small_catalogue(), MixOptions{1.0, 1.0, 0.0, 1});
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(all_posts.next(rng, 3).kind == RequestKind::kPost);
    const PlannedRequest page = no_posts.next(rng, 3);
    REQUIRE(page.kind != RequestKind::kPost);
    REQUIRE(page.session);
  }
}

TEST_CASE("load mix: hot books without picks are Zipf books") {
  Catalogue catalogue = small_catalogue();
  catalogue.picks.clear();
  const Mix mix(catalogue, MixOptions{});
  Rng rng{4};
  for (int i = 0; i < 2000; ++i) {
    const PlannedRequest r = mix.next(rng, 1);
    if (r.kind == RequestKind::kBook) REQUIRE(id_after(r.target, "/book/") <= 1000);
  }
}

TEST_CASE("load mix: form encoding, review sentences and the request bytes") {
  CHECK(form_encode("A fine book, truly.") == "A+fine+book%2C+truly.");
  CHECK(form_encode("a&b=c%d") == "a%26b%3Dc%25d");
  CHECK(form_encode("page-turner_*") == "page-turner_*");
  CHECK(form_encode("\xc3\xa9") == "%C3%A9");
  Rng rng{8};
  for (int i = 0; i < 50; ++i) {
    const std::string sentence = review_sentence(rng);
    CHECK(sentence.size() > 10);
    CHECK(sentence.size() < 200);
    CHECK(sentence.back() == '.');
  }

  PlannedRequest page{RequestKind::kBook, "/book/17", "", std::nullopt};
  CHECK(request_bytes(page, "localhost", "") ==
        "GET /book/17 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: edge-demo-load\r\n\r\n");
  page.session = 0;
  CHECK(request_bytes(page, "demo.example", "tok") ==
        "GET /book/17 HTTP/1.1\r\nHost: demo.example\r\nUser-Agent: edge-demo-load\r\nCookie: session=tok\r\n\r\n");
  PlannedRequest post{RequestKind::kPost, "/book/9/reviews", "text=Good.&rating=4", 1};
  CHECK(request_bytes(post, "localhost", "abc") ==
        "POST /book/9/reviews HTTP/1.1\r\nHost: localhost\r\nUser-Agent: edge-demo-load\r\nCookie: session=abc\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 19\r\n\r\ntext=Good.&rating=4");
}

TEST_CASE("load mix: users spread over the ids, distinct") {
  const std::vector<uint32_t> users = spread_users(50, 1000);
  REQUIRE(users.size() == 50);
  CHECK(users.front() == 1);
  CHECK(users.back() <= 1000);
  CHECK(users.back() > 950);
  CHECK(std::set<uint32_t>(users.begin(), users.end()).size() == 50);
  const std::vector<uint32_t> all = spread_users(1000, 1000);
  CHECK(std::set<uint32_t>(all.begin(), all.end()).size() == 1000);
  CHECK(all.back() == 1000);
  CHECK(spread_users(1, 7) == std::vector<uint32_t>{1});
}

TEST_CASE("load histogram: empty, one value, extremes") {
  LatencyHistogram empty;
  CHECK(empty.count() == 0);
  CHECK(empty.percentile_ns(0.5) == 0);
  CHECK(empty.percentile_ns(1.0) == 0);
  CHECK(empty.max_ns() == 0);
  CHECK(empty.min_ns() == 0);

  LatencyHistogram one;
  one.record(1234567);
  for (double q : {0.0, 0.5, 0.99, 1.0}) CHECK(one.percentile_ns(q) == 1234567);
  CHECK(one.max_ns() == 1234567);
  CHECK(one.min_ns() == 1234567);

  LatencyHistogram tiny;
  tiny.record(0);
  tiny.record(10);
  CHECK(tiny.percentile_ns(0.5) <= 10);
  CHECK(tiny.percentile_ns(1.0) == 10);

  LatencyHistogram huge;
  huge.record(1000000);
  huge.record(3600ull * 1000000000);  // an hour: past the top bucket
  CHECK(huge.max_ns() == 3600ull * 1000000000);
  CHECK(huge.percentile_ns(1.0) == 3600ull * 1000000000);
  CHECK(huge.percentile_ns(0.5) == doctest::Approx(1000000).epsilon(0.005));

  LatencyHistogram skewed;
  for (int i = 0; i < 1000; ++i) skewed.record(1000000);  // 1 ms
  skewed.record(100ull * 1000000000);                     // 100 s
  CHECK(skewed.percentile_ns(0.5) == doctest::Approx(1000000).epsilon(0.005));
  CHECK(skewed.percentile_ns(0.999) == doctest::Approx(1000000).epsilon(0.005));
  CHECK(skewed.percentile_ns(1.0) == 100ull * 1000000000);
}

TEST_CASE("load histogram: percentiles within 1% over the whole range") {
  LatencyHistogram uniform;
  for (uint64_t us = 1; us <= 100000; ++us) uniform.record(us * 1000);
  CHECK(uniform.count() == 100000);
  CHECK(uniform.percentile_ns(0.50) == doctest::Approx(50000e3).epsilon(0.01));
  CHECK(uniform.percentile_ns(0.90) == doctest::Approx(90000e3).epsilon(0.01));
  CHECK(uniform.percentile_ns(0.99) == doctest::Approx(99000e3).epsilon(0.01));
  CHECK(uniform.percentile_ns(1.0) == 100000000);
  CHECK(uniform.percentile_ns(0.0) == 1000);

  // Any one value between two far away, from 1 us to 60 s: its bucket's middle is close.
  for (double v = 1000; v <= 60e9; v *= 1.037) {
    LatencyHistogram h;
    h.record(1);
    h.record(static_cast<uint64_t>(v));
    h.record(200ull * 1000000000);
    const auto p = static_cast<double>(h.percentile_ns(0.5));
    REQUIRE(std::abs(p - v) / v < 0.005);
  }
}

TEST_CASE("load results: counting answers, fragment uses, the summary and the JSON") {
  Results r;
  r.seconds = 2;
  r.connections = 4;
  r.logins = 50;
  r.record_answer(RequestKind::kHome, 200, false, 1000000);
  r.record_answer(RequestKind::kBook, 200, true, 2000000);
  r.record_answer(RequestKind::kBook, 404, false, 3000000);
  r.record_answer(RequestKind::kTag, 503, false, 4000000);
  r.record_answer(RequestKind::kPost, 303, true, 5000000, "/book/9");
  r.record_answer(RequestKind::kPost, 400, true, 6000000);
  r.record_answer(RequestKind::kPost, 303, true, 7000000, "/login?next=/book/9");
  ++r.errors[static_cast<size_t>(ErrorKind::kTimeout)];
  ++r.errors[static_cast<size_t>(ErrorKind::kConnect)];
  CHECK(r.requests == 7);
  CHECK(r.requests_per_second() == doctest::Approx(3.5));
  CHECK(r.status == std::array<uint64_t, 4>{2, 2, 2, 1});
  CHECK(r.pages == std::array<uint64_t, kPageKinds>{1, 1, 0, 0, 0});
  CHECK(r.posts == 1);
  CHECK(r.posts_to_login == 1);
  CHECK(r.signed_in_requests == 4);
  CHECK(r.error_count() == 2);
  CHECK(r.latency.count() == 7);

  // home: userbar picks tagcloud mostviewed; book: userbar book reviews view mostviewed.
  const auto uses = fragment_uses(r);
  CHECK(uses == std::array<uint64_t, kFragmentKinds>{2, 1, 1, 2, 1, 1, 1, 0, 0, 0});
  r.pages = {10, 100, 1000, 10000, 100000};
  CHECK(fragment_uses(r) ==
        std::array<uint64_t, kFragmentKinds>{111110, 10, 110010, 1110, 100, 100, 100, 1000, 10000, 100000});
  r.pages = {1, 1, 0, 0, 0};

  const std::string json = results_json(r);
  CHECK(json.front() == '{');
  CHECK(json.ends_with("}\n"));
  CHECK(count_of(json, '{') == count_of(json, '}'));
  CHECK(count_of(json, '{') == 5);
  CHECK(json.find("\"seconds\": 2.000") != std::string::npos);
  CHECK(json.find("\"connections\": 4") != std::string::npos);
  CHECK(json.find("\"requests\": 7,") != std::string::npos);
  CHECK(json.find("\"requests_per_second\": 3.5") != std::string::npos);
  CHECK(json.find("\"logins\": 50") != std::string::npos);
  CHECK(json.find("\"status\": {\"2xx\": 2, \"3xx\": 2, \"4xx\": 2, \"5xx\": 1}") != std::string::npos);
  CHECK(json.find("\"errors\": 2,") != std::string::npos);
  CHECK(json.find("\"latency_ms\": {\"p50\": 4.0") != std::string::npos);
  CHECK(json.find("\"max\": 7.000}") != std::string::npos);
  CHECK(json.find("\"pages\": {\"home\": 1, \"book\": 1, \"author\": 0, \"tag\": 0, \"search\": 0}") != std::string::npos);
  CHECK(json.find("\"posts\": 1, \"posts_to_login\": 1,") != std::string::npos);
  CHECK(json.find("\"signed_in_requests\": 4") != std::string::npos);
  CHECK(json.find("\"fragment_uses\": {\"userbar\": 2, \"picks\": 1, \"tagcloud\": 1, \"mostviewed\": 2, \"book\": 1, "
                  "\"reviews\": 1, \"view\": 1, \"author\": 0, \"tag\": 0, \"search\": 0}") != std::string::npos);

  const std::string text = summary_text(r);
  CHECK(text.find("requests:      7 (3.5 req/s)") != std::string::npos);
  CHECK(text.find("errors:        2 (connect 1, timeout 1)") != std::string::npos);
  CHECK(text.find("p99 7.000") != std::string::npos);
  CHECK(text.find("posts (303):   1 (and 1 sent to /login: session unknown)") != std::string::npos);

  const std::string empty = results_json(Results{});
  CHECK(empty.find("\"requests_per_second\": 0.0") != std::string::npos);
  CHECK(empty.find("\"p99\": 0.000") != std::string::npos);
}
