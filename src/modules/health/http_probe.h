// SPDX-License-Identifier: Apache-2.0
// Probe: one non-blocking active health check (TCP connect, optional TLS, HTTP status line).
#pragma once

#include <ev.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/http_parser.h"
#include "core/result.h"
#include "modules/balancer/upstream_table.h"

namespace photon::mod::health {

/// What one check does. Built once per upstream at start-up (see buildTargets() in checker.h)
/// and only read afterwards.
struct ProbeSpec {
    /// tcp: connect only; http: connect, send `request`, read the status line; https: the same
    /// after a TLS handshake.
    core::HealthCheckType kind = core::HealthCheckType::Tcp;
    /// Where to connect. addr_len == 0 means the address never resolved: every check fails at
    /// once with HealthError::Resolve.
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    /// http/https: the complete request head (see buildCheckRequest()); unused for tcp.
    std::string request;
    /// The request method is HEAD (no body follows whatever the head announces).
    bool head_request = false;
    /// http/https: the exact status that counts as healthy (100-599). A 1xx interim response
    /// (100 Continue, 103 Early Hints) is skipped; the final status is compared.
    uint16_t expected_status = 200;
    /// https: the server name sent as SNI and checked against the certificate when tls_verify
    /// is on. An IP literal is verified as an IP address and never sent as SNI (RFC 6066 §3).
    /// Empty: no SNI, and verification checks the chain only.
    std::string tls_name;
    /// https: verify the certificate chain against the system default CA paths and the name.
    bool tls_verify = true;
    /// https to an upstream with `tls: true` (and tls_verify): the upstream's own client
    /// context (its ca_file, client certificate and verification), the one requests use.
    SSL_CTX* tls_ctx = nullptr;
    /// Budget for the whole check, connect included, in seconds (> 0).
    double timeout_s = 5;
};

/// The request head of an http/https check:
/// `METHOD path HTTP/1.1\r\nHost: host\r\nUser-Agent: photon-health-check\r\n`
/// `Connection: close\r\n\r\n`. The inputs were validated by the config loader (method is a
/// token, path starts with '/', host has no control characters); nothing is escaped here.
std::string buildCheckRequest(std::string_view method, std::string_view path,
                              std::string_view host);

/// Outcome of one check.
struct ProbeResult {
    bool ok = false;
    /// Why it failed; None when ok.
    balancer::HealthError error = balancer::HealthError::None;
    /// The final HTTP status received (http/https), also when ok; 0 if none was received.
    uint16_t http_status = 0;
    /// errno of a failed system call (Io, ConnectRefused), else 0.
    int sys_errno = 0;
    /// Short description of the failure for logs (parser reason, TLS verify result,
    /// "connection closed before a complete response head"); always static storage, may be
    /// empty.
    std::string_view detail;
};

/// Formats a failure for a log line, e.g. "bad_status 503 (expected 200)",
/// "connect_refused (Connection refused)", "tls_handshake (certificate verify failed:
/// self-signed certificate)". Writes at most `cap` bytes (NUL included) into `out` and returns
/// `out`.
const char* describeResult(const ProbeResult& r, const ProbeSpec& spec, char* out, size_t cap);

/// The client SSL_CTXs https checks use: one verifying against the system default CA paths
/// (SSL_CTX_set_default_verify_paths, loaded once when first needed), one not verifying. TLS 1.2
/// or later. Owned here, freed on destruction; contexts are created lazily on first use.
/// Helper process only; not thread-safe.
class TlsClientContexts {
public:
    TlsClientContexts() = default;
    ~TlsClientContexts();
    TlsClientContexts(const TlsClientContexts&) = delete;
    TlsClientContexts& operator=(const TlsClientContexts&) = delete;

    /// The context for `verify`; the pointer stays owned by this object. Fails (with the
    /// OpenSSL reason) if the context cannot be created.
    core::Result<SSL_CTX*> get(bool verify);

private:
    SSL_CTX* verify_ = nullptr;
    SSL_CTX* no_verify_ = nullptr;
};

/// One check at a time against one upstream, as a non-blocking state machine on a libev loop:
///
///   connect -> [TLS handshake] -> send request -> read until the response head is complete
///   (tcp stops after connect)                       (the body is never read)
///
/// A single timer bounds the whole check (ProbeSpec::timeout_s): expiring while connecting
/// reports ConnectTimeout, later Timeout. Errors map to HealthError: ECONNREFUSED →
/// ConnectRefused, ETIMEDOUT from the kernel → ConnectTimeout, a failed TLS handshake (including
/// verification) → TlsHandshake, a status other than expected_status → BadStatus (status kept),
/// an unparsable head or one larger than kBufferBytes → Protocol, EOF/reset/any other I/O error
/// → Io, an unresolved address → Resolve.
///
/// The completion callback runs exactly once per start() (unless cancel() or destruction come
/// first), always from a libev callback and never from inside start(). When it runs, the probe
/// has released its socket and TLS state and is idle, so the callback may start() it again or
/// destroy it. The probe owns its buffers (no allocation per check apart from OpenSSL's own
/// per-connection state). The process must ignore SIGPIPE (TLS writes use write(2)).
class Probe {
public:
    /// Largest response head accepted (status line plus fields); bigger is a Protocol error.
    static constexpr size_t kBufferBytes = 8192;

    using DoneFn = void (*)(void* ctx, const ProbeResult& result);

    /// `loop` must outlive the probe. `done` is required.
    Probe(struct ev_loop* loop, DoneFn done, void* done_ctx);
    ~Probe();
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    /// Starts a check. `spec` must stay alive and unchanged until the check completes. `tls` is
    /// the SSL_CTX for https checks (ignored otherwise); null for an https check fails it with
    /// TlsHandshake. Calling start() while running() is a programming error.
    void start(const ProbeSpec& spec, SSL_CTX* tls);

    /// Abandons a running check without calling back; no-op when idle.
    void cancel();

    bool running() const { return state_ != State::Idle; }

private:
    enum class State : uint8_t { Idle, Connecting, Handshake, Sending, Reading, Failing };

    static void onIo(struct ev_loop* loop, ev_io* w, int revents) noexcept;
    static void onTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;

    void connected();
    void handshake();
    void sendRequest();
    void readResponse();
    /// Waits for `events` on the socket (EV_READ / EV_WRITE).
    void waitFor(int events);
    /// Waits as an SSL_ERROR_WANT_* asks; false if `ssl_error` is not a WANT.
    bool waitForTls(int ssl_error);
    /// Ends the check from inside a libev callback: releases everything, then calls back.
    void finish(const ProbeResult& r);
    /// Ends the check from start(): the callback runs from the next loop iteration.
    void failSoon(balancer::HealthError err, int sys_errno, std::string_view detail);
    void fail(balancer::HealthError err, int sys_errno = 0, std::string_view detail = {});
    void release();

    struct ev_loop* loop_;
    DoneFn done_;
    void* done_ctx_;
    const ProbeSpec* spec_ = nullptr;
    State state_ = State::Idle;
    int fd_ = -1;
    SSL* ssl_ = nullptr;
    ev_io io_;
    ev_timer timer_;
    int io_events_ = 0;  // events io_ is started for; 0 = stopped
    size_t sent_ = 0;
    size_t len_ = 0;
    size_t scan_hint_ = 0;
    ProbeResult pending_;  // result of failSoon()
    core::http::ResponseHead head_;
    char buf_[kBufferBytes];
};

}  // namespace photon::mod::health
