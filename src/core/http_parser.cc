// SPDX-License-Identifier: Apache-2.0
// HTTP/1.1 head parser and chunked decoder: table-driven byte classes, SSE2 scans, no allocation.
#include "core/http_parser.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace photon::core::http {

namespace {

// ---- byte classes -------------------------------------------------------------------------

enum : uint8_t {
    kTokenChar = 1,   // tchar (RFC 9110 §5.6.2)
    kFieldChar = 2,   // field-vchar, obs-text, SP, HT (inside a field value)
    kTargetChar = 4,  // visible ASCII except '#'
    kHostChar = 8,    // RFC 3986 reg-name / IP-literal / port bytes (no '@', '/', '?', '#')
    kHexChar = 16,
};

constexpr std::array<uint8_t, 256> makeClasses() {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        uint8_t v = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (alpha || digit) {
            v |= kTokenChar;
        }
        for (char x : std::string_view("!#$%&'*+-.^_`|~")) {
            if (c == x) {
                v |= kTokenChar;
            }
        }
        if ((c >= 0x20 && c != 0x7f) || c == '\t') {
            v |= kFieldChar;
        }
        if (c > 0x20 && c < 0x7f && c != '#') {
            v |= kTargetChar;
        }
        if (alpha || digit) {
            v |= kHostChar;
        }
        for (char x : std::string_view("-._~!$&'()*+,;=%:[]")) {
            if (c == x) {
                v |= kHostChar;
            }
        }
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
            v |= kHexChar;
        }
        t[static_cast<size_t>(c)] = v;
    }
    return t;
}

constexpr std::array<uint8_t, 256> kClass = makeClasses();

inline bool is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }
inline bool isToken(char c) { return is(c, kTokenChar); }
inline bool isHex(char c) { return is(c, kHexChar); }
inline bool isWs(char c) { return c == ' ' || c == '\t'; }

inline int hexValue(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c | 0x20) - 'a' + 10;
}

// `name` is a token; `lit` is lower-case letters, digits and '-'. OR-ing 0x20 can only map a
// token byte onto such a literal byte from its own upper/lower-case pair, because the other
// preimages (CR, 0x10..0x19, '@'..) are not token bytes.
inline bool tokenIs(std::string_view name, std::string_view lit) {
    return name.size() == lit.size() &&
           detail::wordwiseEqual(name.data(), lit.data(), lit.size(), [](auto x, auto y) {
               using W = decltype(x);
               return static_cast<W>(x | detail::bytes<W>(0x20)) == y;
           });
}

inline bool tokenHasPrefix(std::string_view name, std::string_view lit) {
    return name.size() >= lit.size() && tokenIs(name.substr(0, lit.size()), lit);
}

// ---- vector scans -------------------------------------------------------------------------

// First byte in [p, end) that is a CTL (0x00-0x1f, 0x7f; HT included), or end.
inline const char* findCtl(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i k20 = _mm_set1_epi8(0x20);
    const __m128i kDel = _mm_set1_epi8(0x7f);
    const __m128i kZero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // Signed compares: v < 0x20 holds for 0x00-0x1f and for 0x80-0xff; drop the latter.
        __m128i low = _mm_andnot_si128(_mm_cmplt_epi8(v, kZero), _mm_cmplt_epi8(v, k20));
        int m = _mm_movemask_epi8(_mm_or_si128(low, _mm_cmpeq_epi8(v, kDel)));
        if (m != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(m));
        }
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = static_cast<unsigned char>(*p);
        if (c < 0x20 || c == 0x7f) {
            return p;
        }
        ++p;
    }
    return p;
}

// End of the token starting at p: the first byte in [p, end) that is not a tchar, or end.
// Field names are almost always letters, digits and '-': those go 16 at a time, and the
// byte-wise loop takes over at the first other byte (usually the ':').
// `underscore` is set when the name holds a '_' (never cleared: one flag per head). '_' stops
// the 16-byte loop, so only the byte-wise loop can meet one.
inline const char* findTokenEnd(const char* p, const char* end, bool& underscore) {
#if defined(__SSE2__)
    const __m128i k20 = _mm_set1_epi8(0x20);
    const __m128i kA = _mm_set1_epi8('a' - 1);
    const __m128i kZ = _mm_set1_epi8('z' + 1);
    const __m128i k0 = _mm_set1_epi8('0' - 1);
    const __m128i k9 = _mm_set1_epi8('9' + 1);
    const __m128i kDash = _mm_set1_epi8('-');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // Signed compares: bytes 0x80-0xff are negative and fail every range test.
        __m128i l = _mm_or_si128(v, k20);  // letters to lower case ('@', '[' etc. stay out)
        __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, kA), _mm_cmplt_epi8(l, kZ));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, k0), _mm_cmplt_epi8(v, k9));
        __m128i ok = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(v, kDash));
        unsigned m = static_cast<unsigned>(_mm_movemask_epi8(ok)) ^ 0xffffu;
        if (m != 0) {
            p += __builtin_ctz(m);
            break;
        }
        p += 16;
    }
#endif
    while (p < end && isToken(*p)) {
        if (*p == '_') {
            underscore = true;
        }
        ++p;
    }
    return p;
}

// First byte in [p, end) that may not appear in a request target (not visible ASCII, or '#').
inline const char* findTargetEnd(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i k21 = _mm_set1_epi8(0x21);
    const __m128i kDel = _mm_set1_epi8(0x7f);
    const __m128i kHash = _mm_set1_epi8('#');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // Signed: v < 0x21 holds for 0x00-0x20 and 0x80-0xff, both invalid here.
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, k21),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, kDel), _mm_cmpeq_epi8(v, kHash)));
        int m = _mm_movemask_epi8(bad);
        if (m != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(m));
        }
        p += 16;
    }
#endif
    while (p < end && is(*p, kTargetChar)) {
        ++p;
    }
    return p;
}

// ---- head parsing -------------------------------------------------------------------------

constexpr size_t kLineDoneBit = size_t{1} << (sizeof(size_t) * 8 - 1);

// Shared state of one parse call over buf[0, end).
struct Ctx {
    const char* buf;
    const char* head;  // start of the start line (after leading empty lines)
    const char* end;
    const Limits& lim;
    bool response;
    ParseError* err;

    ParseStatus fail(uint16_t status, std::string_view reason) const {
        err->status = response ? 502 : status;
        err->reason = reason;
        return ParseStatus::Error;
    }

    // Input ran out. Applies the size limits to what is buffered so that an over-long head
    // fails as early as it can, independently of how the bytes were split into reads.
    ParseStatus incomplete(bool in_start_line) const {
        size_t have = static_cast<size_t>(end - head);
        if (in_start_line) {
            size_t line = have - (have > 0 && end[-1] == '\r' ? 1 : 0);
            if (line > lim.max_request_line) {
                return fail(414, response ? "status line too long" : "request line too long");
            }
        }
        if (have > lim.max_header_bytes) {
            return fail(431, "header section too large");
        }
        return ParseStatus::Incomplete;
    }

    ParseStatus lineTooLong() const {
        return fail(414, response ? "status line too long" : "request line too long");
    }
};

// Facts gathered from well-known fields while the field lines are parsed.
struct Facts {
    uint64_t content_length = 0;
    uint16_t content_length_count = 0;
    uint16_t transfer_encoding_count = 0;
    bool transfer_encoding_chunked = false;  // the first Transfer-Encoding is exactly "chunked"
    bool transfer_encoding_empty = false;
    uint16_t host_count = 0;
    std::string_view host;
    uint16_t connection_count = 0;
    std::string_view connection;  // the first Connection field's value
    bool expect_continue = false;
    bool expect_other = false;
    bool has_upgrade = false;
    std::string_view upgrade;
};

size_t skipLeadingEmptyLines(const char* buf, size_t len) {
    size_t i = 0;
    for (size_t n = 0; n < kMaxLeadingEmptyLines && i + 1 < len; ++n) {
        if (buf[i] != '\r' || buf[i + 1] != '\n') {
            break;
        }
        i += 2;
    }
    return i;
}

bool parseContentLength(std::string_view v, uint64_t& out) {
    if (v.empty() || v.size() > 19) {
        return false;
    }
    uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') {
            return false;
        }
        n = n * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow uint64_t
    }
    if (n > static_cast<uint64_t>(INT64_MAX)) {
        return false;
    }
    out = n;
    return true;
}

// Classifies one field by name, records what the framing and connection logic needs, and
// returns whether the field is hop-by-hop by name. Fails only on Content-Length defects.
inline ParseStatus noteField(const Ctx& c, const HeaderField& h, Facts& f, bool& hop) {
    std::string_view n = h.name;
    hop = false;
    switch (n.size()) {
        case 2:
            hop = tokenIs(n, "te");
            break;
        case 4:
            if (tokenIs(n, "host")) {
                if (f.host_count++ == 0) {
                    f.host = h.value;
                }
            }
            break;
        case 6:
            if (tokenIs(n, "expect")) {
                if (equalsIgnoreCase(h.value, "100-continue")) {
                    f.expect_continue = true;
                } else {
                    f.expect_other = true;
                }
            }
            break;
        case 7:
            if (tokenIs(n, "upgrade")) {
                hop = true;
                if (!f.has_upgrade) {
                    f.has_upgrade = true;
                    f.upgrade = h.value;
                }
            } else {
                hop = tokenIs(n, "trailer");
            }
            break;
        case 10:
            if (tokenIs(n, "connection")) {
                hop = true;
                if (f.connection_count++ == 0) {
                    f.connection = h.value;
                }
            } else {
                hop = tokenIs(n, "keep-alive");
            }
            break;
        case 14:
            if (tokenIs(n, "content-length")) {
                if (f.content_length_count++ != 0) {
                    return c.fail(400, "duplicate Content-Length");
                }
                if (!parseContentLength(h.value, f.content_length)) {
                    return c.fail(400, "invalid Content-Length");
                }
            }
            break;
        case 17:
            if (tokenIs(n, "transfer-encoding")) {
                hop = true;
                if (f.transfer_encoding_count++ == 0) {
                    f.transfer_encoding_chunked = equalsIgnoreCase(h.value, "chunked");
                    f.transfer_encoding_empty = h.value.empty();
                }
            }
            break;
        default:
            break;
    }
    if (!hop && n.size() >= 6 && (n[0] | 0x20) == 'p') {
        hop = tokenHasPrefix(n, "proxy-");
    }
    return ParseStatus::Complete;
}

// Parses field lines from p up to and including the empty line that ends the head.
ParseStatus parseFields(const Ctx& c, const char*& pos, HeaderList& hl, Facts& f) {
    const char* p = pos;
    const char* end = c.end;
    const size_t max_headers = c.lim.max_headers < kMaxHeaders ? c.lim.max_headers : kMaxHeaders;
    const size_t max_bytes = c.lim.max_header_bytes;
    uint16_t n = 0;
    bool underscore = false;  // some field name holds a '_'
    for (;;) {
        if (p >= end) {
            return c.incomplete(false);
        }
        if (*p == '\r') {
            if (p + 1 >= end) {
                return c.incomplete(false);
            }
            if (p[1] != '\n') {
                return c.fail(400, "bare CR in header section");
            }
            p += 2;
            if (static_cast<size_t>(p - c.head) > max_bytes) {
                return c.fail(431, "header section too large");
            }
            break;
        }
        if (isWs(*p)) {
            return c.fail(400, "obsolete line folding");
        }
        if (n >= max_headers) {
            return c.fail(431, "too many header fields");
        }
        const char* name = p;
        p = findTokenEnd(p, end, underscore);
        if (p >= end) {
            return c.incomplete(false);
        }
        if (*p != ':') {
            if (isWs(*p)) {
                return c.fail(400, "whitespace in header name");
            }
            if (*p == '\n') {
                return c.fail(400, "bare LF in header section");
            }
            return c.fail(400, "invalid character in header name");
        }
        if (p == name) {
            return c.fail(400, "empty header name");
        }
        const char* name_end = p;
        ++p;
        while (p < end && isWs(*p)) {
            ++p;
        }
        const char* value = p;
        for (;;) {
            p = findCtl(p, end);
            if (p >= end) {
                return c.incomplete(false);
            }
            if (*p != '\t') {
                break;
            }
            ++p;
        }
        if (*p != '\r') {
            return c.fail(400, *p == '\n' ? "bare LF in header section"
                                          : "control character in header value");
        }
        if (p + 1 >= end) {
            return c.incomplete(false);
        }
        if (p[1] != '\n') {
            return c.fail(400, "bare CR in header value");
        }
        const char* value_end = p;
        while (value_end > value && isWs(value_end[-1])) {
            --value_end;
        }
        p += 2;
        if (static_cast<size_t>(p - c.head) > max_bytes) {
            return c.fail(431, "header section too large");
        }
        HeaderField& h = hl.items[n++];
        h.name = std::string_view(name, static_cast<size_t>(name_end - name));
        h.value = std::string_view(value, static_cast<size_t>(value_end - value));
        h.line_len = static_cast<uint32_t>(p - name);
        bool hop = false;
        if (noteField(c, h, f, hop) == ParseStatus::Error) {
            return ParseStatus::Error;
        }
        h.hop_by_hop = hop;
    }
    hl.count = n;
    if (underscore && c.lim.drop_underscores && !c.response) {
        // Rare: the names with '_' are found again and never forwarded.
        for (uint16_t i = 0; i < n; ++i) {
            if (hl.items[i].name.find('_') != std::string_view::npos) {
                hl.items[i].hop_by_hop = true;
            }
        }
    }
    pos = p;
    return ParseStatus::Complete;
}

struct ConnectionTokens {
    bool close = false;
    bool keep_alive = false;
    bool upgrade = false;
};

// Parses every Connection field's token list; marks the fields it names as hop-by-hop.
ParseStatus applyConnection(const Ctx& c, const Facts& f, HeaderList& hl, ConnectionTokens& out) {
    // The usual case, one "Connection: keep-alive" or "close", without the token walk.
    if (f.connection_count == 1) {
        // tokenIs is exact on field values too: they hold no CTL but HT, whose |0x20 is ')'.
        if (tokenIs(f.connection, "keep-alive")) {
            out.keep_alive = true;
            return ParseStatus::Complete;
        }
        if (tokenIs(f.connection, "close")) {
            out.close = true;
            return ParseStatus::Complete;
        }
    }
    size_t options = 0;
    for (size_t i = 0; i < hl.count; ++i) {
        const HeaderField& conn = hl.items[i];
        if (!conn.hop_by_hop || !tokenIs(conn.name, "connection")) {
            continue;
        }
        std::string_view v = conn.value;
        size_t k = 0;
        while (k < v.size()) {
            while (k < v.size() && (isWs(v[k]) || v[k] == ',')) {
                ++k;
            }
            size_t start = k;
            while (k < v.size() && isToken(v[k])) {
                ++k;
            }
            if (k == start) {
                if (k < v.size()) {
                    return c.fail(400, "invalid Connection header");
                }
                break;
            }
            std::string_view tok = v.substr(start, k - start);
            while (k < v.size() && isWs(v[k])) {
                ++k;
            }
            if (k < v.size() && v[k] != ',') {
                return c.fail(400, "invalid Connection header");
            }
            if (tokenIs(tok, "close")) {
                out.close = true;
            } else if (tokenIs(tok, "keep-alive")) {
                out.keep_alive = true;
            } else if (tokenIs(tok, "upgrade")) {
                out.upgrade = true;
            } else if (tokenIs(tok, "host") || tokenIs(tok, "content-length")) {
                // Never let a client or upstream hide the fields the framing and routing rely on.
            } else {
                if (++options > kMaxConnectionOptions) {
                    return c.fail(400, "too many Connection options");
                }
                for (size_t j = 0; j < hl.count; ++j) {
                    HeaderField& h = hl.items[j];
                    if (!h.hop_by_hop && equalsIgnoreCase(h.name, tok)) {
                        h.hop_by_hop = true;
                    }
                }
            }
        }
    }
    return ParseStatus::Complete;
}

bool validHost(std::string_view h) {
    if (h.empty()) {
        return false;
    }
    for (char ch : h) {
        if (!is(ch, kHostChar)) {
            return false;
        }
    }
    return true;
}

// Version at p: "HTTP/" DIGIT "." DIGIT. Needs 8 bytes; validates whatever prefix is present.
// Returns Complete (version set), Incomplete (a valid prefix), or Error.
ParseStatus parseVersion(const Ctx& c, const char* p, Version& v) {
    static constexpr char kShape[] = "HTTP/0.0";
    size_t avail = static_cast<size_t>(c.end - p);
    if (avail >= 8 && std::memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '1' || p[7] == '0')) {
        v = p[7] == '1' ? Version::Http11 : Version::Http10;  // the usual case: one compare
        return ParseStatus::Complete;
    }
    size_t n = avail < 8 ? avail : 8;
    for (size_t i = 0; i < n; ++i) {
        bool ok = (i == 5 || i == 7) ? (p[i] >= '0' && p[i] <= '9') : p[i] == kShape[i];
        if (!ok) {
            return c.fail(400, "malformed HTTP version");
        }
    }
    if (avail < 8) {
        return ParseStatus::Incomplete;
    }
    if (p[5] == '1' && p[7] == '1') {
        v = Version::Http11;
    } else if (p[5] == '1' && p[7] == '0') {
        v = Version::Http10;
    } else {
        // The status a response error reports is 502 in any case.
        return c.fail(505, "HTTP version not supported");
    }
    return ParseStatus::Complete;
}

// Requires CRLF at p. Complete, Incomplete, or Error (bare CR / something else).
ParseStatus expectCrlf(const Ctx& c, const char* p, std::string_view what) {
    if (p >= c.end) {
        return ParseStatus::Incomplete;
    }
    if (*p != '\r') {
        return c.fail(400, *p == '\n' ? std::string_view("bare LF in start line") : what);
    }
    if (p + 1 >= c.end) {
        return ParseStatus::Incomplete;
    }
    if (p[1] != '\n') {
        return c.fail(400, "bare CR in start line");
    }
    return ParseStatus::Complete;
}

Method methodId(std::string_view m) {
    switch (m.size()) {
        case 3:
            if (m == "GET") {
                return Method::Get;
            }
            if (m == "PUT") {
                return Method::Put;
            }
            break;
        case 4:
            if (m == "POST") {
                return Method::Post;
            }
            if (m == "HEAD") {
                return Method::Head;
            }
            break;
        case 5:
            if (m == "PATCH") {
                return Method::Patch;
            }
            if (m == "TRACE") {
                return Method::Trace;
            }
            break;
        case 6:
            if (m == "DELETE") {
                return Method::Delete;
            }
            break;
        case 7:
            if (m == "OPTIONS") {
                return Method::Options;
            }
            if (m == "CONNECT") {
                return Method::Connect;
            }
            break;
        default:
            break;
    }
    return Method::Other;
}

// Splits "path[?query]" (starting at '/') and checks the path's percent escapes.
ParseStatus splitPathQuery(const Ctx& c, std::string_view pq, RequestHead& out) {
    size_t q = pq.find('?');
    std::string_view path = pq.substr(0, q);
    const char* p = path.data();
    const char* end = p + path.size();
    while ((p = static_cast<const char*>(std::memchr(p, '%', static_cast<size_t>(end - p))))) {
        if (end - p < 3 || !isHex(p[1]) || !isHex(p[2])) {
            return c.fail(400, "invalid percent-encoding in path");
        }
        p += 3;
    }
    out.path = path;
    if (q != std::string_view::npos) {
        out.has_query = true;
        out.query = pq.substr(q + 1);
    } else {
        out.has_query = false;
        out.query = {};
    }
    return ParseStatus::Complete;
}

ParseStatus classifyTarget(const Ctx& c, RequestHead& out) {
    std::string_view t = out.target;
    out.host = {};
    if (t[0] == '/') {
        out.form = TargetForm::Origin;
        return splitPathQuery(c, t, out);
    }
    if (t == "*") {
        if (out.method_id != Method::Options) {
            return c.fail(400, "asterisk-form target outside OPTIONS");
        }
        out.form = TargetForm::Asterisk;
        out.path = t;
        out.query = {};
        out.has_query = false;
        return ParseStatus::Complete;
    }
    size_t scheme = 0;
    if (t.size() > 7 && equalsIgnoreCase(t.substr(0, 7), "http://")) {
        scheme = 7;
    } else if (t.size() > 8 && equalsIgnoreCase(t.substr(0, 8), "https://")) {
        scheme = 8;
    } else {
        return c.fail(400, "invalid request target");
    }
    std::string_view rest = t.substr(scheme);
    size_t a = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, a);
    if (authority.empty()) {
        return c.fail(400, "empty authority in request target");
    }
    if (!validHost(authority)) {
        // '@' is not a host byte, so userinfo lands here too (RFC 9110 §4.2.4).
        return c.fail(400, "invalid authority in request target");
    }
    out.form = TargetForm::Absolute;
    out.host = authority;
    if (a == std::string_view::npos) {
        out.path = "/";
        out.query = {};
        out.has_query = false;
        return ParseStatus::Complete;
    }
    if (rest[a] == '?') {
        out.path = "/";
        out.has_query = true;
        out.query = rest.substr(a + 1);
        return ParseStatus::Complete;
    }
    return splitPathQuery(c, rest.substr(a), out);
}

// Request line at c.head. On Complete, pos is past its CRLF and method/target/version are set.
ParseStatus parseRequestLine(const Ctx& c, const char*& pos, RequestHead& out) {
    const char* p = c.head;
    const char* end = c.end;
    const char* m = p;
    while (p < end && isToken(*p)) {
        ++p;
    }
    if (p >= end) {
        return c.incomplete(true);
    }
    if (*p != ' ') {
        if (*p == '\r' && p == m) {
            if (p + 1 >= end) {
                return c.incomplete(true);  // maybe one more leading empty line
            }
            return c.fail(400, p[1] == '\n' ? "too many empty lines before request"
                                            : "bare CR in start line");
        }
        return c.fail(400, p == m ? "missing method" : "invalid character in method");
    }
    if (p == m) {
        return c.fail(400, "missing method");
    }
    out.method = std::string_view(m, static_cast<size_t>(p - m));
    ++p;
    const char* t = p;
    p = findTargetEnd(p, end);
    if (p >= end) {
        return c.incomplete(true);
    }
    if (*p != ' ') {
        if (*p == '#') {
            return c.fail(400, "fragment in request target");
        }
        if (*p == '\r' || *p == '\n') {
            return c.fail(400, p == t ? "missing request target" : "missing HTTP version");
        }
        return c.fail(400, "invalid character in request target");
    }
    if (p == t) {
        return c.fail(400, "missing request target");
    }
    out.target = std::string_view(t, static_cast<size_t>(p - t));
    ++p;
    ParseStatus st = parseVersion(c, p, out.version);
    if (st == ParseStatus::Complete) {
        st = expectCrlf(c, p + 8, "malformed HTTP version");
    }
    if (st == ParseStatus::Incomplete) {
        return c.incomplete(true);
    }
    if (st == ParseStatus::Error) {
        return st;
    }
    if (static_cast<size_t>(p - c.head) + 8 > c.lim.max_request_line) {
        return c.lineTooLong();
    }
    out.method_id = methodId(out.method);
    if (classifyTarget(c, out) == ParseStatus::Error) {
        return ParseStatus::Error;
    }
    pos = p + 10;
    return ParseStatus::Complete;
}

ParseStatus parseRequestHead(const Ctx& c, RequestHead& out) {
    const char* p = nullptr;
    ParseStatus st = parseRequestLine(c, p, out);
    if (st != ParseStatus::Complete) {
        return st;
    }
    Facts f;
    st = parseFields(c, p, out.headers, f);
    if (st != ParseStatus::Complete) {
        return st;
    }
    const bool v11 = out.version == Version::Http11;

    if (f.host_count > 1) {
        return c.fail(400, "multiple Host headers");
    }
    if (f.host_count == 0 && v11) {
        return c.fail(400, "missing Host header");
    }
    if (f.host_count == 1 && !validHost(f.host)) {
        return c.fail(400, "invalid Host header");
    }
    if (out.form == TargetForm::Absolute) {
        if (f.host_count == 1 && !equalsIgnoreCase(f.host, out.host)) {
            return c.fail(400, "Host does not match request target");
        }
    } else {
        out.host = f.host;
    }

    out.content_length = 0;
    out.framing = BodyFraming::None;
    if (f.transfer_encoding_count > 0) {
        if (!v11) {
            return c.fail(400, "Transfer-Encoding in HTTP/1.0 request");
        }
        if (f.content_length_count > 0) {
            return c.fail(400, "both Content-Length and Transfer-Encoding");
        }
        if (f.transfer_encoding_count == 1 && f.transfer_encoding_empty) {
            return c.fail(400, "empty Transfer-Encoding");
        }
        if (f.transfer_encoding_count != 1 || !f.transfer_encoding_chunked) {
            return c.fail(501, "unsupported Transfer-Encoding");
        }
        out.framing = BodyFraming::Chunked;
    } else if (f.content_length_count > 0) {
        out.content_length = f.content_length;
        out.framing = f.content_length > 0 ? BodyFraming::ContentLength : BodyFraming::None;
    }

    ConnectionTokens ct;
    if (f.connection_count > 0 && applyConnection(c, f, out.headers, ct) == ParseStatus::Error) {
        return ParseStatus::Error;
    }
    out.keep_alive = v11 ? !ct.close : (ct.keep_alive && !ct.close);
    out.upgrade_protocol = f.upgrade;
    out.upgrade = v11 && ct.upgrade && f.has_upgrade && !f.upgrade.empty();
    out.expect_continue = false;
    if (v11) {
        if (f.expect_other) {
            return c.fail(417, "unsupported expectation");
        }
        out.expect_continue = f.expect_continue;
    }
    out.head_length = static_cast<size_t>(p - c.buf);
    return ParseStatus::Complete;
}

// Status line at c.head: HTTP-version SP 3DIGIT [SP reason] CRLF.
ParseStatus parseStatusLine(const Ctx& c, const char*& pos, ResponseHead& out) {
    const char* p = c.head;
    const char* end = c.end;
    if (p < end && *p == '\r') {
        if (p + 1 >= end) {
            return c.incomplete(true);  // maybe one more leading empty line
        }
        return c.fail(502, p[1] == '\n' ? "too many empty lines before status line"
                                        : "bare CR in start line");
    }
    ParseStatus st = parseVersion(c, p, out.version);
    if (st == ParseStatus::Incomplete) {
        return c.incomplete(true);
    }
    if (st == ParseStatus::Error) {
        return st;
    }
    p += 8;
    if (p >= end) {
        return c.incomplete(true);
    }
    if (*p != ' ') {
        return c.fail(502, "malformed status line");
    }
    ++p;
    uint16_t code = 0;
    for (int i = 0; i < 3; ++i, ++p) {
        if (p >= end) {
            return c.incomplete(true);
        }
        if (*p < '0' || *p > '9') {
            return c.fail(502, "malformed status code");
        }
        code = static_cast<uint16_t>(code * 10 + (*p - '0'));
    }
    if (code < 100 || code > 599) {
        return c.fail(502, "status code out of range");
    }
    out.status = code;
    if (p >= end) {
        return c.incomplete(true);
    }
    const char* reason = p;
    if (*p == ' ') {
        reason = ++p;
        for (;;) {
            p = findCtl(p, end);
            if (p >= end) {
                return c.incomplete(true);
            }
            if (*p != '\t') {
                break;
            }
            ++p;
        }
    }
    if (*p != '\r') {
        return c.fail(502, *p == '\n' ? "bare LF in status line" : "malformed status line");
    }
    out.reason = std::string_view(reason, static_cast<size_t>(p - reason));
    if (static_cast<size_t>(p - c.head) > c.lim.max_request_line) {
        return c.lineTooLong();
    }
    if (p + 1 >= end) {
        return c.incomplete(true);
    }
    if (p[1] != '\n') {
        return c.fail(502, "bare CR in status line");
    }
    pos = p + 2;
    return ParseStatus::Complete;
}

ParseStatus parseResponseHead(const Ctx& c, ResponseHead& out, bool request_was_head) {
    const char* p = nullptr;
    ParseStatus st = parseStatusLine(c, p, out);
    if (st != ParseStatus::Complete) {
        return st;
    }
    Facts f;
    st = parseFields(c, p, out.headers, f);
    if (st != ParseStatus::Complete) {
        return st;
    }
    const bool v11 = out.version == Version::Http11;
    const uint16_t code = out.status;
    out.interim = code < 200 && code != 101;
    out.switching_protocols = code == 101;
    out.content_length = f.content_length;
    out.framing = BodyFraming::None;

    const bool bodiless = request_was_head || code < 200 || code == 204 || code == 304;
    if (f.transfer_encoding_count > 0) {
        if (!v11) {
            return c.fail(502, "Transfer-Encoding in HTTP/1.0 response");
        }
        if (f.content_length_count > 0) {
            return c.fail(502, "both Content-Length and Transfer-Encoding");
        }
        if (f.transfer_encoding_count != 1 || !f.transfer_encoding_chunked) {
            return c.fail(502, "unsupported Transfer-Encoding");
        }
        if (!bodiless) {
            out.framing = BodyFraming::Chunked;
        }
    } else if (f.content_length_count > 0) {
        if (!bodiless && f.content_length > 0) {
            out.framing = BodyFraming::ContentLength;
        }
    } else if (!bodiless) {
        out.framing = BodyFraming::UntilClose;
    }

    ConnectionTokens ct;
    if (f.connection_count > 0 && applyConnection(c, f, out.headers, ct) == ParseStatus::Error) {
        return ParseStatus::Error;
    }
    out.keep_alive = v11 ? !ct.close : (ct.keep_alive && !ct.close);
    if (out.framing == BodyFraming::UntilClose || out.switching_protocols) {
        out.keep_alive = false;
    }
    out.upgrade_protocol = f.upgrade;
    out.head_length = static_cast<size_t>(p - c.buf);
    return ParseStatus::Complete;
}

// Cheap completeness check for resumed calls: walks the LFs after the hinted position, checks
// that each is preceded by CR, enforces the line and head limits, and reports where the head
// ends. `line_done` tells whether the start line has ended. The full parse runs only when the
// end has been seen.
ParseStatus scanHead(const Ctx& c, size_t& scan_hint, size_t& head_end, bool& start_line_ended) {
    const char* buf = c.buf;
    const size_t head = static_cast<size_t>(c.head - buf);
    const size_t len = static_cast<size_t>(c.end - buf);
    size_t pos = scan_hint & ~kLineDoneBit;
    bool line_done = (scan_hint & kLineDoneBit) != 0;
    start_line_ended = false;
    if (pos < head) {
        pos = head;
    }
    while (pos < len) {
        const char* q = static_cast<const char*>(std::memchr(buf + pos, '\n', len - pos));
        if (q == nullptr) {
            pos = len;
            break;
        }
        size_t i = static_cast<size_t>(q - buf);
        if (i == head || buf[i - 1] != '\r') {
            return c.fail(400, c.response ? "bare LF in status line" : "bare LF in header section");
        }
        if (!line_done) {
            line_done = true;
            start_line_ended = true;
            size_t line = i - 1 - head;
            if (line == 0) {
                return c.fail(400, "too many empty lines before request");
            }
            if (line > c.lim.max_request_line) {
                return c.lineTooLong();
            }
        } else if (buf[i - 2] == '\n') {
            head_end = i + 1;
            if (head_end - head > c.lim.max_header_bytes) {
                return c.fail(431, "header section too large");
            }
            return ParseStatus::Complete;
        }
        if (i + 1 - head > c.lim.max_header_bytes) {
            return c.fail(431, "header section too large");
        }
        pos = i + 1;
    }
    scan_hint = pos | (line_done ? kLineDoneBit : 0);
    return c.incomplete(!line_done);
}

template <typename Head, typename ParseFn>
ParseStatus parseIncremental(const char* buf, size_t len, const Limits& lim, Head& out,
                             size_t& scan_hint, bool response, ParseFn parse_head,
                             ParseFn parse_start_line) {
    out.error = {};
    const size_t head = skipLeadingEmptyLines(buf, len);
    Ctx c{buf, buf + head, buf + len, lim, response, &out.error};
    const bool optimistic = scan_hint == 0;
    if (optimistic) {
        // Most heads arrive in one read, so parse right away.
        ParseStatus st = parse_head(c, out);
        if (st != ParseStatus::Incomplete) {
            return st;
        }
        out.error = {};
    }
    size_t head_end = 0;
    bool start_line_ended = false;
    ParseStatus st = scanHead(c, scan_hint, head_end, start_line_ended);
    if (st == ParseStatus::Incomplete) {
        if (start_line_ended && !optimistic) {
            // Reject a bad start line now rather than after the whole head arrived.
            st = parse_start_line(c, out);
            if (st == ParseStatus::Error) {
                return st;
            }
            out.error = {};
        }
        return ParseStatus::Incomplete;
    }
    if (st == ParseStatus::Error) {
        return st;
    }
    Ctx full{buf, buf + head, buf + head_end, lim, response, &out.error};
    st = parse_head(full, out);
    if (st == ParseStatus::Incomplete) {
        // Unreachable for a head whose end was found; stay strict if it ever happens.
        return full.fail(400, "malformed header section");
    }
    return st;
}

}  // namespace

bool isHopByHopName(std::string_view n) {
    return equalsIgnoreCase(n, "connection") || equalsIgnoreCase(n, "keep-alive") ||
           equalsIgnoreCase(n, "te") || equalsIgnoreCase(n, "trailer") ||
           equalsIgnoreCase(n, "transfer-encoding") || equalsIgnoreCase(n, "upgrade") ||
           (n.size() >= 6 && equalsIgnoreCase(n.substr(0, 6), "proxy-"));
}

const HeaderField* HeaderList::find(std::string_view name) const {
    if (name.empty()) {
        return nullptr;
    }
    // Length and first letter first: most fields are passed over on those alone.
    const size_t len = name.size();
    const char first = static_cast<char>(name[0] | 0x20);
    for (const HeaderField& h : *this) {
        if (h.name.size() == len && static_cast<char>(h.name[0] | 0x20) == first &&
            equalsIgnoreCase(h.name, name)) {
            return &h;
        }
    }
    return nullptr;
}

size_t HeaderList::countOf(std::string_view name) const {
    size_t n = 0;
    for (const HeaderField& h : *this) {
        n += equalsIgnoreCase(h.name, name) ? 1 : 0;
    }
    return n;
}

ParseStatus parseRequest(const char* buf, size_t len, const Limits& lim, RequestHead& out,
                         size_t& scan_hint) {
    auto head = [](const Ctx& c, RequestHead& o) { return parseRequestHead(c, o); };
    auto line = [](const Ctx& c, RequestHead& o) {
        const char* p = nullptr;
        return parseRequestLine(c, p, o);
    };
    return parseIncremental<RequestHead, ParseStatus (*)(const Ctx&, RequestHead&)>(
        buf, len, lim, out, scan_hint, false, head, line);
}

ParseStatus parseResponse(const char* buf, size_t len, const Limits& lim, ResponseHead& out,
                          size_t& scan_hint, bool request_was_head) {
    // Captureless lambdas cannot see request_was_head; pick one of two instantiations instead.
    auto head_get = [](const Ctx& c, ResponseHead& o) { return parseResponseHead(c, o, false); };
    auto head_head = [](const Ctx& c, ResponseHead& o) { return parseResponseHead(c, o, true); };
    auto line = [](const Ctx& c, ResponseHead& o) {
        const char* p = nullptr;
        return parseStatusLine(c, p, o);
    };
    using Fn = ParseStatus (*)(const Ctx&, ResponseHead&);
    return parseIncremental<ResponseHead, Fn>(
        buf, len, lim, out, scan_hint, true, request_was_head ? Fn(head_head) : Fn(head_get), line);
}

// ---- chunked ------------------------------------------------------------------------------

void ChunkedDecoder::reset() {
    ChunkedLimits lim = lim_;
    *this = ChunkedDecoder(lim);
}

ChunkedDecoder::FeedResult ChunkedDecoder::fail(size_t consumed, uint16_t status,
                                                std::string_view reason) {
    state_ = State::Error;
    error_.status = status;
    error_.reason = reason;
    return {consumed, Status::Error};
}

ChunkedDecoder::FeedResult ChunkedDecoder::feed(const char* p, size_t n, PayloadFn on_payload,
                                                void* ctx) {
    if (state_ == State::Done) {
        return {0, Status::Done};
    }
    if (state_ == State::Error) {
        return {0, Status::Error};
    }
    size_t i = 0;
    while (i < n) {
        const char ch = p[i];
        switch (state_) {
            case State::Size:
                if (isHex(ch)) {
                    uint64_t d = static_cast<uint64_t>(hexValue(ch));
                    if (size_ > (static_cast<uint64_t>(INT64_MAX) - d) / 16) {
                        return fail(i, 400, "chunk size overflow");
                    }
                    size_ = size_ * 16 + d;
                    if (size_ > lim_.max_chunk_size) {
                        return fail(i, 413, "chunk too large");
                    }
                    size_digits_ = true;
                } else if (!size_digits_) {
                    return fail(i, 400, "invalid chunk size");
                } else if (ch == '\r') {
                    state_ = State::SizeLf;
                } else if (ch == ';') {
                    state_ = State::Ext;
                } else if (isWs(ch)) {
                    state_ = State::SizeBws;
                } else {
                    return fail(i, 400, "invalid chunk size");
                }
                break;
            case State::SizeBws:
                if (ch == ';') {
                    state_ = State::Ext;
                } else if (!isWs(ch)) {
                    return fail(i, 400, "invalid chunk size line");
                }
                break;
            case State::Ext:
                if (ch == '\r') {
                    state_ = State::SizeLf;
                } else if (!is(ch, kFieldChar)) {
                    return fail(i, 400, "control character in chunk extension");
                }
                break;
            case State::SizeLf:
                if (ch != '\n') {
                    return fail(i, 400, "bare CR in chunk size line");
                }
                line_bytes_ = 0;
                size_digits_ = false;
                if (size_ == 0) {
                    state_ = State::TrailerStart;
                    trailer_bytes_ = 0;
                } else {
                    remaining_ = size_;
                    size_ = 0;
                    state_ = State::Data;
                }
                ++i;
                continue;
            case State::Data: {
                size_t avail = n - i;
                size_t take = remaining_ < avail ? static_cast<size_t>(remaining_) : avail;
                if (on_payload != nullptr) {
                    on_payload(ctx, p + i, take);
                }
                payload_bytes_ += take;
                remaining_ -= take;
                i += take;
                if (remaining_ == 0) {
                    state_ = State::DataCr;
                }
                continue;
            }
            case State::DataCr:
                if (ch != '\r') {
                    return fail(i, 400, "missing CRLF after chunk data");
                }
                state_ = State::DataLf;
                break;
            case State::DataLf:
                if (ch != '\n') {
                    return fail(i, 400, "missing CRLF after chunk data");
                }
                state_ = State::Size;
                ++i;
                continue;
            case State::TrailerStart:
                if (ch == '\r') {
                    state_ = State::FinalLf;
                } else if (isToken(ch)) {
                    state_ = State::TrailerName;
                } else if (isWs(ch)) {
                    return fail(i, 400, "obsolete line folding in trailer");
                } else if (ch == ':') {
                    return fail(i, 400, "empty trailer name");
                } else {
                    return fail(i, 400, "invalid character in trailer name");
                }
                break;
            case State::TrailerName:
                if (ch == ':') {
                    state_ = State::TrailerValue;
                } else if (!isToken(ch)) {
                    return fail(i, 400,
                                isWs(ch) ? "whitespace in trailer name"
                                         : "invalid character in trailer name");
                }
                break;
            case State::TrailerValue:
                if (ch == '\r') {
                    state_ = State::TrailerLf;
                } else if (!is(ch, kFieldChar)) {
                    return fail(i, 400, "control character in trailer value");
                }
                break;
            case State::TrailerLf:
                if (ch != '\n') {
                    return fail(i, 400, "bare CR in trailer");
                }
                state_ = State::TrailerStart;
                break;
            case State::FinalLf:
                if (ch != '\n') {
                    return fail(i, 400, "bare CR in trailer");
                }
                if (++trailer_bytes_ > lim_.max_trailer_bytes) {
                    return fail(i, 431, "trailer section too large");
                }
                state_ = State::Done;
                return {i + 1, Status::Done};
            case State::Done:
            case State::Error:
                break;  // unreachable: handled before the loop
        }
        // Bytes of the size line (before its CRLF) and of the trailer section are bounded.
        if (state_ == State::Size || state_ == State::SizeBws || state_ == State::Ext) {
            if (++line_bytes_ > lim_.max_chunk_line) {
                return fail(i, 400, "chunk size line too long");
            }
        } else if (state_ >= State::TrailerStart) {
            if (++trailer_bytes_ > lim_.max_trailer_bytes) {
                return fail(i, 431, "trailer section too large");
            }
        }
        ++i;
    }
    return {n, Status::NeedMore};
}

// ---- reason phrases -----------------------------------------------------------------------

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 102:
            return "Processing";
        case 103:
            return "Early Hints";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 203:
            return "Non-Authoritative Information";
        case 204:
            return "No Content";
        case 205:
            return "Reset Content";
        case 206:
            return "Partial Content";
        case 207:
            return "Multi-Status";
        case 300:
            return "Multiple Choices";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 305:
            return "Use Proxy";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 402:
            return "Payment Required";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 406:
            return "Not Acceptable";
        case 407:
            return "Proxy Authentication Required";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 410:
            return "Gone";
        case 411:
            return "Length Required";
        case 412:
            return "Precondition Failed";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 416:
            return "Range Not Satisfiable";
        case 417:
            return "Expectation Failed";
        case 421:
            return "Misdirected Request";
        case 422:
            return "Unprocessable Content";
        case 425:
            return "Too Early";
        case 426:
            return "Upgrade Required";
        case 428:
            return "Precondition Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 451:
            return "Unavailable For Legal Reasons";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        case 507:
            return "Insufficient Storage";
        case 511:
            return "Network Authentication Required";
        default:
            return {};
    }
}

}  // namespace photon::core::http
