#include "app/query.h"

namespace edge::app {

std::string_view query_of(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  // A fragment never belongs to the query (clients should not send one, but some do).
  return query.substr(0, query.find('#'));
}

std::optional<QueryParams> parse_query(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    if (!item.empty()) {
      size_t eq = item.find('=');
      auto name = percent_decode(item.substr(0, eq), true);
      auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1), true);
      if (!name || !value) return std::nullopt;
      params.emplace_back(std::move(*name), std::move(*value));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return params;
}

std::optional<std::string_view> query_get(const QueryParams& params, std::string_view name) {
  for (const auto& [n, v] : params)
    if (n == name) return std::string_view{v};
  return std::nullopt;
}

std::optional<uint64_t> parse_uint(std::string_view text, uint64_t max) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (value > max) return std::nullopt;
  return value;
}

std::optional<int64_t> parse_int(std::string_view text, int64_t max_magnitude) {
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  auto magnitude = parse_uint(text, static_cast<uint64_t>(max_magnitude < 0 ? 0 : max_magnitude));
  if (!magnitude) return std::nullopt;
  const auto value = static_cast<int64_t>(*magnitude);
  return negative ? -value : value;
}

}  // namespace edge::app
