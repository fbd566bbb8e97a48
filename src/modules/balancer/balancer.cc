// SPDX-License-Identifier: Apache-2.0
// Balancer pick algorithms over the shared upstream table; everything here is on the request path.
#include "modules/balancer/balancer.h"

#include <algorithm>

namespace photon::mod::balancer {

namespace {

/// Extra counter draws before falling back to a forward scan (RR/WRR), and random draws before
/// counting the eligible set (random).
constexpr int kRotationAttempts = 3;
constexpr int kRandomAttempts = 4;
constexpr uint32_t kLocalNone = UINT32_MAX;
constexpr uint32_t kWords = kMaxUpstreamsPerBackend / 64;

/// Lazily evaluated eligibility of a backend's upstreams (by local index) for one pick. Lives on
/// the stack; only the words covering the backend are cleared.
template <bool kFailOpen>
class Eligibility {
public:
    Eligibility(const UpstreamTable& table, const UpstreamPlan* ups, uint32_t first, uint32_t count,
                const PickContext& ctx, uint64_t mask)
        : table_(table), ups_(ups + first), first_(first), ctx_(ctx), mask_(mask) {
        const uint32_t words = (count + 63) / 64;
        std::fill_n(known_, words, 0);
        std::fill_n(ok_, words, 0);
    }

    /// Cached: each upstream is evaluated at most once per pick.
    bool operator()(uint32_t i) {
        const uint64_t bit = 1ull << (i & 63);
        const uint32_t w = i >> 6;
        if ((known_[w] & bit) != 0) {
            return (ok_[w] & bit) != 0;
        }
        known_[w] |= bit;
        uint64_t load = 0;
        if (evaluate(i, load, false)) {
            ok_[w] |= bit;
            return true;
        }
        ++rejected_;
        return false;
    }

    /// Uncached; always fills `load` with the in-flight sum when it returns true and `need_load`.
    bool evaluate(uint32_t i, uint64_t& load, bool need_load) const {
        const UpstreamPlan& up = ups_[i];
        if (up.weight == 0) {
            return false;
        }
        if (ctx_.exclude != nullptr && ctx_.exclude->contains(first_ + i)) {
            return false;
        }
        const UpstreamRecordShm& rec = table_.record(up.record);
        const uint64_t h = rec.health.load();
        if ((h & kHealthDrained) != 0) {
            return false;
        }
        if constexpr (!kFailOpen) {
            if ((h & kHealthHealthy) == 0 || rec.ejected_until_us.load() > ctx_.now_us) {
                return false;
            }
        }
        if (up.max_connections != 0 || need_load) {
            load = table_.inflightIn(up.record, mask_);
            if (up.max_connections != 0 && load >= up.max_connections) {
                return false;
            }
        }
        return true;
    }

    uint64_t load(uint32_t i) const { return table_.inflightIn(ups_[i].record, mask_); }
    uint32_t weight(uint32_t i) const { return ups_[i].weight; }
    /// Distinct upstreams found ineligible so far.
    uint32_t rejected() const { return rejected_; }

private:
    const UpstreamTable& table_;
    const UpstreamPlan* ups_;
    uint32_t first_;
    const PickContext& ctx_;
    uint64_t mask_;
    uint32_t rejected_ = 0;
    uint64_t known_[kWords];
    uint64_t ok_[kWords];
};

inline uint32_t wrapAdd(uint32_t a, uint32_t b, uint32_t n) {
    const uint32_t s = a + b;
    return s >= n ? s - n : s;
}

/// (load_a + 1) / w_a < (load_b + 1) / w_b without division. Loads and weights are < 2^32.
inline bool lighter(uint64_t load_a, uint32_t w_a, uint64_t load_b, uint32_t w_b) {
    return (load_a + 1) * w_b < (load_b + 1) * w_a;
}

template <typename Elig, typename Rand>
uint32_t drawEligible(Elig& e, uint32_t n, uint32_t skip, Rand& rng) {
    for (int a = 0; a < kRandomAttempts; ++a) {
        const uint32_t i = rng.below(n);
        if (i != skip && e(i)) {
            return i;
        }
    }
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; ++i) {
        count += (i != skip && e(i)) ? 1 : 0;
    }
    if (count == 0) {
        return kLocalNone;
    }
    uint32_t k = rng.below(count);
    for (uint32_t i = 0; i < n; ++i) {
        if (i != skip && e(i)) {
            if (k == 0) {
                return i;
            }
            --k;
        }
    }
    return kLocalNone;
}

}  // namespace

Balancer::Balancer(const BalancerPlan& plan, UpstreamTable& table, uint32_t slot, uint64_t seed)
    : plan_(&plan),
      table_(&table),
      slot_(slot),
      rng_(seed),
      rate_(plan.upstreamCount()),
      panic_(plan.backendCount()) {
    table.pinSlot(slot, plan.generation());
}

bool Balancer::inPanic(uint32_t backend, uint64_t now_us) {
    PanicState& ps = panic_[backend];
    if (ps.checked_us != 0 && now_us >= ps.checked_us && now_us - ps.checked_us < kPanicRecheckUs) {
        return ps.panic;
    }
    ps.checked_us = now_us == 0 ? 1 : now_us;
    ps.panic = belowPanicThreshold(backend, now_us);
    return ps.panic;
}

bool Balancer::belowPanicThreshold(uint32_t backend, uint64_t now_us) const {
    const BackendPlan& bp = plan_->backend(backend);
    if (bp.panic_threshold == 0) {
        return false;
    }
    uint32_t usable = 0, healthy = 0;  // weight > 0 and not drained; of those, healthy and in
    for (uint32_t k = 0; k < bp.count; ++k) {
        const UpstreamPlan& up = plan_->upstream(bp.first + k);
        const UpstreamRecordShm& rec = table_->record(up.record);
        const uint64_t h = rec.health.load();
        if (up.weight == 0 || (h & kHealthDrained) != 0) {
            continue;
        }
        ++usable;
        healthy += (h & kHealthHealthy) != 0 && rec.ejected_until_us.load() <= now_us ? 1 : 0;
    }
    return usable != 0 && uint64_t{healthy} * 100 < uint64_t{bp.panic_threshold} * usable;
}

template <bool kFailOpen>
uint32_t Balancer::pickLocal(const BackendPlan& bp, const PickContext& ctx, uint64_t mask) {
    const uint32_t n = bp.count;
    Eligibility<kFailOpen> e(*table_, plan_->upstreams(), bp.first, n, ctx, mask);

    switch (bp.algorithm) {
        case Algorithm::RoundRobin: {
            uint32_t i = 0;
            for (int a = 0; a < kRotationAttempts; ++a) {
                i = static_cast<uint32_t>(table_->nextRotation(bp.record, kFailOpen) % n);
                if (e(i)) {
                    return i;
                }
                if (e.rejected() >= n) {
                    return kLocalNone;
                }
            }
            for (uint32_t k = 1; k < n; ++k) {
                const uint32_t j = wrapAdd(i, k, n);
                if (e(j)) {
                    return j;
                }
            }
            return kLocalNone;
        }
        case Algorithm::WeightedRoundRobin: {
            const uint32_t period = bp.wrr_period;
            if (period == 0) {
                return kLocalNone;
            }
            const uint16_t* seq = plan_->wrrSequence() + bp.wrr_offset;
            uint32_t pos = 0;
            for (int a = 0; a < kRotationAttempts; ++a) {
                pos = static_cast<uint32_t>(table_->nextRotation(bp.record, kFailOpen) % period);
                if (e(seq[pos])) {
                    return seq[pos];
                }
                if (e.rejected() >= bp.weighted) {
                    return kLocalNone;
                }
            }
            for (uint32_t k = 1; k < period; ++k) {
                const uint32_t i = seq[wrapAdd(pos, k, period)];
                if (e(i)) {
                    return i;
                }
                if (e.rejected() >= bp.weighted) {
                    return kLocalNone;
                }
            }
            return kLocalNone;
        }
        case Algorithm::LeastConnections: {
            const uint32_t start =
                static_cast<uint32_t>(table_->nextRotation(bp.record, kFailOpen) % n);
            uint32_t best = kLocalNone;
            uint64_t best_load = 0;
            uint32_t best_weight = 0;
            for (uint32_t k = 0; k < n; ++k) {
                const uint32_t i = wrapAdd(start, k, n);
                uint64_t load = 0;
                if (!e.evaluate(i, load, true)) {
                    continue;
                }
                const uint32_t w = e.weight(i);
                if (best == kLocalNone || lighter(load, w, best_load, best_weight)) {
                    best = i;
                    best_load = load;
                    best_weight = w;
                }
            }
            return best;
        }
        case Algorithm::IpHash:
        case Algorithm::ConsistentHash: {
            const HashRing& ring = bp.ring;
            if (ring.empty()) {
                return kLocalNone;
            }
            uint64_t h = 0;
            if (bp.algorithm == Algorithm::ConsistentHash && !ctx.hash_key.empty()) {
                h = HashRing::hashKey(ctx.hash_key.data(), ctx.hash_key.size());
            } else {
                h = HashRing::hashKey(ctx.client_addr.data(), ctx.client_addr.size());
            }
            const uint32_t size = ring.size();
            uint32_t p = ring.lowerBound(h);
            for (uint32_t k = 0; k < size; ++k) {
                const uint32_t owner = ring.ownerAt(p);
                if (e(owner)) {
                    return owner;
                }
                if (e.rejected() >= bp.weighted) {
                    return kLocalNone;
                }
                p = p + 1 == size ? 0 : p + 1;
            }
            return kLocalNone;
        }
        case Algorithm::Random: {
            const uint32_t a = drawEligible(e, n, kLocalNone, rng_);
            if (a == kLocalNone || !bp.two_choices) {
                return a;
            }
            const uint32_t b = drawEligible(e, n, a, rng_);
            if (b == kLocalNone) {
                return a;
            }
            return lighter(e.load(b), e.weight(b), e.load(a), e.weight(a)) ? b : a;
        }
    }
    return kLocalNone;
}

Pick Balancer::pick(uint32_t backend, const PickContext& ctx) {
    const BackendPlan& bp = plan_->backend(backend);
    if (bp.count == 0) {
        return {};
    }
    const uint64_t mask = table_->activeSlots();
    if (bp.panic_threshold != 0 && inPanic(backend, ctx.now_us)) {
        // Too few healthy upstreams to carry the load: spread it over all of them (Envoy's
        // panic routing) rather than overload the survivors.
        uint32_t i = pickLocal<true>(bp, ctx, mask);
        if (i != kLocalNone) {
            return Pick{bp.first + i, PickStatus::Panic};
        }
        return {};
    }
    uint32_t i = pickLocal<false>(bp, ctx, mask);
    if (i != kLocalNone) {
        return Pick{bp.first + i, PickStatus::Picked};
    }
    if (bp.fail_open) {
        i = pickLocal<true>(bp, ctx, mask);
        if (i != kLocalNone) {
            return Pick{bp.first + i, PickStatus::FailOpen};
        }
    }
    return {};
}

bool Balancer::noteOutcome(uint32_t upstream, bool ok, uint64_t now_us) {
    const BackendPlan& bp = plan_->backend(plan_->upstream(upstream).backend);
    RateWindow& w = rate_[upstream];
    if (w.start_us == 0 || now_us >= w.start_us + bp.fail_timeout_us || now_us < w.start_us) {
        w = RateWindow{now_us == 0 ? 1 : now_us, 0, 0};
    }
    ++w.requests;
    w.failures += ok ? 0 : 1;
    return !ok && w.requests >= bp.failure_percentage_min_requests &&
           uint64_t{w.failures} * 100 >= uint64_t{bp.failure_percentage} * w.requests;
}

bool Balancer::reportFailure(uint32_t upstream, uint64_t now_us) {
    const UpstreamPlan& up = plan_->upstream(upstream);
    const BackendPlan& bp = plan_->backend(up.backend);
    UpstreamTable::EjectionPolicy p;
    if (bp.failure_percentage != 0 && noteOutcome(upstream, false, now_us)) {
        p.rate_tripped = true;  // judged on this worker's share of the traffic
        rate_[upstream] = RateWindow{};
    }
    p.max_fails = bp.max_fails;
    p.window_us = bp.fail_timeout_us;
    p.max_ejection_us = bp.max_ejection_time_us;
    // The cap (failure path only): below 100 %, never the last usable upstream and never more
    // than max_ejection_percent of those that take traffic.
    uint32_t usable = 0, usable_others = 0, ejected = 0;
    for (uint32_t k = 0; k < bp.count; ++k) {
        const UpstreamPlan& u = plan_->upstream(bp.first + k);
        const uint64_t h = table_->record(u.record).health.load();
        if (u.weight == 0 || (h & kHealthDrained) != 0) {
            continue;
        }
        ++usable;
        if (table_->isEjected(u.record, now_us)) {
            ++ejected;
        } else if (bp.first + k != upstream && (h & kHealthHealthy) != 0) {
            ++usable_others;
        }
    }
    // max_ejection_percent 100 is the old rule: anything may go, the last one too (fail_open
    // then decides what happens to the backend).
    p.may_eject = bp.max_ejection_percent >= 100 ||
                  (usable_others != 0 &&
                   uint64_t{ejected + 1} * 100 <= uint64_t{bp.max_ejection_percent} * usable);
    return table_->reportFailure(up.record, slot_, now_us, p);
}

uint64_t Balancer::backendInflight(uint32_t backend) const {
    const BackendPlan& bp = plan_->backend(backend);
    const uint64_t mask = table_->activeSlots();
    uint64_t n = 0;
    for (uint32_t k = 0; k < bp.count; ++k) {
        n += table_->inflightIn(plan_->upstream(bp.first + k).record, mask);
    }
    return n;
}

uint64_t Balancer::backendGauge(SlotGauge g, uint32_t backend) const {
    const BackendPlan& bp = plan_->backend(backend);
    const uint64_t mask = table_->activeSlots();
    uint64_t n = 0;
    for (uint32_t k = 0; k < bp.count; ++k) {
        n += table_->gaugeSum(g, plan_->upstream(bp.first + k).record, mask);
    }
    return n;
}

bool Balancer::retryAllowed(uint32_t backend) const {
    const BackendPlan& bp = plan_->backend(backend);
    if (bp.retry_budget == 0) {
        return true;
    }
    const uint64_t retrying = backendGauge(SlotGauge::Retrying, backend);
    const uint64_t allowed = std::max<uint64_t>(bp.min_retry_concurrency,
                                                backendInflight(backend) * bp.retry_budget / 100);
    return retrying < allowed;
}

const char* Balancer::overLimit(uint32_t backend) const {
    const BackendPlan& bp = plan_->backend(backend);
    if (bp.max_requests != 0 && backendInflight(backend) >= bp.max_requests) {
        return "max_requests";
    }
    if (bp.max_pending != 0 && backendGauge(SlotGauge::Connecting, backend) >= bp.max_pending) {
        return "max_pending";
    }
    return nullptr;
}

BackendHealth Balancer::backendHealth(uint32_t backend, uint64_t now_us) const {
    const BackendPlan& bp = plan_->backend(backend);
    BackendHealth out;
    out.total = bp.count;
    for (uint32_t k = 0; k < bp.count; ++k) {
        const uint32_t rec = plan_->upstream(bp.first + k).record;
        if (table_->isHealthy(rec) && !table_->isDrained(rec)) {
            ++out.healthy;
        }
        if (table_->isEjected(rec, now_us)) {
            ++out.ejected;
        }
    }
    return out;
}

}  // namespace photon::mod::balancer
