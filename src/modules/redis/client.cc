// SPDX-License-Identifier: Apache-2.0
// A worker's asynchronous Redis connections (hiredis with its libev adapter).
#include "modules/redis/client.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cinttypes>
#include <string>

#include "core/log.h"
#include "shm/clock.h"

namespace photon::mod::redis {

namespace {

// Handshake steps, as the privdata of their commands (only their addresses matter).
char kStepAuth;
char kStepSelect;
char kStepPing;

/// One log line per this many microseconds per process at most; the rest are counted.
constexpr uint64_t kLogEveryUs = 10'000'000;
/// The retry pause grows up to this multiple of retry_interval.
constexpr uint32_t kMaxBackoff = 8;

double seconds(core::Duration d) { return std::chrono::duration<double>(d).count(); }

/// "*N\r\n" then "$len\r\narg\r\n" per argument, appended to `out`.
void appendArg(std::string& out, std::string_view a) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out.append(a.data(), a.size());
    out += "\r\n";
}

}  // namespace

Client::Client(const core::RedisConfig& cfg, struct ev_loop* loop) : cfg_(cfg), loop_(loop) {
    for (uint32_t i = 0; i < cfg_.pool_size; ++i) {
        auto c = std::make_unique<Conn>();
        c->owner = this;
        c->index = i;
        ev_timer_init(&c->timer, onTimer, 0., 0.);
        c->timer.data = c.get();
        conns_.push_back(std::move(c));
    }
}

Client::~Client() { stop(); }

void Client::start() {
    stopping_ = false;
    for (auto& c : conns_) {
        connect(*c);
    }
}

void Client::stop() {
    stopping_ = true;
    for (auto& c : conns_) {
        ev_timer_stop(loop_, &c->timer);
        if (c->ac != nullptr) {
            teardown(*c, nullptr, true);
        }
    }
}

void Client::connect(Conn& c) {
    const core::SocketAddress& a = cfg_.addresses.front();
    const std::string ip = a.ip.toString();
    redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), a.port);
    ++c.generation;
    if (ac == nullptr || ac->err != 0) {
        noteFailure(c, ac != nullptr ? ac->errstr : "out of memory");
        if (ac != nullptr) {
            redisAsyncFree(ac);
        }
        scheduleRetry(c);
        return;
    }
    ac->data = &c;
    if (redisLibevAttach(loop_, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        noteFailure(c, "cannot attach to the event loop");
        scheduleRetry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, onConnect);
    redisAsyncSetDisconnectCallback(ac, onDisconnect);
    c.ac = ac;
    c.state = Conn::State::Connecting;
    // Queued now, written once the socket connects; Redis answers them in order.
    std::string cmd;
    if (!cfg_.password.empty()) {
        cmd = cfg_.username.empty() ? "*2\r\n" : "*3\r\n";
        appendArg(cmd, "AUTH");
        if (!cfg_.username.empty()) {
            appendArg(cmd, cfg_.username);
        }
        appendArg(cmd, cfg_.password);
        redisAsyncFormattedCommand(ac, onHandshake, &kStepAuth, cmd.data(), cmd.size());
        // The copy hiredis keeps is in its output buffer only until written; ours goes now.
        std::fill(cmd.begin(), cmd.end(), '\0');
    }
    if (cfg_.database != 0) {
        cmd = "*2\r\n";
        appendArg(cmd, "SELECT");
        appendArg(cmd, std::to_string(cfg_.database));
        redisAsyncFormattedCommand(ac, onHandshake, &kStepSelect, cmd.data(), cmd.size());
    }
    static constexpr char kPing[] = "*1\r\n$4\r\nPING\r\n";
    redisAsyncFormattedCommand(ac, onHandshake, &kStepPing, kPing, sizeof kPing - 1);
    ev_timer_set(&c.timer, seconds(cfg_.connect_timeout), 0.);
    ev_timer_start(loop_, &c.timer);
}

void Client::noteFailure(Conn& c, const char* why) {
    ++failures_;
    ++c.failures_in_row;
    if (why == nullptr) {
        return;
    }
    const uint64_t now = shm::monotonicMicros();
    if (last_log_us_ != 0 && now - last_log_us_ < kLogEveryUs) {
        ++suppressed_;
        return;
    }
    last_log_us_ = now;
    const std::string addr = cfg_.addresses.front().toString();
    if (suppressed_ != 0) {
        LOG_WARN("redis %s: %s (connection %u; %" PRIu64 " more failures not logged)", addr.c_str(),
                 why, c.index, suppressed_);
    } else {
        LOG_WARN("redis %s: %s (connection %u)", addr.c_str(), why, c.index);
    }
    suppressed_ = 0;
}

void Client::scheduleRetry(Conn& c) {
    if (stopping_) {
        return;
    }
    const uint32_t factor = std::min(kMaxBackoff, std::max<uint32_t>(1, c.failures_in_row));
    ev_timer_stop(loop_, &c.timer);
    ev_timer_set(&c.timer, seconds(cfg_.retry_interval) * factor, 0.);
    ev_timer_start(loop_, &c.timer);
}

void Client::markReady(Conn& c) {
    ev_timer_stop(loop_, &c.timer);
    if (c.state != Conn::State::Ready) {
        c.state = Conn::State::Ready;
        ++ready_count_;
        if (c.failures_in_row != 0) {
            LOG_NOTICE("redis %s: connected again (connection %u)",
                       cfg_.addresses.front().toString().c_str(), c.index);
        }
    }
    c.failures_in_row = 0;
}

void Client::teardown(Conn& c, const char* why, bool free_now) {
    redisAsyncContext* ac = c.ac;
    if (c.state == Conn::State::Ready) {
        --ready_count_;
    }
    c.state = Conn::State::Down;
    c.ac = nullptr;
    ++c.generation;  // late timeouts of the old connection no longer match
    if (why != nullptr) {
        noteFailure(c, why);
    }
    if (ac != nullptr) {
        ac->data = nullptr;  // its callbacks no longer concern this slot
        if (free_now) {
            redisAsyncFree(ac);  // pending commands get nullptr now
        } else {
            redisAsyncDisconnect(ac);  // inside a hiredis callback: after it returns
        }
    }
    scheduleRetry(c);
}

bool Client::send(const char* cmd, size_t len, ReplyFn fn, void* arg, SentOn& where) {
    const size_t n = conns_.size();
    for (size_t i = 0; i < n; ++i) {
        Conn& c = *conns_[(next_ + i) % n];
        if (c.state != Conn::State::Ready) {
            continue;
        }
        next_ = static_cast<uint32_t>((next_ + i + 1) % n);
        if (redisAsyncFormattedCommand(c.ac, fn, arg, cmd, len) != REDIS_OK) {
            continue;
        }
        where.conn = c.index;
        where.generation = c.generation;
        return true;
    }
    return false;
}

void Client::timedOut(const SentOn& where) {
    if (where.conn >= conns_.size()) {
        return;
    }
    Conn& c = *conns_[where.conn];
    if (c.generation != where.generation || c.ac == nullptr) {
        return;  // already replaced
    }
    teardown(c, "no reply within command_timeout; reconnecting", true);
}

void Client::onConnect(const redisAsyncContext* ac, int status) {
    auto* c = static_cast<Conn*>(ac->data);
    if (c == nullptr || status == REDIS_OK) {
        return;  // the handshake's PING reply makes the connection ready
    }
    // hiredis frees the context after this callback.
    Client* self = c->owner;
    c->ac = nullptr;
    c->state = Conn::State::Down;
    ++c->generation;
    std::string why = std::string("connect failed: ") + ac->errstr;
    self->noteFailure(*c, why.c_str());
    self->scheduleRetry(*c);
}

void Client::onDisconnect(const redisAsyncContext* ac, int /*status*/) {
    auto* c = static_cast<Conn*>(ac->data);
    if (c == nullptr) {
        return;  // torn down by us
    }
    Client* self = c->owner;
    if (c->state == Conn::State::Ready) {
        --self->ready_count_;
    }
    c->ac = nullptr;
    c->state = Conn::State::Down;
    ++c->generation;
    self->noteFailure(*c, "connection lost");
    self->scheduleRetry(*c);
}

void Client::onHandshake(redisAsyncContext* ac, void* reply, void* priv) {
    auto* c = static_cast<Conn*>(ac->data);
    if (c == nullptr) {
        return;
    }
    auto* r = static_cast<redisReply*>(reply);
    if (r == nullptr) {
        return;  // the connection is going away: its disconnect callback reports it
    }
    Client* self = c->owner;
    if (r->type == REDIS_REPLY_ERROR) {
        // The server's text names the problem (WRONGPASS, NOAUTH, ERR DB index ...), never the
        // password.
        std::string why = std::string(priv == &kStepAuth     ? "AUTH refused: "
                                      : priv == &kStepSelect ? "SELECT refused: "
                                                             : "PING refused: ") +
                          std::string(r->str, std::min<size_t>(r->len, 200));
        self->teardown(*c, why.c_str(), false);
        return;
    }
    if (priv == &kStepPing) {
        self->markReady(*c);
    }
}

void Client::onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* c = static_cast<Conn*>(w->data);
    Client* self = c->owner;
    if (c->state == Conn::State::Connecting) {
        self->teardown(*c, "no connection within connect_timeout", true);
        return;
    }
    if (c->state == Conn::State::Down && c->ac == nullptr && !self->stopping_) {
        self->connect(*c);
    }
}

}  // namespace photon::mod::redis
