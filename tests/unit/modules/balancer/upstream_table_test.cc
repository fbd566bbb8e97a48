// SPDX-License-Identifier: Apache-2.0
// Tests for UpstreamTable, including a multi-process kill -9 + reclaim run.
#include "modules/balancer/upstream_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <random>

#include "balancer_test_util.h"
#include "modules/balancer/balancer.h"
#include "shm/clock.h"
#include "shm/seqlock.h"
#include "shm/slot_table.h"

namespace photon::mod::balancer {
namespace {

using testing::backendSpec;

constexpr uint64_t kSecond = 1000000;

class UpstreamTableTest : public testing::TableFixture {};

TEST(UpstreamTableGeometryTest, CapacityIsAPowerOfTwoWithHeadroom) {
    EXPECT_EQ(UpstreamTable::capacityFor(0), 64u);
    EXPECT_EQ(UpstreamTable::capacityFor(32), 64u);
    EXPECT_EQ(UpstreamTable::capacityFor(33), 128u);
    EXPECT_EQ(UpstreamTable::capacityFor(16384), 32768u);
    EXPECT_EQ(UpstreamTable::capacityFor(16385), 0u);  // beyond kMaxCapacity
    EXPECT_EQ(UpstreamTable::backendCapacityFor(3), 16u);
    EXPECT_EQ(UpstreamTable::backendCapacityFor(9), 32u);
    EXPECT_NE(UpstreamTable::fingerprint(64, 16), UpstreamTable::fingerprint(128, 16));
    EXPECT_NE(UpstreamTable::fingerprint(64, 16), UpstreamTable::fingerprint(64, 32));
}

TEST_F(UpstreamTableTest, BindRejectsBadCapacitiesAndAnotherGeometry) {
    EXPECT_FALSE(UpstreamTable::bind(*seg_, 63, 16).ok());
    EXPECT_FALSE(UpstreamTable::bind(*seg_, 128, 16).ok());  // segment too small
    auto* hdr = reinterpret_cast<UpstreamTableHeaderShm*>(seg_->body());
    hdr->backend_capacity.store(32);
    EXPECT_FALSE(UpstreamTable::bind(*seg_, 64, 16).ok());
}

TEST_F(UpstreamTableTest, BindUpstreamFindsTheSameKeyAndReportsCreation) {
    bool created = false;
    auto a = table().bindUpstream("api\n10.0.0.1:80\n0", 1, true, &created);
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(created);
    auto b = table().bindUpstream("api\n10.0.0.2:80\n0", 1, true, &created);
    ASSERT_TRUE(b.ok());
    EXPECT_NE(*a, *b);
    auto again = table().bindUpstream("api\n10.0.0.1:80\n0", 2, false, &created);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(created);
    EXPECT_EQ(*again, *a);
    EXPECT_TRUE(table().isHealthy(*a));  // existing record keeps its state
    EXPECT_EQ(table().recordGeneration(*a), 2u);
    EXPECT_FALSE(table().bindUpstream("", 1, true).ok());
    EXPECT_FALSE(table().bindUpstream(std::string(kMaxKeyBytes + 1, 'k'), 1, true).ok());
}

TEST_F(UpstreamTableTest, StateSurvivesSegmentReuseButNotACapacityChange) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    ASSERT_TRUE(table().setHealth(rec(1), 0, false, 5, HealthError::Timeout));

    ASSERT_TRUE(openTable(64, 16));  // what a reload (or an upgraded binary) does
    EXPECT_TRUE(seg_->reused());
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    EXPECT_TRUE(table().isHealthy(rec(0)));
    EXPECT_FALSE(table().isHealthy(rec(1)));
    EXPECT_EQ(table().snapshot(rec(1), 0).last_error, HealthError::Timeout);

    ASSERT_TRUE(openTable(128, 16));
    EXPECT_FALSE(seg_->reused());
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    EXPECT_TRUE(table().isHealthy(rec(1)));
}

TEST_F(UpstreamTableTest, RecordCheckAppliesHysteresisBothWays) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t r = rec(0);
    const HealthThresholds th{3, 2};
    const uint32_t helper = 9;
    EXPECT_EQ(table().recordCheck(r, helper, false, 10, HealthError::ConnectRefused, 0, th),
              HealthTransition::None);
    EXPECT_EQ(table().recordCheck(r, helper, false, 20, HealthError::ConnectRefused, 0, th),
              HealthTransition::None);
    EXPECT_TRUE(table().isHealthy(r));
    EXPECT_EQ(table().recordCheck(r, helper, false, 30, HealthError::BadStatus, 503, th),
              HealthTransition::BecameUnhealthy);
    EXPECT_FALSE(table().isHealthy(r));
    UpstreamSnapshot s = table().snapshot(r, 30);
    EXPECT_EQ(s.consecutive_failures, 3u);
    EXPECT_EQ(s.last_error, HealthError::BadStatus);
    EXPECT_EQ(s.last_http_status, 503u);
    EXPECT_EQ(s.last_check_us, 30u);
    EXPECT_EQ(s.health_changes, 1u);

    EXPECT_EQ(table().recordCheck(r, helper, true, 40, HealthError::None, 200, th),
              HealthTransition::None);
    EXPECT_FALSE(table().isHealthy(r));
    // A failure in between resets the success streak.
    EXPECT_EQ(table().recordCheck(r, helper, false, 50, HealthError::Timeout, 0, th),
              HealthTransition::None);
    EXPECT_EQ(table().recordCheck(r, helper, true, 60, HealthError::None, 200, th),
              HealthTransition::None);
    EXPECT_EQ(table().recordCheck(r, helper, true, 70, HealthError::Timeout, 200, th),
              HealthTransition::BecameHealthy);
    s = table().snapshot(r, 70);
    EXPECT_TRUE(s.healthy);
    EXPECT_EQ(s.consecutive_successes, 2u);
    EXPECT_EQ(s.consecutive_failures, 0u);
    EXPECT_EQ(s.last_error, HealthError::None);  // ignored on success
    EXPECT_EQ(s.health_changes, 2u);
}

TEST_F(UpstreamTableTest, SetHealthAndDrainedKeepEachOther) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t r = rec(0);
    ASSERT_TRUE(table().setDrained(r, shm::SeqLock::kMasterWriter, true));
    ASSERT_TRUE(table().setHealth(r, 3, false, 1, HealthError::Resolve));
    EXPECT_TRUE(table().isDrained(r));
    EXPECT_FALSE(table().isHealthy(r));
    ASSERT_TRUE(table().setDrained(r, shm::SeqLock::kMasterWriter, false));
    EXPECT_FALSE(table().isDrained(r));
    EXPECT_FALSE(table().isHealthy(r));
    EXPECT_EQ(healthErrorName(table().snapshot(r, 0).last_error), "resolve");
}

TEST_F(UpstreamTableTest, PassiveFailuresFromAllSlotsEjectForFailTimeout) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t r = rec(0);
    table().pinSlot(0, plan().generation());
    table().pinSlot(1, plan().generation());
    const uint64_t t0 = 1000 * kSecond;
    EXPECT_FALSE(table().reportFailure(r, 0, t0, 3, 10 * kSecond));
    EXPECT_FALSE(table().reportFailure(r, 1, t0 + 1000, 3, 10 * kSecond));
    EXPECT_FALSE(table().isEjected(r, t0 + 2000));
    EXPECT_TRUE(table().reportFailure(r, 1, t0 + 2000, 3, 10 * kSecond));
    EXPECT_TRUE(table().isEjected(r, t0 + 2000));
    const uint64_t until = table().snapshot(r, t0).ejected_until_us;
    EXPECT_EQ(until, t0 + 2000 + 10 * kSecond);

    // Failures during the ejection neither extend it nor count toward the next one.
    EXPECT_FALSE(table().reportFailure(r, 0, t0 + 5 * kSecond, 3, 10 * kSecond));
    EXPECT_FALSE(table().reportFailure(r, 0, t0 + 6 * kSecond, 3, 10 * kSecond));
    EXPECT_EQ(table().snapshot(r, t0).ejected_until_us, until);
    EXPECT_FALSE(table().isEjected(r, until));  // always expires
    EXPECT_FALSE(table().reportFailure(r, 0, until + 1000, 3, 10 * kSecond));
    EXPECT_FALSE(table().isEjected(r, until + 1000));
    EXPECT_EQ(table().snapshot(r, until).failures_total, 6u);
}

TEST_F(UpstreamTableTest, FailuresOutsideTheWindowOrBeforeASuccessDoNotCount) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t r = rec(0);
    table().pinSlot(0, plan().generation());
    const uint64_t t0 = 1000 * kSecond;
    EXPECT_FALSE(table().reportFailure(r, 0, t0, 2, kSecond));
    EXPECT_FALSE(table().reportFailure(r, 0, t0 + 3 * kSecond, 2, kSecond));  // first one expired
    table().reportSuccess(r, 0);
    EXPECT_FALSE(table().reportFailure(r, 0, t0 + 3 * kSecond + 10, 2, kSecond));
    EXPECT_TRUE(table().reportFailure(r, 0, t0 + 3 * kSecond + 20, 2, kSecond));
}

TEST_F(UpstreamTableTest, MaxFailsZeroNeverEjects) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    table().pinSlot(0, plan().generation());
    for (int i = 0; i < 100; ++i) {
        EXPECT_FALSE(table().reportFailure(rec(0), 0, 1000 + i, 0, kSecond));
    }
    EXPECT_FALSE(table().isEjected(rec(0), 1100));
    EXPECT_EQ(table().snapshot(rec(0), 0).failures_total, 100u);
}

TEST_F(UpstreamTableTest, ReclaimZeroesGaugesAndFoldsCountersIntoRetired) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    table().pinSlot(2, plan().generation());
    table().pinSlot(5, plan().generation());
    for (int i = 0; i < 3; ++i) {
        table().acquire(rec(0), 2);
    }
    table().release(rec(0), 2);
    table().acquire(rec(0), 5);
    table().reportFailure(rec(0), 2, 1000, 5, kSecond);
    EXPECT_EQ(table().inflight(rec(0)), 3u);
    EXPECT_EQ(table().snapshot(rec(0), 0).requests_total, 4u);

    table().reclaimSlot(2);
    EXPECT_EQ(table().inflightOf(rec(0), 2), 0u);
    EXPECT_EQ(table().inflight(rec(0)), 1u);
    const UpstreamSnapshot s = table().snapshot(rec(0), 0);
    EXPECT_TRUE(s.consistent);
    EXPECT_EQ(s.requests_total, 4u);  // never goes backwards
    EXPECT_EQ(s.failures_total, 1u);
    EXPECT_EQ(table().activeSlots() & (1ull << 2), 0u);
    EXPECT_NE(table().activeSlots() & (1ull << 5), 0u);

    // The slot's next process starts from zero and adds on top.
    table().pinSlot(2, plan().generation());
    table().acquire(rec(0), 2);
    EXPECT_EQ(table().snapshot(rec(0), 0).requests_total, 5u);
}

TEST_F(UpstreamTableTest, ReclaimVoidsAHealthWriteLeftOpenByADeadWriter) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t r = rec(0);
    auto& rec_shm = const_cast<UpstreamRecordShm&>(table().record(r));
    uint64_t token = 0;
    ASSERT_TRUE(shm::SeqLock::tryBeginWrite(rec_shm.health_seq, 7, token));  // slot 7 dies here
    EXPECT_FALSE(table().snapshot(r, 0).consistent);
    EXPECT_FALSE(table().setHealth(r, 8, false, 1, HealthError::Io));
    EXPECT_EQ(table().recordCheck(r, 8, false, 1, HealthError::Io, 0, {}), HealthTransition::Busy);

    table().reclaimSlot(7);
    EXPECT_TRUE(table().snapshot(r, 0).consistent);
    EXPECT_TRUE(table().setHealth(r, 8, false, 1, HealthError::Io));
}

TEST_F(UpstreamTableTest, GarbageCollectionKeepsGenerationsPinnedByLiveSlots) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1, 1})));
    const uint32_t gen1 = plan().generation();
    const uint32_t removed = rec(0);
    table().pinSlot(3, gen1);  // an old worker still running generation 1

    BackendSpec next = backendSpec("api", Algorithm::RoundRobin, {1});
    next.upstreams[0].address = testing::addr(1);
    ASSERT_TRUE(build(next));
    const uint32_t gen2 = plan().generation();
    table().pinSlot(4, gen2);

    EXPECT_EQ(table().collectGarbage(gen2), 0u);
    EXPECT_TRUE(table().recordInUse(removed));

    table().reclaimSlot(3);  // the old worker exited
    EXPECT_EQ(table().collectGarbage(gen2), 1u);
    EXPECT_FALSE(table().recordInUse(removed));
    EXPECT_TRUE(table().recordInUse(rec(0)));

    // The freed record is reused for a new key, starting from zero.
    table().acquire(rec(0), 4);
    bool created = false;
    auto fresh = table().bindUpstream("other\nx:1\n0", gen2, true, &created);
    ASSERT_TRUE(fresh.ok());
    EXPECT_TRUE(created);
    EXPECT_EQ(table().inflight(*fresh), 0u);
}

TEST_F(UpstreamTableTest, AnUnpinnedActiveSlotBlocksGarbageCollection) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    const uint32_t old = rec(0);
    BackendSpec next = backendSpec("api", Algorithm::RoundRobin, {1});
    next.upstreams[0].address = testing::addr(9);
    ASSERT_TRUE(build(next));
    table().activateSlot(6);  // forked, not pinned yet: may run any recent plan
    EXPECT_EQ(table().collectGarbage(plan().generation()), 0u);
    EXPECT_TRUE(table().recordInUse(old));
    table().pinSlot(6, plan().generation());
    EXPECT_EQ(table().collectGarbage(plan().generation()), 1u);
    EXPECT_FALSE(table().recordInUse(old));
}

TEST_F(UpstreamTableTest, SlotHookActivatesAndReclaimsThroughTheSlotTable) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    auto slots_shm = std::make_unique<shm::SlotTableShm>();
    shm::SlotTable slots(slots_shm.get());
    ASSERT_TRUE(slots.addHook(table().slotHook()));
    auto s = slots.acquire(shm::SlotState::Worker, 1, 0);
    ASSERT_TRUE(s.ok());
    EXPECT_NE(table().activeSlots() & (1ull << *s), 0u);
    EXPECT_EQ(table().pinnedGeneration(*s), 0u);
    table().pinSlot(*s, plan().generation());
    table().acquire(rec(0), *s);
    EXPECT_EQ(table().inflight(rec(0)), 1u);
    slots.reclaim(*s);
    EXPECT_EQ(table().activeSlots() & (1ull << *s), 0u);
    EXPECT_EQ(table().inflightOf(rec(0), *s), 0u);
    EXPECT_EQ(table().snapshot(rec(0), 0).requests_total, 1u);
}

TEST_F(UpstreamTableTest, ReclaimInactiveRepairsSlotsTheSlotTableNoLongerKnows) {
    ASSERT_TRUE(build(backendSpec("api", Algorithm::RoundRobin, {1})));
    auto slots_shm = std::make_unique<shm::SlotTableShm>();
    shm::SlotTable slots(slots_shm.get());
    auto live = slots.acquire(shm::SlotState::Worker, 1, 0);
    ASSERT_TRUE(live.ok());
    table().pinSlot(*live, plan().generation());
    table().pinSlot(40, plan().generation());  // left over by a previous master
    table().acquire(rec(0), *live);
    table().acquire(rec(0), 40);
    EXPECT_EQ(table().inflight(rec(0)), 2u);
    EXPECT_EQ(table().reclaimInactive(slots), 1u);
    EXPECT_EQ(table().inflight(rec(0)), 1u);
}

// ---- multi-process: SIGKILL of a worker at a random point, then reclaim -------------------

constexpr int kChildren = 4;
constexpr uint32_t kUpstreams = 4;
constexpr uint32_t kMaxConnections = 5;
constexpr uint32_t kMaxHeld = 8;

struct ChildControl {
    shm::Atomic64 progress;
    shm::Atomic64 reported;
    shm::Atomic64 outstanding[kUpstreams];
};

struct Control {
    shm::Atomic64 stop;
    shm::Atomic64 exit;
    ChildControl child[kChildren];
};

/// Child body: random pick+acquire / release until told to stop; then report what it holds, wait,
/// release everything and exit.
[[noreturn]] void hammer(Balancer& bal, Control* ctl, int idx, uint64_t seed) {
    Rng rng(seed);
    uint32_t held[kMaxHeld];
    uint32_t n = 0;
    uint64_t per[kUpstreams] = {};
    uint8_t ip[4] = {10, 0, 0, 0};
    while (ctl->stop.load() == 0) {
        PickContext ctx;
        ctx.now_us = 1;
        ip[3] = static_cast<uint8_t>(rng.below(256));
        ctx.client_addr = ip;
        if (n < kMaxHeld && (n == 0 || rng.below(2) == 0)) {
            const uint32_t backend = rng.below(2);  // least_connections or ip_hash
            const Pick p = bal.pick(backend, ctx);
            if (p.ok()) {
                bal.acquire(p.upstream);
                held[n++] = p.upstream;
                ++per[p.upstream % kUpstreams];
            }
        } else if (n != 0) {
            const uint32_t k = rng.below(n);
            const uint32_t u = held[k];
            held[k] = held[--n];
            bal.release(u);
            --per[u % kUpstreams];
        }
        ctl->child[idx].progress.fetchAdd(1);
    }
    for (uint32_t u = 0; u < kUpstreams; ++u) {
        ctl->child[idx].outstanding[u].store(per[u]);
    }
    ctl->child[idx].reported.store(1);
    while (ctl->exit.load() == 0) {
    }
    for (uint32_t k = 0; k < n; ++k) {
        bal.release(held[k]);
    }
    _exit(0);
}

TEST_F(UpstreamTableTest, KilledWorkerIsRepairedByReclaimAndCountsStayExact) {
    BalancerInput in;
    in.backends.push_back(
        backendSpec("lc", Algorithm::LeastConnections, {1, 1, 1, 1}, kMaxConnections));
    in.backends.push_back(backendSpec("hash", Algorithm::IpHash, {1, 1, 1, 1}, kMaxConnections));
    ASSERT_TRUE(build(in));
    // Upstream u of "lc" and upstream u of "hash" are separate records (state is per backend);
    // children count what they hold per (upstream index % kUpstreams), so compare those sums.
    auto inflightOfIndex = [&](uint32_t i) {
        return table().inflight(rec(i)) + table().inflight(rec(i + kUpstreams));
    };

    void* mem =
        mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* ctl = static_cast<Control*>(mem);

    auto slots_shm = std::make_unique<shm::SlotTableShm>();
    shm::SlotTable slots(slots_shm.get());
    ASSERT_TRUE(slots.addHook(table().slotHook()));

    const uint64_t seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rnd(seed);
    const int victim = static_cast<int>(rnd() % kChildren);
    const uint64_t kill_at = 50 + rnd() % 20000;

    pid_t pids[kChildren];
    uint32_t child_slot[kChildren];
    for (int i = 0; i < kChildren; ++i) {
        auto s = slots.acquire(shm::SlotState::Worker, plan().generation(), 0);
        ASSERT_TRUE(s.ok());
        child_slot[i] = *s;
        const pid_t parent = getpid();
        pids[i] = fork();
        ASSERT_GE(pids[i], 0);
        if (pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) {
                _exit(3);
            }
            Balancer bal(plan(), table(), child_slot[i], seed + static_cast<uint64_t>(i));
            hammer(bal, ctl, i, seed * 31 + static_cast<uint64_t>(i));
        }
        slots.setPid(child_slot[i], pids[i]);
    }
    auto cleanup = [&] {
        for (pid_t p : pids) {
            kill(p, SIGKILL);
            waitpid(p, nullptr, 0);
        }
    };
    // Hang protection only (the run normally takes milliseconds); not a timing assertion.
    const uint64_t deadline = shm::monotonicMicros() + 30 * kSecond;
    auto waitFor = [&](auto cond) {
        while (!cond()) {
            if (shm::monotonicMicros() > deadline) {
                return false;
            }
            sched_yield();
        }
        return true;
    };

    if (!waitFor([&] { return ctl->child[victim].progress.load() >= kill_at; })) {
        cleanup();
        FAIL() << "children made no progress";
    }
    ASSERT_EQ(kill(pids[victim], SIGKILL), 0);
    int st = 0;
    ASSERT_EQ(waitpid(pids[victim], &st, 0), pids[victim]);
    ASSERT_TRUE(WIFSIGNALED(st));

    // Survivors keep working next to the dead worker's stale gauges.
    uint64_t mark[kChildren];
    for (int i = 0; i < kChildren; ++i) {
        mark[i] = ctl->child[i].progress.load();
    }
    for (int i = 0; i < kChildren; ++i) {
        if (i != victim &&
            !waitFor([&] { return ctl->child[i].progress.load() >= mark[i] + 2000; })) {
            cleanup();
            FAIL() << "survivor " << i << " stalled";
        }
    }
    ctl->stop.store(1);
    for (int i = 0; i < kChildren; ++i) {
        if (i != victim && !waitFor([&] { return ctl->child[i].reported.load() == 1; })) {
            cleanup();
            FAIL() << "survivor " << i << " did not report";
        }
    }

    auto requestsTotal = [&] {
        uint64_t sum = 0;
        for (uint32_t u = 0; u < plan().upstreamCount(); ++u) {
            sum += table().snapshot(rec(u), 0).requests_total;
        }
        return sum;
    };
    const uint64_t before_reclaim = requestsTotal();
    slots.reclaim(child_slot[victim]);
    EXPECT_EQ(requestsTotal(), before_reclaim);
    for (uint32_t u = 0; u < kUpstreams; ++u) {
        uint64_t expected = 0;
        for (int i = 0; i < kChildren; ++i) {
            if (i != victim) {
                expected += ctl->child[i].outstanding[u].load();
            }
        }
        EXPECT_EQ(inflightOfIndex(u), expected) << "upstream " << u;
        EXPECT_EQ(table().inflightOf(rec(u), child_slot[victim]), 0u);
        EXPECT_EQ(table().inflightOf(rec(u + kUpstreams), child_slot[victim]), 0u);
    }

    ctl->exit.store(1);
    for (int i = 0; i < kChildren; ++i) {
        if (i == victim) {
            continue;
        }
        ASSERT_EQ(waitpid(pids[i], &st, 0), pids[i]);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        slots.reclaim(child_slot[i]);
    }
    for (uint32_t u = 0; u < plan().upstreamCount(); ++u) {
        EXPECT_EQ(table().inflight(rec(u)), 0u) << "upstream " << u;
    }
    EXPECT_EQ(requestsTotal(), before_reclaim);
    EXPECT_EQ(table().activeSlots(), 0u);

    // Nothing is stuck "full": exactly kUpstreams * kMaxConnections acquisitions fit again.
    auto s = slots.acquire(shm::SlotState::Worker, plan().generation(), 0);
    ASSERT_TRUE(s.ok());
    Balancer bal(plan(), table(), *s, 1);
    PickContext ctx;
    ctx.now_us = 1;
    for (uint32_t k = 0; k < kUpstreams * kMaxConnections; ++k) {
        const Pick p = bal.pick(0, ctx);
        ASSERT_TRUE(p.ok()) << "acquisition " << k;
        bal.acquire(p.upstream);
    }
    EXPECT_FALSE(bal.pick(0, ctx).ok());
    slots.reclaim(*s);
    munmap(mem, sizeof(Control));
}

}  // namespace
}  // namespace photon::mod::balancer
