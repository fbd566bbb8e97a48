// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of balancer picks (ns/pick) per algorithm and upstream count, on a real segment.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "core/log.h"
#include "modules/balancer/balancer.h"
#include "shm/segment.h"

namespace {

using namespace photon::mod::balancer;
using photon::shm::MappedSegment;

constexpr uint32_t kWorkers = 4;  // active slots the in-flight sums walk

/// One backend of `n` upstreams on its own segment, with kWorkers pinned slots carrying a small
/// random in-flight load, as a busy 4-worker gateway would have.
struct Env {
    std::string name;
    std::optional<MappedSegment> seg;
    std::optional<UpstreamTable> table;
    std::optional<BalancerPlan> plan;

    Env(Algorithm algo, bool two_choices, uint32_t n, bool outlier_rules) {
        photon::core::setLogLevel(photon::core::LogLevel::Warn);
        static int counter = 0;
        name =
            photon::shm::segmentName(photon::shm::instanceName("bench/" + std::to_string(getpid()) +
                                                               "/" + std::to_string(++counter)),
                                     "upstreams");
        const uint32_t cap = UpstreamTable::capacityFor(n);
        const uint32_t bcap = UpstreamTable::backendCapacityFor(1);
        auto s =
            MappedSegment::create(name, UpstreamTable::bodyBytes(cap, bcap), kUpstreamLayoutVersion,
                                  UpstreamTable::fingerprint(cap, bcap));
        PHOTON_CHECK(s.ok());
        seg.emplace(std::move(s.value()));
        auto t = UpstreamTable::bind(*seg, cap, bcap);
        PHOTON_CHECK(t.ok());
        table.emplace(t.value());
        BackendSpec b;
        b.name = "bench";
        b.algorithm = algo;
        b.two_choices = two_choices;
        if (outlier_rules) {  // the configuration's defaults: panic check on every pick
            b.panic_threshold = 50;
            b.max_ejection_percent = 50;
            b.max_ejection_time_us = 300'000'000;
        }
        for (uint32_t i = 0; i < n; ++i) {
            UpstreamSpec u;
            u.address = "10." + std::to_string(i / 250) + ".0." + std::to_string(i % 250) + ":80";
            u.weight = 1 + i % 3;
            u.max_connections = 1000;  // exercise the capacity check on every candidate
            b.upstreams.push_back(u);
        }
        BalancerInput in;
        in.backends.push_back(b);
        auto p = BalancerPlan::build(in, *table);
        PHOTON_CHECK(p.ok());
        plan.emplace(std::move(p.value()));
        Rng rng(42);
        for (uint32_t s = 0; s < kWorkers; ++s) {
            table->pinSlot(s, plan->generation());
            for (uint32_t u = 0; u < n; ++u) {
                for (uint32_t k = rng.below(4); k > 0; --k) {
                    table->acquire(plan->upstream(u).record, s);
                }
            }
        }
    }
    ~Env() { MappedSegment::remove(name); }
};

Env& env(Algorithm algo, bool two_choices, uint32_t n, bool outlier_rules = true) {
    static std::mutex mu;
    static std::map<std::tuple<int, bool, uint32_t, bool>, std::unique_ptr<Env>> envs;
    std::lock_guard<std::mutex> lock(mu);
    auto& e = envs[{static_cast<int>(algo), two_choices, n, outlier_rules}];
    if (!e) {
        e = std::make_unique<Env>(algo, two_choices, n, outlier_rules);
    }
    return *e;
}

void runPicks(benchmark::State& state, Algorithm algo, bool two_choices,
              bool outlier_rules = true) {
    Env& e = env(algo, two_choices, static_cast<uint32_t>(state.range(0)), outlier_rules);
    Balancer bal(*e.plan, *e.table, static_cast<uint32_t>(state.thread_index()) % kWorkers,
                 Rng::seedFor(getpid(), state.thread_index(), 1));
    uint8_t ip[4] = {192, 168, 0, 0};
    uint32_t client = 0;
    PickContext ctx;
    ctx.now_us = 1;
    ctx.client_addr = ip;
    for (auto _ : state) {
        ++client;
        ip[2] = static_cast<uint8_t>(client >> 8);
        ip[3] = static_cast<uint8_t>(client);
        const Pick p = bal.pick(0, ctx);
        benchmark::DoNotOptimize(p);
    }
    state.SetItemsProcessed(state.iterations());
}

// One shared-counter fetchAdd plus one eligibility check per pick.
void BM_Balancer_RoundRobin(benchmark::State& s) { runPicks(s, Algorithm::RoundRobin, false); }
// The same without panic routing and the ejection cap (the rules before they existed): the
// difference is what the per-pick panic check costs.
void BM_Balancer_RoundRobinWithoutOutlierRules(benchmark::State& s) {
    runPicks(s, Algorithm::RoundRobin, false, false);
}
void BM_Balancer_LeastConnectionsWithoutOutlierRules(benchmark::State& s) {
    runPicks(s, Algorithm::LeastConnections, false, false);
}
// Shared counter indexing the precomputed smooth sequence.
void BM_Balancer_WeightedRoundRobin(benchmark::State& s) {
    runPicks(s, Algorithm::WeightedRoundRobin, false);
}
// Full scan: in-flight sums over 4 active slots for every upstream.
void BM_Balancer_LeastConnections(benchmark::State& s) {
    runPicks(s, Algorithm::LeastConnections, false);
}
// XXH3 of 4 address bytes + binary search on a 160-points-per-weight ring.
void BM_Balancer_IpHash(benchmark::State& s) { runPicks(s, Algorithm::IpHash, false); }
// Per-process wyrand draw + one eligibility check.
void BM_Balancer_Random(benchmark::State& s) { runPicks(s, Algorithm::Random, false); }
// Two draws and two in-flight sums.
void BM_Balancer_RandomTwoChoices(benchmark::State& s) { runPicks(s, Algorithm::Random, true); }

BENCHMARK(BM_Balancer_RoundRobin)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_RoundRobinWithoutOutlierRules)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_LeastConnectionsWithoutOutlierRules)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_WeightedRoundRobin)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_LeastConnections)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_IpHash)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_Random)->Arg(2)->Arg(16)->Arg(256);
BENCHMARK(BM_Balancer_RandomTwoChoices)->Arg(2)->Arg(16)->Arg(256);
// Contention on the shared rotation counter from two threads (stand-ins for two workers).
BENCHMARK(BM_Balancer_RoundRobin)->Name("BM_Balancer_RoundRobinContended")->Arg(16)->Threads(2);

// acquire + release of one upstream: the per-request in-flight bookkeeping.
void BM_Balancer_AcquireRelease(benchmark::State& state) {
    Env& e = env(Algorithm::RoundRobin, false, 16);
    Balancer bal(*e.plan, *e.table, 0, 1);
    uint32_t u = 0;
    for (auto _ : state) {
        u = (u + 1) & 15;
        bal.acquire(u);
        bal.release(u);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Balancer_AcquireRelease);

}  // namespace
