// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of the shm primitives: Atomic64 RMW and SeqLock write/read cycles.
#include <benchmark/benchmark.h>

#include "shm/atomic.h"
#include "shm/seqlock.h"

namespace {

using photon::shm::Atomic64;
using photon::shm::SeqLock;

alignas(64) Atomic64 g_counter{};

// fetchAdd on one shared word; with ->Threads(2) the cache line bounces between cores.
void BM_Shm_FetchAdd(benchmark::State& state) {
    for (auto _ : state) {
        benchmark::DoNotOptimize(g_counter.fetchAdd(1));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Shm_FetchAdd);
BENCHMARK(BM_Shm_FetchAdd)->Threads(2);

struct Record {
    Atomic64 seq;
    Atomic64 a;
    Atomic64 b;
};

// One uncontended seqlock write (CAS + 2 relaxed stores + release store).
void BM_Shm_SeqLockWrite(benchmark::State& state) {
    Record r{};
    uint64_t i = 0;
    for (auto _ : state) {
        uint64_t token = 0;
        if (SeqLock::tryBeginWrite(r.seq, 1, token)) {
            r.a.store(++i, std::memory_order_relaxed);
            r.b.store(i, std::memory_order_relaxed);
            SeqLock::endWrite(r.seq, token);
        }
    }
    benchmark::DoNotOptimize(r.a.load());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Shm_SeqLockWrite);

// One uncontended seqlock read of a two-word record.
void BM_Shm_SeqLockRead(benchmark::State& state) {
    Record r{};
    for (auto _ : state) {
        const uint64_t v = SeqLock::readBegin(r.seq);
        const uint64_t a = r.a.load(std::memory_order_relaxed);
        const uint64_t b = r.b.load(std::memory_order_relaxed);
        benchmark::DoNotOptimize(SeqLock::readValid(r.seq, v) && a == b);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Shm_SeqLockRead);

}  // namespace
