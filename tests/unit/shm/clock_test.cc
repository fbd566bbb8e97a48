// SPDX-License-Identifier: Apache-2.0
// Tests for monotonicMicros(): unit and monotonicity.
#include "shm/clock.h"

#include <gtest/gtest.h>

namespace photon::shm {
namespace {

uint64_t directMicros() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

TEST(MonotonicMicrosTest, IsMicrosecondsOfClockMonotonic) {
    const uint64_t before = directMicros();
    const uint64_t now = monotonicMicros();
    const uint64_t after = directMicros();
    EXPECT_LE(before, now);
    EXPECT_LE(now, after);
}

TEST(MonotonicMicrosTest, NeverGoesBackwards) {
    uint64_t prev = monotonicMicros();
    for (int i = 0; i < 10000; ++i) {
        const uint64_t t = monotonicMicros();
        ASSERT_GE(t, prev);
        prev = t;
    }
}

}  // namespace
}  // namespace photon::shm
