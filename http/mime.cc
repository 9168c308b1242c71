#include "http/mime.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace edge::http {

namespace {
struct Type {
  std::string_view extension;
  std::string_view type;
};

// Sorted by extension: looked up by binary search.
constexpr std::array kTypes{
    Type{"avif", "image/avif"},
    Type{"bmp", "image/bmp"},
    Type{"css", "text/css; charset=utf-8"},
    Type{"csv", "text/csv; charset=utf-8"},
    Type{"gif", "image/gif"},
    Type{"gz", "application/gzip"},
    Type{"htm", "text/html; charset=utf-8"},
    Type{"html", "text/html; charset=utf-8"},
    Type{"ico", "image/x-icon"},
    Type{"jpeg", "image/jpeg"},
    Type{"jpg", "image/jpeg"},
    Type{"js", "text/javascript; charset=utf-8"},
    Type{"json", "application/json"},
    Type{"map", "application/json"},
    Type{"md", "text/markdown; charset=utf-8"},
    Type{"mjs", "text/javascript; charset=utf-8"},
    Type{"mp3", "audio/mpeg"},
    Type{"mp4", "video/mp4"},
    Type{"otf", "font/otf"},
    Type{"pdf", "application/pdf"},
    Type{"png", "image/png"},
    Type{"svg", "image/svg+xml"},
    Type{"ttf", "font/ttf"},
    Type{"txt", "text/plain; charset=utf-8"},
    Type{"wasm", "application/wasm"},
    Type{"webm", "video/webm"},
    Type{"webmanifest", "application/manifest+json"},
    Type{"webp", "image/webp"},
    Type{"woff", "font/woff"},
    Type{"woff2", "font/woff2"},
    Type{"xml", "application/xml"},
    Type{"zip", "application/zip"},
};
constexpr std::string_view kDefault = "application/octet-stream";
}  // namespace

std::string_view content_type_for_path(std::string_view path) {
  path = path.substr(0, path.find_first_of("?#"));
  const size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size() || name.size() - dot - 1 > 16) return kDefault;
  char lower[16];
  const std::string_view extension = name.substr(dot + 1);
  for (size_t i = 0; i < extension.size(); ++i)
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(extension[i])));
  const std::string_view key(lower, extension.size());
  auto it = std::lower_bound(kTypes.begin(), kTypes.end(), key,
                             [](const Type& t, std::string_view k) { return t.extension < k; });
  return it != kTypes.end() && it->extension == key ? it->type : kDefault;
}

}  // namespace edge::http
