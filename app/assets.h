// app/assets: the demo site's static files, generated from their names.
//
// /static/<name>.css, .js and .png are made up on the fly: the same name always gives the same
// bytes (in this build: the PNG goes through zlib), different names give different content, and
// sizes are those of real small assets (a few KB). Each comes with the validators a cache needs: a
// strong ETag hashed from the content and a fixed Last-Modified date.
//
// Pure functions; results own their bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace edge::app {

struct Asset {
  std::string_view content_type;  // static storage: "text/css", "application/javascript", "image/png"
  std::string body;
  std::string etag;  // quoted strong validator, e.g. "\"3f2a9c0d11e4b5a6\""
};

// Every asset's Last-Modified (the generator does not change, so neither do they).
inline constexpr std::string_view kAssetLastModified = "Mon, 01 Jan 2024 00:00:00 GMT";
inline constexpr std::string_view kAssetCacheControl = "public, max-age=3600";

// 64-bit FNV-1a.
uint64_t fnv1a64(std::string_view bytes);

// `name` is the path after "/static/", e.g. "site.css" or "img/logo.png": segments of
// [A-Za-z0-9._-] separated by '/', none empty, "." or "..", at most 200 bytes, ending in a
// non-empty stem and one of .css, .js, .png. Anything else: nullopt (the caller answers 404).
std::optional<Asset> make_asset(std::string_view name);

// A valid PNG (8-bit RGB, no interlace) of the given size whose pixels derive from `seed`.
// Returns "" only if zlib fails. Sizes are limited to 1..1024 (else "").
std::string make_png(uint32_t width, uint32_t height, uint64_t seed);

// make_asset, remembered: generating a stylesheet costs far more than serving it, and a benchmark
// through the edge with its cache off should measure the edge, not this generator. Holds at most
// `max_entries` assets (a few KB each) and forgets them all when full. One loop thread only.
class AssetCache {
 public:
  explicit AssetCache(size_t max_entries = 1024) : max_entries_(max_entries) {}
  // The asset for `name`, or null when make_asset has none. Borrowed until the next get().
  const Asset* get(std::string_view name);
  size_t size() const { return assets_.size(); }

 private:
  size_t max_entries_;
  std::unordered_map<std::string, Asset> assets_;
};

}  // namespace edge::app
