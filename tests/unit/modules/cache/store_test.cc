// SPDX-License-Identifier: Apache-2.0
// The shared-memory cache store on a private mapping: inserts, lookups, eviction, crash
// recovery (a writer that stopped at any point), concurrent readers and writers, the fill lock.
#include "modules/cache/store.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shm/clock.h"
#include "shm/seqlock.h"

namespace photon::mod::cache {
namespace {

class CacheStoreTest : public ::testing::Test {
protected:
    void make(uint64_t max_entries, uint64_t max_memory) {
        entries_ = Store::entriesFor(max_entries);
        blocks_ = Store::blocksFor(max_memory);
        bytes_ = Store::bodyBytes(entries_, blocks_);
        mem_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(mem_, MAP_FAILED);
        st_.bind(mem_, entries_, blocks_);
        st_.format(12345);
    }
    void TearDown() override {
        if (mem_ != nullptr && mem_ != MAP_FAILED) {
            ::munmap(mem_, bytes_);
        }
    }

    // Data of an entry for `key`: the key, a head, `body` bytes derived from the key.
    static std::string bodyFor(const std::string& key, size_t n) {
        std::string b(n, '\0');
        uint32_t h = 2166136261u;
        for (char c : key) {
            h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
        }
        for (size_t i = 0; i < n; ++i) {
            b[i] = static_cast<char>('a' + (h + i * 7) % 26);
        }
        return b;
    }
    bool put(const std::string& key, size_t body_len, uint32_t writer = 0, uint32_t lifetime = 60,
             uint64_t stored_us = shm::monotonicMicros()) {
        const std::string head = "HTTP/1.1 200 OK\r\nX: y\r\n\r\n";
        const std::string body = bodyFor(key, body_len);
        Insert ins;
        st_.begin(ins, writer, key.size() + head.size() + body.size());
        if (!st_.append(ins, key.data(), key.size()) ||
            !st_.append(ins, head.data(), head.size()) ||
            !st_.append(ins, body.data(), body.size())) {
            return false;
        }
        EntryMeta m;
        m.key_len = static_cast<uint32_t>(key.size());
        m.head_len = static_cast<uint32_t>(head.size());
        m.body_len = static_cast<uint32_t>(body.size());
        m.lifetime = lifetime;
        m.stored_us = stored_us;
        return st_.commit(ins, st_.hashKey(key), m);
    }
    // Whether `key` is found with exactly its data.
    bool check(const std::string& key, size_t body_len) {
        Found f;
        if (!st_.find(key, st_.hashKey(key), f)) {
            return false;
        }
        std::string got(f.meta.body_len, '\0');
        const uint64_t off = uint64_t{f.meta.key_len} + f.meta.head_len;
        if (!st_.read(f, off, got.data(), got.size())) {
            return false;
        }
        EXPECT_EQ(got.size(), body_len);
        EXPECT_EQ(got, bodyFor(key, body_len)) << key;
        return true;
    }
    EntryShm* entryArray() {
        auto* p = static_cast<char*>(mem_) + sizeof(CacheHeadShm) +
                  sizeof(CacheStatsShm) * shm::kMaxSlots + sizeof(shm::Atomic64) * kLocks;
        return reinterpret_cast<EntryShm*>(p);
    }

    Store st_;
    void* mem_ = nullptr;
    uint64_t bytes_ = 0;
    uint32_t entries_ = 0;
    uint32_t blocks_ = 0;
};

TEST_F(CacheStoreTest, Geometry) {
    EXPECT_EQ(Store::entriesFor(1), kWays);
    EXPECT_EQ(Store::entriesFor(10000), 16384u);  // whole sets, a power of two of them
    EXPECT_EQ(Store::blocksFor(64u << 20), (64u << 20) / kBlockSize);
    EXPECT_EQ(Store::blocksFor(1), 16u);
    EXPECT_GE(Store::bodyBytes(16384, 16384), uint64_t{16384} * kBlockSize + 16384 * 64);
}

TEST_F(CacheStoreTest, InsertFindReadAcrossBlocks) {
    make(100, 1 << 20);
    ASSERT_TRUE(put("GET:a/small", 100));
    ASSERT_TRUE(put("GET:a/large", 3 * kBlockSize + 17));
    EXPECT_TRUE(check("GET:a/small", 100));
    EXPECT_TRUE(check("GET:a/large", 3 * kBlockSize + 17));
    Found f;
    EXPECT_FALSE(st_.find("GET:a/none", st_.hashKey("GET:a/none"), f));
    // A matching hash is not enough: the key itself is compared.
    EXPECT_FALSE(st_.find("GET:a/smalX", st_.hashKey("GET:a/small"), f));
    CacheStats t = st_.totals();
    EXPECT_EQ(t.entries, 2u);
    EXPECT_EQ(t.stores, 2u);
    EXPECT_EQ(t.memory_bytes, 5u * kBlockSize);  // 1 + 4 blocks
}

TEST_F(CacheStoreTest, ReplaceSameKeyAndRemove) {
    make(100, 1 << 20);
    ASSERT_TRUE(put("GET:k", 10));
    ASSERT_TRUE(put("GET:k", 5000));
    EXPECT_TRUE(check("GET:k", 5000));
    EXPECT_EQ(st_.totals().entries, 1u);
    EXPECT_EQ(st_.totals().memory_bytes, 2u * kBlockSize);
    Found f;
    ASSERT_TRUE(st_.find("GET:k", st_.hashKey("GET:k"), f));
    ASSERT_TRUE(st_.remove(f, 0));
    EXPECT_FALSE(st_.find("GET:k", st_.hashKey("GET:k"), f));
    EXPECT_EQ(st_.totals().memory_bytes, 0u);
    // A reader holding the old snapshot sees that it changed.
    char buf[8];
    EXPECT_FALSE(st_.read(f, 0, buf, sizeof buf));
    EXPECT_FALSE(st_.remove(f, 0));
}

TEST_F(CacheStoreTest, LimitAndAbortGiveBlocksBack) {
    make(100, 1 << 20);
    Insert ins;
    st_.begin(ins, 2, 100);
    std::string big(200, 'x');
    EXPECT_FALSE(st_.append(ins, big.data(), big.size()));  // over its limit: aborted
    EXPECT_FALSE(ins.active);
    st_.begin(ins, 2, 1 << 20);
    std::string chunk(10000, 'y');
    ASSERT_TRUE(st_.append(ins, chunk.data(), chunk.size()));
    EXPECT_EQ(st_.totals().memory_bytes, 3u * kBlockSize);
    st_.abort(ins);
    EXPECT_EQ(st_.totals().memory_bytes, 0u);
}

TEST_F(CacheStoreTest, MemoryIsBoundedAndClockEvicts) {
    make(256, 64 * kBlockSize);  // 64 blocks
    for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(put("GET:e/" + std::to_string(i), 2 * kBlockSize)) << i;  // 3 blocks each
        EXPECT_LE(st_.totals().memory_bytes, 64u * kBlockSize);
    }
    EXPECT_TRUE(check("GET:e/199", 2 * kBlockSize));
    EXPECT_GT(st_.totals().evictions, 0u);
    // Entries that are used get second chances.
    for (int i = 0; i < 200; ++i) {
        Found f;
        if (st_.find("GET:e/199", st_.hashKey("GET:e/199"), f)) {
            st_.touch(f.idx);
        }
        put("GET:f/" + std::to_string(i), 2 * kBlockSize);
        if (i % 4 == 0) {
            ASSERT_TRUE(check("GET:e/199", 2 * kBlockSize)) << i;
        }
    }
}

TEST_F(CacheStoreTest, BlocksStayPackedAtTheFrontAsEntriesAreReplaced) {
    // 40 one-block entries replaced again and again in a store of 1024 blocks: new blocks come
    // from the lowest free ones, so the entries never spread over (and make resident) the whole
    // segment.
    make(256, 1024 * kBlockSize);
    for (int round = 0; round < 100; ++round) {
        for (int k = 0; k < 40; ++k) {
            ASSERT_TRUE(put("GET:p/" + std::to_string(k), 100 + round));
        }
    }
    uint32_t highest = 0;
    for (int k = 0; k < 40; ++k) {
        const std::string key = "GET:p/" + std::to_string(k);
        Found f;
        ASSERT_TRUE(st_.find(key, st_.hashKey(key), f));
        highest = std::max(highest, f.first_block);
        EXPECT_TRUE(check(key, 199));
    }
    EXPECT_LT(highest, 41u);
    EXPECT_EQ(st_.totals().memory_bytes, 40u * kBlockSize);
}

TEST_F(CacheStoreTest, ExpiredEntriesGoWhateverTheirUse) {
    make(64, 16 * kBlockSize);
    ASSERT_TRUE(put("GET:old", 100, 0, /*lifetime=*/1, /*stored_us=*/1));  // long expired
    for (int i = 0; i < 15; ++i) {
        ASSERT_TRUE(put("GET:x" + std::to_string(i), 100, 0, 3600));
    }
    // Every entry was used; the expired one most of all.
    auto touch = [&](const std::string& k, int times) {
        Found f;
        ASSERT_TRUE(st_.find(k, st_.hashKey(k), f)) << k;
        for (int t = 0; t < times; ++t) {
            st_.touch(f.idx);
        }
    };
    touch("GET:old", 3);
    for (int i = 0; i < 15; ++i) {
        touch("GET:x" + std::to_string(i), 1);
    }
    ASSERT_TRUE(put("GET:one-more", 100, 0, 3600));  // the store is full: one entry goes
    EXPECT_FALSE(check("GET:old", 100));
    for (int i = 0; i < 15; ++i) {
        EXPECT_TRUE(check("GET:x" + std::to_string(i), 100)) << i;
    }
    EXPECT_EQ(st_.totals().expired, 1u);
    EXPECT_EQ(st_.totals().evictions, 0u);
}

TEST_F(CacheStoreTest, PurgeByPredicate) {
    make(100, 1 << 20);
    for (const char* k : {"GET:h/a", "GET:h/a?x", "GET:h/b", "GET:g/a"}) {
        ASSERT_TRUE(put(k, 10));
    }
    size_t n = st_.purge([](void*, std::string_view key) { return key.starts_with("GET:h/a"); },
                         nullptr, 0);
    EXPECT_EQ(n, 2u);
    EXPECT_TRUE(check("GET:h/b", 10));
    EXPECT_TRUE(check("GET:g/a", 10));
    EXPECT_EQ(st_.purge([](void*, std::string_view) { return true; }, nullptr, 0), 2u);
    EXPECT_EQ(st_.totals().memory_bytes, 0u);
}

TEST_F(CacheStoreTest, ReclaimAfterAWriterDiedBuildingAnInsert) {
    make(100, 1 << 20);
    ASSERT_TRUE(put("GET:kept", 100, 1));
    Insert ins;
    st_.begin(ins, 7, 1 << 20);
    std::string chunk(20000, 'z');
    ASSERT_TRUE(st_.append(ins, chunk.data(), chunk.size()));
    // Slot 7 dies here: its blocks are not in any entry.
    EXPECT_EQ(st_.totals().memory_bytes, 6u * kBlockSize);
    st_.reclaimSlot(7);
    EXPECT_EQ(st_.totals().memory_bytes, 1u * kBlockSize);
    EXPECT_TRUE(check("GET:kept", 100));
}

TEST_F(CacheStoreTest, ReclaimAfterAWriterDiedPublishing) {
    make(100, 1 << 20);
    ASSERT_TRUE(put("GET:victim", 9000, 3));
    ASSERT_TRUE(put("GET:other", 10, 3));
    Found f;
    ASSERT_TRUE(st_.find("GET:victim", st_.hashKey("GET:victim"), f));
    // Slot 3 began a write of that record (evicting it, or publishing over it) and died.
    EntryShm& e = entryArray()[f.idx];
    uint64_t token = 0;
    ASSERT_TRUE(shm::SeqLock::tryBeginWrite(e.version, 3, token));
    // Readers treat it as absent meanwhile.
    Found g;
    EXPECT_FALSE(st_.find("GET:victim", st_.hashKey("GET:victim"), g));
    st_.reclaimSlot(3);
    EXPECT_FALSE(st_.find("GET:victim", st_.hashKey("GET:victim"), g));  // void, not torn
    EXPECT_FALSE(shm::SeqLock::isWriting(e.version.load()));
    EXPECT_EQ(st_.totals().memory_bytes, 1u * kBlockSize);  // only "other"'s block
    EXPECT_TRUE(check("GET:other", 10));
    ASSERT_TRUE(put("GET:victim", 100, 4));  // the way is usable again
    EXPECT_TRUE(check("GET:victim", 100));
}

TEST_F(CacheStoreTest, ConcurrentWritersAndReadersNeverSeeTornData) {
    make(64, 48 * kBlockSize);  // small: constant eviction and block reuse
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (uint32_t w = 0; w < 3; ++w) {
        threads.emplace_back([&, w] {
            uint32_t i = w;
            while (!stop.load(std::memory_order_relaxed)) {
                std::string key = "GET:c/" + std::to_string(i % 50);
                put(key, 1000 + (i % 50) * 150, w);
                i += 3;
            }
        });
    }
    for (int r = 0; r < 2; ++r) {
        threads.emplace_back([&] {
            uint32_t i = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                std::string key = "GET:c/" + std::to_string(i++ % 50);
                Found f;
                if (!st_.find(key, st_.hashKey(key), f)) {
                    continue;
                }
                std::string got(f.meta.body_len, '\0');
                if (!st_.read(f, uint64_t{f.meta.key_len} + f.meta.head_len, got.data(),
                              got.size())) {
                    continue;  // changed while read: the reader is told, never misled
                }
                if (got == bodyFor(key, got.size()) && got.size() == 1000 + (i - 1) % 50 * 150) {
                    good.fetch_add(1);
                } else {
                    bad.fetch_add(1);
                }
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    stop.store(true);
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_GT(good.load(), 100u);
    // Every block is either free or in an entry.
    EXPECT_EQ(st_.purge([](void*, std::string_view) { return true; }, nullptr, 0),
              st_.totals().entries);
    EXPECT_EQ(st_.totals().memory_bytes, 0u);
}

TEST_F(CacheStoreTest, FillLock) {
    make(100, 1 << 20);
    const uint64_t h = st_.hashKey("GET:lock");
    uint64_t w1 = 0, w2 = 0;
    EXPECT_EQ(st_.lock(h, 1000000, 500000, w1), Store::Lock::Acquired);
    EXPECT_TRUE(st_.locked(h, 1200000));
    EXPECT_EQ(st_.lock(h, 1200000, 500000, w2), Store::Lock::Held);
    // Another key in the same lock slot (same bits 24.. of the hash, another tag): no wait.
    const uint64_t other = (h & ~uint64_t{0xffffff}) | ((h + 1) & 0xffffff);
    EXPECT_EQ(st_.lock(other, 1200000, 500000, w2), Store::Lock::Busy);
    // A holder that never unlocks: the lock expires at its deadline.
    EXPECT_FALSE(st_.locked(h, 1600000));
    EXPECT_EQ(st_.lock(h, 1600000, 500000, w2), Store::Lock::Acquired);
    st_.unlock(h, w1);  // stale: the new holder keeps it
    EXPECT_TRUE(st_.locked(h, 1700000));
    st_.unlock(h, w2);
    EXPECT_FALSE(st_.locked(h, 1700000));
}

}  // namespace
}  // namespace photon::mod::cache
