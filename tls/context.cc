#include "tls/context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

namespace edge::tls {

namespace {

// Mozilla's "intermediate" choice for TLS 1.2: forward secrecy and AEAD only.
constexpr char kDefaultCiphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// OpenSSL's queued reasons, oldest first, and the queue emptied.
std::string openssl_reason() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    const char* library = ERR_lib_error_string(code);
    const char* reason = ERR_reason_error_string(code);
    if (!out.empty()) out += "; ";
    if (library) out += std::string(library) + ": ";
    out += reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int ticket_keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_ticket_key(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                  int encrypt) noexcept {
  auto* keys = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_keys_index()));
  if (!keys) return 0;
  TicketKeys::Key key;
  int result = 1;
  if (encrypt) {
    key = keys->current();
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) return -1;
  } else {
    bool is_current = false;
    if (!keys->find(key_name, &key, &is_current)) return 0;  // unknown key: a full handshake
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) return -1;
    result = is_current ? 1 : 2;  // 2: valid, but issue a ticket under the current key
  }
  char digest[] = "sha256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return result;
}

// The DNS names a certificate is for: its subjectAltName entries, else its subject's CN.
std::vector<std::string> names_of(X509* certificate) {
  std::vector<std::string> names;
  auto* alt_names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alt_names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                         static_cast<size_t>(ASN1_STRING_length(dns)));
    }
    GENERAL_NAMES_free(alt_names);
  }
  if (names.empty()) {
    char common_name[256];
    const int length = X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, common_name,
                                                 sizeof common_name);
    if (length > 0) names.emplace_back(common_name, static_cast<size_t>(length));
  }
  for (std::string& name : names)
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return names;
}

std::string time_text(const ASN1_TIME* time) {
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, time);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(length));
  BIO_free(bio);
  return text;
}

// Fails with a clear reason when `path` cannot be opened, before OpenSSL's less direct one.
bool readable(const std::string& path, const conf::Mark& mark, std::string_view what, std::vector<conf::Error>& errors) {
  std::ifstream file(path);
  if (file) return true;
  errors.push_back({mark, "cannot read " + std::string(what) + " '" + path + "': " + std::strerror(errno)});
  return false;
}

}  // namespace

// ---- TicketKeys ----

TicketKeys::TicketKeys(std::chrono::milliseconds rotation)
    : rotation_(rotation), current_since_(std::chrono::steady_clock::now()), current_(fresh_key()) {}

TicketKeys::Key TicketKeys::fresh_key() {
  Key key;
  // Without randomness there is no safe ticket: that is not a state to run in.
  if (RAND_bytes(key.name.data(), key.name.size()) != 1 || RAND_bytes(key.aes.data(), key.aes.size()) != 1 ||
      RAND_bytes(key.hmac.data(), key.hmac.size()) != 1)
    std::abort();
  return key;
}

void TicketKeys::rotate_if_due() {
  const auto now = std::chrono::steady_clock::now();
  if (now - current_since_ < rotation_) return;
  // Two periods or more without a handshake: the old current key is too old to keep.
  has_previous_ = now - current_since_ < 2 * rotation_;
  previous_ = current_;
  current_ = fresh_key();
  current_since_ = now;
}

TicketKeys::Key TicketKeys::current() {
  std::lock_guard lock(mutex_);
  rotate_if_due();
  return current_;
}

bool TicketKeys::find(const unsigned char* name, Key* key, bool* is_current) {
  std::lock_guard lock(mutex_);
  rotate_if_due();
  if (std::memcmp(name, current_.name.data(), current_.name.size()) == 0) {
    *key = current_;
    *is_current = true;
    return true;
  }
  if (has_previous_ && std::memcmp(name, previous_.name.data(), previous_.name.size()) == 0) {
    *key = previous_;
    *is_current = false;
    return true;
  }
  return false;
}

// ---- ServerContext ----

ServerContext::~ServerContext() {
  for (Certificate& certificate : certificates_) SSL_CTX_free(certificate.ctx);
}

std::unique_ptr<ServerContext> ServerContext::build(const conf::ListenTls& config, TicketKeys* keys,
                                                    std::vector<conf::Error>& errors,
                                                    std::vector<conf::Error>& warnings) {
  std::unique_ptr<ServerContext> context(new ServerContext);
  for (const std::string& protocol : config.alpn) {
    context->alpn_wire_ += static_cast<char>(protocol.size());
    context->alpn_wire_ += protocol;
  }
  const size_t errors_before = errors.size();
  std::vector<std::pair<std::string, size_t>> automatic_names;  // from the certificates, taken last
  for (const conf::TlsCertificate& entry : config.certificates) {
    ERR_clear_error();
    if (!readable(entry.cert_file, entry.cert_mark, "certificate", errors) |
        !readable(entry.key_file, entry.key_mark, "key", errors))
      continue;
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
      errors.push_back({entry.mark, "cannot create a TLS context: " + openssl_reason()});
      continue;
    }
    const size_t index = context->certificates_.size();
    context->certificates_.push_back({ctx, entry.cert_file});
    if (entry.is_default) context->default_ = index;
    if (SSL_CTX_use_certificate_chain_file(ctx, entry.cert_file.c_str()) != 1) {
      errors.push_back({entry.cert_mark, "cannot load certificate '" + entry.cert_file + "': " + openssl_reason()});
      continue;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, entry.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      // OpenSSL checks the pair while loading: say which mistake it is in the file's terms.
      const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
      errors.push_back({entry.key_mark, (mismatch ? "key '" + entry.key_file + "' does not match certificate '" +
                                                        entry.cert_file + "': "
                                                  : "cannot load key '" + entry.key_file + "': ") +
                                            openssl_reason()});
      continue;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      errors.push_back({entry.key_mark, "key '" + entry.key_file + "' does not match certificate '" +
                                            entry.cert_file + "': " + openssl_reason()});
      continue;
    }
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
      warnings.push_back({entry.cert_mark, "certificate '" + entry.cert_file + "' expired on " +
                                               time_text(X509_get0_notAfter(leaf))});
    } else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
      warnings.push_back({entry.cert_mark, "certificate '" + entry.cert_file + "' is not valid before " +
                                               time_text(X509_get0_notBefore(leaf))});
    }
    const int min_version = config.min_version == conf::TlsVersion::k1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min_version);
    const std::string& ciphers = config.ciphers.empty() ? std::string(kDefaultCiphers) : config.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
      errors.push_back({config.ciphers.empty() ? entry.mark : config.ciphers_mark,
                        "bad ciphers '" + ciphers + "': " + openssl_reason()});
      continue;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // Idle keep-alive connections then hold no record buffers: thousands of them cost little.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, context.get());
    SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::on_alpn, context.get());
    if (config.session_tickets) {
      SSL_CTX_set_ex_data(ctx, ticket_keys_index(), keys);
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &on_ticket_key);
      // Tickets carry the state: no per-process session cache to lock on every handshake.
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    } else {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      static const unsigned char kSessionContext[] = "edge";
      SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    }
    for (const std::string& name : entry.names) context->exact_.push_back({name, index});
    if (entry.names.empty())
      for (std::string& name : names_of(leaf)) automatic_names.emplace_back(std::move(name), index);
  }
  if (errors.size() != errors_before) return nullptr;

  // A name given explicitly wins over the same name found in another certificate; among
  // automatic names, the first certificate listed wins.
  auto taken = [&](const std::string& name) {
    return std::any_of(context->exact_.begin(), context->exact_.end(),
                       [&](const Name& known) { return known.name == name; });
  };
  std::vector<Name> automatic;
  for (auto& entry : automatic_names) {
    std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture one
    if (taken(name) || std::any_of(automatic.begin(), automatic.end(), [&](const Name& n) { return n.name == name; }))
      continue;
    automatic.push_back({std::move(name), entry.second});
  }
  context->exact_.insert(context->exact_.end(), automatic.begin(), automatic.end());
  std::vector<Name> exact;
  for (Name& name : context->exact_) {
    if (name.name.starts_with("*.")) {
      context->wildcard_.push_back({name.name.substr(2), name.certificate});
    } else {
      exact.push_back(std::move(name));
    }
  }
  context->exact_ = std::move(exact);
  std::sort(context->exact_.begin(), context->exact_.end(), [](const Name& a, const Name& b) { return a.name < b.name; });
  std::stable_sort(context->wildcard_.begin(), context->wildcard_.end(),
                   [](const Name& a, const Name& b) { return a.name.size() > b.name.size(); });
  return context;
}

SSL* ServerContext::new_ssl() const { return SSL_new(certificates_[default_].ctx); }

const ServerContext::Certificate& ServerContext::certificate_of(std::string_view server_name) const {
  auto exact = std::lower_bound(exact_.begin(), exact_.end(), server_name,
                                [](const Name& name, std::string_view wanted) { return name.name < wanted; });
  if (exact != exact_.end() && exact->name == server_name) return certificates_[exact->certificate];
  for (const Name& wildcard : wildcard_) {
    // `*.domain` is any name ending in ".domain", not domain itself.
    if (server_name.size() > wildcard.name.size() + 1 && server_name.ends_with(wildcard.name) &&
        server_name[server_name.size() - wildcard.name.size() - 1] == '.')
      return certificates_[wildcard.certificate];
  }
  return certificates_[default_];
}

const std::string& ServerContext::certificate_for(std::string_view server_name) const {
  return certificate_of(server_name).file;
}

int ServerContext::on_server_name(SSL* ssl, int*, void* arg) noexcept {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  // SNI names are case-insensitive; a name too long for a host is nobody's.
  char lowered[256];
  const size_t length = std::strlen(name);
  if (length >= sizeof lowered) return SSL_TLSEXT_ERR_OK;
  for (size_t i = 0; i <= length; ++i) lowered[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  const auto* self = static_cast<const ServerContext*>(arg);
  SSL_CTX* wanted = self->certificate_of(std::string_view(lowered, length)).ctx;
  if (wanted != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, wanted);
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                           unsigned in_length, void* arg) noexcept {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  const auto* wire = reinterpret_cast<const unsigned char*>(self->alpn_wire_.data());
  // Server preference: the first of our protocols the client offers.
  if (SSL_select_next_proto(&selected, out_length, wire, static_cast<unsigned>(self->alpn_wire_.size()), in,
                            in_length) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// ---- ClientContext ----

namespace {
int session_slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
}  // namespace

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

ClientContext::SessionSlot::~SessionSlot() { SSL_SESSION_free(session_); }

std::unique_ptr<ClientContext> ClientContext::build(const conf::BackendTls& config, std::vector<conf::Error>& errors) {
  std::unique_ptr<ClientContext> context(new ClientContext);
  ERR_clear_error();
  context->ctx_ = SSL_CTX_new(TLS_client_method());
  if (!context->ctx_) {
    errors.push_back({config.mark, "cannot create a TLS context: " + openssl_reason()});
    return nullptr;
  }
  SSL_CTX* ctx = context->ctx_;
  context->verify_ = config.verify;
  context->server_name_ = config.server_name;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
  if (config.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!config.ca_file.empty()) {
      if (!readable(config.ca_file, config.ca_mark, "CA file", errors)) return nullptr;
      if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
        errors.push_back({config.ca_mark, "cannot load CA file '" + config.ca_file + "': " + openssl_reason()});
        return nullptr;
      }
    } else {
      SSL_CTX_set_default_verify_paths(ctx);
    }
  }
  // Sessions go to the connection's slot, not to a cache of the context's shared by threads.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &ClientContext::on_new_session);
  return context;
}

SSL* ClientContext::new_ssl(const std::string& address, SessionSlot* slot) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  if (!server_name_.empty()) {
    SSL_set_tlsext_host_name(ssl, server_name_.c_str());
    if (verify_) SSL_set1_host(ssl, server_name_.c_str());
  } else if (verify_) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address.c_str());
  }
  SSL_set_ex_data(ssl, session_slot_index(), slot);
  if (slot && slot->session_) {
    // Offered as a copy too: a connection freed without close_notify spoils the session it used.
    if (SSL_SESSION* offered = SSL_SESSION_dup(slot->session_)) {
      SSL_set_session(ssl, offered);
      SSL_SESSION_free(offered);
    }
  }
  return ssl;
}

int ClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) noexcept {
  auto* slot = static_cast<SessionSlot*>(SSL_get_ex_data(ssl, session_slot_index()));
  if (!slot) return 0;
  // A copy: OpenSSL marks the connection's own session unusable when the connection is freed
  // without a close_notify, which is how a pooled connection usually ends.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (!copy) return 0;
  SSL_SESSION_free(slot->session_);
  slot->session_ = copy;
  return 0;  // the connection's session stays OpenSSL's
}

// ---- every context ----

Contexts build_contexts(const conf::Config& config, std::vector<conf::Error>& errors,
                        std::vector<conf::Error>& warnings) {
  Contexts out;
  std::optional<conf::Duration> rotation;
  for (const conf::Listen& listen : config.listen)
    if (listen.tls.enabled && listen.tls.session_tickets)
      rotation = std::min(rotation.value_or(listen.tls.ticket_rotation), listen.tls.ticket_rotation);
  if (rotation)
    out.ticket_keys = std::make_unique<TicketKeys>(*rotation);
  for (const conf::Listen& listen : config.listen) {
    out.by_listener.push_back(listen.tls.enabled
                                  ? ServerContext::build(listen.tls, out.ticket_keys.get(), errors, warnings)
                                  : nullptr);
  }
  for (const conf::Backend& backend : config.backends)
    out.by_backend.push_back(backend.tls.enabled ? ClientContext::build(backend.tls, errors) : nullptr);
  return out;
}

}  // namespace edge::tls
