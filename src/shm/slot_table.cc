// SPDX-License-Identifier: Apache-2.0
// SlotTable implementation: slot claim by CAS on owner_pid, reclaim through registered hooks.
#include "shm/slot_table.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/log.h"

namespace photon::shm {

namespace {

bool processExists(pid_t pid) {
    if (pid <= 0) {
        return false;
    }
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

bool sameName(const char* a, const char* b) {
    return a != nullptr && b != nullptr && strcmp(a, b) == 0;
}

}  // namespace

core::Result<SlotTable> SlotTable::bind(const MappedSegment& seg) {
    if (seg.bodyBytes() < kBodyBytes) {
        return core::fail("slot table segment ", seg.name(), " is too small");
    }
    auto* shm = reinterpret_cast<SlotTableShm*>(seg.body());
    const uint32_t max = shm->max_slots.load();
    if (max == 0) {
        shm->max_slots.store(kMaxSlots);
    } else if (max != kMaxSlots) {
        return core::fail("slot table segment ", seg.name(), " has ", std::to_string(max),
                          " slots, expected ", std::to_string(kMaxSlots));
    }
    return SlotTable(shm);
}

core::Result<uint32_t> SlotTable::acquire(SlotState kind, uint32_t generation, uint64_t now_us) {
    const auto me = static_cast<uint32_t>(getpid());
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        ProcessSlotShm& s = shm_->slots[i];
        uint32_t expected = 0;
        if (s.owner_pid.load() != 0 || !s.owner_pid.cas(expected, me)) {
            continue;
        }
        s.state.store(static_cast<uint32_t>(kind));
        s.pid.store(0);
        s.generation.store(generation);
        s.incarnation.fetchAdd(1);
        s.started_us.store(now_us);
        s.heartbeat_us.store(now_us);
        shm_->acquisitions.fetchAdd(1);
        for (uint32_t h = 0; h < hook_count_; ++h) {
            if (hooks_[h].on_acquire != nullptr) {
                hooks_[h].on_acquire(hooks_[h].ctx, i);
            }
        }
        return i;
    }
    return core::fail("no free process slot (all ", std::to_string(kMaxSlots), " in use)");
}

void SlotTable::setPid(uint32_t slot, pid_t pid) {
    if (slot < kMaxSlots) {
        shm_->slots[slot].pid.store(static_cast<uint32_t>(pid));
    }
}

void SlotTable::reclaim(uint32_t slot) {
    if (slot >= kMaxSlots) {
        return;
    }
    ProcessSlotShm& s = shm_->slots[slot];
    if (s.owner_pid.load() == 0) {
        return;
    }
    s.state.store(static_cast<uint32_t>(SlotState::Retired));
    for (uint32_t h = 0; h < hook_count_; ++h) {
        hooks_[h].on_reclaim(hooks_[h].ctx, slot);
    }
    s.pid.store(0);
    s.heartbeat_us.store(0);
    s.state.store(static_cast<uint32_t>(SlotState::Free));
    // Last: the slot becomes claimable only after every hook has repaired its data.
    s.owner_pid.store(0);
}

uint32_t SlotTable::reclaimOrphans() {
    const auto me = static_cast<pid_t>(getpid());
    uint32_t n = 0;
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        const ProcessSlotShm& s = shm_->slots[i];
        const auto owner = static_cast<pid_t>(s.owner_pid.load());
        if (owner == 0 || owner == me || processExists(owner)) {
            continue;
        }
        const auto pid = static_cast<pid_t>(s.pid.load());
        if (processExists(pid)) {
            continue;  // still draining; reclaimed by a later call once it exits
        }
        LOG_NOTICE("process slot %u: reclaiming after pid %d (owner %d) exited", i,
                   static_cast<int>(pid), static_cast<int>(owner));
        reclaim(i);
        ++n;
    }
    return n;
}

bool SlotTable::addHook(const SlotHook& hook) {
    if (hook.name == nullptr || hook.on_reclaim == nullptr) {
        return false;
    }
    for (uint32_t h = 0; h < hook_count_; ++h) {
        if (sameName(hooks_[h].name, hook.name)) {
            hooks_[h] = hook;
            return true;
        }
    }
    if (hook_count_ == kMaxHooks) {
        return false;
    }
    hooks_[hook_count_++] = hook;
    return true;
}

bool SlotTable::removeHook(const char* name) {
    for (uint32_t h = 0; h < hook_count_; ++h) {
        if (sameName(hooks_[h].name, name)) {
            for (uint32_t k = h + 1; k < hook_count_; ++k) {
                hooks_[k - 1] = hooks_[k];
            }
            --hook_count_;
            return true;
        }
    }
    return false;
}

void SlotTable::heartbeat(uint32_t slot, uint64_t now_us) {
    if (slot < kMaxSlots) {
        // Relaxed: the heartbeat is a standalone monitoring value; it publishes no other data.
        shm_->slots[slot].heartbeat_us.store(now_us, std::memory_order_relaxed);
    }
}

SlotInfo SlotTable::info(uint32_t slot) const {
    SlotInfo out;
    if (slot >= kMaxSlots) {
        return out;
    }
    const ProcessSlotShm& s = shm_->slots[slot];
    out.owner_pid = static_cast<pid_t>(s.owner_pid.load());
    out.state = out.owner_pid == 0 ? SlotState::Free : static_cast<SlotState>(s.state.load());
    out.pid = static_cast<pid_t>(s.pid.load());
    out.generation = s.generation.load();
    out.incarnation = s.incarnation.load();
    out.started_us = s.started_us.load();
    out.heartbeat_us = s.heartbeat_us.load(std::memory_order_relaxed);
    return out;
}

std::optional<uint32_t> SlotTable::findPid(pid_t pid) const {
    if (pid <= 0) {
        return std::nullopt;
    }
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        const ProcessSlotShm& s = shm_->slots[i];
        if (s.owner_pid.load() != 0 && static_cast<pid_t>(s.pid.load()) == pid) {
            return i;
        }
    }
    return std::nullopt;
}

uint32_t SlotTable::usedCount() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        n += shm_->slots[i].owner_pid.load() != 0 ? 1u : 0u;
    }
    return n;
}

}  // namespace photon::shm
