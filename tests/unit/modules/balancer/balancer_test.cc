// SPDX-License-Identifier: Apache-2.0
// Tests for Balancer: every algorithm's distribution, eligibility, fail-open and bookkeeping.
#include "modules/balancer/balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "balancer_test_util.h"

namespace photon::mod::balancer {
namespace {

using testing::backendSpec;

constexpr uint64_t kNow = 1000000000;  // an arbitrary CLOCK_MONOTONIC µs value

PickContext at(uint64_t now = kNow) {
    PickContext c;
    c.now_us = now;
    return c;
}

class BalancerTest : public testing::TableFixture {
protected:
    Balancer balancer(uint32_t slot, uint64_t seed = 1) {
        return Balancer(plan(), table(), slot, seed);
    }

    std::string sequence(Balancer& b, int n) {
        std::string s;
        for (int i = 0; i < n; ++i) {
            const Pick p = b.pick(0, at());
            s.push_back(p.ok() ? static_cast<char>('A' + p.upstream) : '-');
        }
        return s;
    }

    std::vector<uint32_t> counts(Balancer& b, int n, const PickContext& ctx = at()) {
        std::vector<uint32_t> c(plan().backend(0).count, 0);
        for (int i = 0; i < n; ++i) {
            const Pick p = b.pick(0, ctx);
            EXPECT_TRUE(p.ok());
            if (p.ok()) {
                ++c[p.upstream];
            }
        }
        return c;
    }
};

// ---- round_robin ---------------------------------------------------------------------------

TEST_F(BalancerTest, RoundRobinIsExactlyEvenAcrossWorkers) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1, 1, 1})));
    Balancer w0 = balancer(0);
    Balancer w1 = balancer(1);
    EXPECT_EQ(sequence(w0, 4), "ABCD");
    std::vector<uint32_t> c(4, 0);
    for (int i = 0; i < 4000; ++i) {
        Balancer& w = (i % 3 == 0) ? w1 : w0;  // workers interleave irregularly
        ++c[w.pick(0, at()).upstream];
    }
    EXPECT_EQ(c, (std::vector<uint32_t>{1000, 1000, 1000, 1000}));
}

TEST_F(BalancerTest, RoundRobinSharesASkippedUpstreamsTurnEvenly) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1, 1})));
    ASSERT_TRUE(table().setHealth(rec(1), 9, false, kNow, HealthError::ConnectRefused));
    Balancer w = balancer(0);
    EXPECT_EQ(sequence(w, 6), "ACACAC");
    EXPECT_EQ(counts(w, 3000), (std::vector<uint32_t>{1500, 0, 1500}));
}

// ---- weighted_round_robin -------------------------------------------------------------------

TEST_F(BalancerTest, WeightedRoundRobinThreeToOneGivesAABA) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::WeightedRoundRobin, {3, 1})));
    Balancer w = balancer(0);
    EXPECT_EQ(sequence(w, 12), "AABAAABAAABA");
}

TEST_F(BalancerTest, WeightedRoundRobinFiveOneOneMatchesNginx) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::WeightedRoundRobin, {5, 1, 1})));
    Balancer w = balancer(0);
    EXPECT_EQ(sequence(w, 14), "AABACAAAABACAA");
}

TEST_F(BalancerTest, WeightedRoundRobinOrderIsSharedAcrossWorkers) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::WeightedRoundRobin, {5, 1, 1})));
    Balancer w0 = balancer(0);
    Balancer w1 = balancer(1);
    std::string s;
    for (int i = 0; i < 7; ++i) {
        Balancer& w = (i % 2 == 0) ? w0 : w1;
        s.push_back(static_cast<char>('A' + w.pick(0, at()).upstream));
    }
    EXPECT_EQ(s, "AABACAA");
}

TEST_F(BalancerTest, WeightedRoundRobinRedistributesAnIneligibleShareByWeight) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::WeightedRoundRobin, {5, 1, 1})));
    ASSERT_TRUE(table().setHealth(rec(1), 9, false, kNow, HealthError::Timeout));
    Balancer w = balancer(0);
    const auto c = counts(w, 6000);
    EXPECT_EQ(c[1], 0u);
    EXPECT_NEAR(static_cast<double>(c[0]) / c[2], 5.0, 0.05);
}

// ---- least_connections ----------------------------------------------------------------------

TEST_F(BalancerTest, LeastConnectionsPicksTheLeastLoadedAcrossWorkers) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::LeastConnections, {1, 1, 1})));
    Balancer w0 = balancer(0);
    Balancer w1 = balancer(1);
    w1.acquire(0);
    w1.acquire(0);
    w1.acquire(1);
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(w0.pick(0, at()).upstream, 2u);
    }
    w0.acquire(2);
    w0.acquire(2);
    EXPECT_EQ(w0.pick(0, at()).upstream, 1u);
    w1.release(0);
    w1.release(0);
    EXPECT_EQ(w0.pick(0, at()).upstream, 0u);
}

TEST_F(BalancerTest, LeastConnectionsRespectsWeights) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::LeastConnections, {3, 1})));
    Balancer w = balancer(0);
    for (int i = 0; i < 40; ++i) {
        const Pick p = w.pick(0, at());
        ASSERT_TRUE(p.ok());
        w.acquire(p.upstream);
    }
    EXPECT_EQ(w.inflight(0), 30u);
    EXPECT_EQ(w.inflight(1), 10u);
}

TEST_F(BalancerTest, LeastConnectionsRotatesTies) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::LeastConnections, {1, 1, 1})));
    Balancer w = balancer(0);
    EXPECT_EQ(counts(w, 300), (std::vector<uint32_t>{100, 100, 100}));
}

// ---- ip_hash / consistent_hash --------------------------------------------------------------

std::array<uint8_t, 4> ipv4(uint32_t i) {
    return {static_cast<uint8_t>(10 + (i >> 24)), static_cast<uint8_t>(i >> 16),
            static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
}

TEST_F(BalancerTest, IpHashIsStickyAcrossPicksAndWorkers) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::IpHash, {1, 1, 1, 1, 1})));
    Balancer w0 = balancer(0);
    Balancer w1 = balancer(1);
    const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
    for (uint32_t client = 0; client < 50; ++client) {
        const auto ip = ipv4(client * 7919);
        PickContext c = at();
        c.client_addr = ip;
        const uint32_t first = w0.pick(0, c).upstream;
        for (int k = 0; k < 5; ++k) {
            EXPECT_EQ(w0.pick(0, c).upstream, first);
            EXPECT_EQ(w1.pick(0, c).upstream, first);
        }
    }
    PickContext c6 = at();
    c6.client_addr = v6;
    EXPECT_EQ(w0.pick(0, c6).upstream, w1.pick(0, c6).upstream);
}

TEST_F(BalancerTest, IpHashSpreadsClientsOverAllUpstreams) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::IpHash, std::vector<uint32_t>(10, 1))));
    Balancer w = balancer(0);
    std::vector<uint32_t> c(10, 0);
    for (uint32_t client = 0; client < 10000; ++client) {
        const auto ip = ipv4(client);
        PickContext ctx = at();
        ctx.client_addr = ip;
        ++c[w.pick(0, ctx).upstream];
    }
    for (uint32_t u = 0; u < 10; ++u) {
        EXPECT_GT(c[u], 600u) << "upstream " << u;
        EXPECT_LT(c[u], 1400u) << "upstream " << u;
    }
}

TEST_F(BalancerTest, IpHashRemapsOnlyTheClientsOfAnUnhealthyUpstream) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::IpHash, std::vector<uint32_t>(10, 1))));
    Balancer w = balancer(0);
    constexpr uint32_t kClients = 5000;
    std::vector<uint32_t> before(kClients);
    for (uint32_t client = 0; client < kClients; ++client) {
        const auto ip = ipv4(client * 2654435761u);
        PickContext ctx = at();
        ctx.client_addr = ip;
        before[client] = w.pick(0, ctx).upstream;
    }
    ASSERT_TRUE(table().setHealth(rec(3), 9, false, kNow, HealthError::ConnectTimeout));
    std::set<uint32_t> new_homes;
    uint32_t moved = 0;
    for (uint32_t client = 0; client < kClients; ++client) {
        const auto ip = ipv4(client * 2654435761u);
        PickContext ctx = at();
        ctx.client_addr = ip;
        const uint32_t now = w.pick(0, ctx).upstream;
        if (before[client] == 3) {
            EXPECT_NE(now, 3u);
            new_homes.insert(now);
            ++moved;
        } else {
            ASSERT_EQ(now, before[client]) << "client " << client << " moved needlessly";
        }
    }
    EXPECT_GT(moved, 0u);
    EXPECT_GT(new_homes.size(), 3u);  // the lost upstream's clients spread out

    ASSERT_TRUE(table().setHealth(rec(3), 9, true, kNow, HealthError::None));
    for (uint32_t client = 0; client < kClients; ++client) {
        const auto ip = ipv4(client * 2654435761u);
        PickContext ctx = at();
        ctx.client_addr = ip;
        ASSERT_EQ(w.pick(0, ctx).upstream, before[client]) << "client " << client;
    }
}

TEST_F(BalancerTest, ConsistentHashKeysByTheCallerKeyOrElseTheClientAddress) {
    BalancerInput in;
    in.backends.push_back(backendSpec("by-key", Algorithm::ConsistentHash, {1, 1, 1, 1}));
    in.backends.push_back(backendSpec("by-ip", Algorithm::IpHash, {1, 1, 1, 1}));
    ASSERT_TRUE(build(in));
    Balancer w = balancer(0);
    std::set<uint32_t> used;
    for (uint32_t k = 0; k < 200; ++k) {
        const std::string key = "user-" + std::to_string(k);
        const auto a = ipv4(k);
        const auto b = ipv4(k + 1000);
        PickContext c1 = at();
        c1.hash_key = key;
        c1.client_addr = a;
        PickContext c2 = c1;
        c2.client_addr = b;
        const uint32_t u = w.pick(0, c1).upstream;
        EXPECT_EQ(w.pick(0, c2).upstream, u);  // the key decides, not the address
        used.insert(u);

        PickContext no_key = at();
        no_key.client_addr = a;
        const uint32_t by_key_backend = w.pick(0, no_key).upstream;
        const uint32_t by_ip_backend = w.pick(1, no_key).upstream - plan().backend(1).first;
        EXPECT_EQ(by_key_backend, by_ip_backend);  // same ring, keyed by the address
    }
    EXPECT_EQ(used.size(), 4u);
}

// ---- random ----------------------------------------------------------------------------------

TEST_F(BalancerTest, RandomIsRoughlyUniform) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::Random, {1, 1, 1, 1})));
    Balancer w = balancer(0, 12345);
    for (uint32_t c : counts(w, 40000)) {
        EXPECT_GT(c, 9400u);
        EXPECT_LT(c, 10600u);
    }
}

TEST_F(BalancerTest, RandomStaysUniformAmongEligibleUpstreams) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::Random, {1, 1, 1, 1})));
    ASSERT_TRUE(table().setHealth(rec(0), 9, false, kNow, HealthError::Io));
    Balancer w = balancer(0, 777);
    const auto c = counts(w, 30000);
    EXPECT_EQ(c[0], 0u);
    for (uint32_t u = 1; u < 4; ++u) {
        EXPECT_GT(c[u], 9400u);
        EXPECT_LT(c[u], 10600u);
    }
}

TEST_F(BalancerTest, RandomTwoChoicesAvoidsTheLoadedUpstream) {
    BackendSpec b = backendSpec("api", Algorithm::Random, {1, 1, 1});
    b.two_choices = true;
    ASSERT_TRUE(build(b));
    Balancer w0 = balancer(0, 99);
    Balancer w1 = balancer(1);
    for (int i = 0; i < 5; ++i) {
        w1.acquire(0);
    }
    const auto c = counts(w0, 3000);
    EXPECT_EQ(c[0], 0u);  // always paired with a lighter one
    EXPECT_GT(c[1], 1000u);
    EXPECT_GT(c[2], 1000u);
}

// ---- eligibility, for every algorithm -------------------------------------------------------

struct AlgoCase {
    Algorithm algorithm;
    bool two_choices;
};

std::string caseName(const ::testing::TestParamInfo<AlgoCase>& info) {
    return std::string(algorithmName(info.param.algorithm)) +
           (info.param.two_choices ? "_two_choices" : "");
}

class BalancerEligibilityTest : public BalancerTest,
                                public ::testing::WithParamInterface<AlgoCase> {
protected:
    BackendSpec spec(const std::vector<uint32_t>& weights, uint32_t max_connections = 0) {
        BackendSpec b = backendSpec("api", GetParam().algorithm, weights, max_connections);
        b.two_choices = GetParam().two_choices;
        b.max_fails = 1;
        b.fail_timeout_us = 10000000;
        return b;
    }

    /// Picks with varying client addresses and keys; returns the set of upstreams picked, or
    /// kNoUpstream for failed picks, and the statuses seen.
    std::set<uint32_t> sample(Balancer& w, int n, std::set<PickStatus>* statuses = nullptr,
                              const ExcludeList* exclude = nullptr, uint64_t now = kNow) {
        std::set<uint32_t> out;
        for (int i = 0; i < n; ++i) {
            const auto ip = ipv4(static_cast<uint32_t>(i) * 40503u);
            const std::string key = "k" + std::to_string(i);
            PickContext c = at(now);
            c.client_addr = ip;
            c.hash_key = key;
            c.exclude = exclude;
            const Pick p = w.pick(0, c);
            out.insert(p.upstream);
            if (statuses != nullptr) {
                statuses->insert(p.status);
            }
        }
        return out;
    }
};

TEST_P(BalancerEligibilityTest, SkipsUnhealthyEjectedFullDrainedAndZeroWeight) {
    ASSERT_TRUE(build(spec({1, 1, 1, 0, 1, 1}, 1)));
    Balancer w = balancer(0, 5);
    Balancer other = balancer(1);
    ASSERT_TRUE(table().setHealth(rec(0), 9, false, kNow, HealthError::ConnectRefused));
    ASSERT_TRUE(other.reportFailure(1, kNow));  // max_fails 1: ejected
    other.acquire(2);                           // max_connections 1: full
    ASSERT_TRUE(table().setDrained(rec(5), 9, true));
    std::set<PickStatus> statuses;
    EXPECT_EQ(sample(w, 300, &statuses), std::set<uint32_t>{4});
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::Picked});

    // Each exclusion lifts on its own terms: ejection expires, the full one frees up.
    other.release(2);
    const auto later = sample(w, 300, nullptr, nullptr, kNow + 10000001);
    EXPECT_EQ(later, (std::set<uint32_t>{1, 2, 4}));
}

TEST_P(BalancerEligibilityTest, NoUpstreamWhenNothingIsEligible) {
    ASSERT_TRUE(build(spec({1, 1, 1})));
    for (uint32_t u = 0; u < 3; ++u) {
        ASSERT_TRUE(table().setHealth(rec(u), 9, false, kNow, HealthError::Timeout));
    }
    Balancer w = balancer(0);
    std::set<PickStatus> statuses;
    EXPECT_EQ(sample(w, 50, &statuses), std::set<uint32_t>{kNoUpstream});
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::NoUpstream});
}

TEST_P(BalancerEligibilityTest, FailOpenIgnoresHealthAndEjectionButNotDrainOrWeightZero) {
    BackendSpec b = spec({1, 1, 1, 0});
    b.fail_open = true;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    ASSERT_TRUE(table().setHealth(rec(0), 9, false, kNow, HealthError::Timeout));
    ASSERT_TRUE(w.reportFailure(1, kNow));
    ASSERT_TRUE(table().setDrained(rec(2), 9, true));
    std::set<PickStatus> statuses;
    EXPECT_EQ(sample(w, 300, &statuses), (std::set<uint32_t>{0, 1}));
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::FailOpen});

    ASSERT_TRUE(table().setHealth(rec(0), 9, true, kNow, HealthError::None));
    statuses.clear();
    EXPECT_EQ(sample(w, 100, &statuses), std::set<uint32_t>{0});
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::Picked});

    ASSERT_TRUE(table().setDrained(rec(0), 9, true));
    ASSERT_TRUE(table().setDrained(rec(1), 9, true));
    EXPECT_EQ(sample(w, 20), std::set<uint32_t>{kNoUpstream});
}

TEST_P(BalancerEligibilityTest, ExcludedUpstreamsAreNeverPicked) {
    ASSERT_TRUE(build(spec({1, 1, 1})));
    Balancer w = balancer(0);
    ExcludeList ex;
    ASSERT_TRUE(ex.add(1));
    EXPECT_EQ(sample(w, 300, nullptr, &ex).count(1), 0u);
    ASSERT_TRUE(ex.add(0));
    ASSERT_TRUE(ex.add(2));
    EXPECT_EQ(sample(w, 20, nullptr, &ex), std::set<uint32_t>{kNoUpstream});
}

TEST_P(BalancerEligibilityTest, MaxConnectionsCountsEveryWorker) {
    ASSERT_TRUE(build(spec({1, 1}, 2)));
    Balancer w0 = balancer(0);
    Balancer w1 = balancer(1);
    w1.acquire(0);
    w0.acquire(0);
    EXPECT_EQ(sample(w0, 100), std::set<uint32_t>{1});
    w1.release(0);
    ExcludeList ex;  // leave u0 as the only candidate: it is below its cap again
    ASSERT_TRUE(ex.add(1));
    EXPECT_EQ(sample(w0, 100, nullptr, &ex), std::set<uint32_t>{0});
}

TEST_P(BalancerEligibilityTest, EjectionCapKeepsTheLastUsableUpstreamAndAShare) {
    BackendSpec b = spec({1, 1, 1});
    b.max_ejection_percent = 50;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    EXPECT_TRUE(w.reportFailure(0, kNow));   // 1 of 3 out: 33 % <= 50 %
    EXPECT_FALSE(w.reportFailure(1, kNow));  // 2 of 3 would be 67 %
    EXPECT_FALSE(w.reportFailure(1, kNow));
    EXPECT_EQ(sample(w, 200), (std::set<uint32_t>{1, 2}));
    // Once the first ejection expires another may go.
    EXPECT_TRUE(w.reportFailure(1, kNow + 10000001));
}

TEST_P(BalancerEligibilityTest, ASingleUpstreamIsNeverEjectedBelowOneHundredPercent) {
    BackendSpec b = spec({1});
    b.max_ejection_percent = 99;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(w.reportFailure(0, kNow + static_cast<uint64_t>(i)));
    }
    EXPECT_EQ(sample(w, 20), std::set<uint32_t>{0});
}

TEST_P(BalancerEligibilityTest, RepeatedEjectionsGrowUpToTheCap) {
    BackendSpec b = spec({1, 1});
    b.max_ejection_percent = 50;
    b.max_ejection_time_us = 25000000;  // 25 s; the window is 10 s
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    uint64_t t = kNow;
    uint64_t expect[] = {10000000, 20000000, 25000000, 25000000};
    for (uint64_t len : expect) {
        ASSERT_TRUE(w.reportFailure(0, t));
        const auto s = w.snapshot(0, t);
        EXPECT_EQ(s.ejected_until_us - t, len);
        t = s.ejected_until_us + 1;  // fails again right after it is back
    }
    EXPECT_EQ(w.snapshot(0, t).ejections_total, 4u);
    // Back for longer than max_ejection_time: the next ejection is a first one again.
    t += 25000001;
    ASSERT_TRUE(w.reportFailure(0, t));
    EXPECT_EQ(w.snapshot(0, t).ejected_until_us - t, 10000000u);
}

TEST_P(BalancerEligibilityTest, PanicBelowTheThresholdSpreadsOverAll) {
    BackendSpec b = spec({1, 1, 1, 0});
    b.panic_threshold = 50;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    ASSERT_TRUE(table().setHealth(rec(0), 9, false, kNow, HealthError::Timeout));
    std::set<PickStatus> statuses;
    // 2 of 3 healthy (the weight-0 one does not count): no panic.
    EXPECT_EQ(sample(w, 200, &statuses), (std::set<uint32_t>{1, 2}));
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::Picked});
    ASSERT_TRUE(table().setHealth(rec(1), 9, false, kNow, HealthError::Timeout));
    // 1 of 3: panic, once this worker re-evaluates (every 100 ms).
    EXPECT_TRUE(w.belowPanicThreshold(0, kNow));
    statuses.clear();
    EXPECT_EQ(sample(w, 300, &statuses, nullptr, kNow + 100001), (std::set<uint32_t>{0, 1, 2}));
    EXPECT_EQ(statuses, std::set<PickStatus>{PickStatus::Panic});
    EXPECT_TRUE(w.panicking(0));
}

TEST_P(BalancerEligibilityTest, FailureRateEjectsWhatNeverFailsTwiceInARow) {
    BackendSpec b = spec({1, 1, 1});
    b.max_fails = 100;  // never reached: only the rate can eject
    b.max_ejection_percent = 50;
    b.failure_percentage = 50;
    b.failure_percentage_min_requests = 6;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    uint64_t t = kNow;
    bool ejected = false;
    int attempts = 0;
    for (; attempts < 20 && !ejected; ++attempts) {
        if (attempts % 2 == 0) {
            w.reportSuccess(0, t);
        } else {
            ejected = w.reportFailure(0, t);
        }
        t += 1000;
    }
    EXPECT_TRUE(ejected);
    EXPECT_EQ(attempts, 6);  // judged once 6 attempts were seen, 3 of them failed
    EXPECT_TRUE(w.snapshot(0, t).ejected);
    // Below the rate nothing happens: 1 failure in 4.
    for (int i = 0; i < 40; ++i) {
        if (i % 4 == 3) {
            EXPECT_FALSE(w.reportFailure(1, t));
        } else {
            w.reportSuccess(1, t);
        }
    }
    EXPECT_FALSE(w.snapshot(1, t).ejected);
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, BalancerEligibilityTest,
                         ::testing::Values(AlgoCase{Algorithm::RoundRobin, false},
                                           AlgoCase{Algorithm::WeightedRoundRobin, false},
                                           AlgoCase{Algorithm::LeastConnections, false},
                                           AlgoCase{Algorithm::IpHash, false},
                                           AlgoCase{Algorithm::ConsistentHash, false},
                                           AlgoCase{Algorithm::Random, false},
                                           AlgoCase{Algorithm::Random, true}),
                         caseName);

// ---- bookkeeping -----------------------------------------------------------------------------

TEST_F(BalancerTest, EmptyBackendHasNoUpstream) {
    BalancerInput in;
    in.backends.push_back(backendSpec("empty", Algorithm::RoundRobin, {}));
    ASSERT_TRUE(build(in));
    Balancer w = balancer(0);
    const Pick p = w.pick(0, at());
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.status, PickStatus::NoUpstream);
}

TEST_F(BalancerTest, GuardReleasesOnDestructionResetAndMove) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    Balancer w = balancer(0);
    {
        InflightGuard g = w.guard(1);
        EXPECT_TRUE(static_cast<bool>(g));
        EXPECT_EQ(w.inflight(1), 1u);
        InflightGuard moved = std::move(g);
        EXPECT_FALSE(static_cast<bool>(g));
        EXPECT_EQ(w.inflight(1), 1u);
        InflightGuard other = w.guard(0);
        other = std::move(moved);  // releases upstream 0, takes over upstream 1
        EXPECT_EQ(w.inflight(0), 0u);
        EXPECT_EQ(w.inflight(1), 1u);
        EXPECT_EQ(other.upstream(), 1u);
    }
    EXPECT_EQ(w.inflight(1), 0u);
    InflightGuard g = w.guard(0);
    g.reset();
    g.reset();
    EXPECT_EQ(w.inflight(0), 0u);
    EXPECT_EQ(w.snapshot(0, kNow).requests_total, 2u);
}

TEST_F(BalancerTest, ExcludeListHoldsAFixedNumberOfEntries) {
    ExcludeList ex;
    for (uint32_t i = 0; i < ExcludeList::kCapacity; ++i) {
        EXPECT_TRUE(ex.add(i * 10));
    }
    EXPECT_FALSE(ex.add(999));
    EXPECT_TRUE(ex.contains(70));
    EXPECT_FALSE(ex.contains(999));
    ex.clear();
    EXPECT_FALSE(ex.contains(70));
}

TEST_F(BalancerTest, BackendHealthCountsHealthyAndEjectedUpstreams) {
    BackendSpec b = backendSpec("api", Algorithm::RoundRobin, {1, 1, 1, 1});
    b.max_fails = 1;
    ASSERT_TRUE(build(b));
    Balancer w = balancer(0);
    ASSERT_TRUE(table().setHealth(rec(0), 9, false, kNow, HealthError::Timeout));
    ASSERT_TRUE(table().setDrained(rec(1), 9, true));
    ASSERT_TRUE(w.reportFailure(2, kNow));
    const BackendHealth h = w.backendHealth(0, kNow);
    EXPECT_EQ(h.total, 4u);
    EXPECT_EQ(h.healthy, 2u);
    EXPECT_EQ(h.ejected, 1u);
}

TEST_F(BalancerTest, HealthWriterApiRecordsThroughThePlanIndex) {
    BalancerInput in;
    in.backends.push_back(backendSpec("a", Algorithm::RoundRobin, {1}));
    in.backends.push_back(backendSpec("b", Algorithm::RoundRobin, {1, 1}));
    ASSERT_TRUE(build(in));
    Balancer helper = balancer(7);
    const HealthThresholds th{1, 1};
    EXPECT_EQ(helper.recordCheck(2, false, kNow, HealthError::BadStatus, 500, th),
              HealthTransition::BecameUnhealthy);
    EXPECT_FALSE(helper.isHealthy(2));
    EXPECT_TRUE(helper.isHealthy(1));
    const UpstreamSnapshot s = helper.snapshot(2, kNow);
    EXPECT_EQ(s.last_http_status, 500u);
    EXPECT_EQ(s.last_check_us, kNow);
    EXPECT_TRUE(helper.setHealth(2, true, kNow + 1, HealthError::None));
    EXPECT_TRUE(helper.isHealthy(2));
}

}  // namespace
}  // namespace photon::mod::balancer
