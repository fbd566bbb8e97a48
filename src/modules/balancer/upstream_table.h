// SPDX-License-Identifier: Apache-2.0
// UpstreamTable: shared upstream state (health, ejection, in-flight gauges, counters).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/result.h"
#include "modules/balancer/balancer_layout.h"
#include "shm/segment.h"
#include "shm/slot_table.h"

namespace photon::mod::balancer {

/// Why the last active check failed. Stored in 16 bits of UpstreamRecordShm::last_error.
enum class HealthError : uint16_t {
    None = 0,
    ConnectRefused = 1,
    ConnectTimeout = 2,
    Timeout = 3,  // connected, but no complete answer in time
    TlsHandshake = 4,
    BadStatus = 5,  // HTTP status != expected_status (the status is stored alongside)
    Io = 6,         // reset, EOF or another I/O error mid-check
    Resolve = 7,    // the address did not resolve
    Protocol = 8,   // unparsable HTTP answer
    Admin = 9,      // set by an operator or by the master, not by a check
};
/// Lowercase snake_case name for /health and logs ("connect_refused"); "unknown" if out of range.
std::string_view healthErrorName(HealthError e);

/// Active-check hysteresis (global `health_check.failure_threshold` / `success_threshold`).
/// A value of 0 is treated as 1.
struct HealthThresholds {
    uint32_t failure_threshold = 3;  // consecutive failures that make a healthy upstream unhealthy
    uint32_t success_threshold = 2;  // consecutive successes that make an unhealthy one healthy
};

enum class HealthTransition : uint8_t {
    None,  // recorded, state unchanged
    BecameHealthy,
    BecameUnhealthy,
    Busy,  // another writer holds the record's seqlock; nothing recorded, retry later
};

/// Consistent copy of one upstream record for /health, metrics and logs.
struct UpstreamSnapshot {
    bool healthy = false;
    bool drained = false;
    bool ejected = false;               // ejected_until_us > now
    uint16_t consecutive_failures = 0;  // active checks
    uint16_t consecutive_successes = 0;
    HealthError last_error = HealthError::None;
    uint16_t last_http_status = 0;
    uint64_t last_check_us = 0;  // CLOCK_MONOTONIC µs; 0 = never checked
    uint64_t ejected_until_us = 0;
    uint64_t health_changes = 0;
    uint64_t ejections = 0;       // consecutive passive ejections (multiplier of the last one)
    uint64_t ejections_total = 0;
    uint64_t inflight = 0;        // summed over slots
    uint64_t requests_total = 0;  // summed over slots + retired; never decreases
    uint64_t failures_total = 0;  // passive failures, likewise
    bool consistent = true;       // false if a seqlock stayed busy for every read attempt
};

/// View over the upstream table segment. Records are addressed by index ("record"); the
/// BalancerPlan maps configured upstreams to records. Index arguments must be < capacity() (or
/// backendCapacity()); passing anything else is a programming error.
///
/// Who calls what:
///  - master: capacityFor/bodyBytes/fingerprint/bind, nextGeneration, bindUpstream/bindBackend,
///    collectGarbage, activateSlot and reclaimSlot (directly or through slotHook()), setDrained;
///  - the slot's own process (worker or helper): pinSlot, acquire/release, reportFailure/
///    reportSuccess, nextRotation, and — the helper — recordCheck/setHealth;
///  - anyone: the readers.
/// Nothing here blocks, allocates or takes a lock; every worker-side call is O(1) except sums,
/// which are O(active slots).
class UpstreamTable {
public:
    static constexpr uint32_t kMinCapacity = 64;
    static constexpr uint32_t kMinBackendCapacity = 16;
    static constexpr uint32_t kMaxCapacity = 1u << 15;

    /// Record capacity for `upstreams` configured upstreams: the next power of two >= twice the
    /// count (headroom so a reload can add upstreams while old workers still use removed ones),
    /// at least kMinCapacity. Returns 0 if that exceeds kMaxCapacity.
    static uint32_t capacityFor(size_t upstreams);
    static uint32_t backendCapacityFor(size_t backends);
    /// Segment body size and fingerprint for the given capacities; pass both to
    /// shm::MappedSegment::create together with kUpstreamLayoutVersion.
    static uint64_t bodyBytes(uint32_t capacity, uint32_t backend_capacity);
    static uint64_t fingerprint(uint32_t capacity, uint32_t backend_capacity);

    /// Master. Binds to the table in `seg` (created with the three values above), formatting it
    /// if the segment is fresh. Fails if the segment holds a table of other capacities (cannot
    /// happen when the fingerprint matched) or is too small. `seg` must outlive the view, which
    /// forked children inherit.
    static core::Result<UpstreamTable> bind(const shm::MappedSegment& seg, uint32_t capacity,
                                            uint32_t backend_capacity);

    uint32_t capacity() const { return capacity_; }
    uint32_t backendCapacity() const { return backend_capacity_; }

    // ---- master: records ------------------------------------------------------------------

    /// Master. Returns a new plan generation (persistent in the segment, so it keeps increasing
    /// across reloads and binary upgrades).
    uint32_t nextGeneration();

    /// Master. Finds the record whose stored key equals `key`, or claims a free one for it. A new
    /// record starts with zeroed columns, not ejected, healthy iff `start_healthy`; an existing
    /// one keeps all its state. Either way its generation becomes `generation`. `*created`, if
    /// given, tells which. Fails if the key is empty or longer than kMaxKeyBytes, or the table is
    /// full.
    core::Result<uint32_t> bindUpstream(std::string_view key, uint32_t generation,
                                        bool start_healthy, bool* created = nullptr);
    /// Master. Same for a backend record (its rotation counter survives reloads).
    core::Result<uint32_t> bindBackend(std::string_view name, uint32_t generation);

    /// Master, after a new plan is committed: frees every record whose generation is older than
    /// both `serving_generation` (the plan the master now hands to new processes) and every
    /// generation pinned by an active slot. Does nothing while some active slot has not pinned
    /// yet (a process between fork and pinSlot). Returns the number of records freed.
    uint32_t collectGarbage(uint32_t serving_generation);

    // ---- slots -------------------------------------------------------------------------------

    /// Hook for shm::SlotTable::addHook: on_acquire = activateSlot, on_reclaim = reclaimSlot.
    /// The table view must stay alive (and not move) while the hook is registered.
    shm::SlotHook slotHook();

    /// Master, when it hands slot `slot` to a new process (before fork): marks the slot active
    /// and unpinned.
    void activateSlot(uint32_t slot);

    /// The slot's own process at start: marks the slot active and records the plan generation it
    /// runs, which keeps that generation's records alive until the slot is reclaimed.
    void pinSlot(uint32_t slot, uint32_t generation);

    /// Master, after the slot's process is gone: zeroes its gauges (in-flight counts and failure
    /// windows: its requests died with it), adds its counters into the retired column and zeroes
    /// them, voids any health seqlock it left odd, and marks the slot inactive. O(capacity).
    void reclaimSlot(uint32_t slot);

    /// Master, at start-up after SlotTable::reclaimOrphans(): reclaims every slot that is active
    /// in this table but free in `slots` (left over when the previous master died, or when the
    /// slot table segment was recreated while this one was reused). Returns how many.
    uint32_t reclaimInactive(const shm::SlotTable& slots);

    // ---- worker: gauges, counters, passive health ---------------------------------------------

    /// +1 in-flight and +1 requests_total for `record` in the caller's own `slot`.
    void acquire(uint32_t record, uint32_t slot);
    /// -1 in-flight for `record` in `slot`. Must pair with an acquire by the same process;
    /// saturates at 0.
    void release(uint32_t record, uint32_t slot);

    /// Records one passive failure (connect error, timeout, 5xx — the caller's policy) by `slot`
    /// at `now_us`. When the failures of all slots within `fail_timeout_us` reach `max_fails`,
    /// the upstream is ejected until now + fail_timeout_us (one CAS; the ejection always
    /// expires). Failures reported during an ejection never extend it. max_fails == 0 or
    /// fail_timeout_us == 0 disables ejection (the failure is still counted). Returns true iff
    /// this call ejected the upstream (log it once).
    bool reportFailure(uint32_t record, uint32_t slot, uint64_t now_us, uint32_t max_fails,
                       uint64_t fail_timeout_us) {
        EjectionPolicy p;
        p.max_fails = max_fails;
        p.window_us = fail_timeout_us;
        return reportFailure(record, slot, now_us, p);
    }
    /// How a failure may eject (see reportFailure above, which is this with the defaults).
    struct EjectionPolicy {
        uint32_t max_fails = 0;
        uint64_t window_us = 0;        // failure window, and the first ejection's length
        uint64_t max_ejection_us = 0;  // an upstream ejected again within this long after its
                                       // last ejection ended stays out window × n (n-th in a
                                       // row), at most this long; 0 = always window
        bool may_eject = true;         // the backend's cap allows one more ejection now
        bool rate_tripped = false;     // the failure rate says eject, whatever max_fails says
    };
    bool reportFailure(uint32_t record, uint32_t slot, uint64_t now_us, const EjectionPolicy& p);
    /// A success clears `slot`'s current failure window for `record`.
    void reportSuccess(uint32_t record, uint32_t slot);

    /// Next value of the backend's shared rotation counter (fetchAdd); fail-open picks use a
    /// counter of their own.
    uint64_t nextRotation(uint32_t backend_record, bool fail_open = false) {
        BackendRecordShm& b = backends_[backend_record];
        return (fail_open ? b.fail_open_rotation : b.rotation).fetchAdd(1);
    }

    // ---- health writer (helper; master for setDrained) ----------------------------------------

    /// Records the outcome of one active check by `writer` (its slot) with hysteresis: a healthy
    /// upstream becomes unhealthy after failure_threshold consecutive failures, an unhealthy one
    /// healthy after success_threshold consecutive successes. Updates last check time and error
    /// (`err` is ignored, stored as None, when `ok`). Returns Busy without recording if another
    /// writer is mid-update.
    HealthTransition recordCheck(uint32_t record, uint32_t writer, bool ok, uint64_t now_us,
                                 HealthError err, uint16_t http_status,
                                 const HealthThresholds& thresholds);

    /// Forces the health state (e.g. unresolvable address at start, or a first check before
    /// serving), resets the consecutive counters and records the check time and error. Returns
    /// false (nothing written) if another writer is mid-update.
    bool setHealth(uint32_t record, uint32_t writer, bool healthy, uint64_t now_us, HealthError err,
                   uint16_t http_status = 0);

    /// Sets or clears the drained flag (upstream kept out of every pick, fail-open included).
    /// Returns false if another writer is mid-update.
    bool setDrained(uint32_t record, uint32_t writer, bool drained);

    // ---- readers -----------------------------------------------------------------------------

    bool isHealthy(uint32_t record) const {
        return (records_[record].health.load() & kHealthHealthy) != 0;
    }
    bool isDrained(uint32_t record) const {
        return (records_[record].health.load() & kHealthDrained) != 0;
    }
    bool isEjected(uint32_t record, uint64_t now_us) const {
        return records_[record].ejected_until_us.load() > now_us;
    }
    /// Bit s set: slot s may have non-zero columns. Load once per pick and pass to inflightIn().
    uint64_t activeSlots() const { return header_->active_slots.load(); }
    /// In-flight requests of `record` summed over the slots in `mask`.
    uint64_t inflightIn(uint32_t record, uint64_t mask) const {
        uint64_t sum = 0;
        while (mask != 0) {
            const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
            mask &= mask - 1;
            // Relaxed: the gauge is advisory (least-conn, max_connections) and publishes nothing.
            sum += inflight_[static_cast<size_t>(s) * capacity_ + record].load(
                std::memory_order_relaxed);
        }
        return sum;
    }
    uint64_t inflight(uint32_t record) const { return inflightIn(record, activeSlots()); }
    /// `slot`'s own in-flight count for `record`.
    uint32_t inflightOf(uint32_t record, uint32_t slot) const {
        return inflight_[static_cast<size_t>(slot) * capacity_ + record].load(
            std::memory_order_relaxed);
    }

    /// Per-slot gauges besides in-flight (single writer per slot; zeroed by reclaim, so a dead
    /// process leaves none stuck): attempts in flight that are retries, and connections being
    /// made. Summed over the slots in `mask` by gaugeSum.
    void gaugeAdd(SlotGauge g, uint32_t record, uint32_t slot, int delta);
    uint64_t gaugeSum(SlotGauge g, uint32_t record, uint64_t mask) const;

    /// A consistent copy of the record (seqlocks read with bounded retries).
    UpstreamSnapshot snapshot(uint32_t record, uint64_t now_us) const;

    const UpstreamRecordShm& record(uint32_t record) const { return records_[record]; }
    uint32_t pinnedGeneration(uint32_t slot) const { return header_->slot_generation[slot].load(); }
    /// Generation of the record (0 for a free record).
    uint32_t recordGeneration(uint32_t record) const { return records_[record].generation.load(); }
    bool recordInUse(uint32_t record) const {
        return records_[record].key_hash.load() >= kFirstKeyHash;
    }

private:
    UpstreamTable() = default;

    uint64_t sumCounter(const Atomic64* column0, uint32_t record, uint64_t mask) const;

    UpstreamTableHeaderShm* header_ = nullptr;
    BackendRecordShm* backends_ = nullptr;
    KeyShm* backend_keys_ = nullptr;
    UpstreamRecordShm* records_ = nullptr;
    KeyShm* keys_ = nullptr;
    Atomic32* inflight_ = nullptr;
    Atomic64* passive_ = nullptr;
    Atomic64* requests_ = nullptr;
    Atomic64* failures_ = nullptr;
    Atomic32* gauges_[kSlotGauges] = {};
    uint32_t capacity_ = 0;
    uint32_t backend_capacity_ = 0;
};

}  // namespace photon::mod::balancer
