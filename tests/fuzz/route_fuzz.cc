// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the router: compiles arbitrary route tables (path globs, `{name}`
// segments, `**`, PCRE2 path and host regexes, host globs, methods, strip_prefix, rewrite) and
// matches arbitrary requests against them.
// Input: byte 0 gives the number of routes (1 + byte % 8); then lines. A route line is a method
// selector byte followed by "path[ host][\tprefix-or-template]"; a request line is a method
// selector byte followed by "path[ host]" (the path goes through normalizePath first).
// Properties, against a simple reference matcher written from the documented semantics
// (src/modules/routing/README.md), for every route table whose patterns the reference
// understands: a Found route matches path, host and method; when some route matches all three
// the result is Found, and its (host class, path class) is the most specific among them; NotFound
// means no route matches path and host; 405 means some do but none takes the method, and `allow`
// is the union of their methods. Always: captures point into the path, a forwarded path starts
// with '/', matching is deterministic, canonicalHost() is idempotent on names.
// fuzz-sources: src/modules/routing/router.cc src/modules/routing/segment_glob.cc src/modules/routing/path_normalize.cc
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "modules/routing/path_normalize.h"
#include "modules/routing/router.h"

using namespace photon::mod::routing;

namespace {

// ---- reference matcher ---------------------------------------------------------------------

enum HostClass { kHostExact = 0, kHostWildcard = 1, kHostRegex = 2, kHostAny = 3 };
enum PathClass { kPathExact = 0, kPathGlob = 1, kPathRegex = 2, kPathCatchAll = 3 };

struct RegexRef {
    pcre2_code* code = nullptr;
    ~RegexRef() { pcre2_code_free(code); }
};

// Matches with the interpreter (the router uses the JIT); nullopt when undecided (limits).
std::optional<bool> regexMatches(const std::string& re, uint32_t options, std::string_view s) {
    int err = 0;
    PCRE2_SIZE off = 0;
    RegexRef r;
    r.code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                           options | PCRE2_DOLLAR_ENDONLY, &err, &off, nullptr);
    if (r.code == nullptr) {
        return std::nullopt;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(r.code, nullptr);
    pcre2_match_context* mc = pcre2_match_context_create(nullptr);
    // Well below the router's limit: a pattern that needs more is left undecided here.
    pcre2_set_match_limit(mc, 10000);
    int rc = pcre2_match(r.code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, mc);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    if (rc >= 0) {
        return true;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        return false;
    }
    return std::nullopt;
}

// One byte set "[...]" starting at s[i] == '['. Sets with escapes or POSIX-like '[' inside are
// left to the unit tests (returns false: not understood). On success `end` is the index of ']'.
bool parseSet(std::string_view s, size_t i, bool (&member)[256], size_t& end) {
    for (bool& m : member) {
        m = false;
    }
    size_t j = i + 1;
    bool negate = false;
    if (j < s.size() && s[j] == '^') {
        negate = true;
        ++j;
    }
    const size_t first = j;
    for (; j < s.size(); ++j) {
        char c = s[j];
        if (c == ']' && j != first) {
            break;
        }
        if (c == '\\' || c == '[') {
            return false;
        }
        if (j + 2 < s.size() && s[j + 1] == '-' && s[j + 2] != ']') {
            auto lo = static_cast<unsigned char>(c);
            auto hi = static_cast<unsigned char>(s[j + 2]);
            if (s[j + 2] == '\\' || s[j + 2] == '[' || lo > hi) {
                return false;
            }
            for (unsigned v = lo; v <= hi; ++v) {
                member[v] = true;
            }
            j += 2;
            continue;
        }
        member[static_cast<unsigned char>(c)] = true;
    }
    if (j >= s.size()) {
        return false;
    }
    if (negate) {
        for (bool& m : member) {
            m = !m;
        }
    }
    end = j;
    return true;
}

// Glob over one segment (or one host): '*' any run of bytes (at least `star_min`), '?' one
// byte, '[...]' one byte of a set, anything else itself. Backtracking; inputs are short.
bool globMatch(std::string_view p, std::string_view s, size_t star_min) {
    if (p.empty()) {
        return s.empty();
    }
    if (p[0] == '*') {
        size_t k = 1;
        while (k < p.size() && p[k] == '*') {
            ++k;  // a run of stars is one star
        }
        for (size_t n = star_min; n <= s.size(); ++n) {
            if (globMatch(p.substr(k), s.substr(n), star_min)) {
                return true;
            }
        }
        return false;
    }
    if (s.empty()) {
        return false;
    }
    if (p[0] == '?') {
        return globMatch(p.substr(1), s.substr(1), star_min);
    }
    if (p[0] == '[') {
        bool member[256];
        size_t end = 0;
        if (!parseSet(p, 0, member, end)) {
            return false;  // callers checked understandability first
        }
        return member[static_cast<unsigned char>(s[0])] &&
               globMatch(p.substr(end + 1), s.substr(1), star_min);
    }
    return p[0] == s[0] && globMatch(p.substr(1), s.substr(1), star_min);
}

// True when every set of the glob is one the reference understands.
bool globUnderstood(std::string_view p) {
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '[') {
            bool member[256];
            size_t end = 0;
            if (!parseSet(p, i, member, end)) {
                return false;
            }
            i = end;
        }
    }
    return true;
}

std::vector<std::string_view> segmentsOf(std::string_view path) {
    std::vector<std::string_view> out;
    size_t pos = 1;
    for (;;) {
        size_t slash = path.find('/', pos);
        if (slash == std::string_view::npos) {
            out.push_back(path.substr(pos));
            return out;
        }
        out.push_back(path.substr(pos, slash - pos));
        pos = slash + 1;
    }
}

bool isParam(std::string_view seg) {
    return seg.size() >= 3 && seg.front() == '{' && seg.back() == '}';
}

struct RefRoute {
    bool understood = true;
    HostClass host_class = kHostAny;
    std::string host;  // Exact/Wildcard: lower-cased pattern; Regex: the regex
    bool host_suffix = false;
    PathClass path_class = kPathExact;
    std::string path;
    std::vector<std::string> segs;
    bool has_dstar = false;
    size_t params = 0;
    std::vector<std::string> methods;  // upper-cased; empty = any
};

bool segsMatch(const RefRoute& r, size_t pi, const std::vector<std::string_view>& segs, size_t si) {
    if (pi == r.segs.size()) {
        return si == segs.size();
    }
    std::string_view p = r.segs[pi];
    if (p == "**") {
        for (size_t n = 1; si + n <= segs.size(); ++n) {
            if (segsMatch(r, pi + 1, segs, si + n)) {
                return true;
            }
        }
        return false;
    }
    if (si == segs.size()) {
        return false;
    }
    if (isParam(p)) {
        return !segs[si].empty() && segsMatch(r, pi + 1, segs, si + 1);
    }
    return globMatch(p, segs[si], 0) && segsMatch(r, pi + 1, segs, si + 1);
}

std::string upperAscii(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return out;
}

RefRoute makeRef(const RouteSpec& spec) {
    RefRoute r;
    for (const auto& m : spec.methods) {
        r.methods.push_back(upperAscii(m));
    }
    // Host.
    const std::string& h = spec.host;
    if (h.empty()) {
        r.host_class = kHostAny;
    } else if (h.size() >= 2 && h.front() == '^' && h.back() == '$') {
        r.host_class = kHostRegex;
        r.host = h;
    } else {
        std::string name;
        for (char c : h) {
            name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        if (name.size() > 1 && name.back() == '.') {
            name.pop_back();
        }
        for (char c : name) {
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '*' || c == '?')) {
                r.understood = false;  // ports, IPv6 literals, sets: the unit tests' job
            }
        }
        r.host = name;
        if (name.find_first_of("*?") == std::string::npos) {
            r.host_class = kHostExact;
        } else {
            r.host_class = kHostWildcard;
        }
    }
    // Path.
    const std::string& p = spec.path;
    r.path = p;
    if (p.size() >= 2 && p.front() == '^' && p.back() == '$') {
        r.path_class = kPathRegex;
        return r;
    }
    if (p.empty() || p[0] != '/' || p.find('%') != std::string::npos) {
        r.understood = false;
        return r;
    }
    for (std::string_view seg : segmentsOf(r.path)) {
        r.segs.emplace_back(seg);
    }
    bool wild = false;
    for (std::string_view s : r.segs) {
        if (s == "**") {
            r.has_dstar = true;
            wild = true;
        } else if (isParam(s)) {
            ++r.params;
            wild = true;
        } else if (s.find_first_of("*?[") != std::string_view::npos) {
            wild = true;
            if (!globUnderstood(s)) {
                r.understood = false;
            }
        }
    }
    r.path_class = p == "/**" ? kPathCatchAll : wild ? kPathGlob : kPathExact;
    return r;
}

// std::nullopt: the reference cannot decide (a regex ran into its limit).
std::optional<bool> pathMatches(const RefRoute& r, std::string_view path) {
    if (r.path_class == kPathRegex) {
        return regexMatches(r.path, 0, path);
    }
    return segsMatch(r, 0, segmentsOf(path), 0);
}

std::optional<bool> hostMatches(const RefRoute& r, std::string_view canon) {
    if (r.host_class == kHostAny) {
        return true;
    }
    if (canon.empty()) {
        return false;
    }
    switch (r.host_class) {
        case kHostExact:
            return canon == r.host;
        case kHostWildcard:
            return globMatch(r.host, canon, 1);
        case kHostRegex:
            return regexMatches(r.host, PCRE2_CASELESS, canon);
        default:
            return false;
    }
}

bool methodMatches(const RefRoute& r, std::string_view method) {
    if (r.methods.empty()) {
        return true;
    }
    std::string m = upperAscii(method);
    for (const auto& x : r.methods) {
        if (x == m || (m == "HEAD" && x == "GET")) {
            return true;
        }
    }
    return false;
}

uint64_t standardBits(const RefRoute& r) {
    static const char* const kNames[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                         "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    uint64_t bits = 0;
    for (const auto& m : r.methods) {
        for (size_t i = 0; i < 9; ++i) {
            if (m == kNames[i]) {
                bits |= uint64_t{1} << (i + 1);
            }
        }
        if (m == "GET") {
            bits |= method::kHead;
        }
    }
    return bits;
}

bool hasNonStandard(const RefRoute& r) {
    for (const auto& m : r.methods) {
        if (m != "GET" && m != "HEAD" && m != "POST" && m != "PUT" && m != "DELETE" &&
            m != "PATCH" && m != "OPTIONS" && m != "CONNECT" && m != "TRACE") {
            return true;
        }
    }
    return false;
}

// ---- input decoding --------------------------------------------------------------------------

const char* const kRouteMethods[] = {"GET", "post", "DELETE", "PURGE", "Put"};
const char* const kRequestMethods[] = {"GET", "HEAD", "POST", "DELETE", "PURGE", "BREW", "put"};

RouteSpec routeFromLine(std::string_view line, size_t index) {
    RouteSpec spec;
    spec.id = "r" + std::to_string(index);
    if (line.empty()) {
        return spec;
    }
    auto sel = static_cast<uint8_t>(line[0]);
    line.remove_prefix(1);
    for (size_t b = 0; b < 5; ++b) {
        if ((sel & (1u << b)) != 0) {
            spec.methods.emplace_back(kRouteMethods[b]);
        }
    }
    size_t tab = line.find('\t');
    if (tab != std::string_view::npos) {
        std::string extra(line.substr(tab + 1));
        ((sel & 0x20) != 0 ? spec.strip_prefix : spec.rewrite) = std::move(extra);
        if ((sel & 0x60) == 0x60) {
            spec.strip_prefix = spec.rewrite;  // both: must be refused
        }
        line = line.substr(0, tab);
    }
    size_t sp = line.find(' ');
    spec.path = std::string(line.substr(0, sp));
    if (sp != std::string_view::npos) {
        spec.host = std::string(line.substr(sp + 1));
    }
    return spec;
}

bool inside(const Capture& c, std::string_view path) {
    return c.len == 0 || (c.ptr >= path.data() && c.ptr + c.len <= path.data() + path.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > 4096) {
        return 0;
    }
    const size_t nroutes = 1 + data[0] % 8;
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    std::vector<std::string_view> lines;
    while (!in.empty() && lines.size() < nroutes + 16) {
        size_t nl = in.find('\n');
        lines.push_back(in.substr(0, nl));
        in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    }
    std::vector<RouteSpec> specs;
    for (size_t i = 0; i < lines.size() && i < nroutes; ++i) {
        specs.push_back(routeFromLine(lines[i], i));
    }
    std::vector<std::string> warnings;
    auto compiled = Router::compile(specs, &warnings);
    for (const auto& s : specs) {
        if (!s.strip_prefix.empty() && !s.rewrite.empty()) {
            FUZZ_CHECK(!compiled.ok());
        }
    }
    if (!compiled.ok()) {
        FUZZ_CHECK(!compiled.error().msg.empty());
        return 0;
    }
    const Router& router = compiled.value();
    FUZZ_CHECK(router.routeCount() == specs.size());

    std::vector<RefRoute> refs;
    bool understood = true;
    for (const auto& s : specs) {
        refs.push_back(makeRef(s));
        understood = understood && refs.back().understood;
        FUZZ_CHECK(refs.back().params <= kMaxCaptures);
    }
    std::vector<char> allow_buf(router.maxAllowLength() + 1);

    for (size_t li = nroutes; li < lines.size(); ++li) {
        std::string_view line = lines[li];
        if (line.empty()) {
            continue;
        }
        const char* method =
            kRequestMethods[static_cast<uint8_t>(line[0]) % std::size(kRequestMethods)];
        line.remove_prefix(1);
        size_t sp = line.find(' ');
        std::string_view raw_path = line.substr(0, sp);
        std::string_view host = sp == std::string_view::npos ? "" : line.substr(sp + 1);
        if (raw_path.empty() || raw_path[0] != '/') {
            continue;
        }
        std::string norm(raw_path.size(), '\0');
        size_t len = 0;
        if (normalizePath(raw_path, norm.data(), norm.size(), len) != NormalizeResult::Ok) {
            continue;
        }
        norm.resize(len);
        const std::string_view path(norm);

        char hbuf[kHostBufferSize];
        std::string canon(canonicalHost(host, hbuf));
        // Names only: the canonical form of "[::1]" is "::1", which is no Host value, and only
        // one trailing dot is removed ("a.." is "a.").
        if (!canon.empty() && canon.find(':') == std::string::npos && canon.back() != '.') {
            char hbuf2[kHostBufferSize];
            FUZZ_CHECK(canonicalHost(canon, hbuf2) == canon);
        }

        const Match m = router.match(method, host, path);
        const Match again = router.match(method, host, path);
        FUZZ_CHECK(m.status == again.status && m.route == again.route && m.allow == again.allow);
        FUZZ_CHECK((m.status == MatchStatus::Found) == (m.route != kNoRoute));
        FUZZ_CHECK(m.capture_count <= kMaxCaptures);
        for (size_t i = 0; i < m.capture_count; ++i) {
            FUZZ_CHECK(inside(m.captures[i], path));
        }
        if (m.status == MatchStatus::Found) {
            FUZZ_CHECK(m.route < specs.size());
            FUZZ_CHECK(router.routeId(m.route) == specs[m.route].id);
            char out[8192];
            size_t n = router.rewritePath(m, path, out, sizeof out);
            FUZZ_CHECK(n == 0 || out[0] == '/');
            if (specs[m.route].rewrite.empty() && specs[m.route].strip_prefix.empty()) {
                FUZZ_CHECK(std::string_view(out, n) == path);
            }
        } else if (m.status == MatchStatus::MethodNotAllowed) {
            FUZZ_CHECK(m.allow != 0);
            FUZZ_CHECK(router.formatAllow(m.allow, allow_buf.data(), allow_buf.size()) > 0);
        }

        if (!understood) {
            continue;
        }
        // Reference outcome.
        bool decided = true;
        bool any_full = false;
        bool any_path_host = false;
        uint64_t allow_std = 0;
        bool allow_other = false;
        int best_class = 1 << 30;
        std::vector<bool> full(refs.size(), false);
        for (size_t i = 0; i < refs.size(); ++i) {
            auto pm = pathMatches(refs[i], path);
            auto hm = hostMatches(refs[i], canon);
            if (!pm || !hm) {
                decided = false;
                break;
            }
            if (!*pm || !*hm) {
                continue;
            }
            any_path_host = true;
            if (methodMatches(refs[i], method)) {
                full[i] = true;
                any_full = true;
                int cls = refs[i].host_class * 4 + refs[i].path_class;
                best_class = cls < best_class ? cls : best_class;
            } else {
                allow_std |= standardBits(refs[i]);
                allow_other = allow_other || hasNonStandard(refs[i]);
            }
        }
        if (!decided) {
            continue;
        }
        if (m.status == MatchStatus::Found) {
            FUZZ_CHECK(full[m.route]);
            const RefRoute& w = refs[m.route];
            FUZZ_CHECK(w.host_class * 4 + w.path_class == best_class);
            // Same host and path class, exact path, host that is exact or absent: the first in
            // config order wins.
            if (w.path_class == kPathExact &&
                (w.host_class == kHostExact || w.host_class == kHostAny ||
                 w.host_class == kHostRegex)) {
                for (size_t i = 0; i < m.route; ++i) {
                    FUZZ_CHECK(!(full[i] && refs[i].host_class == w.host_class &&
                                 refs[i].path_class == kPathExact));
                }
            }
            if (w.path_class == kPathGlob && !w.has_dstar) {
                FUZZ_CHECK(m.capture_count == w.params);
                auto segs = segmentsOf(path);
                size_t k = 0;
                for (size_t i = 0; i < w.segs.size(); ++i) {
                    if (isParam(w.segs[i])) {
                        FUZZ_CHECK(m.captures[k].view() == segs[i]);
                        ++k;
                    }
                }
            }
        } else {
            FUZZ_CHECK(!any_full);
        }
        FUZZ_CHECK((m.status == MatchStatus::NotFound) == !any_path_host);
        if (m.status == MatchStatus::MethodNotAllowed) {
            FUZZ_CHECK((m.allow & 0x3FE) == allow_std);
            FUZZ_CHECK(((m.allow >> 10) != 0) == allow_other);
            FUZZ_CHECK((m.allow & method::kOther) == 0);
        }
    }
    return 0;
}
