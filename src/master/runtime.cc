// SPDX-License-Identifier: Apache-2.0
// Master-side glue: listeners, proxy model, shared state and process slots.
#include "master/runtime.h"

#include <openssl/rand.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "core/config.h"
#include "core/log.h"
#include "modules/balancer/balancer_layout.h"
#include "modules/balancer/config.h"
#include "modules/balancer/upstream_table.h"
#include "modules/cache/cache.h"
#include "modules/metrics/store.h"
#include "modules/redis/client.h"
#include "modules/registry.h"
#include "modules/tls/client_tls.h"
#include "modules/tls/server_tls.h"
#include "shm/segment.h"
#include "shm/seqlock.h"
#include "shm/slot_table.h"
#include "worker/addr_table.h"
#include "worker/proxy.h"
#include "worker/server_counters.h"
#include "worker/shared_state.h"

namespace photon::master {

namespace {

/// Everything the master maps; kept for the process lifetime (workers inherit the mappings).
struct SharedState {
    std::optional<shm::MappedSegment> slots_seg, upstreams_seg, server_seg, addrs_seg, metrics_seg,
        cache_seg;
    std::optional<shm::SlotTable> slots;
    std::optional<mod::balancer::UpstreamTable> upstreams;
    worker::ServerCountersShm* server = nullptr;
    std::string instance;
};
SharedState g_state;
std::unique_ptr<worker::Proxy> g_proxy;
// Replaced by reloads; freed once no retiring process is left (releaseOldProxies), as the
// master's old configurations are.
std::vector<std::unique_ptr<worker::Proxy>> g_old_proxies;

uint64_t monoUs() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

void zeroServerSlot(void*, uint32_t slot) {
    // The dead process's connections died with it.
    g_state.server->connections[slot].store(0);
    g_state.server->ws[slot].active.store(0);  // its tunnels too; counters keep their totals
    mod::metrics::reclaimSlot(slot);           // and its requests in flight
}

/// Maps (or re-maps, larger) the metrics segment so it has rows for `p`, and gives every route
/// and upstream of `p` its row. A segment that is big enough is kept, so counters continue.
core::Result<void> mapMetrics(worker::Proxy& p) {
    namespace mx = mod::metrics;
    mx::MetricsGeometry need = mx::geometryFor(p.routes.size(), p.upstreams.size());
    const mx::Store& cur = mx::store();
    if (!cur.mapped() || cur.geo.route_rows < need.route_rows / 2 ||
        cur.geo.upstream_rows < need.upstream_rows / 2) {
        // Fresh (or too small: a new, larger segment; workers still on the old one keep it).
        auto seg = shm::MappedSegment::create(shm::segmentName(g_state.instance, "metrics"),
                                              need.bytes(), mx::kLayoutVersion, need.fingerprint());
        if (!seg.ok()) {
            return seg.error();
        }
        mx::Store fresh = mx::Store::bind(seg.value().body(), need);
        if (cur.mapped()) {
            LOG_NOTICE("metrics: the configuration outgrew the metrics segment; counters restart");
            // The master's own figures (start time, reloads, restarts) carry over.
            const auto* from = reinterpret_cast<const shm::Atomic64*>(&cur.head->master);
            auto* to = reinterpret_cast<shm::Atomic64*>(&fresh.head->master);
            for (size_t i = 0; i < sizeof(mx::MasterStatsShm) / 8; ++i) {
                to[i].store(from[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
            }
        }
        // In-flight counts of slots nobody holds are left-overs of processes that are gone
        // (a previous master that was killed): they died with them.
        for (uint32_t k = 0; k < shm::kMaxSlots; ++k) {
            if (g_state.slots->info(k).state == shm::SlotState::Free) {
                fresh.head->inflight[k].store(0, std::memory_order_relaxed);
            }
        }
        g_state.metrics_seg.emplace(std::move(seg.value()));
        mx::setCounting(fresh, -1);
    }
    std::vector<uint64_t> rkeys, ukeys;
    rkeys.reserve(p.routes.size());
    for (const auto& r : p.routes) {
        rkeys.push_back(mx::routeKey(r.id));
    }
    // A repeated address in one backend (allowed, with a warning) gets its own row.
    ukeys.resize(p.upstreams.size());
    for (const auto& b : p.backends) {
        for (size_t k = 0; k < b.upstreams.size(); ++k) {
            size_t u = b.upstreams[k];
            int seen = 0;
            for (size_t j = 0; j < k; ++j) {
                seen += p.upstreams[b.upstreams[j]].address == p.upstreams[u].address;
            }
            std::string addr = p.upstreams[u].address;
            if (seen != 0) {
                addr += "#" + std::to_string(seen + 1);
            }
            ukeys[u] = mx::upstreamKey(b.name, addr);
        }
    }
    std::vector<uint32_t> rrows, urows;
    if (auto r = mx::assignRows(mx::store(), rkeys, ukeys, rrows, urows); !r.ok()) {
        return r;
    }
    for (size_t i = 0; i < p.routes.size(); ++i) {
        p.routes[i].mx_row = rrows[i];
    }
    for (size_t i = 0; i < p.upstreams.size(); ++i) {
        p.upstreams[i].mx_row = urows[i];
    }
    return {};
}

core::Result<void> mapSegments(const core::Config& c, const std::string& pid_path) {
    g_state.instance = shm::instanceName(pid_path);
    auto name = [&](const char* seg) { return shm::segmentName(g_state.instance, seg); };
    auto slots =
        shm::MappedSegment::create(name("slots"), shm::SlotTable::kBodyBytes,
                                   shm::SlotTable::kLayoutVersion, shm::SlotTable::kFingerprint);
    if (!slots.ok()) {
        return slots.error();
    }
    g_state.slots_seg.emplace(std::move(slots.value()));
    auto st = shm::SlotTable::bind(*g_state.slots_seg);
    if (!st.ok()) {
        return st.error();
    }
    g_state.slots.emplace(std::move(st.value()));

    size_t n = 0;
    for (const auto& b : c.load_balancing.backends) {
        n += b.upstreams.size();
    }
    // capacityFor() leaves room for growth on reload (the next power of two above twice n).
    uint32_t cap = mod::balancer::UpstreamTable::capacityFor(n);
    uint32_t bcap =
        mod::balancer::UpstreamTable::backendCapacityFor(c.load_balancing.backends.size());
    auto ups = shm::MappedSegment::create(name("upstreams"),
                                          mod::balancer::UpstreamTable::bodyBytes(cap, bcap),
                                          mod::balancer::kUpstreamLayoutVersion,
                                          mod::balancer::UpstreamTable::fingerprint(cap, bcap));
    if (!ups.ok()) {
        return ups.error();
    }
    g_state.upstreams_seg.emplace(std::move(ups.value()));
    auto ut = mod::balancer::UpstreamTable::bind(*g_state.upstreams_seg, cap, bcap);
    if (!ut.ok()) {
        return ut.error();
    }
    g_state.upstreams.emplace(std::move(ut.value()));

    auto srv = shm::MappedSegment::create(name("server"), sizeof(worker::ServerCountersShm),
                                          worker::kServerCountersLayoutVersion, shm::kMaxSlots);
    if (!srv.ok()) {
        return srv.error();
    }
    g_state.server_seg.emplace(std::move(srv.value()));
    g_state.server = reinterpret_cast<worker::ServerCountersShm*>(g_state.server_seg->body());

    auto addrs = shm::MappedSegment::create(name("addrs"), worker::AddrTable::bodyBytes(cap),
                                            worker::kAddrTableLayoutVersion, cap);
    if (!addrs.ok()) {
        return addrs.error();
    }
    g_state.addrs_seg.emplace(std::move(addrs.value()));

    // Repair what a previous master that died may have left behind (every hook first, so the
    // orphans' gauges are zeroed too).
    g_state.slots->addHook(g_state.upstreams->slotHook());
    shm::SlotHook server_hook;
    server_hook.name = "server_counters";
    server_hook.on_reclaim = zeroServerSlot;
    g_state.slots->addHook(server_hook);
    shm::SlotHook cache_hook;
    cache_hook.name = "cache";
    cache_hook.on_reclaim = [](void*, uint32_t slot) { mod::cache::store().reclaimSlot(slot); };
    g_state.slots->addHook(cache_hook);
    g_state.slots->reclaimOrphans();
    g_state.upstreams->reclaimInactive(*g_state.slots);
    worker::SharedSegments segs;
    segs.slots = &*g_state.slots;
    segs.upstreams = &*g_state.upstreams;
    segs.server = g_state.server;
    segs.addrs =
        worker::AddrTable(reinterpret_cast<worker::AddrEntryShm*>(g_state.addrs_seg->body()), cap);
    worker::setSharedSegments(segs);
    return {};
}

/// Publishes the addresses a freshly built proxy resolved, so every process connects to them.
void publishAddresses(const worker::Proxy& p) {
    auto& table = const_cast<worker::AddrTable&>(worker::sharedSegments().addrs);
    for (const auto& u : p.upstreams) {
        if (u.shm_index >= 0) {
            table.store(static_cast<uint32_t>(u.shm_index), u.sa, u.resolved ? u.salen : 0);
        }
    }
}

}  // namespace

void runtimeResolveTick() {
    if (!g_proxy) {
        return;
    }
    auto& table = const_cast<worker::AddrTable&>(worker::sharedSegments().addrs);
    for (auto& u : g_proxy->upstreams) {
        if (!u.is_name || u.shm_index < 0) {
            continue;
        }
        sockaddr_storage sa{};
        socklen_t len = 0;
        if (!worker::resolveHostPort(u.host, u.port, true, sa, len)) {
            LOG_DEBUG("upstream %s still does not resolve; keeping its last address",
                      u.address.c_str());
            continue;  // a lookup failure never removes an address that worked
        }
        if (table.store(static_cast<uint32_t>(u.shm_index), sa, len)) {
            LOG_NOTICE("upstream %s resolves to a new address", u.address.c_str());
        }
        if (!u.resolved) {
            // First successful lookup of a name that did not resolve at load: it started out of
            // rotation. With active checks its probes bring it in once they pass; without any,
            // nothing else would, so it is usable from now on.
            auto* ups = worker::sharedSegments().upstreams;
            if (u.active_checks || u.tls || ups == nullptr) {
                u.resolved = true;
            } else if (ups->setHealth(static_cast<uint32_t>(u.shm_index),
                                      shm::SeqLock::kMasterWriter, true, monoUs(),
                                      mod::balancer::HealthError::None)) {
                u.resolved = true;  // else: another writer was mid-update; next tick retries
                LOG_NOTICE("upstream %s now resolves; in rotation (no active checks)",
                           u.address.c_str());
            }
        }
    }
}

const std::string& runtimePidFile(const core::Config& c) { return c.server.pid_file; }

std::string runtimeErrorLog(const core::Config& c) {
    return c.server.error_log == "stderr" ? std::string() : c.server.error_log;
}

int runtimeWorkerCount(const core::Config& c) {
    return static_cast<int>(
        std::min<uint32_t>(std::max<uint32_t>(c.server.worker_processes, 1), 32));
}

int64_t runtimeShutdownTimeoutUs(const core::Config& c) {
    return std::chrono::duration_cast<std::chrono::microseconds>(c.server.shutdown_timeout).count();
}

void applyRuntimeLogSettings(const core::Config& c, bool cli_overrides) {
    if (!cli_overrides && c.server.log_level) {
        core::setLogLevel(*c.server.log_level);
    }
}

core::Result<std::vector<Listener>> openRuntimeListeners(const core::Config& c) {
    return reopenRuntimeListeners(c, {});
}

core::Result<std::vector<Listener>> reopenRuntimeListeners(const core::Config& c,
                                                           const std::vector<Listener>& current) {
    struct Want {
        std::string addr;
        ListenerKind kind;
    };
    std::vector<Want> want;
    want.push_back({c.server.http_addr.toString(), ListenerKind::Main});
    if (c.server.https_addr) {
        want.push_back({c.server.https_addr->toString(), ListenerKind::Https});
    }
    if (c.metrics.metrics_addr) {
        want.push_back({c.metrics.metrics_addr->toString(), ListenerKind::Metrics});
    }
    // The accept queue of the client listeners holds up to max_connections (as HAProxy's
    // backlog follows maxconn; the kernel caps it at net.core.somaxconn): a burst of new
    // connections waits there while the workers take them, instead of having its SYNs dropped
    // (a second's wait for the client each) once nginx's 511 are queued.
    const int client_backlog =
        static_cast<int>(std::clamp<uint64_t>(c.server.max_connections, 511, 65535));
    std::vector<Listener> out;
    for (const auto& w : want) {
        const int backlog = w.kind == ListenerKind::Metrics ? 511 : client_backlog;
        bool reused = false;
        for (const auto& l : current) {
            if (l.addr == w.addr && l.fd >= 0) {
                ::listen(l.fd, backlog);  // a reload may change max_connections
                Listener k = l;
                k.kind = w.kind;
                out.push_back(k);
                reused = true;
                break;
            }
        }
        if (reused) {
            continue;
        }
        auto r = openListener(w.addr, w.kind, backlog);
        if (!r.ok()) {
            // Close only what this call opened.
            for (auto& l : out) {
                bool shared = false;
                for (const auto& k : current) {
                    shared = shared || k.fd == l.fd;
                }
                if (!shared) {
                    ::close(l.fd);
                }
            }
            return r.error();
        }
        out.push_back(r.value());
    }
    return out;
}

void closeListenersNotIn(std::vector<Listener>& old, const std::vector<Listener>& now) {
    for (auto& l : old) {
        bool kept = false;
        for (const auto& k : now) {
            kept = kept || k.fd == l.fd;
        }
        if (!kept && l.fd >= 0) {
            ::close(l.fd);
        }
        l.fd = -1;
    }
}

namespace {

/// The response cache's segment: created when a route caches, kept across reloads while its
/// geometry is unchanged (so are its entries), replaced when it changes, gone when no route
/// caches any more.
core::Result<void> mapCache(const core::Config& c) {
    namespace mc = mod::cache;
    mc::Store& st = mc::store();
    if (!mc::wanted(c)) {
        if (g_state.cache_seg) {
            std::string n = g_state.cache_seg->name();
            st.bind(nullptr, 0, 0);
            g_state.cache_seg.reset();
            shm::MappedSegment::remove(n);
        }
        return {};
    }
    const uint32_t entries = mc::Store::entriesFor(c.cache.max_entries);
    const uint32_t blocks = mc::Store::blocksFor(c.cache.max_memory);
    if (g_state.cache_seg && st.mapped() && st.entryCount() == entries &&
        st.blockCount() == blocks) {
        return {};
    }
    const uint64_t fingerprint =
        (uint64_t{entries} << 32) ^ blocks ^ (uint64_t{mc::kBlockSize} << 20);
    auto seg = shm::MappedSegment::create(shm::segmentName(g_state.instance, "cache"),
                                          mc::Store::bodyBytes(entries, blocks),
                                          mc::kCacheLayoutVersion, fingerprint);
    if (!seg.ok()) {
        return core::fail("cache: ", seg.error().msg);
    }
    g_state.cache_seg.emplace(std::move(seg.value()));
    st.bind(g_state.cache_seg->body(), entries, blocks);
    if (!g_state.cache_seg->reused()) {
        uint64_t seed = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1) {
            seed = monoUs() * 0x9e3779b97f4a7c15ull;
        }
        st.format(seed);
        LOG_INFO("cache: %u entries, %llu MiB of body store in shared memory", entries,
                 static_cast<unsigned long long>(uint64_t{blocks} * mc::kBlockSize >> 20));
    }
    return {};
}

/// The modules' own segments (rate-limit tables ...), for `c`.
core::Result<void> mapModuleSegments(const core::Config& c) {
    if (auto r = mapCache(c); !r.ok()) {
        return core::fail("shared memory: ", r.error().msg);
    }
    for (worker::Module* m : mod::modules()) {
        if (auto r = m->mapShared(c, g_state.instance); !r.ok()) {
            return core::fail("shared memory: ", r.error().msg);
        }
    }
    return {};
}

}  // namespace

core::Result<void> setupSharedState(const core::Config& c, const std::string& pid_path) {
    if (auto r = mapSegments(c, pid_path); !r.ok()) {
        return core::fail("shared memory: ", r.error().msg);
    }
    if (auto r = mapModuleSegments(c); !r.ok()) {
        return r;
    }
    auto p = worker::Proxy::build(c, &*g_state.upstreams);
    if (!p.ok()) {
        return p.error();
    }
    if (auto r = mapMetrics(*p.value()); !r.ok()) {
        return core::fail("shared memory: ", r.error().msg);
    }
    // The workers forked next inherit it.
    if (auto r = mod::redis::installTlsContext(c.redis); !r.ok()) {
        return core::fail("redis.tls: ", r.error().msg);
    }
    g_proxy = std::move(p.value());
    publishAddresses(*g_proxy);
    return {};
}

core::Result<void> reloadSharedState(const core::Config& c) {
    if (auto r = mapModuleSegments(c); !r.ok()) {
        return r;
    }
    auto p = worker::Proxy::build(c, &*g_state.upstreams);
    if (!p.ok()) {
        return p.error();
    }
    if (auto r = mapMetrics(*p.value()); !r.ok()) {
        return core::fail("shared memory: ", r.error().msg);
    }
    if (auto r = mod::redis::installTlsContext(c.redis); !r.ok()) {
        return core::fail("redis.tls: ", r.error().msg);
    }
    g_old_proxies.push_back(std::move(g_proxy));
    g_proxy = std::move(p.value());
    publishAddresses(*g_proxy);
    return {};
}

core::Result<std::unique_ptr<mod::tls::ServerTls>> buildServerTls(
    const core::Config& c, std::vector<std::string>& warnings) {
    // The upstreams' client contexts are made by Proxy::build; loading them here too makes a
    // bad CA file or client key an error of `photon -t` and of `photon -s reload`.
    for (const auto& b : c.load_balancing.backends) {
        for (const auto& u : b.upstreams) {
            if (!u.tls) {
                continue;
            }
            auto ctx =
                mod::tls::makeClientContext({u.tls_verify, u.ca_file, u.tls_cert, u.tls_key, true});
            if (!ctx.ok()) {
                return core::fail("load_balancing.backends.", b.name, " upstream ",
                                  u.address.toString(), ": ", ctx.error().msg);
            }
            SSL_CTX_free(ctx.value());
        }
    }
    // Likewise the Redis client context (made again by setupSharedState / reloadSharedState).
    if (auto ctx = mod::redis::makeTlsContext(c.redis); !ctx.ok()) {
        return core::fail("redis.tls: ", ctx.error().msg);
    } else if (ctx.value() != nullptr) {
        SSL_CTX_free(ctx.value());
    }
    if (!c.server.https_addr) {
        return std::unique_ptr<mod::tls::ServerTls>();
    }
    auto t = mod::tls::ServerTls::build(c.server.tls, warnings, mod::tls::current());
    if (!t.ok()) {
        return core::fail("server.tls: ", t.error().msg);
    }
    return std::move(t.value());
}

void installServerTls(std::unique_ptr<mod::tls::ServerTls> t) {
    mod::tls::setCurrent(std::move(t));
}

void releaseOldProxies() { g_old_proxies.clear(); }

void teardownSharedState() {
    g_old_proxies.clear();
    g_proxy.reset();
    for (worker::Module* m : mod::modules()) {
        m->removeShared();
    }
    mod::metrics::setCounting(mod::metrics::Store{}, -1);
    mod::cache::store().bind(nullptr, 0, 0);
    for (auto* seg : {&g_state.slots_seg, &g_state.upstreams_seg, &g_state.server_seg,
                      &g_state.addrs_seg, &g_state.metrics_seg, &g_state.cache_seg}) {
        if (*seg) {
            std::string n = (*seg)->name();
            seg->reset();
            shm::MappedSegment::remove(n);
        }
    }
}

worker::Proxy* runtimeProxy() { return g_proxy.get(); }

void runtimeModuleTick() {
    mod::tls::tickCurrent(static_cast<int64_t>(::time(nullptr)));
    const uint64_t now = monoUs();
    for (worker::Module* m : mod::modules()) {
        m->masterTick(now);
    }
}

int acquireShmSlot(bool helper) {
    uint32_t gen = g_proxy && g_proxy->plan ? g_proxy->plan->generation() : 0;
    auto r = g_state.slots->acquire(helper ? shm::SlotState::Helper : shm::SlotState::Worker, gen,
                                    monoUs());
    if (!r.ok()) {
        LOG_ERROR("%s", r.error().msg.c_str());
        return -1;
    }
    return static_cast<int>(r.value());
}

void registerWorkerPid(int slot, pid_t pid) {
    g_state.slots->setPid(static_cast<uint32_t>(slot), pid);
}

void releaseShmSlot(int slot) {
    if (slot < 0) {
        return;
    }
    g_state.slots->reclaim(static_cast<uint32_t>(slot));
    if (g_proxy && g_proxy->plan) {
        g_state.upstreams->collectGarbage(g_proxy->plan->generation());
    }
}

}  // namespace photon::master
