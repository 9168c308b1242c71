// cache/ban_regex: see ban_regex.h.
#include "cache/ban_regex.h"

#include <re2/re2.h>

#include <algorithm>
#include <optional>

#include "http/ascii.h"

namespace edge::cache {
namespace {

// A counted repetition starting at text[i] ('{'): "{n}", "{n,}" or "{n,m}". Returns the largest
// count, or nullopt when the braces are not one (then RE2 reads them as literal text). A count
// too long to hold in an int is returned as kMaxBanRepeat + 1.
std::optional<int> repetition_count(std::string_view text, size_t i) {
  int largest = -1;
  size_t j = i + 1;
  for (int part = 0; part < 2; ++part) {
    size_t start = j;
    int value = 0;
    while (j < text.size() && http::is_ascii_digit(text[j])) {
      value = j - start < 5 ? value * 10 + (text[j] - '0') : kMaxBanRepeat + 1;
      ++j;
    }
    if (j == start && part == 0) return std::nullopt;  // "{" without a first count
    if (j > start) largest = std::max(largest, value);
    if (j >= text.size()) return std::nullopt;
    if (text[j] == '}') return largest;
    if (text[j] != ',' || part == 1) return std::nullopt;
    ++j;
  }
  return std::nullopt;
}

// The first counted repetition over kMaxBanRepeat outside character classes and \Q...\E, or "".
std::string_view oversized_repetition(std::string_view text) {
  bool in_class = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      if (i + 1 < text.size() && text[i + 1] == 'Q' && !in_class) {
        size_t end = text.find("\\E", i + 2);
        if (end == std::string_view::npos) return {};
        i = end + 1;
      } else {
        ++i;  // the escaped byte
      }
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < text.size() && text[i + 1] == ':') {
        size_t end = text.find(":]", i + 2);
        if (end != std::string_view::npos) i = end + 1;
      } else if (c == ']') {
        in_class = false;
      }
      continue;
    }
    if (c == '[') {
      in_class = true;
      // A ']' first in the class (after an optional '^') is a member, not its end.
      if (i + 1 < text.size() && text[i + 1] == '^') ++i;
      if (i + 1 < text.size() && text[i + 1] == ']') ++i;
      continue;
    }
    if (c != '{') continue;
    std::optional<int> count = repetition_count(text, i);
    if (count && *count > kMaxBanRepeat) return text.substr(i, text.find('}', i) - i + 1);
  }
  return {};
}

}  // namespace

std::shared_ptr<const BanRegex> BanRegex::compile(std::string_view text, std::string& error) {
  if (text.size() > kMaxBanRegex) {
    error = "regex longer than " + std::to_string(kMaxBanRegex) + " bytes";
    return nullptr;
  }
  if (std::string_view count = oversized_repetition(text); !count.empty()) {
    error = "invalid regex: repetition count over " + std::to_string(kMaxBanRepeat) + ": " + std::string(count);
    return nullptr;
  }
  RE2::Options options;
  options.set_log_errors(false);  // RE2 would print the pattern, unescaped, on stderr
  options.set_max_mem(kBanRegexMemory);
  options.set_encoding(RE2::Options::EncodingLatin1);
  auto re = std::make_unique<RE2>(re2::StringPiece(text.data(), text.size()), options);
  if (!re->ok()) {
    error = "invalid regex: " + re->error();
    return nullptr;
  }
  return std::shared_ptr<const BanRegex>(new BanRegex(std::string(text), std::move(re)));
}

BanRegex::BanRegex(std::string text, std::unique_ptr<re2::RE2> re)
    : text_(std::move(text)), re_(std::move(re)), program_size_(static_cast<size_t>(re_->ProgramSize())) {}

BanRegex::~BanRegex() = default;

bool BanRegex::matches(std::string_view path) const {
  // Checked as a division: path.size() * program_size_ cannot overflow it.
  if (program_size_ > 0 && path.size() > kMaxBanMatchSteps / program_size_) return true;
  return RE2::PartialMatch(re2::StringPiece(path.data(), path.size()), *re_);
}

}  // namespace edge::cache
