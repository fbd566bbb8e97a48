// SPDX-License-Identifier: Apache-2.0
// The typed configuration model: plain structs with defaults, filled and validated by the loader.
#pragma once

// Conventions for every struct below:
//  - Each field is commented with its config key, type, default and meaning. "(orig)" marks keys
//    of the original product's schema, whose meaning we keep; "(new)" marks our additions.
//  - A default written in a member initialiser is the value used when the key is absent.
//  - "absent" and "null" are the same thing: `timeout: null`, `timeout: ~` and a missing key all
//    leave the field at its default (the original required some such keys to be written out as
//    null; we accept them absent).
//  - Durations are core::Duration (int64 nanoseconds), written in humantime syntax ("1h 30m");
//    a bare integer is also accepted as seconds.
//  - Sizes are bytes; counts are plain integers. 0 never silently means "unlimited" unless the
//    field says so.
//  - Validated ranges: every duration must be greater than zero except server.shutdown_timeout,
//    jwt.leeway and cors.max_age (which may be 0). Counts and limits must be at least 1 except
//    weight, retries, max_fails, burst, requests_per_second and the max_body_size keys (0
//    allowed, meaning as documented per field); server.max_request_line ≥ 16,
//    server.max_header_size ≥ 64; u32 fields ≤ 4294967295, expected_status 100-599.
//  - Everything here is built once in the master, validated, and then only read (workers see it
//    through fork). The loader has already cross-checked references (route → backend, route →
//    middleware block), so consumers need not re-validate.
//  - All structs compare with == (field by field), which the loader's tests use to prove that
//    YAML, JSON and TOML spellings of one file yield one model.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/address.h"
#include "core/duration.h"
#include "core/log.h"
#include "core/retry_on.h"

namespace photon::core {

/// Ordered list of header name/value pairs, in document order. Names keep their spelling;
/// consumers compare them case-insensitively.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------------------------

enum class RequestIdMode : uint8_t {
    Keep,            // "keep": keep a sane incoming X-Request-ID (printable, ≤ 128 bytes)
    AlwaysGenerate,  // "always_generate": always replace it with a gateway-generated `req-` id
};

enum class AccessLogFormat : uint8_t {
    Json,      // "json": one JSON object per line
    Combined,  // "combined": the NCSA combined format of Apache and nginx
};

/// server.tls.verify_client (new): client certificates (mutual TLS).
enum class TlsVerifyClient : uint8_t {
    Off,       // "off": none asked for (default)
    Optional,  // "optional": asked for; a client without one is served, a bad one refused
    Require,   // "on": a valid certificate is required to complete the handshake
};

/// One certificate of the TLS listener: PEM files, the certificate file holding the chain
/// (leaf first).
struct TlsCertificate {
    std::string cert;
    std::string key;
    /// ocsp_response (new): a DER OCSP response for this certificate, stapled to handshakes
    /// that ask for one; re-read on reload. Empty = no stapling.
    std::string ocsp_response;
    bool operator==(const TlsCertificate&) const = default;
};

/// server.tls (new): the TLS listener's settings beyond the original's tls_cert / tls_key.
struct ServerTlsConfig {
    /// certificates (new): [{cert, key}]. Chosen per connection by the SNI name against the
    /// DNS names of each certificate's subjectAltName (exact, then `*.` wildcards); RSA and
    /// ECDSA certificates for the same names are served side by side (the client's signature
    /// algorithms decide). server.tls_cert/tls_key, when given, come first and are the default
    /// for clients that send no (or no matching) name.
    std::vector<TlsCertificate> certificates;
    /// protocols (new): any of TLSv1.2, TLSv1.3. Default both; older versions are never offered.
    bool tls12 = true;
    bool tls13 = true;
    /// ciphers (new): OpenSSL cipher list for TLS 1.2. Default: forward-secret AEAD suites only.
    std::string ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    /// ciphersuites (new): TLS 1.3 suites. Default OpenSSL's three.
    std::string ciphersuites =
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
    /// curves (new): key-exchange groups in preference order. Default X25519:P-256:P-384.
    std::string curves = "X25519:prime256v1:secp384r1";
    /// session_tickets (new): stateless resumption; the ticket keys are shared by every worker
    /// and kept across reloads, so a client resumes on any worker. Default true.
    bool session_tickets = true;
    /// session_timeout (new): lifetime of a session (ticket). Default 1h.
    Duration session_timeout = std::chrono::hours(1);
    /// ticket_key_rotation (new): how long one ticket key encrypts new tickets; tickets stay
    /// valid for session_timeout across rotations (at most 7 rotations per session_timeout).
    /// Default 1h.
    Duration ticket_key_rotation = std::chrono::hours(1);
    /// handshake_timeout (new): time allowed for the TLS handshake. Default 10s.
    Duration handshake_timeout = std::chrono::seconds(10);
    /// client_ca (new): PEM file of the CAs that client certificates must chain to; needed by
    /// verify_client optional/on.
    std::string client_ca;
    TlsVerifyClient verify_client = TlsVerifyClient::Off;
    /// verify_depth (new): longest client certificate chain accepted. Default 3.
    uint32_t verify_depth = 3;
    bool operator==(const ServerTlsConfig&) const = default;
};

struct ServerConfig {
    /// http_addr (orig, required): plaintext HTTP/1.1 listener. Literal `a.b.c.d:port`,
    /// `[v6]:port`; also `localhost:port`, `*:port`, `:port` (= 0.0.0.0).
    SocketAddress http_addr;
    /// https_addr (orig, optional): TLS listener; requires tls_cert and tls_key.
    std::optional<SocketAddress> https_addr;
    /// tls_cert / tls_key (orig): PEM paths, relative to the working directory. Checked for
    /// readability at load when https_addr is set.
    std::optional<std::string> tls_cert;
    std::optional<std::string> tls_key;
    /// tls (new): more certificates and the listener's TLS settings (see ServerTlsConfig). The
    /// loader puts tls_cert/tls_key first into tls.certificates when https_addr is set.
    ServerTlsConfig tls;
    /// connection_timeout (orig, the original ignored it): client keep-alive idle timeout, i.e.
    /// how long an idle client connection is kept open between requests. Default 60s.
    Duration connection_timeout = std::chrono::seconds(60);
    /// max_connections (orig, the original ignored it): total concurrent client connections
    /// across all workers. Default 10000.
    uint64_t max_connections = 10000;
    /// upgrade_sock (orig): Unix socket for the `--upgrade` listener hand-over.
    std::string upgrade_sock = "/tmp/photon_upgrade.sock";
    /// upgrade_sock was written in the file: a graceful stop (QUIT) first offers the listening
    /// sockets to a `photon --upgrade` waiting there (the original's hand-over).
    bool upgrade_sock_set = false;

    /// worker_processes (new): integer 1-1024 or "auto". Default "auto" = number of online CPUs
    /// (capped at 1024); the loader resolves it, so this field always holds the effective count.
    uint32_t worker_processes = 1;
    /// True when worker_processes was "auto" or absent.
    bool worker_processes_auto = true;
    /// pid_file (new): where the master writes its pid. Default empty = the path compiled in
    /// at configure time.
    std::string pid_file;
    /// error_log (new): error log path. Default empty = stderr ("stderr" is also accepted).
    std::string error_log;
    /// user, group (new): when the master runs as root, workers and the helper run as this user
    /// and group (default: the user's primary group) once the master has opened the listening
    /// sockets. Empty = they keep the master's identity.
    std::string user;
    std::string group;
    /// log_level (new): error | warn | info | debug | trace. Absent = the -l command-line level
    /// (itself default info); when both are given the command line wins.
    std::optional<LogLevel> log_level;
    /// access_log (new): access log path, or "off". Default off (empty string here).
    std::string access_log;
    /// access_log_format (new): "json" (default) or "combined".
    AccessLogFormat access_log_format = AccessLogFormat::Json;
    /// shutdown_timeout (new): graceful-stop budget (QUIT, reload, upgrade): in-flight requests
    /// get this long to finish before their connections are closed. Default 10s.
    Duration shutdown_timeout = std::chrono::seconds(10);
    /// max_body_size (new): largest accepted request body in bytes, 413 beyond it.
    /// Default 10 MiB; 0 = unlimited.
    uint64_t max_body_size = 10ull * 1024 * 1024;
    /// max_request_line (new): longest request line in bytes (414 beyond it). Default 8192.
    uint32_t max_request_line = 8192;
    /// max_header_size (new): total bytes of the request head (request line + headers), 431
    /// beyond it. Default 16384.
    uint32_t max_header_size = 16384;
    /// max_headers (new): most request header fields, 431 beyond it. Default 100.
    uint32_t max_headers = 100;
    /// underscores_in_headers (new): forward request header fields whose name holds '_'.
    /// Default false: they are dropped before the request goes upstream, since CGI-style
    /// servers read `X_Forwarded_For` as `X-Forwarded-For` (nginx's directive of the same name).
    bool underscores_in_headers = false;
    /// header_read_timeout (new): time allowed to receive a complete request head once its first
    /// byte arrived; 408 on expiry. Default 10s.
    Duration header_read_timeout = std::chrono::seconds(10);
    /// resolve_interval (new): how often the master looks upstream host names up again (off
    /// the workers' event loops); a changed address is used by new connections. Default 30s.
    Duration resolve_interval = std::chrono::seconds(30);
    /// io_uring (new): carry out each worker's socket reads and writes of a loop iteration with
    /// one io_uring_enter(2) instead of one system call each. Default true; a kernel that
    /// refuses io_uring falls back to plain system calls by itself.
    bool io_uring = true;
    /// keepalive_requests (new): requests served on one client connection before it is closed.
    /// Default 10000.
    uint32_t keepalive_requests = 10000;
    /// upstream_keepalive_timeout (new): an idle pooled upstream connection older than this is
    /// closed, never reused: shorter than common servers' own idle timeouts (Node.js 5s, Apache
    /// 5s), so a reused connection is rarely one the server is closing. Default 4s.
    Duration upstream_keepalive_timeout = std::chrono::seconds(4);
    /// lingering_time / lingering_timeout (new): a connection closed while request bytes may
    /// still arrive (an early response, an error reply) first half-closes and reads and discards
    /// what comes for at most lingering_time in all and lingering_timeout between reads, so the
    /// client receives the whole response (nginx's directives of the same names).
    /// Defaults 30s and 5s.
    Duration lingering_time = std::chrono::seconds(30);
    Duration lingering_timeout = std::chrono::seconds(5);
    /// client_abort (new): what a client's read EOF while its request is proxied means.
    /// "continue" (default): a half-close is not an abort; the response is still delivered and
    /// the connection closed after it (a client that really went away shows as a failed write).
    /// "cancel": the upstream work is cancelled at once (the previous behaviour).
    bool client_abort_cancel = false;
    /// request_id (new): "keep" (default) or "always_generate".
    RequestIdMode request_id = RequestIdMode::Keep;
    /// trace_context (new): "propagate" (default) carries a valid incoming W3C traceparent on
    /// with the gateway's own span id and starts a trace for a request without one; "off"
    /// forwards the client's trace fields untouched and starts none.
    bool trace_context = true;
    /// trace_sampled (new): the sampled flag of the traces the gateway starts. Default false.
    bool trace_sampled = false;
    /// trusted_proxies (new): list of CIDRs (or bare addresses). When the TCP peer is inside one,
    /// the right-most X-Forwarded-For entry outside all of them is the client address.
    /// Default empty = trust nobody.
    std::vector<Cidr> trusted_proxies;
    /// reuse_port (new, reserved): accepted for forward compatibility; this version always
    /// shares one listening socket among all workers, so a killed worker never takes queued
    /// connections with it and a second instance on the same port fails with EADDRINUSE.
    /// Default false.
    bool reuse_port = false;

    bool operator==(const ServerConfig&) const = default;
};

// ---------------------------------------------------------------------------------------------
// load_balancing
// ---------------------------------------------------------------------------------------------

enum class LbAlgorithm : uint8_t {
    RoundRobin,          // "round_robin"
    LeastConnections,    // "least_connections"
    WeightedRoundRobin,  // "weighted_round_robin" (smooth, nginx-style)
    IpHash,              // "ip_hash"
    ConsistentHash,      // "consistent_hash"
    Random,              // "random"
};

enum class HealthCheckType : uint8_t {
    Tcp,    // "tcp": connect only
    Http,   // "http": request `path`, expect `expected_status`
    Https,  // "https": same over TLS
};

/// Backend `hash_key` (new): what consistent_hash (and ip_hash) hashes.
struct HashKey {
    enum class Kind : uint8_t {
        Ip,      // "ip": the client address (default)
        Header,  // "header:NAME": first value of request header NAME
        Cookie,  // "cookie:NAME": value of cookie NAME
        Path,    // "path": the request path (query excluded)
    };
    Kind kind = Kind::Ip;
    std::string name;  // header or cookie name; empty for Ip and Path

    bool operator==(const HashKey&) const = default;
};

/// Upstream `tcp_keepalive` (orig). Applied only when enabled.
struct TcpKeepaliveConfig {
    bool enabled = false;                          // enabled: default false
    Duration idle = std::chrono::seconds(60);      // idle: TCP_KEEPIDLE, default 60s
    Duration interval = std::chrono::seconds(10);  // interval: TCP_KEEPINTVL, default 10s
    uint32_t count = 9;                            // count: TCP_KEEPCNT, default 9

    bool operator==(const TcpKeepaliveConfig&) const = default;
};

/// One entry of a backend's `upstreams` list.
struct UpstreamConfig {
    /// address (orig, required): `host:port` — IPv4, bracketed IPv6 or DNS name. Parsed form;
    /// address.toString() gives back the canonical text. A DNS name that did not resolve at load
    /// produced a warning only: the upstream starts unhealthy and resolution is retried.
    HostPort address;
    /// weight (orig): default 1. Used by weighted_round_robin and consistent_hash; 0 = never
    /// picked by weighted_round_robin.
    uint32_t weight = 1;
    /// tls (orig): talk TLS to the upstream with certificate and host name verification.
    /// Default false.
    bool tls = false;
    /// sni_hostname (orig): TLS server name and verification name. Absent = the host part of
    /// `address` (the original sent "host:port", which cannot verify; fixed here).
    std::optional<std::string> sni_hostname;
    /// tls_verify (new): verify the upstream's certificate chain and name. Default true;
    /// false is warned about at load.
    bool tls_verify = true;
    /// ca_file (new): PEM CAs the upstream's certificate must chain to. Empty = the system's
    /// store.
    std::string ca_file;
    /// tls_cert / tls_key (new): client certificate and key presented to the upstream (mutual
    /// TLS). Empty = none.
    std::string tls_cert;
    std::string tls_key;
    /// max_connections (orig): cap on concurrent in-flight requests to this upstream across all
    /// workers. Absent = unlimited.
    std::optional<uint64_t> max_connections;
    /// tcp_keepalive (orig): see TcpKeepaliveConfig.
    TcpKeepaliveConfig tcp_keepalive;
    /// connection_timeout (orig): TCP connect timeout; TCP + TLS handshake may take twice this.
    /// Default 5s.
    Duration connection_timeout = std::chrono::seconds(5);
    /// read_timeout (orig): per-read timeout on the upstream socket. Default 30s.
    Duration read_timeout = std::chrono::seconds(30);
    /// write_timeout (orig): per-write timeout on the upstream socket. Default 30s.
    Duration write_timeout = std::chrono::seconds(30);

    bool operator==(const UpstreamConfig&) const = default;
};

/// A backend's effective active health check: the backend's `health_check` block merged with
/// the global `health_check` block. Always filled in, also for backends without a block (which
/// get HTTP GET /health expecting 200, as the original designed).
struct BackendHealthCheckConfig {
    /// True when the backend had its own health_check block.
    bool configured = false;
    /// enabled (new): default = global health_check.enabled.
    bool enabled = true;
    /// check_type (orig; required inside a block): tcp | http | https. Default (no block) http.
    HealthCheckType check_type = HealthCheckType::Http;
    /// path (orig): request path for http/https checks. Default "/health".
    std::string path = "/health";
    /// expected_status (orig): exact status that counts as healthy, 100-599. Default 200.
    uint16_t expected_status = 200;
    /// interval (orig): default = global health_check.interval.
    Duration interval = std::chrono::seconds(10);
    /// method (new): request method for http/https checks. Default "GET".
    std::string method = "GET";
    /// host (new): Host header for http/https checks. Absent = the upstream's address.
    std::optional<std::string> host;
    /// timeout (new override): default = global health_check.timeout.
    Duration timeout = std::chrono::seconds(5);
    /// failure_threshold / success_threshold (new overrides): default = the global values.
    uint32_t failure_threshold = 3;
    uint32_t success_threshold = 2;
    /// tls_verify (new): verify the certificate of https checks. Default true.
    bool tls_verify = true;

    bool operator==(const BackendHealthCheckConfig&) const = default;
};

/// One entry of `load_balancing.backends` (a map name → backend).
struct BackendConfig {
    /// The map key.
    std::string name;
    /// upstreams (orig, required, non-empty), in document order.
    std::vector<UpstreamConfig> upstreams;
    /// algorithm (orig): default = load_balancing.algorithm, or round_robin when that is absent
    /// too (the original ignored the global value; we honour it).
    LbAlgorithm algorithm = LbAlgorithm::RoundRobin;
    /// two_choices (new): with `random`, pick two upstreams at random and use the one with fewer
    /// in-flight requests ("power of two choices"). Default false.
    bool two_choices = false;
    /// hash_key (new): key for consistent_hash and ip_hash: "ip" (default) | "header:NAME" |
    /// "cookie:NAME" | "path".
    HashKey hash_key;
    /// fail_open (new): when every upstream is unhealthy or ejected, pick among all of them
    /// anyway instead of answering 503. Default false.
    bool fail_open = false;
    /// max_fails (new): consecutive failed requests (connect error, timeout or 5xx from an
    /// upstream) after which passive health ejects the upstream for fail_timeout. Default 3;
    /// 0 disables passive ejection.
    uint32_t max_fails = 3;
    /// fail_timeout (new): the failure window, and how long a passively ejected upstream stays
    /// out the first time. Default 10s.
    Duration fail_timeout = std::chrono::seconds(10);
    /// count_5xx (new): a 5xx answer counts toward max_fails like a connect error, reset or
    /// timeout. Default false: an application's errors never eject its upstreams.
    bool count_5xx = false;
    /// max_ejection_percent (new): at most this share of the backend's upstreams is passively
    /// ejected at once; the last usable one never is. 0..100, default 50.
    uint32_t max_ejection_percent = 50;
    /// max_ejection_time (new): an upstream ejected again soon after its last ejection ended
    /// stays out fail_timeout × n (the n-th ejection in a row), at most this long. Default 300s.
    Duration max_ejection_time = std::chrono::seconds(300);
    /// panic_threshold (new): when fewer than this percentage of the backend's upstreams are
    /// healthy (active checks and ejections), health is ignored and load spread over all of
    /// them. 0..100, default 50; 0 turns panic routing off.
    uint32_t panic_threshold = 50;
    /// retry_budget (new): a route's retries to this backend start only while the retries in
    /// flight (every worker) are below this percentage of its requests in flight, or below
    /// min_retry_concurrency. 0..100, default 20; 0 = no budget.
    uint32_t retry_budget = 20;
    /// min_retry_concurrency (new): retries in flight always allowed. Default 3.
    uint32_t min_retry_concurrency = 3;
    /// max_requests (new): requests in flight to this backend over every worker; more are
    /// answered 503 at once. Default 0 = no limit.
    uint32_t max_requests = 0;
    /// max_pending (new): connections to this backend's upstreams being made at once; more
    /// requests are answered 503 at once. Default 0 = no limit.
    uint32_t max_pending = 0;
    /// failure_percentage (new): also eject an upstream once this percentage of the attempts a
    /// worker sent it within fail_timeout failed (judged on at least
    /// failure_percentage_min_requests of them). 0..100, default 0 = off.
    uint32_t failure_percentage = 0;
    uint32_t failure_percentage_min_requests = 20;
    /// health_check (orig block, extended): effective active-check settings.
    BackendHealthCheckConfig health_check;

    bool operator==(const BackendConfig&) const = default;
};

struct LoadBalancingConfig {
    /// algorithm (orig; required there, optional here): default for backends without their own.
    /// Default round_robin.
    LbAlgorithm algorithm = LbAlgorithm::RoundRobin;
    /// backends (orig, required): in document order; names are unique.
    std::vector<BackendConfig> backends;

    /// The backend with this name, or nullptr.
    const BackendConfig* findBackend(std::string_view name) const {
        for (const auto& b : backends) {
            if (b.name == name) {
                return &b;
            }
        }
        return nullptr;
    }

    bool operator==(const LoadBalancingConfig&) const = default;
};

// ---------------------------------------------------------------------------------------------
// routes
// ---------------------------------------------------------------------------------------------

/// Route `websocket` block (orig).
struct RouteWebSocketConfig {
    /// enabled (orig, required in the block): turns on upgrade checks for this route.
    bool enabled = false;
    /// protocols (orig): allowed subprotocols. Absent = any; an empty list = none allowed.
    std::optional<std::vector<std::string>> protocols;
    /// timeout (orig): maximum lifetime of an upgraded connection. Absent = no limit.
    std::optional<Duration> timeout;
    /// idle_timeout (orig): close after this long without a frame in either direction.
    /// Absent = no idle limit beyond the upstream read timeout.
    std::optional<Duration> idle_timeout;
    /// max_message_size (orig): largest message in bytes; larger closes with 1009.
    /// Default 1 MiB (the original did not enforce any limit).
    uint64_t max_message_size = 1024 * 1024;

    bool operator==(const RouteWebSocketConfig&) const = default;
};

/// Route `cache` block (orig). Absent optional fields inherit the global `cache` block.
struct RouteCacheConfig {
    /// enabled (orig, required in the block).
    bool enabled = false;
    /// ttl (orig): fallback TTL when the response carries no max-age/Expires.
    /// Absent = cache.default_ttl.
    std::optional<Duration> ttl;
    /// max_body_size (orig): largest cacheable body in bytes. Absent = cache.max_body_size.
    std::optional<uint64_t> max_body_size;
    /// cache_with_query_params (orig): absent = cache.cache_with_query_params.
    std::optional<bool> cache_with_query_params;
    /// methods (orig): cacheable methods, upper-cased. Default ["GET"].
    std::vector<std::string> methods{"GET"};

    bool operator==(const RouteCacheConfig&) const = default;
};

struct RouteConfig {
    /// id (orig, required, unique).
    std::string id;
    /// path (orig, required): glob pattern, or a PCRE2 regex when written as `^…$` (checked to
    /// compile at load with PCRE2_UTF).
    std::string path;
    /// methods (orig): allowed methods, upper-cased. Empty = any method.
    std::vector<std::string> methods;
    /// host (orig): host pattern (glob or `^…$`). Absent = any host.
    std::optional<std::string> host;
    /// backend (orig, required): backend name, and its index in load_balancing.backends.
    std::string backend;
    size_t backend_index = 0;
    /// middleware (orig): names to run, in order; each is one of auth | rate_limit | cors |
    /// transform and its middleware block exists (both checked at load). Default none.
    std::vector<std::string> middleware;
    /// timeout (orig): overrides the upstream read, write and TCP+TLS connect timeouts.
    /// Absent = the upstream's own timeouts.
    std::optional<Duration> timeout;
    /// retries (orig, the original ignored it): extra attempts on another upstream for
    /// idempotent requests that failed before any response byte was sent. Default 0.
    uint32_t retries = 0;
    /// retry_on (new): what is retried (within `retries`): connect_failure, reset, timeout,
    /// 502, 503, 504 (RetryOn bits). Default connect_failure and reset. A timeout or a 5xx
    /// answer is retried only for idempotent requests (or with retry_non_idempotent).
    uint8_t retry_on = retry_on::kDefault;
    /// per_try_timeout (new): each attempt's read/write timeout (the smaller of it and
    /// `timeout` or the upstream's own). Absent = none of its own.
    std::optional<Duration> per_try_timeout;
    /// retry_backoff, retry_backoff_max (new): wait before the n-th retry, drawn at random up to
    /// retry_backoff × 2^(n-1), at most retry_backoff_max ("full jitter"). Default 25ms / 250ms.
    Duration retry_backoff = std::chrono::milliseconds(25);
    Duration retry_backoff_max = std::chrono::milliseconds(250);
    /// retry_non_idempotent (new): also retry requests that are not idempotent (POST, PATCH,
    /// ...) after some of their bytes reached an upstream. The upstream may have acted on them:
    /// a payment may be made twice. Default false.
    bool retry_non_idempotent = false;
    /// fresh_connection_for_unsafe (new): send requests that are not idempotent on a new
    /// upstream connection, never a pooled one, so the stale-connection race cannot leave their
    /// fate unknown. Costs a connect per such request. Default false.
    bool fresh_connection_for_unsafe = false;
    /// strip_prefix (new): literal prefix removed from the path sent upstream. Must start with
    /// '/'. Absent = none.
    std::optional<std::string> strip_prefix;
    /// rewrite (new): replacement for the path sent upstream (the query is kept); applied after
    /// strip_prefix. Must start with '/'. Absent = none.
    std::optional<std::string> rewrite;
    /// websocket (orig): absent = not a WebSocket route.
    std::optional<RouteWebSocketConfig> websocket;
    /// cache (orig): absent = responses on this route are not cached.
    std::optional<RouteCacheConfig> cache;

    bool operator==(const RouteConfig&) const = default;
};

// ---------------------------------------------------------------------------------------------
// middleware
// ---------------------------------------------------------------------------------------------

/// `middleware.rate_limiting.key` (orig, extended).
struct RateLimitKey {
    enum class Kind : uint8_t {
        Ip,          // ip — the client address (see server.trusted_proxies)
        Header,      // !header NAME · {header: NAME} · "header:NAME"
        QueryParam,  // !query_param NAME · {query_param: NAME} · "query_param:NAME"
        Route,       // route (new) — one bucket per route id
    };
    Kind kind = Kind::Ip;
    std::string name;  // header or query parameter name; empty for Ip and Route

    bool operator==(const RateLimitKey&) const = default;
};

/// `middleware.rate_limiting` (orig) → route middleware name `rate_limit`. A token bucket of
/// `burst` requests refilled at `rate` per second, starting full; one bucket per key, shared by
/// every worker (GCRA in shared memory).
struct RateLimitConfig {
    enum class Per : uint8_t { Second, Minute, Hour };
    enum class Scope : uint8_t { Shared, Route };
    enum class MissingKey : uint8_t { Share, Reject };
    enum class OnFull : uint8_t { Allow, Deny };

    /// requests_per_second (orig) or requests_per_minute / requests_per_hour (new): exactly one
    /// is required. A decimal number (0.5 per second). `requests` as written, `per` its unit.
    double requests = 0;
    Per per = Per::Second;
    /// burst (orig): bucket capacity. Default 2 × the per-second rate, rounded up (at least 1
    /// unless the rate is 0), saturating.
    uint32_t burst = 0;
    /// key (orig, required).
    RateLimitKey key;
    /// scope (new): shared — one bucket per key for every route listing this limit (orig);
    /// route — one bucket per key and route. Default shared.
    Scope scope = Scope::Shared;
    /// missing_key (new): what a request without the key header / parameter gets: share — one
    /// bucket for all such requests (default); reject — 400.
    MissingKey missing_key = MissingKey::Share;
    /// on_full (new): a new key when the key table has no free slot: allow (default) or deny
    /// (429). Counted and logged at a bounded rate.
    OnFull on_full = OnFull::Allow;
    /// max_keys (new): keys tracked at once (the table holds twice as many slots). Default
    /// 100000; 1-16777216.
    uint32_t max_keys = 100000;
    /// headers (new): admitted responses carry RateLimit-Policy / RateLimit too. Default false
    /// (refusals always carry them).
    bool headers = false;
    /// legacy_headers (new): also X-RateLimit-Limit / -Remaining / -Reset. Default false.
    bool legacy_headers = false;

    enum class Store : uint8_t { Local, Redis };
    enum class OnStoreError : uint8_t { Allow, Deny, Local };
    /// store (new): local — the shared-memory table of this machine (default); redis — the
    /// top-level `redis` block's server, shared by every Photon instance that uses it.
    Store store = Store::Local;
    /// on_store_error (new, store: redis): a decision Redis could not make in time (down, slow,
    /// failing): allow — admit; deny — 429; local (default) — decide on this machine's table
    /// with rate and burst divided by `instances`.
    OnStoreError on_store_error = OnStoreError::Local;
    /// instances (new, store: redis): Photon instances sharing the limit, 1-1024 (default 1);
    /// on_store_error: local divides the limit by it.
    uint32_t instances = 1;
    enum class Sync : uint8_t { Exact, Batched };
    /// sync (new, store: redis): exact — one Redis round trip per decision (default); batched —
    /// each worker takes a lease of up to rate x batch_interval tokens per round trip and
    /// admits from it (never more than exact; fewer by the unused rest of expired leases).
    Sync sync = Sync::Exact;
    /// batch_interval (new, sync: batched): how long a lease lasts. 1ms-10s, default 100ms.
    Duration batch_interval = std::chrono::milliseconds(100);

    /// Requests per second.
    double ratePerSecond() const {
        return per == Per::Second ? requests : per == Per::Minute ? requests / 60 : requests / 3600;
    }

    bool operator==(const RateLimitConfig&) const = default;
};

enum class AuthType : uint8_t {
    Jwt,     // "jwt": needs the jwt block
    ApiKey,  // "api_key": needs the api_key block
    Basic,   // "basic": needs the basic block (an htpasswd file; the original accepted anything)
};

/// RFC 7518 / 8037 names; the order is the auth module's JwtAlg order.
enum class JwtAlgorithm : uint8_t {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA
};
inline constexpr std::string_view kJwtAlgorithmNames[] = {"HS256", "HS384", "HS512", "RS256",
                                                          "RS384", "RS512", "PS256", "PS384",
                                                          "PS512", "ES256", "ES384", "EdDSA"};

/// `middleware.authentication.jwt` (orig, extended).
struct JwtConfig {
    /// secret (orig): HMAC key for HS*, raw bytes (or base64 with secret_base64). Required for
    /// HS* unless a jwks_file supplies "oct" keys. Masked in dumps.
    std::string secret;
    /// secret_base64 (new): the secret is base64 (standard or url alphabet) of the key bytes.
    bool secret_base64 = false;
    /// algorithm (orig) or algorithms (new, a list): the accepted algorithms, authoritative.
    std::vector<JwtAlgorithm> algorithms;
    /// public_key_file (new): PEM public key (or certificate) for RS*/PS*/ES*/EdDSA.
    std::string public_key_file;
    /// jwks_file (new): JWKS document with the verification keys (selected by kid).
    std::string jwks_file;
    /// jwks_url (new): an https:// URL serving a JWKS document, fetched by the master at start,
    /// every jwks_refresh_interval and when a token names an unknown kid (at most every 5 s);
    /// the last good document is kept when a fetch fails. Not with public_key_file/jwks_file.
    std::string jwks_url;
    /// jwks_ca_file (new): PEM CA certificates to verify the JWKS server with, instead of the
    /// system's.
    std::string jwks_ca_file;
    /// jwks_refresh_interval (new): default 5 minutes.
    Duration jwks_refresh_interval = std::chrono::minutes(5);
    /// jwks_timeout (new): bound on one fetch, connect included. Default 5 seconds.
    Duration jwks_timeout = std::chrono::seconds(5);
    /// header (orig): header carrying the token ("Bearer " scheme, case-insensitive).
    /// Default "Authorization".
    std::string header = "Authorization";
    /// cookie (new): a cookie that may carry the token instead. Empty = none.
    std::string cookie;
    /// query (new): a query parameter that may carry the token instead; removed before
    /// forwarding. Empty = none.
    std::string query;
    /// leeway (new): clock skew tolerated for exp/nbf. Default 0.
    Duration leeway = std::chrono::seconds(0);
    /// issuer (new): accepted `iss` values (one or a list). Empty = not checked.
    std::vector<std::string> issuer;
    /// audience (new): accepted `aud` values (one or a list). Empty = not checked.
    std::vector<std::string> audience;
    /// required_claims (new): claims that must be present (a list of names), or present with a
    /// given value (a map name → value). A valid token without them gets 403.
    std::vector<std::pair<std::string, std::optional<std::string>>> required_claims;
    /// require_exp (new): refuse tokens without `exp`. Default false.
    bool require_exp = false;
    /// max_token_size (new): longest accepted token in bytes. Default 8192.
    uint32_t max_token_size = 8192;
    /// forward_claims (new): claim → upstream request header, replacing any client-sent field
    /// of that name. In document order.
    std::vector<std::pair<std::string, std::string>> forward_claims;
    /// forward_token (new): false removes the credential (header or query) before forwarding.
    /// Default true.
    bool forward_token = true;

    bool operator==(const JwtConfig&) const = default;
};

/// `middleware.authentication.api_key` (orig, extended).
struct ApiKeyConfig {
    /// One accepted key and the consumer name forwarded for it (may be empty).
    struct Key {
        std::string key;
        std::string name;
        bool operator==(const Key&) const = default;
    };
    /// keys (orig): accepted keys, strings or {key, name} maps. Masked in dumps.
    std::vector<Key> keys;
    /// keys_file (new): one key per line ("KEY" or "KEY NAME"), '#' comments; read at load and
    /// at every reload. Keys from both places are accepted.
    std::string keys_file;
    /// The keys read from keys_file at load (not written back by a dump).
    std::vector<Key> file_keys;
    /// header (orig): header carrying the key. Default "X-API-Key".
    std::string header = "X-API-Key";
    /// query (README key the original ignored): query parameter that may carry the key instead;
    /// it is removed before forwarding. Absent = header only.
    std::optional<std::string> query;
    /// consumer_header (new): upstream header naming the matched key's consumer (client-sent
    /// fields of that name are removed). Default "X-Consumer"; empty = none.
    std::string consumer_header = "X-Consumer";
    /// forward_key (new): false removes the key header before forwarding. Default true.
    bool forward_key = true;

    bool operator==(const ApiKeyConfig&) const = default;
};

/// `middleware.authentication.basic` (new).
struct BasicAuthConfig {
    /// htpasswd_file (required): "user:hash" lines; bcrypt ($2y$/$2b$), SHA-crypt ($5$/$6$) and
    /// yescrypt ($y$) hashes.
    std::string htpasswd_file;
    /// realm: the WWW-Authenticate realm. Default "Photon".
    std::string realm = "Photon";
    /// consumer_header: upstream header carrying the user name. Default "X-Consumer".
    std::string consumer_header = "X-Consumer";

    bool operator==(const BasicAuthConfig&) const = default;
};

/// `middleware.authentication` (orig) → route middleware name `auth`.
struct AuthConfig {
    /// auth_type (orig, required): jwt | api_key | basic. The matching block is required.
    AuthType auth_type = AuthType::Jwt;
    std::optional<JwtConfig> jwt;
    std::optional<ApiKeyConfig> api_key;
    std::optional<BasicAuthConfig> basic;
    /// cache_ttl (new): how long a verified credential is remembered (a JWT at most until its
    /// exp). Default 5 minutes; 0 turns the cache off.
    Duration cache_ttl = std::chrono::minutes(5);

    bool operator==(const AuthConfig&) const = default;
};

/// `middleware.cors` (orig) → route middleware name `cors`.
struct CorsConfig {
    /// allowed_origins, allowed_methods, allowed_headers (orig, all required). "*" in origins
    /// allows any origin.
    std::vector<std::string> allowed_origins;
    std::vector<std::string> allowed_methods;
    std::vector<std::string> allowed_headers;
    /// max_age (orig): Access-Control-Max-Age in whole seconds. Absent = header not sent.
    std::optional<Duration> max_age;
    /// expose_headers (new): Access-Control-Expose-Headers on actual responses. Default none.
    std::vector<std::string> expose_headers;
    /// allow_credentials (new): send Access-Control-Allow-Credentials: true. Not with "*" in
    /// allowed_origins (load error). Default false.
    bool allow_credentials = false;

    bool operator==(const CorsConfig&) const = default;
};

/// One side (request or response) of `middleware.transform`.
struct HeaderTransformConfig {
    HeaderList add;                   // add (orig): appended, existing values kept
    std::vector<std::string> remove;  // remove (orig): names deleted
    HeaderList set;                   // set (orig): replace all values

    bool operator==(const HeaderTransformConfig&) const = default;
};

/// `middleware.transform` (orig) → route middleware name `transform`.
struct TransformConfig {
    HeaderTransformConfig request_headers;   // applied to the upstream request
    HeaderTransformConfig response_headers;  // applied to the client response

    bool operator==(const TransformConfig&) const = default;
};

/// `middleware` (orig; required there, optional here). A block that is absent cannot be used by
/// a route (load error).
struct MiddlewareConfig {
    std::optional<RateLimitConfig> rate_limiting;
    std::optional<AuthConfig> authentication;
    std::optional<CorsConfig> cors;
    std::optional<TransformConfig> transform;
    /// Named instances (new): middleware."rate_limit:NAME", "auth:NAME", "cors:NAME",
    /// "transform:NAME", each with the shape of the default block; a route picks one by listing
    /// "name:NAME". In document order.
    std::vector<std::pair<std::string, RateLimitConfig>> rate_limit_named;
    std::vector<std::pair<std::string, AuthConfig>> auth_named;
    std::vector<std::pair<std::string, CorsConfig>> cors_named;
    std::vector<std::pair<std::string, TransformConfig>> transform_named;

    /// The instance `instance` ("" = the default block) of a middleware, or nullptr.
    template <typename T>
    static const T* instance(const std::optional<T>& def,
                             const std::vector<std::pair<std::string, T>>& named,
                             std::string_view instance) {
        if (instance.empty()) {
            return def ? &*def : nullptr;
        }
        for (const auto& [n, c] : named) {
            if (n == instance) {
                return &c;
            }
        }
        return nullptr;
    }

    bool operator==(const MiddlewareConfig&) const = default;
};

// ---------------------------------------------------------------------------------------------
// health_check, metrics, cache
// ---------------------------------------------------------------------------------------------

/// `health_check` (orig, block required; all keys optional here).
struct HealthCheckConfig {
    /// enabled (new): run active health checks. Default true.
    bool enabled = true;
    /// interval (orig): default check interval. Default 10s.
    Duration interval = std::chrono::seconds(10);
    /// timeout (orig): per-check timeout. Default 5s.
    Duration timeout = std::chrono::seconds(5);
    /// failure_threshold (orig): consecutive failures that mark an upstream unhealthy. Default 3.
    uint32_t failure_threshold = 3;
    /// success_threshold (orig): consecutive successes that mark it healthy again. Default 2.
    uint32_t success_threshold = 2;

    bool operator==(const HealthCheckConfig&) const = default;
};

/// `metrics` (orig, block required).
struct MetricsConfig {
    /// prometheus (orig, required): serve Prometheus metrics.
    bool prometheus = false;
    /// metrics_path (orig): default "/metrics".
    std::string metrics_path = "/metrics";
    /// metrics_addr (orig): metrics listener (also serves /health). Absent = none.
    std::optional<SocketAddress> metrics_addr;
    /// detailed_metrics (orig; required there, optional here): per-status/route/backend labels.
    /// Default false.
    bool detailed_metrics = false;
    /// expose_on_main (new): also answer metrics_path on the public listeners. Default false.
    bool expose_on_main = false;

    bool operator==(const MetricsConfig&) const = default;
};

/// `cache` (orig, optional block).
struct CacheConfig {
    /// True when the block was present.
    bool configured = false;
    /// enabled (orig, required when the block is present): master switch. When the block is
    /// absent, routes' own cache blocks decide alone (as in the original), so the effective
    /// default is true.
    bool enabled = true;
    /// max_entries (orig): default 10000.
    uint64_t max_entries = 10000;
    /// default_ttl (orig): default 300s.
    Duration default_ttl = std::chrono::seconds(300);
    /// max_body_size (orig): largest cacheable body in bytes. Default 1 MiB.
    uint64_t max_body_size = 1024 * 1024;
    /// cache_with_query_params (orig): key includes the query string. Default false.
    bool cache_with_query_params = false;
    /// max_memory (new): bytes of the shared body store (every worker's one cache). Default
    /// 64 MiB; reserved in /dev/shm when the master starts.
    uint64_t max_memory = 64u << 20;
    /// min_ttl (new): floor of the default freshness (route ttl / default_ttl) given to
    /// responses without max-age, s-maxage or Expires; never applied to explicit freshness.
    /// Default 60s (the original README's minimum).
    Duration min_ttl = std::chrono::seconds(60);
    /// cache_authorized (new): store answers to requests with credentials (Authorization, or
    /// any request on a route with `auth`) even when the response does not say public,
    /// s-maxage or must-revalidate. Default false.
    bool cache_authorized = false;
    /// strip_set_cookie (new): store responses that carry Set-Cookie, without that field (the
    /// response that is stored still reaches its client whole). Default false: such responses
    /// are not stored.
    bool strip_set_cookie = false;
    /// stale_while_revalidate / stale_if_error (new): gateway defaults of the RFC 5861
    /// directives for responses that do not carry them. Default 0 (off).
    Duration stale_while_revalidate = Duration::zero();
    Duration stale_if_error = Duration::zero();
    /// lock_timeout (new): concurrent misses for one key (every worker's) send one upstream
    /// request; the others wait for its entry at most this long, then go upstream themselves.
    /// Default 5s; 0 turns coalescing off.
    Duration lock_timeout = std::chrono::seconds(5);

    bool operator==(const CacheConfig&) const = default;
};

/// `redis` (new, optional block): the server that holds the counters of limits with
/// `store: redis`.
/// `redis.tls` (new): TLS to the Redis servers, with the upstreams' key names (UpstreamConfig).
/// Given as a boolean (`tls: true` = enabled with the defaults) or as this block.
struct RedisTlsConfig {
    /// enabled: default false without the block, true when the block is given.
    bool enabled = false;
    /// tls_verify: verify the server's certificate chain and name (sni_hostname, else the
    /// address connected to, which the certificate must then carry as an IP SAN). Default true;
    /// false is warned about at load.
    bool tls_verify = true;
    /// ca_file: PEM CAs the servers' certificates must chain to. Empty = the system's store.
    std::string ca_file;
    /// tls_cert / tls_key: client certificate (chain, leaf first) and key (PEM, no pass
    /// phrase) for servers that want one (`tls-auth-clients yes`). Empty = none.
    std::string tls_cert;
    std::string tls_key;
    /// sni_hostname: TLS server name sent and verified for every server (cluster nodes and
    /// Sentinel-named masters included). Absent = no SNI, and the certificate must carry the IP
    /// address connected to.
    std::optional<std::string> sni_hostname;
    /// sentinels (sentinel mode): the Sentinels are spoken to over TLS too. Default true.
    bool sentinels = true;

    bool operator==(const RedisTlsConfig&) const = default;
};

struct RedisConfig {
    enum class Mode : uint8_t { Standalone, Sentinel, Cluster };
    /// True when the block was present.
    bool configured = false;
    /// address (one) or addresses (a list): IP literal and port, "127.0.0.1:6379".
    /// Standalone mode takes exactly one; cluster mode asks any seed for the slot map; sentinel
    /// mode lists the Sentinels, asked in turn for the master's address.
    std::vector<SocketAddress> addresses;
    /// mode: standalone (default), sentinel or cluster.
    Mode mode = Mode::Standalone;
    /// master_name: the name the Sentinels monitor (sentinel mode only, required there).
    std::string master_name;
    /// sentinel_username / sentinel_password: AUTH sent to the Sentinels (sentinel mode only;
    /// empty = none). Masked in dumps like password; give them through ${ENV}.
    std::string sentinel_username;
    std::string sentinel_password;
    /// username (ACL user; empty = the default user) and password (empty = no AUTH). Masked in
    /// dumps; give them through ${ENV}.
    std::string username;
    std::string password;
    /// database: SELECT index, 0-15 by default on a stock server; 0-1000000 accepted.
    uint32_t database = 0;
    /// connect_timeout: TCP connect + AUTH/SELECT/PING. Default 1s.
    Duration connect_timeout = std::chrono::seconds(1);
    /// command_timeout: the deadline of one decision; a request waits at most this long before
    /// on_store_error decides. Default 250ms.
    Duration command_timeout = std::chrono::milliseconds(250);
    /// retry_interval: first pause before reconnecting after a failure (doubled up to 10x).
    /// Default 500ms.
    Duration retry_interval = std::chrono::milliseconds(500);
    /// key_prefix: prepended to every key. Default "photon:rl:".
    std::string key_prefix = "photon:rl:";
    /// pool_size: connections per worker process, 1-16. Default 2.
    uint32_t pool_size = 2;
    /// tls: see RedisTlsConfig.
    RedisTlsConfig tls;

    bool operator==(const RedisConfig&) const = default;
};

// ---------------------------------------------------------------------------------------------
// root
// ---------------------------------------------------------------------------------------------

struct Config {
    ServerConfig server;                 // server (required)
    LoadBalancingConfig load_balancing;  // load_balancing (required)
    std::vector<RouteConfig> routes;     // routes (required, may be empty), in document order
    MiddlewareConfig middleware;         // middleware (optional)
    HealthCheckConfig health_check;      // health_check (required)
    MetricsConfig metrics;               // metrics (required)
    CacheConfig cache;                   // cache (optional)
    RedisConfig redis;                   // redis (optional)

    bool operator==(const Config&) const = default;
};

/// Config-key spellings of the enums, for messages and dumps.
inline std::string_view lbAlgorithmName(LbAlgorithm a) {
    switch (a) {
        case LbAlgorithm::RoundRobin:
            return "round_robin";
        case LbAlgorithm::LeastConnections:
            return "least_connections";
        case LbAlgorithm::WeightedRoundRobin:
            return "weighted_round_robin";
        case LbAlgorithm::IpHash:
            return "ip_hash";
        case LbAlgorithm::ConsistentHash:
            return "consistent_hash";
        case LbAlgorithm::Random:
            return "random";
    }
    return "?";
}

inline std::string_view healthCheckTypeName(HealthCheckType t) {
    switch (t) {
        case HealthCheckType::Tcp:
            return "tcp";
        case HealthCheckType::Http:
            return "http";
        case HealthCheckType::Https:
            return "https";
    }
    return "?";
}

inline std::string_view jwtAlgorithmName(JwtAlgorithm a) {
    return kJwtAlgorithmNames[static_cast<size_t>(a)];
}

inline std::string_view authTypeName(AuthType t) {
    return t == AuthType::Jwt      ? std::string_view("jwt")
           : t == AuthType::ApiKey ? std::string_view("api_key")
                                   : std::string_view("basic");
}

}  // namespace photon::core
