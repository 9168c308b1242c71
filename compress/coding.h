// compress/coding: content codings (RFC 9110 8.4.1) edge produces and decodes, the choice among
// them a request's Accept-Encoding makes (RFC 9110 12.5.3), and which responses a route
// compresses.
//
// Pure functions of heads and settings; no state, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace edge::compress {

enum class Coding : uint8_t { kIdentity, kBr, kZstd, kGzip };
inline constexpr int kCodings = 4;  // including identity: arrays indexed by Coding

// The coding's token in Content-Encoding ("identity" for kIdentity).
std::string_view coding_name(Coding coding);
// A coding named in Accept-Encoding or Content-Encoding (case-insensitive; "x-gzip" is gzip,
// RFC 9110 8.4.1.3); nullopt for any other (deflate, compress, unknown tokens).
std::optional<Coding> parse_coding(std::string_view token);

// The coding to send a response in, among `offered` (in the server's order of preference), by
// the request's Accept-Encoding fields (RFC 9110 12.5.3):
//   - no Accept-Encoding field: identity (any coding would be allowed, but clients that send
//     none are scripts and tools that would not decode it; nginx and Varnish do the same);
//   - each member is a coding with an optional weight (q=0..1, three decimals at most); a
//     member that does not parse is ignored; a coding listed twice counts with its lower weight;
//   - `*` gives its weight to every coding not listed; a weight of 0 refuses a coding;
//   - the offered coding with the highest weight wins, ties going to the earlier offered one;
//     identity wins only when listed with a higher weight than every acceptable coding;
//   - when nothing offered is acceptable, identity (also when `identity;q=0` refuses it: an
//     uncoded answer is better than a 406 for a response edge did not have to transform).
Coding choose_coding(const http::Headers& request, std::span<const Coding> offered);

// How a host or route compresses (conf: the `compress` key). Levels are each library's own scale.
struct Rules {
  bool enabled = true;
  // Media types (lower case, "type/subtype" or "type/*") whose responses are compressed.
  std::vector<std::string> types = {"text/html",          "text/css",           "text/plain",
                                    "text/xml",           "text/javascript",    "application/javascript",
                                    "application/json",   "application/xml",    "application/rss+xml",
                                    "application/atom+xml", "application/manifest+json", "image/svg+xml"};
  uint64_t min_length = 256;  // shorter bodies (when their length is known) are sent as they are
  std::vector<Coding> codings = {Coding::kBr, Coding::kZstd, Coding::kGzip};  // preference order
  // Stored objects are compressed once, so their level favours size; responses compressed as
  // they stream (passed, assembled, or stored before their encodings exist) use stream_level,
  // which favours CPU: on a 20 KB page br 1 costs about half of gzip 6 for 9% more bytes, while
  // br 4 costs as much as gzip 6 (bench/results/compress.md).
  int level[kCodings] = {0, 9, 12, 9};
  int stream_level[kCodings] = {0, 1, 3, 1};
};

// The lowest and highest level each library takes.
inline constexpr int kMinLevel[kCodings] = {0, 0, 1, 1};
inline constexpr int kMaxLevel[kCodings] = {0, 11, 19, 9};

// Whether a response with these fields is one the rules compress: a listed Content-Type, no
// Content-Encoding (or only identity), no Content-Range, no `no-transform` (RFC 9110 7.7), and a
// known length of at least min_length. `status`: only 200 and 203 (a representation of the target
// itself) are compressed, and error pages (4xx, 5xx) when they carry a listed type.
bool compressible(const Rules& rules, int status, const http::Headers& response, std::optional<uint64_t> length);

// Whether Cache-Control says no-transform (RFC 9110 7.7): no coding may be applied or undone.
bool no_transform(const http::Headers& response);

// The coding a backend applied, when edge can undo it: one Content-Encoding field naming one of
// br, zstd or gzip (x-gzip). nullopt for none, identity, a list, or a coding edge does not know.
std::optional<Coding> applied_coding(const http::Headers& response);

// The fields with Accept-Encoding taken out of every Vary (a Vary left empty goes): a response
// whose codings edge negotiates itself, fetched without the client's Accept-Encoding.
http::Headers without_vary_accept_encoding(const http::Headers& response);

// Whether a Content-Type value names one of `types` (its parameters ignored, case-insensitive).
bool type_listed(std::span<const std::string> types, std::string_view content_type);

}  // namespace edge::compress
