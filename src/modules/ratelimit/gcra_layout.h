// SPDX-License-Identifier: Apache-2.0
// Shared-memory layout of a rate-limit key table (one per limit).
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

inline constexpr uint32_t kRateLayoutVersion = 1;

}  // namespace photon::mod::ratelimit
