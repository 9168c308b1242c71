#include "http/mime.h"

#include <doctest/doctest.h>

using edge::http::content_type_for_path;

TEST_CASE("content types by file extension") {
  CHECK(content_type_for_path("/static/site.css") == "text/css; charset=utf-8");
  CHECK(content_type_for_path("/a/B.PNG") == "image/png");
  CHECK(content_type_for_path("app.js?v=3") == "text/javascript; charset=utf-8");
  CHECK(content_type_for_path("/fonts/x.woff2") == "font/woff2");
  CHECK(content_type_for_path("/x.webmanifest") == "application/manifest+json");
  CHECK(content_type_for_path("/zzz.zip") == "application/zip");
  CHECK(content_type_for_path("/avatar.avif") == "image/avif");
}

TEST_CASE("content types: no or unknown extension") {
  CHECK(content_type_for_path("/static/README") == "application/octet-stream");
  CHECK(content_type_for_path("/dir.d/file") == "application/octet-stream");
  CHECK(content_type_for_path("/file.") == "application/octet-stream");
  CHECK(content_type_for_path("/file.unknownext") == "application/octet-stream");
  CHECK(content_type_for_path("/file.averyveryverylongextension") == "application/octet-stream");
  CHECK(content_type_for_path("") == "application/octet-stream");
}
