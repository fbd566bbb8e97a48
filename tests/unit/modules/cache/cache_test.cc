// SPDX-License-Identifier: Apache-2.0
// The cache's request and response rules: keys, usability of a stored response, the store
// decision, conditional answers, freshened heads, Vary keys.
#include "modules/cache/cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace photon::mod::cache {
namespace {

using core::http::ResponseHead;

std::unique_ptr<ResponseHead> response(const std::string& text) {
    static std::string keep[64];
    static int next = 0;
    std::string& s = keep[next++ % 64];
    s = text;
    auto h = std::make_unique<ResponseHead>();
    size_t hint = 0;
    core::http::Limits lim;
    EXPECT_EQ(core::http::parseResponse(s.data(), s.size(), lim, *h, hint, false),
              core::http::ParseStatus::Complete)
        << text;
    return h;
}

RoutePolicy policy() {
    RoutePolicy p;
    p.on = true;
    p.ttl = 300;
    p.max_body = 1 << 20;
    return p;
}

TEST(CacheKeyTest, MethodHostPathQuery) {
    char out[kMaxKey];
    size_t n = buildKey("API.Example.com:8080", "/a/b", "x=1", false, out, sizeof out);
    EXPECT_EQ(std::string(out, n), "GET:api.example.com:8080/a/b");
    n = buildKey("h", "/a", "x=1", true, out, sizeof out);
    EXPECT_EQ(std::string(out, n), "GET:h/a?x=1");
    n = buildKey("h", "/a", "", true, out, sizeof out);
    EXPECT_EQ(std::string(out, n), "GET:h/a");
    std::string long_path(kMaxKey, 'p');
    EXPECT_EQ(buildKey("h", long_path, "", false, out, sizeof out), 0u);
}

TEST(JudgeTest, FreshStaleAndRequestDirectives) {
    EntryMeta m;
    m.lifetime = 60;
    m.initial_age = 10;
    m.stored_us = 1000000;
    const uint64_t t20 = m.stored_us + 20 * 1000000ull;  // age 30
    CacheControl none;
    Judgement j = judge(m, t20, none);
    EXPECT_EQ(j.use, Use::Fresh);
    EXPECT_EQ(j.age, 30u);
    const uint64_t t80 = m.stored_us + 80 * 1000000ull;  // age 90: 30 s stale
    EXPECT_EQ(judge(m, t80, none).use, Use::Revalidate);

    CacheControl rc;
    rc.max_stale = 40;
    EXPECT_EQ(judge(m, t80, rc).use, Use::Stale);
    rc.max_stale = 20;
    EXPECT_EQ(judge(m, t80, rc).use, Use::Revalidate);
    rc.max_stale = CacheControl::kAny;
    EXPECT_EQ(judge(m, t80, rc).use, Use::Stale);

    CacheControl age;
    age.max_age = 25;
    EXPECT_EQ(judge(m, t20, age).use, Use::Revalidate);
    CacheControl fresh;
    fresh.min_fresh = 40;  // 30 s of freshness left
    EXPECT_EQ(judge(m, t20, fresh).use, Use::Revalidate);
    CacheControl nc;
    nc.no_cache = true;
    EXPECT_EQ(judge(m, t20, nc).use, Use::Revalidate);

    m.swr = 60;
    EXPECT_EQ(judge(m, t80, none).use, Use::StaleSwr);
    m.flags = kMustRevalidate;
    EXPECT_EQ(judge(m, t80, none).use, Use::Revalidate);
    EXPECT_EQ(judge(m, t80, rc).use, Use::Revalidate);  // even with max-stale
    m.flags = kNoCache;
    EXPECT_EQ(judge(m, t20, none).use, Use::Revalidate);
}

TEST(PlanStoreTest, FreshnessAndDecisions) {
    const RoutePolicy pol = policy();
    CacheControl rcc;
    auto r = response(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\nAge: 20\r\n"
        "Content-Length: 2\r\n\r\n");
    StorePlan p = planStore(pol, false, rcc, *r, 1000, 1000);
    EXPECT_TRUE(p.store);
    EXPECT_EQ(p.meta.lifetime, 100u);
    EXPECT_EQ(p.meta.initial_age, 20u);
    EXPECT_EQ(p.body_known, 2u);

    // The default TTL for a response without explicit freshness.
    r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    p = planStore(pol, false, rcc, *r, 1000, 1000);
    EXPECT_TRUE(p.store);
    EXPECT_EQ(p.meta.lifetime, 300u);

    // Expires - Date, and a past Expires.
    r = response(
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\nContent-Length: 0\r\n\r\n");
    p = planStore(pol, false, rcc, *r, 784111777, 784111777);
    EXPECT_TRUE(p.store);
    EXPECT_EQ(p.meta.lifetime, 60u);
    r = response("HTTP/1.1 200 OK\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n");
    EXPECT_FALSE(planStore(pol, false, rcc, *r, 1000, 1000).store);

    struct Case {
        const char* head;
        StoreDecision why;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n", StoreDecision::NoStore},
        {"HTTP/1.1 200 OK\r\nCache-Control: private\r\n", StoreDecision::Private},
        {"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\n", StoreDecision::SetCookie},
        {"HTTP/1.1 200 OK\r\nVary: Accept, *\r\n", StoreDecision::VaryStar},
        {"HTTP/1.1 503 Service Unavailable\r\n", StoreDecision::Status},
    };
    for (const auto& c : cases) {
        r = response(std::string(c.head) + "Content-Length: 0\r\n\r\n");
        p = planStore(pol, false, rcc, *r, 1000, 1000);
        EXPECT_FALSE(p.store) << c.head;
        EXPECT_EQ(p.why, c.why) << c.head;
    }
    // no-cache, or stale on arrival: stored only with a validator to revalidate it with.
    r = response("HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nETag: \"e\"\r\n"
                 "Content-Length: 0\r\n\r\n");
    p = planStore(pol, false, rcc, *r, 1000, 1000);
    EXPECT_TRUE(p.store);
    EXPECT_NE(p.meta.flags & kNoCache, 0u);
    r = response("HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\n"
                 "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(planStore(pol, false, rcc, *r, 1000, 1000).store);
    r = response("HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nContent-Length: 0\r\n\r\n");
    EXPECT_FALSE(planStore(pol, false, rcc, *r, 1000, 1000).store);
    // Credentials: only when the response allows sharing, or configured.
    r = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(planStore(pol, true, rcc, *r, 1000, 1000).why, StoreDecision::Authorization);
    RoutePolicy shared = pol;
    shared.cache_authorized = true;
    EXPECT_TRUE(planStore(shared, true, rcc, *r, 1000, 1000).store);
    r = response("HTTP/1.1 200 OK\r\nCache-Control: public\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(planStore(pol, true, rcc, *r, 1000, 1000).store);
    // The request's no-store, and a body over the limit.
    CacheControl ns;
    ns.no_store = true;
    EXPECT_FALSE(planStore(pol, false, ns, *r, 1000, 1000).store);
    RoutePolicy tiny = pol;
    tiny.max_body = 1;
    r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    EXPECT_EQ(planStore(tiny, false, rcc, *r, 1000, 1000).why, StoreDecision::TooLarge);
    // stale-* directives, and the route's defaults.
    r = response(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=1, stale-while-revalidate=30, "
        "stale-if-error=600, must-revalidate\r\nETag: \"x\"\r\nContent-Length: 0\r\n\r\n");
    p = planStore(pol, false, rcc, *r, 1000, 1000);
    EXPECT_EQ(p.meta.swr, 30u);
    EXPECT_EQ(p.meta.sie, 600u);
    EXPECT_EQ(p.meta.flags & (kMustRevalidate | kHasEtag), kMustRevalidate | kHasEtag);
    RoutePolicy d = pol;
    d.sie = 99;
    r = response("HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(planStore(d, false, rcc, *r, 1000, 1000).meta.sie, 99u);
}

TEST(NotModifiedTest, EtagsThenDates) {
    auto req = response("HTTP/1.1 200 OK\r\nIf-None-Match: W/\"a\", \"b\"\r\n\r\n");
    auto stored = response(
        "HTTP/1.1 200 OK\r\nETag: \"a\"\r\n"
        "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    EXPECT_TRUE(notModified(req->headers, stored->headers));  // weak comparison
    req = response(
        "HTTP/1.1 200 OK\r\nIf-None-Match: \"c\"\r\n"
        "If-Modified-Since: Mon, 07 Nov 1994 00:00:00 GMT\r\n\r\n");
    EXPECT_FALSE(notModified(req->headers, stored->headers));  // INM wins over IMS
    req = response("HTTP/1.1 200 OK\r\nIf-Modified-Since: Mon, 07 Nov 1994 00:00:00 GMT\r\n\r\n");
    EXPECT_TRUE(notModified(req->headers, stored->headers));
    req = response("HTTP/1.1 200 OK\r\nIf-Modified-Since: Sat, 05 Nov 1994 00:00:00 GMT\r\n\r\n");
    EXPECT_FALSE(notModified(req->headers, stored->headers));
    req = response("HTTP/1.1 200 OK\r\nIf-Modified-Since: yesterday\r\n\r\n");
    EXPECT_FALSE(notModified(req->headers, stored->headers));
    req = response("HTTP/1.1 200 OK\r\nIf-None-Match: *\r\n\r\n");
    EXPECT_TRUE(notModified(req->headers, stored->headers));
}

TEST(HeadTest, SerializeDropsFramingAndMergeFreshens) {
    auto r = response(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nAge: 3\r\nETag: \"v1\"\r\n"
        "X-Request-ID: r1\r\nCache-Control: max-age=1\r\n\r\n");
    char out[1024];
    size_t n = serializeHead(*r, out, sizeof out);
    EXPECT_EQ(std::string(out, n),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"v1\"\r\n"
              "Cache-Control: max-age=1\r\n\r\n");
    EXPECT_EQ(serializeHead(*r, out, 10), 0u);

    auto stored = response(std::string(out, n));
    auto fresh = response(
        "HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\n"
        "X-New: 1\r\nContent-Length: 99\r\n\r\n");
    char merged[1024];
    size_t m = mergeHead(*stored, *fresh, merged, sizeof merged);
    EXPECT_EQ(std::string(merged, m),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"v1\"\r\n"
              "Cache-Control: max-age=60\r\nX-New: 1\r\n\r\n");
}

TEST(VaryTest, NamesAndVariantKeys) {
    auto r = response(
        "HTTP/1.1 200 OK\r\nVary: Accept-Encoding, ACCEPT-language\r\n"
        "Vary: X-Tenant\r\n\r\n");
    char names[256];
    size_t n = varyNames(r->headers, names, sizeof names);
    EXPECT_EQ(std::string(names, n), "accept-encoding,accept-language,x-tenant");

    const std::string raw =
        "GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n"
        "x-tenant: a\r\nX-Tenant:  b \r\n\r\n";
    char vk[kMaxKey];
    size_t k = variantKey("GET:h/", 7, std::string_view(names, n), raw, vk, sizeof vk);
    EXPECT_EQ(std::string(vk, k),
              "GET:h/\n~7\naccept-encoding:gzip\naccept-language:\nx-tenant:a, b");
    size_t k2 = variantKey("GET:h/", 8, std::string_view(names, n), raw, vk, sizeof vk);
    EXPECT_NE(k2, 0u);
    char small[8];
    EXPECT_EQ(rawField(raw, "x-tenant", small, 2), static_cast<size_t>(-1));
    EXPECT_EQ(rawField(raw, "absent", small, sizeof small), 0u);
}

}  // namespace
}  // namespace photon::mod::cache
