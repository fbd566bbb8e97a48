// SPDX-License-Identifier: Apache-2.0
// GCRA decisions: token-bucket semantics, slow rates, key table limits, and exact admission
// counts with several processes deciding on one shared key.
#include "modules/ratelimit/gcra.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

namespace photon::mod::ratelimit {
namespace {

using Kind = GcraDecision::Kind;

class GcraTest : public ::testing::Test {
protected:
    explicit GcraTest(size_t cap = 64) : slots_(cap), table_(slots_.data(), cap) {}
    std::vector<RateSlotShm> slots_;
    GcraTable table_;
};

TEST_F(GcraTest, FullBucketThenRefillAtTheRate) {
    GcraParams p = GcraParams::make(10, 5);  // 10/s, burst 5
    const uint64_t k = GcraTable::keyHash("1.2.3.4", 7);
    uint64_t t = 1'000'000'000;
    for (int i = 0; i < 5; ++i) {
        GcraDecision d = table_.decide(k, t, p);
        ASSERT_EQ(d.kind, Kind::Allowed) << i;
        EXPECT_EQ(d.remaining, 4u - static_cast<uint32_t>(i));
    }
    GcraDecision d = table_.decide(k, t, p);
    EXPECT_EQ(d.kind, Kind::Limited);
    EXPECT_EQ(d.retry_after_us, 100'000u);  // one token every 100 ms
    EXPECT_EQ(d.reset_us, 500'000u);
    EXPECT_EQ(table_.decide(k, t + 99'999, p).kind, Kind::Limited);
    EXPECT_EQ(table_.decide(k, t + 100'000, p).kind, Kind::Allowed);
    EXPECT_EQ(table_.decide(k, t + 100'000, p).kind, Kind::Limited);
    // Over a window of 2 s from a full bucket: burst + rate * 2 s admissions.
    int admitted = 0;
    uint64_t t0 = 5'000'000'000;
    const uint64_t k2 = GcraTable::keyHash("other", 7);
    for (uint64_t now = t0; now <= t0 + 2'000'000; now += 1'000) {
        admitted += table_.decide(k2, now, p).kind == Kind::Allowed;
    }
    EXPECT_EQ(admitted, 5 + 20);
}

TEST_F(GcraTest, SlowRatesAndRateZero) {
    GcraParams half = GcraParams::make(0.5, 1);  // one request every 2 s
    const uint64_t k = GcraTable::keyHash("k", 1);
    EXPECT_EQ(table_.decide(k, 10'000'000, half).kind, Kind::Allowed);
    EXPECT_EQ(table_.decide(k, 11'999'999, half).kind, Kind::Limited);
    EXPECT_EQ(table_.decide(k, 12'000'000, half).kind, Kind::Allowed);

    GcraParams zero = GcraParams::make(0, 3);  // only the initial burst, ever
    const uint64_t z = GcraTable::keyHash("z", 1);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(table_.decide(z, 1'000'000ull * i, zero).kind, Kind::Allowed);
    }
    EXPECT_EQ(table_.decide(z, 999'000'000'000, zero).kind, Kind::Limited);
    EXPECT_EQ(table_.decide(GcraTable::keyHash("n", 1), 1, GcraParams::make(5, 0)).kind,
              Kind::Limited);  // burst 0 admits nothing
}

TEST_F(GcraTest, KeysAreIndependentAndTheTableIsBounded) {
    GcraParams p = GcraParams::make(1, 1);
    const uint64_t now = 100'000'000;
    // 64 slots, 16-slot probes: keys whose slots are all taken by busy keys get TableFull.
    int full = 0, allowed = 0;
    for (int i = 0; i < 200; ++i) {
        GcraDecision d = table_.decide(GcraTable::keyHash(std::to_string(i), 3), now, p);
        full += d.kind == Kind::TableFull;
        allowed += d.kind == Kind::Allowed;
    }
    EXPECT_EQ(allowed, 64);  // every slot holds one busy key
    EXPECT_EQ(full, 136);
    // Once their buckets are full again (1 s later), idle keys give their slots to new ones.
    EXPECT_EQ(table_.decide(GcraTable::keyHash("late", 3), now + 1'000'000, p).kind, Kind::Allowed);
}

TEST(GcraProcessTest, SharedKeyAdmitsExactlyTheBurstAcrossProcesses) {
    const size_t cap = 64;
    void* mem = mmap(nullptr, GcraTable::bytesFor(cap), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* slots = static_cast<RateSlotShm*>(mem);
    // The table uses the first half; a word of the second half counts admissions.
    auto* admitted = reinterpret_cast<shm::Atomic64*>(slots + cap - 1);
    GcraTable table(slots, cap / 2);
    GcraParams p = GcraParams::make(0, 1000);  // no refill: exactly 1000 admissions
    const uint64_t key = GcraTable::keyHash("shared", 9);
    std::vector<pid_t> kids;
    for (int c = 0; c < 4; ++c) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            for (int i = 0; i < 2000; ++i) {
                if (table.decide(key, 1, p).kind == Kind::Allowed) {
                    admitted->fetchAdd(1);
                }
            }
            _exit(0);
        }
        kids.push_back(pid);
    }
    for (pid_t pid : kids) {
        int st = 0;
        waitpid(pid, &st, 0);
        EXPECT_TRUE(WIFEXITED(st));
    }
    EXPECT_EQ(admitted->load(), 1000u);
    munmap(mem, GcraTable::bytesFor(cap));
}

}  // namespace
}  // namespace photon::mod::ratelimit
