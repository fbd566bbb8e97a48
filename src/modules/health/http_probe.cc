// SPDX-License-Identifier: Apache-2.0
// Probe: the non-blocking connect / TLS / request / status-line state machine of one check.
#include "modules/health/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace photon::mod::health {

using balancer::HealthError;

namespace {

constexpr std::string_view kClosedEarly = "connection closed before a complete response head";

/// True if `name` is an IPv4 or IPv6 literal (brackets allowed around IPv6).
bool isIpLiteral(std::string_view name, std::string& bare) {
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);
    }
    bare.assign(name);
    unsigned char tmp[sizeof(in6_addr)];
    return inet_pton(AF_INET, bare.c_str(), tmp) == 1 ||
           inet_pton(AF_INET6, bare.c_str(), tmp) == 1;
}

/// The OpenSSL reason for the last error in the queue (static storage), and clears the queue.
std::string_view takeTlsReason() {
    const unsigned long e = ERR_peek_last_error();
    const char* r = e != 0 ? ERR_reason_error_string(e) : nullptr;
    ERR_clear_error();
    return r != nullptr ? std::string_view(r) : std::string_view();
}

}  // namespace

std::string buildCheckRequest(std::string_view method, std::string_view path,
                              std::string_view host) {
    std::string r;
    r.reserve(method.size() + path.size() + host.size() + 96);
    r.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    r.append("\r\nUser-Agent: photon-health-check\r\nConnection: close\r\n\r\n");
    return r;
}

const char* describeResult(const ProbeResult& r, const ProbeSpec& spec, char* out, size_t cap) {
    if (cap == 0) {
        return out;
    }
    const std::string_view name =
        r.ok ? std::string_view("ok") : balancer::healthErrorName(r.error);
    int n = 0;
    if (!r.ok && r.error == HealthError::BadStatus) {
        n = std::snprintf(out, cap, "%.*s %u (expected %u)", static_cast<int>(name.size()),
                          name.data(), static_cast<unsigned>(r.http_status),
                          static_cast<unsigned>(spec.expected_status));
    } else if (!r.ok &&
               (r.error == HealthError::Timeout || r.error == HealthError::ConnectTimeout)) {
        n = std::snprintf(out, cap, "%.*s after %.3fs", static_cast<int>(name.size()), name.data(),
                          spec.timeout_s);
    } else {
        n = std::snprintf(out, cap, "%.*s", static_cast<int>(name.size()), name.data());
    }
    if (n < 0 || static_cast<size_t>(n) >= cap) {
        return out;
    }
    const size_t used = static_cast<size_t>(n);
    if (r.sys_errno != 0) {
        std::snprintf(out + used, cap - used, " (%s)", std::strerror(r.sys_errno));
    } else if (!r.detail.empty()) {
        std::snprintf(out + used, cap - used, " (%.*s)", static_cast<int>(r.detail.size()),
                      r.detail.data());
    }
    return out;
}

// ---- TLS contexts ------------------------------------------------------------------------------

TlsClientContexts::~TlsClientContexts() {
    SSL_CTX_free(verify_);
    SSL_CTX_free(no_verify_);
}

core::Result<SSL_CTX*> TlsClientContexts::get(bool verify) {
    SSL_CTX*& slot = verify ? verify_ : no_verify_;
    if (slot != nullptr) {
        return slot;
    }
    ERR_clear_error();
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (c == nullptr) {
        return core::fail("SSL_CTX_new: ", std::string(takeTlsReason()));
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // A check is one short connection: no session cache to grow.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (verify) {
        if (SSL_CTX_set_default_verify_paths(c) != 1) {
            std::string why(takeTlsReason());
            SSL_CTX_free(c);
            return core::fail("cannot load the system CA certificates: ", why);
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    }
    slot = c;
    return c;
}

// ---- Probe -------------------------------------------------------------------------------------

Probe::Probe(struct ev_loop* loop, DoneFn done, void* done_ctx)
    : loop_(loop), done_(done), done_ctx_(done_ctx) {
    ev_io_init(&io_, onIo, -1, EV_READ);
    io_.data = this;
    ev_timer_init(&timer_, onTimer, 0., 0.);
    timer_.data = this;
}

Probe::~Probe() { release(); }

void Probe::start(const ProbeSpec& spec, SSL_CTX* tls) {
    PHOTON_CHECK(state_ == State::Idle);
    spec_ = &spec;
    sent_ = 0;
    len_ = 0;
    scan_hint_ = 0;
    if (spec.addr_len == 0) {
        failSoon(HealthError::Resolve, 0, "the address did not resolve");
        return;
    }
    if (spec.kind == core::HealthCheckType::Https && tls == nullptr) {
        failSoon(HealthError::TlsHandshake, 0, "no TLS client context");
        return;
    }
    const auto* sa = reinterpret_cast<const sockaddr*>(&spec.addr);
    fd_ = ::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        failSoon(HealthError::Io, errno, {});
        return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (spec.kind == core::HealthCheckType::Https) {
        ERR_clear_error();
        ssl_ = SSL_new(tls);
        if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
            failSoon(HealthError::TlsHandshake, 0, takeTlsReason());
            return;
        }
        SSL_set_connect_state(ssl_);
        if (!spec.tls_name.empty()) {
            std::string bare;
            const bool ip = isIpLiteral(spec.tls_name, bare);
            if (!ip) {
                SSL_set_tlsext_host_name(ssl_, spec.tls_name.c_str());
            }
            if (SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE) {
                const int set =
                    ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), bare.c_str())
                       : SSL_set1_host(ssl_, spec.tls_name.c_str());
                if (set != 1) {
                    failSoon(HealthError::TlsHandshake, 0, "invalid verification name");
                    return;
                }
            }
        }
    }
    ev_timer_set(&timer_, spec.timeout_s, 0.);
    ev_timer_start(loop_, &timer_);
    state_ = State::Connecting;
    if (::connect(fd_, sa, spec.addr_len) != 0 && errno != EINPROGRESS) {
        const int e = errno;
        failSoon(e == ECONNREFUSED ? HealthError::ConnectRefused : HealthError::Io, e, {});
        return;
    }
    // Even an immediate success is reported through the loop, so the callback never runs
    // inside start(): a connected socket is writable at once.
    waitFor(EV_WRITE);
}

void Probe::cancel() { release(); }

void Probe::onIo(struct ev_loop*, ev_io* w, int) noexcept {
    Probe* p = static_cast<Probe*>(w->data);
    switch (p->state_) {
        case State::Connecting: {
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(p->fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                err = errno;
            }
            if (err == EINPROGRESS || err == EALREADY) {
                return;
            }
            if (err == ECONNREFUSED) {
                p->fail(HealthError::ConnectRefused, err);
            } else if (err == ETIMEDOUT) {
                p->fail(HealthError::ConnectTimeout, err);
            } else if (err != 0) {
                p->fail(HealthError::Io, err);
            } else {
                p->connected();
            }
            return;
        }
        case State::Handshake:
            p->handshake();
            return;
        case State::Sending:
            p->sendRequest();
            return;
        case State::Reading:
            p->readResponse();
            return;
        case State::Idle:
        case State::Failing:
            return;
    }
}

void Probe::onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    Probe* p = static_cast<Probe*>(w->data);
    switch (p->state_) {
        case State::Failing:
            p->finish(p->pending_);
            return;
        case State::Connecting:
            p->fail(HealthError::ConnectTimeout, 0, "no connection within the timeout");
            return;
        case State::Handshake:
            p->fail(HealthError::Timeout, 0, "TLS handshake did not complete");
            return;
        case State::Sending:
        case State::Reading:
            p->fail(HealthError::Timeout, 0, "no complete response head");
            return;
        case State::Idle:
            return;
    }
}

void Probe::connected() {
    switch (spec_->kind) {
        case core::HealthCheckType::Tcp: {
            ProbeResult r;
            r.ok = true;
            finish(r);
            return;
        }
        case core::HealthCheckType::Https:
            state_ = State::Handshake;
            handshake();
            return;
        case core::HealthCheckType::Http:
            state_ = State::Sending;
            sendRequest();
            return;
    }
}

void Probe::handshake() {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
        state_ = State::Sending;
        sendRequest();
        return;
    }
    const int e = SSL_get_error(ssl_, rc);
    if (waitForTls(e)) {
        return;
    }
    const long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) {
        ERR_clear_error();
        fail(HealthError::TlsHandshake, 0, X509_verify_cert_error_string(v));
        return;
    }
    std::string_view why = takeTlsReason();
    if (why.empty()) {
        why = e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
                  ? std::string_view("connection closed during the TLS handshake")
                  : std::string_view("TLS handshake failed");
    }
    fail(HealthError::TlsHandshake, 0, why);
}

void Probe::sendRequest() {
    const std::string& req = spec_->request;
    while (sent_ < req.size()) {
        const size_t left = req.size() - sent_;
        if (ssl_ != nullptr) {
            ERR_clear_error();
            const int n = SSL_write(ssl_, req.data() + sent_, static_cast<int>(left));
            if (n > 0) {
                sent_ += static_cast<size_t>(n);
                continue;
            }
            const int e = SSL_get_error(ssl_, n);
            if (!waitForTls(e)) {
                const int sys = e == SSL_ERROR_SYSCALL ? errno : 0;
                std::string_view why = takeTlsReason();
                fail(HealthError::Io, sys, why.empty() ? kClosedEarly : why);
            }
            return;
        }
        const ssize_t n = ::send(fd_, req.data() + sent_, left, MSG_NOSIGNAL);
        if (n >= 0) {
            sent_ += static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            waitFor(EV_WRITE);
            return;
        }
        fail(HealthError::Io, errno);
        return;
    }
    state_ = State::Reading;
    readResponse();
}

void Probe::readResponse() {
    core::http::Limits lim;
    lim.max_request_line = kBufferBytes;
    lim.max_header_bytes = kBufferBytes;
    lim.max_headers = core::http::kMaxHeaders;
    while (true) {
        if (len_ == kBufferBytes) {
            fail(HealthError::Protocol, 0, "response head too large");
            return;
        }
        const size_t room = kBufferBytes - len_;
        size_t got = 0;
        if (ssl_ != nullptr) {
            ERR_clear_error();
            const int n = SSL_read(ssl_, buf_ + len_, static_cast<int>(room));
            if (n <= 0) {
                const int e = SSL_get_error(ssl_, n);
                if (waitForTls(e)) {
                    return;
                }
                const int sys = e == SSL_ERROR_SYSCALL ? errno : 0;
                std::string_view why = takeTlsReason();
                fail(HealthError::Io, sys,
                     why.empty() || e == SSL_ERROR_ZERO_RETURN ? kClosedEarly : why);
                return;
            }
            got = static_cast<size_t>(n);
        } else {
            const ssize_t n = ::recv(fd_, buf_ + len_, room, 0);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    waitFor(EV_READ);
                    return;
                }
                fail(HealthError::Io, errno);
                return;
            }
            if (n == 0) {
                fail(HealthError::Io, 0, kClosedEarly);
                return;
            }
            got = static_cast<size_t>(n);
        }
        len_ += got;
        while (true) {
            const auto st =
                core::http::parseResponse(buf_, len_, lim, head_, scan_hint_, spec_->head_request);
            if (st == core::http::ParseStatus::Incomplete) {
                break;  // read more
            }
            if (st == core::http::ParseStatus::Error) {
                fail(HealthError::Protocol, 0, head_.error.reason);
                return;
            }
            if (head_.interim) {
                // 100 Continue / 103 Early Hints: the final head follows on the same connection.
                std::memmove(buf_, buf_ + head_.head_length, len_ - head_.head_length);
                len_ -= head_.head_length;
                scan_hint_ = 0;
                continue;
            }
            ProbeResult r;
            r.http_status = head_.status;
            r.ok = head_.status == spec_->expected_status;
            if (!r.ok) {
                r.error = HealthError::BadStatus;
            }
            finish(r);
            return;
        }
    }
}

void Probe::waitFor(int events) {
    if (io_events_ == events) {
        return;
    }
    if (io_events_ != 0) {
        ev_io_stop(loop_, &io_);
    }
    ev_io_set(&io_, fd_, events);
    ev_io_start(loop_, &io_);
    io_events_ = events;
}

bool Probe::waitForTls(int ssl_error) {
    if (ssl_error == SSL_ERROR_WANT_READ) {
        waitFor(EV_READ);
        return true;
    }
    if (ssl_error == SSL_ERROR_WANT_WRITE) {
        waitFor(EV_WRITE);
        return true;
    }
    return false;
}

void Probe::release() {
    if (io_events_ != 0) {
        ev_io_stop(loop_, &io_);
        io_events_ = 0;
    }
    ev_timer_stop(loop_, &timer_);
    if (ssl_ != nullptr) {
        // No close_notify: the check is over and the peer learns it from the close.
        SSL_free(ssl_);
        ssl_ = nullptr;
        ERR_clear_error();
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    state_ = State::Idle;
}

void Probe::finish(const ProbeResult& r) {
    const ProbeResult copy = r;  // `r` may be pending_, which a restart from the callback reuses
    release();
    done_(done_ctx_, copy);  // may restart or destroy this probe: touch nothing afterwards
}

void Probe::fail(HealthError err, int sys_errno, std::string_view detail) {
    ProbeResult r;
    r.error = err;
    r.sys_errno = sys_errno;
    r.detail = detail;
    finish(r);
}

void Probe::failSoon(HealthError err, int sys_errno, std::string_view detail) {
    // Keep nothing open while waiting to report.
    release();
    pending_ = ProbeResult{};
    pending_.error = err;
    pending_.sys_errno = sys_errno;
    pending_.detail = detail;
    state_ = State::Failing;
    ev_timer_set(&timer_, 0., 0.);
    ev_timer_start(loop_, &timer_);
}

}  // namespace photon::mod::health
