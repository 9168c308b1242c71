#include "proxy/admin_session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <vector>

namespace edge::proxy::admin {

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool equals_lower(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

std::string digest_of(std::string_view id) {
  unsigned char bytes[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(id.data(), id.size(), bytes, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(bytes), len);
}

}  // namespace

std::optional<std::string_view> cookie_value(const http::Headers& headers, std::string_view name) {
  std::optional<std::string_view> found;
  bool repeated = false;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!equals_lower(headers.name(i), "cookie")) continue;
    std::string_view rest = headers.value(i);
    while (!rest.empty()) {
      const size_t semicolon = rest.find(';');
      std::string_view pair = trim(rest.substr(0, semicolon));
      rest = semicolon == std::string_view::npos ? std::string_view{} : rest.substr(semicolon + 1);
      const size_t equals = pair.find('=');
      if (equals == std::string_view::npos || trim(pair.substr(0, equals)) != name) continue;
      repeated = repeated || found.has_value();
      std::string_view value = trim(pair.substr(equals + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      found = value;
    }
  }
  if (repeated || !found || found->empty()) return std::nullopt;
  return found;
}

std::optional<std::string> form_value(std::string_view body, std::string_view name) {
  std::optional<std::string> found;
  while (!body.empty()) {
    const size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    const size_t equals = pair.find('=');
    std::optional<std::string> key = http::percent_decode(pair.substr(0, equals), true);
    if (!key) return std::nullopt;
    if (*key != name) continue;
    if (found) return std::nullopt;
    found = http::percent_decode(equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1), true);
    if (!found || found->find('\0') != std::string::npos) return std::nullopt;
  }
  return found;
}

const char* cross_origin_refusal(const http::Headers& headers) {
  if (headers.count("Origin") > 1 || headers.count("Sec-Fetch-Site") > 1) return "ambiguous Origin or Sec-Fetch-Site";
  if (std::optional<std::string_view> site = headers.get("Sec-Fetch-Site")) {
    if (!equals_lower(*site, "same-origin") && !equals_lower(*site, "none")) return "a request from another site";
  }
  if (std::optional<std::string_view> origin = headers.get("Origin")) {
    // A page under Referrer-Policy: no-referrer (a privacy extension may impose it) posts with
    // "Origin: null"; the browser's own Sec-Fetch-Site, which no page can set, then says where it
    // came from.
    if (*origin == "null") {
      const std::optional<std::string_view> site = headers.get("Sec-Fetch-Site");
      return site && equals_lower(*site, "same-origin") ? nullptr : "a request from an unknown origin";
    }
    const std::optional<std::string_view> host = headers.get(http::FieldId::kHost);
    // The origin a browser names is scheme://host[:port], as the Host it sent the request to.
    if (!host || host->empty() || *origin != "http://" + std::string(*host)) return "a request from another origin";
  }
  return nullptr;
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) return {};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : raw) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

bool secret_equals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<Sessions::Opened> Sessions::open(int64_t now_ms) {
  Opened opened{random_hex(32), random_hex(16), now_ms + ttl_ms_};
  if (opened.id.empty() || opened.csrf.empty()) return std::nullopt;
  drop_expired(now_ms);
  while (!by_digest_.empty() && by_digest_.size() >= max_) {
    auto oldest = by_digest_.begin();
    for (auto it = by_digest_.begin(); it != by_digest_.end(); ++it)
      if (it->second.order < oldest->second.order) oldest = it;
    by_digest_.erase(oldest);
  }
  by_digest_[digest_of(opened.id)] = Session{opened.csrf, opened.expires_ms, ++opened_};
  return opened;
}

std::optional<std::string> Sessions::csrf_of(std::string_view id, int64_t now_ms) {
  // Looked up by digest: how long the lookup takes says nothing about the ids that are kept.
  auto it = by_digest_.find(digest_of(id));
  if (it == by_digest_.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
    by_digest_.erase(it);
    return std::nullopt;
  }
  return it->second.csrf;
}

bool Sessions::close(std::string_view id) { return by_digest_.erase(digest_of(id)) > 0; }

void Sessions::drop_expired(int64_t now_ms) {
  std::erase_if(by_digest_, [now_ms](const auto& entry) { return entry.second.expires_ms <= now_ms; });
}

}  // namespace edge::proxy::admin
