// SPDX-License-Identifier: Apache-2.0
// Tests for SlotTable: acquire/reclaim, the hook registry, orphan reclaim and slot lookups.
#include "shm/slot_table.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "shm_test_util.h"

namespace photon::shm {
namespace {

struct HookLog {
    std::vector<uint32_t> acquired;
    std::vector<uint32_t> reclaimed;
};

SlotHook loggingHook(const char* name, HookLog* log) {
    SlotHook h;
    h.name = name;
    h.ctx = log;
    h.on_acquire = [](void* ctx, uint32_t slot) {
        static_cast<HookLog*>(ctx)->acquired.push_back(slot);
    };
    h.on_reclaim = [](void* ctx, uint32_t slot) {
        static_cast<HookLog*>(ctx)->reclaimed.push_back(slot);
    };
    return h;
}

/// A pid that certainly belongs to no process: a reaped child's.
pid_t deadPid() {
    const pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return pid;
}

class SlotTableTest : public ::testing::Test {
protected:
    std::unique_ptr<SlotTableShm> shm_ = std::make_unique<SlotTableShm>();  // zeroed
    SlotTable table_{shm_.get()};
};

TEST_F(SlotTableTest, AcquireTakesLowestFreeSlotAndRecordsOwner) {
    auto a = table_.acquire(SlotState::Worker, 7, 1000);
    auto b = table_.acquire(SlotState::Helper, 7, 2000);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, 0u);
    EXPECT_EQ(*b, 1u);
    const SlotInfo ia = table_.info(0);
    EXPECT_EQ(ia.state, SlotState::Worker);
    EXPECT_EQ(ia.generation, 7u);
    EXPECT_EQ(ia.owner_pid, getpid());
    EXPECT_EQ(ia.started_us, 1000u);
    EXPECT_EQ(table_.info(1).state, SlotState::Helper);
    EXPECT_EQ(table_.usedCount(), 2u);

    table_.reclaim(0);
    EXPECT_EQ(table_.info(0).state, SlotState::Free);
    auto c = table_.acquire(SlotState::Worker, 8, 3000);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, 0u);
    EXPECT_EQ(table_.info(0).incarnation, 2u);
}

TEST_F(SlotTableTest, AcquireFailsWhenEverySlotIsTaken) {
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
        ASSERT_TRUE(table_.acquire(SlotState::Worker, 1, 0).ok());
    }
    EXPECT_FALSE(table_.acquire(SlotState::Worker, 1, 0).ok());
    table_.release(17);
    auto again = table_.acquire(SlotState::Worker, 1, 0);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 17u);
}

TEST_F(SlotTableTest, HooksRunOnAcquireAndReclaim) {
    HookLog log;
    ASSERT_TRUE(table_.addHook(loggingHook("test", &log)));
    auto s = table_.acquire(SlotState::Worker, 1, 0);
    ASSERT_TRUE(s.ok());
    table_.reclaim(*s);
    table_.reclaim(*s);  // already free: no hook call
    EXPECT_EQ(log.acquired, std::vector<uint32_t>{*s});
    EXPECT_EQ(log.reclaimed, std::vector<uint32_t>{*s});
}

TEST_F(SlotTableTest, AddHookReplacesSameNameAndRemoveHookUnregisters) {
    HookLog first;
    HookLog second;
    ASSERT_TRUE(table_.addHook(loggingHook("same", &first)));
    ASSERT_TRUE(table_.addHook(loggingHook("same", &second)));
    auto s = table_.acquire(SlotState::Worker, 1, 0);
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(first.acquired.empty());
    EXPECT_EQ(second.acquired.size(), 1u);
    EXPECT_TRUE(table_.removeHook("same"));
    EXPECT_FALSE(table_.removeHook("same"));
    table_.reclaim(*s);
    EXPECT_TRUE(second.reclaimed.empty());
}

TEST_F(SlotTableTest, AddHookRejectsIncompleteHooksAndOverflow) {
    SlotHook nameless;
    nameless.on_reclaim = [](void*, uint32_t) {};
    EXPECT_FALSE(table_.addHook(nameless));
    SlotHook no_reclaim;
    no_reclaim.name = "x";
    EXPECT_FALSE(table_.addHook(no_reclaim));

    static const char* const kNames[] = {"h0", "h1", "h2",  "h3",  "h4",  "h5",  "h6",  "h7",
                                         "h8", "h9", "h10", "h11", "h12", "h13", "h14", "h15"};
    HookLog log;
    for (const char* n : kNames) {
        ASSERT_TRUE(table_.addHook(loggingHook(n, &log)));
    }
    EXPECT_FALSE(table_.addHook(loggingHook("one-too-many", &log)));
}

TEST_F(SlotTableTest, ReclaimOrphansFreesOnlySlotsWhoseOwnerAndProcessAreGone) {
    HookLog log;
    ASSERT_TRUE(table_.addHook(loggingHook("test", &log)));
    const pid_t dead = deadPid();
    // Slot 3: owner and worker dead → orphan. Slot 4: owner dead, worker (us) alive → keep.
    // Slot 5: owned by us → keep (we reclaim our own children after waitpid).
    shm_->slots[3].owner_pid.store(static_cast<uint32_t>(dead));
    shm_->slots[3].pid.store(static_cast<uint32_t>(dead));
    shm_->slots[4].owner_pid.store(static_cast<uint32_t>(dead));
    shm_->slots[4].pid.store(static_cast<uint32_t>(getpid()));
    shm_->slots[5].owner_pid.store(static_cast<uint32_t>(getpid()));
    shm_->slots[5].pid.store(static_cast<uint32_t>(dead));
    for (uint32_t i : {3u, 4u, 5u}) {
        shm_->slots[i].state.store(static_cast<uint32_t>(SlotState::Worker));
    }

    EXPECT_EQ(table_.reclaimOrphans(), 1u);
    EXPECT_EQ(log.reclaimed, std::vector<uint32_t>{3});
    EXPECT_EQ(table_.info(3).state, SlotState::Free);
    EXPECT_NE(table_.info(4).state, SlotState::Free);
    EXPECT_NE(table_.info(5).state, SlotState::Free);
}

TEST_F(SlotTableTest, FindPidAndHeartbeatReflectTheSlot) {
    auto s = table_.acquire(SlotState::Worker, 1, 0);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(table_.findPid(4242).has_value());
    table_.setPid(*s, 4242);
    ASSERT_TRUE(table_.findPid(4242).has_value());
    EXPECT_EQ(*table_.findPid(4242), *s);
    table_.heartbeat(*s, 987654);
    EXPECT_EQ(table_.info(*s).heartbeat_us, 987654u);
    table_.reclaim(*s);
    EXPECT_FALSE(table_.findPid(4242).has_value());
}

TEST(SlotTableBindTest, FormatsFreshSegmentAndKeepsSlotsWhenReused) {
    testing::ScopedSegmentName name("slots");
    {
        auto seg = MappedSegment::create(name.str(), SlotTable::kBodyBytes,
                                         SlotTable::kLayoutVersion, SlotTable::kFingerprint);
        ASSERT_TRUE(seg.ok()) << seg.error().msg;
        auto table = SlotTable::bind(*seg);
        ASSERT_TRUE(table.ok()) << table.error().msg;
        EXPECT_EQ(table->shm()->max_slots.load(), kMaxSlots);
        ASSERT_TRUE(table->acquire(SlotState::Worker, 1, 0).ok());
    }
    auto seg = MappedSegment::create(name.str(), SlotTable::kBodyBytes, SlotTable::kLayoutVersion,
                                     SlotTable::kFingerprint);
    ASSERT_TRUE(seg.ok());
    EXPECT_TRUE(seg->reused());
    auto table = SlotTable::bind(*seg);
    ASSERT_TRUE(table.ok());
    EXPECT_EQ(table->usedCount(), 1u);

    reinterpret_cast<SlotTableShm*>(seg->body())->max_slots.store(kMaxSlots + 1);
    EXPECT_FALSE(SlotTable::bind(*seg).ok());
}

}  // namespace
}  // namespace photon::shm
