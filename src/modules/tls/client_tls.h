// SPDX-License-Identifier: Apache-2.0
// TLS to upstreams: client contexts made by the master (CA files and client keys are read
// before the workers give up root) and inherited by the workers, and the per-connection setup
// (server name, name verification, session resumption).
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "core/result.h"

namespace photon::mod::tls {

struct ClientTlsOptions {
    bool verify = true;   // the upstream's certificate chain and name are checked
    std::string ca_file;  // PEM CAs to trust; empty = the system's store
    std::string cert;     // client certificate (mutual TLS), PEM, leaf first; empty = none
    std::string key;
    bool alpn_http11 = true;  // offer ALPN http/1.1 (upstreams); false: no ALPN (Redis)
};

/// Where a connection's new sessions go (set as the SSL's app data): the upstream keeps the
/// latest to resume the next connection with it.
struct SessionSlot {
    SSL_SESSION* session = nullptr;
};

/// A client SSL_CTX for `o` (TLS 1.2+, ALPN http/1.1 unless turned off, client session cache
/// feeding SessionSlot). Errors name the file and OpenSSL's reason.
core::Result<SSL_CTX*> makeClientContext(const ClientTlsOptions& o);

/// The SSL of a new connection on `fd` to a server called `name` (a DNS name or an IP literal:
/// SNI only for names; the certificate must match it either way when the context verifies),
/// resuming `slot`'s session when there is one. nullptr when OpenSSL fails.
SSL* newClientSession(SSL_CTX* ctx, int fd, const std::string& name, SessionSlot* slot);

/// Why the handshake of `ssl` failed, for logs: the verification error when there was one,
/// else OpenSSL's error queue (emptied).
std::string clientHandshakeError(SSL* ssl);

}  // namespace photon::mod::tls
