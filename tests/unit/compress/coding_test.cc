// compress/coding: Accept-Encoding negotiation (RFC 9110 12.5.3) and which responses are compressed.
#include "compress/coding.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace edge;
using compress::Coding;

namespace {

const std::vector<Coding> kAll = {Coding::kBr, Coding::kZstd, Coding::kGzip};

Coding choose(std::vector<std::string> accept_encoding, const std::vector<Coding>& offered = kAll) {
  http::Headers headers;
  for (const std::string& value : accept_encoding) headers.add("Accept-Encoding", value);
  return compress::choose_coding(headers, offered);
}

http::Headers fields(std::vector<std::pair<std::string, std::string>> list) {
  http::Headers headers;
  for (const auto& [name, value] : list) headers.add(name, value);
  return headers;
}

}  // namespace

TEST_CASE("parse_coding: the three codings, x-gzip, identity; case-insensitive; nothing else") {
  CHECK(compress::parse_coding("br") == Coding::kBr);
  CHECK(compress::parse_coding("BR") == Coding::kBr);
  CHECK(compress::parse_coding("zstd") == Coding::kZstd);
  CHECK(compress::parse_coding("gzip") == Coding::kGzip);
  CHECK(compress::parse_coding("x-gzip") == Coding::kGzip);  // RFC 9110 8.4.1.3
  CHECK(compress::parse_coding("Identity") == Coding::kIdentity);
  for (const char* other : {"deflate", "compress", "x-compress", "gzip2", "", "*", "br ", "b r"})
    CHECK(compress::parse_coding(other) == std::nullopt);
  CHECK(compress::coding_name(Coding::kBr) == "br");
  CHECK(compress::coding_name(Coding::kIdentity) == "identity");
}

TEST_CASE("choose_coding: RFC 9110 12.5.3, no field or an empty one means identity") {
  CHECK(choose({}) == Coding::kIdentity);
  CHECK(choose({""}) == Coding::kIdentity);
  CHECK(choose({" , ,"}) == Coding::kIdentity);
  CHECK(choose({"identity"}) == Coding::kIdentity);
  CHECK(choose({"deflate"}) == Coding::kIdentity);
}

TEST_CASE("choose_coding: the server's order breaks ties, weights decide otherwise") {
  CHECK(choose({"gzip, deflate, br, zstd"}) == Coding::kBr);  // a browser's list
  CHECK(choose({"gzip, deflate, br"}) == Coding::kBr);
  CHECK(choose({"gzip, deflate"}) == Coding::kGzip);
  CHECK(choose({"gzip;q=1.0, br;q=0.5"}) == Coding::kGzip);
  CHECK(choose({"br;q=0.5, zstd;q=0.501"}) == Coding::kZstd);
  CHECK(choose({"br;q=0.8, gzip;q=0.8"}) == Coding::kBr);
  CHECK(choose({"gzip", "br"}) == Coding::kBr);  // two field lines are one list
  CHECK(choose({"GZIP"}) == Coding::kGzip);
  CHECK(choose({"x-gzip"}) == Coding::kGzip);
  CHECK(choose({"gzip, br"}, {Coding::kGzip, Coding::kBr}) == Coding::kGzip);  // the server prefers gzip
  CHECK(choose({"br"}, {Coding::kGzip}) == Coding::kIdentity);                 // br not offered
}

TEST_CASE("choose_coding: RFC 9110 12.5.3, q=0 refuses, * covers what is not listed") {
  CHECK(choose({"br;q=0, gzip"}) == Coding::kGzip);
  CHECK(choose({"br;q=0, gzip;q=0"}) == Coding::kIdentity);
  CHECK(choose({"*"}) == Coding::kBr);
  CHECK(choose({"*;q=0.5, br;q=0"}) == Coding::kZstd);
  CHECK(choose({"*;q=0"}) == Coding::kIdentity);  // nothing acceptable: identity all the same
  CHECK(choose({"identity;q=0"}) == Coding::kIdentity);
  CHECK(choose({"gzip;q=0.3, identity;q=0.5"}) == Coding::kIdentity);  // identity listed higher
  CHECK(choose({"gzip;q=0.5, identity;q=0.5"}) == Coding::kGzip);
  CHECK(choose({"gzip;q=0.1"}) == Coding::kGzip);  // an unlisted identity is the last resort
}

TEST_CASE("choose_coding: hostile and malformed members count for nothing") {
  CHECK(choose({"br;q=2"}) == Coding::kIdentity);
  CHECK(choose({"br;q=1.5"}) == Coding::kIdentity);
  CHECK(choose({"br;q=0.1234"}) == Coding::kIdentity);
  CHECK(choose({"br;q=-1"}) == Coding::kIdentity);
  CHECK(choose({"br;q="}) == Coding::kIdentity);
  CHECK(choose({"br;q=.5"}) == Coding::kIdentity);
  CHECK(choose({"br;level=1"}) == Coding::kIdentity);
  CHECK(choose({"br;q=0.5;q=0.1, gzip;q=0.2"}) == Coding::kGzip);  // the lower weight stands
  CHECK(choose({"br, br;q=0"}) == Coding::kIdentity);
  CHECK(choose({"br, br;q=0, gzip"}) == Coding::kGzip);  // listed twice: the lower weight
  CHECK(choose({"b\"r\", gzip"}) == Coding::kGzip);
  CHECK(choose({"br ;q=0.9 , gzip ; q=1"}) == Coding::kGzip);  // white space around ';' and ','
  CHECK(choose({"br;Q=1"}) == Coding::kBr);
  CHECK(choose({std::string(10000, ',') + "gzip"}) == Coding::kGzip);
  CHECK(choose({"gzip;q=1.000"}) == Coding::kGzip);
  CHECK(choose({"gzip;q=1.001"}) == Coding::kIdentity);
}

TEST_CASE("type_listed: media type without parameters, case-insensitive, type/* wildcards") {
  const std::vector<std::string> types = {"text/html", "application/json", "image/*"};
  CHECK(compress::type_listed(types, "text/html"));
  CHECK(compress::type_listed(types, "Text/HTML; charset=utf-8"));
  CHECK(compress::type_listed(types, " application/json "));
  CHECK(compress::type_listed(types, "image/svg+xml"));
  CHECK_FALSE(compress::type_listed(types, "text/css"));
  CHECK_FALSE(compress::type_listed(types, "text/htmlx"));
  CHECK_FALSE(compress::type_listed(types, "text/"));
  CHECK_FALSE(compress::type_listed(types, "image"));
  CHECK_FALSE(compress::type_listed(types, "/html"));
  CHECK_FALSE(compress::type_listed(types, ""));
}

TEST_CASE("compressible: type, length, status, Content-Encoding, Content-Range and no-transform") {
  const compress::Rules rules;
  const http::Headers html = fields({{"Content-Type", "text/html; charset=utf-8"}});
  CHECK(compress::compressible(rules, 200, html, 1000));
  CHECK(compress::compressible(rules, 200, html, std::nullopt));  // streamed: length unknown
  CHECK(compress::compressible(rules, 404, html, 1000));
  CHECK_FALSE(compress::compressible(rules, 200, html, 255));  // below min_length
  CHECK_FALSE(compress::compressible(rules, 206, html, 1000));
  CHECK_FALSE(compress::compressible(rules, 304, html, 1000));
  CHECK_FALSE(compress::compressible(rules, 301, html, 1000));
  CHECK_FALSE(compress::compressible(rules, 200, fields({{"Content-Type", "image/png"}}), 1000));
  CHECK_FALSE(compress::compressible(rules, 200, fields({}), 1000));
  CHECK_FALSE(compress::compressible(rules, 200, fields({{"Content-Type", "text/html"}, {"Content-Type", "text/css"}}), 1000));
  CHECK_FALSE(compress::compressible(rules, 200, fields({{"Content-Type", "text/html"}, {"Content-Encoding", "gzip"}}), 1000));
  CHECK(compress::compressible(rules, 200, fields({{"Content-Type", "text/html"}, {"Content-Encoding", "identity"}}), 1000));
  CHECK_FALSE(compress::compressible(rules, 200, fields({{"Content-Type", "text/html"}, {"Content-Range", "bytes 0-9/10"}}), 1000));
  // RFC 9110 7.7: no-transform forbids changing the content's coding.
  CHECK_FALSE(compress::compressible(
      rules, 200, fields({{"Content-Type", "text/html"}, {"Cache-Control", "max-age=60, No-Transform"}}), 1000));
  compress::Rules off;
  off.enabled = false;
  CHECK_FALSE(compress::compressible(off, 200, html, 1000));
  compress::Rules none;
  none.codings.clear();
  CHECK_FALSE(compress::compressible(none, 200, html, 1000));
}
