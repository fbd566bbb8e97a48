// SPDX-License-Identifier: Apache-2.0
#include "modules/cache/cache.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace photon::mod::cache {

using core::http::equalsIgnoreCase;
using core::http::HeaderList;
using core::http::trimOws;

namespace {

Store g_store;
uint32_t g_writer = 0;

int64_t secs(core::Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Appends `s` at out[n]; false when it does not fit `cap`.
bool put(char* out, size_t cap, size_t& n, std::string_view s) {
    if (s.empty()) {
        return true;  // (an empty view's data may be null: never handed to memcpy)
    }
    if (n + s.size() > cap) {
        return false;
    }
    std::memcpy(out + n, s.data(), s.size());
    n += s.size();
    return true;
}

// Appends "HTTP/1.1 <status> <reason>\r\n" (the stored heads' status line).
bool putStatusLine(unsigned status, char* out, size_t cap, size_t& n) {
    char line[16];
    int k = std::snprintf(line, sizeof line, "HTTP/1.1 %03u ", status % 1000u);
    std::string_view reason = core::http::reasonPhrase(static_cast<int>(status));
    return put(out, cap, n, std::string_view(line, static_cast<size_t>(k))) &&
           put(out, cap, n, reason.empty() ? std::string_view("Unknown") : reason) &&
           put(out, cap, n, "\r\n");
}

}  // namespace

namespace {
bool notStored(const core::http::HeaderField& f);
}  // namespace

Store& store() { return g_store; }
uint32_t writer() { return g_writer; }
void setWriter(uint32_t slot) { g_writer = slot; }

RoutePolicy compilePolicy(const core::Config& cfg, const core::RouteConfig& route) {
    RoutePolicy p;
    if (!route.cache || !route.cache->enabled || !cfg.cache.enabled) {
        return p;
    }
    const auto& rc = *route.cache;
    const auto& g = cfg.cache;
    p.on = std::find(rc.methods.begin(), rc.methods.end(), "GET") != rc.methods.end() ||
           std::find(rc.methods.begin(), rc.methods.end(), "HEAD") != rc.methods.end();
    p.with_query = rc.cache_with_query_params.value_or(g.cache_with_query_params);
    p.max_body = rc.max_body_size.value_or(g.max_body_size);
    int64_t ttl = secs(rc.ttl.value_or(g.default_ttl));
    p.ttl = std::max(ttl, secs(g.min_ttl));
    p.cache_authorized = g.cache_authorized;
    p.strip_set_cookie = g.strip_set_cookie;
    p.swr = static_cast<uint32_t>(std::min<int64_t>(secs(g.stale_while_revalidate), 1 << 30));
    p.sie = static_cast<uint32_t>(std::min<int64_t>(secs(g.stale_if_error), 1 << 30));
    p.lock_timeout_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(g.lock_timeout).count());
    for (const auto& m : route.middleware) {
        if (m == "auth" || m.rfind("auth:", 0) == 0) {
            p.authenticated = true;
        }
    }
    return p;
}

bool wanted(const core::Config& cfg) {
    if (!cfg.cache.enabled) {
        return false;
    }
    for (const auto& r : cfg.routes) {
        if (compilePolicy(cfg, r).on) {
            return true;
        }
    }
    return false;
}

size_t buildKey(std::string_view host, std::string_view path, std::string_view query,
                bool with_query, char* out, size_t cap) {
    cap = std::min<size_t>(cap, kMaxKey);
    size_t n = 0;
    if (!put(out, cap, n, "GET:")) {
        return 0;
    }
    if (n + host.size() > cap) {
        return 0;
    }
    for (char ch : host) {
        out[n++] = lower(ch);
    }
    if (!put(out, cap, n, path)) {
        return 0;
    }
    if (with_query && !query.empty()) {
        if (!put(out, cap, n, "?") || !put(out, cap, n, query)) {
            return 0;
        }
    }
    return n;
}

CacheControl cacheControlOf(const HeaderList& h) {
    CacheControl cc;
    for (const auto& f : h) {
        if (f.name.size() == 13 && equalsIgnoreCase(f.name, "cache-control")) {
            cc.parse(f.value);
        }
    }
    return cc;
}

std::string_view fieldOf(const HeaderList& h, std::string_view name) {
    for (const auto& f : h) {
        if (f.name.size() == name.size() && equalsIgnoreCase(f.name, name)) {
            return f.value;
        }
    }
    return {};
}

namespace {
bool hasField(const HeaderList& h, std::string_view name) {
    for (const auto& f : h) {
        if (f.name.size() == name.size() && equalsIgnoreCase(f.name, name)) {
            return true;
        }
    }
    return false;
}
}  // namespace

Judgement judge(const EntryMeta& m, uint64_t now_us, const CacheControl& req) {
    Judgement j;
    const uint64_t held = now_us > m.stored_us ? (now_us - m.stored_us) / 1000000 : 0;
    j.age = uint64_t{m.initial_age} + held;
    const int64_t age = static_cast<int64_t>(j.age);
    const int64_t life = m.lifetime;
    if ((m.flags & kNoCache) != 0 || req.no_cache) {
        return j;
    }
    if (req.max_age != CacheControl::kAbsent && age > req.max_age) {
        return j;
    }
    if (req.min_fresh != CacheControl::kAbsent && life - age < req.min_fresh) {
        return j;
    }
    if (life > age) {
        j.use = Use::Fresh;
        return j;
    }
    if ((m.flags & kMustRevalidate) != 0) {
        return j;
    }
    const int64_t staleness = age - life;
    if (req.max_stale == CacheControl::kAny || (req.max_stale >= 0 && staleness <= req.max_stale)) {
        j.use = Use::Stale;
        return j;
    }
    if (staleness <= static_cast<int64_t>(m.swr) && m.swr != 0) {
        j.use = Use::StaleSwr;
    }
    return j;
}

bool notModified(const HeaderList& request, const HeaderList& stored) {
    bool has_inm = false;
    for (const auto& f : request) {
        if (f.name.size() == 13 && equalsIgnoreCase(f.name, "if-none-match")) {
            has_inm = true;
            std::string_view etag = fieldOf(stored, "etag");
            if (!etag.empty() && noneMatchHits(f.value, etag)) {
                return true;
            }
        }
    }
    if (has_inm) {
        return false;  // If-None-Match takes precedence (RFC 9110 §13.2.2)
    }
    std::string_view ims = fieldOf(request, "if-modified-since");
    if (ims.empty()) {
        return false;
    }
    auto since = parseHttpDate(ims);
    std::string_view lm = fieldOf(stored, "last-modified");
    if (lm.empty()) {
        lm = fieldOf(stored, "date");
    }
    auto modified = parseHttpDate(lm);
    return since && modified && *modified <= *since;
}

StorePlan planStore(const RoutePolicy& pol, bool request_auth, const CacheControl& request_cc,
                    const core::http::ResponseHead& resp, int64_t request_time,
                    int64_t response_time) {
    StorePlan plan;
    CacheControl cc = cacheControlOf(resp.headers);
    const CacheControl& rcc = request_cc;
    std::string_view vary;
    bool vary_star = false;
    for (const auto& f : resp.headers) {
        if (f.name.size() == 4 && equalsIgnoreCase(f.name, "vary")) {
            vary = f.value;
            std::string_view v = f.value;
            while (!v.empty()) {
                size_t c = v.find(',');
                if (trimOws(v.substr(0, c)) == "*") {
                    vary_star = true;
                }
                v = c == std::string_view::npos ? std::string_view() : v.substr(c + 1);
            }
        }
    }
    StoreInput in;
    in.status = resp.status;
    in.request = &rcc;
    in.response = &cc;
    std::string_view expires = fieldOf(resp.headers, "expires");
    in.has_expires = hasField(resp.headers, "expires");
    in.request_authorization = request_auth;
    in.cache_authorized = pol.cache_authorized;
    in.vary_star = vary_star;
    in.set_cookie = !pol.strip_set_cookie && hasField(resp.headers, "set-cookie");
    in.body_length =
        resp.framing == core::http::BodyFraming::ContentLength ? resp.content_length : 0;
    in.max_body_size = pol.max_body;
    plan.why = storeDecision(in);
    if (resp.status == 206) {
        plan.why = StoreDecision::Status;  // a part: ranges are not stored (RFC 9111 §3.3)
    }
    if (plan.why != StoreDecision::Store) {
        return plan;
    }
    auto date = parseHttpDate(fieldOf(resp.headers, "date"));
    std::optional<int64_t> exp;
    if (in.has_expires) {
        exp = parseHttpDate(expires);
    }
    int64_t life = freshnessLifetime(cc, date, in.has_expires, exp, pol.ttl, response_time);
    std::string_view age_field = fieldOf(resp.headers, "age");
    int64_t age_hdr = age_field.empty() ? -1 : parseDeltaSeconds(age_field);
    int64_t initial = currentAge(date, age_hdr, request_time, response_time, response_time);
    EntryMeta& m = plan.meta;
    m.lifetime = static_cast<uint32_t>(std::clamp<int64_t>(life, 0, INT32_MAX));
    m.initial_age = static_cast<uint32_t>(std::clamp<int64_t>(initial, 0, INT32_MAX));
    if (cc.no_cache) {
        m.flags |= kNoCache;
    }
    if (cc.must_revalidate || cc.proxy_revalidate) {
        m.flags |= kMustRevalidate;
    }
    if (hasField(resp.headers, "etag")) {
        m.flags |= kHasEtag;
    }
    if (hasField(resp.headers, "last-modified")) {
        m.flags |= kHasLastModified;
    }
    m.swr = cc.stale_while_revalidate >= 0
                ? static_cast<uint32_t>(std::min<int64_t>(cc.stale_while_revalidate, 1 << 30))
                : pol.swr;
    m.sie = cc.stale_if_error >= 0
                ? static_cast<uint32_t>(std::min<int64_t>(cc.stale_if_error, 1 << 30))
                : pol.sie;
    (void)vary;
    // Only what can be used: a response fresh on arrival, or one that can be revalidated with
    // a conditional request (an ETag or Last-Modified), as no-cache responses are before every
    // use (RFC 9111 §5.2.2.4).
    const bool validators = (m.flags & (kHasEtag | kHasLastModified)) != 0;
    plan.store = validators || ((m.flags & kNoCache) == 0 && m.lifetime > m.initial_age);
    if (!plan.store) {
        plan.why = StoreDecision::NoStore;
    }
    plan.body_known = in.body_length;
    return plan;
}

size_t serializeHead(const core::http::ResponseHead& resp, char* out, size_t cap,
                     bool strip_set_cookie) {
    size_t n = 0;
    if (!putStatusLine(resp.status, out, cap, n)) {
        return 0;
    }
    for (const auto& f : resp.headers) {
        if (notStored(f) ||
            (strip_set_cookie && f.name.size() == 10 && equalsIgnoreCase(f.name, "set-cookie"))) {
            continue;
        }
        if (!put(out, cap, n, f.name) || !put(out, cap, n, ": ") || !put(out, cap, n, f.value) ||
            !put(out, cap, n, "\r\n")) {
            return 0;
        }
    }
    if (!put(out, cap, n, "\r\n")) {
        return 0;
    }
    return n;
}

namespace {
// Fields a stored head never keeps from an upstream (framing, hop-by-hop, computed ones).
bool notStored(const core::http::HeaderField& f) {
    const std::string_view nm = f.name;
    return f.hop_by_hop || (nm.size() == 14 && equalsIgnoreCase(nm, "content-length")) ||
           (nm.size() == 3 && equalsIgnoreCase(nm, "age")) ||
           (nm.size() == 12 && equalsIgnoreCase(nm, "x-request-id")) ||
           (nm.size() == 7 && equalsIgnoreCase(nm, "x-cache")) ||
           (nm.size() == 11 && equalsIgnoreCase(nm, "x-cache-key"));
}
}  // namespace

size_t mergeHead(const core::http::ResponseHead& stored, const core::http::ResponseHead& fresh,
                 char* out, size_t cap) {
    size_t n = 0;
    if (!putStatusLine(stored.status, out, cap, n)) {
        return 0;
    }
    auto emit = [&](const core::http::HeaderField& f) {
        return put(out, cap, n, f.name) && put(out, cap, n, ": ") && put(out, cap, n, f.value) &&
               put(out, cap, n, "\r\n");
    };
    for (const auto& f : stored.headers) {
        if (notStored(f) || hasField(fresh.headers, f.name)) {
            continue;
        }
        if (!emit(f)) {
            return 0;
        }
    }
    for (const auto& f : fresh.headers) {
        if (notStored(f)) {
            continue;
        }
        if (!emit(f)) {
            return 0;
        }
    }
    return put(out, cap, n, "\r\n") ? n : 0;
}

size_t varyNames(const HeaderList& resp, char* out, size_t cap) {
    size_t n = 0;
    for (const auto& f : resp) {
        if (f.name.size() != 4 || !equalsIgnoreCase(f.name, "vary")) {
            continue;
        }
        std::string_view v = f.value;
        while (!v.empty()) {
            size_t c = v.find(',');
            std::string_view name = trimOws(v.substr(0, c));
            v = c == std::string_view::npos ? std::string_view() : v.substr(c + 1);
            if (name.empty()) {
                continue;
            }
            if (n + name.size() + 1 > cap) {
                return 0;
            }
            if (n != 0) {
                out[n++] = ',';
            }
            for (char ch : name) {
                out[n++] = lower(ch);
            }
        }
    }
    return n;
}

size_t rawField(std::string_view raw, std::string_view name, char* out, size_t cap) {
    // The parser accepted this head: one field per CRLF-terminated line, no folding.
    size_t n = 0;
    size_t pos = raw.find("\r\n");  // skip the request line
    while (pos != std::string_view::npos) {
        pos += 2;
        size_t end = raw.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) {
            break;
        }
        std::string_view line = raw.substr(pos, end - pos);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos && colon == name.size() &&
            equalsIgnoreCase(line.substr(0, colon), name)) {
            std::string_view v = trimOws(line.substr(colon + 1));
            if ((n != 0 && !put(out, cap, n, ", ")) || !put(out, cap, n, v)) {
                return static_cast<size_t>(-1);
            }
        }
        pos = end;
    }
    return n;
}

size_t variantKey(std::string_view key, uint64_t stamp, std::string_view names,
                  std::string_view raw_head, char* out, size_t cap) {
    cap = std::min<size_t>(cap, kMaxKey);
    size_t n = 0;
    char num[32];
    int k = std::snprintf(num, sizeof num, "\n~%llu", static_cast<unsigned long long>(stamp));
    if (!put(out, cap, n, key) ||
        !put(out, cap, n, std::string_view(num, static_cast<size_t>(k)))) {
        return 0;
    }
    while (!names.empty()) {
        size_t c = names.find(',');
        std::string_view name = names.substr(0, c);
        names = c == std::string_view::npos ? std::string_view() : names.substr(c + 1);
        if (!put(out, cap, n, "\n") || !put(out, cap, n, name) || !put(out, cap, n, ":")) {
            return 0;
        }
        if (n >= cap) {
            return 0;
        }
        size_t v = rawField(raw_head, name, out + n, cap - n);
        if (v == static_cast<size_t>(-1)) {
            return 0;
        }
        n += v;
    }
    return n;
}

}  // namespace photon::mod::cache
