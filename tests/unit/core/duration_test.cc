// SPDX-License-Identifier: Apache-2.0
// Tests for the humantime duration grammar (core/duration.h).
#include "core/duration.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace photon::core {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

Duration parsed(std::string_view s) {
    auto r = parseDuration(s);
    EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().msg);
    return r.ok() ? r.value() : Duration(-1);
}

std::string errorOf(std::string_view s) {
    auto r = parseDuration(s);
    EXPECT_FALSE(r.ok()) << "'" << s << "' parsed unexpectedly";
    return r.ok() ? std::string() : r.error().msg;
}

TEST(DurationTest, ParsesEveryShortUnit) {
    EXPECT_EQ(parsed("7ns"), nanoseconds(7));
    EXPECT_EQ(parsed("7us"), microseconds(7));
    EXPECT_EQ(parsed("7\xC2\xB5s"), microseconds(7));
    EXPECT_EQ(parsed("7ms"), milliseconds(7));
    EXPECT_EQ(parsed("7s"), seconds(7));
    EXPECT_EQ(parsed("7m"), minutes(7));
    EXPECT_EQ(parsed("7h"), hours(7));
    EXPECT_EQ(parsed("7d"), hours(7 * 24));
    EXPECT_EQ(parsed("7w"), hours(7 * 24 * 7));
    EXPECT_EQ(parsed("1M"), seconds(2'630'016));
    EXPECT_EQ(parsed("1y"), seconds(31'557'600));
}

TEST(DurationTest, ParsesEveryLongUnitSpelling) {
    struct Case {
        const char* unit;
        Duration one;
    };
    const Case cases[] = {
        {"nsec", nanoseconds(1)},
        {"nanos", nanoseconds(1)},
        {"usec", microseconds(1)},
        {"msec", milliseconds(1)},
        {"millis", milliseconds(1)},
        {"sec", seconds(1)},
        {"secs", seconds(1)},
        {"second", seconds(1)},
        {"seconds", seconds(1)},
        {"min", minutes(1)},
        {"mins", minutes(1)},
        {"minute", minutes(1)},
        {"minutes", minutes(1)},
        {"hr", hours(1)},
        {"hrs", hours(1)},
        {"hour", hours(1)},
        {"hours", hours(1)},
        {"day", hours(24)},
        {"days", hours(24)},
        {"wk", hours(168)},
        {"wks", hours(168)},
        {"week", hours(168)},
        {"weeks", hours(168)},
        {"month", seconds(2'630'016)},
        {"months", seconds(2'630'016)},
        {"yr", seconds(31'557'600)},
        {"yrs", seconds(31'557'600)},
        {"year", seconds(31'557'600)},
        {"years", seconds(31'557'600)},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(parsed(std::string("3") + c.unit), 3 * c.one) << c.unit;
    }
}

TEST(DurationTest, CombinesTermsWithAndWithoutSpaces) {
    EXPECT_EQ(parsed("1h 30m"), minutes(90));
    EXPECT_EQ(parsed("1h30m"), minutes(90));
    EXPECT_EQ(parsed("15 seconds"), seconds(15));
    EXPECT_EQ(parsed("2 hours 5 min 3s"), hours(2) + minutes(5) + seconds(3));
    EXPECT_EQ(parsed("  10s  "), seconds(10));
    EXPECT_EQ(parsed("1s 500ms"), milliseconds(1500));
}

TEST(DurationTest, AcceptsBareZeroAndZeroWithUnit) {
    EXPECT_EQ(parsed("0"), Duration::zero());
    EXPECT_EQ(parsed("0s"), Duration::zero());
}

TEST(DurationTest, UnitsAreCaseSensitive) {
    EXPECT_EQ(parsed("2m"), minutes(2));
    EXPECT_EQ(parsed("2M"), seconds(2 * 2'630'016));
    EXPECT_NE(errorOf("2S").find("unknown time unit 'S'"), std::string::npos);
    EXPECT_NE(errorOf("1H").find("unknown time unit"), std::string::npos);
}

TEST(DurationTest, RejectsEmptyString) {
    EXPECT_NE(errorOf("").find("empty duration"), std::string::npos);
    EXPECT_NE(errorOf("   ").find("empty duration"), std::string::npos);
}

TEST(DurationTest, RejectsNumberWithoutUnit) {
    EXPECT_NE(errorOf("30").find("time unit needed"), std::string::npos);
    EXPECT_NE(errorOf("1h 30").find("time unit needed"), std::string::npos);
}

TEST(DurationTest, RejectsSignsAndDecimals) {
    EXPECT_NE(errorOf("-5s").find("expected a number"), std::string::npos);
    EXPECT_NE(errorOf("+5s").find("expected a number"), std::string::npos);
    EXPECT_NE(errorOf("1.5s").find("decimals are not allowed"), std::string::npos);
}

TEST(DurationTest, RejectsUnknownUnitsAndGarbage) {
    EXPECT_NE(errorOf("5 fortnights").find("unknown time unit 'fortnights'"), std::string::npos);
    EXPECT_FALSE(parseDuration("s").ok());
    EXPECT_FALSE(parseDuration("5s x").ok());
    EXPECT_FALSE(parseDuration("five seconds").ok());
}

TEST(DurationTest, ReportsOffsetOfTheBadPart) {
    EXPECT_NE(errorOf("1h 30q").find("offset 5"), std::string::npos);
}

TEST(DurationTest, RejectsValuesThatOverflow) {
    EXPECT_NE(errorOf("300y").find("too large"), std::string::npos);
    EXPECT_NE(errorOf("99999999999999999999s").find("too large"), std::string::npos);
    EXPECT_EQ(parsed("292y"), seconds(292LL * 31'557'600));
}

TEST(DurationTest, FormatsLargestUnitsFirst) {
    EXPECT_EQ(formatDuration(minutes(90)), "1h 30m");
    EXPECT_EQ(formatDuration(milliseconds(1500)), "1s 500ms");
    EXPECT_EQ(formatDuration(Duration::zero()), "0s");
    EXPECT_EQ(formatDuration(hours(48) + nanoseconds(3)), "2d 3ns");
    EXPECT_EQ(formatDuration(-seconds(5)), "-5s");
}

TEST(DurationTest, FormatRoundTripsThroughParse) {
    for (Duration d : {Duration(seconds(2'630'016)), Duration(seconds(31'557'600)),
                       Duration(microseconds(1'234'567)), Duration(hours(1000) + seconds(1))}) {
        EXPECT_EQ(parsed(formatDuration(d)), d) << formatDuration(d);
    }
}

}  // namespace
}  // namespace photon::core
