// SPDX-License-Identifier: Apache-2.0
// The rate_limit handlers on parsed requests: key extraction (ip, route, header, decoded query
// parameter), missing keys, refusals and their fields, several limits on one request, a full
// key table, and the compiled policy text.
#include "modules/ratelimit/limiter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "worker/request_fixture.h"

namespace photon::mod::ratelimit {
namespace {

using core::RateLimitConfig;
using K = core::RateLimitKey::Kind;
using worker::Verdict;

RateLimitConfig limit(double rps, uint32_t burst, K kind = K::Ip, std::string name = "") {
    RateLimitConfig c;
    c.requests = rps;
    c.burst = burst;
    c.key.kind = kind;
    c.key.name = std::move(name);
    return c;
}

class LimiterTest : public worker::RequestFixture {
protected:
    LimiterTest() : slots_(64) {
        shared_.stats = &stats_;
        shared_.slots = slots_.data();
        shared_.capacity = slots_.size();
    }
    std::unique_ptr<LimitConf> compile(const RateLimitConfig& c, std::string_view instance = "",
                                       std::string_view route = "r1") {
        auto k = LimitConf::compile(c, instance, route, &shared_);
        k->slot = 1;
        return k;
    }
    /// One request through the Access handler; the HeaderFilter handler when it was refused or
    /// `filter` is set.
    Verdict run(const LimitConf& c, bool filter = false) {
        Verdict v = accessHandler(req_, &c);
        if (v == Verdict::Respond || filter) {
            headerHandler(req_, &c);
        }
        return v;
    }
    int admitted(const LimitConf& c, int n, const std::string& text,
                 std::string_view client = "10.0.0.1") {
        int ok = 0;
        for (int i = 0; i < n; ++i) {
            parse(text, client);
            ok += run(c) == Verdict::Next;
        }
        return ok;
    }

    RateStatsShm stats_{};
    std::vector<RateSlotShm> slots_;
    SharedLimit shared_;
};

const std::string kGet = "GET /api HTTP/1.1\r\nHost: a\r\n\r\n";

TEST_F(LimiterTest, IpKeysHaveTheirOwnBuckets) {
    auto c = compile(limit(0.001, 3));
    EXPECT_EQ(admitted(*c, 5, kGet, "10.0.0.1"), 3);
    EXPECT_EQ(admitted(*c, 5, kGet, "10.0.0.2"), 3);
    EXPECT_EQ(admitted(*c, 1, kGet, "10.0.0.1"), 0);
    EXPECT_EQ(stats_.limited.load(), 5u);
}

TEST_F(LimiterTest, RefusalIs429WithRetryAfterAndRateLimitFields) {
    RateLimitConfig rl = limit(2, 2);
    rl.legacy_headers = true;
    auto c = compile(rl);
    EXPECT_EQ(admitted(*c, 2, kGet), 2);
    parse(kGet);
    ASSERT_EQ(run(*c), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 429);
    EXPECT_EQ(req_.replyError(), "rate limit exceeded");
    EXPECT_EQ(value("Retry-After"), "1");
    EXPECT_EQ(value("RateLimit-Policy"), "\"default\";q=2;w=1");
    EXPECT_EQ(value("RateLimit"), "\"default\";r=0;t=1");
    EXPECT_EQ(value("X-RateLimit-Limit"), "2");
    EXPECT_EQ(value("X-RateLimit-Remaining"), "0");
    EXPECT_EQ(value("X-RateLimit-Reset"), "1");
}

TEST_F(LimiterTest, AdmittedResponsesCarryFieldsOnlyWhenAsked) {
    auto quiet = compile(limit(10, 5));
    parse(kGet);
    EXPECT_EQ(run(*quiet, true), Verdict::Next);
    EXPECT_EQ(value("RateLimit"), "<absent>");
    RateLimitConfig rl = limit(10, 5);
    rl.headers = true;
    auto loud = compile(rl, "api");
    parse(kGet, "10.9.9.9");
    EXPECT_EQ(run(*loud, true), Verdict::Next);
    EXPECT_EQ(value("RateLimit-Policy"), "\"api\";q=10;w=1");
    EXPECT_EQ(value("RateLimit"), "\"api\";r=4;t=1");
    EXPECT_EQ(value("X-RateLimit-Limit"), "<absent>");
    EXPECT_EQ(value("Retry-After"), "<absent>");
}

TEST_F(LimiterTest, SlowRatesShowTheirWindow) {
    auto half = compile(limit(0.5, 1));
    EXPECT_EQ(half->policy, "\"default\";q=1;w=2");
    parse(kGet);
    EXPECT_EQ(run(*half), Verdict::Next);
    parse(kGet);
    ASSERT_EQ(run(*half), Verdict::Respond);
    EXPECT_EQ(value("Retry-After"), "2");
    RateLimitConfig m = limit(30, 30);
    m.per = RateLimitConfig::Per::Minute;
    EXPECT_EQ(compile(m, "login")->policy, "\"login\";q=30;w=60");
    RateLimitConfig h = limit(1.5, 2);
    h.per = RateLimitConfig::Per::Hour;
    EXPECT_EQ(compile(h)->policy, "\"default\";q=3;w=7200");
    EXPECT_EQ(compile(limit(2.5, 5))->policy, "\"default\";q=5;w=2");
    EXPECT_EQ(compile(limit(0.4, 1))->policy, "\"default\";q=2;w=5");
    EXPECT_EQ(compile(limit(1.0 / 3, 1))->policy, "\"default\";q=1;w=3");
}

TEST_F(LimiterTest, HeaderKeyAndMissingKey) {
    auto share = compile(limit(0.001, 1, K::Header, "X-Key"));
    EXPECT_EQ(admitted(*share, 2, "GET / HTTP/1.1\r\nHost: a\r\nx-key: one\r\n\r\n"), 1);
    EXPECT_EQ(admitted(*share, 2, "GET / HTTP/1.1\r\nHost: a\r\nX-Key: two\r\n\r\n"), 1);
    // Requests without the key share one bucket, whoever sends them.
    EXPECT_EQ(admitted(*share, 1, kGet, "10.0.0.1"), 1);
    EXPECT_EQ(admitted(*share, 1, kGet, "10.0.0.2"), 0);
    EXPECT_EQ(admitted(*share, 1, "GET / HTTP/1.1\r\nHost: a\r\nX-Key:\r\n\r\n"), 0);

    RateLimitConfig rl = limit(0.001, 1, K::Header, "X-Key");
    rl.missing_key = RateLimitConfig::MissingKey::Reject;
    auto reject = compile(rl);
    parse(kGet);
    ASSERT_EQ(run(*reject), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 400);
    EXPECT_EQ(req_.replyError(), "missing rate-limit key: header X-Key");
    EXPECT_EQ(value("Retry-After"), "<absent>");
}

TEST_F(LimiterTest, QueryKeyIsComparedDecoded) {
    auto c = compile(limit(0.001, 1, K::QueryParam, "api_key"));
    EXPECT_EQ(admitted(*c, 1, "GET /?x=1&api_key=abc HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
    // The same key spelt differently is the same bucket.
    EXPECT_EQ(admitted(*c, 1, "GET /?api_key=a%62c HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    EXPECT_EQ(admitted(*c, 1, "GET /?api%5Fkey=%61bc HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    EXPECT_EQ(admitted(*c, 1, "GET /?api_key=abd HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
    // Only the first occurrence counts; a prefix of the name is another parameter.
    EXPECT_EQ(admitted(*c, 1, "GET /?api_keyx=abc&api_key=a+b HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
    EXPECT_EQ(admitted(*c, 1, "GET /?api_key=a%20b&api_key=zzz HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

TEST_F(LimiterTest, QueryParamHashMatchesTheOneShotHash) {
    bool found = false;
    std::string long_value(1000, 'v');
    uint64_t h = queryParamHash("a=1&k=" + long_value, "k", 42, found);
    EXPECT_TRUE(found);
    EXPECT_EQ(h, GcraTable::keyHash(long_value, 42));
    queryParamHash("k=&k=2", "k", 42, found);
    EXPECT_FALSE(found);
    queryParamHash("k", "k", 42, found);
    EXPECT_FALSE(found);
    queryParamHash("", "k", 42, found);
    EXPECT_FALSE(found);
    h = queryParamHash("k=%zz%4", "k", 42, found);  // bad escapes stay literal
    EXPECT_TRUE(found);
    EXPECT_EQ(h, GcraTable::keyHash("%zz%4", 42));
}

TEST_F(LimiterTest, RouteKeyAndScope) {
    auto a = compile(limit(0.001, 1, K::Route), "", "a");
    auto b = compile(limit(0.001, 1, K::Route), "", "b");
    EXPECT_EQ(admitted(*a, 2, kGet, "10.0.0.1"), 1);
    EXPECT_EQ(admitted(*a, 1, kGet, "10.0.0.2"), 0);  // one bucket for the route
    EXPECT_EQ(admitted(*b, 1, kGet, "10.0.0.3"), 1);

    // Shared scope: one bucket per key across routes; route scope: one per key and route.
    auto shared_a = compile(limit(0.001, 1), "s", "a");
    auto shared_b = compile(limit(0.001, 1), "s", "b");
    EXPECT_EQ(admitted(*shared_a, 1, kGet, "10.1.0.1"), 1);
    EXPECT_EQ(admitted(*shared_b, 1, kGet, "10.1.0.1"), 0);
    RateLimitConfig rl = limit(0.001, 1);
    rl.scope = RateLimitConfig::Scope::Route;
    auto own_a = compile(rl, "p", "a");
    auto own_b = compile(rl, "p", "b");
    EXPECT_EQ(admitted(*own_a, 1, kGet, "10.1.0.1"), 1);
    EXPECT_EQ(admitted(*own_b, 1, kGet, "10.1.0.1"), 1);
    EXPECT_EQ(admitted(*own_b, 1, kGet, "10.1.0.1"), 0);
}

TEST_F(LimiterTest, TheTighterOfTwoLimitsIsReported) {
    RateLimitConfig loose = limit(100, 50);
    loose.headers = true;
    RateLimitConfig tight = limit(1, 3);
    tight.headers = true;
    auto l = compile(loose, "loose");
    auto t = compile(tight, "tight");
    t->slot = 1;
    l->slot = 1;  // one module, one slot: the limits share the request's state
    parse(kGet);
    ASSERT_EQ(accessHandler(req_, l.get()), Verdict::Next);
    ASSERT_EQ(accessHandler(req_, t.get()), Verdict::Next);
    headerHandler(req_, l.get());
    headerHandler(req_, t.get());
    EXPECT_EQ(value("RateLimit"), "\"tight\";r=2;t=1");
    EXPECT_EQ(resp_.headers.countOf("RateLimit"), 1u);
}

TEST_F(LimiterTest, FullTableFollowsOnFull) {
    std::vector<RateSlotShm> tiny(16);
    shared_.slots = tiny.data();
    shared_.capacity = tiny.size();
    RateLimitConfig rl = limit(0.001, 1, K::Header, "X-Key");
    auto allow = compile(rl);
    for (int i = 0; i < 16; ++i) {
        parse("GET / HTTP/1.1\r\nHost: a\r\nX-Key: k" + std::to_string(i) + "\r\n\r\n");
        ASSERT_EQ(run(*allow), Verdict::Next) << i;
    }
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Key: new\r\n\r\n");
    EXPECT_EQ(run(*allow), Verdict::Next);
    EXPECT_EQ(stats_.table_full.load(), 1u);
    rl.on_full = RateLimitConfig::OnFull::Deny;
    auto deny = LimitConf::compile(rl, "", "r1", &shared_);
    deny->seed = allow->seed;  // the same keys
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Key: newer\r\n\r\n");
    ASSERT_EQ(run(*deny), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 429);
    EXPECT_EQ(value("Retry-After"), "1");
}

TEST_F(LimiterTest, NoSharedStateRefuses503) {
    auto c = LimitConf::compile(limit(10, 10), "", "r1", nullptr);
    parse(kGet);
    ASSERT_EQ(accessHandler(req_, c.get()), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 503);
}

}  // namespace
}  // namespace photon::mod::ratelimit
