// SPDX-License-Identifier: Apache-2.0
// Tests for Atomic64/Atomic32: value semantics, RMW results and atomicity across processes.
#include "shm/atomic.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace photon::shm {
namespace {

TEST(AtomicWordTest, ZeroedMemoryReadsAsZero) {
    alignas(8) unsigned char raw[sizeof(Atomic64)];
    memset(raw, 0, sizeof raw);
    Atomic64 w;
    memcpy(&w, raw, sizeof w);
    EXPECT_EQ(w.load(), 0u);
}

TEST(AtomicWordTest, StoreThenLoadRoundTrips) {
    Atomic64 a{};
    Atomic32 b{};
    a.store(0x1122334455667788ull);
    b.store(0xdeadbeefu);
    EXPECT_EQ(a.load(), 0x1122334455667788ull);
    EXPECT_EQ(b.load(), 0xdeadbeefu);
}

TEST(AtomicWordTest, FetchOpsReturnPreviousValue) {
    Atomic64 a{};
    a.store(10);
    EXPECT_EQ(a.fetchAdd(5), 10u);
    EXPECT_EQ(a.fetchSub(3), 15u);
    EXPECT_EQ(a.fetchOr(0x100), 12u);
    EXPECT_EQ(a.fetchAnd(0xff), 0x10cu);
    EXPECT_EQ(a.exchange(7), 0x0cu);
    EXPECT_EQ(a.load(), 7u);
}

TEST(AtomicWordTest, CasFailureReportsCurrentValue) {
    Atomic32 a{};
    a.store(3);
    uint32_t expected = 4;
    EXPECT_FALSE(a.cas(expected, 9));
    EXPECT_EQ(expected, 3u);
    EXPECT_TRUE(a.cas(expected, 9));
    EXPECT_EQ(a.load(), 9u);
}

TEST(AtomicWordTest, FetchAddIsAtomicAcrossProcesses) {
    void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* counter = static_cast<Atomic64*>(mem);
    constexpr int kChildren = 3;
    constexpr int kAdds = 20000;
    pid_t pids[kChildren];
    for (pid_t& pid : pids) {
        pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            for (int i = 0; i < kAdds; ++i) {
                counter->fetchAdd(1);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < kAdds; ++i) {
        counter->fetchAdd(1);
    }
    for (pid_t pid : pids) {
        int st = 0;
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    EXPECT_EQ(counter->load(), uint64_t{kAdds} * (kChildren + 1));
    munmap(mem, 4096);
}

}  // namespace
}  // namespace photon::shm
