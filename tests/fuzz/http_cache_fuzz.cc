// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the HTTP caching header parsers: HTTP-dates, Cache-Control, delta-seconds
// and If-None-Match lists. Checks that a parsed date formats back to an IMF-fixdate that parses
// to the same instant, that Cache-Control values stay in range, that parsing a value in two
// field lines never loosens it, and that freshness and age are never negative.
// fuzz-sources: src/modules/cache/rfc9111.cc
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "modules/cache/rfc9111.h"

using namespace photon::mod::cache;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view s(reinterpret_cast<const char*>(data), size);

    if (auto t = parseHttpDate(s)) {
        char buf[29];
        formatHttpDate(*t, buf);
        auto again = parseHttpDate(std::string_view(buf, 29));
        FUZZ_CHECK(again.has_value() && *again == *t);
    }

    CacheControl whole;
    whole.parse(s);
    for (int64_t v : {whole.max_age, whole.s_maxage, whole.min_fresh,
                      whole.stale_while_revalidate, whole.stale_if_error}) {
        FUZZ_CHECK(v == CacheControl::kAbsent || (v >= 0 && v <= 2147483648LL));
    }
    FUZZ_CHECK(whole.max_stale >= CacheControl::kAny && whole.max_stale <= 2147483648LL);
    // The same text split over two field lines at the first comma: flags only add up.
    size_t comma = s.find(',');
    if (comma != std::string_view::npos && s.substr(0, comma).find('"') == std::string_view::npos) {
        CacheControl split;
        split.parse(s.substr(0, comma));
        split.parse(s.substr(comma + 1));
        FUZZ_CHECK(split.no_store == whole.no_store);
        FUZZ_CHECK(split.private_ == whole.private_);
    }
    int64_t life = freshnessLifetime(whole, parseHttpDate(s), size % 2 == 0, parseHttpDate(s),
                                     static_cast<int64_t>(size), 1000000);
    FUZZ_CHECK(life >= 0);
    FUZZ_CHECK(currentAge(parseHttpDate(s), parseDeltaSeconds(s), 999990, 1000000, 1000005) >= 5);

    size_t half = size / 2;
    (void)noneMatchHits(s.substr(0, half), s.substr(half));
    FUZZ_CHECK(noneMatchHits("*", s));  // "*" matches any stored tag
    return 0;
}
