// SPDX-License-Identifier: Apache-2.0
// The TLS listener's OpenSSL contexts: built by the master from server.tls (the key files are
// read there, before the workers give up root) and inherited by the workers through fork, with
// one SSL per accepted connection made from them.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace photon::mod::tls {

/// Session-ticket keys (name, HMAC and AES secrets as OpenSSL's default ticket callback uses
/// them): made once by the master and carried across reloads, so every worker of every
/// generation decrypts every ticket.
constexpr size_t kTicketKeyBytes = 80;

class ServerTls {
public:
    /// Builds one SSL_CTX per set of names (RSA and ECDSA certificates for the same names share
    /// one), the first certificate's being the default. Errors name the file and OpenSSL's
    /// reason; warnings (expired certificates, key files readable by other users) go to
    /// `warnings`. `previous` hands over the ticket keys of the running configuration.
    static core::Result<std::unique_ptr<ServerTls>> build(const core::ServerTlsConfig& cfg,
                                                          std::vector<std::string>& warnings,
                                                          const ServerTls* previous = nullptr);
    ~ServerTls();
    ServerTls(const ServerTls&) = delete;
    ServerTls& operator=(const ServerTls&) = delete;

    /// A server-side SSL for an accepted connection (nullptr when OpenSSL is out of memory).
    SSL* accept(int fd) const;
    size_t contexts() const { return entries_.size(); }

private:
    ServerTls() = default;
    struct Entry {
        SSL_CTX* ctx = nullptr;
        std::vector<std::string> exact;     // lower-case DNS names
        std::vector<std::string> wildcard;  // "*.example.com" kept as ".example.com"
        std::string names_key;              // sorted names, to group RSA and ECDSA
        int key_types = 0;                  // bit per EVP_PKEY type id class (1 RSA, 2 EC, 4 other)
    };
    /// The entry serving `name` (lower-case), or nullptr.
    const Entry* find(std::string_view name) const;
    static int onServerName(SSL* ssl, int* alert, void* arg);

    std::vector<Entry> entries_;
    unsigned char ticket_keys_[kTicketKeyBytes] = {};
};

/// The contexts the next workers use: set by the master before it forks them (workers see the
/// value of their fork). Owned here until replaced.
void setCurrent(std::unique_ptr<ServerTls> t);
const ServerTls* current();

/// Text of OpenSSL's error queue (emptied), "; "-separated, or `fallback` when empty.
std::string opensslErrors(std::string_view fallback = "unknown error");

}  // namespace photon::mod::tls
