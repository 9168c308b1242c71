// The listener's contexts built from certificate files made by the test: which certificate a
// server name gets (exact names, the longest wildcard, names given over names found, the
// default), the warnings for certificates out of their validity, and the errors placed at their
// configuration lines.
#include "tls/context.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/unit/tls/test_credentials.h"

using edge::testing::Credentials;
using namespace edge;

namespace {

struct Files {
  std::string dir;
  Files() {
    char path[] = "/tmp/edge-tls-context-XXXXXX";
    REQUIRE(::mkdtemp(path) != nullptr);
    dir = path;
  }
  ~Files() { std::filesystem::remove_all(dir); }
  // A certificate written as DIR/NAME.pem and DIR/NAME.key, as a configuration entry.
  conf::TlsCertificate add(const std::string& name, const Credentials& credentials,
                           std::vector<std::string> names = {}, bool is_default = false) const {
    conf::TlsCertificate entry;
    entry.cert_file = dir + "/" + name + ".pem";
    entry.key_file = dir + "/" + name + ".key";
    credentials.write(entry.cert_file, entry.key_file);
    entry.names = std::move(names);
    entry.is_default = is_default;
    entry.mark = {"test.yaml", 1, 1};
    entry.cert_mark = {"test.yaml", 2, 3};
    entry.key_mark = {"test.yaml", 2, 20};
    return entry;
  }
};

}  // namespace

TEST_CASE("tls context: a server name gets its exact certificate, else the longest wildcard, else the default") {
  Files files;
  Credentials first("first.example", "DNS:first.example");
  Credentials shop("shop.example", "DNS:shop.example,DNS:*.shop.example");
  Credentials deep("eu.shop.example", "DNS:*.eu.shop.example");
  Credentials named("whatever", "DNS:ignored.example");
  conf::ListenTls config;
  config.enabled = true;
  config.certificates = {files.add("first", first), files.add("shop", shop), files.add("deep", deep),
                         files.add("named", named, {"given.example", "shop.example"})};
  config.certificates[0].is_default = true;
  std::vector<conf::Error> errors;
  std::vector<conf::Error> warnings;
  tls::TicketKeys keys(std::chrono::hours(1));
  auto context = tls::ServerContext::build(config, &keys, errors, warnings);
  REQUIRE(errors.empty());
  REQUIRE(context);
  CHECK(warnings.empty());
  const std::string dir = files.dir + "/";
  CHECK(context->certificate_for("first.example") == dir + "first.pem");
  CHECK(context->certificate_for("www.shop.example") == dir + "shop.pem");
  CHECK(context->certificate_for("a.b.shop.example") == dir + "shop.pem");
  CHECK(context->certificate_for("x.eu.shop.example") == dir + "deep.pem");  // the longer wildcard
  CHECK(context->certificate_for("eu.shop.example") == dir + "shop.pem");   // *.eu.… is not eu.… itself
  CHECK(context->certificate_for("given.example") == dir + "named.pem");
  CHECK(context->certificate_for("shop.example") == dir + "named.pem");  // given beats found
  CHECK(context->certificate_for("ignored.example") == dir + "first.pem");  // named: only its given names
  CHECK(context->certificate_for("other.example") == dir + "first.pem");
  CHECK(context->certificate_for("") == dir + "first.pem");
  CHECK(context->certificate_for("hop.example") == dir + "first.pem");
}

TEST_CASE("tls context: an expired or not yet valid certificate is a warning; a bad cipher list an error") {
  Files files;
  Credentials expired("old.example", "DNS:old.example", -3 * 86400, -86400);
  Credentials early("new.example", "DNS:new.example", 86400, 2 * 86400);
  conf::ListenTls config;
  config.enabled = true;
  config.certificates = {files.add("old", expired, {}, true), files.add("new", early)};
  std::vector<conf::Error> errors;
  std::vector<conf::Error> warnings;
  tls::TicketKeys keys(std::chrono::hours(1));
  REQUIRE(tls::ServerContext::build(config, &keys, errors, warnings));
  CHECK(errors.empty());
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0].text().rfind("test.yaml:2:3: certificate '" + files.dir + "/old.pem' expired on ", 0) == 0);
  CHECK(warnings[1].text().rfind("test.yaml:2:3: certificate '" + files.dir + "/new.pem' is not valid before ", 0) == 0);

  config.ciphers = "NOT-A-CIPHER";
  config.ciphers_mark = {"test.yaml", 7, 16};
  errors.clear();
  warnings.clear();
  CHECK_FALSE(tls::ServerContext::build(config, &keys, errors, warnings));
  REQUIRE_FALSE(errors.empty());
  CHECK(errors[0].text().rfind("test.yaml:7:16: bad ciphers 'NOT-A-CIPHER': ", 0) == 0);
}

TEST_CASE("tls context: a backend's CA file that is missing or not PEM is an error at its line") {
  Files files;
  conf::BackendTls config;
  config.enabled = true;
  config.ca_file = files.dir + "/missing.pem";
  config.ca_mark = {"test.yaml", 9, 14};
  std::vector<conf::Error> errors;
  CHECK_FALSE(tls::ClientContext::build(config, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].text() == "test.yaml:9:14: cannot read CA file '" + config.ca_file + "': No such file or directory");
  const std::string junk = files.dir + "/junk.pem";
  FILE* out = std::fopen(junk.c_str(), "w");
  std::fputs("junk\n", out);
  std::fclose(out);
  config.ca_file = junk;
  errors.clear();
  CHECK_FALSE(tls::ClientContext::build(config, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].text().rfind("test.yaml:9:14: cannot load CA file '" + junk + "': ", 0) == 0);
  config.verify = false;
  errors.clear();
  CHECK(tls::ClientContext::build(config, errors));  // nothing to verify: the file is not read
}

TEST_CASE("tls context: the ticket key ring finds the key a ticket names, and no other") {
  // A rotation under a second is kept as given (it was once cut to zero seconds, which turned
  // the ring over on every handshake so no ticket could ever be taken back).
  tls::TicketKeys keys(std::chrono::milliseconds(500));
  const tls::TicketKeys::Key current = keys.current();
  tls::TicketKeys::Key found;
  bool is_current = false;
  // Current, or previous if a rotation came between: either way it still decrypts.
  REQUIRE(keys.find(current.name.data(), &found, &is_current));
  CHECK(found.aes == current.aes);
  CHECK(found.hmac == current.hmac);
  unsigned char unknown[16] = {};
  CHECK_FALSE(keys.find(unknown, &found, &is_current));
}
