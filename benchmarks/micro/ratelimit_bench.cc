// SPDX-License-Identifier: Apache-2.0
// GCRA decisions (modules/ratelimit/gcra.h): one key uncontended, and two threads on the same
// key or on different keys of one table (the table lives in ordinary memory here; in Photon it
// is a shared-memory segment, with the same atomics).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "modules/ratelimit/gcra.h"
#include "shm/clock.h"

namespace {

using namespace photon::mod::ratelimit;

std::vector<RateSlotShm>& sharedSlots() {
    static std::vector<RateSlotShm> slots(1 << 16);
    return slots;
}

// A limit that admits everything, so every decision makes its CAS (time advances by 1 µs per
// decision; the clock read itself is not measured).
GcraParams admitAll() {
    GcraParams p;
    p.interval_us = 1;
    p.tolerance_us = uint64_t{1} << 40;
    p.burst = UINT32_MAX;
    return p;
}

// One decision for one key, uncontended.
void BM_RateLimit_DecideUncontended(benchmark::State& state) {
    std::vector<RateSlotShm> slots(1 << 10);
    GcraTable table(slots.data(), slots.size());
    GcraParams p = admitAll();
    uint64_t key = GcraTable::keyHash("203.0.113.7", 42);
    uint64_t now = photon::shm::monotonicMicros();
    for (auto _ : state) {
        GcraDecision d = table.decide(key, ++now, p);
        benchmark::DoNotOptimize(d);
        if (d.kind != GcraDecision::Kind::Allowed) {
            state.SkipWithError("not admitted");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimit_DecideUncontended);

// Threads deciding on one key (range 0) or each on its own key (range 1), CAS against CAS.
void BM_RateLimit_DecideContended(benchmark::State& state) {
    GcraTable table(sharedSlots().data(), sharedSlots().size());
    GcraParams p = admitAll();
    std::string name =
        state.range(0) == 0 ? "shared" : "key-" + std::to_string(state.thread_index());
    uint64_t key = GcraTable::keyHash(name, 42);
    uint64_t now = photon::shm::monotonicMicros();
    for (auto _ : state) {
        benchmark::DoNotOptimize(table.decide(key, ++now, p));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimit_DecideContended)->Arg(0)->Arg(1)->Threads(1)->Threads(2);

// Hashing a typical key (an IPv4 address as text).
void BM_RateLimit_KeyHash(benchmark::State& state) {
    for (auto _ : state) {
        benchmark::DoNotOptimize(GcraTable::keyHash("203.0.113.7", 42));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimit_KeyHash);

}  // namespace
