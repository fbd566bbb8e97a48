// SPDX-License-Identifier: Apache-2.0
// Unit tests for request id generation and incoming-id checks.
#include "modules/requestid/request_id.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace photon::mod::requestid {
namespace {

TEST(RequestIdTest, HasOriginalShape) {
    Generator g;
    g.init(0x1868f0a2c4b5e6d7ull, 3);
    char buf[kGeneratedMax];
    std::string id(buf, g.next(buf));
    EXPECT_EQ(id, "req-1868f0a2c4b5e603-00000000");
    id.assign(buf, g.next(buf));
    EXPECT_EQ(id, "req-1868f0a2c4b5e603-00000001");
}

TEST(RequestIdTest, IdsAreUniqueWithinAndAcrossSlots) {
    Generator a, b;
    a.init(1'000'000'000ull, 0);
    b.init(1'000'000'000ull, 1);  // same start time, another worker
    std::set<std::string> seen;
    char buf[kGeneratedMax];
    for (int i = 0; i < 10000; ++i) {
        EXPECT_TRUE(seen.emplace(buf, a.next(buf)).second);
        EXPECT_TRUE(seen.emplace(buf, b.next(buf)).second);
    }
}

TEST(RequestIdTest, CounterWidensPastEightDigits) {
    Generator g;
    g.init(0, 0);
    char buf[kGeneratedMax];
    size_t n = g.next(buf);
    EXPECT_EQ(n, 29u);
    EXPECT_LE(n, kGeneratedMax);
}

TEST(RequestIdTest, SaneIncomingIds) {
    EXPECT_TRUE(isSaneIncoming("abc-123"));
    EXPECT_TRUE(isSaneIncoming(std::string(128, 'a')));
    EXPECT_FALSE(isSaneIncoming(std::string(129, 'a')));
    EXPECT_FALSE(isSaneIncoming(""));
    EXPECT_FALSE(isSaneIncoming("has space"));
    EXPECT_FALSE(isSaneIncoming(std::string("nul\0x", 5)));
    EXPECT_FALSE(isSaneIncoming("tab\there"));
    EXPECT_FALSE(isSaneIncoming("\x7f"));
}

}  // namespace
}  // namespace photon::mod::requestid
