// tls/context: the OpenSSL contexts a TLS listener serves with, built once from the
// configuration and shared by every worker (an SSL_CTX is safe to use from many threads once
// built; nothing here changes after build()).
//
// - One SSL_CTX per certificate. A connection starts on the default certificate's context; the
//   client's SNI name switches it, during the handshake, to the context of the certificate that
//   name belongs to: exact names first, then the longest `*.domain` that matches (any depth of
//   subdomain, as host matching does), else the default.
// - TLS 1.2 and 1.3 (the configured minimum), ECDHE with AEAD ciphers only for 1.2 unless
//   configured, no renegotiation, no compression, buffers released while a connection is idle.
// - ALPN: the configured protocols in order; a client offering none of them gets no ALPN (as
//   with nginx), not a failed handshake.
// - Resumption: session tickets encrypted with TicketKeys, one ring for the whole process, so a
//   ticket issued on one worker (or for one listener) is taken on any other. Keys rotate every
//   `ticket_rotation`; the previous key still decrypts (its tickets are renewed on use).
//
// Errors are the configuration's: `file:line:col: message` at the `cert` or `key` value, with
// OpenSSL's reason. An expired or not yet valid certificate is a warning, not an error.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace edge::tls {

// Session ticket keys shared by every context of the process. Thread-safe.
class TicketKeys {
 public:
  explicit TicketKeys(std::chrono::milliseconds rotation);

  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aes;
    std::array<unsigned char, 32> hmac;
  };
  // The key new tickets are encrypted with (rotated first if its time is up).
  Key current();
  // The key a ticket named `name` was encrypted with, and whether it is the current one; false
  // when no key of that name is kept (the ticket is ignored: a full handshake follows).
  bool find(const unsigned char* name, Key* key, bool* is_current);

 private:
  void rotate_if_due();  // with mutex_ held
  static Key fresh_key();

  std::mutex mutex_;
  std::chrono::steady_clock::duration rotation_;
  std::chrono::steady_clock::time_point current_since_;
  Key current_;
  Key previous_;
  bool has_previous_ = false;
};

class ServerContext {
 public:
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // The contexts of one `tls:` entry; null with `errors` filled when anything is wrong.
  // `keys` (borrowed, outlives the context) must be non-null when session tickets are on.
  static std::unique_ptr<ServerContext> build(const conf::ListenTls& config, TicketKeys* keys,
                                              std::vector<conf::Error>& errors,
                                              std::vector<conf::Error>& warnings);

  // A server-side SSL for a new connection, on the default certificate's context; null only
  // when OpenSSL cannot allocate.
  SSL* new_ssl() const;

  // The certificate file whose context serves `server_name` (tests, logs).
  const std::string& certificate_for(std::string_view server_name) const;

 private:
  struct Certificate {
    SSL_CTX* ctx = nullptr;
    std::string file;
  };
  struct Name {
    std::string name;  // exact, or the domain of a `*.domain` (without "*.")
    size_t certificate;
  };

  ServerContext() = default;
  const Certificate& certificate_of(std::string_view server_name) const;
  static int on_server_name(SSL* ssl, int* alert, void* arg) noexcept;
  static int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_length,
                     const unsigned char* in, unsigned in_length, void* arg) noexcept;

  std::vector<Certificate> certificates_;
  size_t default_ = 0;
  std::vector<Name> exact_;     // sorted by name
  std::vector<Name> wildcard_;  // longest domain first
  std::string alpn_wire_;       // the configured protocols, length-prefixed
};

// The client side, towards one backend's servers: TLS 1.2 or later, ALPN http/1.1, the server's
// certificate verified against `ca_file` (or the system's trust store) and the configured name
// (or the server's address), unless `verify: off`. Sessions are resumed: each caller keeps the
// last session a server gave (SessionSlot), offered again on its next connection.
class ClientContext {
 public:
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // Null with `errors` filled when the CA file cannot be read.
  static std::unique_ptr<ClientContext> build(const conf::BackendTls& config, std::vector<conf::Error>& errors);

  // Where the sessions one server hands out are kept: one per server and worker, used on that
  // worker's loop only. The slot must outlive every SSL made for it.
  class SessionSlot {
   public:
    SessionSlot() = default;
    ~SessionSlot();
    SessionSlot(const SessionSlot&) = delete;
    SessionSlot& operator=(const SessionSlot&) = delete;

   private:
    friend class ClientContext;
    SSL_SESSION* session_ = nullptr;
  };

  // A client-side SSL for a connection to `address` (the server's numeric host), offering the
  // slot's session; null only when OpenSSL cannot allocate.
  SSL* new_ssl(const std::string& address, SessionSlot* slot) const;

 private:
  ClientContext() = default;
  static int on_new_session(SSL* ssl, SSL_SESSION* session) noexcept;

  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
  std::string server_name_;
};

// Every TLS context the configuration names, built once at start: the listeners' (in
// Config::listen order, null for a plain one) with the ticket keys they share (rotated at the
// shortest ticket_rotation of them), and the backends' (in Config::backends order, null without
// tls).
struct Contexts {
  std::unique_ptr<TicketKeys> ticket_keys;
  std::vector<std::unique_ptr<ServerContext>> by_listener;
  std::vector<std::unique_ptr<ClientContext>> by_backend;
  // Listener contexts replaced by a reload of the certificates: a handshake begun on one may
  // still call into it, so they live until the process ends (a few KB per reload).
  std::vector<std::unique_ptr<ServerContext>> retired;
};
// Every certificate and CA file read and checked; `errors` non-empty means nothing may start.
Contexts build_contexts(const conf::Config& config, std::vector<conf::Error>& errors,
                        std::vector<conf::Error>& warnings);

}  // namespace edge::tls
