// SPDX-License-Identifier: Apache-2.0
// Server-wide gauges and counters in shared memory, per process slot: open client connections,
// WebSocket upgrades, tunnels, messages and tunnel durations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>

#include "shm/atomic.h"
#include "shm/slot_layout.h"

namespace photon::worker {

inline constexpr uint32_t kServerCountersLayoutVersion = 2;

/// Outcomes of WebSocket upgrade requests (gateway_websocket_upgrades_total{result}).
enum class WsUpgradeResult : uint8_t {
    Upgraded,         // 101 relayed, tunnel open
    Refused,          // the gateway refused the request (400/426, or a module: 401/403/429...)
    UpstreamRefused,  // the upstream answered with something other than 101
    UpstreamInvalid,  // the upstream's 101 was invalid (502), or it failed before answering
    Count
};
/// Upper bounds of gateway_websocket_connection_duration_seconds (+Inf is the last bucket).
inline constexpr double kWsDurationBounds[] = {1, 5, 10, 30, 60, 300, 600, 1800, 3600};
inline constexpr size_t kWsDurationBuckets = std::size(kWsDurationBounds) + 1;

/// One process slot's WebSocket counters. Counters only grow (a process that takes over a slot
/// continues them); `active` is a gauge, zeroed by the master's reclaim.
struct WsSlotCounters {
    shm::Atomic64 upgrades[static_cast<size_t>(WsUpgradeResult::Count)];
    shm::Atomic64 active;
    shm::Atomic64 messages[2];  // 0: client to upstream, 1: upstream to client
    shm::Atomic64 duration_buckets[kWsDurationBuckets];  // not cumulative
    shm::Atomic64 duration_count;
    shm::Atomic64 duration_sum_us;
};

/// One segment per instance, created by the master. Each worker writes only its own slot's
/// entries (so a killed worker's share is repaired by zeroing its slot); readers sum the slots.
struct ServerCountersShm {
    // Open client connections of the process in slot s. Writer: that process (relaxed
    // fetch_add: a gauge read for limits, where a momentary off-by-one is harmless). Zeroed by
    // the master's reclaim when the process is gone.
    shm::Atomic64 connections[shm::kMaxSlots];
    // WebSocket counters of the process in slot s (same single-writer rule).
    WsSlotCounters ws[shm::kMaxSlots];
};
static_assert(std::is_trivially_copyable_v<ServerCountersShm> &&
                  sizeof(WsSlotCounters) == 8 * (4 + 1 + 2 + 10 + 2) &&
                  sizeof(ServerCountersShm) == (8 + sizeof(WsSlotCounters)) * shm::kMaxSlots,
              "layout changed: bump kServerCountersLayoutVersion");

}  // namespace photon::worker
