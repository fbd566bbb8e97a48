// SPDX-License-Identifier: Apache-2.0
// The response cache's request and response rules: the key, whether a stored response may be
// used, what a response stores. The connection (src/worker/http_conn.cc) calls these around
// the store (store.h); the RFC 9111 parsers are in rfc9111.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.h"
#include "core/http_parser.h"
#include "modules/cache/rfc9111.h"
#include "modules/cache/store.h"

namespace photon::mod::cache {

/// A route's compiled cache settings (RouteRt::cache).
struct RoutePolicy {
    bool on = false;             // the route caches (its block and the global switch agree)
    bool with_query = false;     // the key includes the query; else a query bypasses the cache
    bool authenticated = false;  // the route authenticates: its answers are "authorized"
    bool cache_authorized = false;
    bool strip_set_cookie = false;  // store responses with Set-Cookie, without it
    uint64_t max_body = 1u << 20;
    int64_t ttl = 300;  // freshness when the response gives none, seconds (min_ttl applied)
    uint32_t swr = 0;   // gateway default stale-while-revalidate, seconds
    uint32_t sie = 0;   // gateway default stale-if-error, seconds
    uint64_t lock_timeout_us = 5000000;  // coalescing: longest wait for another fill; 0 = off
};

/// Compiles a route's policy from the configuration.
RoutePolicy compilePolicy(const core::Config& cfg, const core::RouteConfig& route);
/// Whether any route of `cfg` caches (the store is mapped only then).
bool wanted(const core::Config& cfg);

/// This process's view of the store (unbound when no route caches) and its slot.
Store& store();
uint32_t writer();
void setWriter(uint32_t slot);

/// Builds "GET:host/path[?query]" (the host lower-cased) into `out`. Returns the length, or 0
/// when it does not fit `cap` or kMaxKey.
size_t buildKey(std::string_view host, std::string_view path, std::string_view query,
                bool with_query, char* out, size_t cap);

/// The Cache-Control of a head (every field of that name, in order).
CacheControl cacheControlOf(const core::http::HeaderList& h);
/// The value of the first field named `name`, or empty.
std::string_view fieldOf(const core::http::HeaderList& h, std::string_view name);

/// Whether a stored response may answer a request (RFC 9111 §4.2, §4.2.4, RFC 5861).
enum class Use : uint8_t {
    Fresh,       // serve it (HIT)
    Stale,       // serve it stale: the request's max-stale allows it (STALE)
    StaleSwr,    // serve it stale and refresh it in the background (STALE)
    Revalidate,  // ask the upstream (EXPIRED)
};
struct Judgement {
    Use use = Use::Revalidate;
    uint64_t age = 0;  // seconds, for the Age field
};
Judgement judge(const EntryMeta& m, uint64_t now_us, const CacheControl& req);

/// Whether the request's conditionals match the stored head (If-None-Match takes precedence
/// over If-Modified-Since): the answer is then a 304.
bool notModified(const core::http::HeaderList& request, const core::http::HeaderList& stored);

/// What a response gets stored as, decided at its head.
struct StorePlan {
    bool store = false;
    StoreDecision why = StoreDecision::Store;
    EntryMeta meta;           // everything but the lengths and stored_us
    uint64_t body_known = 0;  // Content-Length when framed by it (else 0)
};
/// `request_auth`: the request carried credentials; `request_cc`: its Cache-Control. Times are
/// wall-clock seconds.
StorePlan planStore(const RoutePolicy& pol, bool request_auth, const CacheControl& request_cc,
                    const core::http::ResponseHead& resp, int64_t request_time,
                    int64_t response_time);

/// Writes the head as stored: the status line and the end-to-end fields (no hop-by-hop ones,
/// no framing, no Age, no X-Request-ID; no Set-Cookie when `strip_set_cookie`), then CRLF.
/// Returns the length, 0 if over `cap`.
size_t serializeHead(const core::http::ResponseHead& resp, char* out, size_t cap,
                     bool strip_set_cookie = false);

/// Freshens a stored head with a 304's fields (RFC 9111 §4.3.4): the stored status line and
/// fields, each replaced by the 304's fields of that name, then the 304's other end-to-end
/// fields. Returns the length, 0 if over `cap`.
size_t mergeHead(const core::http::ResponseHead& stored, const core::http::ResponseHead& fresh,
                 char* out, size_t cap);

/// The "Vary" field names of a stored head, comma-separated and lower-cased, into `out`
/// (length; 0 when there is no Vary).
size_t varyNames(const core::http::HeaderList& resp, char* out, size_t cap);
/// The values of every field named `name` in a raw request head (as the strict parser accepted
/// it), joined with ", ", into `out`; returns the length (0: absent), or size_t(-1) when the
/// values do not fit `cap`.
size_t rawField(std::string_view raw_head, std::string_view name, char* out, size_t cap);
/// The variant key: key, the marker's stamp, then each Vary field's value in the request's raw
/// head. Returns the length, 0 if over `cap` or kMaxKey.
size_t variantKey(std::string_view key, uint64_t stamp, std::string_view names,
                  std::string_view raw_head, char* out, size_t cap);

}  // namespace photon::mod::cache
