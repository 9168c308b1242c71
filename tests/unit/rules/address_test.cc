#include "rules/address.h"

#include <doctest/doctest.h>
#include <netinet/in.h>

#include <vector>

using namespace edge;
using rules::IpAddress;

namespace {

IpAddress ip(const char* text) {
  const auto parsed = rules::parse_ip(text);
  REQUIRE_MESSAGE(parsed, text);
  return *parsed;
}

conf::Cidr cidr(const char* address, uint8_t bits) {
  const IpAddress a = ip(address);
  conf::Cidr c;
  c.bytes = a.bytes;
  c.v6 = a.v6;
  c.bits = bits;
  return c;
}

}  // namespace

TEST_CASE("addresses: both families, an IPv4-mapped IPv6 address is the IPv4 one, nothing else is taken") {
  CHECK(rules::ip_text(ip("192.0.2.1")) == "192.0.2.1");
  CHECK(rules::ip_text(ip("2001:DB8::1")) == "2001:db8::1");
  CHECK(ip("::ffff:192.0.2.1") == ip("192.0.2.1"));
  CHECK_FALSE(ip("::ffff:192.0.2.1").v6);
  for (const char* bad : {"", "192.0.2", "192.0.2.1.5", "192.0.2.256", " 192.0.2.1", "192.0.2.1 ", "192.0.2.1:80",
                          "[::1]", "::1%lo", "0x7f.0.0.1", "localhost", "1:2:3:4:5:6:7:8:9",
                          "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.1"}) {
    CAPTURE(bad);
    CHECK_FALSE(rules::parse_ip(bad));
  }
  sockaddr_storage storage{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  in6.sin6_addr.s6_addr[10] = 0xff;
  in6.sin6_addr.s6_addr[11] = 0xff;
  in6.sin6_addr.s6_addr[12] = 10;
  in6.sin6_addr.s6_addr[15] = 7;
  CHECK(rules::from_sockaddr(storage) == ip("10.0.0.7"));
  storage.ss_family = AF_UNIX;
  CHECK_FALSE(rules::from_sockaddr(storage));
}

TEST_CASE("prefixes match their own family, to the bit") {
  CHECK(rules::matches(cidr("10.0.0.0", 8), ip("10.255.1.2")));
  CHECK_FALSE(rules::matches(cidr("10.0.0.0", 8), ip("11.0.0.0")));
  CHECK(rules::matches(cidr("192.168.0.0", 23), ip("192.168.1.255")));
  CHECK_FALSE(rules::matches(cidr("192.168.0.0", 23), ip("192.168.2.0")));
  CHECK(rules::matches(cidr("0.0.0.0", 0), ip("203.0.113.9")));
  CHECK_FALSE(rules::matches(cidr("0.0.0.0", 0), ip("::1")));  // `all` lists both families
  CHECK_FALSE(rules::matches(cidr("::", 0), ip("127.0.0.1")));
  CHECK(rules::matches(cidr("2001:db8::", 32), ip("2001:db8:ffff::1")));
  CHECK_FALSE(rules::matches(cidr("2001:db8::", 33), ip("2001:db8:8000::1")));
  CHECK(rules::matches(cidr("::1", 128), ip("::1")));
  CHECK_FALSE(rules::matches(cidr("::1", 128), ip("::2")));
}

TEST_CASE("an access list: the longest prefix decides; without one, allowed unless the list allows some") {
  conf::AccessList list;
  CHECK(rules::allowed(list, ip("1.2.3.4")));  // not enabled
  list.enabled = true;
  list.deny = {cidr("10.0.0.0", 8)};
  CHECK(rules::allowed(list, ip("1.2.3.4")));
  CHECK_FALSE(rules::allowed(list, ip("10.1.2.3")));
  list.allow = {cidr("10.1.0.0", 16)};
  CHECK(rules::allowed(list, ip("10.1.2.3")));  // the /16 allow beats the /8 deny
  CHECK_FALSE(rules::allowed(list, ip("10.2.0.1")));
  CHECK_FALSE(rules::allowed(list, ip("1.2.3.4")));  // some are allowed: the rest are not
  list.deny.push_back(cidr("10.1.2.3", 32));
  CHECK_FALSE(rules::allowed(list, ip("10.1.2.3")));
  CHECK(rules::allowed(list, ip("10.1.2.4")));
}

TEST_CASE("the real client: X-Forwarded-For read from the right, each trusted hop naming the one before") {
  const std::vector<conf::Cidr> trusted = {cidr("10.0.0.0", 8), cidr("::1", 128)};
  const IpAddress proxy = ip("10.0.0.1");
  auto client = [&](const IpAddress& peer, const char* forwarded) {
    return rules::ip_text(rules::real_client(peer, forwarded, trusted));
  };
  CHECK(client(ip("192.0.2.1"), "198.51.100.7") == "192.0.2.1");  // not trusted: its claim is ignored
  CHECK(client(proxy, "198.51.100.7") == "198.51.100.7");
  CHECK(client(proxy, "6.6.6.6, 198.51.100.7, 10.0.0.2") == "198.51.100.7");
  CHECK(client(proxy, " 198.51.100.7 ,\t10.0.0.2 ") == "198.51.100.7");
  CHECK(client(ip("::1"), "2001:db8::7") == "2001:db8::7");
  CHECK(client(proxy, "") == "10.0.0.1");
  CHECK(client(proxy, "10.0.0.9, 10.0.0.8") == "10.0.0.9");  // every hop trusted: the leftmost
  CHECK(client(proxy, "198.51.100.7, unknown") == "10.0.0.1");  // garbage ends the walk at its writer
  CHECK(client(proxy, "198.51.100.7, 10.0.0.2, ") == "10.0.0.1");
  CHECK(client(proxy, "198.51.100.7,, 10.0.0.2") == "10.0.0.2");
  CHECK(client(proxy, "[2001:db8::7]") == "10.0.0.1");
  CHECK(client(proxy, "198.51.100.7:443") == "10.0.0.1");
}
