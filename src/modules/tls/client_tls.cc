// SPDX-License-Identifier: Apache-2.0
#include "modules/tls/client_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "modules/tls/server_tls.h"

namespace photon::mod::tls {

namespace {

int noPassphrase(char*, int, int, void*) { return 0; }

/// A new session of a connection (TLS 1.3 tickets come after the handshake): kept by the
/// connection's upstream, replacing the one before.
int onNewSession(SSL* ssl, SSL_SESSION* sess) {
    auto* slot = static_cast<SessionSlot*>(SSL_get_app_data(ssl));
    if (slot == nullptr) {
        return 0;  // not kept: OpenSSL frees it
    }
    if (slot->session != nullptr) {
        SSL_SESSION_free(slot->session);
    }
    slot->session = sess;
    return 1;  // the reference is ours
}

bool isIpLiteral(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

core::Result<SSL_CTX*> makeClientContext(const ClientTlsOptions& o) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr) {
        return core::fail("SSL_CTX_new: ", opensslErrors());
    }
    auto failWith = [&](core::Error e) -> core::Result<SSL_CTX*> {
        SSL_CTX_free(ctx);
        return e;
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, noPassphrase);
    if (o.alpn_http11) {
        static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, onNewSession);
    if (o.verify) {
        int ok = o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                   : SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr);
        if (ok != 1) {
            return failWith(core::fail("ca_file ", o.ca_file.empty() ? "(system store)" : o.ca_file,
                                       ": cannot load it: ", opensslErrors()));
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!o.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1) {
            return failWith(core::fail("tls_cert ", o.cert, ": cannot load it: ", opensslErrors()));
        }
        EVP_PKEY* key = nullptr;
        if (BIO* in = BIO_new_file(o.key.c_str(), "r"); in != nullptr) {
            key = PEM_read_bio_PrivateKey(in, nullptr, noPassphrase, nullptr);
            BIO_free(in);
        }
        if (key == nullptr) {
            return failWith(core::fail("tls_key ", o.key,
                                       ": cannot load it (a PEM key without a pass phrase is "
                                       "needed): ",
                                       opensslErrors()));
        }
        bool match = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
        bool used = match && SSL_CTX_use_PrivateKey(ctx, key) == 1;
        EVP_PKEY_free(key);
        if (!match) {
            ERR_clear_error();
            return failWith(core::fail("tls_key ", o.key, " does not match tls_cert ", o.cert));
        }
        if (!used) {
            return failWith(core::fail("tls_key ", o.key, ": ", opensslErrors()));
        }
    }
    return ctx;
}

SSL* newClientSession(SSL_CTX* ctx, int fd, const std::string& name, SessionSlot* slot) {
    SSL* ssl = SSL_new(ctx);
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return nullptr;
    }
    SSL_set_connect_state(ssl);
    bool ip = isIpLiteral(name);
    if (!ip) {
        SSL_set_tlsext_host_name(ssl, name.c_str());
    }
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        if (ok != 1) {
            ERR_clear_error();
            SSL_free(ssl);
            return nullptr;
        }
    }
    SSL_set_app_data(ssl, slot);
    if (slot != nullptr && slot->session != nullptr) {
        SSL_set_session(ssl, slot->session);
    }
    return ssl;
}

std::string clientHandshakeError(SSL* ssl) {
    long v = SSL_get_verify_result(ssl);
    std::string queue = opensslErrors("");
    if (v != X509_V_OK) {
        return std::string("certificate verification failed: ") + X509_verify_cert_error_string(v);
    }
    return queue.empty() ? std::string("handshake failed (connection closed)") : queue;
}

}  // namespace photon::mod::tls
