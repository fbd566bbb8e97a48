// SPDX-License-Identifier: Apache-2.0
#include "worker/metrics_export.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <time.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "config.h"
#include "core/config.h"
#include "modules/cache/store.h"
#include "modules/cache/cache.h"
#include "modules/metrics/store.h"
#include "modules/ratelimit/limiter.h"
#include "modules/registry.h"
#include "shm/slot_table.h"
#include "worker/context.h"
#include "worker/local_reply.h"
#include "worker/proxy.h"
#include "worker/server_counters.h"
#include "worker/shared_state.h"
#include "worker/worker.h"

namespace photon::worker {

namespace {

namespace mx = mod::metrics;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
constexpr auto kRelaxed = std::memory_order_relaxed;  // a scrape sums independent counters

/// A histogram summed over shards (non-cumulative buckets).
struct Hist {
    uint64_t buckets[mx::kDurationBuckets] = {};
    uint64_t sum_us = 0;
    void add(const mx::HistShm& h) {
        for (size_t i = 0; i < mx::kDurationBuckets; ++i) {
            buckets[i] += h.buckets[i].load(kRelaxed);
        }
        sum_us += h.sum_us.load(kRelaxed);
    }
    void add(const Hist& h) {
        for (size_t i = 0; i < mx::kDurationBuckets; ++i) {
            buckets[i] += h.buckets[i];
        }
        sum_us += h.sum_us;
    }
    uint64_t count() const {
        uint64_t n = 0;
        for (uint64_t b : buckets) {
            n += b;
        }
        return n;
    }
};

/// One route row summed over shards.
struct RouteSum {
    uint64_t requests[mx::kMethods][mx::kClasses] = {};
    Hist duration, upstream;
    uint64_t bytes_in = 0, bytes_out = 0, gateway_errors = 0;
    uint64_t refusals[mx::kRefusalModules][mx::kRefusalKinds] = {};
    uint64_t auth[mx::kAuthReasonCount] = {};
    uint64_t events[3] = {};

    uint64_t total() const {
        uint64_t n = 0;
        for (const auto& m : requests) {
            for (uint64_t v : m) {
                n += v;
            }
        }
        return n;
    }
    uint64_t byClass(size_t c) const {
        uint64_t n = 0;
        for (const auto& m : requests) {
            n += m[c];
        }
        return n;
    }
};

RouteSum sumRoute(const mx::Store& s, uint32_t row) {
    RouteSum r;
    if (!s.mapped() || row >= s.geo.route_rows) {
        return r;
    }
    for (uint32_t k = 0; k < mx::kShards; ++k) {
        const mx::RouteCellShm& c = s.route(row, k);
        for (size_t m = 0; m < mx::kMethods; ++m) {
            for (size_t cl = 0; cl < mx::kClasses; ++cl) {
                r.requests[m][cl] += c.requests[m][cl].load(kRelaxed);
            }
        }
        r.duration.add(c.duration);
        r.upstream.add(c.upstream_duration);
        r.bytes_in += c.bytes_in.load(kRelaxed);
        r.bytes_out += c.bytes_out.load(kRelaxed);
        r.gateway_errors += c.gateway_errors.load(kRelaxed);
        for (size_t m = 0; m < mx::kRefusalModules; ++m) {
            for (size_t i = 0; i < mx::kRefusalKinds; ++i) {
                r.refusals[m][i] += c.refusals[m][i].load(kRelaxed);
            }
        }
        for (size_t i = 0; i < mx::kAuthReasonCount; ++i) {
            r.auth[i] += c.auth_refusals[i].load(kRelaxed);
        }
        for (size_t i = 0; i < 3; ++i) {
            r.events[i] += c.events[i].load(kRelaxed);
        }
    }
    return r;
}

struct UpstreamSum {
    uint64_t requests = 0;
    uint64_t errors[static_cast<size_t>(mx::UpstreamError::Count)] = {};
};

UpstreamSum sumUpstream(const mx::Store& s, uint32_t row) {
    UpstreamSum u;
    if (!s.mapped() || row >= s.geo.upstream_rows) {
        return u;
    }
    for (uint32_t k = 0; k < mx::kShards; ++k) {
        const mx::UpstreamCellShm& c = s.upstream(row, k);
        u.requests += c.requests.load(kRelaxed);
        for (size_t i = 0; i < std::size(u.errors); ++i) {
            u.errors[i] += c.errors[i].load(kRelaxed);
        }
    }
    return u;
}

/// Everything a scrape or a dashboard snapshot reports, read once.
struct Snapshot {
    std::vector<RouteSum> routes;  // per Proxy::routes
    RouteSum none;                 // requests no route took
    std::vector<UpstreamSum> upstreams;  // per Proxy::upstreams
    std::vector<UpstreamView> views;
    uint64_t inflight = 0, connections = 0;
    uint64_t ws_upgrades[static_cast<size_t>(WsUpgradeResult::Count)] = {};
    uint64_t ws_active = 0, ws_messages[2] = {};
    uint64_t ws_buckets[kWsDurationBuckets] = {};
    uint64_t ws_count = 0, ws_sum_us = 0;
    std::vector<std::pair<std::string, uint64_t>> limits;  // rate-limit refusals by limit
    std::vector<uint64_t> limits_full;  // new keys that found no slot in the limit's table
    mx::MasterStatsShm master{};
    bool mapped = false;
};

/// Client connections with neither a request in progress nor a WebSocket tunnel.
uint64_t idleOf(const Snapshot& s);

Snapshot takeSnapshot() {
    Snapshot s;
    const Proxy& p = *ctx().proxy;
    const mx::Store& st = mx::store();
    s.mapped = st.mapped();
    s.routes.reserve(p.routes.size());
    for (const auto& r : p.routes) {
        s.routes.push_back(sumRoute(st, r.mx_row));
    }
    s.none = sumRoute(st, mx::kNoRouteRow);
    s.upstreams.reserve(p.upstreams.size());
    s.views.reserve(p.upstreams.size());
    for (size_t u = 0; u < p.upstreams.size(); ++u) {
        s.upstreams.push_back(sumUpstream(st, p.upstreams[u].mx_row));
        s.views.push_back(sharedUpstreamView(p, u));
    }
    if (st.mapped()) {
        for (const auto& v : st.head->inflight) {
            s.inflight += v.load(kRelaxed);
        }
        const auto& m = st.head->master;
        auto copy = [](const shm::Atomic64& from, shm::Atomic64& to) {
            to.store(from.load(kRelaxed), kRelaxed);
        };
        copy(m.started_unix_ms, s.master.started_unix_ms);
        copy(m.generation, s.master.generation);
        copy(m.reloads_ok, s.master.reloads_ok);
        copy(m.reloads_failed, s.master.reloads_failed);
        copy(m.last_reload_result, s.master.last_reload_result);
        copy(m.last_reload_unix_ms, s.master.last_reload_unix_ms);
        copy(m.worker_restarts, s.master.worker_restarts);
        copy(m.workers_configured, s.master.workers_configured);
        copy(m.draining, s.master.draining);
    }
    if (const ServerCountersShm* srv = sharedSegments().server) {
        for (size_t k = 0; k < shm::kMaxSlots; ++k) {
            s.connections += srv->connections[k].load(kRelaxed);
            const WsSlotCounters& w = srv->ws[k];
            for (size_t i = 0; i < std::size(s.ws_upgrades); ++i) {
                s.ws_upgrades[i] += w.upgrades[i].load(kRelaxed);
            }
            s.ws_active += w.active.load(kRelaxed);
            s.ws_messages[0] += w.messages[0].load(kRelaxed);
            s.ws_messages[1] += w.messages[1].load(kRelaxed);
            for (size_t i = 0; i < kWsDurationBuckets; ++i) {
                s.ws_buckets[i] += w.duration_buckets[i].load(kRelaxed);
            }
            s.ws_count += w.duration_count.load(kRelaxed);
            s.ws_sum_us += w.duration_sum_us.load(kRelaxed);
        }
    }
    if (ctx().init != nullptr && ctx().init->config != nullptr) {
        const auto& mw = ctx().init->config->middleware;
        auto add = [&](const std::string& name, std::string_view instance) {
            const auto* l = mod::ratelimit::findSharedLimit(instance);
            bool ok = l != nullptr && l->stats != nullptr;
            s.limits.emplace_back(name, ok ? l->stats->limited.load(kRelaxed) : 0);
            s.limits_full.push_back(ok ? l->stats->table_full.load(kRelaxed) +
                                             l->stats->contended.load(kRelaxed)
                                       : 0);
        };
        if (mw.rate_limiting) {
            add("default", "");
        }
        for (const auto& [name, conf] : mw.rate_limit_named) {
            add(name, name);
        }
    }
    return s;
}

/// Every route row added up, the requests no route took included.
RouteSum totals(const Snapshot& s) {
    RouteSum all = s.none;
    for (const auto& r : s.routes) {
        for (size_t m = 0; m < mx::kMethods; ++m) {
            for (size_t c = 0; c < mx::kClasses; ++c) {
                all.requests[m][c] += r.requests[m][c];
            }
        }
        all.duration.add(r.duration);
        all.upstream.add(r.upstream);
        all.bytes_in += r.bytes_in;
        all.bytes_out += r.bytes_out;
        all.gateway_errors += r.gateway_errors;
        for (size_t i = 0; i < mx::kAuthReasonCount; ++i) {
            all.auth[i] += r.auth[i];
        }
        for (size_t i = 0; i < std::size(r.events); ++i) {
            all.events[i] += r.events[i];
        }
    }
    return all;
}

uint64_t idleOf(const Snapshot& s) {
    uint64_t busy = s.inflight + s.ws_active;
    return s.connections > busy ? s.connections - busy : 0;
}

// ----- Prometheus families -----

ClientMetric::Label label(std::string name, std::string value) {
    return ClientMetric::Label{std::move(name), std::move(value)};
}

MetricFamily family(const char* name, const char* help, MetricType type) {
    MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    return f;
}

void addValue(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
        m.counter.value = v;
    } else {
        m.gauge.value = v;
    }
    f.metric.push_back(std::move(m));
}

void addHist(MetricFamily& f, const uint64_t* buckets, size_t n, const double* bounds,
             double sum, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    uint64_t cum = 0;
    for (size_t i = 0; i < n; ++i) {
        cum += buckets[i];
        ClientMetric::Bucket b;
        b.cumulative_count = cum;
        b.upper_bound = i + 1 < n ? bounds[i] : std::numeric_limits<double>::infinity();
        m.histogram.bucket.push_back(b);
    }
    m.histogram.sample_count = cum;
    m.histogram.sample_sum = sum;
    f.metric.push_back(std::move(m));
}

void addHist(MetricFamily& f, const Hist& h, std::vector<ClientMetric::Label> labels = {}) {
    addHist(f, h.buckets, mx::kDurationBuckets, mx::kDurationBounds,
            static_cast<double>(h.sum_us) / 1e6, std::move(labels));
}

const char* kClassNames[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

/// The `upstream` label of each upstream: its address, with "#2", "#3" ... appended to a
/// repeated address in the same backend (allowed with a warning), so no two series collide.
std::vector<std::string> upstreamLabels(const Proxy& p) {
    std::vector<std::string> out(p.upstreams.size());
    for (const auto& b : p.backends) {
        for (size_t k = 0; k < b.upstreams.size(); ++k) {
            size_t u = b.upstreams[k];
            int seen = 1;
            for (size_t j = 0; j < k; ++j) {
                seen += p.upstreams[b.upstreams[j]].address == p.upstreams[u].address;
            }
            out[u] = p.upstreams[u].address;
            if (seen > 1) {
                out[u] += "#" + std::to_string(seen);
            }
        }
    }
    return out;
}

}  // namespace

std::vector<MetricFamily> collectMetrics(bool detailed) {
    const Proxy& p = *ctx().proxy;
    Snapshot s = takeSnapshot();
    std::vector<MetricFamily> out;

    const RouteSum all = totals(s);

    // The original's families (no labels, except the status class).
    auto f = family("gateway_requests_total",
                    "Requests answered (every listener but the metrics one)", MetricType::Counter);
    addValue(f, static_cast<double>(all.total()));
    out.push_back(std::move(f));
    f = family("gateway_requests_in_flight", "Requests in progress (a scrape counts itself)", MetricType::Gauge);
    addValue(f, static_cast<double>(s.inflight));
    out.push_back(std::move(f));
    f = family("gateway_request_duration_seconds",
               "Time from the request's first byte to the response's last",
               MetricType::Histogram);
    addHist(f, all.duration);
    out.push_back(std::move(f));
    f = family("gateway_response_status_total", "Responses by status class", MetricType::Counter);
    for (size_t c = 0; c < mx::kClasses; ++c) {
        addValue(f, static_cast<double>(all.byClass(c)), {label("class", kClassNames[c])});
    }
    out.push_back(std::move(f));

    UpstreamSum up_all;
    for (const auto& u : s.upstreams) {
        up_all.requests += u.requests;
        for (size_t i = 0; i < std::size(u.errors); ++i) {
            up_all.errors[i] += u.errors[i];
        }
    }
    uint64_t up_errors = 0;
    for (uint64_t e : up_all.errors) {
        up_errors += e;
    }
    f = family("gateway_upstream_requests_total", "Attempts sent to upstreams",
               MetricType::Counter);
    addValue(f, static_cast<double>(up_all.requests));
    out.push_back(std::move(f));
    f = family("gateway_upstream_errors_total",
               "Failed upstream attempts (connect, timeout, reset, invalid response, 5xx)",
               MetricType::Counter);
    addValue(f, static_cast<double>(up_errors));
    out.push_back(std::move(f));
    f = family("gateway_upstream_duration_seconds",
               "Time from the first upstream attempt to the response's last byte",
               MetricType::Histogram);
    addHist(f, all.upstream);
    out.push_back(std::move(f));

    uint64_t healthy = 0;
    for (const auto& v : s.views) {
        healthy += v.usable ? 1 : 0;
    }
    f = family("gateway_healthy_upstreams", "Upstreams a request may be sent to now",
               MetricType::Gauge);
    addValue(f, static_cast<double>(healthy));
    out.push_back(std::move(f));
    f = family("gateway_unhealthy_upstreams", "Upstreams out of rotation (unhealthy, ejected, drained)",
               MetricType::Gauge);
    addValue(f, static_cast<double>(s.views.size() - healthy));
    out.push_back(std::move(f));
    f = family("gateway_active_connections", "Open client connections", MetricType::Gauge);
    addValue(f, static_cast<double>(s.connections));
    out.push_back(std::move(f));
    f = family("gateway_idle_connections", "Open client connections with no request in progress and no WebSocket tunnel",
               MetricType::Gauge);
    addValue(f, static_cast<double>(idleOf(s)));
    out.push_back(std::move(f));
    f = family("gateway_errors_total",
               "Requests the gateway answered with a 5xx of its own (upstream failures, timeouts)",
               MetricType::Counter);
    addValue(f, static_cast<double>(all.gateway_errors));
    out.push_back(std::move(f));
    f = family("gateway_bytes_received_total", "Request body bytes forwarded upstream (and WebSocket bytes from clients)", MetricType::Counter);
    addValue(f, static_cast<double>(all.bytes_in));
    out.push_back(std::move(f));
    f = family("gateway_bytes_sent_total", "Bytes sent to clients", MetricType::Counter);
    addValue(f, static_cast<double>(all.bytes_out));
    out.push_back(std::move(f));

    uint64_t ws_all = 0;
    for (uint64_t v : s.ws_upgrades) {
        ws_all += v;
    }
    f = family("gateway_websocket_upgrades_total", "WebSocket upgrade requests",
               MetricType::Counter);
    addValue(f, static_cast<double>(ws_all));
    out.push_back(std::move(f));
    f = family("gateway_websocket_upgrade_results_total", "WebSocket upgrade requests by outcome",
               MetricType::Counter);
    const char* ws_results[] = {"upgraded", "refused", "upstream_refused", "upstream_invalid"};
    for (size_t i = 0; i < std::size(s.ws_upgrades); ++i) {
        addValue(f, static_cast<double>(s.ws_upgrades[i]), {label("result", ws_results[i])});
    }
    out.push_back(std::move(f));
    f = family("gateway_websocket_connections_active", "Open WebSocket tunnels", MetricType::Gauge);
    addValue(f, static_cast<double>(s.ws_active));
    out.push_back(std::move(f));
    f = family("gateway_websocket_messages_total", "WebSocket messages relayed, both directions",
               MetricType::Counter);
    addValue(f, static_cast<double>(s.ws_messages[0] + s.ws_messages[1]));
    out.push_back(std::move(f));
    f = family("gateway_websocket_connection_duration_seconds", "Lifetime of WebSocket tunnels",
               MetricType::Histogram);
    addHist(f, s.ws_buckets, kWsDurationBuckets, kWsDurationBounds,
            static_cast<double>(s.ws_sum_us) / 1e6);
    out.push_back(std::move(f));

    if (const mod::cache::Store& cs = mod::cache::store(); cs.mapped()) {
        const mod::cache::CacheStats t = cs.totals();
        struct {
            const char* name;
            const char* help;
            uint64_t v;
            MetricType type;
        } const rows[] = {
            {"gateway_cache_hits_total", "Requests answered from the cache (HIT and STALE)",
             t.hits + t.stale, MetricType::Counter},
            {"gateway_cache_misses_total",
             "Cacheable requests that went upstream (MISS and EXPIRED)", t.misses,
             MetricType::Counter},
            {"gateway_cache_bypass_total",
             "Requests on caching routes the cache did not take (a query string, a body, a key "
             "too long)",
             t.bypass, MetricType::Counter},
            {"gateway_cache_entries_total", "Responses stored in the cache since it was created",
             t.stores, MetricType::Counter},
            {"gateway_cache_entries", "Responses in the cache now", t.entries, MetricType::Gauge},
            {"gateway_cache_memory_bytes", "Bytes of the shared body store in use", t.memory_bytes,
             MetricType::Gauge},
            {"gateway_cache_memory_limit_bytes", "Size of the shared body store (cache.max_memory)",
             t.capacity_bytes, MetricType::Gauge},
            {"gateway_cache_evictions_total",
             "Entries evicted to make room before they expired (CLOCK)", t.evictions,
             MetricType::Counter},
            {"gateway_cache_expired_total",
             "Expired entries found by a request or removed to make room", t.expired,
             MetricType::Counter},
        };
        for (const auto& r : rows) {
            f = family(r.name, r.help, r.type);
            addValue(f, static_cast<double>(r.v));
            out.push_back(std::move(f));
        }
    }

    f = family("gateway_rate_limit_rejections_total",
               "Requests refused (429) by each rate limit for exceeding it", MetricType::Counter);
    auto ff = family("gateway_rate_limit_table_full_total",
                     "New keys that found no free slot in the limit's table (on_full decided)",
                     MetricType::Counter);
    for (size_t i = 0; i < s.limits.size(); ++i) {
        addValue(f, static_cast<double>(s.limits[i].second), {label("limit", s.limits[i].first)});
        addValue(ff, static_cast<double>(s.limits_full[i]), {label("limit", s.limits[i].first)});
    }
    if (!f.metric.empty()) {
        out.push_back(std::move(f));
        out.push_back(std::move(ff));
    }

    f = family("gateway_retries_total", "Retry attempts (a request sent again to another upstream)",
               MetricType::Counter);
    addValue(f, static_cast<double>(all.events[0]));
    out.push_back(std::move(f));
    f = family("gateway_retries_denied_total",
               "Retries not made because the backend's retry budget was spent",
               MetricType::Counter);
    addValue(f, static_cast<double>(all.events[1]));
    out.push_back(std::move(f));
    f = family("gateway_circuit_breaker_rejections_total",
               "Requests answered 503 at once because their backend was at max_requests or "
               "max_pending",
               MetricType::Counter);
    addValue(f, static_cast<double>(all.events[2]));
    out.push_back(std::move(f));

    bool has_auth = false;
    for (const auto& r : p.routes) {
        for (const auto& h : r.chain.handlers) {
            has_auth = has_auth || mod::modules()[h.module]->name() == "auth";
        }
    }
    if (has_auth) {
        f = family("gateway_auth_rejections_total", "Requests the auth middleware refused, by reason",
                   MetricType::Counter);
        for (size_t i = 0; i < mx::kAuthReasonCount; ++i) {
            addValue(f, static_cast<double>(all.auth[i]), {label("reason", mx::kAuthReasons[i])});
        }
        out.push_back(std::move(f));
    }

    // Per backend and upstream (bounded by the configuration).
    f = family("gateway_backend_healthy_upstreams", "Usable upstreams per backend",
               MetricType::Gauge);
    auto fu = family("gateway_upstream_up", "1 when the upstream is in rotation, else 0",
                     MetricType::Gauge);
    auto fs = family("gateway_upstream_state", "The upstream's state (1 for the current one)",
                     MetricType::Gauge);
    const std::vector<std::string> ulabel = upstreamLabels(p);
    for (const auto& b : p.backends) {
        uint64_t n = 0;
        for (size_t u : b.upstreams) {
            const UpstreamView& v = s.views[u];
            n += v.usable ? 1 : 0;
            addValue(fu, v.usable ? 1 : 0,
                     {label("backend", b.name), label("upstream", ulabel[u])});
            for (const char* st : {"healthy", "unhealthy", "ejected", "drained"}) {
                addValue(fs, std::string_view(v.state) == st ? 1 : 0,
                         {label("backend", b.name), label("upstream", ulabel[u]),
                          label("state", st)});
            }
        }
        addValue(f, static_cast<double>(n), {label("backend", b.name)});
    }
    out.push_back(std::move(f));
    out.push_back(std::move(fu));
    out.push_back(std::move(fs));
    f = family("gateway_backend_panic",
               "1 while the backend has fewer healthy upstreams than its panic_threshold "
               "(load spread over all of them)",
               MetricType::Gauge);
    fu = family("gateway_upstream_ejections_total", "Passive ejections of each upstream",
                MetricType::Counter);
    for (size_t b = 0; b < p.backends.size(); ++b) {
        addValue(f, sharedBackendPanic(b) ? 1 : 0, {label("backend", p.backends[b].name)});
        for (size_t u : p.backends[b].upstreams) {
            addValue(fu, static_cast<double>(s.views[u].ejections),
                     {label("backend", p.backends[b].name), label("upstream", ulabel[u])});
        }
    }
    out.push_back(std::move(f));
    out.push_back(std::move(fu));

    // The master's.
    f = family("gateway_config_generation", "Generation of the configuration in use",
               MetricType::Gauge);
    addValue(f, static_cast<double>(s.master.generation.load(kRelaxed)));
    out.push_back(std::move(f));
    f = family("gateway_reloads_total", "Configuration reloads by result", MetricType::Counter);
    addValue(f, static_cast<double>(s.master.reloads_ok.load(kRelaxed)), {label("result", "ok")});
    addValue(f, static_cast<double>(s.master.reloads_failed.load(kRelaxed)),
             {label("result", "failed")});
    out.push_back(std::move(f));
    f = family("gateway_config_last_reload_successful",
               "1 unless the last reload failed (the previous configuration is still in use)",
               MetricType::Gauge);
    addValue(f, s.master.last_reload_result.load(kRelaxed) == 2 ? 0 : 1);
    out.push_back(std::move(f));
    f = family("gateway_worker_restarts_total",
               "Workers that died unexpectedly and were started again", MetricType::Counter);
    addValue(f, static_cast<double>(s.master.worker_restarts.load(kRelaxed)));
    out.push_back(std::move(f));
    f = family("gateway_workers", "Worker processes configured", MetricType::Gauge);
    addValue(f, static_cast<double>(s.master.workers_configured.load(kRelaxed)));
    out.push_back(std::move(f));
    f = family("gateway_start_time_seconds", "When the gateway started (Unix time)",
               MetricType::Gauge);
    addValue(f, static_cast<double>(s.master.started_unix_ms.load(kRelaxed)) / 1000.0);
    out.push_back(std::move(f));
    f = family("gateway_build_info", "The running build (value 1)", MetricType::Gauge);
    addValue(f, 1, {label("version", PHOTON_VERSION)});
    out.push_back(std::move(f));

    if (!detailed) {
        return out;
    }
    // Per route (bounded by the configuration; requests no route took are in the totals only).
    auto fr = family("gateway_route_requests_total", "Requests by route, method and status class",
                     MetricType::Counter);
    auto fd = family("gateway_route_request_duration_seconds", "Request duration by route",
                     MetricType::Histogram);
    auto fud = family("gateway_route_upstream_duration_seconds", "Upstream duration by route",
                      MetricType::Histogram);
    auto fe = family("gateway_route_errors_total", "Gateway 5xx replies by route",
                     MetricType::Counter);
    auto fbi = family("gateway_route_bytes_received_total", "Request body bytes forwarded upstream, by route",
                      MetricType::Counter);
    auto fbo = family("gateway_route_bytes_sent_total", "Bytes sent to clients by route",
                      MetricType::Counter);
    auto frf = family("gateway_route_refusals_total",
                      "Requests a route's middleware answered with an error, by module and status",
                      MetricType::Counter);
    const auto& mods = mod::modules();
    for (size_t i = 0; i < p.routes.size(); ++i) {
        const RouteSum& r = s.routes[i];
        const std::string& id = p.routes[i].id;
        for (size_t m = 0; m < mx::kMethods; ++m) {
            for (size_t c = 0; c < mx::kClasses; ++c) {
                if (r.requests[m][c] != 0) {
                    addValue(fr, static_cast<double>(r.requests[m][c]),
                             {label("route", id), label("method", mx::kMethodNames[m]),
                              label("class", kClassNames[c])});
                }
            }
        }
        addHist(fd, r.duration, {label("route", id)});
        addHist(fud, r.upstream, {label("route", id)});
        addValue(fe, static_cast<double>(r.gateway_errors), {label("route", id)});
        addValue(fbi, static_cast<double>(r.bytes_in), {label("route", id)});
        addValue(fbo, static_cast<double>(r.bytes_out), {label("route", id)});
        for (size_t m = 0; m < mx::kRefusalModules && m < mods.size(); ++m) {
            for (size_t k = 0; k < mx::kRefusalKinds; ++k) {
                if (r.refusals[m][k] == 0) {
                    continue;
                }
                std::string status = k < std::size(mx::kRefusalStatuses)
                                         ? std::to_string(mx::kRefusalStatuses[k])
                                         : std::string("other");
                addValue(frf, static_cast<double>(r.refusals[m][k]),
                         {label("route", id), label("middleware", std::string(mods[m]->name())),
                          label("status", status)});
            }
        }
    }
    for (auto* x : {&fr, &fd, &fud, &fe, &fbi, &fbo, &frf}) {
        out.push_back(std::move(*x));
    }
    auto fur = family("gateway_backend_upstream_requests_total", "Attempts sent, per upstream",
                      MetricType::Counter);
    auto fue = family("gateway_backend_upstream_errors_total", "Failed attempts per upstream, by kind",
                      MetricType::Counter);
    for (const auto& b : p.backends) {
        for (size_t u : b.upstreams) {
            const UpstreamSum& us = s.upstreams[u];
            const std::string& addr = ulabel[u];
            addValue(fur, static_cast<double>(us.requests),
                     {label("backend", b.name), label("upstream", addr)});
            for (size_t k = 0; k < std::size(us.errors); ++k) {
                addValue(fue, static_cast<double>(us.errors[k]),
                         {label("backend", b.name), label("upstream", addr),
                          label("kind", mx::kUpstreamErrorNames[k])});
            }
        }
    }
    out.push_back(std::move(fur));
    out.push_back(std::move(fue));
    return out;
}

namespace {

void appendEscapedLabel(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

void appendNumber(std::string& out, double v) {
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[40];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        snprintf(buf, sizeof buf, "%.17g", v);
    }
    out += buf;
}

void appendSample(std::string& out, const std::string& name, const char* suffix,
                  const std::vector<ClientMetric::Label>& labels, const char* extra_name,
                  const std::string* extra_value, double v) {
    out += name;
    out += suffix;
    if (!labels.empty() || extra_name != nullptr) {
        out += '{';
        bool first = true;
        for (const auto& l : labels) {
            if (!first) {
                out += ',';
            }
            first = false;
            out += l.name;
            out += "=\"";
            appendEscapedLabel(out, l.value);
            out += '"';
        }
        if (extra_name != nullptr) {
            if (!first) {
                out += ',';
            }
            out += extra_name;
            out += "=\"";
            out += *extra_value;
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    appendNumber(out, v);
    out += '\n';
}

/// OpenMetrics 1.0.0 text (prometheus-cpp writes only the 0.0.4 format): counter families are
/// named without `_total` in their metadata, `le` values are canonical floats, `# EOF` ends it.
std::string openMetricsText(const std::vector<MetricFamily>& fams) {
    std::string out;
    out.reserve(fams.size() * 256);
    for (const auto& f : fams) {
        std::string base = f.name;
        bool counter = f.type == MetricType::Counter;
        if (counter && base.size() > 6 && base.compare(base.size() - 6, 6, "_total") == 0) {
            base.resize(base.size() - 6);
        }
        const char* type = counter                            ? "counter"
                           : f.type == MetricType::Gauge      ? "gauge"
                           : f.type == MetricType::Histogram  ? "histogram"
                                                              : "unknown";
        out += "# TYPE " + base + " " + type + "\n";
        out += "# HELP " + base + " " + f.help + "\n";
        for (const auto& m : f.metric) {
            if (counter) {
                appendSample(out, base, "_total", m.label, nullptr, nullptr, m.counter.value);
            } else if (f.type == MetricType::Gauge) {
                appendSample(out, base, "", m.label, nullptr, nullptr, m.gauge.value);
            } else if (f.type == MetricType::Histogram) {
                for (const auto& b : m.histogram.bucket) {
                    std::string le;
                    if (std::isinf(b.upper_bound)) {
                        le = "+Inf";
                    } else {
                        char buf[40];
                        snprintf(buf, sizeof buf, "%g", b.upper_bound);
                        le = buf;
                        if (le.find_first_of(".e") == std::string::npos) {
                            le += ".0";
                        }
                    }
                    appendSample(out, base, "_bucket", m.label, "le", &le,
                                 static_cast<double>(b.cumulative_count));
                }
                appendSample(out, base, "_count", m.label, nullptr, nullptr,
                             static_cast<double>(m.histogram.sample_count));
                appendSample(out, base, "_sum", m.label, nullptr, nullptr, m.histogram.sample_sum);
            }
        }
    }
    out += "# EOF\n";
    return out;
}

}  // namespace

namespace {

/// The gateway's metrics as prometheus-cpp sees a source of families: read from shared memory
/// at each scrape (nothing is registered or kept in the process).
class GatewayCollectable final : public prometheus::Collectable {
public:
    explicit GatewayCollectable(bool detailed) : detailed_(detailed) {}
    std::vector<MetricFamily> Collect() const override { return collectMetrics(detailed_); }

private:
    bool detailed_;
};

}  // namespace

std::string metricsText(bool detailed, bool openmetrics) {
    auto fams = GatewayCollectable(detailed).Collect();
    if (openmetrics) {
        return openMetricsText(fams);
    }
    std::ostringstream os;
    prometheus::TextSerializer().Serialize(os, fams);
    return std::move(os).str();
}

bool wantsOpenMetrics(std::string_view accept) {
    return accept.find("application/openmetrics-text") != std::string_view::npos;
}

bool readyNow() {
    const mx::Store& st = mx::store();
    return !ctx().graceful && !(st.mapped() && st.head->master.draining.load(kRelaxed) != 0);
}

namespace {

void appendU(std::string& out, const char* key, uint64_t v, bool comma = true) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s\"%s\":%llu", comma ? "," : "", key,
             static_cast<unsigned long long>(v));
    out += buf;
}

void appendClasses(std::string& out, const RouteSum& r) {
    out += "{";
    for (size_t c = 0; c < mx::kClasses; ++c) {
        appendU(out, kClassNames[c], r.byClass(c), c != 0);
    }
    out += "}";
}

void appendCounts(std::string& out, const uint64_t* b, size_t n) {
    out += '[';
    for (size_t i = 0; i < n; ++i) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s%llu", i ? "," : "", static_cast<unsigned long long>(b[i]));
        out += buf;
    }
    out += ']';
}

}  // namespace

std::string dashboardJson() {
    const Proxy& p = *ctx().proxy;
    Snapshot s = takeSnapshot();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms =
        static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
    uint64_t started = s.master.started_unix_ms.load(kRelaxed);
    if (started == 0 && ctx().init != nullptr) {
        started = static_cast<uint64_t>(ctx().init->start_time_us / 1000);
    }
    uint64_t gen = s.master.generation.load(kRelaxed);
    if (gen == 0 && ctx().init != nullptr) {
        gen = ctx().init->generation;
    }
    const RouteSum all = totals(s);
    uint32_t running = 0;
    if (const auto* slots = sharedSegments().slots; slots != nullptr && ctx().init != nullptr) {
        // Workers of this worker's generation that are running (a reload's old ones excluded).
        uint32_t mine = slots->info(static_cast<uint32_t>(ctx().init->slot)).generation;
        for (uint32_t k = 0; k < shm::kMaxSlots; ++k) {
            shm::SlotInfo i = slots->info(k);
            running += i.state == shm::SlotState::Worker && i.pid != 0 && i.generation == mine;
        }
    }
    std::string out;
    out.reserve(4096 + p.routes.size() * 200 + p.upstreams.size() * 200);
    char buf[512];
    uint64_t last_ms = s.master.last_reload_unix_ms.load(kRelaxed);
    uint64_t res = s.master.last_reload_result.load(kRelaxed);
    char age[32] = "null";
    if (last_ms != 0 && now_ms >= last_ms) {
        snprintf(age, sizeof age, "%.1f", static_cast<double>(now_ms - last_ms) / 1000.0);
    }
    snprintf(buf, sizeof buf,
             "{\"version\":\"" PHOTON_VERSION "\",\"generation\":%llu,\"uptime_s\":%.1f,"
             "\"now_ms\":%llu,\"workers\":{\"configured\":%llu,\"running\":%u,\"restarts\":%llu},"
             "\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"last_result\":\"%s\",\"last_age_s\":%s}",
             static_cast<unsigned long long>(gen),
             started != 0 && now_ms >= started ? static_cast<double>(now_ms - started) / 1000.0
                                               : 0.0,
             static_cast<unsigned long long>(now_ms),
             static_cast<unsigned long long>(s.master.workers_configured.load(kRelaxed)), running,
             static_cast<unsigned long long>(s.master.worker_restarts.load(kRelaxed)),
             static_cast<unsigned long long>(s.master.reloads_ok.load(kRelaxed)),
             static_cast<unsigned long long>(s.master.reloads_failed.load(kRelaxed)),
             res == 1 ? "ok" : res == 2 ? "failed" : "none", age);
    out += buf;
    appendU(out, "requests", all.total());
    appendU(out, "errors", all.byClass(4));
    out += ",\"status\":";
    appendClasses(out, all);
    appendU(out, "in_flight", s.inflight);
    snprintf(buf, sizeof buf, ",\"connections\":{\"active\":%llu,\"idle\":%llu,\"websocket\":%llu}",
             static_cast<unsigned long long>(s.connections),
             static_cast<unsigned long long>(idleOf(s)),
             static_cast<unsigned long long>(s.ws_active));
    out += buf;
    out += ",\"duration\":{\"bounds\":[0.001,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10],"
           "\"counts\":";
    appendCounts(out, all.duration.buckets, mx::kDurationBuckets);
    out += "},\"routes\":[";
    for (size_t i = 0; i < p.routes.size(); ++i) {
        const RouteSum& r = s.routes[i];
        out += i ? ",{\"id\":\"" : "{\"id\":\"";
        appendJsonEscaped(out, p.routes[i].id);
        out += '"';
        appendU(out, "requests", r.total());
        appendU(out, "errors", r.byClass(4));
        out += ",\"status\":";
        appendClasses(out, r);
        out += ",\"duration_counts\":";
        appendCounts(out, r.duration.buckets, mx::kDurationBuckets);
        out += '}';
    }
    out += "],\"backends\":[";
    for (size_t b = 0; b < p.backends.size(); ++b) {
        const BackendRt& be = p.backends[b];
        uint64_t healthy = 0;
        for (size_t u : be.upstreams) {
            healthy += s.views[u].usable ? 1 : 0;
        }
        out += b ? ",{\"name\":\"" : "{\"name\":\"";
        appendJsonEscaped(out, be.name);
        out += '"';
        appendU(out, "healthy", healthy);
        appendU(out, "total", be.upstreams.size());
        out += ",\"upstreams\":[";
        for (size_t k = 0; k < be.upstreams.size(); ++k) {
            size_t u = be.upstreams[k];
            const UpstreamView& v = s.views[u];
            const UpstreamSum& us = s.upstreams[u];
            uint64_t failures = 0;
            for (uint64_t e : us.errors) {
                failures += e;
            }
            out += k ? ",{\"address\":\"" : "{\"address\":\"";
            appendJsonEscaped(out, p.upstreams[u].address);
            out += "\",\"state\":\"";
            out += v.state;
            out += '"';
            appendU(out, "inflight", v.inflight);
            appendU(out, "requests", us.requests);
            appendU(out, "failures", failures);
            out += ",\"last_error\":\"";
            if (v.last_error != "none") {
                appendJsonEscaped(out, v.last_error);
            }
            out += "\"}";
        }
        out += "]}";
    }
    {
        const mod::cache::CacheStats t = mod::cache::store().totals();
        out += "],\"cache\":{\"enabled\":";
        out += mod::cache::store().mapped() ? "true" : "false";
        appendU(out, "hits", t.hits + t.stale);
        appendU(out, "misses", t.misses);
        appendU(out, "entries", t.entries);
        appendU(out, "memory_bytes", t.memory_bytes);
        appendU(out, "evictions", t.evictions);
        out += "}";
    }
    uint64_t limited = 0;
    for (const auto& l : s.limits) {
        limited += l.second;
    }
    out += ",\"rate_limit\":{";
    appendU(out, "rejected", limited, false);
    out += ",\"limits\":[";
    for (size_t i = 0; i < s.limits.size(); ++i) {
        out += i ? ",{\"name\":\"" : "{\"name\":\"";
        appendJsonEscaped(out, s.limits[i].first);
        out += '"';
        appendU(out, "rejected", s.limits[i].second);
        out += '}';
    }
    uint64_t upgrades = s.ws_upgrades[static_cast<size_t>(WsUpgradeResult::Upgraded)];
    snprintf(buf, sizeof buf, "]},\"websocket\":{\"active\":%llu,\"upgrades\":%llu}}\n",
             static_cast<unsigned long long>(s.ws_active),
             static_cast<unsigned long long>(upgrades));
    out += buf;
    return out;
}

}  // namespace photon::worker

namespace photon::worker {

std::string_view dashboardHtml() {
    static constexpr char kPage[] =
#include "gen/dashboard_html.inc"
        ;
    return {kPage, sizeof kPage - 1};
}

}  // namespace photon::worker
