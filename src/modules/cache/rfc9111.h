// SPDX-License-Identifier: Apache-2.0
// The HTTP caching rules of RFC 9111 (and RFC 5861's stale-* extensions) as pure functions over
// header values: HTTP-dates, Cache-Control, freshness lifetime, age, storability and
// conditional-request matching. No allocation; the response cache builds on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace photon::mod::cache {

/// Seconds since the epoch of an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate
/// ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT")
/// and asctime ("Sun Nov  6 08:49:37 1994") forms. nullopt for anything else, including an
/// impossible date (31 February) or a wrong day name.
std::optional<int64_t> parseHttpDate(std::string_view s);

/// IMF-fixdate of `t` into `out` (exactly 29 characters, not terminated). Returns 29.
size_t formatHttpDate(int64_t t, char out[29]);

/// Cache-Control directives (RFC 9111 §5.2), from every field line of a request or a response.
/// Unknown directives are ignored; a directive repeated with another value makes the whole set
/// `conflicting` (a response is then treated as stale, §4.2.1).
struct CacheControl {
    static constexpr int64_t kAbsent = -1;
    static constexpr int64_t kAny = -2;  // max-stale without a value

    bool no_store = false;
    bool no_cache = false;  // also its qualified form no-cache="field": revalidate every time
    bool private_ = false;  // also private="field": not stored by a shared cache
    bool public_ = false;
    bool must_revalidate = false;
    bool proxy_revalidate = false;
    bool only_if_cached = false;
    bool no_transform = false;
    bool immutable = false;
    bool conflicting = false;
    int64_t max_age = kAbsent;
    int64_t s_maxage = kAbsent;
    int64_t max_stale = kAbsent;  // kAny: any staleness
    int64_t min_fresh = kAbsent;
    int64_t stale_while_revalidate = kAbsent;
    int64_t stale_if_error = kAbsent;

    /// Adds the directives of one field value. Delta-seconds beyond 2^31 count as 2^31 (§1.2.2);
    /// a malformed delta makes the directive absent, except that a malformed max-age or
    /// s-maxage counts as 0 (stale), the conservative reading.
    void parse(std::string_view value);
};

/// Freshness lifetime in seconds (§4.2.1): s-maxage, else max-age, else Expires − Date (an
/// Expires that is present but invalid, or a conflicting Cache-Control: 0), else `heuristic`.
/// `date` defaults to `response_time` when the response had none.
int64_t freshnessLifetime(const CacheControl& cc, std::optional<int64_t> date, bool has_expires,
                          std::optional<int64_t> expires, int64_t heuristic, int64_t response_time);

/// Current age in seconds (§4.2.3) of a response received at `response_time` for a request
/// sent at `request_time`, now `now`; `age_header` < 0 when the response had no valid Age.
int64_t currentAge(std::optional<int64_t> date, int64_t age_header, int64_t request_time,
                   int64_t response_time, int64_t now);

/// Parses an Age value (delta-seconds); -1 when invalid.
int64_t parseDeltaSeconds(std::string_view s);

/// Status codes a shared cache may store without explicit freshness (heuristically cacheable,
/// RFC 9110 §15.1): 200 203 204 206 300 301 308 404 405 410 414 501.
bool heuristicallyCacheable(int status);

/// Why a response is not stored (Store: it is).
enum class StoreDecision : uint8_t {
    Store,
    NoStore,        // no-store in the request or the response
    Private,        // private
    Authorization,  // the request had Authorization and nothing allows sharing the answer
    VaryStar,       // Vary: *
    SetCookie,      // Set-Cookie (never shared)
    Status,         // not a heuristically cacheable status and no explicit freshness
    TooLarge,       // body over max_body_size
};

struct StoreInput {
    int status = 0;
    const CacheControl* request = nullptr;
    const CacheControl* response = nullptr;
    bool has_expires = false;
    bool request_authorization = false;
    bool cache_authorized = false;  // configuration: store answers to authorized requests
    bool vary_star = false;
    bool set_cookie = false;
    uint64_t body_length = 0;
    uint64_t max_body_size = 0;
};

/// RFC 9111 §3 for a shared cache (the request method is checked by the caller: GET only).
StoreDecision storeDecision(const StoreInput& in);

/// If-None-Match (RFC 9110 §13.1.2) against a stored ETag with the weak comparison: true when
/// the list is "*" or names an entity-tag whose opaque part equals the stored one's. A
/// malformed list never matches.
bool noneMatchHits(std::string_view if_none_match, std::string_view etag);

}  // namespace photon::mod::cache
