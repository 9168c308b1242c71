// http/ascii: the ASCII character tests and case folding HTTP's grammar is written in, independent
// of the locale (header names, the URI's host and port, dates).
#pragma once

namespace edge::http {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace edge::http
