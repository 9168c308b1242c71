// http/mime: the Content-Type a file's name implies, for bodies that arrive without one (values
// other tools wrote to memcached, files loaded by `edge assets`).
#pragma once

#include <string_view>

namespace edge::http {

// By the extension of the last path segment, case-insensitive ("/a/b.CSS" -> text/css). Text
// types carry "; charset=utf-8". Unknown or no extension: "application/octet-stream". The
// result has static storage.
std::string_view content_type_for_path(std::string_view path);

}  // namespace edge::http
