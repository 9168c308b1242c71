// A fresh EC P-256 key and a self-signed certificate, made in memory for one test: nothing
// secret is ever committed. By default for test.example, valid from a minute ago for a day.
#pragma once

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>

namespace edge::testing {

struct Credentials {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;

  // `alt_names`: the subjectAltName value ("DNS:a.example,DNS:*.a.example"), "" for none.
  // Validity in seconds from now.
  explicit Credentials(const std::string& common_name = "test.example",
                       const std::string& alt_names = "DNS:test.example", long valid_from = -60,
                       long valid_until = 24 * 3600) {
    key = EVP_EC_gen("P-256");
    REQUIRE(key != nullptr);
    cert = X509_new();
    REQUIRE(cert != nullptr);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), valid_from);
    X509_gmtime_adj(X509_getm_notAfter(cert), valid_until);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (!alt_names.empty()) {
      X509V3_CTX context;
      X509V3_set_ctx_nodb(&context);
      X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
      X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, alt_names.c_str());
      REQUIRE(extension != nullptr);
      X509_add_ext(cert, extension, -1);
      X509_EXTENSION_free(extension);
    }
    REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  }
  ~Credentials() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;

  // Writes the certificate to `cert_path` and the key to `key_path`, in PEM.
  void write(const std::string& cert_path, const std::string& key_path) const {
    FILE* out = std::fopen(cert_path.c_str(), "w");
    REQUIRE(out != nullptr);
    REQUIRE(PEM_write_X509(out, cert) == 1);
    std::fclose(out);
    out = std::fopen(key_path.c_str(), "w");
    REQUIRE(out != nullptr);
    REQUIRE(PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
    std::fclose(out);
  }
};

}  // namespace edge::testing
