// SPDX-License-Identifier: Apache-2.0
// Tests for HashRing: point counts, determinism, weighting and minimal disruption.
#include "modules/balancer/hash_ring.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace photon::mod::balancer {
namespace {

std::vector<std::string> names(uint32_t n) {
    std::vector<std::string> out;
    for (uint32_t i = 0; i < n; ++i) {
        out.push_back("10.1.0." + std::to_string(i) + ":80");
    }
    return out;
}

TEST(HashRingTest, HasPointsPerWeightUnitAndSortedHashes) {
    const auto n = names(3);
    const uint32_t w[] = {1, 2, 0};
    const HashRing ring = HashRing::build(n, w);
    ASSERT_EQ(ring.size(), 3 * HashRing::kPointsPerWeight);
    std::map<uint32_t, uint32_t> per_owner;
    for (uint32_t p = 0; p < ring.size(); ++p) {
        ++per_owner[ring.ownerAt(p)];
        if (p > 0) {
            ASSERT_LE(ring.hashAt(p - 1), ring.hashAt(p));
        }
    }
    EXPECT_EQ(per_owner[0], HashRing::kPointsPerWeight);
    EXPECT_EQ(per_owner[1], 2 * HashRing::kPointsPerWeight);
    EXPECT_EQ(per_owner.count(2), 0u);
}

TEST(HashRingTest, AllZeroWeightsGiveAnEmptyRing) {
    const auto n = names(2);
    const uint32_t w[] = {0, 0};
    EXPECT_TRUE(HashRing::build(n, w).empty());
}

TEST(HashRingTest, LowerBoundWrapsPastTheLastPoint) {
    const auto n = names(2);
    const uint32_t w[] = {1, 1};
    const HashRing ring = HashRing::build(n, w);
    EXPECT_EQ(ring.lowerBound(0), 0u);
    EXPECT_EQ(ring.lowerBound(ring.hashAt(5)), 5u);
    EXPECT_EQ(ring.lowerBound(ring.hashAt(5) + 1), 6u);
    if (ring.hashAt(ring.size() - 1) != UINT64_MAX) {
        EXPECT_EQ(ring.lowerBound(UINT64_MAX), 0u);
    }
}

TEST(HashRingTest, SameMembersBuildTheSameRing) {
    const auto n = names(5);
    const uint32_t w[] = {1, 3, 2, 1, 1};
    const HashRing a = HashRing::build(n, w);
    const HashRing b = HashRing::build(n, w);
    ASSERT_EQ(a.size(), b.size());
    for (uint32_t p = 0; p < a.size(); ++p) {
        ASSERT_EQ(a.hashAt(p), b.hashAt(p));
        ASSERT_EQ(a.ownerAt(p), b.ownerAt(p));
    }
}

TEST(HashRingTest, KeysSpreadInProportionToWeight) {
    const auto n = names(2);
    const uint32_t w[] = {1, 3};
    const HashRing ring = HashRing::build(n, w);
    uint32_t counts[2] = {0, 0};
    for (uint32_t k = 0; k < 40000; ++k) {
        ++counts[ring.lookup(HashRing::hashKey(&k, sizeof k))];
    }
    const double share = counts[1] / 40000.0;
    EXPECT_GT(share, 0.68);
    EXPECT_LT(share, 0.82);
}

TEST(HashRingTest, RemovingAMemberMovesOnlyItsKeys) {
    auto n = names(10);
    std::vector<uint32_t> w(10, 1);
    const HashRing before = HashRing::build(n, w);
    w[4] = 0;  // member 4 leaves the ring
    const HashRing after = HashRing::build(n, w);
    uint32_t moved = 0;
    for (uint32_t k = 0; k < 20000; ++k) {
        const uint64_t h = HashRing::hashKey(&k, sizeof k);
        const uint32_t a = before.lookup(h);
        const uint32_t b = after.lookup(h);
        if (a != 4) {
            ASSERT_EQ(a, b) << "key " << k << " moved although its member stayed";
        } else {
            ASSERT_NE(b, 4u);
            ++moved;
        }
    }
    EXPECT_GT(moved, 0u);
}

TEST(HashRingTest, TotalPointsAreBoundedByScaling) {
    const auto n = names(4);
    const uint32_t w[] = {1000, 1000, 1000, 1};
    const HashRing ring = HashRing::build(n, w, HashRing::kPointsPerWeight, 10000);
    EXPECT_LE(ring.size(), 10000u + 4u);
    uint32_t smallest = 0;
    for (uint32_t p = 0; p < ring.size(); ++p) {
        smallest += ring.ownerAt(p) == 3 ? 1 : 0;
    }
    EXPECT_GE(smallest, 1u);
}

}  // namespace
}  // namespace photon::mod::balancer
