// SPDX-License-Identifier: Apache-2.0
#include "modules/cache/rfc9111.h"

#include <gtest/gtest.h>

#include <string>

namespace photon::mod::cache {
namespace {

constexpr int64_t k1994 = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(HttpDateTest, TheThreeFormsOfRfc9110) {
    EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), k1994);
    EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), k1994);
    EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), k1994);
    EXPECT_EQ(parseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    EXPECT_EQ(parseHttpDate("Tue, 29 Feb 2028 23:59:59 GMT"), 1835481599);
    EXPECT_EQ(parseHttpDate("Fri, 31 Dec 9999 23:59:59 GMT"), 253402300799);
}

TEST(HttpDateTest, RefusesWhatIsNotAnHttpDate) {
    for (const char* bad : {
             "",
             "Sun, 06 Nov 1994 08:49:37 UTC",   // not GMT
             "Mon, 06 Nov 1994 08:49:37 GMT",   // wrong day name
             "Sun, 6 Nov 1994 08:49:37 GMT",    // one-digit day in IMF-fixdate
             "Sun, 06 nov 1994 08:49:37 GMT",   // month names are case-sensitive
             "Thu, 30 Feb 2027 00:00:00 GMT",   // no such day
             "Sun, 06 Nov 1994 24:00:00 GMT",   // no such hour
             "Sun, 06 Nov 1994 08:49:37 GMT ",  // trailing space
             "Sun Nov 06 08:49:37 1994 x",      // asctime of the wrong length
             "Sunday, 06-Nov-1994 08:49:37 GMT",
             "Sund, 06-Nov-94 08:49:37 GMT",
             "0",
             "-1",
         }) {
        EXPECT_FALSE(parseHttpDate(bad).has_value()) << bad;
    }
}

TEST(HttpDateTest, FormatsImfFixdateAndRoundTrips) {
    char buf[29];
    ASSERT_EQ(formatHttpDate(k1994, buf), 29u);
    EXPECT_EQ(std::string(buf, 29), "Sun, 06 Nov 1994 08:49:37 GMT");
    for (int64_t t : {int64_t{0}, int64_t{951782400}, int64_t{1798761599}, int64_t{4102444800}}) {
        formatHttpDate(t, buf);
        EXPECT_EQ(parseHttpDate(std::string_view(buf, 29)), t) << std::string(buf, 29);
    }
}

CacheControl cc(const char* v) {
    CacheControl c;
    c.parse(v);
    return c;
}

TEST(CacheControlTest, Directives) {
    CacheControl c = cc("public, max-age=60, s-maxage=\"120\", must-revalidate, NO-TRANSFORM");
    EXPECT_TRUE(c.public_);
    EXPECT_EQ(c.max_age, 60);
    EXPECT_EQ(c.s_maxage, 120);
    EXPECT_TRUE(c.must_revalidate);
    EXPECT_TRUE(c.no_transform);
    EXPECT_FALSE(c.conflicting);
    c = cc("no-cache=\"Set-Cookie, X-Foo\", private=\"X-Bar\", no-store");
    EXPECT_TRUE(c.no_cache);
    EXPECT_TRUE(c.private_);
    EXPECT_TRUE(c.no_store);
    c = cc("max-stale, min-fresh=5, only-if-cached, stale-while-revalidate=30, stale-if-error=600");
    EXPECT_EQ(c.max_stale, CacheControl::kAny);
    EXPECT_EQ(c.min_fresh, 5);
    EXPECT_TRUE(c.only_if_cached);
    EXPECT_EQ(c.stale_while_revalidate, 30);
    EXPECT_EQ(c.stale_if_error, 600);
    EXPECT_EQ(cc("max-stale=10").max_stale, 10);
    EXPECT_EQ(cc("x-unknown=\"a,b\", max-age=7").max_age, 7);  // commas inside quotes
}

TEST(CacheControlTest, MalformedAndRepeatedValuesAreConservative) {
    EXPECT_EQ(cc("max-age=abc").max_age, 0);  // stale, not absent
    EXPECT_EQ(cc("max-age").max_age, 0);
    EXPECT_EQ(cc("min-fresh=x").min_fresh, CacheControl::kAbsent);
    EXPECT_EQ(cc("max-age=99999999999999").max_age, 2147483648LL);
    CacheControl c;
    c.parse("max-age=60");
    c.parse("max-age=30");  // a second field line
    EXPECT_TRUE(c.conflicting);
    EXPECT_EQ(c.max_age, 30);
    EXPECT_EQ(freshnessLifetime(c, std::nullopt, false, std::nullopt, 300, 1000), 0);
    c = cc("max-age=60, max-age=60");  // the same value twice is no conflict
    EXPECT_FALSE(c.conflicting);
}

TEST(FreshnessTest, PrecedenceAndExpires) {
    const int64_t now = 1000000;
    EXPECT_EQ(freshnessLifetime(cc("max-age=10, s-maxage=20"), now, true, now + 99, 300, now), 20);
    EXPECT_EQ(freshnessLifetime(cc("max-age=10"), now, true, now + 99, 300, now), 10);
    EXPECT_EQ(freshnessLifetime(cc(""), now - 5, true, now + 95, 300, now), 100);  // Expires − Date
    EXPECT_EQ(freshnessLifetime(cc(""), std::nullopt, true, now + 40, 300, now), 40);
    EXPECT_EQ(freshnessLifetime(cc(""), now, true, now - 40, 300, now), 0);         // in the past
    EXPECT_EQ(freshnessLifetime(cc(""), now, true, std::nullopt, 300, now), 0);     // invalid
    EXPECT_EQ(freshnessLifetime(cc(""), now, false, std::nullopt, 300, now), 300);  // heuristic
}

TEST(FreshnessTest, CurrentAge) {
    // Date 10 s before receipt, Age 3, 2 s of response delay, 5 s in the cache.
    EXPECT_EQ(currentAge(int64_t{990}, 3, 998, 1000, 1005), 10 + 5);
    // An upstream Age larger than the apparent age wins (corrected for the delay).
    EXPECT_EQ(currentAge(int64_t{999}, 30, 998, 1000, 1000), 32);
    // No Date, no Age: only the delay and the time in the cache.
    EXPECT_EQ(currentAge(std::nullopt, -1, 999, 1000, 1007), 8);
    // A Date in the future does not make the age negative.
    EXPECT_EQ(currentAge(int64_t{2000}, -1, 1000, 1000, 1000), 0);
    EXPECT_EQ(parseDeltaSeconds("120"), 120);
    EXPECT_EQ(parseDeltaSeconds("-1"), -1);
    EXPECT_EQ(parseDeltaSeconds("1.5"), -1);
    EXPECT_EQ(parseDeltaSeconds(""), -1);
}

TEST(StoreTest, Rules) {
    CacheControl none;
    StoreInput in;
    in.status = 200;
    in.request = &none;
    in.response = &none;
    in.max_body_size = 1000;
    EXPECT_EQ(storeDecision(in), StoreDecision::Store);
    CacheControl no_store = cc("no-store");
    in.request = &no_store;
    EXPECT_EQ(storeDecision(in), StoreDecision::NoStore);
    in.request = &none;
    in.response = &no_store;
    EXPECT_EQ(storeDecision(in), StoreDecision::NoStore);
    CacheControl priv = cc("private, max-age=60");
    in.response = &priv;
    EXPECT_EQ(storeDecision(in), StoreDecision::Private);
    in.response = &none;
    in.request_authorization = true;
    EXPECT_EQ(storeDecision(in), StoreDecision::Authorization);
    for (const char* allows : {"public", "s-maxage=60", "must-revalidate"}) {
        CacheControl a = cc(allows);
        in.response = &a;
        EXPECT_EQ(storeDecision(in), StoreDecision::Store) << allows;
    }
    in.response = &none;
    in.cache_authorized = true;
    EXPECT_EQ(storeDecision(in), StoreDecision::Store);
    in.request_authorization = false;
    in.vary_star = true;
    EXPECT_EQ(storeDecision(in), StoreDecision::VaryStar);
    in.vary_star = false;
    in.set_cookie = true;
    EXPECT_EQ(storeDecision(in), StoreDecision::SetCookie);
    in.set_cookie = false;
    in.body_length = 1001;
    EXPECT_EQ(storeDecision(in), StoreDecision::TooLarge);
    in.body_length = 10;
    in.status = 500;
    EXPECT_EQ(storeDecision(in), StoreDecision::Status);
    CacheControl explicit_age = cc("max-age=5");
    in.response = &explicit_age;
    EXPECT_EQ(storeDecision(in), StoreDecision::Store);  // explicit freshness allows it
    in.status = 206;
    EXPECT_EQ(storeDecision(in), StoreDecision::Store);  // heuristically cacheable anyway
    for (int s : {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}) {
        EXPECT_TRUE(heuristicallyCacheable(s)) << s;
    }
    for (int s : {201, 302, 304, 307, 400, 403, 500, 502, 503}) {
        EXPECT_FALSE(heuristicallyCacheable(s)) << s;
    }
}

TEST(ConditionalTest, WeakComparison) {
    EXPECT_TRUE(noneMatchHits("\"abc\"", "\"abc\""));
    EXPECT_TRUE(noneMatchHits("W/\"abc\"", "\"abc\""));
    EXPECT_TRUE(noneMatchHits("\"x\", W/\"abc\"", "W/\"abc\""));
    EXPECT_TRUE(noneMatchHits("*", "\"anything\""));
    EXPECT_TRUE(noneMatchHits("\"a,b\"", "\"a,b\""));  // a tag may hold a comma
    EXPECT_TRUE(noneMatchHits("\"\"", "\"\""));
    EXPECT_FALSE(noneMatchHits("\"abd\"", "\"abc\""));
    EXPECT_FALSE(noneMatchHits("abc", "\"abc\""));       // unquoted: malformed
    EXPECT_FALSE(noneMatchHits("\"abc", "\"abc\""));     // unterminated
    EXPECT_FALSE(noneMatchHits("\"abc\"x", "\"abc\""));  // junk after a tag
    EXPECT_FALSE(noneMatchHits("\"abc\"", "abc"));       // a malformed stored tag
    EXPECT_FALSE(noneMatchHits("", "\"abc\""));
}

}  // namespace
}  // namespace photon::mod::cache
