// SPDX-License-Identifier: Apache-2.0
// The Redis connection over a socketpair (the test plays the server): replies to their
// callbacks in order, replies split across reads, pipelining in one write, failures of pending
// commands on close (from outside and from inside a callback) and on the server's close,
// pub/sub pushes, protocol errors, the in-flight bound and the reply arena's reuse.
#include "modules/redis/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace photon::mod::redis {
namespace {

struct Seen {
    std::string what;  // "nil" for a failed command, else type:value
    int depth = 0;     // callbacks of the connection on the stack when it was called
};

class RedisConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        loop_ = ev_loop_new(EVFLAG_AUTO);
        ASSERT_NE(loop_, nullptr);
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        server_ = sv[1];
        ::fcntl(server_, F_SETFL, ::fcntl(server_, F_GETFL) | O_NONBLOCK);
        conn_ = std::make_unique<Connection>(loop_, nullptr, onEvent, this);
        conn_->adopt(sv[0]);
    }
    void TearDown() override {
        conn_.reset();
        if (server_ >= 0) {
            ::close(server_);
        }
        ev_loop_destroy(loop_);
    }

    static std::string describe(const redisReply* r) {
        if (r == nullptr) {
            return "nil";
        }
        switch (r->type) {
            case REDIS_REPLY_STATUS:
                return "status:" + std::string(r->str, r->len);
            case REDIS_REPLY_ERROR:
                return "error:" + std::string(r->str, r->len);
            case REDIS_REPLY_STRING:
                return "string:" + std::string(r->str, r->len);
            case REDIS_REPLY_INTEGER:
                return "int:" + std::to_string(r->integer);
            case REDIS_REPLY_NIL:
                return "null";
            case REDIS_REPLY_ARRAY: {
                std::string s = "[";
                for (size_t i = 0; i < r->elements; ++i) {
                    s += (i != 0 ? "," : "") + describe(r->element[i]);
                }
                return s + "]";
            }
        }
        return "?";
    }

    static void onReply(const redisReply* r, void* arg) {
        auto* t = static_cast<RedisConnectionTest*>(arg);
        ++t->depth_;
        t->seen_.push_back({describe(r), t->depth_});
        if (t->close_in_callback_ && r != nullptr) {
            t->close_in_callback_ = false;
            t->conn_->close();
        }
        --t->depth_;
    }
    static void onEvent(Connection&, const char* why, void* owner) {
        auto* t = static_cast<RedisConnectionTest*>(owner);
        t->seen_.push_back({std::string("event:") + (why != nullptr ? why : "up"), 0});
    }

    bool send(const std::string& cmd) { return conn_->send(cmd.data(), cmd.size(), onReply, this); }
    void turn(int n = 3) {
        for (int i = 0; i < n; ++i) {
            ev_run(loop_, EVRUN_NOWAIT);
        }
    }
    std::string serverRead() {
        turn();
        std::string got;
        char buf[65536];
        ssize_t n;
        while ((n = ::read(server_, buf, sizeof buf)) > 0) {
            got.append(buf, static_cast<size_t>(n));
        }
        return got;
    }
    void serverWrite(const std::string& s) {
        ASSERT_EQ(::write(server_, s.data(), s.size()), static_cast<ssize_t>(s.size()));
        turn();
    }
    std::vector<std::string> whats() const {
        std::vector<std::string> w;
        for (const auto& s : seen_) {
            w.push_back(s.what);
        }
        return w;
    }

    struct ev_loop* loop_ = nullptr;
    int server_ = -1;
    std::unique_ptr<Connection> conn_;
    std::vector<Seen> seen_;
    int depth_ = 0;
    bool close_in_callback_ = false;
};

const std::string kPing = "*1\r\n$4\r\nPING\r\n";
const std::string kGet = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

TEST_F(RedisConnectionTest, PipelinedCommandsGoOutInOneWriteAndRepliesInOrder) {
    ASSERT_TRUE(send(kPing));
    ASSERT_TRUE(send(kGet));
    ASSERT_TRUE(send(kGet));
    EXPECT_EQ(conn_->pending(), 3u);
    EXPECT_EQ(serverRead(), kPing + kGet + kGet);
    serverWrite("+PONG\r\n$3\r\nfoo\r\n$-1\r\n");
    EXPECT_EQ(whats(), (std::vector<std::string>{"status:PONG", "string:foo", "null"}));
    EXPECT_EQ(conn_->pending(), 0u);
}

TEST_F(RedisConnectionTest, RepliesSplitAcrossReadsAreAssembled) {
    ASSERT_TRUE(send(kGet));
    ASSERT_TRUE(send(kGet));
    serverRead();
    serverWrite("*4\r\n:1\r\n:2");
    EXPECT_TRUE(seen_.empty());
    serverWrite("\r\n*2\r\n$1\r\na\r\n*0\r\n:-7\r\n-ERR x\r");
    EXPECT_EQ(whats(), (std::vector<std::string>{"[int:1,int:2,[string:a,[]],int:-7]"}));
    serverWrite("\n");
    EXPECT_EQ(whats().back(), "error:ERR x");
}

TEST_F(RedisConnectionTest, CloseFailsEveryPendingCommandOnceAndRefusesMore) {
    ASSERT_TRUE(send(kPing));
    ASSERT_TRUE(send(kPing));
    conn_->close();
    EXPECT_EQ(whats(), (std::vector<std::string>{"nil", "nil"}));
    EXPECT_FALSE(conn_->isOpen());
    EXPECT_FALSE(send(kPing));
    conn_->close();  // nothing more
    turn();
    EXPECT_EQ(seen_.size(), 2u);
}

TEST_F(RedisConnectionTest, ServerCloseFailsPendingCommandsThenReports) {
    ASSERT_TRUE(send(kPing));
    ASSERT_TRUE(send(kPing));
    serverRead();
    ::close(server_);
    server_ = -1;
    turn();
    ASSERT_EQ(seen_.size(), 3u);
    EXPECT_EQ(seen_[0].what, "nil");
    EXPECT_EQ(seen_[1].what, "nil");
    EXPECT_EQ(seen_[2].what, "event:connection lost: closed by the server");
    EXPECT_FALSE(conn_->isOpen());
}

TEST_F(RedisConnectionTest, CloseInsideACallbackFailsTheRestAfterItReturns) {
    ASSERT_TRUE(send(kPing));
    ASSERT_TRUE(send(kPing));
    ASSERT_TRUE(send(kPing));
    serverRead();
    close_in_callback_ = true;
    serverWrite("+PONG\r\n+PONG\r\n+PONG\r\n");
    ASSERT_EQ(whats(), (std::vector<std::string>{"status:PONG", "nil", "nil"}));
    // Not nested inside the callback that closed: one at a time.
    EXPECT_EQ(seen_[1].depth, 1);
    EXPECT_EQ(seen_[2].depth, 1);
    EXPECT_FALSE(conn_->isOpen());
}

TEST_F(RedisConnectionTest, PushRepliesGoToTheHandlerElseAreAProtocolError) {
    conn_->setPushHandler(onReply, this);
    serverWrite("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n");
    EXPECT_EQ(whats(), (std::vector<std::string>{"[string:message,string:c,string:hi]"}));
    conn_->setPushHandler(nullptr, nullptr);
    serverWrite("+OK\r\n");
    EXPECT_EQ(whats().back(), "event:a reply to no command");
    EXPECT_FALSE(conn_->isOpen());
}

TEST_F(RedisConnectionTest, ProtocolErrorFailsPendingAndReports) {
    ASSERT_TRUE(send(kPing));
    serverRead();
    serverWrite("?what\r\n");
    ASSERT_EQ(seen_.size(), 2u);
    EXPECT_EQ(seen_[0].what, "nil");
    EXPECT_EQ(seen_[1].what.rfind("event:protocol error", 0), 0u) << seen_[1].what;
}

TEST_F(RedisConnectionTest, ManyPipelinedCommandsReuseTheArenaAndTheRing) {
    constexpr int kN = 1000;
    std::string expect;
    for (int i = 0; i < kN; ++i) {
        ASSERT_TRUE(send(kGet));
        expect += kGet;
    }
    EXPECT_EQ(serverRead(), expect);
    std::string replies;
    for (int i = 0; i < kN; ++i) {
        replies += "*4\r\n:1\r\n:" + std::to_string(i) + "\r\n:0\r\n:5\r\n";
    }
    serverWrite(replies);
    turn(10);
    ASSERT_EQ(seen_.size(), static_cast<size_t>(kN));
    EXPECT_EQ(seen_[999].what, "[int:1,int:999,int:0,int:5]");
    EXPECT_EQ(conn_->pending(), 0u);
    EXPECT_EQ(conn_->arenaChunks(), 1u);
}

TEST_F(RedisConnectionTest, InFlightCommandsAreBounded) {
    size_t accepted = 0;
    while (send(kPing)) {
        ++accepted;
        ASSERT_LE(accepted, Connection::kMaxInFlight);
    }
    EXPECT_EQ(accepted, Connection::kMaxInFlight);
    conn_->close();
    EXPECT_EQ(seen_.size(), Connection::kMaxInFlight);
}

// Found by redis_reply_fuzz: "*450500000" alone made the reader allocate (and zero) 3.6 GB of
// element pointers before any element arrived.
TEST(RedisArenaReaderTest, RefusesArrayHeadersAboveTheBound) {
    ReplyArena arena;
    for (const std::string& head :
         {std::string("*2000000000\r\n"), "*" + std::to_string(kMaxReplyElements + 1) + "\r\n"}) {
        redisReader* rd = newArenaReader();
        ASSERT_NE(rd, nullptr);
        ASSERT_EQ(redisReaderFeed(rd, head.data(), head.size()), REDIS_OK);
        void* reply = nullptr;
        EXPECT_EQ(readArenaReply(rd, arena, &reply), REDIS_ERR) << head;
        EXPECT_EQ(reply, nullptr);
        EXPECT_LE(arena.chunks(), 1u);
        arena.reset();
        redisReaderFree(rd);
    }
    // At the bound: accepted, and the reply completes as its elements arrive.
    redisReader* rd = newArenaReader();
    std::string full = "*" + std::to_string(kMaxReplyElements) + "\r\n";
    for (int i = 0; i < kMaxReplyElements; ++i) {
        full += ":1\r\n";
    }
    ASSERT_EQ(redisReaderFeed(rd, full.data(), full.size()), REDIS_OK);
    void* reply = nullptr;
    ASSERT_EQ(readArenaReply(rd, arena, &reply), REDIS_OK);
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(static_cast<redisReply*>(reply)->elements, static_cast<size_t>(kMaxReplyElements));
    arena.reset();
    redisReaderFree(rd);
}

TEST(RedisReplyArenaTest, AlignsReusesAndDropsOversizedChunks) {
    ReplyArena a;
    void* p = a.alloc(3);
    void* q = a.alloc(5);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(static_cast<char*>(q) - static_cast<char*>(p), 16);
    void* big = a.alloc(ReplyArena::kChunk * 3);
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(a.chunks(), 2u);
    a.reset();
    EXPECT_EQ(a.chunks(), 1u);  // the oversized one is dropped
    EXPECT_EQ(a.alloc(3), p);   // the standard one is reused from its start
}

}  // namespace
}  // namespace photon::mod::redis
