// http/uri: the one reading of a request's identity — the authority it names (Host, or an
// absolute-form target's) and its target — that routing, the cache key, the upstream head and
// the logs all use. What does not parse cleanly is refused (400), never guessed at.
//
// Pure functions over borrowed views; outputs are written into caller-owned strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace edge::http {

struct RequestHead;

// An authority as a client may name it (RFC 3986 3.2 with RFC 9110 4.2's limits): a reg-name of
// letters, digits, '-', '.', '_' and '~' (no percent-encoding, no sub-delims such as ',' or
// ';'), an IPv4 address, or an IPv6 literal in brackets; then optionally ':' and 1-5 digits up
// to 65535. No userinfo, no list, no white space, at most 255 bytes of host.
// Writes the canonical host into `out`: lower case, without the port and without a trailing dot
// ("Example.COM.:8080" -> "example.com", "[::1]:80" -> "[::1]"). The port is checked, then
// dropped: it is in neither the cache key nor the Host sent upstream (docs/architecture.md).
bool canonical_host(std::string_view authority, std::string& out);

enum class TargetForm { kOrigin, kAbsolute, kAsterisk };

struct RequestTarget {
  TargetForm form = TargetForm::kOrigin;
  std::string_view authority;   // kAbsolute: as written (to be read by canonical_host)
  std::string_view path_query;  // kOrigin and kAbsolute ("" for "http://h"); kAsterisk: "*"
};

// Splits a request-target (RFC 9112 3.2): origin-form "/p?q"; absolute-form with scheme http
// (and https when `https_allowed`), no userinfo; asterisk-form only for OPTIONS. Authority-form
// (CONNECT's) is not a reverse proxy's business. A '#' anywhere is refused. nullopt: 400.
std::optional<RequestTarget> split_request_target(std::string_view method, std::string_view target,
                                                  bool https_allowed);

// The canonical origin-form target: the path with percent-encoding normalised (unreserved
// characters decoded, other triplets' hex upper-cased), dot segments removed, "" -> "/"; the
// query as received. False for a '%' not followed by two hex digits, or a path not starting
// with '/'. "*" stays "*".
bool canonical_target(std::string_view path_query, std::string& out);

// A parsed request's identity, read once for every reader: `host` is canonical, from an
// absolute-form target's authority (which wins over Host, RFC 9112 3.2.2) or from Host, and ""
// for an HTTP/1.0 request with neither; `target` is canonical, in origin form. False (400): a
// Host missing in HTTP/1.1 or given twice, or a Host, target or authority that does not parse.
bool read_request_identity(const RequestHead& head, std::string& host, std::string& target);

// RFC 3986 6.2.2.2 over any text: unreserved characters decoded, other triplets' hex digits
// upper-cased, and a '%' that does not start a triplet encoded as "%25" (so decoding never
// assembles a new triplet and a second pass gives the same string).
std::string normalise_percent(std::string_view in);
// RFC 3986 5.2.4.
std::string remove_dot_segments(std::string_view in);

}  // namespace edge::http
