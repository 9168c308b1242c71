#include "proxy/version.h"

#include <openssl/opensslv.h>
#include <uv.h>

namespace edge::proxy {

const char* version() { return EDGE_VERSION; }

std::string version_text() {
  std::string text = "edge " EDGE_VERSION "\n";
  text += "build type: " EDGE_BUILD_TYPE "\n";
  text += "sanitizers: " EDGE_SANITIZERS "\n";
  // The headers compiled against; the libraries loaded at run time may be newer.
  text += "openssl: " OPENSSL_VERSION_TEXT "\n";
  text += "libuv: " + std::to_string(UV_VERSION_MAJOR) + "." + std::to_string(UV_VERSION_MINOR) + "." +
          std::to_string(UV_VERSION_PATCH) + UV_VERSION_SUFFIX + "\n";
  return text;
}

}  // namespace edge::proxy
