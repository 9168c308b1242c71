// cache/ban_regex: the regular expression of a ban (RE2 syntax), compiled once and matched
// against cache key paths in time linear in the path, whatever the pattern.
//
// Why RE2: a backtracking engine (std::regex, PCRE) takes exponential time on patterns such as
// (a+)+$, and a ban is matched on worker loops at lookup and under stripe locks by the sweep.
// RE2 runs an automaton: no pattern can make it backtrack.
//
// Refused (compile() says why, for the admin port's 400): a text longer than kMaxBanRegex, a
// syntax error or a construct RE2 does not have (backreferences, lookaround), a counted
// repetition over kMaxBanRepeat (RE2 refuses {1001} itself but reads {4294967296} as literal
// text: that is refused here, as an operator who wrote it meant a repetition), and a pattern
// whose compiled program does not fit kBanRegexMemory.
//
// Semantics: a search anywhere in the path (RE2::PartialMatch, as std::regex_search did); the
// path is taken byte by byte (Latin-1), '.' does not match a line break, ^ and $ are the
// path's ends.
//
// Cost: RE2's worst case is (path bytes) x (program instructions) steps, reached by counted
// repetitions such as a{1000}b on a long run of 'a' (about 100 ms for an 8 KiB path). So
// matches() does not run a match whose worst case is over kMaxBanMatchSteps (a few ms): it
// counts it as a match. The object is then banned whether or not the pattern matches it,
// which costs one refetch and never serves what the operator meant to remove. With an ordinary
// pattern (tens of instructions) that needs a path of tens of KiB, longer than a request line.
//
// Threads: a compiled BanRegex is immutable and may be matched from any thread at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace edge::cache {

inline constexpr size_t kMaxBanRegex = 4096;          // bytes of pattern text
inline constexpr int kMaxBanRepeat = 1000;            // as RE2's own limit
inline constexpr int64_t kBanRegexMemory = 64 << 10;  // RE2 max_mem: programs up to ~5,000 instructions
inline constexpr size_t kMaxBanMatchSteps = 1 << 18;  // path bytes x program instructions

class BanRegex {
 public:
  // The compiled pattern, or null with `error` saying why ("regex longer than 4096 bytes",
  // "invalid regex: missing ): (unclosed", ...). Never logs.
  static std::shared_ptr<const BanRegex> compile(std::string_view text, std::string& error);

  ~BanRegex();
  BanRegex(const BanRegex&) = delete;
  BanRegex& operator=(const BanRegex&) = delete;

  const std::string& text() const { return text_; }
  // Whether the pattern occurs in `path`; true without matching when the match could cost more
  // than kMaxBanMatchSteps (see Cost above).
  bool matches(std::string_view path) const;

 private:
  BanRegex(std::string text, std::unique_ptr<re2::RE2> re);
  std::string text_;
  std::unique_ptr<re2::RE2> re_;
  size_t program_size_;
};

}  // namespace edge::cache
