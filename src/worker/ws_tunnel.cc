// SPDX-License-Identifier: Apache-2.0
// The WebSocket relay. Each direction reads into one bounded buffer (the client's `in`, the
// upstream's `rbuf`), walks the frame headers there (FrameScanner) and sends the bytes it has
// passed over as they are: payloads are never copied twice, unmasked or re-masked. A violation
// or a timeout ends the tunnel with a close frame of ours to each side, sent at a frame
// boundary, then a half-close and a short drain, so the frame is not lost to a reset.
#include "worker/ws_tunnel.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "core/log.h"
#include "modules/websocket/frame.h"
#include "worker/context.h"
#include "worker/http_conn.h"
#include "worker/proxy.h"
#include "worker/server_counters.h"
#include "worker/shared_state.h"
#include "worker/tls_io.h"

namespace photon::worker {

namespace mws = mod::websocket;

/// One direction: source socket → its buffer → destination socket.
struct WsDir {
    mws::FrameScanner scan;
    size_t ready = 0;     // bytes at the front of the buffer passed over by the scanner, not sent
    uint8_t ctl[8] = {};  // a close frame of ours, sent after the ready bytes
    uint8_t ctl_len = 0;
    uint8_t ctl_off = 0;
    bool src_eof = false;   // the source sent EOF (or is drained after our close)
    bool dst_shut = false;  // the destination was half-closed (everything sent)
    bool blocked = false;   // the destination's socket is full: wait for writability
};

struct WsTunnel {
    WsDir c2u;  // client → upstream, buffer c->in
    WsDir u2c;  // upstream → client, buffer up->rbuf (after c->out, the 101 head)
    ev_timer timer{};
    ClientConn* conn = nullptr;
    double started = 0;
    double last_io = 0;    // last byte read from either side
    double idle = 0;       // 0 = none
    double lifetime = 0;   // 0 = none
    double close_by = 0;   // closing or half-closed: the tunnel ends by then at the latest
    bool closing = false;  // we sent (or tried to send) close frames: sources are drained
};

namespace {

// How long a tunnel may stay half-closed, or wait for both peers' EOF after our close frames.
constexpr double kCloseWait = 5.0;
// Bytes read from one side per event before the other connections of the loop get a turn.
constexpr size_t kBudget = 1u << 20;

std::vector<WsTunnel*> g_free;

inline struct ev_loop* L() { return ctx().loop; }
inline double now() { return ev_now(ctx().loop); }

void onClientRead(struct ev_loop*, ev_io* w, int) noexcept;
void onClientWrite(struct ev_loop*, ev_io* w, int) noexcept;
void onUpstreamRead(struct ev_loop*, ev_io* w, int) noexcept;
void onUpstreamWrite(struct ev_loop*, ev_io* w, int) noexcept;
void onTimer(struct ev_loop*, ev_timer* w, int) noexcept;

void setWatcher(ev_io* w, bool on) {
    if (on && !ev_is_active(w)) {
        ev_io_start(L(), w);
    } else if (!on && ev_is_active(w)) {
        ev_io_stop(L(), w);
    }
}

/// Re-arms the timer for the earliest deadline that applies now.
void armTimer(WsTunnel& t) {
    double at = 0;
    auto take = [&](double d) {
        if (d > 0 && (at == 0 || d < at)) {
            at = d;
        }
    };
    if (t.close_by > 0) {
        take(t.close_by);
    } else {
        take(t.idle > 0 ? t.last_io + t.idle : 0);
        take(t.lifetime > 0 ? t.started + t.lifetime : 0);
    }
    ev_timer_stop(L(), &t.timer);
    if (at > 0) {
        ev_timer_set(&t.timer, std::max(at - now(), 0.001), 0.);
        ev_timer_start(L(), &t.timer);
    }
}

/// Sends what direction `d` has ready (and then its close frame). False when the connection
/// was closed (the caller must not touch it again).
bool flush(ClientConn* c, bool c2u) {
    WsTunnel& t = *c->ws;
    UpstreamConn* u = c->up;
    WsDir& d = c2u ? t.c2u : t.u2c;
    Buffer& buf = c2u ? c->in : u->rbuf;
    int dst = c2u ? u->fd : c->fd;
    SSL* dst_ssl = c2u ? u->ssl : c->ssl;
    while (true) {
        iovec iov[3];
        int k = 0;
        size_t head = 0;
        if (!c2u && !c->out.empty()) {
            head = c->out.size();
            iov[k++] = {c->out.readPtr(), head};
        }
        if (d.ready != 0) {
            iov[k++] = {buf.readPtr(), d.ready};
        }
        if (d.ctl_off < d.ctl_len) {
            iov[k++] = {d.ctl + d.ctl_off, static_cast<size_t>(d.ctl_len - d.ctl_off)};
        }
        if (k == 0) {
            break;
        }
        ssize_t n = connSendv(dst, dst_ssl, iov, k);
        if (n < 0) {
            if (n == -EAGAIN || n == -EWOULDBLOCK) {
                d.blocked = true;
                setWatcher(c2u ? &u->wio : &c->wio, true);
                return true;
            }
            tunnelFinish(c, false);  // the peer is gone
            return false;
        }
        size_t w = static_cast<size_t>(n);
        if (!c2u) {
            c->st->meta.bytes_out += w;  // bytes from the client are counted when read
            c->resp_started = true;
        }
        size_t from_head = std::min(w, head);
        c->out.consume(from_head);
        w -= from_head;
        size_t from_ready = std::min(w, d.ready);
        buf.consume(from_ready);
        d.ready -= from_ready;
        w -= from_ready;
        d.ctl_off = static_cast<uint8_t>(d.ctl_off + w);
    }
    d.blocked = false;
    setWatcher(c2u ? &u->wio : &c->wio, false);
    if (!d.dst_shut && (d.src_eof || t.closing)) {
        if (dst_ssl != nullptr) {
            SSL_shutdown(dst_ssl);  // close_notify, then the TCP half-close
            ERR_clear_error();
        }
        ::shutdown(dst, SHUT_WR);
        d.dst_shut = true;
        if (t.close_by == 0) {
            t.close_by = now() + kCloseWait;  // half-closed: the other side has this long
            armTimer(t);
        }
    }
    if (t.c2u.dst_shut && t.u2c.dst_shut && t.c2u.src_eof && t.u2c.src_eof) {
        tunnelFinish(c, false);  // both sides said all they had to say, and heard it all
        return false;
    }
    return true;
}

bool pump(ClientConn* c, bool c2u);

/// Ends the tunnel with `code`: a close frame to each side at its next frame boundary, nothing
/// more relayed, both sources drained until their EOF (bounded by kCloseWait).
bool closeWith(ClientConn* c, uint16_t code) {
    WsTunnel& t = *c->ws;
    if (t.closing) {
        return true;
    }
    t.closing = true;
    t.close_by = now() + kCloseWait;
    for (bool c2u : {true, false}) {
        WsDir& d = c2u ? t.c2u : t.u2c;
        Buffer& buf = c2u ? c->in : c->up->rbuf;
        buf.wpos = static_cast<uint32_t>(buf.rpos + d.ready);  // a partial header is dropped
        if (buf.rpos == buf.wpos) {
            buf.rpos = buf.wpos = 0;
        }
        // Our frame goes where a frame may start: after the ready bytes, when they end one.
        if (!d.dst_shut && d.scan.atBoundary()) {
            uint8_t mask[4];
            if (c2u) {
                arc4random_buf(mask, sizeof mask);  // frames to a server are masked (§5.3)
            }
            d.ctl_len = static_cast<uint8_t>(mws::writeClose(d.ctl, code, c2u ? mask : nullptr));
            d.ctl_off = 0;
        }
    }
    armTimer(t);
    return pump(c, false) && pump(c, true);
}

/// Moves what it can in one direction: send what is ready, read more, scan it, send again.
/// False when the connection was closed.
bool pump(ClientConn* c, bool c2u) {
    WsTunnel& t = *c->ws;
    UpstreamConn* u = c->up;
    WsDir& d = c2u ? t.c2u : t.u2c;
    Buffer& buf = c2u ? c->in : u->rbuf;
    int src = c2u ? c->fd : u->fd;
    SSL* src_ssl = c2u ? c->ssl : u->ssl;
    // A batched receive begun before the upgrade is still in flight: its completion
    // (wsClientData) brings the client's bytes; reading beside it would reorder them.
    bool src_busy = c2u && c->rx.busy();
    size_t moved = 0;
    // A read shorter than asked for emptied the socket: the loop's level-triggered watcher
    // reports anything that arrives later, so no second recv() just to see EAGAIN (one
    // syscall less per message when messages come one at a time).
    bool drained = false;
    while (true) {
        if (!flush(c, c2u)) {
            return false;
        }
        if (d.blocked || d.src_eof || src_busy || drained || moved >= kBudget) {
            break;
        }
        ssize_t n;
        size_t want;
        if (t.closing) {
            char sink[16384];  // after our close frame: read to see the EOF, keep nothing
            want = sizeof sink;
            n = connRecv(src, src_ssl, sink, sizeof sink);
        } else {
            if (buf.space() == 0) {
                buf.compact();
            }
            if (buf.space() == 0) {
                break;  // cannot happen once the ready bytes are sent (a header is ≤ 14 bytes)
            }
            want = buf.space();
            n = connRecv(src, src_ssl, buf.writePtr(), want);
        }
        if (n < 0) {
            if (n == -EAGAIN || n == -EWOULDBLOCK) {
                break;
            }
            tunnelFinish(c, false);
            return false;
        }
        if (n == 0) {
            d.src_eof = true;
            continue;  // flush() half-closes the destination once everything is sent
        }
        moved += static_cast<size_t>(n);
        // (TLS may hold the rest of a record the buffer had no room for.)
        drained =
            static_cast<size_t>(n) < want && (src_ssl == nullptr || SSL_has_pending(src_ssl) == 0);
        t.last_io = now();
        if (c2u) {
            c->st->meta.bytes_in += static_cast<uint64_t>(n);
        }
        if (t.closing) {
            continue;
        }
        buf.produce(static_cast<size_t>(n));
        auto r = d.scan.scan(reinterpret_cast<const uint8_t*>(buf.readPtr()) + d.ready,
                             buf.size() - d.ready);
        d.ready += r.consumed;
        if (r.messages != 0) {
            sharedWsCounters().messages[c2u ? 0 : 1].fetchAdd(r.messages,
                                                              std::memory_order_relaxed);
        }
        if (r.error != 0) {
            LOG_INFO("websocket %s (request %.*s): %s; closing with %u",
                     c2u ? "client" : "upstream", static_cast<int>(c->st->meta.id_len),
                     c->st->meta.id,
                     r.error == mws::kCloseTooBig ? "message larger than max_message_size"
                                                  : "protocol error",
                     static_cast<unsigned>(r.error));
            return closeWith(c, r.error);
        }
    }
    bool can_read = !d.src_eof && !d.blocked && !src_busy;
    setWatcher(c2u ? &c->rio : &u->rio, can_read);
    if (can_read && moved >= kBudget && src_ssl != nullptr && SSL_has_pending(src_ssl) == 1) {
        // Stopped for the budget with bytes TLS read ahead, which epoll cannot report: come
        // back for them (only then: a partial record waits for the socket).
        ev_feed_event(L(), c2u ? &c->rio : &u->rio, EV_READ);
    }
    return true;
}

ClientConn* clientOf(ev_io* w) { return static_cast<ClientConn*>(w->data); }
ClientConn* ownerOf(ev_io* w) { return static_cast<UpstreamConn*>(w->data)->owner; }

void onClientRead(struct ev_loop*, ev_io* w, int) noexcept { pump(clientOf(w), true); }
void onClientWrite(struct ev_loop*, ev_io* w, int) noexcept { pump(clientOf(w), false); }
void onUpstreamRead(struct ev_loop*, ev_io* w, int) noexcept { pump(ownerOf(w), false); }
void onUpstreamWrite(struct ev_loop*, ev_io* w, int) noexcept { pump(ownerOf(w), true); }

void onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* t = static_cast<WsTunnel*>(w->data);
    ClientConn* c = t->conn;
    double n = now();
    if (t->close_by > 0) {
        if (n >= t->close_by) {
            tunnelFinish(c, false);  // a peer did not finish closing in time
            return;
        }
    } else if ((t->lifetime > 0 && n >= t->started + t->lifetime) ||
               (t->idle > 0 && n >= t->last_io + t->idle)) {
        closeWith(c, mws::kCloseGoingAway);
        return;
    }
    armTimer(*t);
}

}  // namespace

void wsStart(ClientConn* c, const RouteRt& route) {
    WsTunnel* t;
    if (g_free.empty()) {
        t = new WsTunnel;
    } else {
        t = g_free.back();
        g_free.pop_back();
        *t = WsTunnel{};
    }
    UpstreamConn* u = c->up;
    c->ws = t;
    c->state = ClientConn::State::Tunnel;
    t->conn = c;
    t->started = t->last_io = now();
    t->idle = route.ws_idle > 0 ? route.ws_idle : u->up->read_timeout;
    t->lifetime = route.ws_lifetime;
    bool ext = c->ws_extensions;
    t->c2u.scan = mws::FrameScanner({true, ext, route.ws_max_message});
    t->u2c.scan = mws::FrameScanner({false, ext, route.ws_max_message});
    // From now on the sockets are driven here, with plain system calls.
    c->timer.stop(L());
    u->timer.stop(L());
    ctx().io.cancel(&u->rx);  // delivered already: we are called from its completion
    ev_set_cb(&c->rio, onClientRead);
    ev_set_cb(&c->wio, onClientWrite);
    ev_set_cb(&u->rio, onUpstreamRead);
    ev_set_cb(&u->wio, onUpstreamWrite);
    c->reading = c->writing = false;  // the flags belong to the HTTP state machine
    ev_io_stop(L(), &c->rio);
    ev_io_stop(L(), &c->wio);
    ev_io_stop(L(), &u->rio);
    ev_io_stop(L(), &u->wio);
    ev_init(&t->timer, onTimer);
    t->timer.data = t;
    ctx().io_pool.acquire(c->in);
    WsSlotCounters& k = sharedWsCounters();
    k.upgrades[static_cast<size_t>(WsUpgradeResult::Upgraded)].fetchAdd(
        1, std::memory_order_relaxed);  // counters: read by the exporter, no ordering needed
    k.active.fetchAdd(1, std::memory_order_relaxed);
    armTimer(*t);
    // Bytes that came with the 101 (upstream) or right after the request (client) go first.
    auto scanHeld = [&](bool c2u) {
        WsDir& d = c2u ? t->c2u : t->u2c;
        Buffer& buf = c2u ? c->in : u->rbuf;
        if (buf.empty()) {
            return 0;
        }
        auto r = d.scan.scan(reinterpret_cast<const uint8_t*>(buf.readPtr()), buf.size());
        d.ready = r.consumed;
        if (r.messages != 0) {
            k.messages[c2u ? 0 : 1].fetchAdd(r.messages, std::memory_order_relaxed);
        }
        return static_cast<int>(r.error);
    };
    int e1 = scanHeld(false);
    int e2 = scanHeld(true);
    if (e1 != 0 || e2 != 0) {
        closeWith(c, static_cast<uint16_t>(e1 != 0 ? e1 : e2));
        return;
    }
    if (pump(c, false)) {
        pump(c, true);
    }
}

void wsClientData(ClientConn* c, long n) {
    WsTunnel& t = *c->ws;
    if (n <= 0) {
        if (n == 0) {
            t.c2u.src_eof = true;
            pump(c, true);
        } else {
            tunnelFinish(c, false);
        }
        return;
    }
    t.last_io = now();
    c->st->meta.bytes_in += static_cast<uint64_t>(n);
    if (t.closing) {
        c->in.wpos -= static_cast<uint32_t>(n);  // drained: nothing more is relayed
    } else {
        WsDir& d = t.c2u;
        auto r = d.scan.scan(reinterpret_cast<const uint8_t*>(c->in.readPtr()) + d.ready,
                             c->in.size() - d.ready);
        d.ready += r.consumed;
        if (r.messages != 0) {
            sharedWsCounters().messages[0].fetchAdd(r.messages, std::memory_order_relaxed);
        }
        if (r.error != 0) {
            closeWith(c, r.error);
            return;
        }
    }
    pump(c, true);
}

void wsGoingAwayNow(ClientConn* c) {
    WsTunnel& t = *c->ws;
    if (!t.closing) {
        t.closing = true;
        for (bool c2u : {true, false}) {
            WsDir& d = c2u ? t.c2u : t.u2c;
            if (!d.dst_shut && d.scan.atBoundary()) {
                uint8_t mask[4];
                if (c2u) {
                    arc4random_buf(mask, sizeof mask);
                }
                d.ctl_len = static_cast<uint8_t>(
                    mws::writeClose(d.ctl, mws::kCloseGoingAway, c2u ? mask : nullptr));
            }
        }
    }
    // One non-blocking attempt per side; the caller closes the connection right after.
    for (bool c2u : {true, false}) {
        WsDir& d = c2u ? t.c2u : t.u2c;
        Buffer& buf = c2u ? c->in : c->up->rbuf;
        int dst = c2u ? c->up->fd : c->fd;
        iovec iov[2];
        int k = 0;
        if (d.ready != 0) {
            iov[k++] = {buf.readPtr(), d.ready};
        }
        if (d.ctl_off < d.ctl_len) {
            iov[k++] = {d.ctl + d.ctl_off, static_cast<size_t>(d.ctl_len - d.ctl_off)};
        }
        if (k != 0 && !d.dst_shut) {
            ssize_t n = connSendv(dst, c2u ? c->up->ssl : c->ssl, iov, k);
            (void)n;
        }
        if (!d.dst_shut) {
            if (SSL* ssl = c2u ? c->up->ssl : c->ssl; ssl != nullptr) {
                SSL_shutdown(ssl);
                ERR_clear_error();
            }
            ::shutdown(dst, SHUT_WR);
            d.dst_shut = true;
        }
    }
}

void wsRelease(ClientConn* c) {
    WsTunnel* t = c->ws;
    c->ws = nullptr;
    ev_timer_stop(L(), &t->timer);
    WsSlotCounters& k = sharedWsCounters();
    k.active.fetchSub(1, std::memory_order_relaxed);
    double secs = now() - t->started;
    size_t b = 0;
    while (b < std::size(kWsDurationBounds) && secs > kWsDurationBounds[b]) {
        ++b;
    }
    k.duration_buckets[b].fetchAdd(1, std::memory_order_relaxed);
    k.duration_count.fetchAdd(1, std::memory_order_relaxed);
    k.duration_sum_us.fetchAdd(static_cast<uint64_t>(secs * 1e6), std::memory_order_relaxed);
    if (g_free.size() < 1024) {
        g_free.push_back(t);
    } else {
        delete t;
    }
}

}  // namespace photon::worker
