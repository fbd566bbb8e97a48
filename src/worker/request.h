// SPDX-License-Identifier: Apache-2.0
// The request as the phase pipeline and the modules see it: phases, verdicts, the per-request
// arena and module slots, the reply being built, and header editing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/http_parser.h"
#include "modules/routing/router.h"

namespace photon::worker {

struct RequestMeta;
struct RouteRt;
class Request;

/// The phases every request runs, in this order (see src/worker/README.md, "Life of a request").
enum class Phase : uint8_t {
    Route,         // request id, normalisation, route match, 404/405 (built in), then handlers
    Access,        // CORS preflight, rate limit, authentication
    CacheLookup,   // a fresh cached answer becomes the response (no module yet)
    Proxy,         // request header transforms; then the built-in step: path rewrite, upstream
                   // head, balancer pick, pool, retries
    HeaderFilter,  // response header changes: upstream responses and gateway replies alike
    BodyFilter,    // streaming response-body slices: reserved, no module uses it yet and the
                   // engine does not call it (the response cache will)
    Log,           // handlers, then the access log (metrics and released counts later)
};
inline constexpr size_t kPhaseCount = 7;

/// What a phase handler tells the engine.
enum class Verdict : uint8_t {
    Next,       // done here; run the next handler
    SkipPhase,  // nothing more to do in this phase
    Respond,    // the reply is set (Request::respond/fail): continue at HeaderFilter
    Suspend,    // asynchronous work started; the handler calls Request::resume() exactly once
};

/// A phase handler. `conf` is the module's immutable per-instance configuration (built in the
/// master, inherited through fork). Runs on the worker's loop; must not block.
using PhaseFn = Verdict (*)(Request& req, const void* conf);

/// Called when a suspended request is abandoned (the client went away or the worker stops):
/// the module cancels its pending work and must not call resume() afterwards.
using AbortFn = void (*)(Request& req, void* arg);

struct Handler {
    PhaseFn fn = nullptr;
    const void* conf = nullptr;
    Phase phase = Phase::Route;
    uint16_t module = 0;  // registry index: the module's slot
};

/// One route's handlers, in pipeline order: grouped by phase, and inside a phase in the
/// registry's module order (never the order of the route's `middleware` list). Built once at
/// load; a route without middleware has no handlers and costs nothing per request.
struct Chain {
    std::vector<Handler> handlers;
    std::array<uint16_t, kPhaseCount + 1> start{};  // phase p runs [start[p], start[p + 1])
    // A module answers every CORS preflight (OPTIONS with Origin and
    // Access-Control-Request-Method) on this route, so the route takes preflights for its paths
    // even when its `methods` leave out OPTIONS.
    bool answers_preflight = false;
    uint16_t slots = 0;  // module slots its handlers use (highest module index + 1)
    // A handler reads the route match's captures (${path.NAME}); otherwise the connection does
    // not copy the match into the request.
    bool needs_match = false;

    bool has(Phase p) const {
        return start[static_cast<size_t>(p)] != start[static_cast<size_t>(p) + 1];
    }
    bool empty() const { return handlers.empty(); }
};

/// Field edits the connection applies while it writes the upstream request head, in its one
/// pass over the client's fields: cheaper than editing the field list first. Built in the
/// request's arena by Proxy-phase handlers (request header transforms) and chained in handler
/// order through `next`. Drops apply to the client's fields only; added fields go after them.
struct HeadEdits {
    const std::string_view* drop = nullptr;  // names removed (case-insensitive)
    size_t drop_count = 0;
    uint64_t drop_mask = 0;  // nameLengthMask() of `drop`
    /// A field appended: `text` is the preformatted "Name: " followed by `value` and CRLF, or,
    /// for a constant value, the whole line "Name: value\r\n" (`whole`).
    struct Field {
        std::string_view text;
        std::string_view value;
        bool whole = false;
        /// The field's name (the text before ": ").
        std::string_view name() const { return text.substr(0, text.find(':')); }
    };
    const Field* add = nullptr;  // in order
    uint16_t add_count = 0;
    bool sets_forwarded_proto = false;  // an added field replaces the gateway's X-Forwarded-Proto
    bool sets_forwarded_host = false;   // ... X-Forwarded-Host
    HeadEdits* next = nullptr;

    /// Whether some edit of the chain drops `name`. Most names are passed over on their length.
    bool drops(std::string_view name) const {
        const size_t bit = name.size() < 63 ? name.size() : 63;
        if ((drop_mask >> bit & 1) == 0 && next == nullptr) {
            return false;
        }
        return dropsSlow(name);
    }
    bool dropsSlow(std::string_view name) const;
};

/// Bytes of per-request arena (expanded header values, copies of request data).
inline constexpr size_t kArenaSize = 4096;

/// Base of a module's compiled per-instance configuration (owned by the Proxy model, read by
/// the module's handlers through Handler::conf).
struct ModuleConf {
    virtual ~ModuleConf() = default;
};

/// Most modules a build can register (slot array size).
inline constexpr size_t kMaxModules = 16;

/// The connection side of a request: what the engine asks the connection code to do. The
/// connection implements it; unit tests drive the engine with a socket-less stand-in.
class RequestHost {
public:
    virtual ~RequestHost() = default;
    /// The built-in Proxy step: pick an upstream and forward. The connection comes back with
    /// Request::responseHead() when the upstream's head arrives, or with a gateway reply.
    virtual void proxy(Request& req) = 0;
    /// Writes a gateway reply (respond/fail) after HeaderFilter ran. An upstream's head is
    /// built by the connection itself when runHeaderFilter() returns.
    virtual void sendHead(Request& req) = 0;
    /// A suspended request resumed: the connection takes back its socket events.
    virtual void resumed(Request& req) = 0;
};

/// One request in flight. Lives inside its connection and is reused for the next request;
/// everything a module allocates comes from the request's arena and is gone after Log.
///
/// Views into the request head (`head`, `path`, captures) are valid until the Proxy phase has
/// built the upstream request; a module that needs request data later (HeaderFilter, Log) copies
/// it into the arena during an earlier phase (Request::copy()).
/// What a TLS connection negotiated, for the ${tls_*} variables: views into OpenSSL's constant
/// strings and the connection's own copy of the client certificate's subject; empty views on a
/// plain connection.
struct TlsInfo {
    std::string_view protocol;        // "TLSv1.3"
    std::string_view cipher;          // "TLS_AES_128_GCM_SHA256"
    std::string_view sni;             // the server name the client asked for
    std::string_view client_subject;  // RFC 2253 subject of the verified client certificate
    std::string_view client_verify;   // "SUCCESS" (a verified certificate) or "NONE"
};

class Request {
public:
    Request() = default;
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;

    // ----- set by the connection and the Route phase; read by modules -----
    RequestHost* host_ = nullptr;
    void* conn = nullptr;                      // the connection (for its RequestHost)
    core::http::RequestHead* head = nullptr;   // the parsed request
    core::http::ResponseHead* resp = nullptr;  // the head HeaderFilter edits (see responseHeaders)
    RequestMeta* meta = nullptr;               // id, method, path copies, status, timings
    std::string_view client_ip;                // text form of the client address
    const TlsInfo* tls = nullptr;              // the connection's TLS (null: plain text)
    std::string_view path;                     // normalised path (no query)
    std::string_view host_override;            // Host for the upstream request when set
    // The upstream request's query when query_override_set (a credential parameter removed);
    // empty = no query at all.
    std::string_view query_override;
    bool query_override_set = false;
    // A WebSocket upgrade that passed the route's checks: if the upstream agrees, the
    // connection becomes a tunnel (modules may treat it specially: cors checks its Origin).
    bool websocket = false;
    const RouteRt* route = nullptr;            // null until matched
    const Chain* chain = nullptr;              // the route's handlers (null: none)
    mod::routing::Match match;                 // captures for `{name}` segments
    const mod::routing::Router* router = nullptr;
    std::string_view upstream;            // address of the upstream that answered
    HeadEdits* upstream_edits = nullptr;  // applied to the upstream request head
    /// Claims of the credential that authenticated the request (set by auth; arena memory, or
    /// configuration text for names), for ${jwt.CLAIM}. Valid until the request ends.
    struct Claim {
        std::string_view name;
        std::string_view value;
    };
    const Claim* claims = nullptr;
    uint16_t claim_count = 0;
    // A HeaderFilter handler took charge of X-Gateway (set or removed it): the connection does
    // not add its own.
    bool own_gateway_field = false;
    // The module (registry index + 1) whose Route..Proxy handler answered the request in place
    // (a refusal such as 401 or 429); 0 = none. For the metrics.
    uint8_t answered_by = 0;
    // Why (module-defined, 1-based; 0 = unknown) — the auth module's mod::metrics::kAuthReasons.
    uint8_t refusal_reason = 0;

    // ----- the reply -----
    /// Sets a gateway reply with no body (a CORS preflight's 204, for instance).
    Verdict respond(int status);
    /// Sets a gateway error reply: the JSON error body {"error": why, ...}. `why` must outlive the
    /// request (a literal, config text or arena memory).
    Verdict fail(int status, std::string_view why);
    /// Whether the response is gateway-generated (respond/fail), not an upstream's.
    bool local() const { return local_; }
    int replyStatus() const { return reply_status_; }
    std::string_view replyError() const { return reply_error_; }
    bool replyHasBody() const { return reply_body_; }

    /// The response's header fields, for HeaderFilter handlers: the upstream's fields, or the
    /// gateway reply's own (Allow, Retry-After ...). Edit them with the functions below.
    core::http::HeaderList& responseHeaders() { return resp->headers; }

    // ----- per-request memory -----
    /// Arena memory for this request; released after Log. Returns nullptr when the request used
    /// more than its arena holds (callers answer 431/502 then).
    char* alloc(size_t n);
    /// A copy of `s` in the arena (empty view when it does not fit).
    std::string_view copy(std::string_view s);
    /// Appends `e` (arena memory) to the upstream head edits.
    void addUpstreamEdits(HeadEdits* e) {
        HeadEdits** tail = &upstream_edits;
        while (*tail != nullptr) {
            tail = &(*tail)->next;
        }
        e->next = nullptr;
        *tail = e;
    }
    /// Module state slot (registry index); null until the module sets it; cleared per request.
    void*& slot(uint16_t module) { return slots_[module]; }

    // ----- suspension -----
    /// For a handler that returns Suspend: `fn(req, arg)` runs if the request is abandoned while
    /// suspended (it cancels the work).
    void onAbort(AbortFn fn, void* arg) {
        abort_fn_ = fn;
        abort_arg_ = arg;
    }
    /// Continues a suspended request with the handler's final verdict (Next, SkipPhase or
    /// Respond). Called exactly once per Suspend, from the worker's loop, never after an abort.
    void resume(Verdict v);
    bool suspended() const { return suspended_; }

    // ----- engine (phases.cc) and connection use -----
    /// Clears the per-request state (called before the Route phase of every request).
    void reset() {
        route = nullptr;
        chain = nullptr;
        host_override = {};
        query_override = {};
        query_override_set = false;
        websocket = false;
        upstream = {};
        upstream_edits = nullptr;
        claims = nullptr;
        claim_count = 0;
        own_gateway_field = false;
        answered_by = 0;
        refusal_reason = 0;
        local_ = false;
        reply_body_ = false;
        reply_status_ = 0;
        suspended_ = false;
        abort_fn_ = nullptr;
        arena_used_ = 0;
    }
    /// Clears the module slots (only routes with handlers use them); `count` = how many
    /// modules the build registers.
    void clearSlots(size_t count = kMaxModules) {
        for (size_t i = 0; i < count && i < kMaxModules; ++i) {
            slots_[i] = nullptr;
        }
    }
    /// Abandons a suspended request (client gone): runs the abort callback once.
    void abort();

    // Engine position while running or suspended.
    Phase phase_ = Phase::Route;
    uint16_t pos_ = 0;

    // Internal to the engine (phases.cc); public only so that the connection stays
    // standard-layout.
    bool local_ = false;
    bool reply_body_ = false;
    bool suspended_ = false;
    int reply_status_ = 0;
    std::string_view reply_error_;
    AbortFn abort_fn_ = nullptr;
    void* abort_arg_ = nullptr;
    std::array<void*, kMaxModules> slots_{};
    uint32_t arena_used_ = 0;
    alignas(16) char arena_buf_[kArenaSize];
};

// ----- header editing (request and response heads alike) -----
// Added fields have line_len 0 and are written out as "Name: value"; their views must outlive
// the request's use of the head (config text or arena memory).

/// Removes every field named `name` (case-insensitive). Returns how many were removed.
size_t removeHeader(core::http::HeaderList& h, std::string_view name);
/// Removes every field whose name is one of `names` (case-insensitive), in one pass.
/// `len_mask` has bit min(length, 63) set for each name's length (nameLengthMask()), so that
/// most fields are passed over on their length alone.
void removeHeaders(core::http::HeaderList& h, const std::string_view* names, size_t count,
                   uint64_t len_mask);
/// The length mask removeHeaders() takes for `names`.
inline uint64_t nameLengthMask(const std::string_view* names, size_t count) {
    uint64_t m = 0;
    for (size_t i = 0; i < count; ++i) {
        m |= uint64_t{1} << (names[i].size() < 63 ? names[i].size() : 63);
    }
    return m;
}
/// Appends a field. False when the list is full (the caller answers 431 or 502).
inline bool addHeader(core::http::HeaderList& h, std::string_view name, std::string_view value) {
    if (h.count >= h.items.size()) {
        return false;
    }
    core::http::HeaderField& f = h.items[h.count++];
    f.name = name;
    f.value = value;
    f.hop_by_hop = false;
    f.line_len = 0;
    return true;
}
/// Replaces every field named `name` by one with `value` (appended at the end). False when the
/// list is full.
inline bool setHeader(core::http::HeaderList& h, std::string_view name, std::string_view value) {
    removeHeader(h, name);
    return addHeader(h, name, value);
}

}  // namespace photon::worker
