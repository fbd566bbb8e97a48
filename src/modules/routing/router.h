// SPDX-License-Identifier: Apache-2.0
// Router: compiles routes (path, host, methods) once and picks the most specific match per request.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace photon::mod::routing {

/// One route as the router sees it; the config loader fills it from `routes[]`. Independent of
/// the config types so that the router can be built and tested alone.
struct RouteSpec {
    std::string id;
    /// "/exact", glob ("/api/*/items", "/static/*.js", "/v?/x", "/f/[a-z]*", "/api/**"),
    /// "{name}" segments ("/users/{id}"), or a PCRE2 regex when it starts with '^' and ends
    /// with '$'. Matched case-sensitively against the normalised path (see path_normalize.h).
    std::string path;
    /// Empty = any host. Otherwise "api.example.com", "*.example.com" (one or more labels),
    /// another glob ("api-*.example.com"), or a '^...$' regex; case-insensitive, port ignored.
    std::string host;
    /// Empty = every method. Case-insensitive; GET implies HEAD.
    std::vector<std::string> methods;
    /// Optional literal prefix removed from the forwarded path at a segment boundary ("/api").
    std::string strip_prefix;
    /// Optional forwarded-path template: "/v2/{id}", "/v2/$1"; exclusive with strip_prefix.
    std::string rewrite;
};

/// Maximum captures reported per match: `{name}` segments of a glob route, groups $1.. of a
/// regex route. Patterns with more `{name}` segments are rejected; extra regex groups are
/// matched but not reported.
inline constexpr size_t kMaxCaptures = 8;
inline constexpr uint32_t kNoRoute = UINT32_MAX;
/// Longest Host (after dropping the port) that can match a host-restricted route.
inline constexpr size_t kMaxHostLength = 255;
/// Size of the scratch buffer canonicalHost() needs.
inline constexpr size_t kHostBufferSize = kMaxHostLength + 1;

/// Method bits used in Match::allow. Bit 0 stands for any method the route table does not name;
/// methods named in the config beyond these get bits 10..63 in first-seen order.
namespace method {
inline constexpr uint64_t kOther = uint64_t{1} << 0;
inline constexpr uint64_t kGet = uint64_t{1} << 1;
inline constexpr uint64_t kHead = uint64_t{1} << 2;
inline constexpr uint64_t kPost = uint64_t{1} << 3;
inline constexpr uint64_t kPut = uint64_t{1} << 4;
inline constexpr uint64_t kDelete = uint64_t{1} << 5;
inline constexpr uint64_t kPatch = uint64_t{1} << 6;
inline constexpr uint64_t kOptions = uint64_t{1} << 7;
inline constexpr uint64_t kConnect = uint64_t{1} << 8;
inline constexpr uint64_t kTrace = uint64_t{1} << 9;
}  // namespace method

enum class MatchStatus : uint8_t {
    Found,             // `route` is the winner; `captures` are filled
    NotFound,          // 404: no route matches path and host
    MethodNotAllowed,  // 405: some route matches path and host, none the method; see `allow`
};

/// A captured part of the path: a view into the normalized path given to Router::match().
/// Trivially constructible, so that creating a Match writes nothing for unused captures.
struct Capture {
    const char* ptr;
    size_t len;

    std::string_view view() const { return {ptr, len}; }
    operator std::string_view() const { return view(); }  // NOLINT: a view by design
    const char* data() const { return ptr; }
    size_t size() const { return len; }
    bool empty() const { return len == 0; }
    friend bool operator==(const Capture& a, std::string_view b) { return a.view() == b; }
};

/// Result of Router::match(). Plain value, no heap memory. The captures are views into the
/// normalized_path passed to match() and live exactly as long as that buffer.
struct Match {
    using Status = MatchStatus;
    MatchStatus status = MatchStatus::NotFound;
    uint8_t capture_count = 0;
    /// Index into the RouteSpec vector given to compile(); kNoRoute unless Found.
    uint32_t route = kNoRoute;
    /// For MethodNotAllowed: the union of the methods of every route matching path and host
    /// (HEAD included wherever GET is); turn it into the Allow value with Router::formatAllow().
    uint64_t allow = 0;
    /// Glob route: the `{name}` segments in pattern order (names via Router::captureName()).
    /// Regex route: groups 1..min(groups, kMaxCaptures); an unset group is an empty view.
    /// Only [0, capture_count) are set; the others are left uninitialised.
    std::array<Capture, kMaxCaptures> captures;
};

/// Canonical form of a Host header value for matching: surrounding blanks trimmed, port and the
/// brackets of an IPv6 literal removed, one trailing dot removed, ASCII lower-cased. Returns a
/// view into `buf` (which must hold kHostBufferSize bytes), or an empty view when the header is
/// absent, empty, longer than kMaxHostLength or malformed (bad characters, a non-numeric port,
/// an unclosed '['); an empty result matches only routes without a host. No allocation.
std::string_view canonicalHost(std::string_view host_header, char* buf);

/// The route table of one config generation. Built once on the master by compile(), then
/// immutable: it reaches workers through fork and is replaced as a whole on reload (hold it by
/// unique_ptr and swap the pointer). Movable, not copyable; a moved-from Router may only be
/// destroyed or assigned to.
///
/// Matching rules, ranking and normalisation are described in src/modules/routing/README.md.
class Router {
public:
    /// Compiles `routes` (config order matters only to break ties). Fails on the first invalid
    /// route with a message that names it, such as `routes[2].path: invalid regex "^/a($" at
    /// offset 4: missing closing parenthesis`. Appends non-fatal findings to `*warnings` when
    /// it is not null: routes that can never win because an earlier route has the same path and
    /// host and covers all their methods, ports dropped from host patterns, regexes without JIT.
    /// Master only (it allocates and compiles PCRE2 code).
    static core::Result<Router> compile(const std::vector<RouteSpec>& routes,
                                        std::vector<std::string>* warnings);

    Router(Router&&) noexcept;
    Router& operator=(Router&&) noexcept;
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;
    ~Router();

    /// Picks the most specific route that matches `method` (any case), `host_header` (the raw
    /// Host value, empty when absent) and `normalized_path` (the output of normalizePath(), no
    /// query); a path not starting with '/' is NotFound. Cost grows with the path length and the
    /// number of matching patterns, not with the number of routes (regex routes excepted: they
    /// are tried one by one, and only when they could still win).
    ///
    /// No heap allocation, no locks, never suspends. Not safe to call concurrently on the same
    /// Router from several threads (regex routes share one PCRE2 match-data block); Photon's
    /// processes are single-threaded.
    Match match(std::string_view method, std::string_view host_header,
                std::string_view normalized_path) const;

    /// Writes the path to forward upstream for a Found match into out[0, return value): the
    /// route's `rewrite` template filled from m.captures, else `normalized_path` minus the
    /// route's `strip_prefix` (only when it matches up to a segment boundary; "/" when nothing
    /// is left), else `normalized_path` unchanged. A rewrite result is normalised again, so
    /// captures cannot introduce dot segments. The result always starts with '/'. Returns 0 when
    /// m is not Found, when out_cap is too small, or when a rewrite result is not a valid path
    /// (the caller should answer 400). No allocation.
    size_t rewritePath(const Match& m, std::string_view normalized_path, char* out,
                       size_t cap) const;

    /// Formats Match::allow as an Allow header value ("GET, HEAD, POST") into out. Returns the
    /// length, or 0 when the mask names no method or the value does not fit. A buffer of
    /// maxAllowLength() bytes always suffices. No allocation.
    size_t formatAllow(uint64_t allow, char* out, size_t cap) const;
    size_t maxAllowLength() const;

    size_t routeCount() const;
    /// The RouteSpec::id of route `route`; views live as long as the Router.
    std::string_view routeId(uint32_t route) const;
    /// Name of capture `i` of `route`: the `{name}` of a glob route, the group name of a regex
    /// route (empty for unnamed groups or out-of-range indices).
    std::string_view captureName(uint32_t route, size_t i) const;

private:
    struct Impl;
    explicit Router(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace photon::mod::routing
