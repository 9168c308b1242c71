// proxy/version: what this build of edge is, for `edge --version` and the start line.
#pragma once

#include <string>

namespace edge::proxy {

// "0.1.0", the project's version.
const char* version();
// Several lines: the version, then the build options (build type, sanitizers) and the
// libraries it was built against (OpenSSL, libuv), each "name: value", ending in a newline.
std::string version_text();

}  // namespace edge::proxy
