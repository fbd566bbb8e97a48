// SPDX-License-Identifier: Apache-2.0
// Server-wide gauges in shared memory: open client connections per process slot.
#pragma once

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"
#include "shm/slot_layout.h"

namespace photon::worker {

inline constexpr uint32_t kServerCountersLayoutVersion = 1;

/// One segment per instance, created by the master. Each worker writes only its own slot's
/// entries (so a killed worker's share is repaired by zeroing its slot); readers sum the slots.
struct ServerCountersShm {
    // Open client connections of the process in slot s. Writer: that process (relaxed
    // fetch_add: a gauge read for limits, where a momentary off-by-one is harmless). Zeroed by
    // the master's reclaim when the process is gone.
    shm::Atomic64 connections[shm::kMaxSlots];
};
static_assert(std::is_trivially_copyable_v<ServerCountersShm> &&
                  sizeof(ServerCountersShm) == 8 * shm::kMaxSlots,
              "layout changed: bump kServerCountersLayoutVersion");

}  // namespace photon::worker
