// SPDX-License-Identifier: Apache-2.0
// humantime duration parser and printer.
#include "core/duration.h"

#include <cstdint>

namespace photon::core {

namespace {

struct Unit {
    std::string_view name;
    int64_t nanos;
};

constexpr int64_t kNs = 1;
constexpr int64_t kUs = 1000 * kNs;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kSec = 1000 * kMs;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kWeek = 7 * kDay;
constexpr int64_t kMonth = 2'630'016 * kSec;
constexpr int64_t kYear = 31'557'600 * kSec;

constexpr Unit kUnits[] = {
    {"ns", kNs},        {"nsec", kNs},    {"nanos", kNs},    {"us", kUs},        {"usec", kUs},
    {"\xC2\xB5s", kUs},  // U+00B5 MICRO SIGN
    {"\xCE\xBCs", kUs},  // U+03BC GREEK SMALL MU
    {"ms", kMs},        {"msec", kMs},    {"millis", kMs},   {"s", kSec},        {"sec", kSec},
    {"secs", kSec},     {"second", kSec}, {"seconds", kSec}, {"m", kMin},        {"min", kMin},
    {"mins", kMin},     {"minute", kMin}, {"minutes", kMin}, {"h", kHour},       {"hr", kHour},
    {"hrs", kHour},     {"hour", kHour},  {"hours", kHour},  {"d", kDay},        {"day", kDay},
    {"days", kDay},     {"w", kWeek},     {"wk", kWeek},     {"wks", kWeek},     {"week", kWeek},
    {"weeks", kWeek},   {"M", kMonth},    {"month", kMonth}, {"months", kMonth}, {"y", kYear},
    {"yr", kYear},      {"yrs", kYear},   {"year", kYear},   {"years", kYear},
};

bool isSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }

std::string quoted(std::string_view s) {
    std::string out = "'";
    out.append(s);
    out += '\'';
    return out;
}

}  // namespace

Result<Duration> parseDuration(std::string_view text) {
    size_t b = 0;
    size_t e = text.size();
    while (b < e && isSpace(text[b])) {
        ++b;
    }
    while (e > b && isSpace(text[e - 1])) {
        --e;
    }
    std::string_view s = text.substr(b, e - b);
    if (s.empty()) {
        return fail("empty duration: expected e.g. '30s', '5m' or '1h 30m'");
    }
    if (s == "0") {
        return Duration::zero();
    }
    int64_t total = 0;
    size_t i = 0;
    while (i < s.size()) {
        if (!isDigit(s[i])) {
            return fail("invalid duration ", quoted(text), ": expected a number at offset ",
                        std::to_string(b + i), " (no signs or decimals)");
        }
        int64_t n = 0;
        size_t num_start = i;
        while (i < s.size() && isDigit(s[i])) {
            if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, s[i] - '0', &n)) {
                return fail("invalid duration ", quoted(text), ": number at offset ",
                            std::to_string(b + num_start), " is too large");
            }
            ++i;
        }
        while (i < s.size() && isSpace(s[i])) {
            ++i;
        }
        size_t unit_start = i;
        while (i < s.size() && !isSpace(s[i]) && !isDigit(s[i])) {
            ++i;
        }
        std::string_view unit = s.substr(unit_start, i - unit_start);
        if (unit.empty()) {
            return fail("invalid duration ", quoted(text), ": time unit needed after ",
                        std::string(s.substr(num_start, i - num_start)),
                        " (e.g. 's', 'ms', 'm', 'h')");
        }
        const Unit* found = nullptr;
        for (const Unit& u : kUnits) {
            if (u.name == unit) {
                found = &u;
                break;
            }
        }
        if (found == nullptr) {
            if (unit.find_first_of(".,") != std::string_view::npos) {
                return fail("invalid duration ", quoted(text),
                            ": decimals are not allowed (write '1s 500ms' instead of '1.5s')");
            }
            return fail("invalid duration ", quoted(text), ": unknown time unit ", quoted(unit),
                        " at offset ", std::to_string(b + unit_start),
                        " (known: ns us ms s m h d w M y and their long forms)");
        }
        int64_t part = 0;
        if (__builtin_mul_overflow(n, found->nanos, &part) ||
            __builtin_add_overflow(total, part, &total)) {
            return fail("invalid duration ", quoted(text), ": value is too large (max ~292 years)");
        }
        while (i < s.size() && isSpace(s[i])) {
            ++i;
        }
    }
    return Duration(total);
}

std::string formatDuration(Duration d) {
    int64_t v = d.count();
    if (v == 0) {
        return "0s";
    }
    std::string out;
    uint64_t rest;
    if (v < 0) {
        out += '-';
        rest = static_cast<uint64_t>(-(v + 1)) + 1;  // well-defined for INT64_MIN
    } else {
        rest = static_cast<uint64_t>(v);
    }
    static constexpr Unit kPrint[] = {{"d", kDay}, {"h", kHour}, {"m", kMin}, {"s", kSec},
                                      {"ms", kMs}, {"us", kUs},  {"ns", kNs}};
    bool first = true;
    for (const Unit& u : kPrint) {
        uint64_t step = static_cast<uint64_t>(u.nanos);
        if (rest >= step) {
            if (!first) {
                out += ' ';
            }
            out += std::to_string(rest / step);
            out.append(u.name);
            rest %= step;
            first = false;
        }
    }
    return out;
}

}  // namespace photon::core
