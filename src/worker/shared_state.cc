// SPDX-License-Identifier: Apache-2.0
// The worker's calls into shared memory: connection gauges, balancing, passive health, /health.
#include "worker/shared_state.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "modules/balancer/balancer.h"
#include "modules/balancer/rng.h"
#include "modules/cache/cache.h"
#include "modules/metrics/store.h"
#include "shm/slot_table.h"
#include "worker/context.h"
#include "worker/local_reply.h"
#include "worker/proxy.h"
#include "worker/server_counters.h"
#include "worker/worker.h"

namespace photon::worker {

namespace {

SharedSegments g_seg;
int g_slot = -1;
std::unique_ptr<mod::balancer::Balancer> g_balancer;

uint64_t monoUs() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

void setSharedSegments(const SharedSegments& s) { g_seg = s; }

bool sharedUpstreamAddress(uint32_t record, sockaddr_storage& out, socklen_t& len) {
    return g_seg.addrs.load(record, out, len);
}
uint64_t sharedUpstreamAddressStamp(uint32_t record) { return g_seg.addrs.stamp(record); }
const SharedSegments& sharedSegments() { return g_seg; }

core::Result<void> attachWorkerSharedState(int slot) {
    if (g_seg.upstreams == nullptr || g_seg.server == nullptr || ctx().proxy == nullptr ||
        ctx().proxy->plan == nullptr) {
        return core::fail("shared memory segments are not mapped");
    }
    g_slot = slot;
    mod::cache::setWriter(static_cast<uint32_t>(slot));
    // The master's view and our shard; nothing is counted when no one can read it (no
    // Prometheus endpoint and no metrics listener for the dashboard).
    const core::Config* cfg = ctx().init != nullptr ? ctx().init->config : nullptr;
    bool counting = cfg == nullptr || cfg->metrics.prometheus || cfg->metrics.metrics_addr;
    mod::metrics::setCounting(counting ? mod::metrics::store() : mod::metrics::Store{}, slot);
    const auto& plan = *ctx().proxy->plan;
    g_seg.upstreams->pinSlot(static_cast<uint32_t>(slot), plan.generation());
    g_balancer = std::make_unique<mod::balancer::Balancer>(
        plan, *g_seg.upstreams, static_cast<uint32_t>(slot),
        mod::balancer::Rng::seedFor(static_cast<uint64_t>(getpid()), static_cast<uint64_t>(slot),
                                    monoUs()));
    return {};
}

uint64_t sharedConnectionCount() {
    uint64_t sum = 0;
    for (const auto& c : g_seg.server->connections) {
        sum += c.load(std::memory_order_relaxed);
    }
    return sum;
}

bool sharedTryAddConnection(uint32_t max) {
    // A gauge check, not a reservation: two workers accepting at the same instant may each see
    // room for one more, so the limit can be exceeded by at most the number of workers.
    if (max != 0 && sharedConnectionCount() >= max) {
        return false;
    }
    g_seg.server->connections[g_slot].fetchAdd(1, std::memory_order_relaxed);
    return true;
}

WsSlotCounters& sharedWsCounters() {
    static WsSlotCounters unmapped;  // tests without shared memory
    return g_seg.server != nullptr && g_slot >= 0 ? g_seg.server->ws[g_slot] : unmapped;
}

void sharedRemoveConnection() {
    g_seg.server->connections[g_slot].fetchSub(1, std::memory_order_relaxed);
}

namespace {

/// Logs when this worker sees a backend enter or leave panic routing (once per change).
std::vector<uint8_t> g_panic_seen;
void notePanic(size_t backend, bool panic) {
    if (!panic && (backend >= g_panic_seen.size() || g_panic_seen[backend] == 0)) {
        return;  // the common case: no panic, none before
    }
    if (g_panic_seen.size() <= backend) {
        g_panic_seen.resize(backend + 1, 0);
    }
    panic = panic || g_balancer->panicking(static_cast<uint32_t>(backend));
    if (static_cast<bool>(g_panic_seen[backend]) == panic) {
        return;
    }
    g_panic_seen[backend] = panic;
    const std::string& name = ctx().proxy->backends[backend].name;
    if (panic) {
        LOG_WARN(
            "backend %s: fewer healthy upstreams than its panic_threshold; spreading load "
            "over all of them, healthy or not",
            name.c_str());
    } else {
        LOG_NOTICE("backend %s: enough healthy upstreams again; panic routing ends", name.c_str());
    }
}

}  // namespace

bool sharedRetryAllowed(size_t backend) {
    return !g_balancer || g_balancer->retryAllowed(static_cast<uint32_t>(backend));
}
const char* sharedOverLimit(size_t backend) {
    return g_balancer ? g_balancer->overLimit(static_cast<uint32_t>(backend)) : nullptr;
}
void sharedRetrying(size_t upstream, int delta) {
    if (g_balancer) {
        g_balancer->gauge(mod::balancer::SlotGauge::Retrying, static_cast<uint32_t>(upstream),
                          delta);
    }
}
void sharedConnecting(size_t upstream, int delta) {
    if (g_balancer) {
        g_balancer->gauge(mod::balancer::SlotGauge::Connecting, static_cast<uint32_t>(upstream),
                          delta);
    }
}

bool sharedBackendPanic(size_t backend) {
    return g_balancer && g_balancer->belowPanicThreshold(static_cast<uint32_t>(backend), monoUs());
}

int sharedPickAndAcquire(const Proxy&, size_t backend, const PickInput& in) {
    mod::balancer::ExcludeList ex;
    for (size_t i = 0; i < in.exclude_count; ++i) {
        ex.add(in.exclude[i]);
    }
    mod::balancer::PickContext pc;
    pc.now_us = monoUs();
    if (in.client_addr_len) {
        pc.client_addr = std::span<const uint8_t>(in.client_addr, in.client_addr_len);
    }
    if (in.hash_key_len) {
        pc.hash_key = std::string_view(in.hash_key, in.hash_key_len);
    }
    pc.exclude = in.exclude_count ? &ex : nullptr;
    auto pick = g_balancer->pick(static_cast<uint32_t>(backend), pc);
    notePanic(backend, pick.status == mod::balancer::PickStatus::Panic);
    if (!pick.ok()) {
        return -1;
    }
    g_balancer->acquire(pick.upstream);
    return static_cast<int>(pick.upstream);
}

void sharedRelease(const Proxy&, size_t upstream) {
    g_balancer->release(static_cast<uint32_t>(upstream));
}

void sharedReport(const Proxy& proxy, size_t upstream, bool ok) {
    if (ok) {
        g_balancer->reportSuccess(static_cast<uint32_t>(upstream));
        return;
    }
    if (g_balancer->reportFailure(static_cast<uint32_t>(upstream), monoUs())) {
        LOG_WARN("upstream %s ejected after repeated failures",
                 proxy.upstreams[upstream].address.c_str());
    }
}

UpstreamView sharedUpstreamView(const Proxy&, size_t upstream) {
    UpstreamView v;
    if (!g_balancer) {
        return v;
    }
    auto u = static_cast<uint32_t>(upstream);
    auto s = g_balancer->snapshot(u, monoUs());
    v.state = s.drained ? "drained" : s.ejected ? "ejected" : s.healthy ? "healthy" : "unhealthy";
    v.usable = s.healthy && !s.ejected && !s.drained && g_balancer->plan().upstream(u).weight > 0;
    v.inflight = s.inflight;
    v.ejections = s.ejections_total;
    v.last_error = mod::balancer::healthErrorName(s.last_error);
    return v;
}

bool sharedHealthJson(const Proxy& proxy, std::string& out) {
    uint64_t now = monoUs();
    bool all_ok = true;
    out += '{';
    const auto& plan = g_balancer->plan();
    for (uint32_t b = 0; b < plan.backendCount(); ++b) {
        auto bh = g_balancer->backendHealth(b, now);
        uint32_t usable = 0;  // healthy, not ejected, not drained: what a pick can use now
        if (b) {
            out += ',';
        }
        out += '"';
        appendJsonEscaped(out, proxy.backends[b].name);
        char buf[320];
        snprintf(buf, sizeof buf,
                 "\":{\"healthy\":%u,\"ejected\":%u,\"total\":%u,\"panic\":%s,\"upstreams\":[",
                 bh.healthy, bh.ejected, bh.total,
                 g_balancer->belowPanicThreshold(b, now) ? "true" : "false");
        out += buf;
        const auto& bp = plan.backend(b);
        for (uint32_t k = 0; k < bp.count; ++k) {
            uint32_t u = bp.first + k;
            auto s = g_balancer->snapshot(u, now);
            if (s.healthy && !s.ejected && !s.drained && plan.upstream(u).weight > 0) {
                ++usable;
            }
            const char* state = s.drained   ? "drained"
                                : s.ejected ? "ejected"
                                : s.healthy ? "healthy"
                                            : "unhealthy";
            if (k) {
                out += ',';
            }
            out += "{\"address\":\"";
            appendJsonEscaped(out, proxy.upstreams[u].address);
            long long ago =
                s.last_check_us ? static_cast<long long>((now - s.last_check_us) / 1000) : -1;
            long long left =
                s.ejected ? static_cast<long long>((s.ejected_until_us - now) / 1000) : 0;
            snprintf(buf, sizeof buf,
                     "\",\"state\":\"%s\",\"inflight\":%llu,\"requests\":%llu,\"failures\":%llu,"
                     "\"ejections\":%llu,\"ejected_ms_left\":%lld,"
                     "\"last_check_ms_ago\":%lld,\"last_error\":\"",
                     state, static_cast<unsigned long long>(s.inflight),
                     static_cast<unsigned long long>(s.requests_total),
                     static_cast<unsigned long long>(s.failures_total),
                     static_cast<unsigned long long>(s.ejections_total), left, ago);
            out += buf;
            out += mod::balancer::healthErrorName(s.last_error);
            out += "\"}";
        }
        const auto& bpl = plan.backend(b);
        snprintf(buf, sizeof buf,
                 "],\"usable\":%u,\"inflight\":%llu,\"retrying\":%llu,\"connecting\":%llu,"
                 "\"max_requests\":%u,\"max_pending\":%u}",
                 usable, static_cast<unsigned long long>(g_balancer->backendInflight(b)),
                 static_cast<unsigned long long>(
                     g_balancer->backendGauge(mod::balancer::SlotGauge::Retrying, b)),
                 static_cast<unsigned long long>(
                     g_balancer->backendGauge(mod::balancer::SlotGauge::Connecting, b)),
                 bpl.max_requests, bpl.max_pending);
        out += buf;
        if (usable == 0) {
            all_ok = false;
        }
    }
    out += '}';
    return all_ok;
}

}  // namespace photon::worker
