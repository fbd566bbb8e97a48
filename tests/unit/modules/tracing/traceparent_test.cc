// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <string>

#include "modules/tracing/traceparent.h"

namespace tr = photon::mod::tracing;

namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, ParsesTheSpecificationsExample) {
    tr::TraceParent t;
    ASSERT_TRUE(tr::parse(kValid, t));
    EXPECT_EQ(t.trace_id[0], 0x4b);
    EXPECT_EQ(t.trace_id[15], 0x36);
    EXPECT_EQ(t.parent_id[0], 0x00);
    EXPECT_EQ(t.parent_id[7], 0xb7);
    EXPECT_EQ(t.flags, 0x01);
}

TEST(TraceParent, FormatRoundTrips) {
    tr::TraceParent t;
    ASSERT_TRUE(tr::parse(kValid, t));
    char out[tr::kTraceParentLen];
    tr::format(t.trace_id, t.parent_id, t.flags, out);
    EXPECT_EQ(std::string(out, sizeof out), kValid);
}

TEST(TraceParent, RejectsWhatTheSpecificationCallsInvalid) {
    const std::string v = kValid;
    auto bad = [](const std::string& s) {
        tr::TraceParent t;
        return !tr::parse(s, t);
    };
    EXPECT_TRUE(bad(""));
    EXPECT_TRUE(bad(v.substr(0, 54)));                                 // short
    EXPECT_TRUE(bad(v + "-"));                                         // 00 with extra
    EXPECT_TRUE(bad(v + "x"));
    EXPECT_TRUE(bad("ff" + v.substr(2)));                              // version ff
    EXPECT_TRUE(bad("0g" + v.substr(2)));                              // not hex
    EXPECT_TRUE(bad("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));  // upper case
    EXPECT_TRUE(bad("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));  // zero trace
    EXPECT_TRUE(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));  // zero parent
    EXPECT_TRUE(bad("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));  // separators
    EXPECT_TRUE(bad("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
    EXPECT_TRUE(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"));
    EXPECT_TRUE(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
}

TEST(TraceParent, LaterVersionsAreReadForTheirFirstFields) {
    tr::TraceParent t;
    EXPECT_TRUE(tr::parse("01" + std::string(kValid).substr(2), t));
    EXPECT_TRUE(tr::parse("cc" + std::string(kValid).substr(2) + "-what-the-future-brings", t));
    EXPECT_EQ(t.flags, 0x01);
    EXPECT_FALSE(tr::parse("cc" + std::string(kValid).substr(2) + "x", t));  // no separator
}

}  // namespace
