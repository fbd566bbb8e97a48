// SPDX-License-Identifier: Apache-2.0
// Router compilation (patterns -> per-host segment tries and regex lists) and lookup.
#include "modules/routing/router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstring>
#include <map>
#include <utility>

#include "modules/routing/path_normalize.h"
#include "modules/routing/segment_glob.h"

namespace photon::mod::routing {

namespace {

constexpr uint32_t kNone = UINT32_MAX;
constexpr size_t kEnd = SIZE_MAX;  // segment position meaning "no segment left"
constexpr uint64_t kNoRank = UINT64_MAX;
constexpr uint64_t kAllMethods = ~uint64_t{0};
constexpr size_t kMaxPatternLength = 4095;  // keeps literal counts inside their rank fields
constexpr size_t kMaxRoutes = size_t{1} << 25;
constexpr uint32_t kRegexMatchLimit = 100000;
constexpr size_t kFirstExtraMethodBit = 10;

// Rank: one 64-bit key per route, lower = more specific; the fields, most significant first,
// are the documented total order (README.md "Precedence"):
//   63-62 host class   52-61 1023 - literal bytes of a wildcard host
//   51-50 path class   38-49 4095 - leading literal bytes   26-37 4095 - literal bytes
//   25    has '**'     0-24  config index
enum class HostClass : uint64_t { Exact = 0, Wildcard = 1, Regex = 2, Any = 3 };
enum class PathClass : uint64_t { Exact = 0, Glob = 1, Regex = 2, CatchAll = 3 };

uint64_t hostRankBits(HostClass c, size_t wildcard_literal) {
    const uint64_t spec =
        c == HostClass::Wildcard ? 1023 - std::min<size_t>(wildcard_literal, 1023) : 0;
    return (static_cast<uint64_t>(c) << 62) | (spec << 52);
}

uint64_t pathRankBits(PathClass c, size_t lead, size_t total, bool dstar) {
    uint64_t bits = static_cast<uint64_t>(c) << 50;
    if (c == PathClass::Glob) {
        bits |= static_cast<uint64_t>(kMaxPatternLength - lead) << 38;
        bits |= static_cast<uint64_t>(kMaxPatternLength - total) << 26;
        bits |= static_cast<uint64_t>(dstar) << 25;
    }
    return bits;
}

inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

inline uint64_t load64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline uint64_t load32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Keys are config-defined (requests only probe), so flooding is not a concern. Short inputs are
// read with overlapping loads instead of a byte loop.
inline uint64_t hashBytes(std::string_view s, uint64_t seed) {
    constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
    const char* p = s.data();
    const size_t n = s.size();
    uint64_t h = (seed * kMul) ^ (n * 0xC2B2AE3D27D4EB4FULL);
    if (n > 8) {
        const char* last = p + n - 8;
        for (; p < last; p += 8) {
            h = (h ^ load64(p)) * kMul;
            h ^= h >> 29;
        }
        h = (h ^ load64(last)) * kMul;
    } else if (n >= 4) {
        h = (h ^ ((load32(p) << 32) | load32(p + n - 4))) * kMul;
    } else if (n > 0) {
        const auto b0 = static_cast<uint64_t>(static_cast<unsigned char>(p[0]));
        const auto b1 = static_cast<uint64_t>(static_cast<unsigned char>(p[n >> 1]));
        const auto b2 = static_cast<uint64_t>(static_cast<unsigned char>(p[n - 1]));
        h = (h ^ ((b0 << 16) | (b1 << 8) | b2)) * kMul;
    }
    return mix64(h);
}

// Equality of two byte ranges of the same length n, without a library call for short keys.
inline bool sameBytes(const char* a, const char* b, size_t n) {
    if (n >= 8) {
        if (n > 16) {
            return std::memcmp(a, b, n) == 0;
        }
        return load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4) {
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    }
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

inline char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lowerString(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = lowerAscii(c);
    }
    return out;
}

bool allDigits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isHex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool isTokenChar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// reg-name bytes (RFC 3986: unreserved, sub-delims, '%') mapped to their lower-case form,
// ':' to kHostPortMark, every other byte to 0.
constexpr char kHostPortMark = 1;
constexpr std::array<char, 256> kHostChars = [] {
    std::array<char, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const auto u = static_cast<unsigned char>(c);
        if (isUnreserved(u) ||
            (c != 0 && std::string_view("!$&'()*+,;=%").find(static_cast<char>(c)) !=
                           std::string_view::npos)) {
            t[u] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
        }
    }
    t[':'] = kHostPortMark;
    return t;
}();

bool isIdentifier(std::string_view s) {
    if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

std::string quoted(std::string_view s) {
    std::string out = "\"";
    out.append(s);
    out.push_back('"');
    return out;
}

// The bytes of a key of at most 8 bytes as one integer (zero-padded), read with at most three
// loads and no loop; overlapping loads OR together the same bytes.
[[gnu::always_inline]] inline uint64_t shortKey(const char* p, size_t n) {
    if (n >= 4) {
        return load32(p) | (load32(p + n - 4) << (8 * (n - 4)));
    }
    if (n == 0) {
        return 0;
    }
    const auto b0 = static_cast<uint64_t>(static_cast<unsigned char>(p[0]));
    const auto b1 = static_cast<uint64_t>(static_cast<unsigned char>(p[n >> 1]));
    const auto b2 = static_cast<uint64_t>(static_cast<unsigned char>(p[n - 1]));
    return b0 | (b1 << (8 * (n >> 1))) | (b2 << (8 * (n - 1)));
}

// Open-addressing table from (parent id, byte string) to a uint32 value; built once, probed
// without allocation. Keys of up to 8 bytes (most path segments) are hashed and compared as one
// integer; the slot index comes from the high bits of a multiplicative hash.
class StringTable {
public:
    struct Item {
        uint32_t parent;
        std::string key;
        uint32_t value;
    };

    void build(const std::vector<Item>& items) {
        size_t cap = 8;
        unsigned bits = 3;
        while (cap < items.size() * 2) {
            cap <<= 1;
            ++bits;
        }
        slots_.assign(items.empty() ? 0 : cap, Slot{});
        mask_ = cap - 1;
        shift_ = 64 - bits;
        keys_.clear();
        for (const Item& it : items) {
            const size_t n = it.key.size();
            const uint64_t k8 = n <= 8 ? shortKey(it.key.data(), n) : load64(it.key.data());
            size_t i = hash(k8, it.key, it.parent) >> shift_;
            while (slots_[i].value != kNone) {
                i = (i + 1) & mask_;
            }
            slots_[i] = Slot{k8, it.parent, it.value, static_cast<uint32_t>(keys_.size()),
                             static_cast<uint32_t>(n)};
            keys_.append(it.key);
        }
    }

    bool empty() const { return slots_.empty(); }

    [[gnu::always_inline]] uint32_t find(uint32_t parent, std::string_view key) const {
        if (slots_.empty()) {
            return kNone;
        }
        const size_t n = key.size();
        const uint64_t k8 = n <= 8 ? shortKey(key.data(), n) : load64(key.data());
        for (size_t i = hash(k8, key, parent) >> shift_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.value == kNone) {
                return kNone;
            }
            if (s.key8 == k8 && s.parent == parent && s.len == n &&
                (n <= 8 || sameBytes(keys_.data() + s.off + 8, key.data() + 8, n - 8))) {
                return s.value;
            }
        }
    }

private:
    static uint64_t hash(uint64_t k8, std::string_view key, uint32_t parent) {
        constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
        if (key.size() <= 8) {
            return ((k8 ^ (uint64_t{parent} * 0xC2B2AE3D27D4EB4FULL)) + key.size()) * kMul;
        }
        return hashBytes(key, parent);
    }

    struct Slot {
        uint64_t key8 = 0;  // the first min(len, 8) bytes, zero-padded
        uint32_t parent = 0;
        uint32_t value = kNone;
        uint32_t off = 0;
        uint32_t len = 0;
    };
    std::vector<Slot> slots_;
    std::string keys_;
    size_t mask_ = 0;
    unsigned shift_ = 61;
};

// A route reference stored in a trie node or a regex list, sorted by rank.
struct Entry {
    uint64_t rank;
    uint64_t methods;
    uint32_t route;
    uint32_t regex;  // regex routes only
};

struct Node {
    uint64_t min_rank = kNoRank;  // best rank anywhere in this subtree (for pruning)
    uint32_t term_begin = 0;      // routes whose pattern ends here
    uint32_t term_end = 0;
    uint32_t dstar_begin = 0;  // routes whose pattern ends here with a trailing '**'
    uint32_t dstar_end = 0;
    uint32_t glob_begin = 0;  // partial-segment glob children, by child min_rank
    uint32_t glob_end = 0;
    uint32_t star = kNone;         // '*' child
    uint32_t param = kNone;        // '{name}' child
    uint32_t dstar_child = kNone;  // continuation after a non-final '**'
    uint32_t lit_begin = 0;        // literal children, compared one by one when few
    uint32_t lit_end = 0;
    uint8_t flags = 0;  // kNode* bits below
};

constexpr uint8_t kNodeLiterals = 1;      // has literal children
constexpr uint8_t kNodeHashed = 2;        // many literal children: look them up in Impl::edges
constexpr uint8_t kNodeAlternatives = 4;  // has glob, '*', '{name}' or non-final '**' children
constexpr uint8_t kNodeOnlyParam = 8;     // the only alternative is a '{name}' child
constexpr uint8_t kNodeOnlyStar = 16;     // the only alternative is a '*' child
constexpr uint8_t kNodeDStar = 32;        // some routes end here with a trailing '**'

struct LitEdge {
    uint64_t key8;  // the first min(len, 8) bytes of the key, zero-padded
    uint64_t mask;  // the bytes of key8 that belong to the key
    uint32_t off;   // into Impl::lit_keys
    uint32_t len;
    uint32_t child;
};

// Up to this many literal children are compared one by one (cheaper than hashing a segment).
constexpr size_t kLinearLiteralChildren = 8;

struct GlobEdge {
    uint32_t glob;
    uint32_t child;
};

struct Group {  // all routes sharing one host pattern
    uint64_t min_rank = kNoRank;
    uint32_t root = kNone;
    uint32_t regex_begin = 0;
    uint32_t regex_end = 0;
    uint32_t host_regex = kNone;  // for regex and general-glob host patterns
};

enum class SegKind : uint8_t { Literal, Star, Param, Glob, DStar };

struct PatSeg {
    SegKind kind;
    uint32_t index;  // Glob: index into globs; Param: capture index
    std::string text;
};

struct RewriteOp {
    uint32_t capture;  // kNone = literal text
    uint32_t off;
    uint32_t len;
};

struct RouteData {
    std::string id;
    uint64_t rank = 0;
    uint64_t methods = kAllMethods;
    uint32_t regex = kNone;
    std::vector<std::string> capture_names;
    std::string strip_prefix;
    bool has_rewrite = false;
    std::string rewrite_text;
    std::vector<RewriteOp> rewrite_ops;
};

struct CompiledRegex {
    pcre2_code* code = nullptr;
    uint32_t captures = 0;
    std::string prefix;  // every match starts with these bytes (a cheap pre-check)
};

// The literal bytes every match of `^...` must start with: the run after '^' up to the first
// character with a meaning in PCRE2, minus the last one if a quantifier follows it. Empty when
// the pattern has an alternation anywhere (a top-level '|' would make any prefix wrong), when
// matching is caseless, or when the pattern starts with a group or an escape.
std::string regexLiteralPrefix(std::string_view re, bool caseless) {
    if (caseless || re.size() < 2 || re[0] != '^' || re.find('|') != std::string_view::npos) {
        return {};
    }
    std::string out;
    size_t i = 1;
    for (; i < re.size(); ++i) {
        const char c = re[i];
        if (std::strchr("\\.[]()*+?{}|^$#", c) != nullptr || c == '\0' ||
            static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
            break;
        }
        out.push_back(c);
    }
    if (i < re.size() && !out.empty() && std::strchr("*+?{", re[i]) != nullptr) {
        out.pop_back();
    }
    return out;
}

struct Span {  // a trivially default-constructible string_view
    const char* p;
    size_t n;
};

struct Search {
    std::string_view path;
    uint64_t mbit = 0;
    uint64_t best = kNoRank;
    uint32_t route = kNone;
    uint8_t ncaps = 0;
    uint8_t depth = 0;  // '{name}' segments on the current trie path
    // Scratch, deliberately left uninitialised (only [0, ncaps) / [0, depth) are ever read).
    Span caps[kMaxCaptures];   // of the current winner
    Span stack[kMaxCaptures];  // of the current trie path
    // Methods of the routes that matched path and host but not the method (405 detection).
    uint64_t allow = 0;
    bool any = false;
};

// Position of the next '/' at or after pos (or p.size()): eight bytes at a time on
// little-endian targets, which covers a typical segment in one step without a library call.
[[gnu::always_inline]] inline size_t segmentEnd(std::string_view p, size_t pos) {
    const char* b = p.data();
    const size_t n = p.size();
    if constexpr (std::endian::native == std::endian::little) {
        constexpr uint64_t kOnes = 0x0101010101010101ULL;
        constexpr uint64_t kHighs = 0x8080808080808080ULL;
        constexpr uint64_t kSlashes = kOnes * '/';
        for (; pos + 8 <= n; pos += 8) {
            const uint64_t v = load64(b + pos) ^ kSlashes;  // a '/' byte becomes 0
            const uint64_t z = (v - kOnes) & ~v & kHighs;   // lowest set bit: first zero byte
            if (z != 0) {
                return pos + (static_cast<size_t>(std::countr_zero(z)) >> 3);
            }
        }
        if (pos < n && n >= 8) {
            // Fewer than 8 bytes left: load the last 8 bytes of the path and shift the ones
            // before pos out; the zero bytes shifted in never look like a '/'.
            const uint64_t v = (load64(b + n - 8) >> (8 * (pos + 8 - n))) ^ kSlashes;
            const uint64_t z = (v - kOnes) & ~v & kHighs;
            const size_t at = pos + (static_cast<size_t>(std::countr_zero(z)) >> 3);
            return z != 0 && at < n ? at : n;
        }
    }
    while (pos < n && b[pos] != '/') {
        ++pos;
    }
    return pos;
}

inline size_t nextSegment(std::string_view p, size_t end) {
    return end < p.size() ? end + 1 : kEnd;
}

constexpr std::string_view kStandardMethods[] = {"",       "GET",   "HEAD",    "POST",    "PUT",
                                                 "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};

// ---- config-side parsing -------------------------------------------------------------------

struct HostPattern {
    HostClass cls = HostClass::Any;
    std::string key;    // group identity
    std::string text;   // Exact: host; Wildcard fast path: ".suffix"
    std::string regex;  // PCRE2 source for regex hosts and general host globs
    size_t literal = 0;
};

core::Result<HostPattern> parseHostPattern(std::string_view text, std::string& warning) {
    HostPattern hp;
    if (text.empty()) {
        hp.key = "any";
        return hp;
    }
    if (text.size() >= 2 && text.front() == '^' && text.back() == '$') {
        hp.cls = HostClass::Regex;
        hp.key = "re:" + std::string(text);
        hp.regex = std::string(text);
        return hp;
    }
    std::string name = lowerString(text);
    if (name.front() == '[') {
        const size_t close = name.find(']');
        if (close != std::string::npos &&
            name.substr(1, close - 1).find(':') != std::string::npos) {
            const std::string rest = name.substr(close + 1);
            name = name.substr(1, close - 1);
            if (!rest.empty()) {
                if (rest.size() < 2 || rest[0] != ':' || !allDigits(rest.substr(1))) {
                    return core::fail("invalid text after the IPv6 literal: ", quoted(rest));
                }
                warning = "port " + quoted(rest.substr(1)) +
                          " ignored (hosts are matched without their port)";
            }
            for (char c : name) {
                if (!isHex(c) && c != ':' && c != '.') {
                    return core::fail("invalid IPv6 literal ", quoted(name));
                }
            }
            hp.cls = HostClass::Exact;
            hp.key = "h:" + name;
            hp.text = name;
            return hp;
        }
    }
    const size_t colon = name.rfind(':');
    if (colon != std::string::npos) {
        const std::string port = name.substr(colon + 1);
        name.resize(colon);
        if (name.find(':') != std::string::npos) {
            return core::fail("an IPv6 literal must be written in brackets, as in \"[::1]\"");
        }
        if (port.empty() || !allDigits(port)) {
            return core::fail("invalid port ", quoted(port));
        }
        warning = "port " + quoted(port) + " ignored (hosts are matched without their port)";
    }
    if (name.size() > 1 && name.back() == '.') {
        name.pop_back();
    }
    if (name.empty()) {
        return core::fail("empty host name");
    }
    if (name.size() > kMaxHostLength) {
        return core::fail("longer than ", std::to_string(kMaxHostLength), " bytes");
    }
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F || std::strchr("/@#{}|\"<>`", c) != nullptr) {
            if (u >= 0x80) {
                return core::fail("non-ASCII host name; write the punycode (xn--) form");
            }
            return core::fail("invalid character in host pattern ", quoted(text));
        }
    }
    if (name.find_first_of("*?[") == std::string::npos) {
        hp.cls = HostClass::Exact;
        hp.key = "h:" + name;
        hp.text = name;
        return hp;
    }
    hp.cls = HostClass::Wildcard;
    hp.key = "w:" + name;
    if (name.size() > 2 && name[0] == '*' && name[1] == '.' &&
        name.find_first_of("*?[]", 1) == std::string::npos) {
        hp.text = name.substr(1);
        hp.literal = hp.text.size();
        return hp;
    }
    // General host glob: '*' = one or more bytes, '?' = one byte, '[...]' = a set.
    std::string re = "^";
    for (size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        if (c == '*') {
            while (i + 1 < name.size() && name[i + 1] == '*') {
                ++i;
            }
            re += ".+";
        } else if (c == '?') {
            re += '.';
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < name.size() && name[j] == '^') {
                ++j;
            }
            if (j < name.size() && name[j] == ']') {
                ++j;
            }
            while (j < name.size() && name[j] != ']') {
                j += name[j] == '\\' ? 2 : 1;
            }
            if (j >= name.size()) {
                return core::fail("unterminated '[' in host pattern");
            }
            re.append(name, i, j - i + 1);
            i = j;
        } else {
            if (std::strchr("\\.^$|()+{}]", c) != nullptr) {
                re += '\\';
            }
            re += c;
            ++hp.literal;
        }
    }
    re += '$';
    hp.regex = std::move(re);
    return hp;
}

// Applies the request-path escape rules to a pattern's text so that literal parts compare
// equal to normalised request paths.
core::Result<std::string> normalizePatternEscapes(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c <= 0x20 || c == 0x7F) {
            return core::fail("invalid character (control byte or space) at byte ",
                              std::to_string(i));
        }
        if (c != '%') {
            out.push_back(static_cast<char>(c));
            continue;
        }
        if (i + 2 >= text.size() || !isHex(text[i + 1]) || !isHex(text[i + 2])) {
            return core::fail("invalid percent escape at byte ", std::to_string(i));
        }
        const int v = std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16);
        if (v == 0 || v == '/') {
            return core::fail("\"%", std::string(text.substr(i + 1, 2)),
                              "\" can never match: such requests are rejected with 400");
        }
        if (isUnreserved(static_cast<unsigned char>(v))) {
            out.push_back(static_cast<char>(v));
        } else {
            out.push_back('%');
            out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i + 1]))));
            out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i + 2]))));
        }
        i += 2;
    }
    return out;
}

struct ParsedPath {
    bool regex = false;
    std::string text;
    std::string canonical;  // params renamed to "{}", for duplicate detection
    std::vector<PatSeg> segs;
    std::vector<std::string> params;
    size_t lead = 0;
    size_t total = 0;
    bool exact = true;
    bool dstar = false;
    bool catch_all = false;
};

core::Result<ParsedPath> parseGlobPath(std::string_view raw, std::vector<SegmentGlob>& globs) {
    ParsedPath pp;
    if (raw.empty()) {
        return core::fail("must not be empty");
    }
    if (raw[0] != '/') {
        return core::fail(
            "must start with '/' (or be a regex starting with '^' and ending "
            "with '$')");
    }
    if (raw.size() > kMaxPatternLength) {
        return core::fail("longer than ", std::to_string(kMaxPatternLength), " bytes");
    }
    auto norm = normalizePatternEscapes(raw);
    if (!norm) {
        return norm.error();
    }
    pp.text = std::move(norm.value());
    const std::string& t = pp.text;
    std::vector<std::string_view> parts;
    for (size_t pos = 1;;) {
        const size_t end = t.find('/', pos);
        parts.push_back(
            std::string_view(t).substr(pos, end == std::string::npos ? end : end - pos));
        if (end == std::string::npos) {
            break;
        }
        pos = end + 1;
    }
    const size_t first_wild = t.find_first_of("*?[{");
    pp.lead = first_wild == std::string::npos ? t.size() : first_wild;
    for (size_t k = 0; k < parts.size(); ++k) {
        const std::string_view part = parts[k];
        pp.canonical.push_back('/');
        pp.total += 1;
        if (part.empty() && k + 1 < parts.size()) {
            return core::fail("empty segment (\"//\") can never match a normalised path");
        }
        if (part == "." || part == "..") {
            return core::fail("'.' and '..' segments can never match a normalised path");
        }
        if (part == "**") {
            if (pp.dstar) {
                return core::fail("at most one '**' per pattern; use a ^...$ regex");
            }
            pp.dstar = true;
            pp.exact = false;
            pp.segs.push_back(PatSeg{SegKind::DStar, 0, std::string(part)});
            pp.canonical.append(part);
            continue;
        }
        if (part.size() >= 2 && part.front() == '{' && part.back() == '}' &&
            part.find_first_of("{}", 1) == part.size() - 1) {
            const std::string_view name = part.substr(1, part.size() - 2);
            if (!isIdentifier(name)) {
                return core::fail("invalid parameter name ", quoted(name),
                                  " (letters, digits and '_', not starting with a digit)");
            }
            if (std::find(pp.params.begin(), pp.params.end(), name) != pp.params.end()) {
                return core::fail("duplicate parameter name ", quoted(name));
            }
            if (pp.params.size() >= kMaxCaptures) {
                return core::fail("more than ", std::to_string(kMaxCaptures),
                                  " '{name}' parameters");
            }
            pp.exact = false;
            pp.segs.push_back(
                PatSeg{SegKind::Param, static_cast<uint32_t>(pp.params.size()), std::string(name)});
            pp.params.emplace_back(name);
            pp.canonical.append("{}");
            continue;
        }
        if (part == "*") {
            pp.exact = false;
            pp.segs.push_back(PatSeg{SegKind::Star, 0, "*"});
            pp.canonical.append(part);
            continue;
        }
        if (part.find_first_of("*?[]{}") != std::string_view::npos) {
            auto g = SegmentGlob::parse(part);
            if (!g) {
                return core::fail(g.error().msg, " in segment ", quoted(part));
            }
            pp.exact = false;
            pp.total += g->literalBytes();
            pp.segs.push_back(
                PatSeg{SegKind::Glob, static_cast<uint32_t>(globs.size()), std::string(part)});
            globs.push_back(std::move(g.value()));
            pp.canonical.append(part);
            continue;
        }
        pp.total += part.size();
        pp.segs.push_back(PatSeg{SegKind::Literal, 0, std::string(part)});
        pp.canonical.append(part);
    }
    pp.catch_all = pp.segs.size() == 1 && pp.segs[0].kind == SegKind::DStar;
    return pp;
}

// ---- trie builder ---------------------------------------------------------------------------

struct BuildNode {
    std::map<std::string, uint32_t> literals;
    std::vector<GlobEdge> globs;
    uint32_t star = kNone;
    uint32_t param = kNone;
    uint32_t dstar_child = kNone;
    std::vector<Entry> term;
    std::vector<Entry> dstar;
};

bool isPassThrough(const BuildNode& b) {
    return b.literals.size() == 1 && b.term.empty() && b.dstar.empty() && b.globs.empty() &&
           b.star == kNone && b.param == kNone && b.dstar_child == kNone;
}

struct BuildGroup {
    HostPattern host;
    uint32_t root = kNone;
    std::vector<Entry> regex_entries;
    uint32_t host_regex = kNone;
};

struct SeenPattern {  // for duplicate detection
    size_t first;
    uint64_t first_methods;
    uint64_t covered;
};

}  // namespace

// ---- Impl -----------------------------------------------------------------------------------

struct Router::Impl {
    std::vector<RouteData> routes;
    std::vector<Node> nodes;
    std::vector<Entry> entries;
    std::vector<GlobEdge> glob_edges;
    std::vector<SegmentGlob> globs;
    std::vector<LitEdge> lit_edges;
    std::string lit_keys;
    // (node, literal segment) -> index into lit_edges, for nodes with many children; that edge
    // holds the path-compressed rest ("/items" after "svc1"), empty when there is none.
    StringTable edges;
    std::vector<Group> groups;
    std::vector<Entry> regex_entries;
    StringTable exact_hosts;                  // (0, host) -> group
    StringTable suffix_hosts;                 // (0, ".suffix") -> group
    size_t min_suffix = SIZE_MAX;             // length range of the suffixes, so that useless
    size_t max_suffix = 0;                    // probes are skipped
    bool any_host_routes = false;             // false: never look at the Host header
    std::array<uint64_t, 4> exact_lengths{};  // lengths of exact hosts (bit set), to skip probes
    std::vector<uint32_t> pattern_groups;     // regex / general-glob hosts, by min_rank
    uint32_t any_group = kNone;
    std::vector<CompiledRegex> regexes;
    pcre2_match_data* match_data = nullptr;
    pcre2_match_context* match_context = nullptr;
    pcre2_jit_stack* jit_stack = nullptr;
    std::vector<std::string> extra_methods;
    size_t max_allow_len = 0;

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        for (CompiledRegex& r : regexes) {
            pcre2_code_free(r.code);
        }
        pcre2_match_data_free(match_data);
        pcre2_match_context_free(match_context);
        pcre2_jit_stack_free(jit_stack);
    }

    // The usual upper-case spellings are recognised with one or two integer compares; any other
    // spelling goes through methodBitSlow().
    [[gnu::always_inline]] uint64_t methodBit(std::string_view m) const {
        const char* p = m.data();
        switch (m.size()) {
            case 3:
                if (p[0] == 'G' && p[1] == 'E' && p[2] == 'T') {
                    return method::kGet;
                }
                if (p[0] == 'P' && p[1] == 'U' && p[2] == 'T') {
                    return method::kPut;
                }
                break;
            case 4: {
                const uint64_t v = load32(p);
                if (v == load32("POST")) {
                    return method::kPost;
                }
                if (v == load32("HEAD")) {
                    return method::kHead;
                }
                break;
            }
            default:
                break;
        }
        return methodBitSlow(m);
    }

    [[gnu::noinline]] uint64_t methodBitSlow(std::string_view m) const {
        char up[32];
        if (m.empty() || m.size() > sizeof(up)) {
            return method::kOther;
        }
        for (size_t i = 0; i < m.size(); ++i) {
            const char c = m[i];
            up[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
        }
        const std::string_view u(up, m.size());
        switch (u.size()) {
            case 3:
                if (u == "GET") {
                    return method::kGet;
                }
                if (u == "PUT") {
                    return method::kPut;
                }
                break;
            case 4:
                if (u == "HEAD") {
                    return method::kHead;
                }
                if (u == "POST") {
                    return method::kPost;
                }
                break;
            case 5:
                if (u == "PATCH") {
                    return method::kPatch;
                }
                if (u == "TRACE") {
                    return method::kTrace;
                }
                break;
            case 6:
                if (u == "DELETE") {
                    return method::kDelete;
                }
                break;
            case 7:
                if (u == "OPTIONS") {
                    return method::kOptions;
                }
                if (u == "CONNECT") {
                    return method::kConnect;
                }
                break;
            default:
                break;
        }
        for (size_t i = 0; i < extra_methods.size(); ++i) {
            if (extra_methods[i] == u) {
                return uint64_t{1} << (kFirstExtraMethodBit + i);
            }
        }
        return method::kOther;
    }

    // The literal child of n that matches the path at pos (kNone if none); sets next to the
    // position after the matched text. Linear nodes hold path-compressed keys ("api/v1") that
    // are compared in place, so no segment scan is needed there; hashed nodes are probed with
    // the segment, whose end is stored in `end` for reuse.
    // Whether edge key e matches the path at `at` up to a segment boundary; sets next to the
    // position after it (kEnd at the end of the path).
    [[gnu::always_inline]] bool edgeMatches(const LitEdge& e, std::string_view path, size_t at,
                                            uint64_t head, size_t& next) const {
        const size_t avail = path.size() - at;
        if ((head & e.mask) != e.key8 || e.len > avail ||
            (e.len > 8 &&
             !sameBytes(lit_keys.data() + e.off + 8, path.data() + at + 8, e.len - 8))) {
            return false;
        }
        const size_t stop = at + e.len;
        if (stop == path.size()) {
            next = kEnd;
            return true;
        }
        if (path[stop] == '/') {
            next = stop + 1;
            return true;
        }
        return false;
    }

    // Up to 8 bytes of the path at `at` in one integer, so that most keys compare in one step.
    [[gnu::always_inline]] static uint64_t headAt(std::string_view path, size_t at) {
        const size_t avail = path.size() - at;
        return avail >= 8 ? load64(path.data() + at) : shortKey(path.data() + at, avail);
    }

    // The literal child of n that matches the path at pos (kNone if none); sets next to the
    // position after the matched text. Linear nodes hold path-compressed keys ("api/v1") that
    // are compared in place, so no segment scan is needed there; hashed nodes are probed with
    // the segment, whose end is stored in `end` for reuse, then the compressed rest is compared.
    [[gnu::always_inline]] uint32_t literalStep(uint32_t ni, const Node& n, std::string_view path,
                                                size_t pos, size_t& end, size_t& next) const {
        if ((n.flags & kNodeHashed) != 0) {
            end = segmentEnd(path, pos);
            const uint32_t ei = edges.find(ni, std::string_view(path.data() + pos, end - pos));
            if (ei == kNone) {
                return kNone;
            }
            const LitEdge& e = lit_edges[ei];
            if (e.len == 0) {
                next = end < path.size() ? end + 1 : kEnd;
                return e.child;
            }
            return edgeMatches(e, path, end, headAt(path, end), next) ? e.child : kNone;
        }
        const uint64_t head = headAt(path, pos);
        for (uint32_t i = n.lit_begin; i < n.lit_end; ++i) {
            const LitEdge& e = lit_edges[i];
            if (edgeMatches(e, path, pos, head, next)) {
                return e.child;
            }
        }
        return kNone;
    }

    bool regexMatch(uint32_t re, std::string_view subject) const {
        const CompiledRegex& r = regexes[re];
        if (subject.size() < r.prefix.size() ||
            std::memcmp(subject.data(), r.prefix.data(), r.prefix.size()) != 0) {
            return false;
        }
        const int rc = pcre2_match(r.code, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                                   subject.size(), 0, 0, match_data, match_context);
        return rc >= 0;
    }

    void copyRegexCaptures(uint32_t re, std::string_view subject, Search& s) const {
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match_data);
        const uint32_t pairs = pcre2_get_ovector_count(match_data);
        const uint32_t n = std::min<uint32_t>(
            {regexes[re].captures, static_cast<uint32_t>(kMaxCaptures), pairs > 0 ? pairs - 1 : 0});
        for (uint32_t i = 0; i < n; ++i) {
            const PCRE2_SIZE b = ov[2 * (i + 1)];
            const PCRE2_SIZE e = ov[2 * (i + 1) + 1];
            s.caps[i] = b == PCRE2_UNSET ? Span{nullptr, 0} : Span{subject.data() + b, e - b};
        }
        s.ncaps = static_cast<uint8_t>(n);
    }

    static void win(const Entry& e, Search& s) {
        s.best = e.rank;
        s.route = e.route;
        s.ncaps = s.depth;
        // Most winners have no or one capture: a plain loop, never a memcpy call.
        for (uint8_t i = 0; i < s.depth; ++i) {
            s.caps[i] = s.stack[i];
            asm("" ::: "memory");  // keeps GCC from turning the loop into memcpy
        }
    }

    // Routes matching path and host, in rank order: the first one that takes the method wins
    // unless the current winner ranks better. The methods of those passed over are collected
    // for a 405: while nothing has won, nothing is pruned, so a search that ends without a
    // winner has seen every route that matches path and host (regex routes aside).
    [[gnu::always_inline]] void scanEntries(uint32_t begin, uint32_t end, uint64_t mbit,
                                            Search& s) const {
        for (uint32_t i = begin; i < end; ++i) {
            const Entry& e = entries[i];
            if (e.rank >= s.best) {
                break;
            }
            if ((e.methods & mbit) != 0) {
                win(e, s);
                break;
            }
            s.allow |= e.methods;
            s.any = true;
        }
    }

    // The best (lowest-rank) route matching path, host and method. Subtrees whose best
    // possible rank cannot beat the current winner are skipped.
    void walk(uint32_t ni, size_t pos, Search& s) const {
        const uint8_t depth = s.depth;
        walkFrom(ni, pos, s);
        s.depth = depth;
    }

    // Chains of nodes with one way on (literal children only, or only a '{name}' or '*' child)
    // are followed in this loop; recursion is needed only where the search branches. Leaves
    // s.depth as it was on entry or deeper; walk() restores it.
    void walkFrom(uint32_t ni, size_t pos, Search& s) const {
        const std::string_view path = s.path;
        const uint64_t mbit = s.mbit;
        for (;;) {
            const Node& n = nodes[ni];
            if (n.min_rank >= s.best) {
                return;
            }
            if (pos == kEnd) {
                scanEntries(n.term_begin, n.term_end, mbit, s);
                return;
            }
            const uint8_t flags = n.flags;
            if ((flags & kNodeDStar) != 0) {
                scanEntries(n.dstar_begin, n.dstar_end, mbit, s);
            }
            size_t end = kEnd;  // end of the current segment, computed only when needed
            uint32_t lit = kNone;
            size_t lit_next = kEnd;
            if ((flags & kNodeLiterals) != 0) {
                lit = literalStep(ni, n, path, pos, end, lit_next);
            }
            if ((flags & kNodeAlternatives) == 0) {
                if (lit == kNone) {
                    return;
                }
                ni = lit;
                pos = lit_next;
                continue;
            }
            if (lit != kNone) {
                walk(lit, lit_next, s);
            }
            if (end == kEnd) {
                end = segmentEnd(path, pos);
            }
            const size_t next = nextSegment(path, end);
            if ((flags & kNodeOnlyParam) != 0) {
                if (end == pos) {
                    return;
                }
                s.stack[s.depth++] = Span{path.data() + pos, end - pos};  // <= kMaxCaptures
                ni = n.param;
                pos = next;
                continue;
            }
            if ((flags & kNodeOnlyStar) != 0) {
                ni = n.star;
                pos = next;
                continue;
            }
            walkAlternatives(n, std::string_view(path.data() + pos, end - pos), next, s);
            return;
        }
    }

    void walkAlternatives(const Node& n, std::string_view seg, size_t next, Search& s) const {
        for (uint32_t i = n.glob_begin; i < n.glob_end; ++i) {
            const GlobEdge& ge = glob_edges[i];
            if (nodes[ge.child].min_rank >= s.best) {
                break;
            }
            if (globs[ge.glob].matches(seg)) {
                walk(ge.child, next, s);
            }
        }
        if (n.param != kNone && !seg.empty() && nodes[n.param].min_rank < s.best) {
            s.stack[s.depth++] = Span{seg.data(), seg.size()};  // <= kMaxCaptures per pattern
            walk(n.param, next, s);
            --s.depth;
        }
        if (n.star != kNone && nodes[n.star].min_rank < s.best) {
            walk(n.star, next, s);
        }
        if (n.dstar_child != kNone) {
            // A non-final '**' swallows one or more segments, then the rest must match.
            for (size_t q = next; q != kEnd && nodes[n.dstar_child].min_rank < s.best;
                 q = nextSegment(s.path, segmentEnd(s.path, q))) {
                walk(n.dstar_child, q, s);
            }
        }
    }

    [[gnu::always_inline]] void searchGroup(uint32_t gi, std::string_view host, Search& s) const {
        const Group& g = groups[gi];
        if (g.min_rank >= s.best) {
            return;
        }
        if (g.host_regex != kNone && !regexMatch(g.host_regex, host)) {
            return;
        }
        if (g.root != kNone && nodes[g.root].min_rank < s.best) {
            walk(g.root, 1, s);
        }
        for (uint32_t i = g.regex_begin; i < g.regex_end; ++i) {
            const Entry& e = regex_entries[i];
            if (e.rank >= s.best) {
                break;
            }
            if ((e.methods & s.mbit) != 0 && regexMatch(e.regex, s.path)) {
                s.best = e.rank;
                s.route = e.route;
                copyRegexCaptures(e.regex, s.path, s);
                break;
            }
        }
    }

    // After a search without a winner: adds the methods of the regex routes that match path
    // and host but were skipped for their method (the others were tried and did not match).
    void collectRegexes(uint32_t gi, std::string_view host, Search& s) const {
        const Group& g = groups[gi];
        if (g.regex_begin == g.regex_end ||
            (g.host_regex != kNone && !regexMatch(g.host_regex, host))) {
            return;
        }
        for (uint32_t i = g.regex_begin; i < g.regex_end; ++i) {
            const Entry& e = regex_entries[i];
            if ((e.methods & s.mbit) != 0 || (s.any && (e.methods & ~s.allow) == 0)) {
                continue;  // already tried, or cannot change the outcome
            }
            if (regexMatch(e.regex, s.path)) {
                s.allow |= e.methods;
                s.any = true;
            }
        }
    }

    // Cheap pre-check on the raw Host value: false when no host-restricted group can match a
    // name of its length, so that canonicalHost() can be skipped. Errs towards true.
    [[gnu::always_inline]] bool hostMayMatch(std::string_view h) const {
        if (!pattern_groups.empty()) {
            return true;
        }
        if (h.empty()) {
            return false;
        }
        // Usual case: a bare name ending in a letter (no port, blanks, dot or bracket) whose
        // first byte is not a blank; its length is the canonical length.
        const auto last = static_cast<unsigned char>(h.back() | 0x20);
        if (last >= 'a' && last <= 'z' && h.front() != ' ' && h.front() != '\t') {
            const size_t len = h.size();
            return (len <= kMaxHostLength && (exact_lengths[len >> 6] >> (len & 63) & 1) != 0) ||
                   (!suffix_hosts.empty() && len > min_suffix);
        }
        while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) {
            h.remove_suffix(1);
        }
        while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) {
            h.remove_prefix(1);
        }
        if (h.empty()) {
            return false;
        }
        if (h[0] == '[') {
            return true;
        }
        size_t len = std::min(h.find(':'), h.size());
        if (len != 0 && h[len - 1] == '.') {
            --len;
        }
        if (len <= kMaxHostLength && (exact_lengths[len >> 6] >> (len & 63) & 1) != 0) {
            return true;
        }
        return !suffix_hosts.empty() && len > min_suffix;
    }

    // Calls fn(group) for every group whose host pattern may match `host`: exact, then
    // "*.suffix" from the longest suffix, then regex/general-glob hosts, then host-less.
    template <typename Fn>
    void forEachGroup(std::string_view host, Fn&& fn) const {
        if (!host.empty()) {
            if ((exact_lengths[host.size() >> 6] >> (host.size() & 63) & 1) != 0) {
                const uint32_t g = exact_hosts.find(0, host);
                if (g != kNone) {
                    fn(g);
                }
            }
            if (!suffix_hosts.empty() && host.size() > min_suffix) {
                const size_t from = host.size() > max_suffix ? host.size() - max_suffix : 1;
                for (size_t i = from; i + min_suffix <= host.size(); ++i) {
                    if (host[i] == '.') {
                        const uint32_t w = suffix_hosts.find(0, host.substr(i));
                        if (w != kNone) {
                            fn(w);
                        }
                    }
                }
            }
            for (uint32_t p : pattern_groups) {
                fn(p);
            }
        }
        if (any_group != kNone) {
            fn(any_group);
        }
    }
};

// ---- public API -----------------------------------------------------------------------------

std::string_view canonicalHost(std::string_view h, char* buf) {
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) {
        h.remove_prefix(1);
    }
    while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) {
        h.remove_suffix(1);
    }
    if (h.empty()) {
        return {};
    }
    size_t n = 0;
    if (h[0] == '[') {
        const size_t close = h.find(']');
        if (close == std::string_view::npos) {
            return {};
        }
        const std::string_view inner = h.substr(1, close - 1);
        const std::string_view rest = h.substr(close + 1);
        if (!rest.empty() && (rest[0] != ':' || !allDigits(rest.substr(1)))) {
            return {};
        }
        if (inner.empty() || inner.size() > kMaxHostLength) {
            return {};
        }
        for (char c : inner) {
            if (!isHex(c) && c != ':' && c != '.') {
                return {};
            }
            buf[n++] = lowerAscii(c);
        }
        return {buf, n};
    }
    // One pass: validate and lower-case the name (buf has room for one byte more than the
    // longest accepted name, which may still carry a trailing dot), stop at the port.
    const size_t lim = std::min(h.size(), kMaxHostLength + 1);
    size_t i = 0;
    for (; i < lim; ++i) {
        const char t = kHostChars[static_cast<unsigned char>(h[i])];
        if (t <= kHostPortMark) {
            if (t == 0) {
                return {};
            }
            break;
        }
        buf[i] = t;
    }
    if (i < h.size() && (h[i] != ':' || !allDigits(h.substr(i + 1)))) {
        return {};  // too long, or a bad port
    }
    n = i;
    if (n != 0 && buf[n - 1] == '.') {
        --n;
    }
    if (n == 0 || n > kMaxHostLength) {
        return {};
    }
    return {buf, n};
}

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;
Router::~Router() = default;

core::Result<Router> Router::compile(const std::vector<RouteSpec>& specs,
                                     std::vector<std::string>* warnings) {
    auto impl = std::make_unique<Impl>();
    Impl& im = *impl;
    if (specs.size() > kMaxRoutes) {
        return core::fail("routes: more than ", std::to_string(kMaxRoutes), " routes");
    }
    auto warn = [&](std::string msg) {
        if (warnings != nullptr) {
            warnings->push_back(std::move(msg));
        }
    };

    // Methods named in the config beyond the standard ones get their own bits.
    auto standardBit = [](std::string_view up) -> uint64_t {
        for (size_t b = 1; b < std::size(kStandardMethods); ++b) {
            if (kStandardMethods[b] == up) {
                return uint64_t{1} << b;
            }
        }
        return 0;
    };

    std::vector<BuildNode> bnodes;
    std::vector<BuildGroup> bgroups;
    std::map<std::string, uint32_t> group_by_key;
    std::map<std::string, SeenPattern> seen;
    uint32_t max_regex_captures = 0;

    auto newNode = [&]() {
        bnodes.emplace_back();
        return static_cast<uint32_t>(bnodes.size() - 1);
    };
    auto compileRegex = [&](const std::string& src, uint32_t options,
                            const std::string& where) -> core::Result<uint32_t> {
        int err = 0;
        PCRE2_SIZE off = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(src.data()), src.size(),
                                         options | PCRE2_DOLLAR_ENDONLY, &err, &off, nullptr);
        if (code == nullptr) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            return core::fail(where, ": invalid regex ", quoted(src), " at offset ",
                              std::to_string(off), ": ", reinterpret_cast<const char*>(msg));
        }
        if (pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
            warn(where + ": PCRE2 JIT unavailable for " + quoted(src) +
                 "; using the slower interpreter");
        }
        uint32_t caps = 0;
        pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &caps);
        im.regexes.push_back(
            CompiledRegex{code, caps, regexLiteralPrefix(src, (options & PCRE2_CASELESS) != 0)});
        max_regex_captures = std::max(max_regex_captures, caps);
        return static_cast<uint32_t>(im.regexes.size() - 1);
    };

    for (size_t ri = 0; ri < specs.size(); ++ri) {
        const RouteSpec& spec = specs[ri];
        const std::string where = "routes[" + std::to_string(ri) + "]";
        RouteData rd;
        rd.id = spec.id;

        // methods
        if (!spec.methods.empty()) {
            rd.methods = 0;
            for (const std::string& m : spec.methods) {
                if (m.empty() || !std::all_of(m.begin(), m.end(), isTokenChar)) {
                    return core::fail(where, ".methods: invalid method ", quoted(m));
                }
                std::string up(m);
                for (char& c : up) {
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                }
                uint64_t bit = standardBit(up);
                if (bit == 0) {
                    auto it = std::find(im.extra_methods.begin(), im.extra_methods.end(), up);
                    if (it == im.extra_methods.end()) {
                        if (kFirstExtraMethodBit + im.extra_methods.size() >= 64) {
                            return core::fail(where, ".methods: more than ",
                                              std::to_string(64 - kFirstExtraMethodBit),
                                              " distinct non-standard methods");
                        }
                        if (up.size() > 32) {
                            return core::fail(where,
                                              ".methods: method name longer than 32 "
                                              "bytes");
                        }
                        im.extra_methods.push_back(up);
                        it = im.extra_methods.end() - 1;
                    }
                    bit = uint64_t{1} << (kFirstExtraMethodBit +
                                          static_cast<size_t>(it - im.extra_methods.begin()));
                }
                rd.methods |= bit;
            }
            if ((rd.methods & method::kGet) != 0) {
                rd.methods |= method::kHead;
            }
        }

        // host
        std::string host_warning;
        auto hp = parseHostPattern(spec.host, host_warning);
        if (!hp) {
            return core::fail(where, ".host: ", hp.error().msg);
        }
        if (!host_warning.empty()) {
            warn(where + ".host: " + host_warning);
        }
        uint32_t gi;
        if (auto it = group_by_key.find(hp->key); it != group_by_key.end()) {
            gi = it->second;
        } else {
            gi = static_cast<uint32_t>(bgroups.size());
            group_by_key.emplace(hp->key, gi);
            BuildGroup bg{hp.value(), kNone, {}, kNone};
            if (!hp->regex.empty()) {
                auto re = compileRegex(hp->regex, PCRE2_CASELESS, where + ".host");
                if (!re) {
                    return re.error();
                }
                bg.host_regex = re.value();
            }
            bgroups.push_back(std::move(bg));
        }
        const uint64_t host_bits = hostRankBits(hp->cls, hp->literal);

        // path
        const std::string& path = spec.path;
        const bool is_regex = path.size() >= 2 && path.front() == '^' && path.back() == '$';
        ParsedPath pp;
        if (is_regex) {
            auto re = compileRegex(path, 0, where + ".path");
            if (!re) {
                return re.error();
            }
            rd.regex = re.value();
            pp.regex = true;
            pp.text = path;
            pp.canonical = "re:" + path;
            const CompiledRegex& cr = im.regexes[rd.regex];
            rd.capture_names.resize(std::min<size_t>(cr.captures, kMaxCaptures));
            uint32_t name_count = 0;
            uint32_t entry_size = 0;
            PCRE2_SPTR table = nullptr;
            pcre2_pattern_info(cr.code, PCRE2_INFO_NAMECOUNT, &name_count);
            pcre2_pattern_info(cr.code, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
            pcre2_pattern_info(cr.code, PCRE2_INFO_NAMETABLE, &table);
            for (uint32_t k = 0; k < name_count; ++k) {
                const PCRE2_SPTR e = table + static_cast<size_t>(k) * entry_size;
                const size_t num = (static_cast<size_t>(e[0]) << 8) | e[1];
                if (num >= 1 && num <= rd.capture_names.size()) {
                    rd.capture_names[num - 1] = reinterpret_cast<const char*>(e + 2);
                }
            }
        } else {
            auto parsed = parseGlobPath(path, im.globs);
            if (!parsed) {
                return core::fail(where, ".path: ", parsed.error().msg);
            }
            pp = std::move(parsed.value());
            rd.capture_names = pp.params;
        }
        const PathClass pc = pp.regex       ? PathClass::Regex
                             : pp.exact     ? PathClass::Exact
                             : pp.catch_all ? PathClass::CatchAll
                                            : PathClass::Glob;
        rd.rank = host_bits | pathRankBits(pc, pp.lead, pp.total, pp.dstar) | ri;

        // strip_prefix / rewrite
        if (!spec.strip_prefix.empty() && !spec.rewrite.empty()) {
            return core::fail(where, ": strip_prefix and rewrite are mutually exclusive");
        }
        if (!spec.strip_prefix.empty()) {
            const std::string& sp = spec.strip_prefix;
            if (sp.find_first_of("*?[]{}") != std::string::npos) {
                return core::fail(where, ".strip_prefix: must be a literal path prefix");
            }
            std::string buf(sp.size(), '\0');
            size_t len = 0;
            const NormalizeResult nr = normalizePath(sp, buf.data(), buf.size(), len);
            if (nr != NormalizeResult::Ok) {
                return core::fail(where, ".strip_prefix: invalid path prefix ", quoted(sp), " (",
                                  std::string(normalizeResultName(nr)), ")");
            }
            buf.resize(len);
            if (buf.size() > 1 && buf.back() == '/') {
                buf.pop_back();
            }
            if (buf != "/") {
                rd.strip_prefix = std::move(buf);
            }
        }
        if (!spec.rewrite.empty()) {
            const std::string& t = spec.rewrite;
            if (t[0] != '/') {
                return core::fail(where, ".rewrite: must start with '/'");
            }
            const size_t ncaps = rd.capture_names.size();
            auto addCapture = [&](size_t idx) {
                rd.rewrite_ops.push_back(RewriteOp{static_cast<uint32_t>(idx), 0, 0});
            };
            auto addLiteral = [&](char c) {
                if (rd.rewrite_ops.empty() || rd.rewrite_ops.back().capture != kNone) {
                    rd.rewrite_ops.push_back(
                        RewriteOp{kNone, static_cast<uint32_t>(rd.rewrite_text.size()), 0});
                }
                rd.rewrite_text.push_back(c);
                rd.rewrite_ops.back().len++;
            };
            for (size_t i = 0; i < t.size(); ++i) {
                const char c = t[i];
                const auto u = static_cast<unsigned char>(c);
                if (u <= 0x20 || u == 0x7F) {
                    return core::fail(where, ".rewrite: invalid character at byte ",
                                      std::to_string(i));
                }
                if (c == '?' || c == '#') {
                    return core::fail(where,
                                      ".rewrite: must not contain '?' or '#' (the query "
                                      "is forwarded unchanged)");
                }
                if (c == '$') {
                    if (i + 1 < t.size() && t[i + 1] == '$') {
                        addLiteral('$');
                        ++i;
                        continue;
                    }
                    size_t j = i + 1;
                    while (j < t.size() && j - i <= 2 &&
                           std::isdigit(static_cast<unsigned char>(t[j]))) {
                        ++j;
                    }
                    if (j == i + 1) {
                        return core::fail(where,
                                          ".rewrite: '$' must be followed by a capture "
                                          "number or another '$'");
                    }
                    const size_t num = std::stoul(t.substr(i + 1, j - i - 1));
                    if (num < 1 || num > ncaps) {
                        return core::fail(where, ".rewrite: $", std::to_string(num),
                                          " does not exist (the route has ", std::to_string(ncaps),
                                          " usable captures)");
                    }
                    addCapture(num - 1);
                    i = j - 1;
                    continue;
                }
                if (c == '{') {
                    const size_t close = t.find('}', i);
                    if (close == std::string::npos) {
                        return core::fail(where, ".rewrite: unterminated '{'");
                    }
                    const std::string name = t.substr(i + 1, close - i - 1);
                    auto it = std::find(rd.capture_names.begin(), rd.capture_names.end(), name);
                    if (name.empty() || it == rd.capture_names.end()) {
                        return core::fail(where, ".rewrite: unknown capture ", quoted(name));
                    }
                    addCapture(static_cast<size_t>(it - rd.capture_names.begin()));
                    i = close;
                    continue;
                }
                if (c == '}') {
                    return core::fail(where, ".rewrite: unmatched '}'");
                }
                addLiteral(c);
            }
            rd.has_rewrite = true;
        }

        // never-winning duplicates
        const std::string key = hp->key + '\n' + pp.canonical;
        auto [seen_it, inserted] = seen.try_emplace(key, SeenPattern{ri, rd.methods, rd.methods});
        if (!inserted) {
            SeenPattern& sp = seen_it->second;
            const std::string first =
                "routes[" + std::to_string(sp.first) + "] (" + quoted(specs[sp.first].id) + ")";
            if ((rd.methods & ~sp.first_methods) == 0) {
                warn(where + " (" + quoted(spec.id) + "): can never win: " + first +
                     " has the same path and host and covers all its methods");
            } else if ((rd.methods & ~sp.covered) == 0) {
                warn(where + " (" + quoted(spec.id) +
                     "): can never win: earlier routes with the "
                     "same path and host (the first is " +
                     first + ") cover all its methods");
            }
            sp.covered |= rd.methods;
        }

        // insert
        BuildGroup& bg = bgroups[gi];
        const Entry entry{rd.rank, rd.methods, static_cast<uint32_t>(ri), rd.regex};
        if (pp.regex) {
            bg.regex_entries.push_back(entry);
        } else {
            if (bg.root == kNone) {
                bg.root = newNode();
            }
            uint32_t cur = bg.root;
            for (size_t k = 0; k < pp.segs.size(); ++k) {
                const PatSeg& ps = pp.segs[k];
                uint32_t next = kNone;
                switch (ps.kind) {
                    case SegKind::Literal: {
                        auto lit = bnodes[cur].literals.find(ps.text);
                        if (lit != bnodes[cur].literals.end()) {
                            next = lit->second;
                        } else {
                            next = newNode();
                            bnodes[cur].literals.emplace(ps.text, next);
                        }
                        break;
                    }
                    case SegKind::Star:
                        if (bnodes[cur].star == kNone) {
                            const uint32_t nn = newNode();
                            bnodes[cur].star = nn;
                        }
                        next = bnodes[cur].star;
                        break;
                    case SegKind::Param:
                        if (bnodes[cur].param == kNone) {
                            const uint32_t nn = newNode();
                            bnodes[cur].param = nn;
                        }
                        next = bnodes[cur].param;
                        break;
                    case SegKind::Glob: {
                        for (const GlobEdge& ge : bnodes[cur].globs) {
                            if (im.globs[ge.glob].source() == ps.text) {
                                next = ge.child;
                                break;
                            }
                        }
                        if (next == kNone) {
                            next = newNode();
                            bnodes[cur].globs.push_back(GlobEdge{ps.index, next});
                        }
                        break;
                    }
                    case SegKind::DStar:
                        if (k + 1 == pp.segs.size()) {
                            bnodes[cur].dstar.push_back(entry);
                            next = kNone;
                        } else {
                            if (bnodes[cur].dstar_child == kNone) {
                                const uint32_t nn = newNode();
                                bnodes[cur].dstar_child = nn;
                            }
                            next = bnodes[cur].dstar_child;
                        }
                        break;
                }
                if (next == kNone) {
                    cur = kNone;
                    break;
                }
                cur = next;
            }
            if (cur != kNone) {
                bnodes[cur].term.push_back(entry);
            }
        }
        im.routes.push_back(std::move(rd));
    }

    // Flatten the build nodes (a child always has a larger index than its parent).
    auto byRank = [](const Entry& a, const Entry& b) { return a.rank < b.rank; };
    std::vector<StringTable::Item> edge_items;
    std::vector<LitEdge> hashed_edges;  // appended to lit_edges after the linear ones
    im.nodes.resize(bnodes.size());
    for (size_t i = 0; i < bnodes.size(); ++i) {
        BuildNode& b = bnodes[i];
        Node& n = im.nodes[i];
        std::sort(b.term.begin(), b.term.end(), byRank);
        std::sort(b.dstar.begin(), b.dstar.end(), byRank);
        n.term_begin = static_cast<uint32_t>(im.entries.size());
        im.entries.insert(im.entries.end(), b.term.begin(), b.term.end());
        n.term_end = static_cast<uint32_t>(im.entries.size());
        n.dstar_begin = n.term_end;
        im.entries.insert(im.entries.end(), b.dstar.begin(), b.dstar.end());
        n.dstar_end = static_cast<uint32_t>(im.entries.size());
        n.glob_begin = static_cast<uint32_t>(im.glob_edges.size());
        im.glob_edges.insert(im.glob_edges.end(), b.globs.begin(), b.globs.end());
        n.glob_end = static_cast<uint32_t>(im.glob_edges.size());
        n.star = b.star;
        n.param = b.param;
        n.dstar_child = b.dstar_child;
        const bool alternatives =
            !b.globs.empty() || b.star != kNone || b.param != kNone || b.dstar_child != kNone;
        const bool hashed = b.literals.size() > kLinearLiteralChildren;
        n.flags = static_cast<uint8_t>(
            (b.literals.empty() ? 0 : kNodeLiterals) | (hashed ? kNodeHashed : 0) |
            (alternatives ? kNodeAlternatives : 0) | (b.dstar.empty() ? 0 : kNodeDStar));
        if (b.globs.empty() && b.dstar_child == kNone) {
            if (b.param != kNone && b.star == kNone) {
                n.flags |= kNodeOnlyParam;
            } else if (b.star != kNone && b.param == kNone) {
                n.flags |= kNodeOnlyStar;
            }
        }
        n.lit_begin = static_cast<uint32_t>(im.lit_edges.size());
        for (const auto& [seg, child] : b.literals) {
            // Path compression: skip nodes that only lead to one literal child ("api" -> "v1"
            // becomes one edge "api/v1"); their subtree minimum equals the child's. A hashed
            // node is probed with one segment, so its edge keeps only the rest ("/v1"), which is
            // compared from the '/' that ends the probed segment.
            std::string key = hashed ? std::string() : seg;
            uint32_t target = child;
            while (isPassThrough(bnodes[target])) {
                const auto& only = *bnodes[target].literals.begin();
                key += '/';
                key += only.first;
                target = only.second;
            }
            if (hashed) {
                edge_items.push_back(StringTable::Item{static_cast<uint32_t>(i), seg,
                                                       static_cast<uint32_t>(hashed_edges.size())});
            }
            const size_t k = std::min<size_t>(key.size(), 8);
            (hashed ? hashed_edges : im.lit_edges)
                .push_back(LitEdge{shortKey(key.data(), k),
                                   k == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * k)) - 1,
                                   static_cast<uint32_t>(im.lit_keys.size()),
                                   static_cast<uint32_t>(key.size()), target});
            im.lit_keys.append(key);
        }
        n.lit_end = static_cast<uint32_t>(im.lit_edges.size());
    }
    for (StringTable::Item& it : edge_items) {
        it.value += static_cast<uint32_t>(im.lit_edges.size());
    }
    im.lit_edges.insert(im.lit_edges.end(), hashed_edges.begin(), hashed_edges.end());
    im.edges.build(edge_items);
    for (size_t i = bnodes.size(); i-- > 0;) {
        Node& n = im.nodes[i];
        uint64_t m = kNoRank;
        if (n.term_end > n.term_begin) {
            m = std::min(m, im.entries[n.term_begin].rank);
        }
        if (n.dstar_end > n.dstar_begin) {
            m = std::min(m, im.entries[n.dstar_begin].rank);
        }
        for (const auto& [seg, child] : bnodes[i].literals) {
            m = std::min(m, im.nodes[child].min_rank);
        }
        for (uint32_t c : {n.star, n.param, n.dstar_child}) {
            if (c != kNone) {
                m = std::min(m, im.nodes[c].min_rank);
            }
        }
        for (uint32_t k = n.glob_begin; k < n.glob_end; ++k) {
            m = std::min(m, im.nodes[im.glob_edges[k].child].min_rank);
        }
        n.min_rank = m;
        std::sort(im.glob_edges.begin() + n.glob_begin, im.glob_edges.begin() + n.glob_end,
                  [&](const GlobEdge& a, const GlobEdge& b) {
                      return im.nodes[a.child].min_rank < im.nodes[b.child].min_rank;
                  });
    }

    // Groups and host lookup tables.
    std::vector<StringTable::Item> exact_items;
    std::vector<StringTable::Item> suffix_items;
    for (size_t gi = 0; gi < bgroups.size(); ++gi) {
        BuildGroup& bg = bgroups[gi];
        Group g;
        g.root = bg.root;
        std::sort(bg.regex_entries.begin(), bg.regex_entries.end(), byRank);
        g.regex_begin = static_cast<uint32_t>(im.regex_entries.size());
        im.regex_entries.insert(im.regex_entries.end(), bg.regex_entries.begin(),
                                bg.regex_entries.end());
        g.regex_end = static_cast<uint32_t>(im.regex_entries.size());
        g.min_rank = g.root != kNone ? im.nodes[g.root].min_rank : kNoRank;
        if (g.regex_end > g.regex_begin) {
            g.min_rank = std::min(g.min_rank, im.regex_entries[g.regex_begin].rank);
        }
        const auto gid = static_cast<uint32_t>(gi);
        switch (bg.host.cls) {
            case HostClass::Any:
                im.any_group = gid;
                break;
            case HostClass::Exact:
                exact_items.push_back(StringTable::Item{0, bg.host.text, gid});
                im.exact_lengths[bg.host.text.size() >> 6] |= uint64_t{1}
                                                              << (bg.host.text.size() & 63);
                im.any_host_routes = true;
                break;
            case HostClass::Wildcard:
            case HostClass::Regex:
                im.any_host_routes = true;
                if (bg.host_regex == kNone) {
                    suffix_items.push_back(StringTable::Item{0, bg.host.text, gid});
                    im.min_suffix = std::min(im.min_suffix, bg.host.text.size());
                    im.max_suffix = std::max(im.max_suffix, bg.host.text.size());
                } else {
                    g.host_regex = bg.host_regex;
                    im.pattern_groups.push_back(gid);
                }
                break;
        }
        im.groups.push_back(g);
    }
    im.exact_hosts.build(exact_items);
    im.suffix_hosts.build(suffix_items);
    std::sort(im.pattern_groups.begin(), im.pattern_groups.end(), [&](uint32_t a, uint32_t b) {
        return im.groups[a].min_rank < im.groups[b].min_rank;
    });

    if (!im.regexes.empty()) {
        im.match_data = pcre2_match_data_create(max_regex_captures + 1, nullptr);
        im.match_context = pcre2_match_context_create(nullptr);
        im.jit_stack = pcre2_jit_stack_create(32 * 1024, 512 * 1024, nullptr);
        if (im.match_data == nullptr || im.match_context == nullptr || im.jit_stack == nullptr) {
            return core::fail("routes: out of memory while preparing PCRE2");
        }
        pcre2_set_match_limit(im.match_context, kRegexMatchLimit);
        pcre2_jit_stack_assign(im.match_context, nullptr, im.jit_stack);
    }

    size_t names = 0;
    size_t total = 0;
    for (size_t b = 1; b < std::size(kStandardMethods); ++b) {
        total += kStandardMethods[b].size();
        ++names;
    }
    for (const std::string& m : im.extra_methods) {
        total += m.size();
        ++names;
    }
    im.max_allow_len = total + 2 * (names - 1);
    return Router(std::move(impl));
}

Match Router::match(std::string_view method, std::string_view host_header,
                    std::string_view path) const {
    const Impl& im = *impl_;
    Match m;
    if (path.empty() || path[0] != '/') {
        return m;
    }
    char host_buf[kHostBufferSize];
    const std::string_view host = im.any_host_routes && im.hostMayMatch(host_header)
                                      ? canonicalHost(host_header, host_buf)
                                      : std::string_view();
    Search s;
    s.path = path;
    s.mbit = im.methodBit(method);
    im.forEachGroup(host, [&](uint32_t g) { im.searchGroup(g, host, s); });
    if (s.route != kNone) {
        m.status = MatchStatus::Found;
        m.route = s.route;
        m.capture_count = s.ncaps;
        for (uint8_t i = 0; i < s.ncaps; ++i) {
            m.captures[i] = Capture{s.caps[i].p, s.caps[i].n};
        }
        return m;
    }
    im.forEachGroup(host, [&](uint32_t g) { im.collectRegexes(g, host, s); });
    if (s.any) {
        m.status = MatchStatus::MethodNotAllowed;
        m.allow = s.allow & ~method::kOther;
    }
    return m;
}

size_t Router::rewritePath(const Match& m, std::string_view path, char* out, size_t cap) const {
    const Impl& im = *impl_;
    if (m.status != MatchStatus::Found || m.route >= im.routes.size()) {
        return 0;
    }
    const RouteData& r = im.routes[m.route];
    if (r.has_rewrite) {
        size_t w = 0;
        for (const RewriteOp& op : r.rewrite_ops) {
            std::string_view piece;
            if (op.capture == kNone) {
                piece = std::string_view(r.rewrite_text).substr(op.off, op.len);
            } else if (op.capture < m.capture_count) {
                piece = m.captures[op.capture];
            }
            if (piece.size() > cap - w) {
                return 0;
            }
            if (!piece.empty()) {  // an unset regex group is {nullptr, 0}: no memcpy from null
                std::memcpy(out + w, piece.data(), piece.size());
                w += piece.size();
            }
        }
        size_t len = 0;
        if (normalizePath(std::string_view(out, w), out, cap, len) != NormalizeResult::Ok) {
            return 0;
        }
        return len;
    }
    std::string_view p = path;
    const std::string& sp = r.strip_prefix;
    if (!sp.empty() && p.size() >= sp.size() && p.compare(0, sp.size(), sp) == 0) {
        if (p.size() == sp.size()) {
            p = "/";
        } else if (p[sp.size()] == '/') {
            p.remove_prefix(sp.size());
        }
    }
    if (p.empty() || p.size() > cap) {
        return 0;
    }
    std::memcpy(out, p.data(), p.size());
    return p.size();
}

size_t Router::formatAllow(uint64_t allow, char* out, size_t cap) const {
    const Impl& im = *impl_;
    size_t w = 0;
    for (size_t b = 1; b < 64; ++b) {
        if ((allow & (uint64_t{1} << b)) == 0) {
            continue;
        }
        std::string_view name;
        if (b < std::size(kStandardMethods)) {
            name = kStandardMethods[b];
        } else if (b - kFirstExtraMethodBit < im.extra_methods.size()) {
            name = im.extra_methods[b - kFirstExtraMethodBit];
        } else {
            continue;
        }
        const size_t need = (w == 0 ? 0 : 2) + name.size();
        if (need > cap - w) {
            return 0;
        }
        if (w != 0) {
            out[w++] = ',';
            out[w++] = ' ';
        }
        std::memcpy(out + w, name.data(), name.size());
        w += name.size();
    }
    return w;
}

size_t Router::maxAllowLength() const { return impl_->max_allow_len; }

size_t Router::routeCount() const { return impl_->routes.size(); }

std::string_view Router::routeId(uint32_t route) const {
    return route < impl_->routes.size() ? std::string_view(impl_->routes[route].id)
                                        : std::string_view();
}

std::string_view Router::captureName(uint32_t route, size_t i) const {
    if (route >= impl_->routes.size() || i >= impl_->routes[route].capture_names.size()) {
        return {};
    }
    return impl_->routes[route].capture_names[i];
}

}  // namespace photon::mod::routing
