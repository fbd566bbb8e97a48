// SPDX-License-Identifier: Apache-2.0
// SlotTable: assigns process slots to workers and the helper, and reclaims them after they exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "core/result.h"
#include "shm/segment.h"
#include "shm/slot_layout.h"

namespace photon::shm {

/// A per-slot callback pair registered in the master (process memory, never shm). Modules whose
/// segments hold per-slot data register one so that SlotTable::reclaim() repairs every segment
/// after a process dies, without the supervision code knowing the modules.
///
/// `ctx` is borrowed: the registrant keeps it alive until it calls removeHook() or replaces the
/// hook under the same name. Callbacks run in the master, synchronously, inside acquire() and
/// reclaim(); they must not fail, block or fork. `on_acquire` may be null.
struct SlotHook {
    const char* name = nullptr;  // static string; identifies the hook for replace/remove
    void* ctx = nullptr;
    void (*on_acquire)(void* ctx, uint32_t slot) = nullptr;  // slot taken, child not forked yet
    void (*on_reclaim)(void* ctx, uint32_t slot) = nullptr;  // slot's process is gone
};

/// Copy of one slot for status pages and supervision.
struct SlotInfo {
    SlotState state = SlotState::Free;
    pid_t pid = 0;
    pid_t owner_pid = 0;
    uint32_t generation = 0;
    uint64_t incarnation = 0;
    uint64_t started_us = 0;
    uint64_t heartbeat_us = 0;
};

/// View over a SlotTableShm plus the master's hook registry.
///
/// Lifecycle of a slot (master): acquire() → fork → setPid() → ... → waitpid() → reclaim().
/// Every exit, clean or not, ends in reclaim(): it runs every hook's on_reclaim (zeroing the dead
/// process's gauges, folding its counters, voiding its half-written seqlocks) and then frees the
/// slot. A slot whose fork failed is given back with release().
///
/// The view is a cheap handle; copies share the table but not the hooks (hooks live in the object
/// the master registered them on). Workers and the helper only call heartbeat() and info().
class SlotTable {
public:
    static constexpr uint32_t kLayoutVersion = 1;
    static constexpr uint64_t kBodyBytes = sizeof(SlotTableShm);
    static constexpr uint64_t kFingerprint = kMaxSlots;
    static constexpr uint32_t kMaxHooks = 16;

    /// Binds to the slot table in `seg` (created with kBodyBytes, kLayoutVersion, kFingerprint)
    /// and formats it if fresh. Master only; the segment must outlive the view. Fails if the
    /// segment is too small or holds a table of another shape.
    static core::Result<SlotTable> bind(const MappedSegment& seg);

    /// Wraps an already formatted table (tests and tools).
    explicit SlotTable(SlotTableShm* shm) : shm_(shm) {}

    /// Master. Claims the lowest free slot for a process of `kind` (Worker or Helper) running
    /// config `generation`, records the caller as owner and runs every on_acquire hook. Call it
    /// before fork so the child can use the slot from its first instruction. Fails when all
    /// kMaxSlots slots are taken (the master should retry after old processes exit).
    core::Result<uint32_t> acquire(SlotState kind, uint32_t generation, uint64_t now_us);

    /// Master (after fork, in the parent) or the process itself: records its pid.
    void setPid(uint32_t slot, pid_t pid);

    /// Master, after waitpid() reported the slot's process gone (or the process is known dead).
    /// Runs every on_reclaim hook, then frees the slot. Idempotent for a free slot (no-op).
    void reclaim(uint32_t slot);

    /// Master: gives back a slot whose process was never started (fork failed). Same effect as
    /// reclaim(), named for intent.
    void release(uint32_t slot) { reclaim(slot); }

    /// Master, at start-up after create/attach and periodically: reclaims slots whose owning
    /// master no longer exists and whose process (if any) has exited as well, e.g. after the
    /// previous master was killed, or the workers of a replaced master during an upgrade.
    /// Slots of a live owner are never touched. Returns how many slots it reclaimed.
    uint32_t reclaimOrphans();

    /// Master: registers `hook`, replacing any hook with the same name (compared by content).
    /// Returns false if kMaxHooks distinct hooks are already registered or the hook has no name
    /// or on_reclaim.
    bool addHook(const SlotHook& hook);
    /// Master: removes the hook named `name`; returns false if there was none.
    bool removeHook(const char* name);

    /// The slot's own process, e.g. once per second: stores `now_us` (CLOCK_MONOTONIC µs).
    void heartbeat(uint32_t slot, uint64_t now_us);

    /// Any process. Returns a copy of the slot's fields (each field read atomically; the copy as a
    /// whole may mix two moments in time).
    SlotInfo info(uint32_t slot) const;

    /// Any process. The slot currently held by `pid` for a live owner, if any.
    std::optional<uint32_t> findPid(pid_t pid) const;

    /// Any process. Number of slots not free.
    uint32_t usedCount() const;

    SlotTableShm* shm() const { return shm_; }

private:
    SlotTableShm* shm_;
    SlotHook hooks_[kMaxHooks] = {};
    uint32_t hook_count_ = 0;
};

}  // namespace photon::shm
