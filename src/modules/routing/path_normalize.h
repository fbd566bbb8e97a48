// SPDX-License-Identifier: Apache-2.0
// Request-path normalisation applied before route matching and forwarding (RFC 3986 §6.2.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace photon::mod::routing {

/// Outcome of normalizePath(). Every value except Ok means the request must be refused with
/// 400 Bad Request, except TooLong, which the caller may map to 414 URI Too Long.
enum class NormalizeResult : uint8_t {
    Ok,
    NotAbsolute,   // empty or does not start with '/'
    BadEscape,     // '%' not followed by two hex digits
    EncodedSlash,  // "%2F" / "%2f": a slash inside a segment is never accepted
    EncodedNul,    // "%00"
    BadCharacter,  // a raw control byte, space or DEL
    EscapesRoot,   // a ".." segment would climb above "/"
    TooLong,       // the result does not fit into out_cap bytes
};

/// Short lowercase name of a result for logs and metrics ("ok", "bad_escape", ...).
std::string_view normalizeResultName(NormalizeResult r);

/// Normalises the path part of a request target (the caller has already split off the query and
/// rejected anything that is not origin-form) so that access rules cannot be bypassed by
/// alternative spellings:
///   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded;
///   - every other percent-escape is kept encoded, its hex digits upper-cased ("%c3" -> "%C3");
///     raw reserved characters are kept raw, so "%3A" and ":" stay distinct;
///   - "%2F", "%00", a malformed escape or a raw control byte/space/DEL is rejected;
///   - runs of slashes are merged ("//a///b" -> "/a/b"); a trailing slash is kept;
///   - "." and ".." segments are resolved after decoding ("/a/%2e%2e/b" -> "/b", "/a/." -> "/a/");
///     a ".." that would climb above the root is rejected instead of being clamped.
/// Bytes >= 0x80 pass through unchanged (rejecting them is the HTTP parser's decision).
///
/// Writes the result to out[0, out_len) without a terminating NUL. The result is never longer
/// than raw_path, so out_cap >= raw_path.size() always suffices. out may be raw_path.data()
/// (in-place normalisation); any other overlap is not allowed. On failure out's contents and
/// out_len are unspecified. Pure function: no allocation, no locks, callable from any process.
NormalizeResult normalizePath(std::string_view raw_path, char* out, size_t out_cap,
                              size_t& out_len);

/// True for the RFC 3986 unreserved set: ALPHA DIGIT '-' '.' '_' '~'.
constexpr bool isUnreserved(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

}  // namespace photon::mod::routing
