#include "cache/static_key.h"

namespace edge::cache {

std::string expand_static_key(std::string_view key_template, std::string_view host, std::string_view target) {
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  std::string key;
  key.reserve(key_template.size() + host.size() + target.size());
  size_t i = 0;
  while (i < key_template.size()) {
    const size_t open = key_template.find('{', i);
    const size_t close = open == std::string_view::npos ? open : key_template.find('}', open);
    if (close == std::string_view::npos) {
      key.append(key_template.substr(i));
      break;
    }
    key.append(key_template.substr(i, open - i));
    const std::string_view name = key_template.substr(open + 1, close - open - 1);
    if (name == "host")
      key.append(host);
    else if (name == "path")
      key.append(path);
    else if (name == "query")
      key.append(query);
    else
      key.append(key_template.substr(open, close - open + 1));
    i = close + 1;
  }
  return key;
}

}  // namespace edge::cache
