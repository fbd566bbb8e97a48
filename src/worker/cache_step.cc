// SPDX-License-Identifier: Apache-2.0
// The response cache step of a request: lookup after the Access handlers, serving hits from
// the shared store, storing misses while they stream, revalidation, stale answers, background
// refreshes and PURGE. The rules (keys, freshness, what may be stored) are in modules/cache;
// the connection it works on is http_conn.cc's, through conn_internal.h.
#include <sys/uio.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/log.h"
#include "modules/cache/cache.h"
#include "modules/metrics/store.h"
#include "modules/routing/path_normalize.h"
#include "modules/routing/router.h"
#include "shm/clock.h"
#include "worker/client_address.h"
#include "worker/conn_internal.h"
#include "worker/http_conn.h"
#include "worker/local_reply.h"
#include "worker/phases.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::worker::conn {

namespace {

using core::http::BodyFraming;
using core::http::ParseStatus;

inline double now() { return ev_now(ctx().loop); }

}  // namespace

void cacheInvalidateAfter(ClientConn* c);
void cacheBeginStore(ClientConn* c);

// A route with `cache` looks the request up here, after its Access handlers ran (a cached
// answer never reaches a request that failed authentication or rate limiting). A hit is served
// from the shared store with the HeaderFilter handlers applied as to an upstream head; a miss
// goes upstream and its response is stored while it streams to the client (no splice then).

namespace mc = mod::cache;

enum CacheStatus : uint8_t {
    kCacheNone,
    kCacheHit,
    kCacheMiss,
    kCacheStale,
    kCacheBypass,
    kCacheExpired,
    kCacheRevalidated
};

std::string_view cacheStatusText(uint8_t s) {
    switch (s) {
        case kCacheHit:
            return "HIT";
        case kCacheMiss:
            return "MISS";
        case kCacheStale:
            return "STALE";
        case kCacheBypass:
            return "BYPASS";
        case kCacheExpired:
            return "EXPIRED";
        case kCacheRevalidated:
            return "REVALIDATED";
        default:
            return {};
    }
}

// Stored heads are serialised here first, and read back for revalidation (one worker thread).
char g_cache_head[32768];
char g_cache_head2[32768];
char g_cache_chunk[16384];

void pumpCached(ClientConn* c);

/// Adds X-Cache and X-Cache-Key to the response head HeaderFilter will see.
void addCacheFields(ClientConn* c) {
    std::string_view st = cacheStatusText(c->cache_status);
    if (st.empty()) {
        return;
    }
    addHeader(c->st->resp.headers, "X-Cache", st);
    if (!c->cache_key.empty()) {
        addHeader(c->st->resp.headers, "X-Cache-Key", c->cache_key);
    }
}

/// Serves the entry `f` (already judged usable). `nm`: whether the client's conditionals match
/// it (-1: decide from the request head, still in place). False when the entry changed
/// meanwhile or does not parse (the request then goes upstream as a miss); the response is
/// under way otherwise.
void failRequest(ClientConn* c, int status, std::string_view why);

bool serveCached(ClientConn* c, const mc::Found& f, uint64_t age, uint8_t status, int nm) {
    mc::Store& st = mc::store();
    const uint32_t head_len = f.meta.head_len;
    ctx().body_pool.acquire(c->cbuf);
    c->cbuf.clear();
    if (head_len == 0 || head_len > c->cbuf.space() / 2) {
        return false;
    }
    const uint64_t data0 = f.meta.key_len;
    // The head and the first part of the body in one copy, checked against the entry's version
    // before a byte is sent.
    size_t body_first =
        static_cast<size_t>(std::min<uint64_t>(f.meta.body_len, c->cbuf.space() - head_len));
    if (c->req_was_head) {
        body_first = 0;
    }
    if (!st.read(f, data0, c->cbuf.writePtr(), head_len + body_first)) {
        return false;
    }
    c->cbuf.produce(head_len + body_first);
    core::http::Limits pl{8192, 65536, core::http::kMaxHeaders};
    size_t hint = 0;
    if (core::http::parseResponse(c->cbuf.readPtr(), head_len, pl, c->st->resp, hint, true) !=
        ParseStatus::Complete) {
        return false;
    }
    uint64_t body = f.meta.body_len;
    if (c->st->resp.status == 200 &&
        (nm >= 0 ? nm == 1 : mc::notModified(c->st->req.headers, c->st->resp.headers))) {
        c->st->resp.status = 304;  // the client's copy is current
        body_first = 0;
        c->cbuf.wpos = c->cbuf.rpos + head_len;
        body = 0;
    } else {
        char* cl = c->st->rq.alloc(24);
        if (cl == nullptr) {
            return false;
        }
        int n = std::snprintf(cl, 24, "%llu", static_cast<unsigned long long>(body));
        addHeader(c->st->resp.headers, "Content-Length",
                  std::string_view(cl, static_cast<size_t>(n)));
    }
    c->st->resp.framing =
        c->req_was_head || body == 0 ? BodyFraming::None : BodyFraming::ContentLength;
    c->st->resp.content_length = body;
    char* ag = c->st->rq.alloc(24);
    if (ag == nullptr) {
        return false;
    }
    int an = std::snprintf(ag, 24, "%llu", static_cast<unsigned long long>(age));
    addHeader(c->st->resp.headers, "Age", std::string_view(ag, static_cast<size_t>(an)));
    c->cache_status = status;
    addCacheFields(c);

    // From here the request is answered from the store.
    c->in.consume(c->head_pending);
    c->head_pending = 0;
    st.touch(f.idx);
    if (status == kCacheHit || status == kCacheStale) {
        mc::Store::bump(status == kCacheHit ? st.stats(mc::writer()).hits
                                            : st.stats(mc::writer()).stale);
    }
    c->st->meta.status = c->st->resp.status;
    c->st->meta.upstream_addr = nullptr;
    if (c->st->rq.chain != nullptr && c->st->rq.chain->has(Phase::HeaderFilter)) {
        c->st->rq.upstream = {};
        if (!filterUpstreamHead(c->st->rq)) {
            ctx().body_pool.release(c->cbuf);
            LOG_WARN("response head for request %.*s no longer fits after header filters",
                     static_cast<int>(c->st->meta.id_len), c->st->meta.id);
            sendLocal(c, 502, "response header too large", {}, false);
            return true;
        }
    }
    ctx().io_pool.acquire(c->out);
    buildClientHead(c, c->st->rq.own_gateway_field);
    if (c->out.overflowed) {
        c->out.clear();
        ctx().body_pool.release(c->cbuf);
        sendLocal(c, 502, "response header too large", {}, false);
        return true;
    }
    c->cbuf.consume(head_len);
    c->resp_ready = c->cbuf.size();
    c->cache_found = f;
    c->cache_off = data0 + head_len + body_first;
    c->cache_end = data0 + head_len + (c->req_was_head ? 0 : body);
    c->cache_serving = true;
    c->resp_head_done = true;
    c->resp_framed_all = true;
    c->state = ClientConn::State::Proxying;
    clientTimer(c, 0);
    pumpCached(c);
    return true;
}

/// Sends the cached response: `out` (the head), then the body, copied from the store a buffer
/// at a time and checked against the entry's version before it is sent.
void pumpCached(ClientConn* c) {
    if (c->tx.busy()) {
        return;  // its completion comes back here
    }
    if (c->resp_ready == 0 && c->cache_off < c->cache_end) {
        c->cbuf.clear();
        size_t n =
            static_cast<size_t>(std::min<uint64_t>(c->cbuf.space(), c->cache_end - c->cache_off));
        if (!mc::store().read(c->cache_found, c->cache_off, c->cbuf.writePtr(), n)) {
            // Evicted while being sent: the head is gone already, so the close is the signal.
            LOG_WARN("cache entry replaced while it was being sent; closing the connection");
            closeClient(c);
            return;
        }
        c->cbuf.produce(n);
        c->cache_off += n;
        c->resp_ready = n;
    }
    if (!c->out.empty() && c->resp_ready != 0 && c->resp_ready <= kJoinBody &&
        c->resp_ready <= c->out.space()) {
        c->out.append(c->cbuf.readPtr(), c->resp_ready);
        c->cbuf.consume(c->resp_ready);
        c->resp_ready = 0;
        if (c->cache_off < c->cache_end) {
            ctx().io.queue(&c->tx);
            return;
        }
    }
    if (!c->out.empty() || c->resp_ready != 0) {
        ctx().io.queue(&c->tx);
        return;
    }
    stopWrite(c);
    clientTimer(c, 0);
    c->cache_serving = false;
    ctx().body_pool.release(c->cbuf);
    finishRequest(c);
}

/// Removes what is stored under `key` (and, for a Vary marker, makes its variants unreachable).
void cacheInvalidate(std::string_view key) {
    mc::Store& st = mc::store();
    mc::Found f;
    if (st.find(key, st.hashKey(key), f)) {
        st.remove(f, mc::writer());
    }
}

/// `PURGE /cache/<host><path>` on the metrics listener: removes the stored responses of that URL
/// (every query and Vary variant when the key has them); a trailing `*` removes every URL
/// under the prefix, and `PURGE /cache/*` everything. Answers {"purged": N}.
void cachePurge(ClientConn* c, std::string_view what) {
    mc::Store& st = mc::store();
    if (!st.mapped()) {
        sendLocal(c, 404, "no route caches responses", {}, false);
        return;
    }
    struct Match {
        char key[mc::kMaxKey];
        size_t len = 0;
        bool prefix = false;
    } m;
    m.prefix = !what.empty() && what.back() == '*';
    if (m.prefix) {
        what.remove_suffix(1);
    }
    size_t slash = what.find('/');
    std::string_view host = what.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view() : what.substr(slash);
    if (host.empty() && !m.prefix) {
        sendLocal(c, 400, "PURGE /cache/<host>/<path>, /cache/<host>/<prefix>* or /cache/*", {},
                  false);
        return;
    }
    m.len = mc::buildKey(host, path, {}, false, m.key, sizeof m.key);
    if (m.len == 0) {
        sendLocal(c, 400, "URL too long", {}, false);
        return;
    }
    size_t n = st.purge(
        [](void* x, std::string_view key) {
            const auto* mm = static_cast<const Match*>(x);
            std::string_view want(mm->key, mm->len);
            if (mm->prefix) {
                return key.starts_with(want);
            }
            // The URL itself, its query variants and its Vary variants.
            return key == want ||
                   (key.starts_with(want) && (key[want.size()] == '?' || key[want.size()] == '\n'));
        },
        &m, mc::writer());
    char body[64];
    int bn = std::snprintf(body, sizeof body, "{\"purged\":%zu}", n);
    LOG_NOTICE("cache: PURGE /cache/%.*s%s removed %zu entries", static_cast<int>(what.size()),
               what.data(), m.prefix ? "*" : "", n);
    sendJson(c, 200, std::string_view(body, static_cast<size_t>(bn)));
}

/// Reads the head of the stale entry `f` before the request goes upstream: whether the
/// client's own conditionals match it (the answer may come from it later, when the request
/// head is gone), and its validators, sent upstream as a conditional request (RFC 9111 §4.3.1)
/// instead of the client's.
void cachePrepareRevalidation(ClientConn* c, const mc::Found& f) {
    mc::Store& st = mc::store();
    const uint32_t hl = f.meta.head_len;
    if (hl == 0 || hl > sizeof g_cache_head || !st.read(f, f.meta.key_len, g_cache_head, hl)) {
        return;
    }
    core::http::Limits pl{8192, 65536, core::http::kMaxHeaders};
    core::http::ResponseHead stored;
    size_t hint = 0;
    if (core::http::parseResponse(g_cache_head, hl, pl, stored, hint, true) !=
        ParseStatus::Complete) {
        return;
    }
    c->cache_found = f;
    c->cache_client_nm =
        stored.status == 200 && mc::notModified(c->st->req.headers, stored.headers);
    const std::string_view etag = mc::fieldOf(stored.headers, "etag");
    const std::string_view lm = mc::fieldOf(stored.headers, "last-modified");
    if (stored.status != 200 || (etag.empty() && lm.empty())) {
        return;
    }
    static const std::string_view kDrop[] = {"if-none-match", "if-modified-since"};
    void* em = c->st->rq.alloc(sizeof(HeadEdits));
    void* fm = c->st->rq.alloc(2 * sizeof(HeadEdits::Field));
    if (em == nullptr || fm == nullptr) {
        return;
    }
    auto* e = new (em) HeadEdits();
    auto* fields = static_cast<HeadEdits::Field*>(fm);
    e->drop = kDrop;
    e->drop_count = 2;
    e->drop_mask = nameLengthMask(kDrop, 2);
    uint16_t n = 0;
    auto line = [&](std::string_view name, std::string_view value) {
        char* p = c->st->rq.alloc(name.size() + value.size() + 4);
        if (p == nullptr) {
            return false;
        }
        size_t k = 0;
        std::memcpy(p + k, name.data(), name.size());
        k += name.size();
        p[k++] = ':';
        p[k++] = ' ';
        std::memcpy(p + k, value.data(), value.size());
        k += value.size();
        p[k++] = '\r';
        p[k++] = '\n';
        new (&fields[n]) HeadEdits::Field();
        fields[n].text = std::string_view(p, k);
        fields[n].whole = true;
        ++n;
        return true;
    };
    if ((!etag.empty() && !line("If-None-Match", etag)) ||
        (!lm.empty() && !line("If-Modified-Since", lm))) {
        return;
    }
    e->add = fields;
    e->add_count = n;
    c->st->rq.addUpstreamEdits(e);
    c->cache_revalidating = true;
}

/// A deep copy of the Proxy-phase head edits `e` into `to`'s arena; false when it does not fit.
bool copyEdits(Request& to, const HeadEdits* e) {
    auto dup = [&](std::string_view v, std::string_view& out) {
        out = to.copy(v);
        return v.empty() || !out.empty();
    };
    for (; e != nullptr; e = e->next) {
        void* m = to.alloc(sizeof(HeadEdits));
        if (m == nullptr) {
            return false;
        }
        auto* n = new (m) HeadEdits(*e);
        n->next = nullptr;
        if (e->drop_count != 0) {
            auto* d = static_cast<std::string_view*>(
                static_cast<void*>(to.alloc(sizeof(std::string_view) * e->drop_count)));
            if (d == nullptr) {
                return false;
            }
            for (size_t i = 0; i < e->drop_count; ++i) {
                new (&d[i]) std::string_view();
                if (!dup(e->drop[i], d[i])) {
                    return false;
                }
            }
            n->drop = d;
        }
        if (e->add_count != 0) {
            auto* a = static_cast<HeadEdits::Field*>(
                static_cast<void*>(to.alloc(sizeof(HeadEdits::Field) * e->add_count)));
            if (a == nullptr) {
                return false;
            }
            for (size_t i = 0; i < e->add_count; ++i) {
                new (&a[i]) HeadEdits::Field(e->add[i]);
                if (!dup(e->add[i].text, a[i].text) || !dup(e->add[i].value, a[i].value)) {
                    return false;
                }
            }
            n->add = a;
        }
        to.addUpstreamEdits(n);
    }
    return true;
}

/// stale-while-revalidate: the stale entry `f` answers `c` at once, and this starts the
/// revalidation in the background: a connection object without a client (`cache_bg`) makes the
/// upstream request `c` would have made (its head parsed again from a copy; the route's
/// Proxy-phase edits and the host and query overrides copied; the stored validators added).
/// The answer is stored and goes to nobody. It takes over `c`'s fill lock. False when it could
/// not start (then `c` revalidates itself).
bool startBackgroundRefresh(ClientConn* c, const mc::Found& f) {
    const std::string_view raw(c->in.readPtr(), c->head_pending);
    ClientConn* b = newConn(-1, c->kind);
    b->cache_bg = true;
    std::memcpy(b->peer_ip, c->peer_ip, sizeof b->peer_ip);
    b->peer_ip_len = c->peer_ip_len;
    std::memcpy(b->peer_bin, c->peer_bin, sizeof b->peer_bin);
    b->peer_bin_len = c->peer_bin_len;
    attachState(b);
    sharedTryAddConnection(0);  // a connection until it closes (graceful stops wait for it)
    b->state = ClientConn::State::Proxying;
    moveToList(b, ctx().busy_conns);
    // The request head, parsed again in this object's own buffer.
    const WorkerLimits& lim = ctx().limits;
    core::http::Limits pl{lim.max_request_line, lim.max_header_size, lim.max_headers,
                          lim.drop_underscores};
    ctx().io_pool.acquire(b->in);
    size_t hint = 0;
    if (raw.size() > b->in.space()) {
        closeClient(b);
        return false;
    }
    b->in.append(raw.data(), raw.size());
    if (core::http::parseRequest(b->in.readPtr(), b->in.size(), pl, b->st->req, hint) !=
        ParseStatus::Complete) {
        closeClient(b);
        return false;
    }
    size_t plen = 0;
    if (mod::routing::normalizePath(b->st->req.path, const_cast<char*>(b->st->req.path.data()),
                                    b->st->req.path.size(),
                                    plen) != mod::routing::NormalizeResult::Ok) {
        closeClient(b);
        return false;
    }
    Request& rq = b->st->rq;
    rq.path = std::string_view(b->st->req.path.data(), plen);
    b->head_pending = b->st->req.head_length;
    b->keep_alive = false;
    b->st->meta.start = now();
    b->st->meta.route = c->st->meta.route;
    size_t ml = std::min(b->st->req.method.size(), sizeof b->st->meta.method);
    std::memcpy(b->st->meta.method, b->st->req.method.data(), ml);
    b->st->meta.method_len = static_cast<uint8_t>(ml);
    b->st->meta.id_len = static_cast<uint8_t>(ctx().ids.next(b->st->meta.id));
    if (lim.trace_context) {
        startTrace(b);
    }
    const Proxy& p = *ctx().proxy;
    const RouteRt& route = *c->st->rq.route;
    rq.route = &route;
    resolveClientAddress(b, p);
    captureHashKey(b, p.backends[route.backend], rq.path);
    if (route.rewrites) {
        rq.match = p.router->match(b->st->req.method, b->st->req.host, rq.path);
    }
    rq.host_override = rq.copy(c->st->rq.host_override);
    rq.query_override_set = c->st->rq.query_override_set;
    rq.query_override = rq.copy(c->st->rq.query_override);
    if ((!c->st->rq.host_override.empty() && rq.host_override.empty()) ||
        (!c->st->rq.query_override.empty() && rq.query_override.empty()) ||
        !copyEdits(rq, c->st->rq.upstream_edits)) {
        closeClient(b);
        return false;
    }
    // Its cache state: a revalidation that stores what comes back, under c's fill lock.
    b->cache_active = true;
    b->cache_key = rq.copy(c->cache_key);
    b->cache_status = kCacheExpired;
    b->cache_may_store = true;
    b->cache_req_auth =
        route.cache.authenticated || b->st->req.headers.find("authorization") != nullptr;
    b->cache_request_time = static_cast<int64_t>(::time(nullptr));
    ctx().body_pool.acquire(b->cbuf);
    b->cbuf.clear();
    b->cbuf.append(raw.data(), raw.size());
    b->cache_lock = c->cache_lock;
    b->cache_lock_hash = c->cache_lock_hash;
    c->cache_lock = 0;
    if (b->cache_key.empty()) {
        closeClient(b);  // releases the lock: the next request revalidates
        return false;
    }
    cachePrepareRevalidation(b, f);
    proceedProxy(b);  // the cache step is skipped for it
    return true;
}

/// The cache step of a route with `cache`: true when the request was answered here (or waits
/// for another request's fill of its key; the client timer runs this again).
bool cacheLookup(ClientConn* c) {
    auto& r = c->st->req;
    const mc::RoutePolicy& pol = c->st->rq.route->cache;
    mc::Store& st = mc::store();
    if (!st.mapped() || c->st->rq.websocket) {
        return false;
    }
    c->cache_active = true;  // released with the request (cacheRelease)
    const bool get = r.method_id == core::http::Method::Get;
    const bool safe = get || c->req_was_head || r.method_id == core::http::Method::Options ||
                      r.method_id == core::http::Method::Trace;
    char key[mc::kMaxKey];
    size_t kn = mc::buildKey(r.host, c->st->rq.path, r.query, pol.with_query, key, sizeof key);
    if (!safe) {
        // A success of an unsafe method invalidates the URI (RFC 9111 §4.4), decided at its
        // response.
        if (kn != 0) {
            c->cache_key = c->st->rq.copy(std::string_view(key, kn));
            c->cache_host = c->st->rq.copy(r.host);
            c->cache_invalidate = !c->cache_key.empty();
        }
        return false;
    }
    if (!get && !c->req_was_head) {
        return false;
    }
    mc::CacheStatsShm& stats = st.stats(mc::writer());
    if (kn == 0 || (r.has_query && !pol.with_query) || r.framing != BodyFraming::None) {
        c->cache_status = kCacheBypass;
        mc::Store::bump(stats.bypass);
        return false;
    }
    if (c->cache_key.empty()) {  // set already when this runs again after a wait
        c->cache_key = c->st->rq.copy(std::string_view(key, kn));
        if (c->cache_key.empty()) {
            c->cache_status = kCacheBypass;  // the arena is full
            mc::Store::bump(stats.bypass);
            return false;
        }
    }
    const mc::CacheControl rcc = mc::cacheControlOf(r.headers);
    const std::string_view raw(c->in.readPtr(), c->head_pending);
    const uint64_t key_hash = st.hashKey(c->cache_key);
    mc::Found f;
    bool found = st.find(c->cache_key, key_hash, f);
    if (found && (f.meta.flags & mc::kVaryMarker) != 0) {
        char names[1024];
        char vk[mc::kMaxKey];
        size_t vn = 0;
        if (f.meta.head_len <= sizeof names && st.read(f, f.meta.key_len, names, f.meta.head_len)) {
            vn = mc::variantKey(c->cache_key, f.meta.stored_us,
                                std::string_view(names, f.meta.head_len), raw, vk, sizeof vk);
        }
        found =
            vn != 0 && st.find(std::string_view(vk, vn), st.hashKey(std::string_view(vk, vn)), f);
    }
    const uint64_t now_us = shm::monotonicMicros();
    mc::Judgement j;
    if (found) {
        j = mc::judge(f.meta, now_us, rcc);
        if (j.use == mc::Use::Fresh || j.use == mc::Use::Stale) {
            if (serveCached(c, f, j.age, j.use == mc::Use::Fresh ? kCacheHit : kCacheStale, -1)) {
                return true;
            }
            found = false;  // changed meanwhile: a miss
        }
    }
    if (rcc.only_if_cached) {
        mc::Store::bump(stats.misses);
        sendLocal(c, 504, "not in the cache (only-if-cached)", {}, false);
        return true;
    }
    // One fill per key across every worker: the first miss takes the lock and goes upstream;
    // the others serve the stale entry if stale-while-revalidate allows it, or wait for the
    // new one. A request that waited and found the lock gone without an entry goes upstream
    // without taking it (the fill was not cacheable: no need to queue up).
    if (get && pol.lock_timeout_us != 0) {
        uint64_t word = 0;
        const bool waited = c->cache_waiting;
        mc::Store::Lock l =
            waited ? (st.locked(key_hash, now_us) ? mc::Store::Lock::Held : mc::Store::Lock::Busy)
                   : st.lock(key_hash, now_us, pol.lock_timeout_us, word);
        if (l == mc::Store::Lock::Acquired) {
            c->cache_lock = word;
            c->cache_lock_hash = key_hash;
            // stale-while-revalidate: this request gets the stale entry at once too; the
            // refresh runs in the background.
            if (found && j.use == mc::Use::StaleSwr && startBackgroundRefresh(c, f) &&
                serveCached(c, f, j.age, kCacheStale, -1)) {
                return true;
            }
        } else if (l == mc::Store::Lock::Held) {
            if (found && j.use == mc::Use::StaleSwr && serveCached(c, f, j.age, kCacheStale, -1)) {
                return true;  // stale-while-revalidate: another request is refreshing it
            }
            if (!waited) {
                c->cache_waiting = true;
                c->cache_wait_until = now_us + pol.lock_timeout_us;
            }
            if (now_us < c->cache_wait_until) {
                clientTimer(c, 0.01);  // look again in 10 ms
                return true;
            }
        }
    }
    c->cache_waiting = false;
    c->cache_status = found ? kCacheExpired : kCacheMiss;
    if (found) {
        mc::Store::bump(stats.expired);
    }
    mc::Store::bump(stats.misses);
    if (get) {
        if (found) {
            // A stale entry: the upstream is asked whether it is still good (its validators),
            // and it answers in the upstream's place if that fails (stale-if-error).
            cachePrepareRevalidation(c, f);
            const uint64_t staleness = j.age > f.meta.lifetime ? j.age - f.meta.lifetime : 0;
            c->cache_sie = c->cache_client_nm >= 0 && (f.meta.flags & mc::kMustRevalidate) == 0 &&
                           f.meta.sie != 0 && staleness <= f.meta.sie;
        }
        // Kept for the store decision at the response: the request head is gone by then.
        c->cache_may_store = true;
        c->cache_req_no_store = rcc.no_store;
        c->cache_req_auth = pol.authenticated || r.headers.find("authorization") != nullptr;
        c->cache_request_time = static_cast<int64_t>(::time(nullptr));
        ctx().body_pool.acquire(c->cbuf);
        c->cbuf.clear();
        if (raw.size() <= c->cbuf.space()) {
            c->cbuf.append(raw.data(), raw.size());
        } else {
            c->cache_may_store = false;
        }
    }
    return false;
}

/// The upstream said 304 to a revalidation: the stored response is freshened with the 304's
/// fields (stored anew, its body copied), then served.
void cacheRefreshed(ClientConn* c) {
    UpstreamConn* u = c->up;
    mc::Store& st = mc::store();
    const mc::RoutePolicy& pol = c->st->rq.route->cache;
    u->rbuf.consume(c->st->resp.head_length);
    const bool reusable =
        c->st->resp.keep_alive && c->req_body_done && u->rbuf.empty() && u->wbuf.empty();
    c->st->meta.upstream_time = now() - c->st->meta.upstream_start;
    c->cache_may_store = false;
    const mc::Found old = c->cache_found;
    mc::Found served = old;
    core::http::Limits pl{8192, 65536, core::http::kMaxHeaders};
    core::http::ResponseHead stored;
    core::http::ResponseHead merged;
    size_t hint = 0;
    size_t mn = 0;
    if (old.meta.head_len <= sizeof g_cache_head &&
        st.read(old, old.meta.key_len, g_cache_head, old.meta.head_len) &&
        core::http::parseResponse(g_cache_head, old.meta.head_len, pl, stored, hint, true) ==
            ParseStatus::Complete) {
        mn = mc::mergeHead(stored, c->st->resp, g_cache_head2, sizeof g_cache_head2);
    }
    releaseUpstream(c, reusable);
    hint = 0;
    if (mn != 0 && core::http::parseResponse(g_cache_head2, mn, pl, merged, hint, true) ==
                       ParseStatus::Complete) {
        mc::CacheControl rcc;
        rcc.no_store = c->cache_req_no_store;
        const int64_t now_wall = static_cast<int64_t>(::time(nullptr));
        mc::StorePlan plan =
            mc::planStore(pol, c->cache_req_auth, rcc, merged, c->cache_request_time, now_wall);
        char key[mc::kMaxKey];
        const uint32_t kl = old.meta.key_len;
        if (plan.store && kl <= sizeof key && st.read(old, 0, key, kl)) {
            // The new entry: the old key, the merged head, the old body.
            mc::EntryMeta m = plan.meta;
            m.stored_us = shm::monotonicMicros();
            m.key_len = kl;
            m.head_len = static_cast<uint32_t>(mn);
            m.body_len = old.meta.body_len;
            m.flags |= old.meta.flags & mc::kVaried;
            mc::Insert ins;
            st.begin(ins, mc::writer(), uint64_t{kl} + mn + old.meta.body_len);
            bool ok = st.append(ins, key, kl) && st.append(ins, g_cache_head2, mn);
            const uint64_t body0 = uint64_t{kl} + old.meta.head_len;
            for (uint64_t off = 0; ok && off < old.meta.body_len;) {
                size_t k = static_cast<size_t>(
                    std::min<uint64_t>(sizeof g_cache_chunk, old.meta.body_len - off));
                ok =
                    st.read(old, body0 + off, g_cache_chunk, k) && st.append(ins, g_cache_chunk, k);
                off += k;
            }
            const uint64_t h = st.hashKey(std::string_view(key, kl));
            if (ok && st.commit(ins, h, m)) {
                mc::Found nf;
                if (st.find(std::string_view(key, kl), h, nf)) {
                    served = nf;
                }
            } else {
                st.abort(ins);
            }
        }
    }
    if (c->cache_lock != 0) {
        st.unlock(c->cache_lock_hash, c->cache_lock);
        c->cache_lock = 0;
    }
    mc::Store::bump(st.stats(mc::writer()).revalidated);
    if (c->cache_bg) {
        closeClient(c);  // a background refresh: nobody to answer
        return;
    }
    const mc::Judgement j = mc::judge(served.meta, shm::monotonicMicros(), mc::CacheControl{});
    if (!serveCached(c, served, j.age, kCacheRevalidated, c->cache_client_nm)) {
        failRequest(c, 502, "cached response changed during revalidation");
    }
}

bool cacheServeStaleOnError(ClientConn* c);

/// At the upstream head of a request that went through the cache step.
void cacheOnHead(ClientConn* c) {
    if (c->cache_invalidate) {
        cacheInvalidateAfter(c);
    }
    if (c->cache_may_store) {
        cacheBeginStore(c);
    }
    if (c->cache_status != kCacheNone) {
        addCacheFields(c);
    }
}

/// Before (`retried` false) and after the retry decision on an upstream head: a 304 to a
/// revalidation, or a 5xx that stale-if-error replaces. True when the request was answered.
bool cacheOnStatus(ClientConn* c, bool retried) {
    if (!retried) {
        if (c->cache_revalidating && c->st->resp.status == 304) {
            cacheRefreshed(c);
            return true;
        }
        return false;
    }
    if (c->cache_sie && c->st->resp.status >= 500) {
        releaseUpstream(c, false);
        if (!cacheServeStaleOnError(c)) {
            failRequest(c, 502, "upstream error");
        }
        return true;
    }
    return false;
}

/// stale-if-error: the upstream failed (or answered 5xx) and the stale entry may answer.
bool cacheServeStaleOnError(ClientConn* c) {
    c->cache_sie = false;
    c->cache_may_store = false;
    if (c->cache_storing) {
        mc::store().abort(c->cache_ins);
        c->cache_storing = false;
    }
    const mc::Judgement j =
        mc::judge(c->cache_found.meta, shm::monotonicMicros(), mc::CacheControl{});
    return serveCached(c, c->cache_found, j.age, kCacheStale, c->cache_client_nm);
}

/// At an upstream head of a cacheable miss: starts storing the response if it may be stored.
void cacheBeginStore(ClientConn* c) {
    c->cache_may_store = false;
    mc::Store& st = mc::store();
    const mc::RoutePolicy& pol = c->st->rq.route->cache;
    if (c->st->resp.framing == BodyFraming::UntilClose) {
        return;  // its end is a close, which cannot be told from a failure
    }
    mc::CacheControl rcc;
    rcc.no_store = c->cache_req_no_store;
    const int64_t now_wall = static_cast<int64_t>(::time(nullptr));
    mc::StorePlan plan =
        mc::planStore(pol, c->cache_req_auth, rcc, c->st->resp, c->cache_request_time, now_wall);
    if (!plan.store) {
        if (c->cache_lock != 0) {  // nothing to wait for: the waiters go upstream now
            st.unlock(c->cache_lock_hash, c->cache_lock);
            c->cache_lock = 0;
        }
        return;
    }
    size_t hn =
        mc::serializeHead(c->st->resp, g_cache_head, sizeof g_cache_head, pol.strip_set_cookie);
    if (hn == 0) {
        return;
    }
    // Vary: the response is stored under its variant's key, found through a marker stored
    // under the plain key (the Vary field names), whose stamp is part of the variant's key.
    char names[1024];
    size_t nn = mc::varyNames(c->st->resp.headers, names, sizeof names);
    std::string_view store_key = c->cache_key;
    char vk[mc::kMaxKey];
    const uint64_t now_us = shm::monotonicMicros();
    if (nn != 0) {
        std::string_view nm(names, nn);
        mc::Found f;
        uint64_t stamp = 0;
        char have[1024];
        if (st.find(c->cache_key, st.hashKey(c->cache_key), f) &&
            (f.meta.flags & mc::kVaryMarker) != 0 && f.meta.head_len == nn &&
            st.read(f, f.meta.key_len, have, nn) && std::string_view(have, nn) == nm) {
            stamp = f.meta.stored_us;
        } else {
            mc::Insert m;
            st.begin(m, mc::writer(), c->cache_key.size() + nn);
            mc::EntryMeta mm;
            mm.flags = mc::kVaryMarker;
            mm.stored_us = now_us;
            mm.key_len = static_cast<uint32_t>(c->cache_key.size());
            mm.head_len = static_cast<uint32_t>(nn);
            mm.lifetime = 0x7fffffff;
            if (!st.append(m, c->cache_key.data(), c->cache_key.size()) ||
                !st.append(m, names, nn) || !st.commit(m, st.hashKey(c->cache_key), mm)) {
                return;
            }
            stamp = now_us;
        }
        std::string_view raw(c->cbuf.readPtr(), c->cbuf.size());
        size_t vn = mc::variantKey(c->cache_key, stamp, nm, raw, vk, sizeof vk);
        if (vn == 0) {
            return;
        }
        store_key = std::string_view(vk, vn);
    }
    mc::EntryMeta& m = c->cache_meta;
    m = plan.meta;
    m.stored_us = now_us;
    m.key_len = static_cast<uint32_t>(store_key.size());
    m.head_len = static_cast<uint32_t>(hn);
    if (nn != 0) {
        m.flags |= mc::kVaried;
    }
    st.begin(c->cache_ins, mc::writer(), store_key.size() + hn + pol.max_body);
    if (!st.append(c->cache_ins, store_key.data(), store_key.size()) ||
        !st.append(c->cache_ins, g_cache_head, hn)) {
        return;
    }
    c->cache_hash = st.hashKey(store_key);
    c->cache_storing = true;
}

/// Stores body bytes of the response being stored; a failure (too large, no space) ends it.
void cacheTee(ClientConn* c, const char* p, size_t n) {
    if (n != 0 && !mc::store().append(c->cache_ins, p, n)) {
        c->cache_storing = false;  // append() gave the blocks back
        if (c->cache_lock != 0) {  // nothing will be stored: the waiters go upstream now
            mc::store().unlock(c->cache_lock_hash, c->cache_lock);
            c->cache_lock = 0;
        }
    }
}

/// The response was received whole: publishes it.
void cacheCommit(ClientConn* c) {
    c->cache_storing = false;
    mc::Store& st = mc::store();
    mc::EntryMeta& m = c->cache_meta;
    const uint64_t body = c->cache_ins.total - m.key_len - m.head_len;
    if (body > UINT32_MAX ||
        (c->resp_framing == BodyFraming::ContentLength && body != c->st->resp.content_length)) {
        st.abort(c->cache_ins);
        return;
    }
    m.body_len = static_cast<uint32_t>(body);
    st.commit(c->cache_ins, c->cache_hash, m);
    if (c->cache_lock != 0) {
        st.unlock(c->cache_lock_hash, c->cache_lock);
        c->cache_lock = 0;
    }
}

/// Ends any cache work of the request (abandoned, or done).
void cacheRelease(ClientConn* c) {
    c->cache_active = false;
    if (c->cache_ins.active) {
        mc::store().abort(c->cache_ins);
    }
    if (c->cache_lock != 0) {
        mc::store().unlock(c->cache_lock_hash, c->cache_lock);
        c->cache_lock = 0;
    }
    c->cache_waiting = false;
    c->cache_revalidating = false;
    c->cache_sie = false;
    c->cache_client_nm = -1;
    c->cache_storing = false;
    c->cache_serving = false;
    c->cache_may_store = false;
    c->cache_invalidate = false;
    c->cache_status = kCacheNone;
    c->cache_key = {};
    c->cache_host = {};
    ctx().body_pool.release(c->cbuf);
}

/// A successful unsafe request invalidates its URI and its Location / Content-Location on the
/// same host (RFC 9111 §4.4).
void cacheInvalidateAfter(ClientConn* c) {
    c->cache_invalidate = false;
    if (c->st->resp.status < 200 || c->st->resp.status >= 400) {
        return;
    }
    cacheInvalidate(c->cache_key);
    const mc::RoutePolicy& pol = c->st->rq.route->cache;
    for (const auto& h : c->st->resp.headers) {
        if (!core::http::equalsIgnoreCase(h.name, "location") &&
            !core::http::equalsIgnoreCase(h.name, "content-location")) {
            continue;
        }
        std::string_view v = h.value;
        std::string_view host = c->cache_host;
        for (std::string_view scheme : {"http://", "https://"}) {
            if (v.size() > scheme.size() &&
                core::http::equalsIgnoreCase(v.substr(0, scheme.size()), scheme)) {
                v.remove_prefix(scheme.size());
                size_t slash = v.find('/');
                host = v.substr(0, slash);
                if (!core::http::equalsIgnoreCase(host, c->cache_host)) {
                    v = {};  // another host: not ours to touch
                } else {
                    v = slash == std::string_view::npos ? std::string_view("/") : v.substr(slash);
                }
            }
        }
        if (v.empty() || v[0] != '/') {
            continue;
        }
        size_t q = v.find('?');
        std::string_view path = v.substr(0, q);
        std::string_view query = q == std::string_view::npos ? std::string_view() : v.substr(q + 1);
        char key[mc::kMaxKey];
        size_t kn = mc::buildKey(host, path, query, pol.with_query, key, sizeof key);
        if (kn != 0) {
            cacheInvalidate(std::string_view(key, kn));
        }
    }
}

/// The built-in Proxy step: rewrite, the upstream request head, the first attempt.

}  // namespace photon::worker::conn
