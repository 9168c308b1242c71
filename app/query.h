// app/query: the query string of a request target, decoded into ordered name/value pairs, and the
// strict number parsing that the app's endpoints use for their parameters.
//
// Pure functions over borrowed views; results own their strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace edge::app {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

using http::percent_decode;

// The query part of a request target: everything after the first '?' ("" when none).
std::string_view query_of(std::string_view target);

// Splits "a=1&b=x%20y&flag" into {{"a","1"},{"b","x y"},{"flag",""}}, in order, duplicates kept,
// empty items ("a=1&&b=2") skipped. Names and values are percent-decoded, '+' is a space.
// Returns nullopt when any escape is malformed.
std::optional<QueryParams> parse_query(std::string_view query);

// The value of the first parameter with this name (exact, case-sensitive), or nullopt.
std::optional<std::string_view> query_get(const QueryParams& params, std::string_view name);

// A decimal unsigned integer with no sign, no spaces and no leading '+', at most `max`.
// Returns nullopt for "", "-1", "12a", " 1", overflow, or a value above `max`.
std::optional<uint64_t> parse_uint(std::string_view text, uint64_t max = UINT64_MAX);

// The same with an optional leading '-': a value from -max_magnitude to max_magnitude.
std::optional<int64_t> parse_int(std::string_view text, int64_t max_magnitude = INT64_MAX);

}  // namespace edge::app
