// SPDX-License-Identifier: Apache-2.0
#include "worker/io_batch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace photon::worker {
namespace {

/// A connected, non-blocking stream socket pair.
struct SockPair {
    int a = -1;
    int b = -1;
    SockPair() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0) {
            a = fds[0];
            b = fds[1];
        }
    }
    ~SockPair() {
        if (a >= 0) {
            ::close(a);
        }
        if (b >= 0) {
            ::close(b);
        }
    }
};

/// A test connection: one receive and one send, with what the completions reported.
struct Conn {
    int fd = -1;
    std::string to_send;       // sent from the front; the completion erases what went out
    std::string second_piece;  // sent with a second iovec when not empty
    char rbuf[256];
    std::string received;
    std::vector<ssize_t> rx_results;
    std::vector<ssize_t> tx_results;
    std::vector<std::string>* order = nullptr;  // completion order across connections
    std::string name;
    IoBatch* batch = nullptr;
    bool requeue_rx_after_tx = false;  // a completion that queues a follow-up operation
    IoOp rx{};
    IoOp tx{};

    Conn() {
        rx = IoOp{[](IoOp* op, IoArgs& a) {
                      auto* c = static_cast<Conn*>(op->owner);
                      a.fd = c->fd;
                      a.iov[0] = {c->rbuf, sizeof c->rbuf};
                      return true;
                  },
                  [](IoOp* op, ssize_t n) {
                      auto* c = static_cast<Conn*>(op->owner);
                      c->rx_results.push_back(n);
                      if (n > 0) {
                          c->received.append(c->rbuf, static_cast<size_t>(n));
                      }
                      if (c->order) {
                          c->order->push_back(c->name + ".rx");
                      }
                  },
                  this};
        tx = IoOp{[](IoOp* op, IoArgs& a) {
                      auto* c = static_cast<Conn*>(op->owner);
                      if (c->to_send.empty()) {
                          return false;
                      }
                      a.fd = c->fd;
                      a.send = true;
                      a.iovcnt = 1;
                      a.iov[0] = {c->to_send.data(), c->to_send.size()};
                      if (!c->second_piece.empty()) {
                          a.iov[1] = {c->second_piece.data(), c->second_piece.size()};
                          a.iovcnt = 2;
                      }
                      return true;
                  },
                  [](IoOp* op, ssize_t n) {
                      auto* c = static_cast<Conn*>(op->owner);
                      c->tx_results.push_back(n);
                      if (n > 0) {
                          size_t w = static_cast<size_t>(n);
                          size_t first = std::min(w, c->to_send.size());
                          c->to_send.erase(0, first);
                          c->second_piece.erase(0, w - first);
                      }
                      if (c->order) {
                          c->order->push_back(c->name + ".tx");
                      }
                      if (c->requeue_rx_after_tx) {
                          c->requeue_rx_after_tx = false;
                          c->batch->queue(&c->rx);
                      }
                  },
                  this};
    }
};

std::string drain(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

class IoBatchTest : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        ASSERT_GE(s.a, 0);
        c.fd = s.a;
        bool ring = batch.init(GetParam(), 1);  // the ring even for one operation
        if (GetParam() && !ring) {
            GTEST_SKIP() << "io_uring is not available here";
        }
        EXPECT_EQ(batch.usingRing(), GetParam());
    }
    IoBatch batch;
    SockPair s;  // most tests need one connection: c, at end s.a of this pair
    Conn c;
};

TEST_P(IoBatchTest, SendsAndReceivesAtFlushNotBefore) {
    c.to_send = "hello";
    batch.queue(&c.tx);
    EXPECT_TRUE(c.tx.busy());
    EXPECT_TRUE(batch.pending());
    EXPECT_EQ(drain(s.b), "");  // nothing happens until the flush
    batch.flush();
    EXPECT_FALSE(c.tx.busy());
    EXPECT_FALSE(batch.pending());
    ASSERT_EQ(c.tx_results, std::vector<ssize_t>{5});
    EXPECT_EQ(drain(s.b), "hello");

    ASSERT_EQ(::write(s.b, "world", 5), 5);
    batch.queue(&c.rx);
    batch.flush();
    ASSERT_EQ(c.rx_results, std::vector<ssize_t>{5});
    EXPECT_EQ(c.received, "world");
    EXPECT_EQ(batch.ops(), 2u);
}

TEST_P(IoBatchTest, TwoPiecesGoOutInOneSend) {
    c.to_send = "head;";
    c.second_piece = "body";
    batch.queue(&c.tx);
    batch.flush();
    ASSERT_EQ(c.tx_results, std::vector<ssize_t>{9});
    EXPECT_EQ(drain(s.b), "head;body");
}

TEST_P(IoBatchTest, WouldBlockAndEndOfStreamAreReported) {
    batch.queue(&c.rx);
    batch.flush();  // nothing to read: never waits
    ASSERT_EQ(c.rx_results.size(), 1u);
    EXPECT_TRUE(c.rx_results[0] == -EAGAIN || c.rx_results[0] == -EWOULDBLOCK);
    ::shutdown(s.b, SHUT_WR);
    batch.queue(&c.rx);
    batch.flush();
    ASSERT_EQ(c.rx_results.size(), 2u);
    EXPECT_EQ(c.rx_results[1], 0);
}

TEST_P(IoBatchTest, SendToAClosedPeerFailsWithoutSignal) {
    ::close(s.b);
    s.b = -1;
    c.to_send = "x";
    batch.queue(&c.tx);
    batch.flush();  // SIGPIPE would kill the test binary
    ASSERT_EQ(c.tx_results.size(), 1u);
    EXPECT_EQ(c.tx_results[0], -EPIPE);
}

TEST_P(IoBatchTest, AFullSocketTakesPartOfASendThenBlocks) {
    int small = 4096;
    ::setsockopt(s.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    c.to_send.assign(1 << 20, 'z');
    batch.queue(&c.tx);
    batch.flush();
    ASSERT_EQ(c.tx_results.size(), 1u);
    ASSERT_GT(c.tx_results[0], 0);
    EXPECT_LT(c.tx_results[0], 1 << 20);
    batch.queue(&c.tx);
    batch.flush();
    ASSERT_EQ(c.tx_results.size(), 2u);
    EXPECT_TRUE(c.tx_results[1] == -EAGAIN || c.tx_results[1] == -EWOULDBLOCK);
}

TEST_P(IoBatchTest, QueueingTwiceRunsOnce) {
    c.to_send = "once";
    batch.queue(&c.tx);
    batch.queue(&c.tx);
    batch.flush();
    EXPECT_EQ(c.tx_results.size(), 1u);
    EXPECT_EQ(drain(s.b), "once");
}

TEST_P(IoBatchTest, CancelledOperationIsNotCarriedOut) {
    c.to_send = "never";
    batch.queue(&c.tx);
    batch.cancel(&c.tx);
    EXPECT_FALSE(c.tx.busy());
    batch.flush();
    EXPECT_TRUE(c.tx_results.empty());
    EXPECT_EQ(drain(s.b), "");
    // Queued again after a cancel, it runs normally.
    batch.queue(&c.tx);
    batch.flush();
    EXPECT_EQ(drain(s.b), "never");
}

TEST_P(IoBatchTest, CompletionCancelsAnotherOfTheSameRound) {
    SockPair s1, s2;
    Conn a, b;
    a.fd = s1.a;
    b.fd = s2.a;
    ASSERT_EQ(::write(s1.b, "q", 1), 1);
    b.to_send = "late";
    // a's receive completes first and cancels b's send: b's completion must not be delivered,
    // even when the kernel already carried the send out in the same round.
    IoOp a_rx = a.rx;
    a_rx.owner = &a;
    static Conn* victim;
    static IoBatch* the_batch;
    victim = &b;
    the_batch = &batch;
    a_rx.done = [](IoOp* op, ssize_t n) {
        static_cast<Conn*>(op->owner)->rx_results.push_back(n);
        the_batch->cancel(&victim->tx);
    };
    batch.queue(&a_rx);
    batch.queue(&b.tx);
    batch.flush();
    ASSERT_EQ(a.rx_results, std::vector<ssize_t>{1});
    EXPECT_TRUE(b.tx_results.empty());
    EXPECT_FALSE(b.tx.busy());
}

TEST_P(IoBatchTest, ReceivesAreDeliveredBeforeSends) {
    SockPair s1, s2;
    std::vector<std::string> order;
    Conn a, b;
    a.fd = s1.a;
    b.fd = s2.a;
    a.name = "a";
    b.name = "b";
    a.order = b.order = &order;
    a.to_send = "1";
    ASSERT_EQ(::write(s2.b, "2", 1), 1);
    batch.queue(&a.tx);
    batch.queue(&b.rx);
    batch.flush();
    if (batch.usingRing()) {
        EXPECT_EQ(order, (std::vector<std::string>{"b.rx", "a.tx"}));
    } else {
        EXPECT_EQ(order, (std::vector<std::string>{"a.tx", "b.rx"}));  // one at a time
    }
}

TEST_P(IoBatchTest, FollowUpsQueuedByCompletionsRunInTheSameFlush) {
    c.batch = &batch;
    c.to_send = "ping";
    c.requeue_rx_after_tx = true;
    ASSERT_EQ(::write(s.b, "pong", 4), 4);
    batch.queue(&c.tx);
    batch.flush();
    EXPECT_EQ(c.tx_results, std::vector<ssize_t>{4});
    EXPECT_EQ(c.rx_results, std::vector<ssize_t>{4});
    EXPECT_EQ(c.received, "pong");
    EXPECT_FALSE(batch.pending());
}

TEST_P(IoBatchTest, ManyConnectionsInOneRoundShareFewEnters) {
    constexpr int kConns = 600;  // more than one ring's worth
    std::vector<SockPair> socks(kConns);
    std::vector<Conn> conns(kConns);
    for (int i = 0; i < kConns; ++i) {
        conns[static_cast<size_t>(i)].fd = socks[static_cast<size_t>(i)].a;
        conns[static_cast<size_t>(i)].to_send = "m" + std::to_string(i);
        batch.queue(&conns[static_cast<size_t>(i)].tx);
    }
    batch.flush();
    for (int i = 0; i < kConns; ++i) {
        ASSERT_EQ(conns[static_cast<size_t>(i)].tx_results.size(), 1u);
        EXPECT_EQ(drain(socks[static_cast<size_t>(i)].b), "m" + std::to_string(i));
    }
    EXPECT_EQ(batch.ops(), static_cast<uint64_t>(kConns));
    if (batch.usingRing()) {
        EXPECT_LE(batch.enters(), 3u);  // 256 per enter
    } else {
        EXPECT_EQ(batch.enters(), 0u);
    }
}

TEST(IoBatchRound, ALoneOperationUsesAPlainSystemCall) {
    IoBatch batch;
    if (!batch.init(true)) {
        GTEST_SKIP() << "io_uring is not available here";
    }
    SockPair s1, s2;
    Conn a, b;
    a.fd = s1.a;
    b.fd = s2.a;
    a.to_send = "1";
    b.to_send = "2";
    batch.queue(&a.tx);
    batch.flush();
    EXPECT_EQ(batch.enters(), 0u);
    EXPECT_EQ(drain(s1.b), "1");
    a.to_send = "3";
    batch.queue(&a.tx);
    batch.queue(&b.tx);
    batch.flush();
    EXPECT_EQ(batch.enters(), 1u);
    EXPECT_EQ(drain(s1.b), "3");
    EXPECT_EQ(drain(s2.b), "2");
}

INSTANTIATE_TEST_SUITE_P(Modes, IoBatchTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return i.param ? "Ring" : "PlainSyscalls";
                         });

}  // namespace
}  // namespace photon::worker
