// SPDX-License-Identifier: Apache-2.0
#include "modules/tls/server_tls.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

namespace photon::mod::tls {

namespace {

std::unique_ptr<ServerTls> g_current;

/// The SSL_CTX ex_data slot holding its ServerTls (for the ticket callback).
int ctxIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& ch : out) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return out;
}

/// The DNS names a certificate is valid for: its subjectAltName DNS entries, else its subject
/// common name (as clients did before SAN was required).
std::vector<std::string> certificateNames(X509* x) {
    std::vector<std::string> names;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
            if (g->type == GEN_DNS) {
                const unsigned char* d = ASN1_STRING_get0_data(g->d.dNSName);
                int n = ASN1_STRING_length(g->d.dNSName);
                names.push_back(lower(std::string_view(reinterpret_cast<const char*>(d),
                                                       static_cast<size_t>(n))));
            }
        }
        GENERAL_NAMES_free(sans);
    }
    if (names.empty()) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        if (n > 0) {
            names.push_back(lower(std::string_view(cn, static_cast<size_t>(n))));
        }
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

int keyTypeBit(EVP_PKEY* k) {
    if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS")) {
        return 1;
    }
    if (EVP_PKEY_is_a(k, "EC")) {
        return 2;
    }
    return 4;  // Ed25519 and others: one per context
}

/// Refuses to prompt for a pass phrase (a daemon has no terminal): encrypted keys fail to load.
int noPassphrase(char*, int, int, void*) { return 0; }

/// ALPN: HTTP/1.1 only; a client offering only other protocols continues without ALPN (and
/// speaks HTTP/1.1 or gets a 400), as nginx does when nothing matches.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned inlen, void*) {
    static const unsigned char kH1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* sel = nullptr;
    if (SSL_select_next_proto(&sel, outlen, kH1, sizeof kH1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

core::Result<void> configure(SSL_CTX* ctx, const core::ServerTlsConfig& cfg) {
    SSL_CTX_set_min_proto_version(ctx, cfg.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, cfg.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    // No renegotiation (OpenSSL 3 refuses the client's by default too); an end of stream
    // without close_notify reads as an end of stream (HTTP framing tells truncation apart).
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Writes may be partial and retried from a buffer that moved (the connection's buffers are
    // compacted); idle connections give their TLS buffers back.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (cfg.tls12 && SSL_CTX_set_cipher_list(ctx, cfg.ciphers.c_str()) != 1) {
        return core::fail("server.tls.ciphers: no usable cipher in '", cfg.ciphers,
                          "': ", opensslErrors());
    }
    if (cfg.tls13 && SSL_CTX_set_ciphersuites(ctx, cfg.ciphersuites.c_str()) != 1) {
        return core::fail("server.tls.ciphersuites: no usable suite in '", cfg.ciphersuites,
                          "': ", opensslErrors());
    }
    if (SSL_CTX_set1_groups_list(ctx, cfg.curves.c_str()) != 1) {
        return core::fail("server.tls.curves: unknown group in '", cfg.curves,
                          "': ", opensslErrors());
    }
    // Whole records (and what follows them) in one read(2) instead of a header and a body
    // read each; the connection code asks SSL_has_pending() for bytes read ahead.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, selectAlpn, nullptr);
    // Sessions live in tickets only: a per-process session cache would resume on one worker.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char kSid[] = "photon";
    SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1);
    SSL_CTX_set_timeout(ctx, static_cast<long>(std::max<int64_t>(
                                 1, std::chrono::duration_cast<std::chrono::seconds>(
                                        cfg.session_timeout)
                                        .count())));
    if (!cfg.session_tickets) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    } else {
        SSL_CTX_set_num_tickets(ctx, 1);
    }
    SSL_CTX_set_default_passwd_cb(ctx, noPassphrase);
    if (cfg.verify_client != core::TlsVerifyClient::Off) {
        if (SSL_CTX_load_verify_locations(ctx, cfg.client_ca.c_str(), nullptr) != 1) {
            return core::fail("server.tls.client_ca: cannot load '", cfg.client_ca,
                              "': ", opensslErrors());
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca.c_str());
        if (names == nullptr) {
            return core::fail("server.tls.client_ca: no certificate in '", cfg.client_ca,
                              "': ", opensslErrors());
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (cfg.verify_client == core::TlsVerifyClient::Require) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(ctx, mode, nullptr);
        SSL_CTX_set_verify_depth(ctx, static_cast<int>(cfg.verify_depth));
    }
    return {};
}

/// Reads a DER OCSP response: it must parse and say "successful"; a next update in the past
/// is a warning (clients ignore a stale staple and may then refuse the certificate).
core::Result<std::string> loadStaple(const std::string& path, std::vector<std::string>& warnings) {
    std::ifstream in(path, std::ios::binary);
    std::string der((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
        return core::fail("ocsp_response ", path, ": cannot read it");
    }
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
    if (resp == nullptr) {
        ERR_clear_error();
        return core::fail("ocsp_response ", path, ": not a DER OCSP response");
    }
    int status = OCSP_response_status(resp);
    OCSP_BASICRESP* basic = status == OCSP_RESPONSE_STATUS_SUCCESSFUL ? OCSP_response_get1_basic(resp)
                                                                      : nullptr;
    bool stale = false;
    if (basic != nullptr) {
        for (int i = 0; i < OCSP_resp_count(basic); ++i) {
            OCSP_SINGLERESP* single = OCSP_resp_get0(basic, i);
            ASN1_GENERALIZEDTIME* next = nullptr;
            OCSP_single_get0_status(single, nullptr, nullptr, nullptr, &next);
            stale = stale || (next != nullptr && X509_cmp_current_time(next) <= 0);
        }
        OCSP_BASICRESP_free(basic);
    }
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        return core::fail("ocsp_response ", path, ": the responder answered ",
                          OCSP_response_status_str(status));
    }
    if (stale) {
        warnings.push_back("ocsp_response " + path +
                           " is past its next update: fetch a new one (clients ignore it)");
    }
    return der;
}

}  // namespace

std::string opensslErrors(std::string_view fallback) {
    std::string out;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) {
            out += "; ";
        }
        out += buf;
    }
    return out.empty() ? std::string(fallback) : out;
}

core::Result<std::unique_ptr<ServerTls>> ServerTls::build(const core::ServerTlsConfig& cfg,
                                                          std::vector<std::string>& warnings,
                                                          const ServerTls* previous) {
    ERR_clear_error();
    std::unique_ptr<ServerTls> t(new ServerTls);
    t->rotation_s_ = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(cfg.ticket_key_rotation).count());
    int64_t lifetime =
        std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(cfg.session_timeout)
                                 .count());
    t->keep_ = std::min<size_t>(kMaxTicketKeys,
                                static_cast<size_t>((lifetime + t->rotation_s_ - 1) / t->rotation_s_) + 1);
    const int64_t now_s = static_cast<int64_t>(::time(nullptr));
    if (previous != nullptr && previous->rotation_s_ == t->rotation_s_) {
        // A reload: the same ratchet, so tickets issued before it stay valid.
        std::memcpy(t->secret_, previous->secret_, sizeof t->secret_);
        t->epoch_ = previous->epoch_;
        std::copy(std::begin(previous->keys_), std::end(previous->keys_), std::begin(t->keys_));
    } else {
        if (RAND_bytes(t->secret_, sizeof t->secret_) != 1) {
            return core::fail("cannot make session-ticket keys: ", opensslErrors());
        }
        t->epoch_ = now_s / t->rotation_s_;
        t->keys_[t->epoch_ % kMaxTicketKeys].epoch = t->epoch_;
        t->deriveKey(t->keys_[t->epoch_ % kMaxTicketKeys]);
    }
    t->advance(now_s);
    for (const auto& c : cfg.certificates) {
        struct stat st{};
        if (::stat(c.key.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
            warnings.push_back("private key " + c.key +
                               " is readable by every user; chmod o-r it (and keep it "
                               "readable by root only)");
        }
        // Loaded into a scratch context first: its names and key type decide where it goes.
        SSL_CTX* probe = SSL_CTX_new(TLS_server_method());
        if (probe == nullptr) {
            return core::fail("SSL_CTX_new: ", opensslErrors());
        }
        SSL_CTX_set_default_passwd_cb(probe, noPassphrase);
        auto freeProbe = [&] { SSL_CTX_free(probe); };
        if (SSL_CTX_use_certificate_chain_file(probe, c.cert.c_str()) != 1) {
            std::string why = opensslErrors();
            freeProbe();
            return core::fail("certificate ", c.cert, ": cannot load it: ", why);
        }
        EVP_PKEY* key = nullptr;
        if (BIO* in = BIO_new_file(c.key.c_str(), "r"); in != nullptr) {
            key = PEM_read_bio_PrivateKey(in, nullptr, noPassphrase, nullptr);
            BIO_free(in);
        }
        if (key == nullptr) {
            std::string why = opensslErrors();
            freeProbe();
            return core::fail("private key ", c.key, ": cannot load it (a PEM key without a "
                              "pass phrase is needed): ", why);
        }
        X509* leaf = SSL_CTX_get0_certificate(probe);
        if (!c.ocsp_response.empty()) {
            auto staple = loadStaple(c.ocsp_response, warnings);
            if (!staple.ok()) {
                EVP_PKEY_free(key);
                freeProbe();
                return staple.error();
            }
            X509_up_ref(leaf);
            t->staples_.push_back({leaf, std::move(staple.value())});
        }
        if (X509_check_private_key(leaf, key) != 1) {
            ERR_clear_error();
            EVP_PKEY_free(key);
            freeProbe();
            return core::fail("private key ", c.key, " does not match certificate ", c.cert);
        }
        std::vector<std::string> names = certificateNames(leaf);
        if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
            warnings.push_back("certificate " + c.cert + " has expired; clients will refuse it");
        } else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
            warnings.push_back("certificate " + c.cert + " is not valid yet");
        }
        int bit = keyTypeBit(key);
        EVP_PKEY_free(key);
        std::string names_key;
        for (const auto& n : names) {
            names_key += n + ' ';
        }
        Entry* into = nullptr;
        for (auto& e : t->entries_) {
            if (e.names_key == names_key && (e.key_types & bit) == 0 && bit != 4) {
                into = &e;
            }
        }
        if (into == nullptr) {
            Entry e;
            e.ctx = SSL_CTX_new(TLS_server_method());
            if (e.ctx == nullptr) {
                freeProbe();
                return core::fail("SSL_CTX_new: ", opensslErrors());
            }
            t->entries_.push_back(e);
            into = &t->entries_.back();
            into->names_key = names_key;
            for (const auto& n : names) {
                if (n.size() > 2 && n.compare(0, 2, "*.") == 0) {
                    into->wildcard.push_back(n.substr(1));
                } else {
                    into->exact.push_back(n);
                }
            }
            if (auto r = configure(into->ctx, cfg); !r.ok()) {
                freeProbe();
                return r.error();
            }
            if (cfg.session_tickets &&
                SSL_CTX_set_tlsext_ticket_key_evp_cb(into->ctx, onTicket) != 1) {
                freeProbe();
                return core::fail("cannot set the session-ticket callback: ", opensslErrors());
            }
        }
        into->key_types |= bit;
        // The same files again, into the context that serves them (the chain goes with the
        // certificate of its key type).
        if (SSL_CTX_use_certificate_chain_file(into->ctx, c.cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(into->ctx, c.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(into->ctx) != 1) {
            std::string why = opensslErrors();
            freeProbe();
            return core::fail("certificate ", c.cert, ": ", why);
        }
        freeProbe();
    }
    if (t->entries_.empty()) {
        return core::fail("no certificate for the TLS listener");
    }
    for (auto& e : t->entries_) {
        if (!t->staples_.empty()) {
            SSL_CTX_set_tlsext_status_cb(e.ctx, onStatus);
            SSL_CTX_set_tlsext_status_arg(e.ctx, t.get());
        }
        SSL_CTX_set_tlsext_servername_callback(e.ctx, onServerName);
        SSL_CTX_set_tlsext_servername_arg(e.ctx, t.get());
        SSL_CTX_set_ex_data(e.ctx, ctxIndex(), t.get());
    }
    return t;
}

ServerTls::~ServerTls() {
    for (auto& e : entries_) {
        SSL_CTX_free(e.ctx);
    }
    for (auto& s : staples_) {
        X509_free(s.cert);
    }
    OPENSSL_cleanse(secret_, sizeof secret_);
    OPENSSL_cleanse(keys_, sizeof keys_);
}

int ServerTls::onStatus(SSL* ssl, void* arg) {
    const auto* self = static_cast<const ServerTls*>(arg);
    X509* cert = SSL_get_certificate(ssl);  // the one chosen for this handshake
    for (const auto& s : self->staples_) {
        if (X509_cmp(s.cert, cert) == 0) {
            auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(s.der.size()));
            if (copy == nullptr) {
                return SSL_TLSEXT_ERR_NOACK;
            }
            std::memcpy(copy, s.der.data(), s.der.size());
            SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(s.der.size()));
            return SSL_TLSEXT_ERR_OK;  // OpenSSL frees the copy
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

void ServerTls::deriveKey(TicketKey& k) const {
    auto mac = [&](const char* label, unsigned char* out, size_t n) {
        unsigned char full[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        HMAC(EVP_sha256(), secret_, sizeof secret_, reinterpret_cast<const unsigned char*>(label),
             std::strlen(label), full, &len);
        std::memcpy(out, full, n);
        OPENSSL_cleanse(full, sizeof full);
    };
    mac("photon ticket name", k.name, sizeof k.name);
    mac("photon ticket aes", k.aes, sizeof k.aes);
    mac("photon ticket hmac", k.hmac, sizeof k.hmac);
}

void ServerTls::advance(int64_t unix_seconds) {
    const int64_t target = unix_seconds / rotation_s_;
    if (target <= epoch_) {
        return;
    }
    // A process that slept through many epochs only needs the last keep_ of them.
    while (epoch_ < target) {
        unsigned char next[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        static const char kStep[] = "photon ticket ratchet";
        HMAC(EVP_sha256(), secret_, sizeof secret_, reinterpret_cast<const unsigned char*>(kStep),
             sizeof kStep - 1, next, &len);
        std::memcpy(secret_, next, sizeof secret_);
        OPENSSL_cleanse(next, sizeof next);
        ++epoch_;
        if (target - epoch_ < static_cast<int64_t>(keep_)) {
            TicketKey& k = keys_[epoch_ % kMaxTicketKeys];
            k.epoch = epoch_;
            deriveKey(k);
        }
    }
    for (auto& k : keys_) {
        if (k.epoch >= 0 && k.epoch <= epoch_ - static_cast<int64_t>(keep_)) {
            OPENSSL_cleanse(&k, sizeof k);  // its tickets have expired: the key goes
            k.epoch = -1;
        }
    }
}

int ServerTls::onTicket(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* c,
                        EVP_MAC_CTX* h, int enc) {
    // The session's original context (SNI may have switched the SSL's).
    auto* self = static_cast<ServerTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctxIndex()));
    if (self == nullptr) {
        return -1;
    }
    self->advance(static_cast<int64_t>(::time(nullptr)));
    const TicketKey* key = nullptr;
    if (enc == 1) {
        key = &self->keys_[self->epoch_ % kMaxTicketKeys];
        std::memcpy(name, key->name, sizeof key->name);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) {
            return -1;
        }
    } else {
        for (const auto& k : self->keys_) {
            if (k.epoch >= 0 && CRYPTO_memcmp(k.name, name, sizeof k.name) == 0) {
                key = &k;
            }
        }
        if (key == nullptr) {
            return 0;  // expired or unknown: a full handshake
        }
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string("key", const_cast<unsigned char*>(key->hmac),
                                          sizeof key->hmac),
        OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(h, params) != 1) {
        return -1;
    }
    int ok = enc == 1 ? EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), nullptr, key->aes, iv)
                      : EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), nullptr, key->aes, iv);
    if (ok != 1) {
        return -1;
    }
    // A ticket of an older epoch is accepted and replaced by one under the current key.
    return enc == 1 || key->epoch == self->epoch_ ? 1 : 2;
}

const ServerTls::Entry* ServerTls::find(std::string_view name) const {
    for (const auto& e : entries_) {
        for (const auto& n : e.exact) {
            if (n == name) {
                return &e;
            }
        }
    }
    // "*.example.com" covers exactly one more label: a.example.com, not a.b.example.com.
    size_t dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0) {
        std::string_view rest = name.substr(dot);
        for (const auto& e : entries_) {
            for (const auto& w : e.wildcard) {
                if (w == rest) {
                    return &e;
                }
            }
        }
    }
    return nullptr;
}

int ServerTls::onServerName(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const ServerTls*>(arg);
    const char* sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sn == nullptr) {
        return SSL_TLSEXT_ERR_NOACK;  // the default certificate
    }
    char name[256];
    size_t n = std::strlen(sn);
    if (n == 0 || n >= sizeof name) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    for (size_t i = 0; i < n; ++i) {
        name[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(sn[i])));
    }
    if (name[n - 1] == '.') {
        --n;  // a fully qualified name
    }
    const Entry* e = self->find(std::string_view(name, n));
    if (e == nullptr) {
        return SSL_TLSEXT_ERR_NOACK;  // the default certificate
    }
    if (e->ctx != SSL_get_SSL_CTX(ssl)) {
        SSL_set_SSL_CTX(ssl, e->ctx);
    }
    return SSL_TLSEXT_ERR_OK;
}

SSL* ServerTls::accept(int fd) const {
    SSL* ssl = SSL_new(entries_.front().ctx);
    if (ssl == nullptr) {
        ERR_clear_error();
        return nullptr;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return nullptr;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void setCurrent(std::unique_ptr<ServerTls> t) { g_current = std::move(t); }

const ServerTls* current() { return g_current.get(); }

void tickCurrent(int64_t unix_seconds) {
    if (g_current != nullptr) {
        g_current->advance(unix_seconds);
    }
}

}  // namespace photon::mod::tls
