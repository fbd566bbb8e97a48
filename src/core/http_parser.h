// SPDX-License-Identifier: Apache-2.0
// Strict, incremental, zero-copy HTTP/1.1 message-head parser and chunked-body decoder (RFC 9112).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

// Photon's HTTP/1.x wire parser. Worker and helper processes use it for client requests and for
// upstream responses. Everything here is allocation-free, lock-free and never suspends; a
// parse call touches only the buffer it is given and the output struct.
//
// Strictness policy (smuggling and desynchronisation defence). A request head is rejected with
// the status given when it contains:
//   400  bare CR or bare LF anywhere CRLF is required; NUL or another CTL in a header name or
//        value (HT allowed inside values); whitespace between a field name and the colon; an
//        empty field name; obs-fold (a line starting with SP or HT, including directly after the
//        request line); a method with a non-token byte; more than one SP between request-line
//        parts; a target with bytes outside visible ASCII, a '#' fragment, or a '%' not followed
//        by two hex digits in the path; a target that is not origin-form ("/..."), asterisk-form
//        ("*", OPTIONS only) or absolute-form ("http://authority/..." or "https://..."); userinfo
//        or an empty authority in absolute-form; a malformed version ("HTTP/1", "http/1.1", ...);
//        HTTP/1.1 without Host, more than one Host, an empty Host or a Host with bytes outside
//        RFC 3986 reg-name/IP-literal characters; in absolute-form, a Host that differs (ASCII
//        case-insensitively) from the target's authority; Content-Length together with
//        Transfer-Encoding; any repeated Content-Length field, even with identical values, and
//        the list form ("5, 5"), i.e. duplicates are rejected, never folded; a Content-Length
//        that is not 1*DIGIT or exceeds 2^63-1; Transfer-Encoding in an HTTP/1.0 request; an
//        empty Transfer-Encoding; a Connection header that is not a token list, or that names
//        more than kMaxConnectionOptions extension options; more than kMaxLeadingEmptyLines
//        empty lines before the request line.
//   414  a request line longer than Limits::max_request_line bytes (CRLF excluded).
//   417  an Expect header in an HTTP/1.1 request whose value is not "100-continue".
//   431  a head longer than Limits::max_header_bytes (request line, fields and the final empty
//        line; leading empty lines not counted) or more than Limits::max_headers fields.
//   501  a Transfer-Encoding other than exactly one field whose value is "chunked" (ASCII
//        case-insensitive): "gzip, chunked", "chunked, chunked", "identity" and two
//        Transfer-Encoding fields are all refused, which keeps framing unambiguous.
//   505  a well-formed version other than HTTP/1.0 and HTTP/1.1 (HTTP/0.9, HTTP/1.2, HTTP/2.0).
// A response head is checked by the same field rules; every response error reports status 502
// (Bad Gateway), which is what the proxy answers its client, and a reason naming the defect.

namespace photon::core::http {

/// Hard capacity of the header array inside RequestHead/ResponseHead.
inline constexpr size_t kMaxHeaders = 128;
/// Empty lines (CRLF) tolerated before a request or status line (RFC 9112 §2.2); one more is an
/// error.
inline constexpr size_t kMaxLeadingEmptyLines = 8;
/// Connection options other than close/keep-alive/upgrade one head may list. Each option costs a
/// pass over the fields, so the count is bounded to keep a head's parse cost linear.
inline constexpr size_t kMaxConnectionOptions = 32;

/// Size limits for one message head. All are enforced whatever the read boundaries are.
/// Suggested defaults follow nginx (8 KiB request line, 32 KiB of header) and HAProxy (100 fields).
struct Limits {
    uint32_t max_request_line = 8192;   // request or status line, CRLF excluded (414 / 502)
    uint32_t max_header_bytes = 32768;  // whole head from the start line to the final CRLF (431)
    uint32_t max_headers = 100;  // field count; values above kMaxHeaders act as kMaxHeaders (431)
    // Request fields whose name holds '_' are marked hop_by_hop (never forwarded): a CGI-style
    // backend would read X_Forwarded_For as X-Forwarded-For (nginx's underscores_in_headers).
    bool drop_underscores = false;
};

enum class ParseStatus : uint8_t {
    Complete,    // a whole head was parsed; the output is filled in
    Incomplete,  // no error so far; call again once more bytes arrived
    Error,       // the head is invalid; `error` says why; close after answering
};

enum class Version : uint8_t { Http10, Http11 };

/// How the body that follows a head is delimited.
enum class BodyFraming : uint8_t {
    None,           // no body bytes follow (also Content-Length: 0)
    ContentLength,  // exactly content_length (> 0) bytes follow
    Chunked,        // a chunked body follows: feed it to a ChunkedDecoder
    UntilClose,     // responses only: the body runs until the upstream closes the connection
};

/// Methods the gateway treats specially; anything else is Other (see RequestHead::method).
enum class Method : uint8_t { Get, Head, Post, Put, Delete, Options, Patch, Trace, Connect, Other };

enum class TargetForm : uint8_t {
    Origin,    // "/path?query"
    Asterisk,  // "*" (OPTIONS only)
    Absolute,  // "http://authority/path?query"
};

/// Why a head (or chunked body) was rejected. `reason` points to static storage and is short and
/// log-safe (it never quotes input). status is 0 while no error happened.
struct ParseError {
    uint16_t status = 0;
    std::string_view reason;
};

/// One header field. Both views point into the caller's buffer and live as long as it does.
struct HeaderField {
    std::string_view name;   // as received (case preserved); a non-empty token
    std::string_view value;  // leading and trailing SP/HT removed; may be empty
    // Must not be forwarded by a proxy: Connection, Keep-Alive, TE, Trailer, Transfer-Encoding,
    // Upgrade, Proxy-*, and every field named as an option in Connection (except Host and
    // Content-Length, which a Connection header can never hide; such options are ignored).
    // Also a request field whose name holds '_' when Limits::drop_underscores is set.
    bool hop_by_hop = false;
    // Bytes of the whole field line as received, from the name through its CRLF: a proxy
    // forwards runs of kept lines with one copy.
    uint32_t line_len = 0;
};

namespace detail {

// ASCII upper-case letters of each byte of a word lowered (SWAR); other bytes unchanged.
// The byte `b` in every byte of a W.
template <typename W>
constexpr W bytes(uint8_t b) {
    return static_cast<W>(static_cast<W>(~W{0}) / 0xff * b);
}

template <typename W>
inline W asciiLower(W w) {
    constexpr W ones = bytes<W>(1);
    W h = w & static_cast<W>(0x7f * ones);
    W ge_a = h + static_cast<W>((0x80 - 'A') * ones);      // high bit: byte >= 'A'
    W gt_z = h + static_cast<W>((0x80 - 'Z' - 1) * ones);  // high bit: byte > 'Z'
    W upper = (ge_a ^ gt_z) & ~w & static_cast<W>(0x80 * ones);
    return w | (upper >> 2);
}

template <typename W>
inline W loadWord(const char* p) {
    W w;
    std::memcpy(&w, p, sizeof w);
    return w;
}

// Whether n bytes at a and b are equal under `same`, a word at a time: same(x, y) is called
// with uint64_t, uint32_t or uint8_t values; the last word overlaps the previous one instead of
// finishing byte by byte.
template <typename Same>
inline bool wordwiseEqual(const char* a, const char* b, size_t n, Same same) {
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            if (!same(loadWord<uint64_t>(a + i), loadWord<uint64_t>(b + i))) {
                return false;
            }
        }
        return same(loadWord<uint64_t>(a + n - 8), loadWord<uint64_t>(b + n - 8));
    }
    if (n >= 4) {
        return same(loadWord<uint32_t>(a), loadWord<uint32_t>(b)) &&
               same(loadWord<uint32_t>(a + n - 4), loadWord<uint32_t>(b + n - 4));
    }
    for (size_t i = 0; i < n; ++i) {
        if (!same(static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i]))) {
            return false;
        }
    }
    return true;
}

}  // namespace detail

/// ASCII case-insensitive equality, as header names compare; a word at a time.
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           detail::wordwiseEqual(a.data(), b.data(), a.size(), [](auto x, auto y) {
               return detail::asciiLower(x) == detail::asciiLower(y);
           });
}

/// `s` without leading and trailing optional whitespace (SP and HTAB, RFC 9110 §5.6.3).
inline std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

/// True for the names that are hop-by-hop by definition (Connection, Keep-Alive, TE, Trailer,
/// Transfer-Encoding, Upgrade, Proxy-*), whatever a Connection header says. For use when a proxy
/// adds or copies fields of its own.
bool isHopByHopName(std::string_view name);

/// The fields of a head, in wire order. Only the first `count` entries of `items` are
/// meaningful; the parser does not clear the rest (so a head object is cheap to reuse: construct
/// one per connection, not one per request).
struct HeaderList {
    std::array<HeaderField, kMaxHeaders> items;
    uint16_t count = 0;

    size_t size() const { return count; }
    const HeaderField* begin() const { return items.data(); }
    const HeaderField* end() const { return items.data() + count; }
    const HeaderField& operator[](size_t i) const { return items[i]; }
    std::span<const HeaderField> fields() const { return {items.data(), count}; }
    /// First field whose name equals `name` ASCII case-insensitively, or nullptr.
    const HeaderField* find(std::string_view name) const;
    /// Number of fields named `name` (case-insensitive).
    size_t countOf(std::string_view name) const;
};

/// A parsed request head. Filled in only on ParseStatus::Complete (on Error only `error` is
/// meaningful; on Incomplete some fields may hold partial results of no meaning). Every
/// string_view points into the caller's buffer, except where a static string is stated, and is
/// valid while that buffer is unchanged.
struct RequestHead {
    std::string_view method;  // the method token, case-sensitive ("GET", "PROPFIND")
    Method method_id = Method::Other;
    std::string_view target;  // the raw request-target as received
    TargetForm form = TargetForm::Origin;
    // Origin-form: the target up to '?'. Absolute-form: the path after the authority, or the
    // static string "/" when the target has none. Asterisk-form: "*". Percent escapes are
    // validated but not decoded; nothing is normalised.
    std::string_view path;
    std::string_view query;  // after '?' (exclusive); empty when there is none
    bool has_query = false;  // a '?' was present (query may still be empty)
    // Absolute-form: the target's authority (Host was checked to match it). Otherwise the value
    // of the single Host field, or empty for an HTTP/1.0 request without Host. Never contains
    // whitespace, '@' or '/'.
    std::string_view host;
    Version version = Version::Http11;

    BodyFraming framing = BodyFraming::None;  // None, ContentLength or Chunked
    uint64_t content_length = 0;              // meaningful when framing == ContentLength

    // HTTP/1.1: true unless Connection lists "close". HTTP/1.0: true only when Connection lists
    // "keep-alive" and not "close".
    bool keep_alive = true;
    // HTTP/1.1 "Expect: 100-continue" (ignored in HTTP/1.0 as RFC 9110 §10.1.1 requires).
    bool expect_continue = false;
    // HTTP/1.1 with "upgrade" in Connection and a non-empty Upgrade field; the protocol list is
    // upgrade_protocol (e.g. "websocket"). HTTP/1.0 upgrades are ignored (RFC 9110 §7.8).
    bool upgrade = false;
    std::string_view upgrade_protocol;  // value of the first Upgrade field, empty if none

    // Bytes of the buffer the head occupies, leading empty lines and the final CRLF included.
    // The body (or the next pipelined request) starts at buf + head_length.
    size_t head_length = 0;
    HeaderList headers;
    ParseError error;
};

/// A parsed response head; same lifetime and fill rules as RequestHead.
struct ResponseHead {
    Version version = Version::Http11;
    uint16_t status = 0;      // 100..599
    std::string_view reason;  // reason phrase, possibly empty (never interpret it)

    // None for responses to HEAD, for 1xx, 204 and 304; Chunked when Transfer-Encoding is exactly
    // "chunked"; ContentLength (or None for "Content-Length: 0"); otherwise UntilClose.
    BodyFraming framing = BodyFraming::None;
    uint64_t content_length = 0;  // the Content-Length value whenever one was present

    // Whether the upstream connection may be reused after this response's body: by version and
    // Connection tokens as for requests, and never with UntilClose framing or after a 101.
    bool keep_alive = true;
    // A 1xx other than 101 (100 Continue, 103 Early Hints, ...): no body follows and the final
    // response comes next on the same connection; the caller skips head_length bytes and parses
    // again (with a fresh scan_hint).
    bool interim = false;
    // 101 Switching Protocols: after head_length bytes the connection speaks upgrade_protocol.
    bool switching_protocols = false;
    std::string_view upgrade_protocol;  // value of the first Upgrade field, empty if none

    size_t head_length = 0;
    HeaderList headers;
    ParseError error;
};

/// Parses a request head at the start of buf[0, len).
///
/// Incremental use: call with the bytes received so far; on Incomplete, call again later with
/// the same start and a longer len. `scan_hint` is opaque state carried between those calls:
/// set it to 0 before the first call of every message. A later call examines only the new
/// bytes until the end of the head has arrived, so feeding a head one byte at a time costs
/// O(head) in total, not O(head^2); the whole head is then parsed once. The limits are enforced
/// on partial input too (a 9000-byte request line without CRLF is a 414 without waiting).
///
/// Returns Complete with `out` filled in and out.head_length <= len (bytes after it are body or
/// the next pipelined message and are never looked at), Incomplete, or Error with out.error
/// set. No allocation; views in `out` point into buf. Safe in any process; never suspends.
ParseStatus parseRequest(const char* buf, size_t len, const Limits& lim, RequestHead& out,
                         size_t& scan_hint);

/// Parses an upstream response head at the start of buf[0, len); incremental use and
/// `scan_hint` as for parseRequest. `request_was_head` says the request was HEAD, so no body
/// follows whatever the head announces. Every error reports status 502.
ParseStatus parseResponse(const char* buf, size_t len, const Limits& lim, ResponseHead& out,
                          size_t& scan_hint, bool request_was_head);

/// Limits for one chunked body.
struct ChunkedLimits {
    uint64_t max_chunk_size = INT64_MAX;  // largest chunk-size accepted (413 above it)
    uint32_t max_chunk_line = 4096;       // chunk-size line incl. extensions, CRLF excluded (400)
    uint32_t max_trailer_bytes = 8192;    // trailer section incl. its final CRLF (431)
};

/// Incremental decoder of one chunked message body (RFC 9112 §7.1), for pass-through proxying:
/// it does not copy or rewrite anything, it tells the caller how many of the offered bytes
/// belong to the body so they can be forwarded verbatim, and when the body ended.
///
/// Accepted syntax: chunk-size = 1*HEXDIG (leading zeros allowed; the value must not exceed
/// min(max_chunk_size, 2^63-1)); optional extensions "[BWS] ; ..." whose bytes may be anything
/// but CTLs (HT allowed), bounded by max_chunk_line; CRLF after the size line and after each
/// chunk's data; a last chunk "0" followed by optional trailer fields (token name, ':' right after
/// it, value without CTLs) and a final CRLF. Rejected with 400: a missing or non-hex size,
/// whitespace after the size that is not followed by ';', bare CR or bare LF, CTL in an
/// extension or trailer, data not followed by CRLF, trailer obs-fold, whitespace before a
/// trailer colon, an empty trailer name, a size line over max_chunk_line, a size above 2^63-1.
/// 413 for a size above max_chunk_size, 431 for a trailer section over max_trailer_bytes.
///
/// One decoder per body; reset() before the next. Not thread-safe; no allocation; never
/// suspends.
class ChunkedDecoder {
public:
    enum class Status : uint8_t {
        NeedMore,  // every offered byte belongs to the body; more are needed
        Done,      // the last chunk, trailers and final CRLF have been seen
        Error,     // invalid framing: error() says why; close the connection
    };
    struct FeedResult {
        // Bytes of the offered input that belong to the body. NeedMore: all of them. Done: up to
        // and including the final CRLF (the rest is the next message). Error: the bytes before
        // the offending one.
        size_t consumed;
        Status status;
    };
    /// Called with each run of payload (chunk data) bytes as they are decoded; the span points
    /// into the fed input. For cache teeing and body filters; pass nullptr when not needed.
    using PayloadFn = void (*)(void* ctx, const char* data, size_t len);

    explicit ChunkedDecoder(const ChunkedLimits& lim = {}) : lim_(lim) {}

    /// Offers the next n bytes of the connection. After Done or Error, returns {0, same status}.
    FeedResult feed(const char* p, size_t n, PayloadFn on_payload = nullptr, void* ctx = nullptr);

    /// Forgets all state (limits kept) to decode a new body.
    void reset();

    bool done() const { return state_ == State::Done; }
    bool failed() const { return state_ == State::Error; }
    /// Payload bytes decoded so far (sum of chunk sizes seen), for max_body_size checks.
    uint64_t payloadBytes() const { return payload_bytes_; }
    /// Payload bytes of the current chunk not yet seen (0 between chunks).
    uint64_t chunkRemaining() const { return state_ == State::Data ? remaining_ : 0; }
    /// Status and static reason of the failure; status 0 while not failed.
    const ParseError& error() const { return error_; }

private:
    enum class State : uint8_t {
        Size,
        SizeBws,
        Ext,
        SizeLf,
        Data,
        DataCr,
        DataLf,
        TrailerStart,
        TrailerName,
        TrailerValue,
        TrailerLf,
        FinalLf,
        Done,
        Error,
    };
    FeedResult fail(size_t consumed, uint16_t status, std::string_view reason);

    ChunkedLimits lim_;
    State state_ = State::Size;
    bool size_digits_ = false;  // at least one hex digit seen in the current size line
    bool last_chunk_ = false;   // the current size line is the last chunk ("0")
    uint32_t line_bytes_ = 0;   // bytes of the current size line
    uint32_t trailer_bytes_ = 0;
    uint64_t size_ = 0;
    uint64_t remaining_ = 0;
    uint64_t payload_bytes_ = 0;
    ParseError error_;
};

/// The canonical reason phrase for a status code (RFC 9110 §15 plus 429, 431, 451, 511), e.g.
/// "Not Found"; empty for codes without one. Static storage.
std::string_view reasonPhrase(int status);

}  // namespace photon::core::http
