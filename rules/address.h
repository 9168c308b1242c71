// rules/address: client addresses as the rules see them, and the prefixes that match them.
//
// A client address is read from the connection's peer (or, behind a trusted proxy, from
// X-Forwarded-For) into an IpAddress: 4 bytes for IPv4, 16 for IPv6; an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is the IPv4 address, so one client has one form whatever the socket.
// A conf::Cidr matches an address of its own family only.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace edge::rules {

struct IpAddress {
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  bool v6 = false;
  size_t size() const { return v6 ? 16 : 4; }
  bool operator==(const IpAddress&) const = default;
};

// A numeric address without port or brackets ("192.0.2.1", "2001:db8::1"); nullopt otherwise.
std::optional<IpAddress> parse_ip(std::string_view text);
std::string ip_text(const IpAddress& address);
// A socket's address (AF_INET or AF_INET6; the port is left); nullopt for another family.
std::optional<IpAddress> from_sockaddr(const sockaddr_storage& address);

bool matches(const conf::Cidr& prefix, const IpAddress& address);
bool matches_any(std::span<const conf::Cidr> prefixes, const IpAddress& address);

// The access list's answer for `address`: the longest prefix naming it decides; with none, the
// address is allowed unless the list allows some prefixes (then only those are).
bool allowed(const conf::AccessList& list, const IpAddress& address);

// The client behind `peer`: `peer` itself unless it is one of `trusted`; then X-Forwarded-For
// (`forwarded_for`, every field's members in order, joined by commas) is read from the right, each
// trusted hop naming the one before it, and the first address not trusted is the client. A member
// that is not an address ends the walk at the hop that wrote it; when every member is trusted the
// leftmost is the client.
IpAddress real_client(const IpAddress& peer, std::string_view forwarded_for, std::span<const conf::Cidr> trusted);

}  // namespace edge::rules
