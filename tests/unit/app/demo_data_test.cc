#include "app/demo_data.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>

using namespace edge::app;

namespace {
// Everything that describes one book, for comparing data sets.
std::string book_summary(const DemoData& d, uint32_t book) {
  std::string out = d.book_title(book) + "|" + std::to_string(d.book_author(book)) + "|" +
                    std::to_string(d.book_year(book)) + "|" + std::to_string(d.book_pages(book)) + "|";
  for (uint16_t tag : d.book_tags(book)) out += std::to_string(tag) + ",";
  return out;
}

const DemoData& full() {
  static const DemoData data(1);
  return data;
}
}  // namespace

TEST_CASE("demo data: the default sizes") {
  const DemoData& d = full();
  CHECK(d.seed() == 1);
  CHECK(d.sizes().books == 82000);
  CHECK(d.sizes().authors == 45000);
  CHECK(d.sizes().tags == 6500);
  CHECK(d.sizes().reviews == 17000);
  CHECK(d.sizes().users == 1000);
  CHECK(d.tags_by_popularity().size() == 6500);
  CHECK(d.has_book(1));
  CHECK(d.has_book(82000));
  CHECK_FALSE(d.has_book(0));
  CHECK_FALSE(d.has_book(82001));
  CHECK(d.has_user(1000));
  CHECK_FALSE(d.has_user(1001));
  // Numbers and relations only: a few MB.
  CHECK(d.memory_bytes() < 8u * 1024 * 1024);
}

TEST_CASE("demo data: every relation points at something that exists, and the indexes agree") {
  const DemoData& d = full();
  size_t author_links = 0, tag_links = 0, review_links = 0;
  for (uint32_t book = 1; book <= d.sizes().books; ++book) {
    REQUIRE(d.has_author(d.book_author(book)));
    auto tags = d.book_tags(book);
    REQUIRE(tags.size() >= 1);
    REQUIRE(tags.size() <= kMaxTagsPerBook);
    REQUIRE(std::adjacent_find(tags.begin(), tags.end(), [](uint16_t a, uint16_t b) { return a >= b; }) == tags.end());
    for (uint16_t tag : tags) REQUIRE(d.has_tag(tag));
    REQUIRE(d.book_year(book) >= 1850);
    REQUIRE(d.book_year(book) <= 2024);
    REQUIRE(d.book_pages(book) >= 80);
    tag_links += tags.size();
    for (uint32_t review : d.book_reviews(book)) {
      REQUIRE(d.has_review(review));
      REQUIRE(d.review(review).book == book);
      ++review_links;
    }
  }
  for (uint32_t author = 1; author <= d.sizes().authors; ++author) {
    auto books = d.author_books(author);
    REQUIRE(!books.empty());  // every author wrote something
    REQUIRE(std::is_sorted(books.begin(), books.end()));
    for (uint32_t book : books) REQUIRE(d.book_author(book) == author);
    author_links += books.size();
  }
  CHECK(author_links == d.sizes().books);
  size_t tagged = 0;
  for (uint32_t tag = 1; tag <= d.sizes().tags; ++tag) {
    auto books = d.tag_books(tag);
    REQUIRE(std::is_sorted(books.begin(), books.end()));
    for (uint32_t book : books) {
      auto tags = d.book_tags(book);
      REQUIRE(std::find(tags.begin(), tags.end(), tag) != tags.end());
    }
    tagged += books.size();
  }
  CHECK(tagged == tag_links);
  CHECK(review_links == d.sizes().reviews);
  for (uint32_t review = 1; review <= d.sizes().reviews; ++review) {
    const DemoReview& r = d.review(review);
    REQUIRE(d.has_book(r.book));
    REQUIRE(d.has_user(r.user));
    REQUIRE(r.rating >= 1);
    REQUIRE(r.rating <= 5);
    REQUIRE(r.time >= kDemoEpoch);
  }
}

TEST_CASE("demo data: a book's reviews are oldest first") {
  const DemoData& d = full();
  for (uint32_t book = 1; book <= 200; ++book) {
    auto reviews = d.book_reviews(book);
    for (size_t i = 1; i < reviews.size(); ++i) REQUIRE(d.review(reviews[i - 1]).time <= d.review(reviews[i]).time);
  }
}

TEST_CASE("demo data: popularity is skewed, as on a real site") {
  const DemoData& d = full();
  auto popular = d.tags_by_popularity();
  CHECK(popular.front() == 1);  // the first tag word is the commonest tag
  for (size_t i = 1; i < popular.size(); ++i)
    REQUIRE(d.tag_books(popular[i - 1]).size() >= d.tag_books(popular[i]).size());
  CHECK(d.tag_books(popular.front()).size() > 50 * d.tag_books(popular.back()).size() + 50);
  size_t most = 0;
  for (uint32_t author = 1; author <= d.sizes().authors; ++author) most = std::max(most, d.author_books(author).size());
  CHECK(most > 20);
}

TEST_CASE("demo data: the same seed gives the same data; another seed other data") {
  const DemoData& a = full();
  DemoData b(1);
  DemoData c(2);
  size_t same_as_other_seed = 0;
  for (uint32_t book = 1; book <= a.sizes().books; book += 97) {
    REQUIRE(book_summary(a, book) == book_summary(b, book));
    if (book_summary(a, book) == book_summary(c, book)) ++same_as_other_seed;
  }
  CHECK(same_as_other_seed == 0);
  for (uint32_t author = 1; author <= a.sizes().authors; author += 101) {
    REQUIRE(a.author_name(author) == b.author_name(author));
    REQUIRE(a.author_books(author).size() == b.author_books(author).size());
  }
  for (uint32_t review = 1; review <= a.sizes().reviews; review += 53) {
    REQUIRE(a.review(review).book == b.review(review).book);
    REQUIRE(a.review_text(review) == b.review_text(review));
  }
  CHECK(a.user_name(1) == b.user_name(1));
  CHECK(a.picks(8) == b.picks(8));
  CHECK(a.picks(8) != c.picks(8));
  CHECK(a.book_blurb(77) == b.book_blurb(77));
}

TEST_CASE("demo data: names are well formed; tag and user names are unique") {
  const DemoData& d = full();
  std::set<std::string> tag_names;
  for (uint32_t tag = 1; tag <= d.sizes().tags; ++tag) {
    std::string name = d.tag_name(tag);
    REQUIRE(!name.empty());
    REQUIRE(tag_names.insert(name).second);
  }
  CHECK(d.tag_name(1) == "fiction");
  std::set<std::string> user_names;
  for (uint32_t user = 1; user <= d.sizes().users; ++user) {
    std::string name(d.user_name(user));
    REQUIRE(name.find('.') != std::string::npos);
    REQUIRE(user_names.insert(name).second);
    REQUIRE(d.find_user(name) == user);
  }
  for (uint32_t book = 1; book <= 1000; ++book) {
    std::string title = d.book_title(book);
    REQUIRE(title.size() >= 5);
    REQUIRE(title.size() < 80);
    REQUIRE((title[0] >= 'A' && title[0] <= 'Z'));
  }
  CHECK(d.author_name(3).find(' ') != std::string::npos);
  CHECK(d.review_text(1).back() == '.');
}

TEST_CASE("demo data: users are found by name or by number") {
  const DemoData& d = full();
  CHECK(d.find_user("1") == 1u);
  CHECK(d.find_user("1000") == 1000u);
  CHECK_FALSE(d.find_user("0"));
  CHECK_FALSE(d.find_user("1001"));
  CHECK_FALSE(d.find_user(""));
  CHECK_FALSE(d.find_user("nobody.at.all"));
  CHECK(d.find_user(d.user_name(42)) == 42u);
}

TEST_CASE("demo data: small sizes keep every promise") {
  DemoData d(7, DemoSizes{30, 10, 12, 40, 5});
  CHECK(d.sizes().books == 30);
  CHECK(d.sizes().reviews == 40);
  for (uint32_t author = 1; author <= 10; ++author) CHECK(!d.author_books(author).empty());
  for (uint32_t book = 1; book <= 30; ++book) {
    CHECK(d.has_author(d.book_author(book)));
    CHECK(!d.book_tags(book).empty());
  }
  CHECK(d.picks(100).size() == 30);
  DemoData empty(1, DemoSizes{0, 0, 0, 0, 0});
  CHECK(empty.sizes().reviews == 0);
  CHECK(empty.picks(8).empty());
  CHECK(empty.tags_by_popularity().empty());
}
