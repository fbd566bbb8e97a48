// SPDX-License-Identifier: Apache-2.0
#include "worker/pipe_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

namespace photon::worker {
namespace {

bool fdOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(PipePool, AcquireGivesAWorkingNonBlockingPipe) {
    PipePool pool;
    Pipe p;
    ASSERT_TRUE(pool.acquire(p));
    ASSERT_TRUE(p.open());
    EXPECT_EQ(p.len, 0u);
    EXPECT_TRUE(::fcntl(p.rfd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(p.rfd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(::write(p.wfd, "abc", 3), 3);
    char buf[8];
    ASSERT_EQ(::read(p.rfd, buf, sizeof buf), 3);
    EXPECT_EQ(::read(p.rfd, buf, sizeof buf), -1);  // empty and non-blocking
    pool.release(p);
    EXPECT_FALSE(p.open());
}

TEST(PipePool, EmptyPipeIsReusedAndTrimCloses) {
    PipePool pool;
    Pipe p;
    ASSERT_TRUE(pool.acquire(p));
    int r = p.rfd, w = p.wfd;
    pool.release(p);
    EXPECT_EQ(pool.cached(), 1u);
    EXPECT_TRUE(fdOpen(r));
    Pipe q;
    ASSERT_TRUE(pool.acquire(q));
    EXPECT_EQ(q.rfd, r);
    EXPECT_EQ(q.wfd, w);
    EXPECT_EQ(pool.cached(), 0u);
    pool.release(q);
    pool.trim();
    EXPECT_EQ(pool.cached(), 0u);
    EXPECT_FALSE(fdOpen(r));
    EXPECT_FALSE(fdOpen(w));
}

TEST(PipePool, PipeHoldingBytesIsClosedNotCached) {
    PipePool pool;
    Pipe p;
    ASSERT_TRUE(pool.acquire(p));
    ASSERT_EQ(::write(p.wfd, "leftover", 8), 8);
    p.len = 8;
    int r = p.rfd, w = p.wfd;
    pool.release(p);
    EXPECT_EQ(pool.cached(), 0u);
    EXPECT_FALSE(fdOpen(r));
    EXPECT_FALSE(fdOpen(w));
    Pipe q;
    ASSERT_TRUE(pool.acquire(q));
    char buf[16];
    EXPECT_EQ(::read(q.rfd, buf, sizeof buf), -1);  // a fresh pipe: no stale bytes
    pool.release(q);
}

TEST(PipePool, AcquireFailsCleanlyWithoutDescriptors) {
    PipePool pool;
    // Use up the descriptor table (a low limit keeps it cheap), then ask for a pipe.
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    std::vector<int> held;
    int base = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(base, 0);
    held.push_back(base);
    rlimit low = old;
    low.rlim_cur = 64;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    while (true) {
        int fd = ::dup(base);
        if (fd < 0) {
            break;
        }
        held.push_back(fd);
    }
    Pipe p;
    bool got = pool.acquire(p);
    for (int fd : held) {
        ::close(fd);
    }
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
    EXPECT_FALSE(got);
    EXPECT_FALSE(p.open());
}

TEST(PipePool, DisableIsSticky) {
    PipePool pool;
    EXPECT_TRUE(pool.enabled());
    pool.disable();
    EXPECT_FALSE(pool.enabled());
}

}  // namespace
}  // namespace photon::worker
