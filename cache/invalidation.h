// cache/invalidation: the purges and bans that every edge node sharing a memcached pool must
// honour on records it reads back from memcached, kept as one text log in memcached.
//
// Why a log: a purge by tag or a ban concerns records nobody can enumerate (memcached has no scan,
// and other nodes stored some of them). So each one is appended to the log with the time it was
// made, and a record read from memcached is checked against the entries made at or after the
// time it was stored. A hard entry makes the record a miss, a soft one makes it stale (served
// within grace or stale-while-revalidate while a fresh copy is fetched).
//
// Format: text lines, fields separated by one space, every field but the first two
// percent-encoded (%XX for '%', space, control characters and bytes >= 0x80), so a field never
// holds a space or a line break:
//
//   edge-invalidations 1 <created>            the header, always the first line
//   <at> url <soft> <cache key>               every variant of the key
//   <at> tag <soft> <tag>                     every record carrying the tag
//   <at> ban <soft> <host> <prefix> <regex>   records of host ("-": every host) whose path starts
//                                             with prefix and matches regex ("-": none; a literal
//                                             "-" is written %2D)
//
// <at> and <created> are Unix seconds; <soft> is 0 or 1. Entries are appended in any order (two
// nodes append concurrently); the reader sorts them.
//
// <created> is when the log's memory begins: a record stored before it (or in that second) may
// predate entries that are no longer in the log (the log was lost, or compacted), so it counts
// as purged. Compaction drops the oldest entries and moves <created> to the newest one dropped,
// which keeps that rule true.
//
// Time: entries are compared with records' stored_at, both from the wall clocks of the nodes
// that made them, in whole seconds. A record stored in the same second as an entry counts as
// made before it (purged), so a purge never misses a record; nodes must keep their clocks in
// step (NTP), as the time an entry holds is the purging node's.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/ban_regex.h"
#include "cache/policy.h"
#include "cache/store.h"

namespace edge::cache {

struct Invalidation {
  enum class Kind { kUrl, kTag, kBan };
  Kind kind = Kind::kUrl;
  Seconds at = 0;
  bool soft = false;
  std::string key;     // kUrl: the cache key (cache_key(host, target)); kTag: the tag
  std::string host;    // kBan: lower case, no port; "" every host
  std::string prefix;  // kBan: "" any path
  std::string regex;   // kBan: RE2 syntax (cache/ban_regex.h), "" none
};

// The log's first line, with its line break.
std::string invalidation_log_header(Seconds created);
// One entry as a line, with its line break, ready to append.
std::string format_invalidation(const Invalidation& entry);

class InvalidationLog {
 public:
  enum class Verdict { kValid, kStale, kPurged };

  // The log in `text`, or nullopt when it is not one: no valid header, or a line that does not
  // parse (a log is written only by edge; a broken one is not trusted). An empty last line (the
  // text ends with a line break) is fine. A ban whose regex BanRegex::compile refuses (a log
  // written by hand, or by a node that accepted what this one does not) is kept and matches
  // every path of its host, prefix or not, for the records stored before it: what cannot be
  // judged is taken as purged, so nothing purged can come back (the price is misses). Never
  // throws.
  static std::optional<InvalidationLog> parse(std::string_view text);

  // What the log says about `object`, stored at `stored_at`: kPurged when it was stored at or
  // before created() or a hard entry at or after stored_at matches it, else kStale when a soft one does,
  // else kValid. Matching: url by object.key; tag by object.tags; ban by object.host (unless the
  // ban's host is "") and object.path (prefix, then BanRegex::matches). Cost: the entries at or
  // after stored_at only, each linear in the path.
  Verdict check(const CachedObject& object, Seconds stored_at) const;

  Seconds created() const { return created_; }
  size_t entries() const { return entries_.size(); }

  // The log as text again, keeping only the newest entries whose lines fit in `max_bytes` (the
  // header not counted); created is moved to the `at` of the newest entry dropped when any is.
  std::string compacted(size_t max_bytes) const;

 private:
  struct Entry {
    Invalidation invalidation;
    std::shared_ptr<const BanRegex> regex;  // compiled kBan regex; null when none or refused
    bool bad_regex = false;                 // a regex was given and refused
  };
  Seconds created_ = 0;
  std::vector<Entry> entries_;  // by `at`, oldest first (stable for equal times)
};

}  // namespace edge::cache
