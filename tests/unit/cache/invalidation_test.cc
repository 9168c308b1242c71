#include "cache/invalidation.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace edge;
using namespace edge::cache;

namespace {

Invalidation url(Seconds at, std::string key, bool soft = false) {
  Invalidation entry;
  entry.kind = Invalidation::Kind::kUrl;
  entry.at = at;
  entry.soft = soft;
  entry.key = std::move(key);
  return entry;
}

Invalidation tag(Seconds at, std::string tag, bool soft = false) {
  Invalidation entry = url(at, std::move(tag), soft);
  entry.kind = Invalidation::Kind::kTag;
  return entry;
}

Invalidation ban(Seconds at, std::string host, std::string prefix, std::string regex, bool soft = false) {
  Invalidation entry;
  entry.kind = Invalidation::Kind::kBan;
  entry.at = at;
  entry.soft = soft;
  entry.host = std::move(host);
  entry.prefix = std::move(prefix);
  entry.regex = std::move(regex);
  return entry;
}

std::string log_of(Seconds created, const std::vector<Invalidation>& entries) {
  std::string text = invalidation_log_header(created);
  for (const Invalidation& entry : entries) text += format_invalidation(entry);
  return text;
}

InvalidationLog parsed(Seconds created, const std::vector<Invalidation>& entries) {
  auto log = InvalidationLog::parse(log_of(created, entries));
  REQUIRE(log);
  return *log;
}

// On the heap: a CachedObject cannot be moved (its atomic flag).
std::unique_ptr<CachedObject> object(std::string host, std::string path, std::vector<std::string> tags = {}) {
  auto o = std::make_unique<CachedObject>();
  o->set_key(host + path, host, path);
  o->set_tags(std::move(tags));
  return o;
}

// The single entry of a log made of `entry` alone, as parse() gives it back, through compacted().
void check_round_trip(const Invalidation& entry) {
  std::string line = format_invalidation(entry);
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  auto log = InvalidationLog::parse(invalidation_log_header(5) + line);
  REQUIRE(log);
  REQUIRE(log->entries() == 1);
  // compacted() with room for everything writes every entry back as format_invalidation() does.
  CHECK(log->compacted(1 << 20) == invalidation_log_header(5) + line);
}

using Verdict = InvalidationLog::Verdict;

}  // namespace

TEST_CASE("invalidation: the header round trips") {
  CHECK(invalidation_log_header(1700000000) == "edge-invalidations 1 1700000000\n");
  for (std::string text : {invalidation_log_header(0), invalidation_log_header(1700000000),
                           std::string("edge-invalidations 1 42")}) {
    auto log = InvalidationLog::parse(text);
    REQUIRE(log);
    CHECK(log->entries() == 0);
  }
  CHECK(InvalidationLog::parse(invalidation_log_header(1700000000))->created() == 1700000000);
  CHECK(InvalidationLog::parse("edge-invalidations 1 42")->created() == 42);
}

TEST_CASE("invalidation: every kind is written as the contract says") {
  CHECK(format_invalidation(url(100, "www.example.com/a?b=c")) == "100 url 0 www.example.com/a?b=c\n");
  CHECK(format_invalidation(tag(101, "book-1", true)) == "101 tag 1 book-1\n");
  CHECK(format_invalidation(ban(102, "", "", "")) == "102 ban 0 - - -\n");
  CHECK(format_invalidation(ban(103, "example.com", "/a", "\\.jpg$", true)) == "103 ban 1 example.com /a \\.jpg$\n");
  CHECK(format_invalidation(ban(104, "-", "-", "-")) == "104 ban 0 %2D %2D %2D\n");
  CHECK(format_invalidation(tag(105, "a b%c\nd\x7f\x01\xc3\xa9")) == "105 tag 0 a%20b%25c%0Ad%7F%01%C3%A9\n");
  // Only a whole "-" stands for "none".
  CHECK(format_invalidation(ban(106, "a-b", "/-", "a-")) == "106 ban 0 a-b /- a-\n");
}

TEST_CASE("invalidation: every kind parses back, whatever bytes its fields hold") {
  const std::string awkward = "a b%20c%\r\n\t\x01\x7f\x80\xff \xc3\xa9t\xc3\xa9 \xe2\x82\xac";
  check_round_trip(url(1700000000, "www.example.com/a b?c=%41"));
  check_round_trip(url(7, awkward, true));
  check_round_trip(url(7, "-"));
  check_round_trip(tag(8, awkward));
  check_round_trip(tag(8, "-", true));
  check_round_trip(ban(9, "", "", ""));
  check_round_trip(ban(9, "-", "-", "-", true));
  check_round_trip(ban(9, "example.com", "/a b", "^/x%y\\s+\n"));
  check_round_trip(ban(9, awkward, awkward, awkward));
  check_round_trip(ban(9, "", "/only-prefix", ""));
  check_round_trip(ban(9, "example.com", "", "\\.png$"));

  // The fields themselves come back: check() sees the decoded values.
  auto log = InvalidationLog::parse(log_of(0, {url(10, "h/" + awkward)}));
  REQUIRE(log);
  CHECK(log->check(*object("h", "/" + awkward), 10) == Verdict::kPurged);
  CHECK(log->check(*object("h", "/" + awkward + "x"), 10) == Verdict::kValid);

  // A literal "-" host is that host, not every host.
  log = InvalidationLog::parse(log_of(0, {ban(10, "-", "", "")}));
  REQUIRE(log);
  CHECK(log->check(*object("-", "/a"), 10) == Verdict::kPurged);
  CHECK(log->check(*object("example.com", "/a"), 10) == Verdict::kValid);
  // A literal "-" regex is a regex (it matches a path holding a '-').
  log = InvalidationLog::parse(log_of(0, {ban(10, "", "", "-")}));
  REQUIRE(log);
  CHECK(log->check(*object("example.com", "/a-b"), 10) == Verdict::kPurged);
  CHECK(log->check(*object("example.com", "/ab"), 10) == Verdict::kValid);
}

TEST_CASE("invalidation: lower-case escapes and escapes of plain bytes are read") {
  auto log = InvalidationLog::parse("edge-invalidations 1 0\n10 url 0 h/%c3%a9%41\n");
  REQUIRE(log);
  CHECK(log->check(*object("h", "/\xc3\xa9" "A"), 10) == Verdict::kPurged);
}

TEST_CASE("invalidation: entries appended out of order are sorted") {
  auto log = InvalidationLog::parse(log_of(0, {url(300, "h/c"), url(100, "h/a"), url(200, "h/b", true)}));
  REQUIRE(log);
  CHECK(log->entries() == 3);
  CHECK(log->check(*object("h", "/a"), 100) == Verdict::kPurged);
  CHECK(log->check(*object("h", "/a"), 101) == Verdict::kValid);
  CHECK(log->check(*object("h", "/b"), 150) == Verdict::kStale);
  CHECK(log->check(*object("h", "/c"), 250) == Verdict::kPurged);
  CHECK(log->check(*object("h", "/c"), 301) == Verdict::kValid);
  // compacted() writes them oldest first.
  CHECK(log->compacted(1000) == log_of(0, {url(100, "h/a"), url(200, "h/b", true), url(300, "h/c")}));
}

TEST_CASE("invalidation: check against created") {
  InvalidationLog log = parsed(1000, {});
  CHECK(log.check(*object("h", "/a"), 999) == Verdict::kPurged);
  CHECK(log.check(*object("h", "/a"), 0) == Verdict::kPurged);
  // The same second counts as before, as for entries.
  CHECK(log.check(*object("h", "/a"), 1000) == Verdict::kPurged);
  CHECK(log.check(*object("h", "/a"), 1001) == Verdict::kValid);
}

TEST_CASE("invalidation: only entries made at or after a record was stored concern it") {
  InvalidationLog log = parsed(0, {url(100, "h/a")});
  CHECK(log.check(*object("h", "/a"), 99) == Verdict::kPurged);
  CHECK(log.check(*object("h", "/a"), 100) == Verdict::kPurged);
  CHECK(log.check(*object("h", "/a"), 101) == Verdict::kValid);
  CHECK(log.check(*object("h", "/b"), 50) == Verdict::kValid);
}

TEST_CASE("invalidation: soft entries make records stale, hard ones win") {
  InvalidationLog soft = parsed(0, {tag(100, "t", true)});
  CHECK(soft.check(*object("h", "/a", {"t"}), 100) == Verdict::kStale);
  CHECK(soft.check(*object("h", "/a", {"t"}), 101) == Verdict::kValid);

  // Whichever comes first in time.
  InvalidationLog soft_then_hard = parsed(0, {tag(100, "t", true), url(200, "h/a")});
  CHECK(soft_then_hard.check(*object("h", "/a", {"t"}), 50) == Verdict::kPurged);
  CHECK(soft_then_hard.check(*object("h", "/a", {"t"}), 150) == Verdict::kPurged);
  InvalidationLog hard_then_soft = parsed(0, {url(100, "h/a"), tag(200, "t", true)});
  CHECK(hard_then_soft.check(*object("h", "/a", {"t"}), 50) == Verdict::kPurged);
  CHECK(hard_then_soft.check(*object("h", "/a", {"t"}), 150) == Verdict::kStale);
  // Hard entry older than the record: only the soft one counts.
  CHECK(hard_then_soft.check(*object("h", "/b", {"t"}), 50) == Verdict::kStale);
}

TEST_CASE("invalidation: a url entry concerns every variant of its key") {
  InvalidationLog log = parsed(0, {url(100, "example.com/a?x=1")});
  auto gzip = object("example.com", "/a?x=1");
  gzip->variant = "gzip";
  auto plain = object("example.com", "/a?x=1");
  plain->variant = "";
  CHECK(log.check(*gzip, 100) == Verdict::kPurged);
  CHECK(log.check(*plain, 100) == Verdict::kPurged);
  CHECK(log.check(*object("example.com", "/a?x=2"), 100) == Verdict::kValid);
  CHECK(log.check(*object("example.com", "/a"), 100) == Verdict::kValid);
}

TEST_CASE("invalidation: a tag entry concerns records carrying the tag") {
  InvalidationLog log = parsed(0, {tag(100, "author-7")});
  CHECK(log.check(*object("h", "/1", {"book-1", "author-7"}), 100) == Verdict::kPurged);
  CHECK(log.check(*object("h", "/2", {"book-2"}), 100) == Verdict::kValid);
  CHECK(log.check(*object("h", "/3"), 100) == Verdict::kValid);
  // The tag is not a key.
  CHECK(log.check(*object("author-7", ""), 100) == Verdict::kValid);
}

TEST_CASE("invalidation: a ban concerns its host's paths by prefix and regex") {
  SUBCASE("every host") {
    InvalidationLog log = parsed(0, {ban(100, "", "/img/", "")});
    CHECK(log.check(*object("a.example", "/img/1.png"), 100) == Verdict::kPurged);
    CHECK(log.check(*object("b.example", "/img/"), 100) == Verdict::kPurged);
    CHECK(log.check(*object("b.example", "/im"), 100) == Verdict::kValid);
    CHECK(log.check(*object("b.example", "/css/img/"), 100) == Verdict::kValid);
  }
  SUBCASE("one host") {
    InvalidationLog log = parsed(0, {ban(100, "a.example", "", "")});
    CHECK(log.check(*object("a.example", "/anything"), 100) == Verdict::kPurged);
    CHECK(log.check(*object("b.example", "/anything"), 100) == Verdict::kValid);
  }
  SUBCASE("prefix then regex") {
    InvalidationLog log = parsed(0, {ban(100, "a.example", "/img/", "\\.png$", true)});
    CHECK(log.check(*object("a.example", "/img/1.png"), 100) == Verdict::kStale);
    CHECK(log.check(*object("a.example", "/img/1.jpg"), 100) == Verdict::kValid);
    CHECK(log.check(*object("a.example", "/css/1.png"), 100) == Verdict::kValid);
    CHECK(log.check(*object("b.example", "/img/1.png"), 100) == Verdict::kValid);
  }
  SUBCASE("regex searches anywhere in the path") {
    InvalidationLog log = parsed(0, {ban(100, "", "", "v=[0-9]+")});
    CHECK(log.check(*object("a.example", "/app.js?v=12"), 100) == Verdict::kPurged);
    CHECK(log.check(*object("a.example", "/app.js?v=x"), 100) == Verdict::kValid);
  }
  SUBCASE("a regex that does not compile matches every path of its host") {
    auto log = InvalidationLog::parse(log_of(0, {ban(100, "a.example", "/img/", "([unclosed")}));
    REQUIRE(log);
    CHECK(log->entries() == 1);
    CHECK(log->check(*object("a.example", "/img/anything"), 100) == Verdict::kPurged);
    CHECK(log->check(*object("a.example", "/"), 100) == Verdict::kPurged);
    CHECK(log->check(*object("a.example", ""), 100) == Verdict::kPurged);
    CHECK(log->check(*object("b.example", "/img/anything"), 100) == Verdict::kValid);
    CHECK(log->check(*object("a.example", "/img/anything"), 101) == Verdict::kValid);
    // It is written back as it was.
    CHECK(log->compacted(1000) == log_of(0, {ban(100, "a.example", "/img/", "([unclosed")}));
  }
  SUBCASE("a regex RE2 refuses (written by hand, or by a node that accepted it) purges its host's older records") {
    for (std::string refused : {"x{4294967296}", "(?=a)b", "(a)\\1", "x{1001}"}) {
      CAPTURE(refused);
      auto log = InvalidationLog::parse(log_of(0, {ban(100, "a.example", "/img/", refused, true)}));
      REQUIRE(log);
      CHECK(log->check(*object("a.example", "/css/x"), 100) == Verdict::kStale);
      CHECK(log->check(*object("a.example", "/css/x"), 101) == Verdict::kValid);
      CHECK(log->check(*object("b.example", "/img/x"), 100) == Verdict::kValid);
    }
  }
  SUBCASE("a catastrophic regex from the log is matched in linear time") {
    InvalidationLog log = parsed(0, {ban(100, "", "", "(a+)+$")});
    CHECK(log.check(*object("a.example", "/" + std::string(5000, 'a') + "!"), 100) == Verdict::kValid);
    CHECK(log.check(*object("a.example", "/" + std::string(5000, 'a')), 100) == Verdict::kPurged);
  }
  SUBCASE("a regex too long to compile safely counts as one that does not compile") {
    std::string deep = std::string(30000, '(') + "a" + std::string(30000, ')');
    auto log = InvalidationLog::parse(log_of(0, {ban(100, "a.example", "/img/", deep)}));
    REQUIRE(log);
    CHECK(log->check(*object("a.example", "/"), 100) == Verdict::kPurged);
    CHECK(log->check(*object("b.example", "/img/a"), 100) == Verdict::kValid);
    std::string long_enough = "^/" + std::string(4000, 'a');
    log = InvalidationLog::parse(log_of(0, {ban(100, "a.example", "", long_enough)}));
    REQUIRE(log);
    CHECK(log->check(*object("a.example", "/" + std::string(4000, 'a')), 100) == Verdict::kPurged);
    CHECK(log->check(*object("a.example", "/b"), 100) == Verdict::kValid);
  }
}

TEST_CASE("invalidation: parse refuses what edge could not have written") {
  const std::string header = invalidation_log_header(10);
  std::vector<std::string> garbage = {
      "",
      "\n",
      "100 url 0 h/a\n",
      "edge-invalidations\n",
      "edge-invalidations 1\n",
      "edge-invalidations 2 10\n",
      "edge-invalidations 1 10 11\n",
      "edge-invalidations 1 -10\n",
      "edge-invalidations 1 +10\n",
      "edge-invalidations 1 1x\n",
      "edge-invalidations 1 99999999999999999999\n",
      "edge-invalidations  1 10\n",
      "edge-invalidations 1 10 \n",
      "edge-invalidations 1 10\r\n",
      "Edge-invalidations 1 10\n",
      header + "\n",
      header + "\n100 url 0 h/a\n",
      header + "100 url 0 h/a\n\n",
      header + "x url 0 h/a\n",
      header + "-1 url 0 h/a\n",
      header + "+1 url 0 h/a\n",
      header + " 1 url 0 h/a\n",
      header + "1e3 url 0 h/a\n",
      header + "99999999999999999999 url 0 h/a\n",
      header + "100 purge 0 h/a\n",
      header + "100 URL 0 h/a\n",
      header + "100 url 2 h/a\n",
      header + "100 url 00 h/a\n",
      header + "100 url - h/a\n",
      header + "100 url 0\n",
      header + "100 url 0 h/a x\n",
      header + "100 url 0 h/a \n",
      header + "100 url  0 h/a\n",
      header + "100 tag 0\n",
      header + "100 tag 0 a b\n",
      header + "100 ban 0 - -\n",
      header + "100 ban 0 - - - -\n",
      header + "100 ban 0 - - - - - - - -\n",
      header + "100 url 0 h/%\n",
      header + "100 url 0 h/%4\n",
      header + "100 url 0 h/%4G\n",
      header + "100 url 0 h/%G4\n",
      header + "100 ban 0 - - %zz\n",
      header + "100 url 0 h/a\r\n",
      header + "100 url 0 h/\ta\n",
      header + "100 url 0 h/\xc3\xa9\n",
      header + "100 url 0 h/\x7f\n",
      header + "100 url 0 h/a\n" + "garbage",
  };
  for (const std::string& text : garbage) CHECK_MESSAGE(!InvalidationLog::parse(text), text);
  // The same logs without the flaw parse.
  CHECK(InvalidationLog::parse(header + "100 url 0 h/a\n"));
  CHECK(InvalidationLog::parse(header + "100 url 0 h/a"));
  CHECK(InvalidationLog::parse(header + "100 ban 0 - - -\n100 tag 1 t\n"));
}

TEST_CASE("invalidation: compaction keeps the newest entries and moves created") {
  std::vector<Invalidation> entries = {url(400, "h/d"), url(100, "h/a"), tag(300, "t"), ban(200, "h", "/b", "")};
  InvalidationLog log = parsed(50, entries);
  std::string line_300 = format_invalidation(tag(300, "t"));
  std::string line_400 = format_invalidation(url(400, "h/d"));

  SUBCASE("everything fits") {
    std::string all = log.compacted(1 << 20);
    CHECK(all == log_of(50, {url(100, "h/a"), ban(200, "h", "/b", ""), tag(300, "t"), url(400, "h/d")}));
    size_t entry_bytes = all.size() - invalidation_log_header(50).size();
    CHECK(log.compacted(entry_bytes) == all);
    CHECK(log.compacted(entry_bytes - 1) != all);
  }
  SUBCASE("the newest two fit exactly") {
    std::string text = log.compacted(line_300.size() + line_400.size());
    CHECK(text == invalidation_log_header(200) + line_300 + line_400);
    auto compacted = InvalidationLog::parse(text);
    REQUIRE(compacted);
    CHECK(compacted->entries() == 2);
    CHECK(compacted->created() == 200);
    // A record the dropped ban purged is still purged, through created.
    CHECK(log.check(*object("h", "/b"), 150) == Verdict::kPurged);
    CHECK(compacted->check(*object("h", "/b"), 150) == Verdict::kPurged);
    CHECK(compacted->check(*object("h", "/b"), 200) == Verdict::kPurged);
    CHECK(compacted->check(*object("h", "/b"), 201) == Verdict::kValid);
    // What the kept entries say is unchanged.
    CHECK(compacted->check(*object("h", "/x", {"t"}), 250) == Verdict::kPurged);
    CHECK(compacted->check(*object("h", "/d"), 400) == Verdict::kPurged);
    CHECK(compacted->check(*object("h", "/d"), 401) == Verdict::kValid);
  }
  SUBCASE("an entry that does not fit stops the kept ones, older small ones are not kept around it") {
    std::string text = log.compacted(line_400.size() + line_300.size() - 1);
    CHECK(text == invalidation_log_header(300) + line_400);
  }
  SUBCASE("nothing fits") {
    CHECK(log.compacted(0) == invalidation_log_header(400));
    CHECK(log.compacted(line_400.size() - 1) == invalidation_log_header(400));
    auto empty = InvalidationLog::parse(log.compacted(0));
    REQUIRE(empty);
    CHECK(empty->entries() == 0);
    CHECK(empty->check(*object("h", "/z"), 399) == Verdict::kPurged);
    CHECK(empty->check(*object("h", "/z"), 401) == Verdict::kValid);
  }
}

TEST_CASE("invalidation: compaction never moves created back") {
  // An entry older than created, appended late by a node whose clock lags.
  InvalidationLog log = parsed(1000, {url(500, "h/a"), url(2000, "h/b")});
  std::string line_2000 = format_invalidation(url(2000, "h/b"));
  CHECK(log.compacted(line_2000.size()) == invalidation_log_header(1000) + line_2000);
}

TEST_CASE("invalidation: entries of the same second stay in their order through compaction") {
  InvalidationLog log = parsed(0, {url(100, "h/b"), url(100, "h/a"), url(99, "h/z")});
  std::string text = log.compacted(1 << 20);
  CHECK(text == log_of(0, {url(99, "h/z"), url(100, "h/b"), url(100, "h/a")}));
  // Dropping one of two entries of a second: records of that second stay purged through created.
  std::string last = format_invalidation(url(100, "h/a"));
  auto compacted = InvalidationLog::parse(log.compacted(last.size()));
  REQUIRE(compacted);
  CHECK(compacted->created() == 100);
  CHECK(compacted->check(*object("h", "/b"), 100) == Verdict::kPurged);
}
