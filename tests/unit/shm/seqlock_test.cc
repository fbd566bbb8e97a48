// SPDX-License-Identifier: Apache-2.0
// Tests for SeqLock: writer tagging, writer exclusion, reader validation, recovery, cross-process.
#include "shm/seqlock.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace photon::shm {
namespace {

TEST(SeqLockTest, BeginWriteTagsWriterAndEndWriteAdvancesSequence) {
    Atomic64 v{};
    uint64_t token = 0;
    ASSERT_TRUE(SeqLock::tryBeginWrite(v, 5, token));
    EXPECT_TRUE(SeqLock::isWriting(v.load()));
    EXPECT_EQ(SeqLock::writerOf(v.load()), 5u);
    SeqLock::endWrite(v, token);
    EXPECT_FALSE(SeqLock::isWriting(v.load()));
    EXPECT_EQ(SeqLock::sequenceOf(v.load()), 1u);
}

TEST(SeqLockTest, SecondWriterIsRefusedWhileAWriteIsInProgress) {
    Atomic64 v{};
    uint64_t t1 = 0;
    uint64_t t2 = 0;
    ASSERT_TRUE(SeqLock::tryBeginWrite(v, 1, t1));
    EXPECT_FALSE(SeqLock::tryBeginWrite(v, 2, t2));
    SeqLock::endWrite(v, t1);
    EXPECT_TRUE(SeqLock::tryBeginWrite(v, 2, t2));
}

TEST(SeqLockTest, ReaderRejectsSnapshotsThatOverlapAWrite) {
    Atomic64 v{};
    const uint64_t begin = SeqLock::readBegin(v);
    EXPECT_TRUE(SeqLock::readValid(v, begin));
    uint64_t token = 0;
    ASSERT_TRUE(SeqLock::tryBeginWrite(v, 0, token));
    EXPECT_FALSE(SeqLock::readValid(v, begin));
    EXPECT_FALSE(SeqLock::readValid(v, SeqLock::readBegin(v)));  // odd: in progress
    SeqLock::endWrite(v, token);
    EXPECT_FALSE(SeqLock::readValid(v, begin));
    EXPECT_TRUE(SeqLock::readValid(v, SeqLock::readBegin(v)));
}

TEST(SeqLockTest, VoidIfOwnedByRecoversOnlyTheDeadWritersLock) {
    Atomic64 v{};
    uint64_t token = 0;
    ASSERT_TRUE(SeqLock::tryBeginWrite(v, 9, token));  // writer 9 "dies" here
    EXPECT_FALSE(SeqLock::voidIfOwnedBy(v, 8));
    EXPECT_TRUE(SeqLock::isWriting(v.load()));
    EXPECT_TRUE(SeqLock::voidIfOwnedBy(v, 9));
    EXPECT_FALSE(SeqLock::isWriting(v.load()));
    EXPECT_FALSE(SeqLock::voidIfOwnedBy(v, 9));
    EXPECT_TRUE(SeqLock::tryBeginWrite(v, SeqLock::kMasterWriter, token));
    EXPECT_EQ(SeqLock::writerOf(v.load()), SeqLock::kMasterWriter);
}

TEST(SeqLockTest, ReadersNeverAcceptATornRecordFromAnotherProcess) {
    struct Record {
        Atomic64 seq;
        Atomic64 a;
        Atomic64 b;
        Atomic64 done;
        Atomic64 reading;  // the reader has started
        Atomic64 seen;     // consistent reads so far (the writer goes on until there are some)
    };
    void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* r = static_cast<Record*>(mem);
    r->b.store(~uint64_t{0});  // the initial record (0, ~0) is consistent too
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        while (r->reading.load() == 0) {
        }
        // At least 200 000 writes, and on until the reader (which a loaded machine may keep
        // off the CPU for a while) has seen some whole records in between.
        uint64_t i = 1;
        for (; i <= 200000 || (r->seen.load(std::memory_order_relaxed) < 1000 && i < 100000000);
             ++i) {
            uint64_t token = 0;
            while (!SeqLock::tryBeginWrite(r->seq, 1, token)) {
            }
            r->a.store(i, std::memory_order_relaxed);
            r->b.store(~i, std::memory_order_relaxed);
            SeqLock::endWrite(r->seq, token);
        }
        r->done.store(i - 1);
        _exit(0);
    }
    uint64_t consistent = 0;
    r->reading.store(1);
    while (r->done.load() == 0) {
        const uint64_t v = SeqLock::readBegin(r->seq);
        const uint64_t a = r->a.load(std::memory_order_relaxed);
        const uint64_t b = r->b.load(std::memory_order_relaxed);
        if (SeqLock::readValid(r->seq, v)) {
            ASSERT_EQ(b, ~a) << "torn read accepted";
            r->seen.store(++consistent, std::memory_order_relaxed);
        }
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_GT(consistent, 0u);
    EXPECT_GE(r->done.load(), 200000u);
    EXPECT_EQ(r->a.load(), r->done.load());
    munmap(mem, 4096);
}

}  // namespace
}  // namespace photon::shm
