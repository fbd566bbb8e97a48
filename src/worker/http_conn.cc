// SPDX-License-Identifier: Apache-2.0
// The request state machine: strict parse, route, stream to an upstream and back, keep-alive.
#include "worker/http_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "core/config.h"
#include "core/log.h"
#include "master/listener.h"
#include "modules/balancer/rng.h"
#include "modules/cache/cache.h"
#include "modules/metrics/store.h"
#include "modules/registry.h"
#include "modules/routing/path_normalize.h"
#include "modules/routing/router.h"
#include "modules/tls/server_tls.h"
#include "modules/tracing/traceparent.h"
#include "modules/websocket/handshake.h"
#include "shm/clock.h"
#include "worker/access_log.h"
#include "worker/client_address.h"
#include "worker/conn_internal.h"
#include "worker/local_reply.h"
#include "worker/metrics_export.h"
#include "worker/phases.h"
#include "worker/proxy.h"
#include "worker/retry.h"
#include "worker/server_counters.h"
#include "worker/shared_state.h"
#include "worker/tls_io.h"
#include "worker/ws_tunnel.h"

namespace photon::worker {

class ClientConn;
bool serveObservability(ClientConn* c, std::string_view path, bool metrics_listener);

namespace {

uint64_t g_last_overflow_log_us = 0;  // circuit-breaking warnings: at most one a second

/// Trace and span ids: a per-worker generator seeded from the kernel's randomness once.
mod::balancer::Rng& traceRng() {
    static mod::balancer::Rng rng([] {
        uint64_t seed;
        arc4random_buf(&seed, sizeof seed);
        return seed;
    }());
    return rng;
}

using core::http::BodyFraming;
using core::http::ParseStatus;

std::vector<ClientConn*> g_free_clients;
std::vector<ReqState*> g_free_states;  // request states of connections gone idle or closed
ev_timer g_pool_sweep{};               // closes idle pooled upstream connections (see poolPut)
void onPoolSweep(struct ev_loop*, ev_timer* w, int) noexcept;
std::vector<UpstreamConn*> g_free_upstreams;
constexpr size_t kMaxFreeObjects = 4096;
constexpr size_t kMaxFreeStates = 1024;  // request states kept for reuse (about 16 KiB each)
// The first read of a response takes at most this much, so that the rest of a large body can
// be spliced instead of copied through user space; a typical head and a small body still come
// in one read.
constexpr size_t kHeadRead = 16384;
// A Content-Length body with at least this much left after the first read is spliced.
constexpr uint64_t kSpliceMin = 8192;
using conn::kJoinBody;
// How long an upstream that was sent "Expect: 100-continue" may stay silent before the client is
// told to send its body anyway.
constexpr double kContinueWait = 1.0;

inline struct ev_loop* L() { return ctx().loop; }
inline double now() { return ev_now(ctx().loop); }

void onClientRead(struct ev_loop*, ev_io* w, int) noexcept;
void onClientWrite(struct ev_loop*, ev_io* w, int) noexcept;
void onClientTimer(struct ev_loop*, ev_timer* w, int) noexcept;
void onUpstreamRead(struct ev_loop*, ev_io* w, int) noexcept;
void onUpstreamWrite(struct ev_loop*, ev_io* w, int) noexcept;
void onUpstreamTimer(struct ev_loop*, ev_timer* w, int) noexcept;

void processInput(ClientConn* c);
void attachState(ClientConn* c);
void attemptUpstream(ClientConn* c);
void retryAfterBackoff(ClientConn* c, bool backoff);
void sendUpstream(ClientConn* c);
void pumpRequestBody(ClientConn* c);
void abandonRequestBody(ClientConn* c);
void pumpResponse(ClientConn* c);
void pumpSplice(ClientConn* c);
void finishProxy(ClientConn* c);
void finishRequest(ClientConn* c);
void closeClient(ClientConn* c);
void countRequest(ClientConn* c);
void sendLocal(ClientConn* c, int status, std::string_view error, std::string_view extra_headers,
               bool close);
void writeLocal(ClientConn* c);
void proceedProxy(ClientConn* c);
void upgradeAccepted(ClientConn* c);
void buildClientHead(ClientConn* c, bool own_gateway);
// The response cache step (cache_step.cc).
using conn::cacheCommit;
using conn::cacheLookup;
using conn::cacheOnHead;
using conn::cacheOnStatus;
using conn::cachePurge;
using conn::cacheRelease;
using conn::cacheServeStaleOnError;
using conn::cacheTee;
using conn::pumpCached;

/// The connection side of the phase engine.
class ConnHost final : public RequestHost {
public:
    void proxy(Request& req) override { proceedProxy(static_cast<ClientConn*>(req.conn)); }
    void sendHead(Request& req) override { writeLocal(static_cast<ClientConn*>(req.conn)); }
    void resumed(Request&) override {}
};
ConnHost g_host;
bool clientRxPrep(IoOp* op, IoArgs& a);
void clientRxDone(IoOp* op, ssize_t n);
bool clientTxPrep(IoOp* op, IoArgs& a);
void clientTxDone(IoOp* op, ssize_t n);
bool upstreamRxPrep(IoOp* op, IoArgs& a);
void upstreamRxDone(IoOp* op, ssize_t n);
bool upstreamTxPrep(IoOp* op, IoArgs& a);
void upstreamTxDone(IoOp* op, ssize_t n);

// ----- watcher helpers (each start/stop is an epoll change: only when the state changes) -----

void startRead(ClientConn* c) {
    if (c->ssl != nullptr && !c->tls_handshake && SSL_has_pending(c->ssl) == 1) {
        // Bytes TLS read ahead, which epoll cannot report. (At worst the rest of a record that
        // is still incomplete: the read then finds nothing and waits for the socket.)
        ev_feed_event(L(), &c->rio, EV_READ);
    }
    if (!c->reading) {
        ev_io_start(L(), &c->rio);
        c->reading = true;
    }
}
void stopRead(ClientConn* c) {
    if (c->reading) {
        ev_io_stop(L(), &c->rio);
        c->reading = false;
    }
}
void startWrite(ClientConn* c) {
    if (!c->writing) {
        ev_io_start(L(), &c->wio);
        c->writing = true;
    }
}
void stopWrite(ClientConn* c) {
    if (c->writing) {
        ev_io_stop(L(), &c->wio);
        c->writing = false;
    }
}
/// The client's timeout is due `seconds` from now; 0 turns it off.
void clientTimer(ClientConn* c, double seconds) { c->timer.set(L(), seconds); }
void upstreamTimer(UpstreamConn* u, double seconds) { u->timer.set(L(), seconds); }
/// A TLS upstream's bytes read ahead cannot wake epoll: its read watcher is told instead (at
/// worst for the rest of an incomplete record, whose read then finds nothing).
void feedTlsPending(UpstreamConn* u) {
    if (u->ssl != nullptr && SSL_has_pending(u->ssl) == 1) {
        ev_feed_event(L(), &u->rio, EV_READ);
    }
}

/// The route's timeout (else the upstream's own), shortened to its per_try_timeout.
double attemptTimeout(const ClientConn* c, double upstream_own) {
    double t = upstream_own;
    if (c && c->st->meta.route >= 0) {
        const RouteRt& r = ctx().proxy->routes[static_cast<size_t>(c->st->meta.route)];
        if (r.timeout > 0) {
            t = r.timeout;
        }
        if (r.per_try_timeout > 0 && r.per_try_timeout < t) {
            t = r.per_try_timeout;
        }
    }
    return t;
}
double readTimeout(const ClientConn* c, const UpstreamConn* u) {
    return attemptTimeout(c, u->up->read_timeout);
}
double writeTimeout(const ClientConn* c, const UpstreamConn* u) {
    return attemptTimeout(c, u->up->write_timeout);
}

// ----- upstream connections -----

UpstreamConn* newUpstreamConn() {
    UpstreamConn* u;
    if (g_free_upstreams.empty()) {
        u = new UpstreamConn;
    } else {
        u = g_free_upstreams.back();
        g_free_upstreams.pop_back();
        new (u) UpstreamConn;
    }
    u->rx = IoOp{upstreamRxPrep, upstreamRxDone, u};
    u->tx = IoOp{upstreamTxPrep, upstreamTxDone, u};
    return u;
}

void connectDone(UpstreamConn* u);

void destroyUpstreamConn(UpstreamConn* u) {
    connectDone(u);
    ctx().io.cancel(&u->rx);
    ctx().io.cancel(&u->tx);
    ev_io_stop(L(), &u->rio);
    ev_io_stop(L(), &u->wio);
    u->timer.stop(L());
    if (u->pool_node.linked()) {
        u->pool_node.unlink();
        --u->up->idle_count;
    }
    if (u->ssl != nullptr) {
        if (!u->connecting) {
            SSL_shutdown(u->ssl);  // close_notify, best effort
        }
        ERR_clear_error();
        SSL_free(u->ssl);
        u->ssl = nullptr;
    }
    if (u->fd >= 0) {
        ::close(u->fd);
    }
    ctx().body_pool.release(u->rbuf);
    ctx().io_pool.release(u->wbuf);
    u->~UpstreamConn();
    if (g_free_upstreams.size() < kMaxFreeObjects) {
        g_free_upstreams.push_back(u);
    } else {
        ::operator delete(u);
    }
}

/// Version of the upstream's address as the master last published it (0: no shared table).
uint64_t addressStamp(const UpstreamRt& up) {
    return up.shm_index < 0 ? 0 : sharedUpstreamAddressStamp(static_cast<uint32_t>(up.shm_index));
}

/// Starts a non-blocking connect. Returns nullptr (errno set) when it fails at once.
UpstreamConn* connectUpstream(UpstreamRt& up) {
    // The master re-resolves host names and publishes them in shared memory; fall back to the
    // address resolved at load when no table is mapped.
    sockaddr_storage sa;
    socklen_t salen = 0;
    uint64_t stamp = addressStamp(up);
    if (up.shm_index < 0 ||
        !sharedUpstreamAddress(static_cast<uint32_t>(up.shm_index), sa, salen)) {
        if (!up.resolved) {
            errno = EHOSTUNREACH;
            return nullptr;
        }
        sa = up.sa;
        salen = up.salen;
    }
    int fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return nullptr;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (up.tcp_keepalive) {
        ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &up.ka_idle, sizeof up.ka_idle);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &up.ka_interval, sizeof up.ka_interval);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &up.ka_count, sizeof up.ka_count);
    }
    bool connecting = false;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), salen) != 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            ::close(fd);
            errno = e;
            return nullptr;
        }
        connecting = true;
    }
    UpstreamConn* u = newUpstreamConn();
    u->fd = fd;
    u->up = &up;
    // A TLS upstream is "connecting" until its handshake is done (the TCP connect completes
    // first: the socket reports writable at once when it already has).
    u->connecting = connecting || up.tls;
    u->addr_stamp = stamp;
    ev_io_init(&u->rio, onUpstreamRead, fd, EV_READ);
    ev_io_init(&u->wio, onUpstreamWrite, fd, EV_WRITE);
    u->timer.init(onUpstreamTimer, u);
    u->rio.data = u->wio.data = u;
    return u;
}

UpstreamConn* takeIdle(UpstreamRt& up) {
    uint64_t stamp = addressStamp(up);
    while (up.idle.linked()) {
        ListNode* n = up.idle.prev;  // most recently used
        n->unlink();
        --up.idle_count;
        auto* u = reinterpret_cast<UpstreamConn*>(n);
        if (u->addr_stamp != stamp) {
            destroyUpstreamConn(u);  // made to an address the name no longer has
            continue;
        }
        if (now() - u->idle_since >= ctx().limits.upstream_keepalive_timeout) {
            destroyUpstreamConn(u);  // idle too long: the sweep had not come round yet
            continue;
        }
        u->reused = true;
        return u;
    }
    return nullptr;
}

void poolPut(UpstreamConn* u) {
    UpstreamRt& up = *u->up;
    Proxy& p = *ctx().proxy;
    if (ctx().graceful || up.idle_count >= p.max_idle_per_upstream) {
        destroyUpstreamConn(u);
        return;
    }
    u->owner = nullptr;
    ctx().io.cancel(&u->rx);
    ctx().io.cancel(&u->tx);
    ev_io_stop(L(), &u->wio);
    ev_io_start(L(), &u->rio);  // idle: readable means closed or garbage (stopped by back-pressure)
    ctx().body_pool.release(u->rbuf);
    ctx().io_pool.release(u->wbuf);
    up.idle.pushBack(&u->pool_node);
    ++up.idle_count;
    // Idle pooled connections are closed after server.upstream_keepalive_timeout, before the
    // server's own idle timeout makes reusing them a race. One sweep per worker does it (the
    // oldest are at the front of each pool), so pooling costs no timer operation.
    upstreamTimer(u, 0);
    u->idle_since = now();
    if (!ev_is_active(&g_pool_sweep)) {
        double every = std::clamp(ctx().limits.upstream_keepalive_timeout / 4, 0.05, 1.0);
        ev_timer_init(&g_pool_sweep, onPoolSweep, every, every);
        ev_timer_start(L(), &g_pool_sweep);
    }
}

/// Closes pooled connections idle for upstream_keepalive_timeout; stops when no pool holds any.
void onPoolSweep(struct ev_loop*, ev_timer* w, int) noexcept {
    Proxy* p = ctx().proxy;
    bool any = false;
    if (p != nullptr) {
        double limit = now() - ctx().limits.upstream_keepalive_timeout;
        for (auto& up : p->upstreams) {
            while (up.idle.linked()) {
                auto* u = reinterpret_cast<UpstreamConn*>(up.idle.next);  // the oldest
                if (u->idle_since > limit) {
                    break;
                }
                destroyUpstreamConn(u);
            }
            any = any || up.idle.linked();
        }
    }
    if (!any) {
        ev_timer_stop(L(), w);
    }
}

// ----- client connection lifecycle -----

void moveToList(ClientConn* c, ListNode& list) {
    if (c->node.linked()) {
        c->node.unlink();
    }
    list.pushBack(&c->node);
}

/// Frees the request's in-flight count on its upstream (shared across workers), once.
void releaseInflight(ClientConn* c) {
    if (c->counted) {
        c->counted = false;
        const size_t ui = static_cast<size_t>(c->up->up - ctx().proxy->upstreams.data());
        sharedRelease(*ctx().proxy, ui);
        if (c->retrying) {
            c->retrying = false;
            sharedRetrying(ui, -1);
        }
    }
}

/// The Connecting gauge ends for `u` (connected, or gone).
void connectDone(UpstreamConn* u) {
    if (u->pending) {
        u->pending = false;
        sharedConnecting(static_cast<size_t>(u->up - ctx().proxy->upstreams.data()), -1);
    }
}

/// Back-pressure: the upstream is not read until the client takes more of the response.
void waitForClient(ClientConn* c) {
    if (c->up != nullptr) {
        ev_io_stop(L(), &c->up->rio);
        upstreamTimer(c->up, 0);
    }
    startWrite(c);
    clientTimer(c, ctx().limits.send_timeout);
}

void releaseUpstream(ClientConn* c, bool reusable) {
    UpstreamConn* u = c->up;
    if (u == nullptr) {
        return;
    }
    releaseInflight(c);
    ctx().io.cancel(&c->tx);  // it may point into u->rbuf
    c->up = nullptr;
    if (c->splicing) {
        c->splicing = false;
        ctx().pipes.release(c->pipe);  // closed if the response was abandoned with bytes in it
    }
    if (reusable) {
        ++u->served;
        poolPut(u);
    } else {
        destroyUpstreamConn(u);
    }
}

/// A connection object (from the free list) for socket `fd` (-1: a background request), its
/// watchers, I/O operations and timer set up, counted in the worker's connections.
ClientConn* newConn(int fd, int kind) {
    ClientConn* c;
    if (g_free_clients.empty()) {
        c = new ClientConn;
    } else {
        c = g_free_clients.back();
        g_free_clients.pop_back();
        new (c) ClientConn;
    }
    c->fd = fd;
    c->kind = kind;
    c->id = ctx().next_conn_id++;
    ev_io_init(&c->rio, onClientRead, fd, EV_READ);
    ev_io_init(&c->wio, onClientWrite, fd, EV_WRITE);
    c->rx = IoOp{clientRxPrep, clientRxDone, c};
    c->tx = IoOp{clientTxPrep, clientTxDone, c};
    c->timer.init(onClientTimer, c);
    c->rio.data = c->wio.data = c;
    ++ctx().conn_count;
    return c;
}

/// Gives the connection a request state (from the pool) if it has none.
void attachState(ClientConn* c) {
    if (c->st != nullptr) {
        return;
    }
    ReqState* s;
    if (g_free_states.empty()) {
        s = new ReqState;
    } else {
        s = g_free_states.back();
        g_free_states.pop_back();
    }
    Request& rq = s->rq;
    rq.conn = c;
    rq.host_ = &g_host;
    rq.head = &s->req;
    rq.resp = &s->resp;
    rq.meta = &s->meta;
    rq.client_ip = std::string_view(c->peer_ip, c->peer_ip_len);
    rq.tls = c->ssl != nullptr ? &c->tls_info : nullptr;
    c->st = s;
}

/// Gives the request state back to the pool. `clean`: the request ended normally (its state
/// was reset then); otherwise it is reset here.
void detachState(ClientConn* c, bool clean) {
    ReqState* s = c->st;
    if (s == nullptr) {
        return;
    }
    c->st = nullptr;
    if (!clean) {
        s->rq.reset();
        s->meta.reset();
    }
    if (g_free_states.size() < kMaxFreeStates) {
        g_free_states.push_back(s);
    } else {
        delete s;
    }
}

void recycleClient(ClientConn* c) {
    detachState(c, false);
    c->~ClientConn();
    if (g_free_clients.size() < kMaxFreeObjects) {
        g_free_clients.push_back(c);
    } else {
        ::operator delete(c);
    }
}

void closeClient(ClientConn* c) {
    if (c->dead) {
        return;
    }
    if (c->ws != nullptr) {
        wsRelease(c);
    }
    if (c->st != nullptr) {
        c->st->rq.abort();  // a suspended handler cancels its work
    }
    if (c->mx_open) {
        countRequest(c);  // a request that ends here without its response completed
    }
    releaseUpstream(c, false);
    if (c->cache_active) {
        ctx().io.cancel(&c->tx);  // it may point into cbuf
        cacheRelease(c);
    }
    ctx().io.cancel(&c->rx);
    ctx().io.cancel(&c->tx);
    stopRead(c);
    stopWrite(c);
    c->timer.stop(L());
    delete c->big;
    c->big = nullptr;
    if (c->ssl != nullptr) {
        if (!c->tls_handshake) {
            SSL_shutdown(c->ssl);  // close_notify, best effort (never waits)
        }
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = nullptr;
    }
    if (c->fd >= 0) {
        ::close(c->fd);
        c->fd = -1;
    }
    ctx().io_pool.release(c->in);
    ctx().io_pool.release(c->out);
    if (c->node.linked()) {
        c->node.unlink();
    }
    --ctx().conn_count;
    c->state = ClientConn::State::Lingering;
    if (c->in_process) {
        c->dead = true;  // processInput() recycles it when it unwinds
    } else {
        recycleClient(c);
    }
    onConnectionClosed();
}

/// Closes in stages (RFC 9112 §9.6) a connection on which the client may still be sending:
/// everything is sent; half-close; read and discard what arrives for at most
/// server.lingering_time in all and lingering_timeout between reads; then close. Closing with
/// unread bytes would make the kernel send a reset, which destroys the end of the response in
/// the client's receive queue (nginx's lingering close).
void lingerClose(ClientConn* c) {
    ctx().io.cancel(&c->rx);  // from now on reads only drain the socket
    if (c->ssl != nullptr) {
        SSL_shutdown(c->ssl);  // close_notify before the half-close; what follows is discarded
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = nullptr;
    }
    ::shutdown(c->fd, SHUT_WR);
    c->state = ClientConn::State::Lingering;
    stopWrite(c);
    startRead(c);
    const WorkerLimits& lim = ctx().limits;
    c->linger_deadline = now() + lim.lingering_time;
    clientTimer(c, std::min(lim.lingering_timeout, lim.lingering_time));
}

/// Answers the client's "Expect: 100-continue" (the upstream said 100, or stayed silent).
void sendContinue(ClientConn* c) {
    c->awaiting_continue = false;
    static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n = connSend(c->fd, c->ssl, k100, sizeof k100 - 1);
    (void)n;  // best effort: a client that misses it sends the body after its own delay
}

void resetRequestState(ClientConn* c) {
    if (c->cache_active) {
        cacheRelease(c);
    }
    c->st->rq.reset();
    c->st->meta.reset();
    c->scan_hint = 0;
    c->req_body_left = 0;
    c->req_chunked = false;
    c->req_framed_all = true;
    c->req_body_done = true;
    c->req_ready = 0;
    c->req_decoder.reset();
    c->send_continue = false;
    c->awaiting_continue = false;
    c->req_body_abandoned = false;
    c->force_fresh = false;
    c->backoff_pending = false;
    c->retryable = true;
    c->attempts = 0;
    c->tried_count = 0;
    c->hash_key_len = 0;
    c->resp_scan_hint = 0;
    c->resp_head_done = false;
    c->resp_started = false;
    c->resp_framing = BodyFraming::None;
    c->resp_body_left = 0;
    c->resp_ready = 0;
    c->resp_framed_all = false;
    c->resp_decoder.reset();
    c->resp_dechunk = false;
    c->req_was_head = false;
    c->keep_alive = true;
    c->ws_rewrite = false;
    c->ws_protocols = {};
}

// ----- output helpers -----

/// Sends c->out; returns false if the connection failed (already closed), true otherwise.
/// Leaves unsent bytes in c->out and arms the write watcher.
bool flushOut(ClientConn* c) {
    while (true) {
        bool head = !c->out.empty();
        if (!head && c->big == nullptr) {
            break;
        }
        if (!head && c->big_off >= c->big->size()) {
            delete c->big;  // a metrics-listener body, all sent
            c->big = nullptr;
            break;
        }
        ssize_t n = head ? connSend(c->fd, c->ssl, c->out.readPtr(), c->out.size())
                         : connSend(c->fd, c->ssl, c->big->data() + c->big_off,
                                    c->big->size() - c->big_off);
        if (n < 0) {
            errno = static_cast<int>(-n);
        }
        if (n > 0) {
            c->st->meta.bytes_out += static_cast<uint64_t>(n);
            if (head) {
                c->out.consume(static_cast<size_t>(n));
            } else {
                c->big_off += static_cast<size_t>(n);
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            startWrite(c);
            clientTimer(c, ctx().limits.send_timeout);
            return true;
        }
        closeClient(c);
        return false;
    }
    stopWrite(c);
    return true;
}

void appendStr(Buffer& b, std::string_view s) { b.append(s.data(), s.size()); }
template <size_t N>
void appendStr(Buffer& b, const char (&lit)[N]) {
    b.appendLit(lit);
}

void appendHeader(Buffer& b, std::string_view name, std::string_view value) {
    size_t n = name.size() + value.size() + 4;
    if (n > b.space()) {
        b.overflowed = true;  // the callers refuse a head that did not fit
        return;
    }
    char* w = b.writePtr();
    copyShort(w, name.data(), name.size());
    w += name.size();
    std::memcpy(w, ": ", 2);
    w += 2;
    copyShort(w, value.data(), value.size());
    w += value.size();
    std::memcpy(w, "\r\n", 2);
    b.produce(n);
}

/// Copies the field lines it is given into `b`, each run of lines that were adjacent on the
/// wire with one copy (the lines are validated by the parser, so they go out as received).
/// Fields that did not come from the wire (line_len 0) are written out as "name: value".
class LineRuns {
public:
    explicit LineRuns(Buffer& b) : b_(b) {}
    void add(const core::http::HeaderField& h) {
        const char* s = h.name.data();
        if (h.line_len == 0) {
            flush();
            appendHeader(b_, h.name, h.value);
            return;
        }
        if (s != end_) {
            flush();
            start_ = s;
        }
        end_ = s + h.line_len;
    }
    void flush() {
        if (start_ != end_) {
            b_.append(start_, static_cast<size_t>(end_ - start_));
        }
        start_ = end_ = nullptr;
    }

private:
    Buffer& b_;
    const char* start_ = nullptr;
    const char* end_ = nullptr;
};

void appendUint(Buffer& b, uint64_t v) {
    char tmp[20];
    char* e = tmp + sizeof tmp;
    char* p = e;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    b.append(p, static_cast<size_t>(e - p));
}

void sendLocal(ClientConn* c, int status, std::string_view error, std::string_view extra_headers,
               bool close) {
    ctx().io.cancel(&c->tx);
    if (c->st->meta.id_len == 0) {
        c->st->meta.id_len = static_cast<uint8_t>(ctx().ids.next(c->st->meta.id));
    }
    if (c->head_pending != 0) {
        c->in.consume(c->head_pending);
        c->head_pending = 0;
    }
    c->local_close = close;
    c->local_extra = extra_headers.empty() ? extra_headers : c->st->rq.copy(extra_headers);
    c->st->rq.fail(status, error);
    c->st->resp.headers.count = 0;  // the reply's own fields, for HeaderFilter
    runHeaderFilter(c->st->rq);     // ends in writeLocal()
}

/// Writes the gateway reply set on c->st->rq (after HeaderFilter ran).
void writeLocal(ClientConn* c) {
    if (c->cache_bg) {
        closeClient(c);  // a background refresh has nobody to answer
        return;
    }
    ctx().io.cancel(&c->tx);
    ctx().io_pool.acquire(c->out);
    c->out.clear();
    if (c->head_pending != 0) {
        c->in.consume(c->head_pending);  // a module answered before the request was forwarded
        c->head_pending = 0;
    }
    bool close = c->local_close;
    c->local_close = false;
    if (!c->req_body_done || c->client_eof) {
        close = true;  // an unread body would be taken for the next request
    }
    c->keep_alive = c->keep_alive && !close;
    int status = c->st->rq.replyStatus();
    c->st->meta.status = status;
    std::string_view id(c->st->meta.id, c->st->meta.id_len);
    const core::http::HeaderList* fields =
        c->st->resp.headers.count != 0 ? &c->st->resp.headers : nullptr;
    buildLocalReply(c->out, status, c->st->rq.replyError(), id, c->local_extra, c->keep_alive,
                    c->req_was_head, fields, c->st->rq.replyHasBody());
    if (c->out.overflowed) {
        // What the filters added does not fit: the reply goes out without it.
        c->out.clear();
        buildLocalReply(c->out, status, c->st->rq.replyError(), id, c->local_extra, c->keep_alive,
                        c->req_was_head, nullptr, c->st->rq.replyHasBody());
    }
    c->local_extra = {};
    c->state = ClientConn::State::WritingLocal;
    if (!flushOut(c)) {
        return;
    }
    if (c->out.empty()) {
        finishRequest(c);
    }
}

// ----- request dispatch -----

bool methodIdempotent(core::http::Method m) {
    using core::http::Method;
    switch (m) {
        case Method::Get:
        case Method::Head:
        case Method::Put:
        case Method::Delete:
        case Method::Options:
        case Method::Trace:
            return true;
        default:
            return false;
    }
}

/// Writes the request head for the upstream into `b`: hop-by-hop fields dropped, the
/// X-Forwarded-* set and the request id added, framing re-stated.
/// W3C Trace Context: carries on the client's trace when its traceparent is valid (exactly one
/// field, §3.2), else starts one (random ids, the configured sampled flag); the upstream gets
/// the gateway's own span id (buildUpstreamHead). One pass over the fields.
void startTrace(ClientConn* c) {
    const core::http::HeaderField* tp = nullptr;
    int seen = 0;
    for (const auto& h : c->st->req.headers) {
        if (h.name.size() == 11 && (h.name[0] | 0x20) == 't' &&
            core::http::equalsIgnoreCase(h.name, "traceparent")) {
            tp = &h;
            ++seen;
        }
    }
    mod::tracing::TraceParent t;
    c->trace_in = seen == 1 && mod::tracing::parse(tp->value, t);
    if (c->trace_in) {
        std::memcpy(c->st->meta.trace_id, t.trace_id, 16);
        c->trace_flags = t.flags;
    } else {
        uint64_t a = traceRng().next(), b = traceRng().next();
        if ((a | b) == 0) {
            a = 1;  // all zeros is not a trace id
        }
        std::memcpy(c->st->meta.trace_id, &a, 8);
        std::memcpy(c->st->meta.trace_id + 8, &b, 8);
        c->trace_flags = ctx().limits.trace_sampled ? 1 : 0;
    }
    c->st->meta.traced = true;
}

/// Copies Referer and User-Agent for the combined access log (the head's views do not last
/// until the Log phase); longer values are cut.
void keepAgents(ClientConn* c) {
    auto keep = [](const core::http::HeaderField* h, char* to, size_t cap, uint8_t& len) {
        size_t n = h != nullptr ? std::min(h->value.size(), cap) : 0;
        if (n != 0) {
            std::memcpy(to, h->value.data(), n);
        }
        len = static_cast<uint8_t>(n);
    };
    keep(c->st->req.headers.find("referer"), c->st->meta.referer, sizeof c->st->meta.referer,
         c->st->meta.referer_len);
    keep(c->st->req.headers.find("user-agent"), c->st->meta.agent, sizeof c->st->meta.agent,
         c->st->meta.agent_len);
}

void buildUpstreamHead(ClientConn* c, Buffer& b, std::string_view path) {
    using core::http::equalsIgnoreCase;
    const auto& r = c->st->req;
    appendStr(b, r.method);
    appendStr(b, " ");
    appendStr(b, path);
    if (c->st->rq.query_override_set) {
        if (!c->st->rq.query_override.empty()) {
            appendStr(b, "?");
            appendStr(b, c->st->rq.query_override);
        }
    } else if (r.has_query) {
        appendStr(b, "?");
        appendStr(b, r.query);
    }
    bool v10 = r.version == core::http::Version::Http10;
    appendStr(b, v10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    std::string_view host = c->st->rq.host_override.empty() ? r.host : c->st->rq.host_override;
    if (host.empty()) {
        const Proxy& p = *ctx().proxy;
        const auto& be = p.backends[p.routes[static_cast<size_t>(c->st->meta.route)].backend];
        host = p.upstreams[be.upstreams.front()].address;
    }
    appendHeader(b, "Host", host);
    const core::http::HeaderField* first_xff = nullptr;
    const HeadEdits* edits = c->st->rq.upstream_edits;  // request header transforms
    LineRuns lines(b);
    for (const auto& h : r.headers) {
        if (h.hop_by_hop || (edits != nullptr && edits->drops(h.name))) {
            continue;
        }
        // Dispatch on the first letter so the common fields cost one compare.
        char f = static_cast<char>(h.name[0] | 0x20);
        if (f == 'h' && equalsIgnoreCase(h.name, "host")) {
            continue;
        }
        if (f == 'c' && equalsIgnoreCase(h.name, "content-length")) {
            continue;
        }
        if (f == 'e' && equalsIgnoreCase(h.name, "expect")) {
            continue;
        }
        if (f == 's' && c->ws_rewrite && equalsIgnoreCase(h.name, "sec-websocket-protocol")) {
            continue;  // replaced by the subprotocols the route allows, below
        }
        if (f == 't' && c->st->meta.traced &&
            (equalsIgnoreCase(h.name, "traceparent") ||
             (!c->trace_in && equalsIgnoreCase(h.name, "tracestate")))) {
            continue;  // ours below; a tracestate goes on only with the trace it belongs to
        }
        if (f == 'x' && (equalsIgnoreCase(h.name, "x-request-id") ||
                         equalsIgnoreCase(h.name, "x-forwarded-proto") ||
                         equalsIgnoreCase(h.name, "x-forwarded-host"))) {
            continue;  // ours replace the client's
        }
        if (f == 'x' && equalsIgnoreCase(h.name, "x-forwarded-for")) {
            if (first_xff == nullptr) {
                first_xff = &h;
            }
            continue;
        }
        lines.add(h);
    }
    lines.flush();
    bool set_proto = false, set_host = false;  // a transform's replaces ours
    for (const HeadEdits* e = edits; e != nullptr; e = e->next) {
        for (uint16_t i = 0; i < e->add_count; ++i) {
            const HeadEdits::Field& a = e->add[i];
            size_t n = a.text.size() + (a.whole ? 0 : a.value.size() + 2);
            if (n > b.space()) {
                b.overflowed = true;  // refused with 431 below
                break;
            }
            char* w = b.writePtr();
            copyShort(w, a.text.data(), a.text.size());
            if (!a.whole) {
                w += a.text.size();
                copyShort(w, a.value.data(), a.value.size());
                std::memcpy(w + a.value.size(), "\r\n", 2);
            }
            b.produce(n);
        }
        set_proto = set_proto || e->sets_forwarded_proto;
        set_host = set_host || e->sets_forwarded_host;
    }
    // X-Forwarded-For: the incoming chain (all fields, in order), then the peer.
    appendStr(b, "X-Forwarded-For: ");
    if (first_xff != nullptr) {
        for (const auto* h = first_xff; h != r.headers.end(); ++h) {
            if (!h->hop_by_hop && equalsIgnoreCase(h->name, "x-forwarded-for")) {
                appendStr(b, h->value);
                appendStr(b, ", ");
            }
        }
    }
    b.append(c->peer_ip, c->peer_ip_len);
    appendStr(b, "\r\n");
    if (!set_proto) {
        if (c->ssl != nullptr) {
            appendStr(b, "X-Forwarded-Proto: https\r\n");
        } else {
            appendStr(b, "X-Forwarded-Proto: http\r\n");
        }
    }
    if (!r.host.empty() && !set_host) {
        appendHeader(b, "X-Forwarded-Host", r.host);
    }
    appendHeader(b, "X-Request-ID", std::string_view(c->st->meta.id, c->st->meta.id_len));
    if (c->st->meta.traced && b.space() >= 13 + mod::tracing::kTraceParentLen + 2) {
        uint64_t span = traceRng().next();
        if (span == 0) {
            span = 1;  // all zeros is not a span id
        }
        uint8_t sb[8];
        std::memcpy(sb, &span, 8);
        char* w = b.writePtr();
        std::memcpy(w, "traceparent: ", 13);
        mod::tracing::format(c->st->meta.trace_id, sb, c->trace_flags, w + 13);
        std::memcpy(w + 13 + mod::tracing::kTraceParentLen, "\r\n", 2);
        b.produce(13 + mod::tracing::kTraceParentLen + 2);
    }
    if (r.framing == BodyFraming::ContentLength) {
        appendStr(b, "Content-Length: ");
        appendUint(b, r.content_length);
        appendStr(b, "\r\n");
    } else if (r.framing == BodyFraming::Chunked) {
        appendStr(b, "Transfer-Encoding: chunked\r\n");
    } else if (r.headers.find("content-length") != nullptr) {
        appendStr(b, "Content-Length: 0\r\n");  // an explicitly empty body stays explicit
    }
    if (v10) {
        appendStr(b, "Connection: keep-alive\r\n");
    }
    if (c->send_continue) {
        appendStr(b, "Expect: 100-continue\r\n");
    }
    if (c->st->rq.websocket) {
        // Upgrade and Connection are hop-by-hop: the client's are never forwarded, ours ask the
        // upstream for the same upgrade.
        appendStr(b, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
        if (c->ws_rewrite && !c->ws_protocols.empty()) {
            appendHeader(b, "Sec-WebSocket-Protocol", c->ws_protocols);
        }
    }
    appendStr(b, "\r\n");
}

/// Frames more request-body bytes from `in` (counts them against Content-Length or validates
/// them with the chunked decoder). Returns false after answering an invalid or oversized body.
bool frameRequestBody(ClientConn* c) {
    if (c->req_framed_all || c->req_ready >= c->in.size()) {
        return true;
    }
    const WorkerLimits& lim = ctx().limits;
    const char* p = c->in.readPtr() + c->req_ready;
    size_t avail = c->in.size() - c->req_ready;
    if (!c->req_chunked) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(avail, c->req_body_left));
        c->req_body_left -= k;
        c->req_ready += k;
        c->req_framed_all = c->req_body_left == 0;
        return true;
    }
    auto fr = c->req_decoder.feed(p, avail);
    c->req_ready += fr.consumed;
    if (fr.status == core::http::ChunkedDecoder::Status::Error) {
        c->keep_alive = false;
        failRequestPublic(c, c->req_decoder.error().status, "invalid chunked request body");
        return false;
    }
    if (lim.max_body_size && c->req_decoder.payloadBytes() > lim.max_body_size) {
        c->keep_alive = false;
        failRequestPublic(c, 413, "request body too large");
        return false;
    }
    c->req_framed_all = fr.status == core::http::ChunkedDecoder::Status::Done;
    return true;
}

/// A CORS preflight for a path whose routes do not allow OPTIONS goes to the route that would
/// serve the requested method, when that route answers preflights (it lists `cors`).
mod::routing::Match matchPreflight(ClientConn* c, const Proxy& p, std::string_view path,
                                   const mod::routing::Match& m) {
    const auto* origin = c->st->req.headers.find("origin");
    const auto* acrm = c->st->req.headers.find("access-control-request-method");
    if (origin == nullptr || acrm == nullptr) {
        return m;
    }
    mod::routing::Match pm = p.router->match(acrm->value, c->st->req.host, path);
    if (pm.status == mod::routing::MatchStatus::Found &&
        p.routes[pm.route].chain.answers_preflight) {
        return pm;
    }
    return m;
}

void countUpgrade(WsUpgradeResult r) {
    // A counter read by the exporter: no ordering with anything else.
    sharedWsCounters().upgrades[static_cast<size_t>(r)].fetchAdd(1, std::memory_order_relaxed);
}

/// A WebSocket upgrade on a route that allows them (RFC 6455 §4.2.1): refused here (400, 426)
/// or accepted for the rest of the pipeline. False when refused.
bool checkUpgrade(ClientConn* c, const RouteRt& route) {
    namespace ws = mod::websocket;
    char list[1024];
    size_t len = 0;
    bool rewrite = false;
    ws::Check k =
        ws::checkRequest(c->st->req, route.ws_any_protocol ? nullptr : &route.ws_protocols, list,
                         sizeof list, len, rewrite);
    if (k != ws::Check::Ok) {
        countUpgrade(WsUpgradeResult::Refused);
        c->in.consume(c->head_pending);
        c->head_pending = 0;
        bool version = k == ws::Check::BadVersion;
        sendLocal(c, version ? 426 : 400, ws::checkMessage(k),
                  version ? std::string_view("Sec-WebSocket-Version: 13\r\n") : std::string_view(),
                  true);
        return false;
    }
    const auto* key = c->st->req.headers.find("sec-websocket-key");
    std::memcpy(c->ws_key, key->value.data(), sizeof c->ws_key);  // checked: 24 characters
    c->ws_rewrite = rewrite;
    c->ws_protocols = len != 0 ? c->st->rq.copy(std::string_view(list, len)) : std::string_view();
    if (len != 0 && c->ws_protocols.empty()) {
        countUpgrade(WsUpgradeResult::Refused);
        c->in.consume(c->head_pending);
        c->head_pending = 0;
        sendLocal(c, 431, "request header too large", {}, true);
        return false;
    }
    c->st->rq.websocket = true;
    return true;
}

void dispatch(ClientConn* c) {
    auto& r = c->st->req;
    ++c->requests;
    mod::metrics::requestStarted();  // every listener's (a scrape is in flight while it runs)
    c->mx_open = true;
    moveToList(c, ctx().busy_conns);
    c->req_was_head = r.method_id == core::http::Method::Head;
    size_t ml = std::min(r.method.size(), sizeof c->st->meta.method);
    std::memcpy(c->st->meta.method, r.method.data(), ml);
    c->st->meta.method_len = static_cast<uint8_t>(ml);
    c->keep_alive =
        r.keep_alive && c->requests < ctx().limits.keepalive_requests && !ctx().graceful;

    // Request id: a sane incoming one is kept unless configured otherwise.
    const auto* rid = ctx().limits.keep_request_id ? r.headers.find("x-request-id") : nullptr;
    if (rid && mod::requestid::isSaneIncoming(rid->value)) {
        std::memcpy(c->st->meta.id, rid->value.data(), rid->value.size());
        c->st->meta.id_len = static_cast<uint8_t>(rid->value.size());
    } else {
        c->st->meta.id_len = static_cast<uint8_t>(ctx().ids.next(c->st->meta.id));
    }
    if (ctx().limits.trace_context) {
        startTrace(c);
    }
    if (ctx().limits.log_agents) {
        keepAgents(c);
    }

    if (r.framing == BodyFraming::ContentLength) {
        c->req_body_left = r.content_length;
        c->req_framed_all = c->req_body_done = false;
    } else if (r.framing == BodyFraming::Chunked) {
        c->req_chunked = true;
        c->req_framed_all = c->req_body_done = false;
        core::http::ChunkedLimits cl;
        if (ctx().limits.max_body_size) {
            cl.max_chunk_size = ctx().limits.max_body_size;
        }
        c->req_decoder = core::http::ChunkedDecoder(cl);
    }

    // Path normalisation, in place in the read buffer (the result is never longer). The head's
    // views stay valid until the upstream head is built below; nothing reads into `in` first.
    std::string_view path("*");
    auto nr = mod::routing::NormalizeResult::Ok;
    if (r.form != core::http::TargetForm::Asterisk) {
        size_t plen = 0;
        nr = mod::routing::normalizePath(r.path, const_cast<char*>(r.path.data()), r.path.size(),
                                         plen);
        path = std::string_view(r.path.data(), plen);
    }
    size_t pl = std::min(path.size(), sizeof c->st->meta.path);
    std::memcpy(c->st->meta.path, path.data(), pl);
    c->st->meta.path_len = static_cast<uint16_t>(pl);
    c->head_pending = r.head_length;
    Request& rq = c->st->rq;  // reset when the previous request finished
    rq.path = path;
    c->st->resp.headers.count = 0;
    // The request is in the pipeline from here: processInput() stops parsing until it is done.
    c->state = ClientConn::State::Proxying;
    if (nr != mod::routing::NormalizeResult::Ok) {
        sendLocal(c, 400, "invalid request path", {}, true);
        return;
    }
    const WorkerLimits& lim = ctx().limits;
    if (r.framing == BodyFraming::ContentLength && lim.max_body_size &&
        r.content_length > lim.max_body_size) {
        sendLocal(c, 413, "request body too large", {}, true);
        return;
    }

    const Proxy& p = *ctx().proxy;
    bool metrics_listener = c->kind == static_cast<int>(master::ListenerKind::Metrics);
    mod::routing::Match m;
    if (!metrics_listener && ctx().expose_metrics_on_main &&
        (r.method_id == core::http::Method::Get || c->req_was_head) &&
        path == ctx().init->config->metrics.metrics_path) {
        c->in.consume(c->head_pending);
        c->head_pending = 0;
        serveObservability(c, path, false);  // metrics.expose_on_main: shadows any route
        return;
    }
    if (!metrics_listener) {
        m = p.router->match(r.method, r.host, path);
        if (m.status == mod::routing::MatchStatus::MethodNotAllowed &&
            r.method_id == core::http::Method::Options) {
            m = matchPreflight(c, p, path, m);
        }
    }
    if (metrics_listener || m.status != mod::routing::MatchStatus::Found) {
        c->in.consume(c->head_pending);
        c->head_pending = 0;
        bool get = r.method_id == core::http::Method::Get || c->req_was_head;
        if (metrics_listener && get && serveObservability(c, path, true)) {
            return;
        }
        if (metrics_listener && r.method == "PURGE" && path.starts_with("/cache/")) {
            cachePurge(c, path.substr(7));
            return;
        }
        if (path == "/health" && get && (metrics_listener || !p.has_health_route)) {
            std::string body;
            int status = healthBody(body);
            sendJson(c, status, body);
            return;
        }
        if (!metrics_listener && m.status == mod::routing::MatchStatus::MethodNotAllowed) {
            char allow[1024];
            std::memcpy(allow, "Allow: ", 7);
            size_t n = 7 + p.router->formatAllow(m.allow, allow + 7, sizeof allow - 9);
            allow[n++] = '\r';
            allow[n++] = '\n';
            sendLocal(c, 405, "method not allowed", std::string_view(allow, n), false);
        } else {
            sendLocal(c, 404, "no route", {}, false);
        }
        return;
    }
    c->st->meta.route = static_cast<int>(m.route);
    const RouteRt& route = p.routes[m.route];
    resolveClientAddress(c, p);
    captureHashKey(c, p.backends[route.backend], path);
    rq.route = &route;
    if (route.ws && r.upgrade && mod::websocket::hasToken(r.headers, "upgrade", "websocket") &&
        !checkUpgrade(c, route)) {
        return;
    }
    if (route.rewrites || route.chain.needs_match) {
        rq.match = m;
    }
    if (!route.chain.empty()) {
        rq.chain = &route.chain;
        rq.router = p.router.get();
        rq.clearSlots(route.chain.slots);
    }
    runAfterRoute(rq);  // the route's handlers, then proceedProxy()
}

void proceedProxy(ClientConn* c) {
    if (c->st->rq.route->cache.on && !c->cache_bg && cacheLookup(c)) {
        return;  // answered from the cache
    }
    auto& r = c->st->req;
    const Proxy& p = *ctx().proxy;
    const RouteRt& route = *c->st->rq.route;
    std::string_view path = c->st->rq.path;

    // Forwarded path: normalised, optionally rewritten.
    char rewritten[4096];
    std::string_view fwd_path = path;
    if (route.rewrites) {
        size_t n = p.router->rewritePath(c->st->rq.match, path, rewritten, sizeof rewritten);
        if (n == 0) {
            sendLocal(c, 400, "cannot rewrite the request path", {}, true);
            return;
        }
        fwd_path = std::string_view(rewritten, n);
    }

    // The upstream request head goes into c->out and stays there until a response starts, so
    // a failed attempt can be repeated on another upstream.
    ctx().io_pool.acquire(c->out);
    c->out.clear();
    // "Expect: 100-continue" with no body byte here yet goes to the upstream, whose answer
    // decides whether the client sends its body.
    c->send_continue =
        r.expect_continue && r.framing != BodyFraming::None && c->in.size() == c->head_pending;
    buildUpstreamHead(c, c->out, fwd_path);
    c->in.consume(c->head_pending);
    c->head_pending = 0;
    if (c->out.overflowed) {
        // What we add (Host, X-Forwarded-*, the request id) did not fit next to the client's
        // fields: refuse rather than send a truncated head.
        c->out.clear();
        sendLocal(c, 431, "request header too large", {}, true);
        return;
    }
    // A whole Content-Length body that is already here and fits travels with the head: one
    // write, and the request stays retryable.
    if (!c->req_chunked && !c->req_framed_all && c->in.size() >= c->req_body_left &&
        c->req_body_left <= c->out.space()) {
        c->out.append(c->in.readPtr(), c->req_body_left);
        c->in.consume(c->req_body_left);
        c->st->meta.bytes_in += c->req_body_left;
        c->req_body_left = 0;
        c->req_framed_all = c->req_body_done = true;
    }
    if (c->req_body_done) {
        c->send_continue = false;
    }
    c->state = ClientConn::State::Proxying;
    c->st->meta.upstream_start = now();
    // Validate the chunked body bytes already here before any upstream work: an oversized or
    // malformed body is refused at once.
    if (c->req_chunked && !frameRequestBody(c)) {
        return;
    }
    clientTimer(c, 0);
    attemptUpstream(c);
}

// ----- proxying -----

void failRequest(ClientConn* c, int status, std::string_view why) {
    // A send that is part of the running batch may already have put response bytes on the wire.
    if (c->resp_started || c->tx.running >= 0) {
        closeClient(c);  // the response is half sent: the only honest signal is a close
        return;
    }
    releaseUpstream(c, false);
    c->st->meta.upstream_time = now() - c->st->meta.upstream_start;
    if (c->cache_bg) {
        closeClient(c);  // a background refresh failed: the stale entry stays
        return;
    }
    if (c->cache_sie && status >= 500 && cacheServeStaleOnError(c)) {
        return;  // stale-if-error: the stored response answers instead
    }
    std::string_view extra =
        status == 503 ? std::string_view("Retry-After: 1\r\n") : std::string_view();
    sendLocal(c, status, why, extra, false);
}

using UpFail = UpstreamFailure;

void markTried(ClientConn* c, size_t upstream) {
    if (c->tried_count < std::size(c->tried)) {
        c->tried[c->tried_count++] = static_cast<uint32_t>(upstream);
    }
}

/// An attempt failed before the response started: retry on another upstream when allowed.
void upstreamFailed(ClientConn* c, UpFail kind) {
    UpstreamConn* u = c->up;
    const Proxy& p = *ctx().proxy;
    size_t ui = static_cast<size_t>(u->up - p.upstreams.data());
    bool stale = u->reused && kind == UpFail::Reset && u->rbuf.empty();
    c->st->meta.upstream_addr = u->up->address.c_str();
    if (!stale) {
        sharedReport(p, ui, false);
        mod::metrics::upstreamError(
            u->up->mx_row, kind == UpFail::Connect   ? mod::metrics::UpstreamError::Connect
                           : kind == UpFail::Timeout ? mod::metrics::UpstreamError::Timeout
                           : kind == UpFail::Reset   ? mod::metrics::UpstreamError::Reset
                                                     : mod::metrics::UpstreamError::BadResponse);
        LOG_WARN("upstream %s %s (request %.*s)", u->up->address.c_str(),
                 kind == UpFail::Connect   ? "connect failed"
                 : kind == UpFail::Timeout ? "timed out"
                 : kind == UpFail::Reset   ? "closed the connection"
                                           : "sent an invalid response",
                 static_cast<int>(c->st->meta.id_len), c->st->meta.id);
    }
    bool head_seen = c->resp_head_done;
    releaseUpstream(c, false);
    if (c->resp_started || head_seen) {
        closeClient(c);
        return;
    }
    const RouteRt& route = p.routes[static_cast<size_t>(c->st->meta.route)];
    RetryInput in;
    in.idempotent = methodIdempotent(c->st->req.method_id);
    in.kind = kind;
    in.stale = stale;
    in.request_sent = c->req_sent;
    in.retained = c->retryable;  // no body byte left without a copy we can resend
    in.attempts = c->attempts;
    in.retries = route.retries;
    in.retry_non_idempotent = route.retry_non_idempotent;
    in.retry_on = route.retry_on;
    bool may_retry = mayRetry(in);
    if (may_retry && !stale && !sharedRetryAllowed(route.backend)) {
        // The backend's retry budget is spent: retries must not multiply the load of an outage.
        may_retry = false;
        mod::metrics::routeEvent(route.mx_row, mod::metrics::RouteEvent::RetryDenied);
    }
    if (may_retry && !stale) {
        markTried(c, ui);
    }
    c->force_fresh = may_retry && stale;  // the retry never takes another pooled connection
    if (!may_retry && in.request_sent && !in.idempotent && c->retryable &&
        (kind == UpFail::Reset || stale)) {
        LOG_WARN(
            "upstream %s closed the connection after receiving %.*s %.*s (request %.*s); "
            "not sent again: the method is not idempotent",
            c->st->meta.upstream_addr, static_cast<int>(c->st->meta.method_len), c->st->meta.method,
            static_cast<int>(c->st->meta.path_len), c->st->meta.path,
            static_cast<int>(c->st->meta.id_len), c->st->meta.id);
    }
    if (may_retry) {
        retryAfterBackoff(c, !stale);  // a stale pooled connection is retried at once
        return;
    }
    if (kind == UpFail::Timeout) {
        failRequest(c, 504, "upstream timed out");
    } else {
        failRequest(c, 502,
                    kind == UpFail::BadResponse ? "invalid response from upstream"
                                                : "upstream connection failed");
    }
}

/// The next attempt, after the route's back-off when `backoff` (the n-th retry waits a random
/// time up to retry_backoff × 2^(n-1), at most retry_backoff_max: full jitter, so retries of
/// many clients do not arrive together).
void retryAfterBackoff(ClientConn* c, bool backoff) {
    const RouteRt& route = ctx().proxy->routes[static_cast<size_t>(c->st->meta.route)];
    double cap = 0;
    if (backoff && route.backoff > 0) {
        const uint32_t n = c->attempts == 0 ? 0 : c->attempts - 1;  // retries made so far
        cap = std::min(route.backoff_max,
                       route.backoff * static_cast<double>(1u << std::min(n, 16u)));
    }
    if (cap <= 0) {
        attemptUpstream(c);
        return;
    }
    const double wait = cap * static_cast<double>(traceRng().next() >> 11) * 0x1.0p-53;
    if (wait < 0.0005) {
        attemptUpstream(c);
        return;
    }
    c->backoff_pending = true;
    clientTimer(c, wait);
}

/// A 502, 503 or 504 answer the route retries (retry_on): nothing of it reaches the client,
/// the connection is closed and the next attempt made. False when the answer goes on.
bool retryOnStatus(ClientConn* c) {
    const int status = c->st->resp.status;
    if (status < 502 || status > 504 || c->st->rq.websocket) {
        return false;
    }
    const Proxy& p = *ctx().proxy;
    const RouteRt& route = p.routes[static_cast<size_t>(c->st->meta.route)];
    if ((route.retry_on & core::retry_on::kStatuses) == 0) {
        return false;
    }
    UpstreamConn* u = c->up;
    RetryInput in;
    in.idempotent = methodIdempotent(c->st->req.method_id);
    in.kind = UpFail::Status;
    in.status = static_cast<uint16_t>(status);
    in.request_sent = true;
    in.retained = c->retryable && c->req_body_done;
    in.attempts = c->attempts;
    in.retries = route.retries;
    in.retry_non_idempotent = route.retry_non_idempotent;
    in.retry_on = route.retry_on;
    if (!mayRetry(in) || !sharedRetryAllowed(route.backend)) {
        return false;
    }
    const size_t ui = static_cast<size_t>(u->up - p.upstreams.data());
    mod::metrics::upstreamError(u->up->mx_row, mod::metrics::UpstreamError::Status5xx);
    if (p.backends[u->up->backend_index].count_5xx) {
        sharedReport(p, ui, false);
    }
    LOG_INFO("upstream %s answered %d (request %.*s); retrying", u->up->address.c_str(), status,
             static_cast<int>(c->st->meta.id_len), c->st->meta.id);
    c->st->meta.upstream_addr = u->up->address.c_str();
    releaseUpstream(c, false);  // its body is not read: the connection goes
    markTried(c, ui);
    c->resp_scan_hint = 0;
    retryAfterBackoff(c, true);
    return true;
}

void attemptUpstream(ClientConn* c) {
    Proxy& p = *ctx().proxy;
    const RouteRt& route = p.routes[static_cast<size_t>(c->st->meta.route)];
    ++c->attempts;
    // Circuit breaking: a backend at its limit answers at once, never queues.
    if (const char* limit = sharedOverLimit(route.backend)) {
        mod::metrics::routeEvent(route.mx_row, mod::metrics::RouteEvent::Overflow);
        uint64_t now_us = static_cast<uint64_t>(now() * 1e6);
        if (now_us - g_last_overflow_log_us >= 1000000) {  // at most one line a second
            g_last_overflow_log_us = now_us;
            LOG_WARN("backend %s is at its %s: answering 503 (request %.*s)",
                     p.backends[route.backend].name.c_str(), limit,
                     static_cast<int>(c->st->meta.id_len), c->st->meta.id);
        }
        failRequest(c, 503, "backend is at its request limit");
        return;
    }
    PickInput in;
    in.client_addr = c->client_bin;
    in.client_addr_len = c->client_bin_len;
    in.hash_key = c->hash_key;
    in.hash_key_len = c->hash_key_len;
    in.exclude = c->tried;
    in.exclude_count = c->tried_count;
    int ui = sharedPickAndAcquire(p, route.backend, in);
    if (ui < 0 && c->tried_count != 0) {
        in.exclude_count = 0;  // every candidate was tried once: any may take a second try
        ui = sharedPickAndAcquire(p, route.backend, in);
    }
    if (ui < 0) {
        if (c->attempts > 1) {
            failRequest(c, 502, "upstream connection failed");
        } else {
            failRequest(c, 503, "no upstream available");
        }
        return;
    }
    UpstreamRt& up = p.upstreams[static_cast<size_t>(ui)];
    mod::metrics::upstreamAttempt(up.mx_row);
    if (c->attempts > 1) {
        // Counted for the retry budget while it is in flight (releaseInflight ends it).
        c->retrying = true;
        sharedRetrying(static_cast<size_t>(ui), 1);
        mod::metrics::routeEvent(route.mx_row, mod::metrics::RouteEvent::Retry);
    }
    c->req_sent = false;
    // fresh_connection_for_unsafe: a request that must not be sent twice never takes a pooled
    // connection the server may be closing.
    UpstreamConn* u =
        c->force_fresh || (route.fresh_for_unsafe && !methodIdempotent(c->st->req.method_id))
            ? nullptr
            : takeIdle(up);
    if (u == nullptr) {
        u = connectUpstream(up);
        if (u == nullptr) {
            // A name that has not resolved yet (panic routing may pick it) is nobody's failure:
            // no passive-health report, and a 503 when nothing else was tried.
            const bool no_address = errno == EHOSTUNREACH;
            LOG_WARN("connect() to upstream %s failed: %s", up.address.c_str(),
                     no_address ? "its name has not resolved" : std::strerror(errno));
            sharedRelease(p, static_cast<size_t>(ui));
            if (c->retrying) {
                c->retrying = false;
                sharedRetrying(static_cast<size_t>(ui), -1);
            }
            if (!no_address) {
                sharedReport(p, static_cast<size_t>(ui), false);
                mod::metrics::upstreamError(up.mx_row, mod::metrics::UpstreamError::Connect);
            }
            markTried(c, static_cast<size_t>(ui));
            if (c->attempts <= route.retries) {
                attemptUpstream(c);
            } else if (no_address && c->attempts == 1) {
                failRequest(c, 503, "no upstream available");
            } else {
                failRequest(c, 502, "upstream connection failed");
            }
            return;
        }
    }
    u->owner = c;
    c->up = u;
    c->counted = true;
    if (u->connecting && !u->pending) {
        u->pending = true;  // for max_pending, until connectDone()
        sharedConnecting(static_cast<size_t>(ui), 1);
    }
    c->st->meta.upstream_addr = up.address.c_str();
    ctx().io_pool.acquire(u->wbuf);
    u->wbuf.clear();
    u->wbuf.append(c->out.readPtr(), c->out.size());
    ev_io_start(L(), &u->rio);
    if (u->connecting) {
        ev_io_start(L(), &u->wio);
        upstreamTimer(u, route.timeout > 0 ? std::min(route.timeout, up.connect_timeout)
                                           : up.connect_timeout);
        return;
    }
    sendUpstream(c);
}

/// Sends the request head (u->wbuf); upstreamTxDone() comes back here until it is all sent.
void sendUpstream(ClientConn* c) {
    UpstreamConn* u = c->up;
    if (!u->wbuf.empty()) {
        ctx().io.queue(&u->tx);
        return;
    }
    ev_io_stop(L(), &u->wio);
    if (c->send_continue) {
        // The upstream got "Expect: 100-continue": its 100 is relayed to the client, and a
        // final answer instead means the body is never sent. An upstream that stays silent
        // (HTTP/1.0, or one that ignores Expect) gets the body after a second, as curl does.
        c->send_continue = false;
        c->awaiting_continue = true;
        clientTimer(c, kContinueWait);
        upstreamTimer(u, readTimeout(c, u));
        if (!c->in.empty()) {
            pumpRequestBody(c);  // the client did not wait
        }
        return;
    }
    if (!c->req_body_done) {
        pumpRequestBody(c);
        return;
    }
    upstreamTimer(u, readTimeout(c, u));
}

/// The upstream answered before taking the whole request body: the rest is not forwarded (the
/// client's remaining bytes are discarded by the lingering close after the response).
void abandonRequestBody(ClientConn* c) {
    c->req_body_abandoned = true;
    c->awaiting_continue = false;
    c->keep_alive = false;
    stopRead(c);
    if (c->up != nullptr) {
        ev_io_stop(L(), &c->up->wio);
    }
}

void pumpRequestBody(ClientConn* c) {
    UpstreamConn* u = c->up;
    if (u->tx.busy() || c->req_body_abandoned) {
        return;  // its completion comes back here; or the body is no longer wanted
    }
    if (c->awaiting_continue) {
        if (c->req_ready == 0 && c->in.empty()) {
            return;  // the client waits for our 100 Continue (onClientTimer sends it if need be)
        }
        c->awaiting_continue = false;  // the client did not wait
        clientTimer(c, ctx().limits.header_timeout);
    }
    if (!frameRequestBody(c)) {
        return;
    }
    if (c->req_ready != 0) {
        ctx().io.queue(&u->tx);  // upstreamTxDone() comes back here
        return;
    }
    if (c->req_framed_all) {
        c->req_body_done = true;
        clientTimer(c, 0);
        upstreamTimer(u, readTimeout(c, u));
        return;
    }
    if (c->client_eof) {
        closeClient(c);  // the client stopped half-way through its body
        return;
    }
    startRead(c);
    clientTimer(c, ctx().limits.header_timeout);
    upstreamTimer(u, 0);
}

bool upstreamTxPrep(IoOp* op, IoArgs& a) {
    auto* u = static_cast<UpstreamConn*>(op->owner);
    ClientConn* c = u->owner;
    a.fd = u->fd;
    a.ssl = u->ssl;
    a.send = true;
    if (!u->wbuf.empty()) {
        u->tx_body = false;
        a.iov[0] = {u->wbuf.readPtr(), u->wbuf.size()};
        return true;
    }
    if (c != nullptr && c->req_ready != 0) {
        u->tx_body = true;
        a.iov[0] = {c->in.readPtr(), c->req_ready};
        return true;
    }
    return false;
}

void upstreamTxDone(IoOp* op, ssize_t n) {
    auto* u = static_cast<UpstreamConn*>(op->owner);
    ClientConn* c = u->owner;
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        if (u->tx_body && c->resp_head_done) {
            // It answered and takes no more of the body: stop pushing rather than let a stuck
            // write time out the response in flight.
            abandonRequestBody(c);
            return;
        }
        if (u->tx_body) {
            stopRead(c);  // back-pressure: read no more from the client until this drains
        }
        ev_io_start(L(), &u->wio);
        upstreamTimer(u, writeTimeout(c, u));
        return;
    }
    if (n <= 0) {
        if (c->resp_head_done) {
            abandonRequestBody(c);  // it answered and stopped reading: the answer still counts
            return;
        }
        upstreamFailed(c, UpFail::Reset);
        return;
    }
    c->req_sent = true;
    if (!u->tx_body) {
        u->wbuf.consume(static_cast<size_t>(n));
        sendUpstream(c);
        return;
    }
    c->retryable = false;
    c->st->meta.bytes_in += static_cast<uint64_t>(n);
    c->req_ready -= static_cast<size_t>(n);
    c->in.consume(static_cast<size_t>(n));
    pumpRequestBody(c);
}

/// Builds the client's response head from the upstream's into c->out. The upstream's X-Gateway
/// is replaced by the gateway's, unless a header filter took charge of the field
/// (`own_gateway`: a transform set or removed it; its own field did not come from the wire).
void buildClientHead(ClientConn* c, bool own_gateway) {
    using core::http::equalsIgnoreCase;
    const auto& r = c->st->resp;
    Buffer& b = c->out;
    b.clear();
    std::string_view reason = core::http::reasonPhrase(r.status);
    if (reason.empty()) {
        reason = "Unknown";
    }
    char line[13] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '0', '0', '0', ' '};
    unsigned st = r.status % 1000;  // the parser accepts exactly three digits
    line[9] = static_cast<char>('0' + st / 100);
    line[10] = static_cast<char>('0' + st / 10 % 10);
    line[11] = static_cast<char>('0' + st % 10);
    b.append(line, sizeof line);
    appendStr(b, reason);
    appendStr(b, "\r\n");
    LineRuns lines(b);
    for (const auto& h : r.headers) {
        if (h.hop_by_hop) {
            continue;
        }
        if ((h.name[0] | 0x20) == 'x' &&
            (equalsIgnoreCase(h.name, "x-request-id") ||
             (h.line_len != 0 && equalsIgnoreCase(h.name, "x-gateway")))) {
            continue;
        }
        lines.add(h);
    }
    lines.flush();
    if (r.framing == BodyFraming::Chunked && !c->resp_dechunk) {
        appendStr(b, "Transfer-Encoding: chunked\r\n");
    }
    appendHeader(b, "X-Request-ID", std::string_view(c->st->meta.id, c->st->meta.id_len));
    if (!own_gateway) {
        appendStr(b, "X-Gateway: Photon/1.0\r\n");
    }
    bool client10 = c->st->req.version == core::http::Version::Http10;
    if (!c->keep_alive) {
        appendStr(b, "Connection: close\r\n");
    } else if (client10) {
        appendStr(b, "Connection: keep-alive\r\n");
    }
    appendStr(b, "\r\n");
}

/// Takes the parsed response head: framing, passive health, the client's head built in `out`.
/// False when that head does not fit the client buffer (max_header_size + 4 KiB): a truncated
/// head must never reach the client, whose parser would take body bytes for fields.
bool onResponseHead(ClientConn* c) {
    UpstreamConn* u = c->up;
    c->resp_head_done = true;
    c->st->meta.status = c->st->resp.status;
    c->resp_framing = c->st->resp.framing;
    c->resp_body_left =
        c->st->resp.framing == BodyFraming::ContentLength ? c->st->resp.content_length : 0;
    c->resp_framed_all = c->st->resp.framing == BodyFraming::None;
    if (c->st->resp.framing == BodyFraming::UntilClose) {
        c->keep_alive = false;  // the end of the body is the end of the connection
    }
    if (c->st->rq.websocket && !c->st->resp.switching_protocols) {
        c->keep_alive = false;  // a refused upgrade: frames the client sent early are not requests
    }
    if (!c->req_body_done) {
        c->keep_alive = false;  // answered before the whole upload: the rest cannot be resynced
        if (c->awaiting_continue) {
            abandonRequestBody(c);  // a final answer to "Expect: 100-continue": no body sent
        }
    }
    if (c->st->resp.framing == BodyFraming::Chunked &&
        c->st->req.version == core::http::Version::Http10) {
        c->resp_dechunk = true;  // HTTP/1.0 has no chunked coding: the close ends the body
        c->keep_alive = false;
    }
    // Passive health: a good answer clears the upstream's failure window; a 5xx counts against
    // it like a connect error only where the backend says so (count_5xx), since an
    // application's errors on one endpoint must not take its upstreams out.
    {
        const Proxy& p = *ctx().proxy;
        const size_t ui = static_cast<size_t>(u->up - p.upstreams.data());
        if (c->st->resp.status < 500) {
            sharedReport(p, ui, true);
        } else if (p.backends[u->up->backend_index].count_5xx) {
            sharedReport(p, ui, false);
        }
    }
    if (c->st->resp.status >= 500) {
        mod::metrics::upstreamError(u->up->mx_row, mod::metrics::UpstreamError::Status5xx);
    }
    if (c->cache_active) {
        cacheOnHead(c);  // invalidation, the store decision, X-Cache
    }
    if (c->st->rq.chain != nullptr && c->st->rq.chain->has(Phase::HeaderFilter)) {
        c->st->rq.upstream = u->up->address;
        if (!filterUpstreamHead(c->st->rq)) {
            c->resp_head_done = false;  // a filter refused the head: the client gets a 502
            c->filter_refused = true;
            return false;
        }
    }
    buildClientHead(c, c->st->rq.own_gateway_field);
    if (c->out.overflowed) {
        c->out.clear();
        c->resp_head_done = false;  // nothing sent: the client gets a 502
        LOG_WARN("upstream %s sent a response head too large to forward (%zu bytes)",
                 u->up->address.c_str(), static_cast<size_t>(c->st->resp.head_length));
        return false;
    }
    u->rbuf.consume(c->st->resp.head_length);
    return true;
}

/// Moves the rest of a Content-Length body upstream socket → pipe → client socket. Called for
/// upstream readability and client writability while c->splicing.
void pumpSplice(ClientConn* c) {
    UpstreamConn* u = c->up;
    Pipe& p = c->pipe;
    constexpr uint32_t kPipeCap = 65536;  // the default pipe size: 16 pages
    // Bytes moved per call before yielding to the other connections of the loop (the copy
    // path's bounded read-ahead plays the same role).
    constexpr uint64_t kBudget = 1u << 20;
    uint64_t moved = 0;
    bool upstream_dry = false;  // the last splice-in found the socket drained
    while (true) {
        upstream_dry = upstream_dry || c->resp_body_left == 0;
        if (!upstream_dry && p.len < kPipeCap) {
            // One byte more than the body when there is room: an upstream that sends more than
            // its Content-Length shows itself here, and its connection is not pooled.
            size_t want =
                static_cast<size_t>(std::min<uint64_t>(c->resp_body_left + 1, kPipeCap - p.len));
            ssize_t n =
                ::splice(u->fd, nullptr, p.wfd, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                uint64_t body = std::min<uint64_t>(static_cast<uint64_t>(n), c->resp_body_left);
                if (body < static_cast<uint64_t>(n)) {
                    p.junk = true;  // never spliced out: the pipe is closed on release
                    c->st->resp.keep_alive = false;
                    LOG_WARN("upstream %s sent more than its Content-Length",
                             u->up->address.c_str());
                }
                c->resp_body_left -= body;
                p.len += static_cast<uint32_t>(body);
                // Short: the socket is (almost surely) drained. Epoll is level-triggered, so
                // if it was the pipe that ran out of slots instead, the wait ends at once.
                upstream_dry = static_cast<size_t>(n) < want;
            } else if (n == 0) {
                LOG_WARN("upstream %s closed the connection in the middle of a response",
                         u->up->address.c_str());
                closeClient(c);
                return;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                upstream_dry = true;  // nothing to read yet (or the pipe is out of slots)
            } else if (errno == EINTR) {
                continue;
            } else if (p.len == 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                // This kernel cannot splice these descriptors: nothing moved yet, so fall back
                // to copying, for this response and all later ones.
                LOG_WARN("splice(2) unavailable (%s); copying response bodies instead",
                         std::strerror(errno));
                ctx().pipes.disable();
                c->splicing = false;
                ctx().pipes.release(c->pipe);
                pumpResponse(c);
                return;
            } else {
                LOG_WARN("upstream %s: %s", u->up->address.c_str(), std::strerror(errno));
                closeClient(c);
                return;
            }
        }
        if (c->resp_body_left == 0) {
            releaseInflight(c);  // all read from the upstream: before the last write
        }
        if (p.len > 0) {
            ssize_t n =
                ::splice(p.rfd, nullptr, c->fd, nullptr, p.len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                waitForClient(c);  // the pipe stays full meanwhile
                return;
            }
            if (n <= 0) {
                closeClient(c);  // the client went away
                return;
            }
            p.len -= static_cast<uint32_t>(n);
            c->st->meta.bytes_out += static_cast<uint64_t>(n);
            moved += static_cast<uint64_t>(n);
            if (moved >= kBudget && (p.len > 0 || c->resp_body_left > 0)) {
                waitForClient(c);  // yield: writable at once (level-triggered), so it resumes
                return;
            }
            continue;  // more room in the pipe: read again before waiting
        }
        if (c->resp_body_left == 0) {
            c->resp_framed_all = true;
            stopWrite(c);
            clientTimer(c, 0);
            finishProxy(c);
            return;
        }
        if (upstream_dry) {
            stopWrite(c);
            clientTimer(c, 0);
            ev_io_start(L(), &u->rio);
            upstreamTimer(u, readTimeout(c, u));
            return;
        }
    }
}

/// Frames more response-body bytes of up->rbuf. Returns false when the upstream's framing is
/// invalid (the client connection was closed).
bool frameResponseBody(ClientConn* c) {
    UpstreamConn* u = c->up;
    if (c->resp_framed_all || c->resp_ready >= u->rbuf.size()) {
        return true;
    }
    const char* p = u->rbuf.readPtr() + c->resp_ready;
    size_t avail = u->rbuf.size() - c->resp_ready;
    switch (c->resp_framing) {
        case BodyFraming::ContentLength: {
            size_t k = static_cast<size_t>(std::min<uint64_t>(avail, c->resp_body_left));
            if (c->cache_storing) {
                cacheTee(c, p, k);
            }
            c->resp_body_left -= k;
            c->resp_ready += k;
            c->resp_framed_all = c->resp_body_left == 0;
            return true;
        }
        case BodyFraming::Chunked: {
            if (c->resp_dechunk) {
                // HTTP/1.0 client: decode in place, moving each payload run down to the write
                // cursor (payload never lies before it), then close the gap.
                struct Cursor {
                    char* base;
                    size_t len;
                } cur{const_cast<char*>(p), 0};
                auto fr = c->resp_decoder.feed(
                    p, avail,
                    [](void* x, const char* d, size_t n) {
                        auto* k = static_cast<Cursor*>(x);
                        std::memmove(k->base + k->len, d, n);
                        k->len += n;
                    },
                    &cur);
                if (fr.status == core::http::ChunkedDecoder::Status::Error) {
                    closeClient(c);
                    return false;
                }
                if (c->cache_storing) {
                    cacheTee(c, cur.base, cur.len);
                }
                std::memmove(cur.base + cur.len, p + fr.consumed, avail - fr.consumed);
                u->rbuf.wpos -= static_cast<uint32_t>(fr.consumed - cur.len);
                c->resp_ready += cur.len;
                c->resp_framed_all = fr.status == core::http::ChunkedDecoder::Status::Done;
                return true;
            }
            auto fr = c->cache_storing ? c->resp_decoder.feed(
                                             p, avail,
                                             [](void* x, const char* d, size_t n) {
                                                 cacheTee(static_cast<ClientConn*>(x), d, n);
                                             },
                                             c)
                                       : c->resp_decoder.feed(p, avail);
            c->resp_ready += fr.consumed;
            if (fr.status == core::http::ChunkedDecoder::Status::Error) {
                LOG_WARN("upstream %s sent an invalid chunked body", u->up->address.c_str());
                closeClient(c);
                return false;
            }
            c->resp_framed_all = fr.status == core::http::ChunkedDecoder::Status::Done;
            return true;
        }
        case BodyFraming::UntilClose:
            c->resp_ready += avail;
            return true;
        case BodyFraming::None:
            c->resp_framed_all = true;
            return true;
    }
    return true;
}

void finishProxy(ClientConn* c) {
    UpstreamConn* u = c->up;
    if (c->cache_storing && c->resp_framed_all) {
        cacheCommit(c);
    }
    bool reusable = c->st->resp.keep_alive && c->req_body_done && u->rbuf.empty() &&
                    u->wbuf.empty() && c->resp_framing != BodyFraming::UntilClose;
    c->st->meta.upstream_time = now() - c->st->meta.upstream_start;
    releaseUpstream(c, reusable);
    finishRequest(c);
}

/// Sends what is framed of the response (head in `out`, body bytes in up->rbuf); the send's
/// completion, clientTxDone(), comes back here until the response is done or the client is
/// full. A send and a recv of the same response are never in flight together.
void pumpResponse(ClientConn* c) {
    if (c->splicing) {
        pumpSplice(c);
        return;
    }
    UpstreamConn* u = c->up;
    if (c->tx.busy() || u->rx.busy()) {
        return;  // its completion comes back here
    }
    if (!frameResponseBody(c)) {
        return;
    }
    if (c->resp_framed_all) {
        // The upstream's part is over: free its in-flight count before the last write, so a
        // client's next request never finds the upstream "full" because of this one.
        releaseInflight(c);
    }
    if (c->cache_bg) {
        // A background refresh: what was framed is stored (cacheTee) and sent to nobody; once
        // nothing more is being stored, the rest is not worth reading.
        c->out.clear();
        u->rbuf.consume(c->resp_ready);
        c->resp_ready = 0;
        if (!c->cache_storing && !c->resp_framed_all) {
            closeClient(c);
            return;
        }
    }
    // A small body joins the head in `out`: one contiguous send instead of a sendmsg.
    if (!c->out.empty() && c->resp_ready != 0 && c->resp_ready <= kJoinBody &&
        c->resp_ready <= c->out.space()) {
        c->out.append(u->rbuf.readPtr(), c->resp_ready);
        u->rbuf.consume(c->resp_ready);
        c->resp_ready = 0;
    }
    if (!c->out.empty() || c->resp_ready != 0) {
        ctx().io.queue(&c->tx);
        return;
    }
    stopWrite(c);
    clientTimer(c, 0);
    if (c->resp_framed_all) {
        finishProxy(c);
        return;
    }
    // Everything read so far is sent; a large remainder of a Content-Length body goes through
    // a pipe from here on.
    if (c->resp_framing == BodyFraming::ContentLength && c->resp_body_left >= kSpliceMin &&
        u->rbuf.empty() && c->ssl == nullptr && u->ssl == nullptr && !c->cache_storing &&
        !c->cache_bg && ctx().pipes.enabled() && ctx().pipes.acquire(c->pipe)) {
        c->splicing = true;
        ctx().body_pool.release(u->rbuf);
        pumpSplice(c);
        return;
    }
    ev_io_start(L(), &u->rio);
    // The last read filled the buffer, so more is almost surely waiting: read it now instead of
    // after another trip through epoll (bounded, so a fast upstream cannot starve the loop).
    if (u->read_full && u->readahead < 4) {
        ++u->readahead;
        onUpstreamRead(L(), &u->rio, EV_READ);
        return;
    }
    u->readahead = 0;
    feedTlsPending(u);
    upstreamTimer(u, readTimeout(c, u));
}

bool clientTxPrep(IoOp* op, IoArgs& a) {
    auto* c = static_cast<ClientConn*>(op->owner);
    a.fd = c->fd;
    a.ssl = c->ssl;
    a.send = true;
    a.iovcnt = 0;
    if (!c->out.empty()) {
        a.iov[a.iovcnt++] = {c->out.readPtr(), c->out.size()};
    }
    if (c->resp_ready != 0 && c->up != nullptr) {
        a.iov[a.iovcnt++] = {c->up->rbuf.readPtr(), c->resp_ready};
    } else if (c->resp_ready != 0 && c->cache_serving) {
        a.iov[a.iovcnt++] = {c->cbuf.readPtr(), c->resp_ready};
    }
    return a.iovcnt != 0;
}

void clientTxDone(IoOp* op, ssize_t n) {
    auto* c = static_cast<ClientConn*>(op->owner);
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        waitForClient(c);
        return;
    }
    if (n <= 0) {
        closeClient(c);
        return;
    }
    c->resp_started = true;
    size_t w = static_cast<size_t>(n);
    c->st->meta.bytes_out += w;
    size_t from_out = std::min(w, c->out.size());
    c->out.consume(from_out);
    w -= from_out;
    c->resp_ready -= w;
    if (c->cache_serving) {
        c->cbuf.consume(w);
        pumpCached(c);
        return;
    }
    c->up->rbuf.consume(w);
    pumpResponse(c);
}

// ----- request completion and keep-alive -----

void goIdle(ClientConn* c) {
    detachState(c, true);  // an idle connection keeps only itself (about 1.5 KiB)
    c->state = ClientConn::State::Idle;
    moveToList(c, ctx().idle_conns);
    ctx().io_pool.release(c->out);
    if (c->in.empty() && !c->rx.busy()) {  // a receive pending into it keeps it
        ctx().io_pool.release(c->in);
    }
    startRead(c);
    clientTimer(c, ctx().limits.keepalive_timeout);
}

/// The Log phase's metrics: one request, into this worker's shard of the shared counters.
void countRequest(ClientConn* c) {
    if (c->kind == static_cast<int>(master::ListenerKind::Metrics)) {
        if (c->mx_open) {  // scrapes, /health and the dashboard are not counted as traffic
            c->mx_open = false;
            mod::metrics::requestEnded();
        }
        return;
    }
    if (!mod::metrics::store().mapped()) {
        c->mx_open = false;  // metrics are off: nothing to count
        return;
    }
    mod::metrics::RequestSample s;
    s.row = c->st->rq.route != nullptr ? c->st->rq.route->mx_row : mod::metrics::kNoRouteRow;
    s.method = static_cast<uint8_t>(std::min<int>(static_cast<int>(c->st->req.method_id), 7));
    // No response completed (the client went away, or the upstream failed mid-response before
    // a head): nginx's 499 for an aborted request, else the status that was being sent.
    s.status = c->mx_open && !c->resp_head_done && c->state != ClientConn::State::WritingLocal
                   ? 499
                   : c->st->meta.status;
    double t = now();
    s.duration_us = c->st->meta.start > 0 && t > c->st->meta.start
                        ? static_cast<uint64_t>((t - c->st->meta.start) * 1e6)
                        : 0;
    if (c->st->meta.upstream_start > 0) {
        double ut = c->st->meta.upstream_time > 0 ? c->st->meta.upstream_time
                                                  : t - c->st->meta.upstream_start;
        s.upstream_us = static_cast<int64_t>(std::max(ut, 0.0) * 1e6);
    }
    s.bytes_in = c->st->meta.bytes_in;
    s.bytes_out = c->st->meta.bytes_out;
    s.gateway_error = c->state == ClientConn::State::WritingLocal && c->st->meta.status >= 500;
    s.refused_by = c->st->rq.answered_by;
    if (s.refused_by != 0 && mod::modules()[s.refused_by - 1]->name() == "auth") {
        s.auth_reason = c->st->rq.refusal_reason;
    }
    mod::metrics::requestFinished(s);
    if (c->mx_open) {
        c->mx_open = false;
        mod::metrics::requestEnded();
    }
}

void finishRequest(ClientConn* c) {
    if (c->cache_bg) {
        closeClient(c);  // a background refresh: not a client's request (no log, no count)
        return;
    }
    if (c->st->rq.websocket) {
        countUpgrade(c->state != ClientConn::State::WritingLocal ? WsUpgradeResult::UpstreamRefused
                     : c->st->meta.status >= 500                 ? WsUpgradeResult::UpstreamInvalid
                                                                 : WsUpgradeResult::Refused);
    }
    if (c->st->rq.chain != nullptr && c->st->rq.chain->has(Phase::Log)) {
        runLog(c->st->rq);
    }
    if (ctx().access_log) {
        ctx().access_log->write(*c, now());
    }
    countRequest(c);
    bool error_reply = c->state == ClientConn::State::WritingLocal && c->st->meta.status >= 400;
    if (!c->keep_alive || ctx().graceful || c->client_eof) {
        // The client may still be sending (an unread body, pipelined bytes, or an error reply
        // to a request we did not read whole): close in stages so it gets all of our answer.
        if (!c->client_eof && (error_reply || !c->req_body_done || !c->in.empty())) {
            lingerClose(c);
        } else {
            closeClient(c);
        }
        return;
    }
    resetRequestState(c);
    stopWrite(c);
    c->state = ClientConn::State::Idle;
    if (c->in_process) {
        return;  // processInput() continues with the next pipelined request
    }
    processInput(c);
}

void processInput(ClientConn* c) {
    attachState(c);
    c->in_process = true;
    const WorkerLimits& lim = ctx().limits;
    core::http::Limits pl{lim.max_request_line, lim.max_header_size, lim.max_headers,
                          lim.drop_underscores};
    while (!c->dead &&
           (c->state == ClientConn::State::Idle || c->state == ClientConn::State::ReadingHead)) {
        if (c->in.empty()) {
            goIdle(c);
            break;
        }
        if (c->state == ClientConn::State::Idle) {
            c->state = ClientConn::State::ReadingHead;
            c->st->meta.start = now();
            moveToList(c, ctx().busy_conns);
            clientTimer(c, lim.header_timeout);
        }
        ParseStatus st =
            core::http::parseRequest(c->in.readPtr(), c->in.size(), pl, c->st->req, c->scan_hint);
        if (st == ParseStatus::Incomplete) {
            if (c->in.space() == 0) {
                c->in.compact();
            }
            if (c->in.space() == 0) {
                c->in.clear();
                sendLocal(c, 431, "request header too large", {}, true);
            } else {
                startRead(c);
            }
            break;
        }
        if (st == ParseStatus::Error) {
            c->in.clear();
            c->req_body_done = true;
            c->st->meta.id_len = 0;
            sendLocal(c, c->st->req.error.status, c->st->req.error.reason, {}, true);
            break;
        }
        dispatch(c);
    }
    c->in_process = false;
    if (c->dead) {
        recycleClient(c);
    }
}

// ----- event callbacks -----

/// Makes room in `in` for a read. False when it is full: the request in progress must consume
/// some first (reading stops until then).
bool roomToRead(ClientConn* c) {
    ctx().io_pool.acquire(c->in);
    if (c->in.space() == 0) {
        c->in.compact();
        if (c->in.space() == 0) {
            stopRead(c);
            return false;
        }
    }
    return true;
}

/// Reads what the socket has into `in` at once (outside the loop's batch). Returns bytes read,
/// 0 on EOF, -1 on would-block, -2 on error.
ssize_t readClient(ClientConn* c) {
    if (!roomToRead(c)) {
        return -1;
    }
    ssize_t n = connRecv(c->fd, c->ssl, c->in.writePtr(), c->in.space());
    if (n > 0) {
        c->in.produce(static_cast<size_t>(n));
        return n;
    }
    if (n == 0) {
        return 0;
    }
    return n == -EAGAIN || n == -EWOULDBLOCK ? -1 : -2;
}

/// Plain HTTP sent to the TLS port: one plain-text 400 that says so, then a lingering close
/// (the client's request is still unread).
void refusePlainText(ClientConn* c) {
    SSL_free(c->ssl);
    c->ssl = nullptr;
    c->tls_handshake = false;
    static const char kBody[] =
        "{\"error\":\"Bad Request\",\"message\":\"plain HTTP request sent to the HTTPS "
        "port\",\"status\":400}\n";
    char head[256];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          sizeof kBody - 1);
    struct iovec v[2] = {{head, static_cast<size_t>(n)},
                         {const_cast<char*>(kBody), sizeof kBody - 1}};
    ssize_t w = connSendv(c->fd, nullptr, v, 2);
    (void)w;  // best effort: the socket buffer of a new connection takes it
    ctx().io.cancel(&c->rx);
    lingerClose(c);
}

/// Records what the handshake negotiated for the ${tls_*} variables.
void noteTlsSession(ClientConn* c) {
    TlsInfo& t = c->tls_info;
    t.protocol = SSL_get_version(c->ssl);
    t.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl));
    const char* sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    t.sni = sni != nullptr ? std::string_view(sni) : std::string_view();
    t.client_verify = "NONE";
    if (X509* peer = SSL_get0_peer_certificate(c->ssl);
        peer != nullptr && SSL_get_verify_result(c->ssl) == X509_V_OK) {
        t.client_verify = "SUCCESS";
        if (BIO* b = BIO_new(BIO_s_mem()); b != nullptr) {
            if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
                char* data = nullptr;
                long n = BIO_get_mem_data(b, &data);
                // At most 1 KiB, control characters left out: the value goes into headers.
                for (long i = 0; i < n && c->tls_subject.size() < 1024; ++i) {
                    if (static_cast<unsigned char>(data[i]) >= 0x20 && data[i] != 0x7f) {
                        c->tls_subject += data[i];
                    }
                }
            }
            BIO_free(b);
        }
        t.client_subject = c->tls_subject;
    }
    ERR_clear_error();
    if (c->st != nullptr) {
        c->st->rq.tls = &c->tls_info;  // else set when a request attaches its state
    }
}

/// Drives the TLS handshake of a new HTTPS connection (read and write readiness both come
/// here until it completes); then the connection reads its first request like any other.
void tlsHandshake(ClientConn* c) {
    if (!c->tls_peeked) {
        unsigned char first = 0;
        ssize_t n = ::recv(c->fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n <= 0) {
            closeClient(c);  // closed (or reset) before saying anything
            return;
        }
        c->tls_peeked = true;
        if (first != 0x16) {  // not a TLS handshake record: a plain-text client
            refusePlainText(c);
            return;
        }
    }
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_handshake = false;
        noteTlsSession(c);
        stopWrite(c);
        clientTimer(c, ctx().limits.header_timeout);
        startRead(c);
        ev_feed_event(L(), &c->rio, EV_READ);  // the request may have come with the handshake
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            stopWrite(c);
            startRead(c);
            return;
        case SSL_ERROR_WANT_WRITE:
            startWrite(c);
            return;
        default: {
            std::string why = mod::tls::opensslErrors("connection closed");
            LOG_DEBUG("TLS handshake with %s failed: %s", c->peer_ip, why.c_str());
            closeClient(c);
            return;
        }
    }
}

void onClientRead(struct ev_loop*, ev_io* w, int) noexcept {
    auto* c = static_cast<ClientConn*>(w->data);
    if (c->tls_handshake) {
        tlsHandshake(c);
        return;
    }
    if (c->state == ClientConn::State::Lingering) {
        char sink[16384];
        for (int i = 0; i < 16; ++i) {  // bounded per event: other connections get their turn
            ssize_t n = ::recv(c->fd, sink, sizeof sink, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                closeClient(c);
                return;
            }
            if (n < 0 || static_cast<size_t>(n) < sizeof sink) {
                break;
            }
        }
        double left = c->linger_deadline - now();
        if (left <= 0) {
            closeClient(c);
            return;
        }
        clientTimer(c, std::min(ctx().limits.lingering_timeout, left));
        return;
    }
    if ((c->st != nullptr && c->st->rq.suspended()) || c->cache_waiting) {
        // A suspended request's views point into `in`: read only into free space at its end
        // (a read of 0 bytes is the client going away, which cancels the request's work).
        if (c->in.space() == 0) {
            stopRead(c);
        } else if (!c->rx.busy()) {
            ctx().io.queue(&c->rx);
        }
        return;
    }
    // Compacting `in` here, before the batch runs, never moves bytes a queued send points at:
    // sends are described when the batch runs.
    if (!c->rx.busy() && roomToRead(c)) {
        ctx().io.queue(&c->rx);
    }
}

bool clientRxPrep(IoOp* op, IoArgs& a) {
    auto* c = static_cast<ClientConn*>(op->owner);
    // onClientRead made room before queueing, and a pending receive keeps the buffer.
    if (c->in.space() == 0) {
        return false;  // the read watcher reports again once a request consumed some
    }
    a.fd = c->fd;
    a.ssl = c->ssl;
    a.iov[0] = {c->in.writePtr(), c->in.space()};
    op->land_buf = c->in.data;
    op->land_off = c->in.wpos;
    return true;
}

void clientRxDone(IoOp* op, ssize_t n) {
    auto* c = static_cast<ClientConn*>(op->owner);
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        return;
    }
    if (n > 0) {
        // The buffer stays the same while a receive is pending (goIdle keeps it), but a
        // completion delivered before this one may have consumed or compacted its data.
        if (c->in.data != op->land_buf || op->land_off + static_cast<uint32_t>(n) > c->in.cap) {
            LOG_ERROR("client read landed outside its buffer; closing the connection");
            closeClient(c);
            return;
        }
        c->in.produceAt(op->land_off, static_cast<size_t>(n));
        if (c->ssl != nullptr && SSL_has_pending(c->ssl) == 1) {
            ev_feed_event(L(), &c->rio, EV_READ);  // the rest of a record epoll cannot see
        }
    }
    if (c->state == ClientConn::State::Tunnel) {
        wsClientData(c, static_cast<long>(n));  // a receive begun before the upgrade
        return;
    }
    if (n <= 0) {
        if (c->state == ClientConn::State::WritingLocal) {
            c->client_eof = true;  // finish writing; close afterwards
            stopRead(c);
            return;
        }
        if (n == 0 && c->state == ClientConn::State::Proxying && c->req_framed_all &&
            !ctx().limits.client_abort_cancel) {
            // A half-close after a complete request is not an abort (HTTP/1.1 allows it): the
            // answer is still delivered, then the connection closed. A client that really went
            // away shows as a failed write.
            c->client_eof = true;
            stopRead(c);
            return;
        }
        closeClient(c);  // idle close, or a client that went away: cancel its upstream work
        return;
    }
    switch (c->state) {
        case ClientConn::State::Idle:
        case ClientConn::State::ReadingHead:
            processInput(c);
            return;
        case ClientConn::State::Proxying:
            if (!c->req_body_done && c->up && !c->up->connecting && c->up->wbuf.empty()) {
                pumpRequestBody(c);
            }
            return;
        default:
            return;  // pipelined bytes wait in `in` until the current response is done
    }
}

void onClientWrite(struct ev_loop*, ev_io* w, int) noexcept {
    auto* c = static_cast<ClientConn*>(w->data);
    if (c->tls_handshake) {
        tlsHandshake(c);
        return;
    }
    if (c->state == ClientConn::State::Proxying && (c->up || c->cache_serving)) {
        c->cache_serving
            ? pumpCached(c)
            : pumpResponse(c);  // waits for an operation in flight (the watcher reports again)
        return;
    }
    if (!flushOut(c)) {
        return;
    }
    if (c->out.empty() && c->big == nullptr && c->state == ClientConn::State::WritingLocal) {
        finishRequest(c);
    }
}

void onClientTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* c = static_cast<ClientConn*>(w->data);
    if (!c->timer.expired(L())) {
        return;
    }
    if (c->cache_waiting && c->state == ClientConn::State::Proxying) {
        proceedProxy(c);  // look at the cache again (another request is filling the key)
        return;
    }
    if (c->backoff_pending) {
        c->backoff_pending = false;  // the back-off before a retry is over
        if (c->state == ClientConn::State::Proxying && c->up == nullptr) {
            attemptUpstream(c);
            return;
        }
    }
    if (c->state == ClientConn::State::Proxying && c->awaiting_continue && c->up != nullptr) {
        if (c->up->connecting) {
            clientTimer(c, kContinueWait);  // a retry is still connecting: its timers stand
            return;
        }
        sendContinue(c);  // the upstream neither said 100 nor answered
        pumpRequestBody(c);
        return;
    }
    if (c->state == ClientConn::State::ReadingHead && !c->in.empty()) {
        c->in.clear();
        c->req_body_done = true;
        sendLocal(c, 408, "request header timeout", {}, true);
        return;
    }
    closeClient(c);  // idle keep-alive expiry, a client not reading, or a stalled upload
}

void onUpstreamRead(struct ev_loop*, ev_io* w, int) noexcept {
    auto* u = static_cast<UpstreamConn*>(w->data);
    ClientConn* c = u->owner;
    if (c == nullptr) {
        if (u->ssl != nullptr) {
            // TLS: a record that is not data (a session ticket, a key update) keeps it alive.
            char probe[1];
            ssize_t n = tlsRead(u->ssl, probe, sizeof probe);
            if (n == -EAGAIN) {
                return;
            }
        }
        destroyUpstreamConn(u);  // idle pooled connection: closed by the server (or garbage)
        return;
    }
    if (c->splicing) {
        pumpSplice(c);
        return;
    }
    if (u->connecting) {
        // Readable before writable while connecting: the connect failed (refused, unreachable).
        onUpstreamWrite(L(), &u->wio, EV_WRITE);
        return;
    }
    if (u->rx.busy() || c->tx.busy()) {
        return;  // level-triggered: reported again if still readable once that is done
    }
    ctx().body_pool.acquire(u->rbuf);
    if (u->rbuf.space() == 0) {
        u->rbuf.compact();
    }
    if (u->rbuf.space() == 0) {
        if (!c->resp_head_done) {
            upstreamFailed(c, UpFail::BadResponse);  // head larger than our buffer
        } else {
            ev_io_stop(L(), &u->rio);
        }
        return;
    }
    ctx().io.queue(&u->rx);
}

bool upstreamRxPrep(IoOp* op, IoArgs& a) {
    auto* u = static_cast<UpstreamConn*>(op->owner);
    size_t want = u->rbuf.space();
    if (!u->owner->resp_head_done && want > kHeadRead) {
        want = kHeadRead;
    }
    if (want == 0) {
        return false;
    }
    u->rx_want = static_cast<uint32_t>(want);
    a.fd = u->fd;
    a.ssl = u->ssl;
    a.iov[0] = {u->rbuf.writePtr(), want};
    op->land_buf = u->rbuf.data;
    op->land_off = u->rbuf.wpos;
    return true;
}

void upstreamRxDone(IoOp* op, ssize_t n) {
    auto* u = static_cast<UpstreamConn*>(op->owner);
    ClientConn* c = u->owner;
    // (TLS returns a record at a time; bytes it read ahead count as more to read.)
    u->read_full = n > 0 && (static_cast<size_t>(n) == u->rx_want ||
                             (u->ssl != nullptr && SSL_has_pending(u->ssl) == 1));
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        u->readahead = 0;
        upstreamTimer(u, readTimeout(c, u));
        return;
    }
    if (n <= 0) {
        if (!c->resp_head_done) {
            upstreamFailed(c, UpFail::Reset);
        } else if (c->resp_framing == BodyFraming::UntilClose) {
            c->resp_framed_all = true;
            c->st->resp.keep_alive = false;
            pumpResponse(c);
        } else {
            LOG_WARN("upstream %s closed the connection in the middle of a response",
                     u->up->address.c_str());
            closeClient(c);
        }
        return;
    }
    if (u->rbuf.data != op->land_buf || op->land_off + static_cast<uint32_t>(n) > u->rbuf.cap) {
        LOG_ERROR("upstream read landed outside its buffer; closing the connection");
        closeClient(c);
        return;
    }
    u->rbuf.produceAt(op->land_off, static_cast<size_t>(n));
    if (!c->resp_head_done) {
        core::http::Limits pl{8192, 65536, core::http::kMaxHeaders};
        while (true) {
            ParseStatus st =
                core::http::parseResponse(u->rbuf.readPtr(), u->rbuf.size(), pl, c->st->resp,
                                          c->resp_scan_hint, c->req_was_head);
            if (st == ParseStatus::Incomplete) {
                upstreamTimer(u, readTimeout(c, u));
                feedTlsPending(u);
                return;
            }
            if (st == ParseStatus::Error) {
                LOG_WARN("upstream %s: %.*s", u->up->address.c_str(),
                         static_cast<int>(c->st->resp.error.reason.size()),
                         c->st->resp.error.reason.data());
                upstreamFailed(c, UpFail::BadResponse);
                return;
            }
            if (c->st->resp.interim) {
                if (c->st->resp.status == 100 && c->awaiting_continue) {
                    sendContinue(c);  // the upstream wants the body
                    pumpRequestBody(c);
                    if (c->dead || c->up != u) {
                        return;
                    }
                }
                u->rbuf.consume(c->st->resp.head_length);  // other 1xx: not forwarded
                c->resp_scan_hint = 0;
                if (u->rbuf.empty()) {
                    feedTlsPending(u);
                    return;
                }
                continue;
            }
            if (c->st->resp.switching_protocols) {
                if (!c->st->rq.websocket) {
                    upstreamFailed(c, UpFail::BadResponse);  // we never asked for an upgrade
                    return;
                }
                upgradeAccepted(c);
                return;
            }
            break;
        }
        if (c->cache_active && cacheOnStatus(c, false)) {
            return;  // a 304 to a revalidation
        }
        if (retryOnStatus(c)) {
            return;
        }
        if (c->cache_active && cacheOnStatus(c, true)) {
            return;  // a 5xx replaced by a stale answer
        }
        if (!onResponseHead(c)) {
            if (c->filter_refused) {
                // Our own filters could not build the head: not the upstream's fault.
                c->filter_refused = false;
                LOG_WARN("response head for request %.*s no longer fits after header filters",
                         static_cast<int>(c->st->meta.id_len), c->st->meta.id);
                failRequest(c, 502, "response header too large");
                return;
            }
            upstreamFailed(c, UpFail::BadResponse);
            return;
        }
    }
    pumpResponse(c);
}

/// The upstream answered a WebSocket upgrade with 101: checked, relayed, and the connection
/// becomes a tunnel.
void upgradeAccepted(ClientConn* c) {
    UpstreamConn* u = c->up;
    const char* why = mod::websocket::checkResponse(
        c->st->resp, std::string_view(c->ws_key, sizeof c->ws_key), c->ws_protocols);
    if (why == nullptr && !u->wbuf.empty()) {
        why = "101 before the whole request was sent";
    }
    if (why != nullptr) {
        LOG_WARN("upstream %s: invalid WebSocket handshake: %s (request %.*s)",
                 u->up->address.c_str(), why, static_cast<int>(c->st->meta.id_len), c->st->meta.id);
        upstreamFailed(c, UpFail::BadResponse);  // never retried: 502
        return;
    }
    c->ws_extensions = c->st->resp.headers.find("sec-websocket-extensions") != nullptr;
    c->keep_alive = true;  // no "Connection: close" in a 101: the connection goes on
    if (!onResponseHead(c)) {
        if (c->filter_refused) {
            c->filter_refused = false;
            failRequest(c, 502, "response header too large");
            return;
        }
        upstreamFailed(c, UpFail::BadResponse);
        return;
    }
    // buildClientHead dropped the hop-by-hop fields and ended the head: restate the upgrade.
    Buffer& b = c->out;
    b.wpos -= 2;
    appendStr(b, "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    if (b.overflowed) {
        b.clear();
        failRequest(c, 502, "response header too large");
        return;
    }
    // The upgrade request is over at the 101 (its duration is the handshake's); the tunnel's
    // lifetime is in the WebSocket families, not the request histograms.
    countRequest(c);
    wsStart(c, *c->st->rq.route);
}

/// The TLS handshake with an upstream, driven by both of its watchers while `connecting`.
/// True when it is complete; false while it is in progress or when it failed (then the
/// attempt has failed as a connect failure: retried or answered 502).
bool upstreamHandshake(ClientConn* c, UpstreamConn* u) {
    UpstreamRt& up = *u->up;
    if (u->ssl == nullptr) {
        u->ssl = mod::tls::newClientSession(up.tls_ctx, u->fd, up.tls_name, &up.tls_session);
        if (u->ssl == nullptr) {
            errno = ENOMEM;
            upstreamFailed(c, UpFail::Connect);
            return false;
        }
        // TCP is up: the handshake gets a connect timeout of its own.
        const RouteRt& route = ctx().proxy->routes[static_cast<size_t>(c->st->meta.route)];
        upstreamTimer(u, route.timeout > 0 ? std::min(route.timeout, up.connect_timeout)
                                           : up.connect_timeout);
    }
    int r = SSL_do_handshake(u->ssl);
    if (r == 1) {
        ev_io_stop(L(), &u->wio);
        return true;
    }
    switch (SSL_get_error(u->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            ev_io_stop(L(), &u->wio);
            ev_io_start(L(), &u->rio);
            return false;
        case SSL_ERROR_WANT_WRITE:
            ev_io_start(L(), &u->wio);
            return false;
        default: {
            std::string why = mod::tls::clientHandshakeError(u->ssl);
            LOG_WARN("TLS to upstream %s (%s): %s", up.address.c_str(), up.tls_name.c_str(),
                     why.c_str());
            errno = EPROTO;
            upstreamFailed(c, UpFail::Connect);
            return false;
        }
    }
}

void onUpstreamWrite(struct ev_loop*, ev_io* w, int) noexcept {
    auto* u = static_cast<UpstreamConn*>(w->data);
    ClientConn* c = u->owner;
    if (c == nullptr) {
        ev_io_stop(L(), w);
        return;
    }
    if (u->connecting) {
        if (u->ssl == nullptr) {
            int err = 0;
            socklen_t el = sizeof err;
            ::getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err != 0) {
                errno = err;
                upstreamFailed(c, UpFail::Connect);
                return;
            }
        }
        if (u->up->tls && !upstreamHandshake(c, u)) {
            return;  // in progress (or failed: the request went on elsewhere)
        }
        u->connecting = false;
        connectDone(u);
    }
    if (u->tx.busy()) {
        return;  // its completion carries on
    }
    if (!u->wbuf.empty()) {
        sendUpstream(c);
        return;
    }
    ev_io_stop(L(), &u->wio);
    if (!c->req_body_done) {
        startRead(c);
        pumpRequestBody(c);
    }
}

void onUpstreamTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* u = static_cast<UpstreamConn*>(w->data);
    if (!u->timer.expired(L())) {
        return;
    }
    ClientConn* c = u->owner;
    if (c == nullptr) {
        destroyUpstreamConn(u);  // pooled too long
        return;
    }
    upstreamFailed(c, u->connecting ? UpFail::Connect : UpFail::Timeout);
}

}  // namespace

// What the cache step (cache_step.cc) calls of the connection: out-of-line entries to the
// functions above, which stay internal here (and inlined where the compiler sees fit).
namespace conn {
void attachState(ClientConn* c) { worker::attachState(c); }
void buildClientHead(ClientConn* c, bool own_gateway) { worker::buildClientHead(c, own_gateway); }
void clientTimer(ClientConn* c, double seconds) { worker::clientTimer(c, seconds); }
void closeClient(ClientConn* c) { worker::closeClient(c); }
void failRequest(ClientConn* c, int status, std::string_view why) {
    worker::failRequest(c, status, why);
}
void finishRequest(ClientConn* c) { worker::finishRequest(c); }
void moveToList(ClientConn* c, ListNode& list) { worker::moveToList(c, list); }
ClientConn* newConn(int fd, int kind) { return worker::newConn(fd, kind); }
void proceedProxy(ClientConn* c) { worker::proceedProxy(c); }
void releaseUpstream(ClientConn* c, bool reusable) { worker::releaseUpstream(c, reusable); }
void sendLocal(ClientConn* c, int status, std::string_view error, std::string_view extra_headers,
               bool close) {
    worker::sendLocal(c, status, error, extra_headers, close);
}
void startTrace(ClientConn* c) { worker::startTrace(c); }
void stopWrite(ClientConn* c) { worker::stopWrite(c); }
}  // namespace conn

void failRequestPublic(ClientConn* c, int status, std::string_view why) {
    failRequest(c, status, why);
}

/// The start of every local reply built here: nothing of the previous output goes out, and a
/// request whose body was not read whole ends its connection.
void beginLocalReply(ClientConn* c, int status) {
    ctx().io.cancel(&c->tx);
    ctx().io_pool.acquire(c->out);
    c->out.clear();
    if (!c->req_body_done) {
        c->keep_alive = false;
    }
    c->st->meta.status = status;
}

void sendJson(ClientConn* c, int status, std::string_view body) {
    beginLocalReply(c, status);
    buildJsonReply(c->out, status, body, std::string_view(c->st->meta.id, c->st->meta.id_len),
                   c->keep_alive, c->req_was_head);
    c->state = ClientConn::State::WritingLocal;
    if (flushOut(c) && c->out.empty()) {
        finishRequest(c);
    }
}

/// A local reply with a body of any size and type (the metrics listener's documents).
void sendBig(ClientConn* c, int status, std::string_view content_type, std::string body) {
    beginLocalReply(c, status);
    buildTypedHead(c->out, status, content_type, body.size(),
                   std::string_view(c->st->meta.id, c->st->meta.id_len), c->keep_alive);
    delete c->big;
    c->big = nullptr;
    if (!c->req_was_head && !body.empty()) {
        c->big = new std::string(std::move(body));
        c->big_off = 0;
    }
    c->state = ClientConn::State::WritingLocal;
    if (flushOut(c) && c->out.empty() && c->big == nullptr) {
        finishRequest(c);
    }
}

/// The metrics listener's documents (and metrics_path on the main listener when
/// metrics.expose_on_main). False when `path` is none of them.
bool serveObservability(ClientConn* c, std::string_view path, bool metrics_listener) {
    const core::MetricsConfig& mc = ctx().init->config->metrics;
    if (mc.prometheus && path == mc.metrics_path) {
        const auto* accept = c->st->req.headers.find("accept");
        bool om = accept != nullptr && wantsOpenMetrics(accept->value);
        sendBig(c, 200,
                om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                   : "text/plain; version=0.0.4; charset=utf-8",
                metricsText(mc.detailed_metrics, om));
        return true;
    }
    if (!metrics_listener) {
        return false;
    }
    if (path == "/ready") {
        bool ready = readyNow();
        sendBig(c, ready ? 200 : 503, "text/plain; charset=utf-8",
                ready ? "ready\n" : "draining\n");
        return true;
    }
    if (path == "/dashboard" || path == "/dashboard/") {
        sendBig(c, 200, "text/html; charset=utf-8", std::string(dashboardHtml()));
        return true;
    }
    if (path == "/dashboard/api") {
        sendBig(c, 200, "application/json", dashboardJson());
        return true;
    }
    return false;
}

void ClientConn::create(int fd, const sockaddr* peer, socklen_t, int listener_kind) {
    ClientConn* c = newConn(fd, listener_kind);
    if (peer->sa_family == AF_INET) {
        const auto* a = &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr;
        inet_ntop(AF_INET, a, c->peer_ip, sizeof c->peer_ip);
        std::memcpy(c->peer_bin, a, 4);
        c->peer_bin_len = 4;
    } else if (peer->sa_family == AF_INET6) {
        const auto* a = &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr;
        inet_ntop(AF_INET6, a, c->peer_ip, sizeof c->peer_ip);
        std::memcpy(c->peer_bin, a, 16);
        c->peer_bin_len = 16;
    }
    c->peer_ip_len = static_cast<uint8_t>(std::strlen(c->peer_ip));
    if (listener_kind == static_cast<int>(master::ListenerKind::Https)) {
        const mod::tls::ServerTls* tls = mod::tls::current();
        c->ssl = tls != nullptr ? tls->accept(fd) : nullptr;
        if (c->ssl == nullptr) {
            LOG_ERROR("cannot start TLS on a new connection from %s", c->peer_ip);
            goIdle(c);
            closeClient(c);
            return;
        }
        c->tls_handshake = true;
        goIdle(c);
        clientTimer(c, ctx().limits.handshake_timeout);
        return;
    }
    goIdle(c);
    clientTimer(c, ctx().limits.header_timeout);
}

void closeIdleConnections() {
    // Graceful stop: an idle keep-alive connection is closed, unless its next request is already
    // waiting in the socket (then it is served, with Connection: close). A new connection that
    // has not sent its first request yet is left alone: it gets its one answer, then closes.
    ListNode& head = ctx().idle_conns;
    ListNode keep;
    while (head.linked()) {
        auto* c = reinterpret_cast<ClientConn*>(reinterpret_cast<char*>(head.next) -
                                                offsetof(ClientConn, node));
        c->node.unlink();
        if (c->requests == 0) {
            keep.pushBack(&c->node);
            continue;
        }
        ssize_t n = readClient(c);
        if (n > 0) {
            keep.pushBack(&c->node);
            processInput(c);
        } else if (n != -1 || c->in.empty()) {
            closeClient(c);
        } else {
            keep.pushBack(&c->node);
        }
    }
    while (keep.linked()) {
        ListNode* n = keep.next;
        n->unlink();
        if (auto* c = reinterpret_cast<ClientConn*>(reinterpret_cast<char*>(n) -
                                                    offsetof(ClientConn, node));
            c->state == ClientConn::State::Idle) {
            head.pushBack(n);
        } else {
            ctx().busy_conns.pushBack(n);
        }
    }
    if (ctx().proxy) {
        ctx().proxy->closeIdle();
    }
}

void closeAllConnections() {
    closeIdleConnections();
    ListNode& head = ctx().busy_conns;
    while (head.linked()) {
        auto* c = reinterpret_cast<ClientConn*>(reinterpret_cast<char*>(head.next) -
                                                offsetof(ClientConn, node));
        if (c->state == ClientConn::State::Tunnel) {
            wsGoingAwayNow(c);  // a 1001 close frame to both sides, not just a cut
            tunnelFinish(c, false);
            continue;
        }
        closeClient(c);
    }
}

void reopenWorkerLogs() {
    const std::string& path = ctx().init->config->server.error_log;
    if (!path.empty() && path != "stderr" && !core::openLogFile(path.c_str())) {
        LOG_ERROR("cannot reopen error log %s", path.c_str());
    }
    if (ctx().access_log) {
        ctx().access_log->reopen();
    }
}

void closePooled(UpstreamConn* u) { destroyUpstreamConn(u); }

void tunnelFinish(ClientConn* c, bool linger) {
    ev_io_stop(L(), &c->rio);
    ev_io_stop(L(), &c->wio);
    c->reading = c->writing = false;
    ev_set_cb(&c->rio, onClientRead);
    ev_set_cb(&c->wio, onClientWrite);
    c->st->meta.upstream_time = now() - c->st->meta.upstream_start;
    releaseUpstream(c, false);
    if (c->ws != nullptr) {
        wsRelease(c);
    }
    if (c->st->rq.chain != nullptr && c->st->rq.chain->has(Phase::Log)) {
        runLog(c->st->rq);
    }
    if (ctx().access_log) {
        ctx().access_log->write(*c, now());
    }
    if (linger) {
        lingerClose(c);
    } else {
        closeClient(c);
    }
}

}  // namespace photon::worker
