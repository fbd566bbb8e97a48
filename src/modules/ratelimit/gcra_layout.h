// SPDX-License-Identifier: Apache-2.0
// Shared-memory layout of a rate limit: its counters and key table (one segment per limit).
#pragma once

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"

namespace photon::mod::ratelimit {

/// One limiter key. Written by any worker, with one CAS per word; no lock, so a process killed
/// at any instruction leaves every slot usable.
struct RateSlotShm {
    // xxh3 of the key (the limit's seed mixed in); 0 = free. Claimed with a CAS from 0 (or from
    // an idle key's hash when the slot is reclaimed); acquire/release.
    shm::Atomic64 key_hash;
    // GCRA theoretical arrival time, CLOCK_MONOTONIC microseconds; 0 = never used (a full
    // bucket). Advanced with a CAS; acquire/release.
    shm::Atomic64 tat_us;
};
static_assert(std::is_trivially_copyable_v<RateSlotShm> && sizeof(RateSlotShm) == 16,
              "layout changed: bump kRateLayoutVersion");

/// The head of a limit's segment, before its RateSlotShm table: counters any worker bumps.
struct RateStatsShm {
    shm::Atomic64 limited;     // requests refused with 429 by the limit itself
    shm::Atomic64 table_full;  // new keys that found no slot (on_full decided)
    shm::Atomic64 contended;   // decisions given up after bounded CAS retries (as table_full)
    // store: redis only. Decisions Redis did not make in time (on_store_error decided); any
    // worker adds, relaxed (a statistic).
    shm::Atomic64 store_errors;
    // CLOCK_MONOTONIC µs of the last such decision, and of the last decision Redis made
    // (refreshed at most every 100 ms); any worker stores, relaxed (read only by /health).
    shm::Atomic64 store_last_error_us;
    shm::Atomic64 store_last_ok_us;
    // Cluster MOVED/ASK redirects followed for this limit; any worker adds, relaxed (a
    // statistic).
    shm::Atomic64 store_redirects;
    shm::Atomic64 reserved[1];
};
static_assert(std::is_trivially_copyable_v<RateStatsShm> && sizeof(RateStatsShm) == 64,
              "layout changed: bump kRateLayoutVersion");

/// Segment body: RateStatsShm, then RateSlotShm[capacity].
inline constexpr uint32_t kRateLayoutVersion = 3;

}  // namespace photon::mod::ratelimit
