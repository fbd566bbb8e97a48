// SPDX-License-Identifier: Apache-2.0
// Route-match and path-normalisation micro benchmarks, with heap allocations counted per lookup.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "modules/routing/path_normalize.h"
#include "modules/routing/router.h"

// Counts every global operator new in this binary so a benchmark can report allocations per
// iteration. Relaxed is enough: the counter is only read by the thread that ran the loop.
namespace {
std::atomic<uint64_t> g_heap_allocs{0};

void* countedAlloc(std::size_t n) {
    g_heap_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}

void* countedAlignedAlloc(std::size_t n, std::align_val_t al) {
    g_heap_allocs.fetch_add(1, std::memory_order_relaxed);
    const auto a = static_cast<std::size_t>(al);
    return std::aligned_alloc(a, ((n == 0 ? 1 : n) + a - 1) / a * a);
}

// Not inlined, so that GCC does not pair an inlined free() with operator new and warn
// (-Wmismatched-new-delete): every replacement below allocates with malloc.
[[gnu::noinline]] void countedFree(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
    if (void* p = countedAlloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = countedAlloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return countedAlloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return countedAlloc(n); }
void* operator new(std::size_t n, std::align_val_t al) {
    if (void* p = countedAlignedAlloc(n, al)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) {
    if (void* p = countedAlignedAlloc(n, al)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { countedFree(p); }
void operator delete[](void* p) noexcept { countedFree(p); }
void operator delete(void* p, std::size_t) noexcept { countedFree(p); }
void operator delete[](void* p, std::size_t) noexcept { countedFree(p); }
void operator delete(void* p, std::align_val_t) noexcept { countedFree(p); }
void operator delete[](void* p, std::align_val_t) noexcept { countedFree(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { countedFree(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { countedFree(p); }

namespace photon::mod::routing {
namespace {

constexpr size_t kHostCount = 64;

// An API-gateway-like table: per service an exact collection route, a `{id}` item route, a
// `{id}/*` sub-resource route, a host-restricted `**` admin route and a partial-segment static
// glob, plus a GET catch-all, a health check, a wildcard-host tenant route and two regexes.
std::vector<RouteSpec> apiRoutes(size_t target) {
    std::vector<RouteSpec> v;
    auto add = [&](std::string id, std::string path, std::string host,
                   std::vector<std::string> methods) {
        RouteSpec r;
        r.id = std::move(id);
        r.path = std::move(path);
        r.host = std::move(host);
        r.methods = std::move(methods);
        v.push_back(std::move(r));
    };
    add("catch_all", "/**", "", {"GET"});
    add("health", "/health", "", {"GET"});
    add("tenant", "/t/**", "*.tenant.example.com", {});
    add("legacy", "^/legacy/([0-9]+)$", "", {"GET"});
    add("legacy_v", "^/v[0-9]+/old/.*$", "", {});
    for (size_t i = 0; v.size() < target; ++i) {
        const std::string svc = "svc" + std::to_string(i);
        const std::string base = "/api/v1/" + svc;
        add(svc + "_list", base + "/items", "", {"GET", "POST"});
        add(svc + "_item", base + "/items/{id}", "", {"GET", "PUT", "DELETE"});
        add(svc + "_sub", base + "/items/{id}/*", "", {"GET"});
        add(svc + "_admin", base + "/**", "admin" + std::to_string(i % kHostCount) + ".example.com",
            {});
        add(svc + "_js", "/static/" + svc + "/*.js", "", {"GET"});
    }
    v.resize(target);
    return v;
}

struct Request {
    std::string method;
    std::string host;
    std::string path;
};

// A fixed, seeded mix of requests: mostly hits, some 405s and catch-all fallbacks.
std::vector<Request> apiRequests(size_t routes) {
    const size_t services = routes > 5 ? (routes - 5 + 4) / 5 : 1;
    std::mt19937_64 rng(42);
    std::vector<Request> out;
    for (size_t k = 0; k < 4096; ++k) {
        const size_t i = rng() % services;
        const std::string base = "/api/v1/svc" + std::to_string(i);
        const std::string id = std::to_string(rng() % 100000);
        const std::string host = "api.example.com";
        const unsigned roll = static_cast<unsigned>(rng() % 100);
        if (roll < 30) {
            out.push_back({"GET", host, base + "/items/" + id});
        } else if (roll < 45) {
            out.push_back({"GET", host, base + "/items"});
        } else if (roll < 55) {
            out.push_back({"POST", host + ":443", base + "/items"});
        } else if (roll < 65) {
            out.push_back({"GET", host, base + "/items/" + id + "/history"});
        } else if (roll < 75) {
            out.push_back({"GET", "admin" + std::to_string(i % kHostCount) + ".example.com",
                           base + "/settings/limits"});
        } else if (roll < 85) {
            out.push_back({"GET", host, "/static/svc" + std::to_string(i) + "/app.js"});
        } else if (roll < 90) {
            out.push_back({"GET", host, "/unknown/page/" + id});
        } else if (roll < 95) {
            out.push_back({"PATCH", host, base + "/items/" + id});
        } else {
            out.push_back({"GET", "acme.tenant.example.com", "/t/dashboard"});
        }
    }
    return out;
}

struct RequestView {
    std::string_view method;
    std::string_view host;
    std::string_view path;
};

// Copies requests into one contiguous buffer and keeps views into it.
struct RequestArena {
    explicit RequestArena(const std::vector<Request>& reqs) {
        size_t total = 0;
        for (const Request& r : reqs) {
            total += r.method.size() + r.host.size() + r.path.size();
        }
        bytes.reserve(total);
        std::vector<size_t> offs;
        for (const Request& r : reqs) {
            for (const std::string* f : {&r.method, &r.host, &r.path}) {
                offs.push_back(bytes.size());
                bytes += *f;
            }
        }
        for (size_t k = 0; k < reqs.size(); ++k) {
            const char* b = bytes.data();
            views.push_back({{b + offs[3 * k], reqs[k].method.size()},
                             {b + offs[3 * k + 1], reqs[k].host.size()},
                             {b + offs[3 * k + 2], reqs[k].path.size()}});
        }
    }
    std::string bytes;
    std::vector<RequestView> views;
};

// One Router::match() per iteration over a mixed request stream; Arg = number of routes.
void BM_Router_Match(benchmark::State& state) {
    const auto n = static_cast<size_t>(state.range(0));
    auto compiled = Router::compile(apiRoutes(n), nullptr);
    if (!compiled.ok()) {
        state.SkipWithError(compiled.error().msg.c_str());
        return;
    }
    const Router& router = compiled.value();
    // The requests live in one buffer, as they do in a worker's read buffers, rather than in
    // 4 096 separately allocated strings scattered over whatever heap earlier runs left.
    const RequestArena reqs(apiRequests(n));
    size_t i = 0;
    uint64_t found = 0;
    const uint64_t allocs_before = g_heap_allocs.load(std::memory_order_relaxed);
    for (auto _ : state) {
        const RequestView& q = reqs.views[i++ & 4095];
        const Match m = router.match(q.method, q.host, q.path);
        found += m.status == MatchStatus::Found;
        benchmark::DoNotOptimize(m);
    }
    const uint64_t allocs = g_heap_allocs.load(std::memory_order_relaxed) - allocs_before;
    state.SetItemsProcessed(state.iterations());
    state.counters["routes"] = static_cast<double>(router.routeCount());
    state.counters["allocs_per_lookup"] =
        static_cast<double>(allocs) / static_cast<double>(state.iterations());
    state.counters["found_ratio"] =
        static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Router_Match)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

// normalizePath() on typical request paths, some with escapes and dot segments.
void BM_Router_NormalizePath(benchmark::State& state) {
    const std::vector<std::string> paths = {
        "/api/v1/svc12/items/48213",           "/static/svc3/app.js",
        "/api/v1/svc7/items/%7Euser/../9%2e1", "//api//v1/svc1/./items/",
        "/search/caf%c3%a9/results",
    };
    char out[256];
    size_t i = 0;
    const uint64_t allocs_before = g_heap_allocs.load(std::memory_order_relaxed);
    for (auto _ : state) {
        const std::string& p = paths[i++ % paths.size()];
        size_t len = 0;
        benchmark::DoNotOptimize(normalizePath(p, out, sizeof(out), len));
        benchmark::DoNotOptimize(len);
    }
    const uint64_t allocs = g_heap_allocs.load(std::memory_order_relaxed) - allocs_before;
    state.SetItemsProcessed(state.iterations());
    state.counters["allocs_per_call"] =
        static_cast<double>(allocs) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Router_NormalizePath);

}  // namespace
}  // namespace photon::mod::routing
