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

/// Session tickets are encrypted with a key per rotation period ("epoch"). The keys come from a
/// secret the master makes once (and carries across reloads) that is ratcheted forward, one
/// HMAC step per epoch, by every process on its own: all workers of all generations derive the
/// same keys without talking to each other, and a past epoch's secret is erased once its
/// tickets have expired, so a later compromise does not open old tickets.
constexpr size_t kMaxTicketKeys = 8;  // epochs whose tickets are still accepted

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

    /// Ratchets the ticket keys to the epoch of `unix_seconds` (the master calls it every
    /// second so that it holds no expired secret; workers do it when they use the keys).
    void advance(int64_t unix_seconds);

private:
    ServerTls() = default;
    struct Entry {
        SSL_CTX* ctx = nullptr;
        std::vector<std::string> exact;     // lower-case DNS names
        std::vector<std::string> wildcard;  // "*.example.com" kept as ".example.com"
        std::string names_key;              // sorted names, to group RSA and ECDSA
        int key_types = 0;                  // bit per EVP_PKEY type id class (1 RSA, 2 EC, 4 other)
    };
    /// An OCSP response stapled for one certificate (DER).
    struct Staple {
        X509* cert = nullptr;  // the leaf (reference held)
        std::string der;
    };
    static int onStatus(SSL* ssl, void* arg);

    /// The entry serving `name` (lower-case), or nullptr.
    const Entry* find(std::string_view name) const;
    static int onServerName(SSL* ssl, int* alert, void* arg);

    struct TicketKey {
        int64_t epoch = -1;  // -1: unused
        unsigned char name[16];
        unsigned char aes[32];
        unsigned char hmac[32];
    };
    static int onTicket(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* c,
                        EVP_MAC_CTX* h, int enc);
    void deriveKey(TicketKey& k) const;

    std::vector<Entry> entries_;
    std::vector<Staple> staples_;
    int64_t rotation_s_ = 3600;
    size_t keep_ = 2;                // epochs accepted: the current one and keep_ - 1 before it
    unsigned char secret_[32] = {};  // the ratchet's state for epoch_
    int64_t epoch_ = 0;
    TicketKey keys_[kMaxTicketKeys];  // ring, newest at keys_[epoch % kMaxTicketKeys]
};

/// The contexts the next workers use: set by the master before it forks them (workers see the
/// value of their fork). Owned here until replaced.
void setCurrent(std::unique_ptr<ServerTls> t);
const ServerTls* current();
/// The master's tick: ratchets the current contexts' ticket keys (their expired secrets go).
void tickCurrent(int64_t unix_seconds);

/// Text of OpenSSL's error queue (emptied), "; "-separated, or `fallback` when empty.
std::string opensslErrors(std::string_view fallback = "unknown error");

}  // namespace photon::mod::tls
