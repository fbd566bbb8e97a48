// SPDX-License-Identifier: Apache-2.0
// A worker's connections to Redis: a small pool of asynchronous hiredis connections driven by
// the worker's libev loop, with connect/handshake deadlines and reconnection with backoff.
#pragma once

#include <ev.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.h"

struct redisAsyncContext;
struct redisReply;

namespace photon::mod::redis {

/// hiredis's callback: `reply` is a redisReply*, or nullptr when the command failed (connection
/// lost, torn down after a timeout, worker stopping). Called exactly once per accepted send(),
/// from the loop, possibly from inside timedOut() (a teardown). Must not throw.
using ReplyFn = void (*)(redisAsyncContext* ac, void* reply, void* arg);

/// Where a command went: teardown() of a connection that is slow takes this.
struct SentOn {
    uint32_t conn = 0;
    uint32_t generation = 0;
};

/// The pool of one worker process. Worker only; never blocks: connects are non-blocking and
/// addresses are IP literals. Commands are pipelined on the connection that is ready, in turn.
class Client {
public:
    Client(const core::RedisConfig& cfg, struct ev_loop* loop);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Starts connecting every connection of the pool.
    void start();
    /// Closes every connection; pending commands get nullptr.
    void stop();

    /// Whether some connection has completed its handshake (AUTH, SELECT, PING).
    bool ready() const { return ready_count_ > 0; }
    /// Connections ready now.
    uint32_t readyCount() const { return ready_count_; }

    /// Queues the RESP-formatted command `cmd` (copied) on a ready connection. False (and `fn`
    /// never called) when no connection is ready or hiredis refused it.
    bool send(const char* cmd, size_t len, ReplyFn fn, void* arg, SentOn& where);
    /// A command sent on `where` went unanswered past its deadline: the connection is torn
    /// down (its pending commands fail) and reconnected after the retry interval, unless it was
    /// already replaced.
    void timedOut(const SentOn& where);

    /// Failures seen by this process (connect errors, timeouts, lost connections).
    uint64_t failures() const { return failures_; }

private:
    struct Conn {
        Client* owner = nullptr;
        redisAsyncContext* ac = nullptr;
        ev_timer timer;  // connect/handshake deadline, or the pause before reconnecting
        uint32_t index = 0;
        uint32_t generation = 0;
        uint32_t failures_in_row = 0;
        enum class State : uint8_t { Down, Connecting, Ready } state = State::Down;
    };

    void connect(Conn& c);
    void teardown(Conn& c, const char* why, bool free_now);
    void scheduleRetry(Conn& c);
    void markReady(Conn& c);
    void noteFailure(Conn& c, const char* why);

    static void onConnect(const redisAsyncContext* ac, int status);
    static void onDisconnect(const redisAsyncContext* ac, int status);
    static void onHandshake(redisAsyncContext* ac, void* reply, void* priv);
    static void onTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;

    core::RedisConfig cfg_;
    struct ev_loop* loop_;
    std::vector<std::unique_ptr<Conn>> conns_;
    uint32_t ready_count_ = 0;
    uint32_t next_ = 0;
    uint64_t failures_ = 0;
    uint64_t last_log_us_ = 0;
    uint64_t suppressed_ = 0;
    bool stopping_ = false;
};

}  // namespace photon::mod::redis
