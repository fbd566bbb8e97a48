// SPDX-License-Identifier: Apache-2.0
// Tests for Rng: determinism per seed, range and rough uniformity.
#include "modules/balancer/rng.h"

#include <gtest/gtest.h>

namespace photon::mod::balancer {
namespace {

TEST(RngTest, SameSeedSameSequenceDifferentSeedDifferentSequence) {
    Rng a(42);
    Rng b(42);
    Rng c(43);
    bool differs = false;
    for (int i = 0; i < 100; ++i) {
        const uint64_t x = a.next();
        EXPECT_EQ(x, b.next());
        differs |= x != c.next();
    }
    EXPECT_TRUE(differs);
}

TEST(RngTest, BelowStaysInRangeAndCoversItUniformly) {
    Rng r(7);
    uint32_t counts[10] = {};
    for (int i = 0; i < 100000; ++i) {
        const uint32_t v = r.below(10);
        ASSERT_LT(v, 10u);
        ++counts[v];
    }
    for (uint32_t c : counts) {
        EXPECT_GT(c, 9500u);
        EXPECT_LT(c, 10500u);
    }
}

TEST(RngTest, SeedForSeparatesSlotsAndPids) {
    EXPECT_NE(Rng::seedFor(100, 0, 5), Rng::seedFor(100, 1, 5));
    EXPECT_NE(Rng::seedFor(100, 0, 5), Rng::seedFor(101, 0, 5));
    EXPECT_EQ(Rng::seedFor(100, 2, 5), Rng::seedFor(100, 2, 5));
}

}  // namespace
}  // namespace photon::mod::balancer
