// SPDX-License-Identifier: Apache-2.0
// store: redis without a reachable Redis: on_store_error allow, deny and local (the limit
// divided by `instances`), the error counters, the key layout and the script's identity.
#include "modules/ratelimit/redis_store.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "modules/ratelimit/limiter.h"
#include "worker/request_fixture.h"

namespace photon::mod::ratelimit {
namespace {

using core::RateLimitConfig;
using worker::Verdict;

RateLimitConfig redisLimit(double rps, uint32_t burst, RateLimitConfig::OnStoreError mode,
                           uint32_t instances = 1) {
    RateLimitConfig c;
    c.requests = rps;
    c.burst = burst;
    c.store = RateLimitConfig::Store::Redis;
    c.on_store_error = mode;
    c.instances = instances;
    return c;
}

class RedisStoreTest : public worker::RequestFixture {
protected:
    RedisStoreTest() : slots_(64) {
        shared_.stats = &stats_;
        shared_.slots = slots_.data();
        shared_.capacity = slots_.size();
    }
    std::unique_ptr<LimitConf> compile(const RateLimitConfig& c) {
        auto k = LimitConf::compile(c, "", "r1", &shared_);
        k->slot = 1;
        return k;
    }
    int admitted(const LimitConf& c, int n) {
        int ok = 0;
        for (int i = 0; i < n; ++i) {
            parse("GET /api HTTP/1.1\r\nHost: a\r\n\r\n", "10.0.0.1");
            Verdict v = accessHandler(req_, &c);
            EXPECT_NE(v, Verdict::Suspend);  // no Redis client in this process: decided at once
            if (v == Verdict::Respond) {
                headerHandler(req_, &c);
            }
            ok += v == Verdict::Next;
        }
        return ok;
    }

    RateStatsShm stats_{};
    std::vector<RateSlotShm> slots_;
    SharedLimit shared_;
};

TEST_F(RedisStoreTest, OnStoreErrorAllowAdmitsEverythingAndCounts) {
    auto c = compile(redisLimit(0.001, 2, RateLimitConfig::OnStoreError::Allow));
    EXPECT_EQ(admitted(*c, 10), 10);
    EXPECT_EQ(stats_.store_errors.load(), 10u);
    EXPECT_NE(stats_.store_last_error_us.load(), 0u);
    EXPECT_EQ(stats_.limited.load(), 0u);
}

TEST_F(RedisStoreTest, OnStoreErrorDenyRefusesWithTheLimitFields) {
    auto c = compile(redisLimit(5, 10, RateLimitConfig::OnStoreError::Deny));
    EXPECT_EQ(admitted(*c, 3), 0);
    EXPECT_EQ(req_.replyStatus(), 429);
    EXPECT_EQ(value("Retry-After"), "1");
    EXPECT_EQ(value("RateLimit-Policy"), "\"default\";q=5;w=1");
    EXPECT_EQ(value("RateLimit"), "\"default\";r=0;t=1");
    EXPECT_EQ(stats_.store_errors.load(), 3u);
}

TEST_F(RedisStoreTest, OnStoreErrorLocalDividesTheLimitByInstances) {
    auto c = compile(redisLimit(0.001, 12, RateLimitConfig::OnStoreError::Local, 3));
    EXPECT_EQ(admitted(*c, 10), 4);  // burst 12 over 3 instances
    EXPECT_EQ(stats_.store_errors.load(), 10u);
    EXPECT_EQ(stats_.limited.load(), 6u);
}

TEST_F(RedisStoreTest, LocalShareKeepsAtLeastOneRequest) {
    auto c = compile(redisLimit(0.001, 2, RateLimitConfig::OnStoreError::Local, 5));
    EXPECT_EQ(c->fallback.burst, 1u);
    EXPECT_EQ(admitted(*c, 3), 1);
}

TEST_F(RedisStoreTest, BatchedLeaseIsTheRateOverTheIntervalWithinTheBurst) {
    RateLimitConfig rl = redisLimit(100, 20, RateLimitConfig::OnStoreError::Allow);
    rl.sync = RateLimitConfig::Sync::Batched;
    rl.batch_interval = std::chrono::milliseconds(50);
    EXPECT_EQ(compile(rl)->lease, 5u);  // 100/s x 50 ms
    rl.batch_interval = std::chrono::seconds(1);
    EXPECT_EQ(compile(rl)->lease, 20u);  // never more than the burst
    rl.requests = 0.1;
    EXPECT_EQ(compile(rl)->lease, 1u);
    EXPECT_EQ(compile(rl)->lease_us, 1'000'000u);
    rl.sync = RateLimitConfig::Sync::Exact;
    EXPECT_EQ(compile(rl)->lease, 1u);
    EXPECT_EQ(compile(rl)->lease_us, 0u);
}

TEST(RedisKeyTest, PrefixThenTheHashInsideAHashTag) {
    char buf[256];
    size_t n = redisKey("photon:rl:", 0x0123456789abcdefull, buf);
    EXPECT_EQ(std::string(buf, n), "photon:rl:{0123456789abcdef}");
    n = redisKey("", 1, buf);
    EXPECT_EQ(std::string(buf, n), "{0000000000000001}");
}

TEST(RedisScriptTest, ShaIsTheSha1OfTheScript) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    std::string_view s = gcraScript();
    ASSERT_EQ(EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr), 1);
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", md[i]);
        hex += b;
    }
    EXPECT_EQ(gcraScriptSha(), hex);
    EXPECT_EQ(gcraScriptSha().size(), 40u);
    // The script reads Redis's clock and sets an expiry, so idle keys leave Redis.
    EXPECT_NE(s.find("redis.call('TIME')"), std::string_view::npos);
    EXPECT_NE(s.find("'PX'"), std::string_view::npos);
}

}  // namespace
}  // namespace photon::mod::ratelimit
