// SPDX-License-Identifier: Apache-2.0
#include "modules/cache/rfc9111.h"

#include <algorithm>
#include <ctime>

#include "core/http_parser.h"

namespace photon::mod::cache {

namespace {

using core::http::equalsIgnoreCase;
using core::http::trimOws;

constexpr std::string_view kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::string_view kLongDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr int64_t kDeltaMax = 2147483648LL;  // 2^31 (RFC 9111 §1.2.2)

/// Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int daysInMonth(int64_t y, unsigned m) {
    static const int kDim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDim[m - 1];
}

bool digits(std::string_view s, size_t n, int& out) {
    if (s.size() < n) {
        return false;
    }
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

int monthIndex(std::string_view s) {
    for (int i = 0; i < 12; ++i) {
        if (s == kMonths[i]) {
            return i + 1;
        }
    }
    return 0;
}

/// "hh:mm:ss" at the front of `s`.
bool timeOfDay(std::string_view s, int& h, int& mi, int& se) {
    return s.size() >= 8 && digits(s, 2, h) && s[2] == ':' && digits(s.substr(3), 2, mi) &&
           s[5] == ':' && digits(s.substr(6), 2, se) && h < 24 && mi < 60 && se < 61;
}

std::optional<int64_t> assemble(int64_t year, unsigned month, int day, int h, int mi, int se,
                                int weekday) {
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
        return std::nullopt;
    }
    int64_t days = daysFromCivil(year, month, static_cast<unsigned>(day));
    int wd = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
    if (wd != weekday) {
        return std::nullopt;
    }
    return days * 86400 + h * 3600 + mi * 60 + std::min(se, 59);
}

}  // namespace

std::optional<int64_t> parseHttpDate(std::string_view s) {
    int day = 0, h = 0, mi = 0, se = 0, year = 0;
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (s.size() == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' &&
        s[16] == ' ' && s.substr(25) == " GMT") {
        int wd = -1;
        for (int i = 0; i < 7; ++i) {
            wd = s.substr(0, 3) == kDays[i] ? i : wd;
        }
        int month = monthIndex(s.substr(8, 3));
        if (wd < 0 || month == 0 || !digits(s.substr(5), 2, day) ||
            !digits(s.substr(12), 4, year) || !timeOfDay(s.substr(17), h, mi, se)) {
            return std::nullopt;
        }
        return assemble(year, static_cast<unsigned>(month), day, h, mi, se, wd);
    }
    // asctime: "Sun Nov  6 08:49:37 1994"
    if (s.size() == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ') {
        int wd = -1;
        for (int i = 0; i < 7; ++i) {
            wd = s.substr(0, 3) == kDays[i] ? i : wd;
        }
        int month = monthIndex(s.substr(4, 3));
        std::string_view d = s.substr(8, 2);
        if (d[0] == ' ') {
            if (!digits(d.substr(1), 1, day)) {
                return std::nullopt;
            }
        } else if (!digits(d, 2, day)) {
            return std::nullopt;
        }
        if (wd < 0 || month == 0 || !timeOfDay(s.substr(11), h, mi, se) ||
            !digits(s.substr(20), 4, year)) {
            return std::nullopt;
        }
        return assemble(year, static_cast<unsigned>(month), day, h, mi, se, wd);
    }
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    size_t comma = s.find(',');
    if (comma != std::string_view::npos && s.size() == comma + 24 && s[comma + 1] == ' ' &&
        s[comma + 4] == '-' && s[comma + 8] == '-' && s[comma + 11] == ' ' &&
        s.substr(comma + 20) == " GMT") {
        int wd = -1;
        for (int i = 0; i < 7; ++i) {
            wd = s.substr(0, comma) == kLongDays[i] ? i : wd;
        }
        int month = monthIndex(s.substr(comma + 5, 3));
        int yy = 0;
        if (wd < 0 || month == 0 || !digits(s.substr(comma + 2), 2, day) ||
            !digits(s.substr(comma + 9), 2, yy) || !timeOfDay(s.substr(comma + 12), h, mi, se)) {
            return std::nullopt;
        }
        // A two-digit year more than 50 years ahead is the most recent past one (RFC 9110).
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&now, &tm);
        int this_year = tm.tm_year + 1900;
        int64_t y = this_year - this_year % 100 + yy;
        if (y > this_year + 50) {
            y -= 100;
        }
        return assemble(y, static_cast<unsigned>(month), day, h, mi, se, wd);
    }
    return std::nullopt;
}

size_t formatHttpDate(int64_t t, char out[29]) {
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    // civil_from_days
    int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2 ? 1 : 0;
    int wd = static_cast<int>(((days % 7) + 11) % 7);
    auto two = [](char* p, int v) {
        p[0] = static_cast<char>('0' + v / 10);
        p[1] = static_cast<char>('0' + v % 10);
    };
    std::copy(kDays[wd].begin(), kDays[wd].end(), out);
    out[3] = ',';
    out[4] = ' ';
    two(out + 5, static_cast<int>(d));
    out[7] = ' ';
    std::copy(kMonths[m - 1].begin(), kMonths[m - 1].end(), out + 8);
    out[11] = ' ';
    int yy = static_cast<int>(std::clamp<int64_t>(y, 0, 9999));
    two(out + 12, yy / 100);
    two(out + 14, yy % 100);
    out[16] = ' ';
    two(out + 17, static_cast<int>(secs / 3600));
    out[19] = ':';
    two(out + 20, static_cast<int>(secs / 60 % 60));
    out[22] = ':';
    two(out + 23, static_cast<int>(secs % 60));
    std::copy_n(" GMT", 4, out + 25);
    return 29;
}

int64_t parseDeltaSeconds(std::string_view s) {
    if (s.empty()) {
        return -1;
    }
    int64_t v = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') {
            return -1;
        }
        v = std::min<int64_t>(v * 10 + (ch - '0'), kDeltaMax);
    }
    return v;
}

void CacheControl::parse(std::string_view value) {
    size_t i = 0;
    while (i < value.size()) {
        // One directive: token [ "=" ( token / quoted-string ) ], up to the next comma outside
        // quotes.
        size_t start = i;
        bool quoted = false;
        while (i < value.size() && (quoted || value[i] != ',')) {
            if (value[i] == '"' && (i == 0 || value[i - 1] != '\\')) {
                quoted = !quoted;
            }
            ++i;
        }
        std::string_view d = trimOws(value.substr(start, i - start));
        ++i;
        if (d.empty()) {
            continue;
        }
        std::string_view name = d;
        std::string_view arg;
        bool has_arg = false;
        if (size_t eq = d.find('='); eq != std::string_view::npos) {
            name = trimOws(d.substr(0, eq));
            arg = trimOws(d.substr(eq + 1));
            has_arg = true;
            if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') {
                arg = arg.substr(1, arg.size() - 2);
            }
        }
        auto delta = [&](int64_t& field, bool zero_when_bad) {
            int64_t v = has_arg ? parseDeltaSeconds(arg) : -1;
            if (v < 0) {
                v = zero_when_bad ? 0 : kAbsent;
            }
            if (field != kAbsent && v != field) {
                conflicting = true;
            }
            if (field == kAbsent || v < field) {
                field = v;  // the smaller of two values: the conservative one
            }
        };
        if (equalsIgnoreCase(name, "no-store")) {
            no_store = true;
        } else if (equalsIgnoreCase(name, "no-cache")) {
            no_cache = true;
        } else if (equalsIgnoreCase(name, "private")) {
            private_ = true;
        } else if (equalsIgnoreCase(name, "public")) {
            public_ = true;
        } else if (equalsIgnoreCase(name, "must-revalidate")) {
            must_revalidate = true;
        } else if (equalsIgnoreCase(name, "proxy-revalidate")) {
            proxy_revalidate = true;
        } else if (equalsIgnoreCase(name, "only-if-cached")) {
            only_if_cached = true;
        } else if (equalsIgnoreCase(name, "no-transform")) {
            no_transform = true;
        } else if (equalsIgnoreCase(name, "immutable")) {
            immutable = true;
        } else if (equalsIgnoreCase(name, "max-age")) {
            delta(max_age, true);
        } else if (equalsIgnoreCase(name, "s-maxage")) {
            delta(s_maxage, true);
        } else if (equalsIgnoreCase(name, "max-stale")) {
            if (!has_arg) {
                max_stale = kAny;
            } else if (max_stale != kAny) {
                delta(max_stale, false);
            }
        } else if (equalsIgnoreCase(name, "min-fresh")) {
            delta(min_fresh, false);
        } else if (equalsIgnoreCase(name, "stale-while-revalidate")) {
            delta(stale_while_revalidate, false);
        } else if (equalsIgnoreCase(name, "stale-if-error")) {
            delta(stale_if_error, false);
        }
    }
}

int64_t freshnessLifetime(const CacheControl& cc, std::optional<int64_t> date, bool has_expires,
                          std::optional<int64_t> expires, int64_t heuristic,
                          int64_t response_time) {
    if (cc.conflicting) {
        return 0;
    }
    if (cc.s_maxage != CacheControl::kAbsent) {
        return cc.s_maxage;
    }
    if (cc.max_age != CacheControl::kAbsent) {
        return cc.max_age;
    }
    if (has_expires) {
        if (!expires) {
            return 0;  // an invalid Expires means "already expired" (§5.3)
        }
        return std::max<int64_t>(0, *expires - date.value_or(response_time));
    }
    return std::max<int64_t>(0, heuristic);
}

int64_t currentAge(std::optional<int64_t> date, int64_t age_header, int64_t request_time,
                   int64_t response_time, int64_t now) {
    int64_t apparent = date ? std::max<int64_t>(0, response_time - *date) : 0;
    int64_t delay = std::max<int64_t>(0, response_time - request_time);
    int64_t corrected_age = (age_header < 0 ? 0 : age_header) + delay;
    int64_t initial = std::max(apparent, corrected_age);
    return initial + std::max<int64_t>(0, now - response_time);
}

bool heuristicallyCacheable(int status) {
    switch (status) {
        case 200:
        case 203:
        case 204:
        case 206:
        case 300:
        case 301:
        case 308:
        case 404:
        case 405:
        case 410:
        case 414:
        case 501:
            return true;
        default:
            return false;
    }
}

StoreDecision storeDecision(const StoreInput& in) {
    const CacheControl none;
    const CacheControl& req = in.request != nullptr ? *in.request : none;
    const CacheControl& resp = in.response != nullptr ? *in.response : none;
    if (req.no_store || resp.no_store) {
        return StoreDecision::NoStore;
    }
    if (resp.private_) {
        return StoreDecision::Private;
    }
    if (in.request_authorization && !in.cache_authorized && !resp.public_ &&
        resp.s_maxage == CacheControl::kAbsent && !resp.must_revalidate) {
        return StoreDecision::Authorization;  // RFC 9111 §3.5
    }
    if (in.vary_star) {
        return StoreDecision::VaryStar;
    }
    if (in.set_cookie) {
        return StoreDecision::SetCookie;
    }
    bool explicit_freshness = resp.max_age != CacheControl::kAbsent ||
                              resp.s_maxage != CacheControl::kAbsent || in.has_expires ||
                              resp.public_;
    if (!heuristicallyCacheable(in.status) &&
        !(explicit_freshness && in.status >= 200 && in.status < 600 && in.status != 206)) {
        return StoreDecision::Status;
    }
    if (in.body_length > in.max_body_size) {
        return StoreDecision::TooLarge;
    }
    return StoreDecision::Store;
}

bool noneMatchHits(std::string_view list, std::string_view etag) {
    list = trimOws(list);
    if (list == "*") {
        return true;
    }
    // The stored tag's opaque part, quotes included (so "" is a valid, empty tag).
    std::string_view stored = trimOws(etag);
    if (stored.size() >= 2 && stored[0] == 'W' && stored[1] == '/') {
        stored.remove_prefix(2);
    }
    if (stored.size() < 2 || stored.front() != '"' || stored.back() != '"' ||
        stored.substr(1, stored.size() - 2).find('"') != std::string_view::npos) {
        return false;
    }
    // #entity-tag, read in order (a tag may itself contain commas).
    size_t i = 0;
    bool hit = false;
    while (i < list.size()) {
        char ch = list[i];
        if (ch == ' ' || ch == '\t' || ch == ',') {
            ++i;
            continue;
        }
        if (ch == 'W' && i + 1 < list.size() && list[i + 1] == '/') {
            i += 2;
        }
        if (i >= list.size() || list[i] != '"') {
            return false;  // malformed: never a match
        }
        size_t close = list.find('"', i + 1);
        if (close == std::string_view::npos) {
            return false;
        }
        hit = hit || list.substr(i, close - i + 1) == stored;
        i = close + 1;
        if (i < list.size() && list[i] != ',' && list[i] != ' ' && list[i] != '\t') {
            return false;
        }
    }
    return hit;
}

}  // namespace photon::mod::cache
