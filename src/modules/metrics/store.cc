// SPDX-License-Identifier: Apache-2.0
#include "modules/metrics/store.h"

#include <time.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace photon::mod::metrics {

namespace {

Store g_store;
uint32_t g_shard = 0;
int g_slot = -1;

constexpr auto kRelaxed = std::memory_order_relaxed;  // independent sums (see layout.h)

uint64_t keyOf(std::string_view kind, std::string_view a, std::string_view b) {
    std::string k;
    k.reserve(kind.size() + a.size() + b.size() + 1);
    k.append(kind).append(a).append(1, '\0').append(b);
    uint64_t h = XXH3_64bits(k.data(), k.size());
    return h == 0 ? 1 : h;
}

const uint64_t kNoRouteKey = keyOf("n:", "", "");

uint32_t nextPow2(size_t n) {
    uint32_t p = 64;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

void zeroRow(void* p, size_t bytes) {
    auto* w = static_cast<shm::Atomic64*>(p);
    for (size_t i = 0; i < bytes / 8; ++i) {
        w[i].store(0, kRelaxed);
    }
}

/// Assigns rows in one name table from row `first` on: a name keeps the row it has; a new name
/// takes a free row, else (second pass) a row whose name is no longer wanted; `zero` clears a
/// row before it is (re)named. False when rows run out.
bool assign(shm::Atomic64* names, uint32_t rows, const std::vector<uint64_t>& keys,
            std::vector<uint32_t>& out, uint32_t first, void (*zero)(const Store&, uint32_t),
            const Store& s) {
    out.assign(keys.size(), UINT32_MAX);
    std::unordered_map<uint64_t, uint32_t> named;  // name -> its row
    for (uint32_t r = first; r < rows; ++r) {
        uint64_t n = names[r].load(kRelaxed);
        if (n != 0) {
            named.emplace(n, r);
        }
    }
    std::unordered_set<uint64_t> wanted(keys.begin(), keys.end());
    std::vector<bool> taken(rows, false);
    for (size_t i = 0; i < keys.size(); ++i) {
        auto it = named.find(keys[i]);
        if (it != named.end() && !taken[it->second]) {
            out[i] = it->second;
            taken[it->second] = true;
        }
    }
    for (bool reclaim_unused : {false, true}) {
        uint32_t r = first;
        for (size_t i = 0; i < keys.size(); ++i) {
            if (out[i] != UINT32_MAX) {
                continue;
            }
            for (; r < rows; ++r) {
                uint64_t n = names[r].load(kRelaxed);
                if (!taken[r] && (n == 0 || (reclaim_unused && wanted.count(n) == 0))) {
                    break;
                }
            }
            if (r == rows) {
                break;
            }
            // A free row, or one whose name is gone: zeroed, then named (a straggler of the
            // previous generation may still add to it while it drains; that is all it loses).
            zero(s, r);
            names[r].store(keys[i], std::memory_order_release);
            out[i] = r;
            taken[r] = true;
        }
    }
    return std::find(out.begin(), out.end(), UINT32_MAX) == out.end();
}

}  // namespace

Store Store::bind(void* body, MetricsGeometry g) {
    Store s;
    auto* base = static_cast<char*>(body);
    s.geo = g;
    s.head = reinterpret_cast<MetricsHeadShm*>(base);
    s.route_names = reinterpret_cast<shm::Atomic64*>(base + g.routeNamesOff());
    s.upstream_names = reinterpret_cast<shm::Atomic64*>(base + g.upstreamNamesOff());
    s.route_cells = reinterpret_cast<RouteCellShm*>(base + g.routeCellsOff());
    s.upstream_cells = reinterpret_cast<UpstreamCellShm*>(base + g.upstreamCellsOff());
    return s;
}

MetricsGeometry geometryFor(size_t routes, size_t upstreams) {
    MetricsGeometry g;
    g.route_rows = nextPow2(2 * (routes + 1));
    g.upstream_rows = nextPow2(2 * upstreams);
    return g;
}

uint64_t routeKey(std::string_view route_id) { return keyOf("r:", route_id, ""); }
uint64_t upstreamKey(std::string_view backend, std::string_view address) {
    return keyOf("u:", backend, address);
}

core::Result<void> assignRows(const Store& s, const std::vector<uint64_t>& route_keys,
                              const std::vector<uint64_t>& upstream_keys,
                              std::vector<uint32_t>& route_rows,
                              std::vector<uint32_t>& upstream_rows) {
    if (s.route_names[kNoRouteRow].load(kRelaxed) != kNoRouteKey) {
        for (uint32_t k = 0; k < kShards; ++k) {
            zeroRow(&s.route(kNoRouteRow, k), sizeof(RouteCellShm));
        }
        s.route_names[kNoRouteRow].store(kNoRouteKey, std::memory_order_release);
    }
    auto zero_route = [](const Store& st, uint32_t r) {
        for (uint32_t k = 0; k < kShards; ++k) {
            zeroRow(&st.route(r, k), sizeof(RouteCellShm));
        }
    };
    auto zero_upstream = [](const Store& st, uint32_t r) {
        for (uint32_t k = 0; k < kShards; ++k) {
            zeroRow(&st.upstream(r, k), sizeof(UpstreamCellShm));
        }
    };
    if (!assign(s.route_names, s.geo.route_rows, route_keys, route_rows, 1, zero_route, s) ||
        !assign(s.upstream_names, s.geo.upstream_rows, upstream_keys, upstream_rows, 0,
                zero_upstream, s)) {
        return core::fail("the metrics segment has too few rows for this configuration");
    }
    return {};
}

// ----- counting -----

void setCounting(const Store& s, int slot) {
    g_store = s;
    g_slot = slot;
    g_shard = slot >= 0 ? static_cast<uint32_t>(slot) % kShards : 0;
}

const Store& store() { return g_store; }

void requestStarted() {
    if (g_store.head != nullptr && g_slot >= 0) {
        auto& w = g_store.head->inflight[g_slot];
        w.store(w.load(kRelaxed) + 1, kRelaxed);  // single writer: this process's slot
    }
}

void requestEnded() {
    if (g_store.head != nullptr && g_slot >= 0) {
        auto& w = g_store.head->inflight[g_slot];
        uint64_t v = w.load(kRelaxed);
        w.store(v != 0 ? v - 1 : 0, kRelaxed);
    }
}

void reclaimSlot(uint32_t slot) {
    if (g_store.head != nullptr && slot < shm::kMaxSlots) {
        g_store.head->inflight[slot].store(0, kRelaxed);  // its requests died with it
    }
}

namespace {

inline uint32_t bucketOf(uint64_t us) {
    uint32_t i = 0;
    while (i < std::size(kDurationBoundsUs) && us > kDurationBoundsUs[i]) {
        ++i;
    }
    return i;
}

}  // namespace

void requestFinished(const RequestSample& r) {
    if (g_store.head == nullptr) {
        return;
    }
    if (r.row >= g_store.geo.route_rows || r.method >= kMethods) {
        return;
    }
    RouteCellShm& c = g_store.route(r.row, g_shard);
    int cls = r.status / 100 - 1;
    if (cls < 0 || cls >= static_cast<int>(kClasses)) {
        cls = 3;  // no response completed: counted as nginx's 499 (client closed request)
    }
    c.requests[r.method][cls].fetchAdd(1, kRelaxed);
    c.duration.buckets[bucketOf(r.duration_us)].fetchAdd(1, kRelaxed);
    c.duration.sum_us.fetchAdd(r.duration_us, kRelaxed);
    if (r.upstream_us >= 0) {
        uint64_t u = static_cast<uint64_t>(r.upstream_us);
        c.upstream_duration.buckets[bucketOf(u)].fetchAdd(1, kRelaxed);
        c.upstream_duration.sum_us.fetchAdd(u, kRelaxed);
    }
    if (r.bytes_in != 0) {
        c.bytes_in.fetchAdd(r.bytes_in, kRelaxed);
    }
    if (r.bytes_out != 0) {
        c.bytes_out.fetchAdd(r.bytes_out, kRelaxed);
    }
    if (r.gateway_error) {
        c.gateway_errors.fetchAdd(1, kRelaxed);
    }
    if (r.refused_by != 0 && r.refused_by <= kRefusalModules && r.status >= 400) {
        size_t k = std::size(kRefusalStatuses);
        for (size_t i = 0; i < std::size(kRefusalStatuses); ++i) {
            if (kRefusalStatuses[i] == r.status) {
                k = i;
            }
        }
        c.refusals[r.refused_by - 1][k].fetchAdd(1, kRelaxed);
    }
    if (r.auth_reason != 0 && r.auth_reason <= kAuthReasonCount) {
        c.auth_refusals[r.auth_reason - 1].fetchAdd(1, kRelaxed);
    }
}

void routeEvent(uint32_t row, RouteEvent e) {
    if (g_store.head != nullptr && row < g_store.geo.route_rows) {
        g_store.route(row, g_shard).events[static_cast<size_t>(e)].fetchAdd(1, kRelaxed);
    }
}

void upstreamAttempt(uint32_t row) {
    if (g_store.head != nullptr && row < g_store.geo.upstream_rows) {
        g_store.upstream(row, g_shard).requests.fetchAdd(1, kRelaxed);
    }
}

void upstreamError(uint32_t row, UpstreamError kind) {
    if (g_store.head != nullptr && row < g_store.geo.upstream_rows) {
        g_store.upstream(row, g_shard).errors[static_cast<size_t>(kind)].fetchAdd(1, kRelaxed);
    }
}

// ----- master -----

namespace {
uint64_t unixMs() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}
}  // namespace

void masterStarted(uint64_t generation, uint32_t workers) {
    if (g_store.head == nullptr) {
        return;
    }
    auto& m = g_store.head->master;
    if (m.started_unix_ms.load(kRelaxed) == 0) {
        m.started_unix_ms.store(unixMs(), kRelaxed);
    }
    m.generation.store(generation, kRelaxed);
    m.workers_configured.store(workers, kRelaxed);
    m.draining.store(0, kRelaxed);
}

void masterReload(bool ok, uint64_t generation, uint32_t workers) {
    if (g_store.head == nullptr) {
        return;
    }
    auto& m = g_store.head->master;
    (ok ? m.reloads_ok : m.reloads_failed).fetchAdd(1, kRelaxed);
    m.last_reload_result.store(ok ? 1 : 2, kRelaxed);
    m.last_reload_unix_ms.store(unixMs(), kRelaxed);
    if (ok) {
        m.generation.store(generation, kRelaxed);
        m.workers_configured.store(workers, kRelaxed);
    }
}

void masterWorkerRestart() {
    if (g_store.head != nullptr) {
        g_store.head->master.worker_restarts.fetchAdd(1, kRelaxed);
    }
}

void masterDraining() {
    if (g_store.head != nullptr) {
        g_store.head->master.draining.store(1, kRelaxed);
    }
}

}  // namespace photon::mod::metrics
