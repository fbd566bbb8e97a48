// SPDX-License-Identifier: Apache-2.0
// store: redis — decisions by a Lua GCRA script, sent from the worker's loop.
#include "modules/ratelimit/redis_store.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/log.h"
#include "modules/ratelimit/limiter.h"
#include "modules/redis/client.h"
#include "shm/clock.h"

namespace photon::mod::ratelimit {

namespace {

// KEYS[1] holds the theoretical arrival time (µs of Redis's TIME, so every Photon instance
// shares one clock). ARGV: emission interval T (µs, 0 = rate 0), tolerance tau (µs), burst, and
// the most tokens to take (1 = one decision; sync: batched asks for a lease of several). The
// same arithmetic as GcraTable::decide(), for n tokens at once. Returns {granted,
// remaining, retry_after_us, reset_us}, -1 for "never".
constexpr std::string_view kScript = R"LUA(local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4]) or 1
if burst == 0 then return {0, 0, 1000000, 0} end
local never = T == 0
local now
if never then
  T = 1
  tau = burst - 1
  now = 1
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
local base = math.max(tat, now)
local avail = math.floor((now + tau + T - base) / T)
if avail < 1 then
  if never then return {0, 0, -1, -1} end
  local reset = 0
  if tat > now then reset = tat - now end
  return {0, 0, base + T - now - tau - T, reset}
end
local n = math.min(want, avail)
local new_tat = base + n * T
local used = new_tat - now
if never then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat))
  return {n, math.floor((tau + T - used) / T), 0, -1}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000) + 1)
return {n, math.floor((tau + T - used) / T), 0, used}
)LUA";

std::string computeSha1(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
    std::string hex;
    char b[3];
    for (unsigned int i = 0; i < len; ++i) {
        std::snprintf(b, sizeof b, "%02x", md[i]);
        hex += b;
    }
    return hex;
}

/// Pending decisions a worker holds at once; beyond, on_store_error decides at once.
constexpr size_t kMaxPending = 4096;
/// Longest command: prefix (<= 128), key, three numbers, the script itself for EVAL.
constexpr size_t kCmdBuf = 512;
/// MOVED/ASK redirects followed per decision (a slot migrating twice at most, with margin).
constexpr uint8_t kMaxRedirects = 5;

/// One decision in flight. Owned by the worker's fixed pool; free when neither a request waits
/// on it nor the Redis connection holds it.
struct Pending {
    worker::Request* req = nullptr;  // null once the request moved on (deadline, abort)
    const LimitConf* conf = nullptr;
    ev_timer deadline;
    uint64_t key_hash = 0;
    redis::SentOn sent;
    uint16_t slot = 0;       // the key's cluster slot
    uint8_t redirects = 0;   // MOVED/ASK followed for this decision
    bool in_flight = false;  // the connection will call back
    bool retried = false;    // NOSCRIPT: sent again as EVAL (and so after a redirect)
    bool asking = false;     // ASK: sent to `ask_addr` with ASKING
    char ask_addr[64] = {};  // "ip:port" of the last ASK redirect
    bool free = true;
    Pending* next_free = nullptr;
};

/// sync: batched — tokens a worker holds for one key, taken from Redis in one round trip, or a
/// refusal Redis gave, which holds until its retry time (Redis's theoretical arrival time only
/// grows, so nothing would be admitted sooner).
struct Lease {
    uint64_t key_hash = 0;  // 0 = free
    const LimitConf* conf = nullptr;
    uint64_t expires_us = 0;        // tokens are dropped after this (monotonic µs)
    uint64_t refused_until_us = 0;  // refuse locally until this
    uint64_t reset_at_us = 0;       // for the RateLimit fields: when the bucket is full
    uint32_t tokens = 0;
    uint32_t remaining = 0;  // what Redis had left after the lease
};
/// Leases per worker (a power of two); a key that finds no slot in kLeaseProbe takes the oldest.
constexpr size_t kLeaseSlots = 4096;
constexpr size_t kLeaseProbe = 8;

struct Store {
    std::unique_ptr<redis::Client> client;
    struct ev_loop* loop = nullptr;
    std::vector<Pending> pending;
    Pending* free_list = nullptr;
    std::vector<Lease> leases;  // sync: batched only (empty otherwise)
    std::string sha;
    std::string prefix;
    double timeout_s = 0.25;
};
Store* g_store = nullptr;  // this worker's; null elsewhere

/// The lease slot of `h` for `c`: its own, or a free/expired one claimed for it (the oldest in
/// the probe window when none is). Never null once the table exists.
Lease* leaseFor(uint64_t h, const LimitConf& c, bool claim) {
    auto& t = g_store->leases;
    if (t.empty()) {
        return nullptr;
    }
    const size_t mask = t.size() - 1;
    // The slot to take when the key has none: a free one, else the one whose lease or refusal
    // ends first (an expired one before any live one). Losing a live lease only drops tokens.
    Lease* victim = nullptr;
    uint64_t victim_until = UINT64_MAX;
    for (size_t i = 0; i < kLeaseProbe; ++i) {
        Lease& l = t[(h + i) & mask];
        if (l.key_hash == h && l.conf == &c) {
            return &l;
        }
        const uint64_t until = l.key_hash == 0 ? 0 : std::max(l.expires_us, l.refused_until_us);
        if (victim == nullptr || until < victim_until) {
            victim = &l;
            victim_until = until;
        }
    }
    if (!claim) {
        return nullptr;
    }
    *victim = Lease{};
    victim->key_hash = h;
    victim->conf = &c;
    return victim;
}

const std::string& scriptSha() {
    static const std::string sha = computeSha1(kScript);
    return sha;
}

char* putArg(char* p, std::string_view a) {
    p += std::sprintf(p, "$%zu\r\n", a.size());
    std::memcpy(p, a.data(), a.size());
    p += a.size();
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

char* putNum(char* p, uint64_t v) {
    char n[24];
    int len = std::snprintf(n, sizeof n, "%" PRIu64, v);
    return putArg(p, std::string_view(n, static_cast<size_t>(len)));
}

void release(Pending& p) {
    if (p.free || p.in_flight || p.req != nullptr) {
        return;
    }
    p.free = true;
    p.conf = nullptr;
    p.next_free = g_store->free_list;
    g_store->free_list = &p;
}

void onReply(const redisReply* r, void* arg);

/// Sends `cmd` for `p`: to the node of its slot, or after an ASK to that node with ASKING.
bool transmit(Pending& p, const char* cmd, size_t len) {
    if (p.asking) {
        return g_store->client->sendTo(p.ask_addr, true, cmd, len, onReply, &p, p.sent);
    }
    return g_store->client->send(p.slot, cmd, len, onReply, &p, p.sent);
}

/// Kinds of error replies a decision acts on.
enum class Redirect : uint8_t { None, Moved, Ask };

/// Parses "MOVED <slot> <ip:port>" / "ASK <slot> <ip:port>".
Redirect parseRedirect(std::string_view msg, uint16_t& slot, std::string_view& addr) {
    Redirect kind = Redirect::None;
    if (msg.starts_with("MOVED ")) {
        kind = Redirect::Moved;
        msg.remove_prefix(6);
    } else if (msg.starts_with("ASK ")) {
        kind = Redirect::Ask;
        msg.remove_prefix(4);
    } else {
        return Redirect::None;
    }
    size_t sp = msg.find(' ');
    if (sp == std::string_view::npos) {
        return Redirect::None;
    }
    unsigned v = 0;
    auto [end, ec] = std::from_chars(msg.data(), msg.data() + sp, v);
    if (ec != std::errc() || end != msg.data() + sp || v >= redis::kSlots) {
        return Redirect::None;
    }
    slot = static_cast<uint16_t>(v);
    addr = msg.substr(sp + 1);
    return addr.empty() || addr.size() >= sizeof(Pending::ask_addr) ? Redirect::None : kind;
}

/// Sends EVALSHA (or, after NOSCRIPT, EVAL with the script) for `p`.
bool sendDecision(Pending& p, bool with_script) {
    const LimitConf& c = *p.conf;
    char key[kCmdBuf];
    size_t klen = redisKey(g_store->prefix, p.key_hash, key);
    const uint64_t T = c.params.interval_us;
    const uint64_t tau = c.params.tolerance_us;
    if (!with_script) {
        char buf[kCmdBuf];
        char* e = buf;
        e += std::sprintf(e, "*8\r\n");
        e = putArg(e, "EVALSHA");
        e = putArg(e, g_store->sha);
        e = putArg(e, "1");
        e = putArg(e, std::string_view(key, klen));
        e = putNum(e, T);
        e = putNum(e, tau);
        e = putNum(e, c.params.burst);
        e = putNum(e, c.lease);
        return transmit(p, buf, static_cast<size_t>(e - buf));
    }
    // Once per Redis restart or SCRIPT FLUSH: EVAL loads the script for the EVALSHAs after it.
    std::string cmd = "*8\r\n";
    char head[32];
    auto arg = [&](std::string_view a) {
        cmd += std::string_view(
            head, static_cast<size_t>(std::snprintf(head, sizeof head, "$%zu\r\n", a.size())));
        cmd.append(a.data(), a.size());
        cmd += "\r\n";
    };
    arg("EVAL");
    arg(kScript);
    arg("1");
    arg(std::string_view(key, klen));
    arg(std::to_string(T));
    arg(std::to_string(tau));
    arg(std::to_string(c.params.burst));
    arg(std::to_string(c.lease));
    return transmit(p, cmd.data(), cmd.size());
}

/// on_store_error for `req`: counted, logged at a bounded rate, then allow, deny or the local
/// share.
worker::Verdict storeError(worker::Request& req, const LimitConf& c, uint64_t h, const char* why) {
    const uint64_t now = shm::monotonicMicros();
    // Relaxed: statistics, ordered with nothing.
    c.shared.stats->store_errors.fetchAdd(1, std::memory_order_relaxed);
    c.shared.stats->store_last_error_us.store(now, std::memory_order_relaxed);
    using E = core::RateLimitConfig::OnStoreError;
    if (c.last_store_log_us == 0 || now - c.last_store_log_us >= 10'000'000) {
        LOG_WARN("rate limit '%s': Redis did not decide (%s); %s (%" PRIu64
                 " more since the last notice)",
                 c.policy_name.c_str(), why,
                 c.on_store_error == E::Allow  ? "admitting (on_store_error: allow)"
                 : c.on_store_error == E::Deny ? "refusing (on_store_error: deny)"
                                               : "deciding locally (on_store_error: local)",
                 c.store_log_suppressed);
        c.last_store_log_us = now;
        c.store_log_suppressed = 0;
    } else {
        ++c.store_log_suppressed;
    }
    switch (c.on_store_error) {
        case E::Allow:
            return worker::Verdict::Next;
        case E::Deny: {
            GcraDecision d;
            d.kind = GcraDecision::Kind::Limited;
            d.retry_after_us = 1'000'000;
            d.reset_us = 1'000'000;
            recordDecision(req, c, d, true);
            return req.fail(429, "rate limit exceeded");
        }
        case E::Local:
            break;
    }
    return decideLocal(req, c, h, c.fallback);
}

/// Applies a script reply {granted, remaining, retry_after_us, reset_us} for key hash `h`
/// (sync: batched keeps the tokens beyond the first, or the refusal); false when the reply has
/// another shape.
bool applyReply(const redisReply* r, worker::Request& req, const LimitConf& c, uint64_t h,
                worker::Verdict& v) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        return false;
    }
    long long f[4];
    for (size_t i = 0; i < 4; ++i) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER) {
            return false;
        }
        f[i] = r->element[i]->integer;
    }
    auto us = [](long long x) { return x < 0 ? UINT64_MAX : static_cast<uint64_t>(x); };
    GcraDecision d;
    d.remaining = static_cast<uint32_t>(std::clamp<long long>(f[1], 0, UINT32_MAX));
    d.retry_after_us = us(f[2]);
    d.reset_us = us(f[3]);
    const uint64_t now = shm::monotonicMicros();
    // Refreshed at most every 100 ms: one shared line written by every worker otherwise.
    if (now - c.shared.stats->store_last_ok_us.load(std::memory_order_relaxed) > 100'000) {
        c.shared.stats->store_last_ok_us.store(now, std::memory_order_relaxed);  // statistic
    }
    if (c.lease_us != 0) {
        if (Lease* l = leaseFor(h, c, true)) {
            if (f[0] >= 1) {
                // This request takes one token; the rest serve this worker's next requests.
                const bool valid = l->expires_us > now;
                l->tokens = static_cast<uint32_t>(f[0] - 1) + (valid ? l->tokens : 0);
                l->expires_us = now + c.lease_us;
                l->refused_until_us = 0;
                l->remaining = d.remaining;
                l->reset_at_us = d.reset_us == UINT64_MAX ? UINT64_MAX : now + d.reset_us;
                d.remaining += l->tokens;
            } else {
                l->tokens = 0;
                l->refused_until_us =
                    d.retry_after_us == UINT64_MAX ? UINT64_MAX : now + d.retry_after_us;
                l->reset_at_us = d.reset_us == UINT64_MAX ? UINT64_MAX : now + d.reset_us;
            }
        }
    }
    if (f[0] >= 1) {
        d.kind = GcraDecision::Kind::Allowed;
        if (c.headers) {
            recordDecision(req, c, d, false);
        }
        v = worker::Verdict::Next;
        return true;
    }
    d.kind = GcraDecision::Kind::Limited;
    c.shared.stats->limited.fetchAdd(1, std::memory_order_relaxed);  // a statistic
    recordDecision(req, c, d, true);
    v = req.fail(429, "rate limit exceeded");
    return true;
}

void onReply(const redisReply* r, void* arg) {
    auto& p = *static_cast<Pending*>(arg);
    p.in_flight = false;
    if (r != nullptr && r->type == REDIS_REPLY_ERROR &&
        std::string_view(r->str, r->len).starts_with("READONLY")) {
        // Sentinel mode: a failover demoted the server; the client finds the new master.
        g_store->client->readOnly(p.sent);
    }
    if (r != nullptr && r->type == REDIS_REPLY_ERROR && p.req != nullptr) {
        const std::string_view msg(r->str, r->len);
        uint16_t slot = 0;
        std::string_view addr;
        const Redirect kind = parseRedirect(msg, slot, addr);
        if (kind != Redirect::None && p.redirects < kMaxRedirects) {
            ++p.redirects;
            // Relaxed: a statistic.
            p.conf->shared.stats->store_redirects.fetchAdd(1, std::memory_order_relaxed);
            if (kind == Redirect::Moved) {
                g_store->client->moved(slot, addr);
                p.asking = false;
            } else {
                std::memcpy(p.ask_addr, addr.data(), addr.size());
                p.ask_addr[addr.size()] = '\0';
                p.asking = true;
            }
            if (sendDecision(p, p.retried)) {
                p.in_flight = true;
                return;
            }
        } else if (!p.retried && msg.starts_with("NOSCRIPT")) {
            p.retried = true;
            if (sendDecision(p, true)) {
                p.in_flight = true;
                return;
            }
        }
    }
    worker::Request* req = p.req;
    if (req == nullptr) {
        release(p);  // the request moved on at its deadline or went away
        return;
    }
    ev_timer_stop(g_store->loop, &p.deadline);
    const LimitConf& c = *p.conf;
    const uint64_t h = p.key_hash;
    p.req = nullptr;
    release(p);
    worker::Verdict v = worker::Verdict::Next;
    if (r == nullptr) {
        v = storeError(*req, c, h, "connection lost");
    } else if (r->type == REDIS_REPLY_ERROR) {
        char why[160];
        std::snprintf(why, sizeof why, "error reply: %.*s",
                      static_cast<int>(std::min<size_t>(r->len, 120)), r->str);
        v = storeError(*req, c, h, why);
    } else if (!applyReply(r, *req, c, h, v)) {
        v = storeError(*req, c, h, "unexpected reply");
    }
    req->resume(v);
}

void onDeadline(struct ev_loop*, ev_timer* w, int) noexcept {
    auto& p = *static_cast<Pending*>(w->data);
    worker::Request* req = p.req;
    if (req == nullptr) {
        return;
    }
    const LimitConf& c = *p.conf;
    const uint64_t h = p.key_hash;
    p.req = nullptr;
    // The connection is slow or dead: replace it (its pending commands fail now, this one's
    // record included), so that later requests do not queue behind it.
    g_store->client->timedOut(p.sent);
    release(p);
    req->resume(storeError(*req, c, h, "no reply within command_timeout"));
}

void onAbort(worker::Request&, void* arg) {
    auto& p = *static_cast<Pending*>(arg);
    ev_timer_stop(g_store->loop, &p.deadline);
    p.req = nullptr;
    release(p);  // kept until the connection answers when in flight
}

}  // namespace

std::string_view gcraScript() { return kScript; }
std::string_view gcraScriptSha() { return scriptSha(); }

size_t redisKey(std::string_view prefix, uint64_t h, char* out) {
    std::memcpy(out, prefix.data(), prefix.size());
    int n = std::snprintf(out + prefix.size(), 19, "{%016" PRIx64 "}", h);
    return prefix.size() + static_cast<size_t>(n);
}

core::Result<void> startRedisStore(const core::Config& cfg, struct ev_loop* loop,
                                   worker::IoBatch* io) {
    bool wanted = cfg.middleware.rate_limiting &&
                  cfg.middleware.rate_limiting->store == core::RateLimitConfig::Store::Redis;
    for (const auto& [n, c] : cfg.middleware.rate_limit_named) {
        wanted = wanted || c.store == core::RateLimitConfig::Store::Redis;
    }
    if (!wanted || !cfg.redis.configured || g_store != nullptr) {
        return {};
    }
    auto* s = new Store();  // lives as long as the process
    s->loop = loop;
    s->sha = scriptSha();
    s->prefix = cfg.redis.key_prefix;
    s->timeout_s = std::chrono::duration<double>(cfg.redis.command_timeout).count();
    s->pending.resize(kMaxPending);
    for (auto& p : s->pending) {
        ev_timer_init(&p.deadline, onDeadline, 0., 0.);
        p.deadline.data = &p;
        p.next_free = s->free_list;
        s->free_list = &p;
    }
    bool batched = cfg.middleware.rate_limiting &&
                   cfg.middleware.rate_limiting->sync == core::RateLimitConfig::Sync::Batched;
    for (const auto& [n, c] : cfg.middleware.rate_limit_named) {
        batched = batched || c.sync == core::RateLimitConfig::Sync::Batched;
    }
    if (batched) {
        s->leases.resize(kLeaseSlots);
    }
    s->client = std::make_unique<redis::Client>(cfg.redis, loop, redis::tlsContext(), io);
    g_store = s;
    s->client->start();
    return {};
}

worker::Verdict redisDecide(worker::Request& req, const LimitConf& c, uint64_t h) {
    if (g_store == nullptr) {
        return storeError(req, c, h, "no Redis client in this process");
    }
    if (c.lease_us != 0) {
        const uint64_t now = shm::monotonicMicros();
        if (Lease* l = leaseFor(h, c, false)) {
            GcraDecision d;
            const auto left = [&](uint64_t at) {
                return at == UINT64_MAX ? at : at > now ? at - now : 0;
            };
            if (l->refused_until_us > now) {
                d.kind = GcraDecision::Kind::Limited;
                d.retry_after_us = left(l->refused_until_us);
                d.reset_us = left(l->reset_at_us);
                c.shared.stats->limited.fetchAdd(1, std::memory_order_relaxed);  // a statistic
                recordDecision(req, c, d, true);
                return req.fail(429, "rate limit exceeded");
            }
            if (l->tokens > 0 && l->expires_us > now) {
                --l->tokens;
                if (c.headers) {
                    d.kind = GcraDecision::Kind::Allowed;
                    d.remaining = l->remaining + l->tokens;
                    d.reset_us = left(l->reset_at_us);
                    recordDecision(req, c, d, false);
                }
                return worker::Verdict::Next;
            }
        }
    }
    if (!g_store->client->ready()) {
        return storeError(req, c, h, "not connected");
    }
    Pending* p = g_store->free_list;
    if (p == nullptr) {
        return storeError(req, c, h, "too many decisions pending");
    }
    p->conf = &c;
    p->key_hash = h;
    p->retried = false;
    p->asking = false;
    p->redirects = 0;
    {
        char key[kCmdBuf];
        p->slot = redis::keySlot(std::string_view(key, redisKey(g_store->prefix, h, key)));
    }
    if (!sendDecision(*p, false)) {
        p->conf = nullptr;
        return storeError(req, c, h, "not connected");
    }
    g_store->free_list = p->next_free;
    p->free = false;
    p->in_flight = true;
    p->req = &req;
    ev_timer_set(&p->deadline, g_store->timeout_s, 0.);
    ev_timer_start(g_store->loop, &p->deadline);
    req.onAbort(onAbort, p);
    return worker::Verdict::Suspend;
}

void appendStoreHealth(const core::Config& cfg, std::string& out) {
    if (!cfg.redis.configured) {
        return;
    }
    char buf[512];
    const uint32_t ready = g_store != nullptr ? g_store->client->readyCount() : 0;
    using Mode = core::RedisConfig::Mode;
    const Mode mode = cfg.redis.mode;
    if (mode == Mode::Sentinel) {
        // The master as this worker's Sentinels named it (null until one did), and the
        // failovers it followed. master_name is no secret; it is checked to be plain text.
        const std::string_view m =
            g_store != nullptr ? g_store->client->master() : std::string_view();
        std::snprintf(buf, sizeof buf,
                      ",\"redis\":{\"master_name\":\"%s\",\"master\":%s%.*s%s,"
                      "\"sentinels\":%zu,\"master_changes\":%" PRIu64,
                      cfg.redis.master_name.c_str(), m.empty() ? "null" : "\"",
                      static_cast<int>(m.size()), m.data(), m.empty() ? "" : "\"",
                      cfg.redis.addresses.size(),
                      g_store != nullptr ? g_store->client->masterChanges() : 0);
        out += buf;
    } else {
        out += ",\"redis\":{";
    }
    std::snprintf(buf, sizeof buf,
                  "%s\"address\":\"%s\",\"mode\":\"%s\",\"state\":\"%s\","
                  "\"nodes\":%zu,\"connections\":%u,\"pool_size\":%u,\"failures\":%" PRIu64
                  ",\"redirects\":%" PRIu64 ",\"limits\":{",
                  mode == Mode::Sentinel ? "," : "", cfg.redis.addresses.front().toString().c_str(),
                  mode == Mode::Cluster    ? "cluster"
                  : mode == Mode::Sentinel ? "sentinel"
                                           : "standalone",
                  g_store != nullptr && g_store->client->ready() ? "up" : "down",
                  g_store != nullptr ? g_store->client->nodeCount() : 0, ready, cfg.redis.pool_size,
                  g_store != nullptr ? g_store->client->failures() : 0,
                  g_store != nullptr ? g_store->client->redirects() : 0);
    out += buf;
    bool first = true;
    auto one = [&](const std::string& name, const core::RateLimitConfig& c) {
        if (c.store != core::RateLimitConfig::Store::Redis) {
            return;
        }
        const SharedLimit* s = findSharedLimit(name);
        if (s == nullptr || s->stats == nullptr) {
            return;
        }
        const uint64_t now = shm::monotonicMicros();
        const uint64_t err = s->stats->store_last_error_us.load(std::memory_order_relaxed);
        const uint64_t ok = s->stats->store_last_ok_us.load(std::memory_order_relaxed);
        std::snprintf(buf, sizeof buf,
                      "%s\"%s\":{\"store_errors\":%" PRIu64 ",\"redirects\":%" PRIu64
                      ",\"last_error_seconds_ago\":%s,\"healthy\":%s}",
                      first ? "" : ",", name.empty() ? "default" : name.c_str(),
                      s->stats->store_errors.load(std::memory_order_relaxed),
                      s->stats->store_redirects.load(std::memory_order_relaxed),
                      err == 0 ? "null" : std::to_string((now - err) / 1'000'000).c_str(),
                      err == 0 || ok > err ? "true" : "false");
        out += buf;
        first = false;
    };
    if (cfg.middleware.rate_limiting) {
        one(std::string(), *cfg.middleware.rate_limiting);
    }
    for (const auto& [n, c] : cfg.middleware.rate_limit_named) {
        one(n, c);
    }
    out += "}}";
}

}  // namespace photon::mod::ratelimit
