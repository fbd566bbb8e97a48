// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of the shared-memory response cache: a lookup that hits (find, then copy the
// head and a small body and check the version), one that misses, the key, and an insert.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "modules/cache/cache.h"
#include "modules/cache/store.h"
#include "shm/clock.h"

namespace {

using namespace photon::mod::cache;

struct Fixture {
    Store st;
    void* mem = nullptr;
    uint64_t bytes = 0;
    std::vector<std::string> keys;

    explicit Fixture(int n) {
        uint32_t entries = Store::entriesFor(static_cast<uint64_t>(n) * 2);
        uint32_t blocks = Store::blocksFor(uint64_t{64} << 20);
        bytes = Store::bodyBytes(entries, blocks);
        mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        st.bind(mem, entries, blocks);
        st.format(7);
        const std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"abc\"\r\n"
            "Cache-Control: max-age=60\r\n\r\n";
        const std::string body(512, 'x');
        for (int i = 0; i < n; ++i) {
            keys.push_back("GET:api.example.com/v1/items/" + std::to_string(i));
            const std::string& k = keys.back();
            Insert ins;
            st.begin(ins, 0, 1 << 20);
            st.append(ins, k.data(), k.size());
            st.append(ins, head.data(), head.size());
            st.append(ins, body.data(), body.size());
            EntryMeta m;
            m.key_len = static_cast<uint32_t>(k.size());
            m.head_len = static_cast<uint32_t>(head.size());
            m.body_len = static_cast<uint32_t>(body.size());
            m.lifetime = 60;
            m.stored_us = photon::shm::monotonicMicros();
            st.commit(ins, st.hashKey(k), m);
        }
    }
    ~Fixture() { ::munmap(mem, bytes); }
};

// A hit: find the entry, copy head and 512-byte body out, check the version.
void BM_Cache_LookupHit(benchmark::State& state) {
    Fixture f(10000);
    char buf[4096];
    size_t i = 0;
    for (auto _ : state) {
        const std::string& k = f.keys[i++ % f.keys.size()];
        Found found;
        bool ok = f.st.find(k, f.st.hashKey(k), found);
        ok = ok &&
             f.st.read(found, found.meta.key_len, buf, found.meta.head_len + found.meta.body_len);
        benchmark::DoNotOptimize(ok);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Cache_LookupHit);

void BM_Cache_LookupMiss(benchmark::State& state) {
    Fixture f(10000);
    std::string k = "GET:api.example.com/v1/absent/000000";
    size_t i = 0;
    for (auto _ : state) {
        k[k.size() - 1] = static_cast<char>('0' + i++ % 10);
        Found found;
        benchmark::DoNotOptimize(f.st.find(k, f.st.hashKey(k), found));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Cache_LookupMiss);

void BM_Cache_BuildKey(benchmark::State& state) {
    char out[kMaxKey];
    for (auto _ : state) {
        benchmark::DoNotOptimize(
            buildKey("API.example.com", "/v1/items/12345", "q=1", false, out, sizeof out));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Cache_BuildKey);

// An insert of a 4 KiB response in a store that evicts to make room.
void BM_Cache_Insert4k(benchmark::State& state) {
    Fixture f(0);
    const std::string body(4096, 'y');
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    size_t i = 0;
    for (auto _ : state) {
        std::string k = "GET:h/" + std::to_string(i++ % 100000);
        Insert ins;
        f.st.begin(ins, 0, 1 << 20);
        f.st.append(ins, k.data(), k.size());
        f.st.append(ins, head.data(), head.size());
        f.st.append(ins, body.data(), body.size());
        EntryMeta m;
        m.key_len = static_cast<uint32_t>(k.size());
        m.head_len = static_cast<uint32_t>(head.size());
        m.body_len = static_cast<uint32_t>(body.size());
        m.lifetime = 60;
        m.stored_us = 1;
        benchmark::DoNotOptimize(f.st.commit(ins, f.st.hashKey(k), m));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Cache_Insert4k);

}  // namespace
