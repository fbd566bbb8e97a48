// SPDX-License-Identifier: Apache-2.0
// Tests for smoothWeightedSequence: nginx order, gcd reduction, zero weights, period bound.
#include "modules/balancer/wrr.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace photon::mod::balancer {
namespace {

std::string letters(const std::vector<uint16_t>& seq) {
    std::string s;
    for (uint16_t i : seq) {
        s.push_back(static_cast<char>('A' + i));
    }
    return s;
}

TEST(SmoothWeightedSequenceTest, ThreeToOneInterleavesAsNginx) {
    const uint32_t w[] = {3, 1};
    EXPECT_EQ(letters(smoothWeightedSequence(w)), "AABA");
}

TEST(SmoothWeightedSequenceTest, FiveOneOneMatchesNginx) {
    // nginx commit 52327e0627f4 ("smooth weighted round-robin"): { 5, 1, 1 } → a a b a c a a.
    const uint32_t w[] = {5, 1, 1};
    EXPECT_EQ(letters(smoothWeightedSequence(w)), "AABACAA");
}

TEST(SmoothWeightedSequenceTest, EqualWeightsArePlainRoundRobin) {
    const uint32_t w[] = {2, 2, 2};
    EXPECT_EQ(letters(smoothWeightedSequence(w)), "ABC");
}

TEST(SmoothWeightedSequenceTest, DividesByGcd) {
    const uint32_t w[] = {300, 100};
    EXPECT_EQ(letters(smoothWeightedSequence(w)), "AABA");
}

TEST(SmoothWeightedSequenceTest, ZeroWeightMembersNeverAppear) {
    const uint32_t w[] = {0, 2, 0, 1};
    EXPECT_EQ(letters(smoothWeightedSequence(w)), "BDB");
    const uint32_t none[] = {0, 0};
    EXPECT_TRUE(smoothWeightedSequence(none).empty());
    EXPECT_TRUE(smoothWeightedSequence(std::span<const uint32_t>{}).empty());
}

TEST(SmoothWeightedSequenceTest, EveryMemberAppearsWeightTimesPerPeriod) {
    const uint32_t w[] = {7, 3, 11, 1, 5};
    const auto seq = smoothWeightedSequence(w);
    ASSERT_EQ(seq.size(), 27u);
    std::map<uint16_t, uint32_t> counts;
    for (uint16_t i : seq) {
        ++counts[i];
    }
    for (uint16_t i = 0; i < 5; ++i) {
        EXPECT_EQ(counts[i], w[i]) << "member " << i;
    }
}

TEST(SmoothWeightedSequenceTest, LargePeriodsAreScaledToTheBoundKeepingRatios) {
    const uint32_t w[] = {1000003, 500001, 7};  // coprime-ish: raw period ~1.5M
    const auto seq = smoothWeightedSequence(w, 4096);
    ASSERT_FALSE(seq.empty());
    EXPECT_LE(seq.size(), 4096u + 3u);
    std::map<uint16_t, uint32_t> counts;
    for (uint16_t i : seq) {
        ++counts[i];
    }
    EXPECT_GE(counts[2], 1u);  // a tiny weight keeps at least one turn
    const double ratio = static_cast<double>(counts[0]) / counts[1];
    EXPECT_NEAR(ratio, 2.0, 0.01);
}

}  // namespace
}  // namespace photon::mod::balancer
