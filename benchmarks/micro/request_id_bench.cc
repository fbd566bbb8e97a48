// SPDX-License-Identifier: Apache-2.0
// Request id generation cost (the original claims 95 ns per id).
#include <benchmark/benchmark.h>

#include "modules/requestid/request_id.h"

namespace {

// One generated id, written into a caller buffer (no allocation).
void BM_RequestId_Generate(benchmark::State& state) {
    photon::mod::requestid::Generator g;
    g.init(0x1868f0a2c4b5e6d7ull, 1);
    char buf[photon::mod::requestid::kGeneratedMax];
    for (auto _ : state) {
        size_t n = g.next(buf);
        benchmark::DoNotOptimize(n);
        benchmark::DoNotOptimize(buf);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestId_Generate);

}  // namespace
