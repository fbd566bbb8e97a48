// SPDX-License-Identifier: Apache-2.0
// Shared-memory layout of the process slot table (one slot per worker or helper process).
#pragma once

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"

namespace photon::shm {

/// Number of process slots. Per-process data in other segments is sharded by slot, and gauges are
/// summed over slots, so this bounds workers + helper alive at once, including old-generation
/// processes still draining after a reload. A 64-bit mask covers every slot.
inline constexpr uint32_t kMaxSlots = 64;

/// What a slot holds. Stored in ProcessSlotShm::state.
enum class SlotState : uint32_t {
    Free = 0,     // owner_pid == 0; acquire() may take it
    Worker = 1,   // a worker process (or one about to be forked)
    Helper = 2,   // the helper process (health checks, sweeping)
    Retired = 3,  // its process exited; reclaim is running or was interrupted
};

/// One process slot. A slot is free iff owner_pid == 0; acquire claims it with one CAS on
/// owner_pid, so two masters sharing the table during a binary upgrade never take the same slot.
struct ProcessSlotShm {
    Atomic32 owner_pid;     // master that acquired the slot, 0 = free; master CAS/release
    Atomic32 state;         // SlotState; master
    Atomic32 pid;           // the slot's process once forked, 0 before; master or the process
    Atomic32 generation;    // config generation the process runs; master at acquire
    Atomic64 incarnation;   // +1 on every acquire, lets readers detect slot reuse; master
    Atomic64 started_us;    // CLOCK_MONOTONIC µs at acquire; master
    Atomic64 heartbeat_us;  // CLOCK_MONOTONIC µs, refreshed by the process itself; relaxed
    Atomic64 reserved0;
    Atomic64 reserved1;
    Atomic64 reserved2;
};
static_assert(std::is_standard_layout_v<ProcessSlotShm> &&
              std::is_trivially_copyable_v<ProcessSlotShm>);
static_assert(sizeof(ProcessSlotShm) == 64, "layout changed: bump SlotTable::kLayoutVersion");

/// The slot table segment body.
struct SlotTableShm {
    Atomic32 max_slots;  // kMaxSlots, written when formatted; master
    Atomic32 reserved0;
    Atomic64 acquisitions;  // total successful acquire() calls (statistics); master
    Atomic64 reserved1[6];
    ProcessSlotShm slots[kMaxSlots];
};
static_assert(std::is_standard_layout_v<SlotTableShm> &&
              std::is_trivially_copyable_v<SlotTableShm>);
static_assert(sizeof(SlotTableShm) == 64 + 64 * kMaxSlots,
              "layout changed: bump SlotTable::kLayoutVersion");

}  // namespace photon::shm
