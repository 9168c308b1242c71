#include "rules/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace edge::rules {

std::optional<IpAddress> parse_ip(std::string_view text) {
  // inet_pton wants a C string; no address is longer than an IPv6 one with an IPv4 tail.
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  IpAddress out;
  if (inet_pton(AF_INET, buffer, out.bytes.data()) == 1) return out;
  if (inet_pton(AF_INET6, buffer, out.bytes.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(out.bytes.data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(out.bytes.data(), out.bytes.data() + 12, 4);
    std::fill(out.bytes.begin() + 4, out.bytes.end(), 0);
    return out;
  }
  out.v6 = true;
  return out;
}

std::string ip_text(const IpAddress& address) {
  char buffer[INET6_ADDRSTRLEN];
  if (!inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), buffer, sizeof buffer)) return {};
  return buffer;
}

std::optional<IpAddress> from_sockaddr(const sockaddr_storage& address) {
  IpAddress out;
  if (address.ss_family == AF_INET) {
    std::memcpy(out.bytes.data(), &reinterpret_cast<const sockaddr_in&>(address).sin_addr, 4);
    return out;
  }
  if (address.ss_family != AF_INET6) return std::nullopt;
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(&in6, kMapped, sizeof kMapped) == 0) {
    std::memcpy(out.bytes.data(), reinterpret_cast<const uint8_t*>(&in6) + 12, 4);
    return out;
  }
  std::memcpy(out.bytes.data(), &in6, 16);
  out.v6 = true;
  return out;
}

bool matches(const conf::Cidr& prefix, const IpAddress& address) {
  if (prefix.v6 != address.v6) return false;
  const size_t whole = prefix.bits / 8;
  if (std::memcmp(prefix.bytes.data(), address.bytes.data(), whole) != 0) return false;
  const unsigned rest = prefix.bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[whole] & mask) == prefix.bytes[whole];
}

bool matches_any(std::span<const conf::Cidr> prefixes, const IpAddress& address) {
  return std::any_of(prefixes.begin(), prefixes.end(), [&](const conf::Cidr& p) { return matches(p, address); });
}

namespace {
// The most bits of a prefix in `list` naming `address`; -1: none does.
int longest_match(std::span<const conf::Cidr> list, const IpAddress& address) {
  int best = -1;
  for (const conf::Cidr& prefix : list)
    if (prefix.bits > best && matches(prefix, address)) best = prefix.bits;
  return best;
}
}  // namespace

bool allowed(const conf::AccessList& list, const IpAddress& address) {
  if (!list.enabled) return true;
  const int allow = longest_match(list.allow, address);
  const int deny = longest_match(list.deny, address);
  if (allow < 0 && deny < 0) return list.allow.empty();
  return allow > deny;  // the loader refuses a prefix in both lists, so they never tie
}

IpAddress real_client(const IpAddress& peer, std::string_view forwarded_for, std::span<const conf::Cidr> trusted) {
  IpAddress client = peer;
  while (matches_any(trusted, client)) {
    // The member the trusted hop `client` wrote: the last one left.
    const size_t comma = forwarded_for.rfind(',');
    std::string_view member = comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
    forwarded_for = comma == std::string_view::npos ? std::string_view() : forwarded_for.substr(0, comma);
    while (!member.empty() && (member.front() == ' ' || member.front() == '\t')) member.remove_prefix(1);
    while (!member.empty() && (member.back() == ' ' || member.back() == '\t')) member.remove_suffix(1);
    if (member.empty() && forwarded_for.empty()) break;  // no member left: the hop is the client
    const std::optional<IpAddress> named = parse_ip(member);
    if (!named) break;
    client = *named;
  }
  return client;
}

}  // namespace edge::rules
