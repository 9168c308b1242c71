// app/demo_data: the demo site's data set, a book community, generated from a seed.
//
// Contract:
// - The same seed and sizes give the same data, byte for byte, on every platform; different
//   seeds give different relations and names. Nothing is read from disk.
// - Ids are 1-based and dense: books 1..books, authors 1..authors, and so on; 0 is never an id.
// - Relations: every book has one author and 1 to 5 distinct tags; every author has at least one
//   book (when there are at least as many books as authors); every review names one book and one
//   user. Popularity is skewed on purpose (a few tags and books carry most of the relations), as
//   on a real site.
// - Only numbers and relations are stored (a few MB at the default sizes); names, titles,
//   blurbs and review texts are made on demand from a hash of (seed, id) and small word lists,
//   so they cost nothing until a page shows them. User names are stored (they are looked up).
// - Immutable after construction: safe to share by const reference. Reviews posted at run time
//   are not here (app/demo_site.h keeps them).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edge::app {

struct DemoSizes {
  uint32_t books = 82000;
  uint32_t authors = 45000;
  uint32_t tags = 6500;     // at most 65535 (stored in 16 bits)
  uint32_t reviews = 17000;
  uint32_t users = 1000;    // at most 65535
};

inline constexpr uint32_t kMaxTagsPerBook = 5;

// A generated review. Its text is DemoData::review_text(id).
struct DemoReview {
  uint32_t book = 0;
  uint16_t user = 0;
  uint8_t rating = 0;  // 1..5
  int64_t time = 0;    // Unix seconds, between kDemoEpoch and kDemoEpoch + ~19 years
};

// 2005-01-01T00:00:00Z: the generated reviews are dated after it.
inline constexpr int64_t kDemoEpoch = 1104537600;

class DemoData {
 public:
  explicit DemoData(uint64_t seed, DemoSizes sizes = {});

  uint64_t seed() const { return seed_; }
  const DemoSizes& sizes() const { return sizes_; }

  bool has_book(uint32_t id) const { return id >= 1 && id <= sizes_.books; }
  bool has_author(uint32_t id) const { return id >= 1 && id <= sizes_.authors; }
  bool has_tag(uint32_t id) const { return id >= 1 && id <= sizes_.tags; }
  bool has_user(uint32_t id) const { return id >= 1 && id <= sizes_.users; }
  bool has_review(uint32_t id) const { return id >= 1 && id <= sizes_.reviews; }

  // Books. The book must exist (has_book); the spans borrow from this object.
  uint32_t book_author(uint32_t book) const { return books_[book - 1].author; }
  std::span<const uint16_t> book_tags(uint32_t book) const;
  uint16_t book_year(uint32_t book) const { return books_[book - 1].year; }
  uint16_t book_pages(uint32_t book) const { return books_[book - 1].pages; }
  std::string book_title(uint32_t book) const;
  std::string book_blurb(uint32_t book) const;  // two sentences
  // Ids of its generated reviews, oldest first.
  std::span<const uint32_t> book_reviews(uint32_t book) const;

  // Authors and tags, with their books in ascending id order.
  std::string author_name(uint32_t author) const;
  std::span<const uint32_t> author_books(uint32_t author) const;
  std::string tag_name(uint32_t tag) const;  // unique among tags; lower case words and spaces
  std::span<const uint32_t> tag_books(uint32_t tag) const;
  // Every tag id, most books first (ties: lower id first).
  std::span<const uint16_t> tags_by_popularity() const { return tags_by_popularity_; }

  // Users: names are unique, lower case, like "mila.hart".
  std::string_view user_name(uint32_t user) const { return user_names_[user - 1]; }
  // A user by exact name, or by decimal id ("17"); nullopt when there is none.
  std::optional<uint32_t> find_user(std::string_view name_or_id) const;

  const DemoReview& review(uint32_t id) const { return reviews_[id - 1]; }
  std::string review_text(uint32_t id) const;  // two to four sentences

  // A few books chosen by the seed, the same for every server with that seed: entry points for
  // the home page.
  std::vector<uint32_t> picks(size_t n) const;

  // The bytes held by the relations and names (for the start-up message).
  size_t memory_bytes() const;

 private:
  struct Book {
    uint32_t author;
    uint16_t year;
    uint16_t pages;
    uint16_t tags[kMaxTagsPerBook];
    uint8_t tag_count;
  };
  // An index from one id space to lists of ids: the list of id k is items[starts[k-1] .. starts[k]).
  struct Index {
    std::vector<uint32_t> starts;
    std::vector<uint32_t> items;
    std::span<const uint32_t> of(uint32_t id) const {
      return {items.data() + starts[id - 1], items.data() + starts[id]};
    }
  };

  uint64_t seed_;
  DemoSizes sizes_;
  std::vector<Book> books_;
  Index author_books_;
  Index tag_books_;
  Index book_reviews_;
  std::vector<DemoReview> reviews_;
  std::vector<uint16_t> tags_by_popularity_;
  std::vector<std::string> user_names_;
  std::unordered_map<std::string, uint32_t> users_by_name_;
};

}  // namespace edge::app
