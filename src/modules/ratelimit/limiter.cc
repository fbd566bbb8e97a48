// SPDX-License-Identifier: Apache-2.0
// The rate_limit module at work: shared tables, key extraction, decisions and their fields.
#include "modules/ratelimit/limiter.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: streaming without allocation
#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "core/http_parser.h"
#include "core/log.h"
#include "modules/ratelimit/redis_store.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "worker/query.h"

namespace photon::mod::ratelimit {

namespace {

// ----- shared tables (master) -----

struct Mapped {
    std::string instance;
    std::string name;  // the segment's name
    uint64_t fingerprint = 0;
    std::unique_ptr<shm::MappedSegment> seg;
    SharedLimit view;
};
std::vector<Mapped> g_current;
// Mappings of earlier configurations: a worker forked from an older proxy model (a respawn
// after a failed reload) still finds its tables mapped. Freed at removeSharedLimits().
std::vector<std::unique_ptr<shm::MappedSegment>> g_retired;

std::string hex16(uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016" PRIx64, v);
    return b;
}

/// What makes two configurations of a limit share their buckets.
uint64_t shapeFingerprint(const core::RateLimitConfig& c, size_t capacity) {
    GcraParams p = GcraParams::make(c.ratePerSecond(), c.burst);
    std::string s = std::to_string(capacity) + "|" + std::to_string(p.interval_us) + "|" +
                    std::to_string(p.tolerance_us) + "|" + std::to_string(p.burst) + "|" +
                    std::to_string(static_cast<int>(c.key.kind)) + "|" + c.key.name + "|" +
                    std::to_string(static_cast<int>(c.scope));
    return XXH3_64bits(s.data(), s.size());
}

// ----- per-request state -----

/// What the HeaderFilter reports: the limit that refused the request or, among the admitting
/// limits that show their fields, the one with the fewest requests left.
struct RateState {
    const LimitConf* reporter = nullptr;
    uint64_t reset_us = 0;
    uint64_t retry_us = 0;
    uint32_t remaining = 0;
    bool refused = false;
};

}  // namespace

void recordDecision(worker::Request& req, const LimitConf& c, const GcraDecision& d, bool refused) {
    auto*& slot = req.slot(c.slot);
    auto* st = static_cast<RateState*>(slot);
    if (st == nullptr) {
        void* mem = req.alloc(sizeof(RateState));
        if (mem == nullptr) {
            return;  // no room: the reply goes out without the advisory fields
        }
        st = new (mem) RateState();
        slot = st;
    }
    if (!refused && st->reporter != nullptr && (st->refused || st->remaining <= d.remaining)) {
        return;
    }
    st->reporter = &c;
    st->refused = refused;
    st->remaining = d.remaining;
    st->reset_us = d.reset_us;
    st->retry_us = d.retry_after_us;
}

namespace {

/// Whole seconds, rounded up; "never" (rate 0) shows as a year.
uint64_t seconds(uint64_t us) {
    constexpr uint64_t kYear = 365ull * 24 * 3600;
    if (us >= kYear * 1'000'000) {
        return kYear;
    }
    return (us + 999'999) / 1'000'000;
}

/// Appends the decimal digits of `v` at `p`; returns the end.
char* putU64(char* p, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

/// `v` as decimal text in the request's arena (empty when the arena is full).
std::string_view arenaNumber(worker::Request& req, uint64_t v) {
    char buf[20];
    char* e = putU64(buf, v);
    return req.copy(std::string_view(buf, static_cast<size_t>(e - buf)));
}

}  // namespace

// ----- shared tables -----

core::Result<void> mapSharedLimits(const core::Config& cfg, std::string_view shm_instance) {
    std::vector<std::pair<std::string, const core::RateLimitConfig*>> want;
    if (cfg.middleware.rate_limiting) {
        want.emplace_back(std::string(), &*cfg.middleware.rate_limiting);
    }
    for (const auto& [n, c] : cfg.middleware.rate_limit_named) {
        want.emplace_back(n, &c);
    }
    std::vector<Mapped> next;
    for (const auto& [instance, c] : want) {
        Mapped m;
        m.instance = instance;
        std::string label = instance.empty() ? "rate_limit" : "rate_limit:" + instance;
        m.name =
            shm::segmentName(shm_instance, "rl-" + hex16(XXH3_64bits(label.data(), label.size())));
        size_t capacity = GcraTable::capacityFor(c->max_keys);
        m.fingerprint = shapeFingerprint(*c, capacity);
        auto same = std::find_if(g_current.begin(), g_current.end(), [&](const Mapped& o) {
            return o.instance == m.instance && o.fingerprint == m.fingerprint && o.seg;
        });
        if (same != g_current.end()) {
            m.seg = std::move(same->seg);  // unchanged: the very same mapping
            m.view = same->view;
            next.push_back(std::move(m));
            continue;
        }
        auto seg =
            shm::MappedSegment::create(m.name, sizeof(RateStatsShm) + GcraTable::bytesFor(capacity),
                                       kRateLayoutVersion, m.fingerprint);
        if (!seg.ok()) {
            // Give back what this call took from the current set.
            for (auto& n : next) {
                for (auto& o : g_current) {
                    if (o.instance == n.instance && !o.seg) {
                        o.seg = std::move(n.seg);
                    }
                }
            }
            return core::fail("rate limit '", label, "': ", seg.error().msg);
        }
        m.seg = std::make_unique<shm::MappedSegment>(std::move(seg.value()));
        m.view.stats = reinterpret_cast<RateStatsShm*>(m.seg->body());
        m.view.slots = reinterpret_cast<RateSlotShm*>(m.seg->body() + sizeof(RateStatsShm));
        m.view.capacity = capacity;
        if (!m.seg->reused()) {
            LOG_INFO("%s: %zu key slots in shared memory (%zu KiB)", label.c_str(), capacity,
                     static_cast<size_t>(m.seg->size() / 1024));
        }
        next.push_back(std::move(m));
    }
    for (auto& o : g_current) {
        if (!o.seg) {
            continue;  // carried over
        }
        bool name_kept = std::any_of(next.begin(), next.end(),
                                     [&](const Mapped& n) { return n.name == o.name; });
        if (!name_kept) {
            shm::MappedSegment::remove(o.name);  // the limit is gone
        }
        g_retired.push_back(std::move(o.seg));
    }
    g_current = std::move(next);
    return {};
}

void removeSharedLimits() {
    for (auto& m : g_current) {
        m.seg.reset();
        shm::MappedSegment::remove(m.name);
    }
    g_current.clear();
    g_retired.clear();
}

const SharedLimit* findSharedLimit(std::string_view instance) {
    for (const auto& m : g_current) {
        if (m.instance == instance) {
            return &m.view;
        }
    }
    return nullptr;
}

uint64_t limitSeed(std::string_view instance, std::string_view route_id) {
    std::string s = "rate_limit:" + std::string(instance);
    if (!route_id.empty()) {
        s.push_back('\0');  // route ids are text: the NUL keeps "a"+"bc" apart from "ab"+"c"
        s.append(route_id);
    }
    return XXH3_64bits(s.data(), s.size());
}

// ----- compiled limit -----

std::unique_ptr<LimitConf> LimitConf::compile(const core::RateLimitConfig& c,
                                              std::string_view instance, std::string_view route_id,
                                              const SharedLimit* shared) {
    using RL = core::RateLimitConfig;
    auto k = std::make_unique<LimitConf>();
    k->params = GcraParams::make(c.ratePerSecond(), c.burst);
    if (shared != nullptr) {
        k->shared = *shared;
    }
    k->seed = limitSeed(instance, c.scope == RL::Scope::Route ? route_id : std::string_view());
    k->kind = c.key.kind;
    k->key_name = c.key.name;
    k->fixed_hash = GcraTable::keyHash(route_id, k->seed);
    // Header values and decoded parameters are never empty, so the empty key is free for the
    // shared bucket of requests without one.
    k->missing_hash = GcraTable::keyHash(std::string_view("\0missing", 8), k->seed);
    k->reject_missing = c.missing_key == RL::MissingKey::Reject;
    k->deny_when_full = c.on_full == RL::OnFull::Deny;
    k->headers = c.headers;
    k->legacy_headers = c.legacy_headers;
    k->redis = c.store == RL::Store::Redis;
    k->on_store_error = c.on_store_error;
    {
        const uint32_t n = std::max<uint32_t>(1, c.instances);
        const uint32_t burst = c.burst == 0 ? 0 : std::max<uint32_t>(1, c.burst / n);
        k->fallback = GcraParams::make(c.ratePerSecond() / n, burst);
    }
    if (c.sync == RL::Sync::Batched) {
        const double per_lease =
            std::ceil(c.ratePerSecond() * std::chrono::duration<double>(c.batch_interval).count());
        k->lease = static_cast<uint32_t>(
            std::clamp(per_lease, 1.0, static_cast<double>(std::max<uint32_t>(1, c.burst))));
        k->lease_us = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(c.batch_interval).count());
    }
    k->policy_name = instance.empty() ? "default" : std::string(instance);
    // RateLimit-Policy: the sustained quota as configured, q requests per w seconds, both whole
    // numbers: 2.5/s is q=5;w=2, 90.5/min q=181;w=120, 0.4/s q=2;w=5.
    uint64_t q = 0;
    uint64_t w = 0;
    const double rate = c.ratePerSecond();
    const uint64_t unit = c.per == RL::Per::Second ? 1 : c.per == RL::Per::Minute ? 60 : 3600;
    for (uint64_t scale = 1; scale <= 1000 && rate > 0; ++scale) {
        const double scaled = c.requests * static_cast<double>(scale);
        if (std::fabs(scaled - std::round(scaled)) < 1e-9 * scaled && std::round(scaled) >= 1) {
            q = static_cast<uint64_t>(std::llround(scaled));
            w = unit * scale;
            break;
        }
    }
    if (rate > 0 && q == 0) {  // no small fraction (0.3333): the nearest whole figures
        if (c.requests >= 1) {
            q = static_cast<uint64_t>(std::llround(c.requests));
            w = unit;
        } else {
            q = 1;
            w = static_cast<uint64_t>(std::llround(static_cast<double>(unit) / c.requests));
        }
    }
    k->policy = "\"" + k->policy_name + "\";q=" + std::to_string(rate > 0 ? q : c.burst);
    if (rate > 0) {
        k->policy += ";w=" + std::to_string(w);
    }
    k->limit_text = std::to_string(c.burst);
    using K = core::RateLimitKey::Kind;
    k->missing_reason = c.key.kind == K::Header
                            ? "missing rate-limit key: header " + c.key.name
                            : "missing rate-limit key: query parameter " + c.key.name;
    return k;
}

// ----- keys -----

uint64_t queryParamHash(std::string_view query, std::string_view name, uint64_t seed, bool& found) {
    found = false;
    uint64_t h = 0;
    worker::forEachQueryParam(query, [&](std::string_view raw_name, std::string_view raw, bool) {
        if (!worker::decodedEquals(raw_name, name)) {
            return true;
        }
        if (raw.empty()) {
            return false;  // the first occurrence decides, and it is empty: missing
        }
        XXH3_state_t st;
        XXH3_64bits_reset_withSeed(&st, seed);
        worker::formDecode(raw, [&](const char* d, size_t n) { XXH3_64bits_update(&st, d, n); });
        h = XXH3_64bits_digest(&st);
        h = h == 0 ? 1 : h;  // as GcraTable::keyHash
        found = true;
        return false;
    });
    return h;
}

uint64_t requestKeyHash(const worker::Request& req, const LimitConf& c, bool& found) {
    using K = core::RateLimitKey::Kind;
    found = true;
    switch (c.kind) {
        case K::Ip:
            return GcraTable::keyHash(req.client_ip, c.seed);
        case K::Route:
            return c.fixed_hash;
        case K::Header: {
            const auto& hs = req.head->headers;
            for (size_t i = 0; i < hs.size(); ++i) {
                if (core::http::equalsIgnoreCase(hs[i].name, c.key_name)) {
                    if (hs[i].value.empty()) {
                        break;  // the first field decides, and it is empty: missing
                    }
                    return GcraTable::keyHash(hs[i].value, c.seed);
                }
            }
            found = false;
            return 0;
        }
        case K::QueryParam:
            return queryParamHash(req.head->query, c.key_name, c.seed, found);
    }
    found = false;
    return 0;
}

// ----- handlers -----

worker::Verdict accessHandler(worker::Request& req, const void* conf) {
    const auto& c = *static_cast<const LimitConf*>(conf);
    if (c.shared.slots == nullptr) {
        return req.fail(503, "rate limit state is not available");
    }
    bool found = false;
    uint64_t h = requestKeyHash(req, c, found);
    if (!found) {
        if (c.reject_missing) {
            return req.fail(400, c.missing_reason);
        }
        h = c.missing_hash;
    }
    if (c.redis) {
        return redisDecide(req, c, h);
    }
    return decideLocal(req, c, h, c.params);
}

worker::Verdict decideLocal(worker::Request& req, const LimitConf& c, uint64_t h,
                            const GcraParams& params) {
    GcraTable table(c.shared.slots, c.shared.capacity);
    const uint64_t now = shm::monotonicMicros();
    GcraDecision d = table.decide(h, now, params);
    switch (d.kind) {
        case GcraDecision::Kind::Allowed:
            if (c.headers) {
                recordDecision(req, c, d, false);
            }
            return worker::Verdict::Next;
        case GcraDecision::Kind::Limited:
            // Relaxed: a statistic, ordered with nothing.
            c.shared.stats->limited.fetchAdd(1, std::memory_order_relaxed);
            recordDecision(req, c, d, true);
            return req.fail(429, "rate limit exceeded");
        case GcraDecision::Kind::Contended: {
            // The key's word kept changing under bounded retries: each change was another
            // worker's admission, so the key is hot. Refused like a limited request (never
            // admitted unchecked), counted.
            c.shared.stats->contended.fetchAdd(1, std::memory_order_relaxed);  // a statistic
            d.remaining = 0;
            d.retry_after_us = 1'000'000;
            d.reset_us = 1'000'000;
            recordDecision(req, c, d, true);
            return req.fail(429, "rate limit exceeded");
        }
        case GcraDecision::Kind::TableFull:
            break;
    }
    c.shared.stats->table_full.fetchAdd(1, std::memory_order_relaxed);  // a statistic
    if (now - c.last_full_log_us >= 10'000'000 || c.last_full_log_us == 0) {
        c.last_full_log_us = now;
        LOG_WARN("rate limit '%s': no slot for a new key (key table full, %zu slots); %s",
                 c.policy_name.c_str(), c.shared.capacity,
                 c.deny_when_full ? "refusing new keys (on_full: deny)"
                                  : "admitting new keys unlimited (on_full: allow)");
    }
    if (!c.deny_when_full) {
        return worker::Verdict::Next;
    }
    d.remaining = 0;
    d.retry_after_us = 1'000'000;
    d.reset_us = 1'000'000;
    recordDecision(req, c, d, true);
    return req.fail(429, "rate limit exceeded");
}

worker::Verdict headerHandler(worker::Request& req, const void* conf) {
    const auto& c = *static_cast<const LimitConf*>(conf);
    const auto* st = static_cast<const RateState*>(req.slot(c.slot));
    if (st == nullptr || st->reporter != &c) {
        return worker::Verdict::Next;
    }
    auto& h = req.responseHeaders();
    const uint64_t reset = seconds(st->reset_us);
    if (st->refused) {
        std::string_view retry = arenaNumber(req, std::max<uint64_t>(1, seconds(st->retry_us)));
        if (!retry.empty()) {
            worker::setHeader(h, "Retry-After", retry);
        }
    }
    // RateLimit: "name";r=N;t=S
    char buf[160];
    char* p = buf;
    const size_t name_len = std::min<size_t>(c.policy_name.size(), 100);
    *p++ = '"';
    std::memcpy(p, c.policy_name.data(), name_len);
    p += name_len;
    std::memcpy(p, "\";r=", 4);
    p = putU64(p + 4, st->remaining);
    std::memcpy(p, ";t=", 3);
    p = putU64(p + 3, reset);
    std::string_view state = req.copy(std::string_view(buf, static_cast<size_t>(p - buf)));
    // The upstream's own RateLimit fields stay (the fields are lists; both limits apply).
    worker::addHeader(h, "RateLimit-Policy", c.policy);
    if (!state.empty()) {
        worker::addHeader(h, "RateLimit", state);
    }
    if (c.legacy_headers) {
        std::string_view remaining = arenaNumber(req, st->remaining);
        std::string_view reset_text = arenaNumber(req, reset);
        worker::setHeader(h, "X-RateLimit-Limit", c.limit_text);
        if (!remaining.empty() && !reset_text.empty()) {
            worker::setHeader(h, "X-RateLimit-Remaining", remaining);
            worker::setHeader(h, "X-RateLimit-Reset", reset_text);
        }
    }
    return worker::Verdict::Next;
}

}  // namespace photon::mod::ratelimit
