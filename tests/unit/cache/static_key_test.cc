#include "cache/static_key.h"

#include <doctest/doctest.h>

using edge::cache::expand_static_key;

TEST_CASE("static keys from the route's template") {
  CHECK(expand_static_key("{host}{path}", "example.com", "/static/a.css?v=2") == "example.com/static/a.css");
  CHECK(expand_static_key("{path}", "h", "/x%20y.png") == "/x%20y.png");
  CHECK(expand_static_key("site:{host}:{path}?{query}", "h", "/a?b=1&c") == "site:h:/a?b=1&c");
  CHECK(expand_static_key("{path}{query}", "h", "/a") == "/a");
  CHECK(expand_static_key("static", "h", "/a") == "static");
  CHECK(expand_static_key("", "h", "/a").empty());
}
