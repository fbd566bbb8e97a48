// SPDX-License-Identifier: Apache-2.0
// Test helpers: a libev loop driver and scripted HTTP/TLS servers on 127.0.0.1 in that loop.
#pragma once

#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "modules/health/http_probe.h"

namespace photon::mod::health::testing {

/// An epoll loop plus runUntil(): runs iterations until a predicate holds. A guard timer bounds
/// every wait so a broken test fails instead of hanging (the bound is generous and never part
/// of what a test asserts).
class TestLoop {
public:
    TestLoop() {
        ::signal(SIGPIPE, SIG_IGN);
        loop_ = ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) |
                            static_cast<unsigned>(EVFLAG_NOENV));
    }
    ~TestLoop() { ev_loop_destroy(loop_); }
    TestLoop(const TestLoop&) = delete;
    TestLoop& operator=(const TestLoop&) = delete;

    struct ev_loop* get() const {
        return loop_;
    }

    /// True once pred() holds; false if the guard expired first.
    bool runUntil(const std::function<bool()>& pred, double guard_s = 20) {
        bool expired = false;
        ev_timer guard;
        ev_timer_init(&guard, onGuard, guard_s, 0.);
        guard.data = &expired;
        ev_now_update(loop_);
        ev_timer_start(loop_, &guard);
        while (!pred() && !expired) {
            ev_run(loop_, EVRUN_ONCE);
        }
        ev_timer_stop(loop_, &guard);
        return pred();
    }

private:
    static void onGuard(struct ev_loop*, ev_timer* w, int) noexcept {
        *static_cast<bool*>(w->data) = true;
    }

    struct ev_loop* loop_;
};

inline sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline uint16_t portOf(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

/// A TCP socket bound to an ephemeral 127.0.0.1 port; listening when `backlog` >= 0. Keeping a
/// bound but not listening socket open reserves a port that refuses connections.
class BoundSocket {
public:
    explicit BoundSocket(int backlog) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(0);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        if (backlog >= 0) {
            EXPECT_EQ(::listen(fd_, backlog), 0);
        }
        port_ = portOf(fd_);
    }
    ~BoundSocket() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    BoundSocket(const BoundSocket&) = delete;
    BoundSocket& operator=(const BoundSocket&) = delete;
    int fd() const { return fd_; }
    uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

/// Fills `spec`'s address with 127.0.0.1:port.
inline void targetPort(ProbeSpec& spec, uint16_t port) {
    sockaddr_in a = loopback(port);
    std::memset(&spec.addr, 0, sizeof spec.addr);
    std::memcpy(&spec.addr, &a, sizeof a);
    spec.addr_len = sizeof a;
}

/// A self-signed P-256 certificate and key for "health.test", made in memory.
struct SelfSigned {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;

    SelfSigned() {
        key = EVP_EC_gen("P-256");
        cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("health.test"), -1, -1,
                                   0);
        X509_set_issuer_name(cert, name);
        X509_sign(cert, key, EVP_sha256());
    }
    ~SelfSigned() {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    SelfSigned(const SelfSigned&) = delete;
    SelfSigned& operator=(const SelfSigned&) = delete;
};

/// A scripted HTTP/1.1 server inside the test loop (optionally over TLS). Each accepted
/// connection is handled per `mode`:
///  - Reply: read until the end of the request head, record it, send `reply`, close;
///  - ReplyAtOnce: send `reply` right after accept (and TLS handshake), close;
///  - Hang: read and record the request, never answer, keep the connection open;
///  - CloseAtOnce: close right after accept.
class ScriptedServer {
public:
    enum class Mode { Reply, ReplyAtOnce, Hang, CloseAtOnce };

    explicit ScriptedServer(struct ev_loop* loop, bool tls = false) : loop_(loop), listener_(128) {
        if (tls) {
            ctx_ = SSL_CTX_new(TLS_server_method());
            SSL_CTX_use_certificate(ctx_, cert_.cert);
            SSL_CTX_use_PrivateKey(ctx_, cert_.key);
        }
        ::fcntl(listener_.fd(), F_SETFL, ::fcntl(listener_.fd(), F_GETFL) | O_NONBLOCK);
        ev_io_init(&accept_io_, onAccept, listener_.fd(), EV_READ);
        accept_io_.data = this;
        ev_io_start(loop_, &accept_io_);
    }
    ~ScriptedServer() {
        ev_io_stop(loop_, &accept_io_);
        for (auto& c : conns_) {
            closeConn(*c);
        }
        SSL_CTX_free(ctx_);
    }
    ScriptedServer(const ScriptedServer&) = delete;
    ScriptedServer& operator=(const ScriptedServer&) = delete;

    uint16_t port() const { return listener_.port(); }
    Mode mode = Mode::Reply;
    std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    /// Request heads received, in order.
    std::vector<std::string> requests;
    /// SNI names seen by the TLS server ("" when the client sent none).
    std::vector<std::string> server_names;
    uint64_t accepted = 0;
    uint64_t closed_by_peer = 0;  // connections the client closed while we kept them open

private:
    struct Conn {
        ScriptedServer* server;
        int fd;
        SSL* ssl = nullptr;
        bool handshaken = false;
        bool replying = false;
        std::string in;
        size_t out_off = 0;
        ev_io io;
    };

    static void onAccept(struct ev_loop*, ev_io* w, int) noexcept {
        auto* s = static_cast<ScriptedServer*>(w->data);
        while (true) {
            int fd = ::accept4(w->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                return;
            }
            ++s->accepted;
            if (s->mode == Mode::CloseAtOnce) {
                ::close(fd);
                continue;
            }
            auto c = std::make_unique<Conn>();
            c->server = s;
            c->fd = fd;
            if (s->ctx_ != nullptr) {
                c->ssl = SSL_new(s->ctx_);
                SSL_set_fd(c->ssl, fd);
                SSL_set_accept_state(c->ssl);
            } else {
                c->handshaken = true;
            }
            ev_io_init(&c->io, onConn, fd, EV_READ);
            c->io.data = c.get();
            ev_io_start(s->loop_, &c->io);
            Conn& ref = *c;
            s->conns_.push_back(std::move(c));
            if (ref.handshaken && s->mode == Mode::ReplyAtOnce) {
                ref.replying = true;
                s->pump(ref);
            }
        }
    }

    static void onConn(struct ev_loop*, ev_io* w, int) noexcept {
        Conn& c = *static_cast<Conn*>(w->data);
        c.server->pump(c);
    }

    void wait(Conn& c, int events) {
        ev_io_stop(loop_, &c.io);
        ev_io_set(&c.io, c.fd, events);
        ev_io_start(loop_, &c.io);
    }

    bool tlsWait(Conn& c, int rc) {
        const int e = SSL_get_error(c.ssl, rc);
        if (e == SSL_ERROR_WANT_READ) {
            wait(c, EV_READ);
            return true;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            wait(c, EV_WRITE);
            return true;
        }
        ERR_clear_error();
        return false;
    }

    void pump(Conn& c) {
        if (c.fd < 0) {
            return;
        }
        if (!c.handshaken) {
            const int rc = SSL_do_handshake(c.ssl);
            if (rc != 1) {
                if (!tlsWait(c, rc)) {
                    closeConn(c);
                }
                return;
            }
            c.handshaken = true;
            const char* sni = SSL_get_servername(c.ssl, TLSEXT_NAMETYPE_host_name);
            server_names.push_back(sni != nullptr ? sni : "");
            if (mode == Mode::ReplyAtOnce) {
                c.replying = true;
            }
        }
        while (!c.replying) {
            char buf[4096];
            ssize_t n;
            if (c.ssl != nullptr) {
                const int rc = SSL_read(c.ssl, buf, sizeof buf);
                if (rc <= 0) {
                    if (!tlsWait(c, rc)) {
                        ++closed_by_peer;
                        closeConn(c);
                    }
                    return;
                }
                n = rc;
            } else {
                n = ::recv(c.fd, buf, sizeof buf, 0);
                if (n < 0 && errno == EAGAIN) {
                    wait(c, EV_READ);
                    return;
                }
                if (n <= 0) {
                    ++closed_by_peer;
                    closeConn(c);
                    return;
                }
            }
            c.in.append(buf, static_cast<size_t>(n));
            if (c.in.find("\r\n\r\n") != std::string::npos) {
                requests.push_back(c.in);
                if (mode == Mode::Hang) {
                    // Keep reading so a close by the client is noticed.
                    c.in.clear();
                    continue;
                }
                c.replying = true;
            }
        }
        while (c.out_off < reply.size()) {
            const size_t left = reply.size() - c.out_off;
            if (c.ssl != nullptr) {
                const int rc = SSL_write(c.ssl, reply.data() + c.out_off, static_cast<int>(left));
                if (rc <= 0) {
                    if (!tlsWait(c, rc)) {
                        closeConn(c);
                    }
                    return;
                }
                c.out_off += static_cast<size_t>(rc);
            } else {
                const ssize_t n = ::send(c.fd, reply.data() + c.out_off, left, MSG_NOSIGNAL);
                if (n < 0 && errno == EAGAIN) {
                    wait(c, EV_WRITE);
                    return;
                }
                if (n <= 0) {
                    closeConn(c);
                    return;
                }
                c.out_off += static_cast<size_t>(n);
            }
        }
        closeConn(c);
    }

    void closeConn(Conn& c) {
        if (c.fd < 0) {
            return;
        }
        ev_io_stop(loop_, &c.io);
        if (c.ssl != nullptr) {
            SSL_free(c.ssl);
            c.ssl = nullptr;
        }
        ::close(c.fd);
        c.fd = -1;
    }

    struct ev_loop* loop_;
    BoundSocket listener_;
    SelfSigned cert_;
    SSL_CTX* ctx_ = nullptr;
    ev_io accept_io_;
    std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace photon::mod::health::testing
