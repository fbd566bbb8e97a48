// SPDX-License-Identifier: Apache-2.0
// Tests for BalancerPlan::build and algorithm names: validation, layout, record binding on reload.
#include "modules/balancer/config.h"

#include <gtest/gtest.h>

#include <set>

#include "balancer_test_util.h"

namespace photon::mod::balancer {
namespace {

using testing::addr;
using testing::backendSpec;

TEST(AlgorithmTest, ParsesEveryConfigSpellingAndRejectsOthers) {
    const char* const names[] = {
        "round_robin", "weighted_round_robin", "least_connections", "ip_hash",
        "random",      "consistent_hash"};
    for (const char* n : names) {
        Algorithm a = Algorithm::Random;
        ASSERT_TRUE(parseAlgorithm(n, a)) << n;
        EXPECT_EQ(algorithmName(a), n);
    }
    Algorithm a = Algorithm::IpHash;
    EXPECT_FALSE(parseAlgorithm("RoundRobin", a));
    EXPECT_FALSE(parseAlgorithm("", a));
    EXPECT_EQ(a, Algorithm::IpHash);
}

class BalancerPlanTest : public testing::TableFixture {};

TEST_F(BalancerPlanTest, LaysOutUpstreamsGloballyInConfigOrder) {
    BalancerInput in;
    in.backends.push_back(backendSpec("api", Algorithm::RoundRobin, {1, 1}));
    in.backends.push_back(backendSpec("web", Algorithm::WeightedRoundRobin, {3, 1, 0}));
    in.backends.push_back(backendSpec("sticky", Algorithm::IpHash, {1, 2}));
    ASSERT_TRUE(build(in));
    EXPECT_EQ(plan().backendCount(), 3u);
    EXPECT_EQ(plan().upstreamCount(), 7u);
    EXPECT_EQ(plan().backend(1).first, 2u);
    EXPECT_EQ(plan().backend(1).count, 3u);
    EXPECT_EQ(plan().backend(1).weighted, 2u);
    EXPECT_EQ(plan().upstream(3).backend, 1u);
    EXPECT_EQ(plan().upstreamAddress(3), addr(1));
    EXPECT_EQ(plan().backendName(2), "sticky");
    EXPECT_EQ(plan().findBackend("web"), std::optional<uint32_t>(1));
    EXPECT_FALSE(plan().findBackend("nope").has_value());

    const BackendPlan& web = plan().backend(1);
    ASSERT_EQ(web.wrr_period, 4u);
    const uint16_t* seq = plan().wrrSequence() + web.wrr_offset;
    EXPECT_EQ(std::vector<uint16_t>(seq, seq + 4), (std::vector<uint16_t>{0, 0, 1, 0}));
    EXPECT_EQ(plan().backend(2).ring.size(), 3 * HashRing::kPointsPerWeight);
    EXPECT_TRUE(plan().backend(0).ring.empty());

    std::set<uint32_t> records;
    for (uint32_t u = 0; u < plan().upstreamCount(); ++u) {
        records.insert(rec(u));
    }
    EXPECT_EQ(records.size(), 7u);  // same address in two backends: separate state
}

TEST_F(BalancerPlanTest, RejectsDuplicateAndEmptyBackendNames) {
    BalancerInput dup;
    dup.backends.push_back(backendSpec("a", Algorithm::RoundRobin, {1}));
    dup.backends.push_back(backendSpec("a", Algorithm::RoundRobin, {1}));
    auto r = BalancerPlan::build(dup, table());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().msg.find("duplicate"), std::string::npos);

    BalancerInput empty;
    empty.backends.push_back(backendSpec("", Algorithm::RoundRobin, {1}));
    EXPECT_FALSE(BalancerPlan::build(empty, table()).ok());
}

TEST_F(BalancerPlanTest, RejectsEmptyOrOverlongAddressesAndHugeBackends) {
    BackendSpec b = backendSpec("a", Algorithm::RoundRobin, {1});
    b.upstreams[0].address = "";
    BalancerInput in;
    in.backends.push_back(b);
    EXPECT_FALSE(BalancerPlan::build(in, table()).ok());

    in.backends[0].upstreams[0].address = std::string(kMaxKeyBytes, 'x');
    EXPECT_FALSE(BalancerPlan::build(in, table()).ok());

    in.backends[0] = backendSpec("a", Algorithm::RoundRobin,
                                 std::vector<uint32_t>(kMaxUpstreamsPerBackend + 1, 1));
    EXPECT_FALSE(BalancerPlan::build(in, table()).ok());
}

TEST_F(BalancerPlanTest, FailsWhenTheTableIsFull) {
    BalancerInput in;
    in.backends.push_back(
        backendSpec("a", Algorithm::RoundRobin, std::vector<uint32_t>(table().capacity() + 1, 1)));
    auto r = BalancerPlan::build(in, table());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().msg.find("full"), std::string::npos);
}

TEST_F(BalancerPlanTest, DuplicateAddressesGetDistinctRecords) {
    BackendSpec b = backendSpec("a", Algorithm::RoundRobin, {1, 1});
    b.upstreams[1].address = b.upstreams[0].address;
    ASSERT_TRUE(build(b));
    EXPECT_NE(rec(0), rec(1));
}

TEST_F(BalancerPlanTest, RebuildKeepsStateOfUpstreamsThatStillExist) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    const uint32_t gen1 = plan().generation();
    const uint32_t rec_b = rec(1);
    ASSERT_TRUE(table().setHealth(rec_b, 0, false, 100, HealthError::ConnectRefused));
    table().pinSlot(0, gen1);
    table().acquire(rec_b, 0);

    // Reload: upstream 0 removed, upstream 1 kept, a new one added.
    BackendSpec next = backendSpec("api", Algorithm::RoundRobin, {1, 1});
    next.upstreams[0].address = addr(1);
    next.upstreams[1].address = addr(7);
    next.upstreams[1].start_healthy = false;
    ASSERT_TRUE(build(next));
    EXPECT_GT(plan().generation(), gen1);
    EXPECT_EQ(rec(0), rec_b);
    EXPECT_FALSE(table().isHealthy(rec(0)));
    EXPECT_EQ(table().inflight(rec(0)), 1u);
    EXPECT_FALSE(table().isHealthy(rec(1)));  // new record honours start_healthy
    EXPECT_EQ(table().inflight(rec(1)), 0u);
}

}  // namespace
}  // namespace photon::mod::balancer
