#include "proxy/compression.h"

#include "compress/codec.h"

namespace edge::proxy {

std::shared_ptr<cache::CachedObject> with_encodings(const cache::CachedObject& object, const compress::Rules& rules) {
  if (object.attachment || object.partial() || !object.body || !object.body->complete()) return nullptr;
  const http::SharedBody& body = *object.body;
  if (body.size() > kCompressWhenStoredMax || !compress::compressible(rules, object.status, object.headers, body.size()))
    return nullptr;
  const std::string identity = body.to_string();
  std::vector<cache::CachedObject::Encoded> encodings;
  for (compress::Coding coding : rules.codings) {
    if (object.encoded(coding)) continue;
    std::optional<std::string> encoded =
        compress::encode_all(coding, rules.level[static_cast<size_t>(coding)], identity);
    // A body that does not shrink is sent as it is: the coding would only cost the client.
    if (!encoded || encoded->size() >= identity.size()) continue;
    encodings.push_back({coding, http::SharedBody::from(*encoded)});
  }
  if (encodings.empty()) return nullptr;
  std::shared_ptr<cache::CachedObject> copy = cache::copy_of(object);
  copy->encodings.insert(copy->encodings.end(), encodings.begin(), encodings.end());
  return copy;
}

}  // namespace edge::proxy
