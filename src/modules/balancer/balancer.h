// SPDX-License-Identifier: Apache-2.0
// Balancer: the per-process, lock-free upstream pick and the in-flight/passive/health bookkeeping.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "modules/balancer/config.h"
#include "modules/balancer/rng.h"
#include "modules/balancer/upstream_table.h"
#include "shm/clock.h"

namespace photon::mod::balancer {

/// "No upstream" marker for upstream indices.
inline constexpr uint32_t kNoUpstream = UINT32_MAX;

/// Upstreams a request already tried (retries); pick never returns them. Fixed capacity, no heap;
/// lives in the request.
class ExcludeList {
public:
    static constexpr uint32_t kCapacity = 8;

    /// Adds a global upstream index. Returns false (and adds nothing) when full.
    bool add(uint32_t upstream) {
        if (count_ == kCapacity) {
            return false;
        }
        ids_[count_++] = upstream;
        return true;
    }
    bool contains(uint32_t upstream) const {
        for (uint32_t i = 0; i < count_; ++i) {
            if (ids_[i] == upstream) {
                return true;
            }
        }
        return false;
    }
    uint32_t size() const { return count_; }
    void clear() { count_ = 0; }

private:
    uint32_t ids_[kCapacity] = {};
    uint32_t count_ = 0;
};

/// Per-request inputs to pick(). Views are borrowed for the duration of the call only.
struct PickContext {
    uint64_t now_us = 0;                     // CLOCK_MONOTONIC µs (the loop's cached time)
    std::span<const uint8_t> client_addr{};  // client IP octets (4 or 16): ip_hash, and
                                             // consistent_hash when hash_key is empty
    std::string_view hash_key{};             // consistent_hash key (header/cookie/path value)
    const ExcludeList* exclude = nullptr;    // upstreams already tried, or null
};

enum class PickStatus : uint8_t {
    Picked,      // an eligible upstream
    FailOpen,    // none was eligible; the backend's fail_open picked one ignoring health
    Panic,       // the backend's healthy share is below panic_threshold: picked ignoring health
    NoUpstream,  // nothing to pick: answer 503
};

struct Pick {
    uint32_t upstream = kNoUpstream;  // global upstream index into the plan
    PickStatus status = PickStatus::NoUpstream;
    bool ok() const { return upstream != kNoUpstream; }
};

/// Counts for /health: per backend.
struct BackendHealth {
    uint32_t total = 0;    // configured upstreams
    uint32_t healthy = 0;  // active-check state healthy and not drained
    uint32_t ejected = 0;  // passively ejected right now
};

class Balancer;

/// Holds one in-flight acquisition and releases it on destruction (or reset()). Move-only; the
/// Balancer must outlive it. Keep it in the request and reset it in the Log phase.
class InflightGuard {
public:
    InflightGuard() = default;
    InflightGuard(InflightGuard&& o) noexcept : balancer_(o.balancer_), upstream_(o.upstream_) {
        o.balancer_ = nullptr;
    }
    InflightGuard& operator=(InflightGuard&& o) noexcept;
    InflightGuard(const InflightGuard&) = delete;
    InflightGuard& operator=(const InflightGuard&) = delete;
    ~InflightGuard() { reset(); }

    void reset();
    uint32_t upstream() const { return upstream_; }
    explicit operator bool() const { return balancer_ != nullptr; }

private:
    friend class Balancer;
    InflightGuard(Balancer* b, uint32_t upstream) : balancer_(b), upstream_(upstream) {}

    Balancer* balancer_ = nullptr;
    uint32_t upstream_ = kNoUpstream;
};

/// One process's handle on the balancer: the plan it runs, the shared table and its own slot.
///
/// Create one per worker (and one in the helper) after fork, in initProcess; the constructor pins
/// the plan's generation for the slot (see UpstreamTable::pinSlot). Not thread-safe (it owns the
/// process's Rng); every method is lock-free, allocation-free and never suspends.
///
/// Eligibility. pick() considers an upstream of the backend eligible iff its weight is > 0, it is
/// not drained, not in ctx.exclude, healthy by active checks, not passively ejected at
/// ctx.now_us, and — when max_connections is set — its in-flight count summed over all workers is
/// below max_connections (a soft cap: workers picking at the same instant may overshoot by at
/// most one each). If none is eligible and the backend has fail_open, the same algorithm runs
/// again ignoring health and ejection (weight 0, drained, excluded and max_connections still
/// apply) and the result has status FailOpen.
///
/// Algorithms (all shared across workers through the table):
///  - round_robin: the backend's shared counter (fetchAdd) indexes the upstreams; an ineligible
///    hit draws the next counter value (up to 3 times, so the remaining upstreams share evenly),
///    then scans forward.
///  - weighted_round_robin: the shared counter indexes the precomputed smooth sequence
///    (nginx order, e.g. 3:1 → A A B A); ineligible entries are skipped the same way.
///  - least_connections: the eligible upstream minimising (in-flight + 1) / weight (compared by
///    cross-multiplication); ties go to the first in an order rotated by the shared counter.
///  - ip_hash / consistent_hash: the hash ring point at or after XXH3(key); ineligible owners are
///    skipped by walking the ring, so an unhealthy upstream's keys spread over the others while
///    every other key keeps its upstream. Key: the client address (ip_hash), or ctx.hash_key
///    (consistent_hash; the client address if empty).
///  - random: uniform among eligible upstreams (weights other than 0 are ignored); with
///    two_choices, two distinct eligible upstreams are drawn and the one with the lower
///    (in-flight + 1) / weight wins.
class Balancer {
public:
    /// `plan` and `table` must outlive the Balancer. `slot` is the calling process's slot;
    /// `seed` seeds its Rng (use Rng::seedFor(getpid(), slot, now)).
    Balancer(const BalancerPlan& plan, UpstreamTable& table, uint32_t slot, uint64_t seed);

    /// Picks an upstream of backend `backend` (< plan().backendCount()). Does not acquire: call
    /// acquire()/guard() on the result before connecting.
    Pick pick(uint32_t backend, const PickContext& ctx);

    /// +1 in-flight (and +1 upstream request) for `upstream` in this process's slot.
    void acquire(uint32_t upstream) { table_->acquire(plan_->upstream(upstream).record, slot_); }
    /// -1 in-flight; must pair with acquire() in this process.
    void release(uint32_t upstream) { table_->release(plan_->upstream(upstream).record, slot_); }
    /// acquire() wrapped in a guard that releases on destruction.
    InflightGuard guard(uint32_t upstream) {
        acquire(upstream);
        return InflightGuard(this, upstream);
    }

    /// Passive health: one failed attempt (connect error, timeout, 5xx — the caller's policy).
    /// Returns true iff this call ejected the upstream (log it). See UpstreamTable::reportFailure;
    /// thresholds are the backend's max_fails/fail_timeout; the ejection is skipped when it
    /// would leave the backend without a usable upstream or with more than
    /// max_ejection_percent of its upstreams ejected, and a repeated one lasts longer
    /// (max_ejection_time).
    bool reportFailure(uint32_t upstream, uint64_t now_us);
    /// Passive health: a successful attempt clears this process's failure window.
    /// `now_us` 0: read the clock (only for a backend with failure_percentage).
    void reportSuccess(uint32_t upstream, uint64_t now_us = 0) {
        table_->reportSuccess(plan_->upstream(upstream).record, slot_);
        if (plan_->backend(plan_->upstream(upstream).backend).failure_percentage != 0) {
            noteOutcome(upstream, true, now_us != 0 ? now_us : shm::monotonicMicros());
        }
    }

    /// Health writer (the helper, as this slot): see UpstreamTable::recordCheck / setHealth.
    HealthTransition recordCheck(uint32_t upstream, bool ok, uint64_t now_us, HealthError err,
                                 uint16_t http_status, const HealthThresholds& thresholds) {
        return table_->recordCheck(plan_->upstream(upstream).record, slot_, ok, now_us, err,
                                   http_status, thresholds);
    }
    bool setHealth(uint32_t upstream, bool healthy, uint64_t now_us, HealthError err,
                   uint16_t http_status = 0) {
        return table_->setHealth(plan_->upstream(upstream).record, slot_, healthy, now_us, err,
                                 http_status);
    }

    bool isHealthy(uint32_t upstream) const {
        return table_->isHealthy(plan_->upstream(upstream).record);
    }
    /// In-flight requests of `upstream` summed over all processes.
    uint64_t inflight(uint32_t upstream) const {
        return table_->inflight(plan_->upstream(upstream).record);
    }
    UpstreamSnapshot snapshot(uint32_t upstream, uint64_t now_us) const {
        return table_->snapshot(plan_->upstream(upstream).record, now_us);
    }
    BackendHealth backendHealth(uint32_t backend, uint64_t now_us) const;
    /// Per-slot gauges of `upstream` in this process (retries in flight, connections being made).
    void gauge(SlotGauge g, uint32_t upstream, int delta) {
        table_->gaugeAdd(g, plan_->upstream(upstream).record, slot_, delta);
    }
    /// Sums over every worker and every upstream of `backend`: requests in flight, and a gauge.
    uint64_t backendInflight(uint32_t backend) const;
    uint64_t backendGauge(SlotGauge g, uint32_t backend) const;
    /// Retry budget: may one more retry start on `backend` now? True when the backend has no
    /// budget, or when its retries in flight (every worker) are below retry_budget percent of
    /// its requests in flight, or below min_retry_concurrency.
    bool retryAllowed(uint32_t backend) const;
    /// Circuit breaking: the limit `backend` is at (max_requests, then max_pending), or
    /// nullptr when a new request may start.
    const char* overLimit(uint32_t backend) const;

    /// Whether fewer than panic_threshold percent of the backend's usable upstreams (weight > 0,
    /// not drained) are healthy and not ejected at `now_us` (read fresh from the table).
    bool belowPanicThreshold(uint32_t backend, uint64_t now_us) const;
    /// Whether this process last found `backend` in panic (below its panic_threshold).
    bool panicking(uint32_t backend) const {
        return backend < panic_.size() && panic_[backend].panic;
    }

    const BalancerPlan& plan() const { return *plan_; }
    UpstreamTable& table() const { return *table_; }
    uint32_t slot() const { return slot_; }

private:
    template <bool kFailOpen>
    uint32_t pickLocal(const BackendPlan& bp, const PickContext& ctx, uint64_t mask);
    /// Recomputes the backend's panic state when the last evaluation is kPanicRecheckUs old.
    bool inPanic(uint32_t backend, uint64_t now_us);

    /// failure_percentage: this process's sample of each upstream's attempts and failures in
    /// the current window (fail_timeout long). Returns whether the rate now calls for ejection.
    bool noteOutcome(uint32_t upstream, bool ok, uint64_t now_us);
    struct RateWindow {
        uint64_t start_us = 0;
        uint32_t requests = 0;
        uint32_t failures = 0;
    };

    /// Per backend, this process's view of the panic state: the share of healthy upstreams is
    /// counted at most every kPanicRecheckUs per process, not on every pick.
    struct PanicState {
        uint64_t checked_us = 0;
        bool panic = false;
    };
    static constexpr uint64_t kPanicRecheckUs = 100'000;

    const BalancerPlan* plan_;
    UpstreamTable* table_;
    uint32_t slot_;
    Rng rng_;
    std::vector<RateWindow> rate_;  // by plan upstream index
    std::vector<PanicState> panic_;
};

inline InflightGuard& InflightGuard::operator=(InflightGuard&& o) noexcept {
    if (this != &o) {
        reset();
        balancer_ = o.balancer_;
        upstream_ = o.upstream_;
        o.balancer_ = nullptr;
    }
    return *this;
}

inline void InflightGuard::reset() {
    if (balancer_ != nullptr) {
        balancer_->release(upstream_);
        balancer_ = nullptr;
    }
}

}  // namespace photon::mod::balancer
