// SPDX-License-Identifier: Apache-2.0
#include "modules/cache/store.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "shm/clock.h"
#include "shm/seqlock.h"

namespace photon::mod::cache {

namespace {

constexpr uint32_t kNoBlock = 0xffffffffu;
// How many entries one CLOCK call may look at before giving up (an index full of entries
// being written, or of entries in use, must not make an insert spin).
constexpr uint32_t kClockSteps = 4096;
// Evictions one block claim may cause before the insert gives up.
constexpr int kEvictTries = 32;

constexpr size_t roundUp(size_t v, size_t to) { return (v + to - 1) / to * to; }

// Begins a write on `word` only if it still holds `expected` (an even version).
bool beginIf(shm::Atomic64& word, uint64_t expected, uint32_t writer, uint64_t& token) {
    if (shm::SeqLock::isWriting(expected)) {
        return false;
    }
    const uint64_t odd = (expected & ~uint64_t{0xff}) | (uint64_t{writer & 0x7fu} << 1) | 1u;
    uint64_t cur = expected;
    if (!word.cas(cur, odd, std::memory_order_acquire, std::memory_order_relaxed)) {
        return false;
    }
    std::atomic_thread_fence(std::memory_order_release);
    token = odd;
    return true;
}

// Relaxed loads below are fields read under a seqlock: readValid() orders and validates them.
uint32_t ld(const shm::Atomic32& w) { return w.load(std::memory_order_relaxed); }
uint64_t ld(const shm::Atomic64& w) { return w.load(std::memory_order_relaxed); }

}  // namespace

uint32_t Store::entriesFor(uint64_t max_entries) {
    uint64_t sets = 1;
    while (sets * kWays < max_entries && sets < (uint64_t{1} << 24)) {
        sets <<= 1;
    }
    return static_cast<uint32_t>(sets * kWays);
}

uint32_t Store::blocksFor(uint64_t max_memory) {
    uint64_t b = max_memory / kBlockSize;
    return static_cast<uint32_t>(std::clamp<uint64_t>(b, 16, uint64_t{1} << 30));
}

uint64_t Store::bodyBytes(uint32_t entries, uint32_t blocks) {
    size_t meta = sizeof(CacheHeadShm) + sizeof(CacheStatsShm) * shm::kMaxSlots +
                  sizeof(shm::Atomic64) * kLocks + sizeof(EntryShm) * entries +
                  2 * sizeof(shm::Atomic32) * size_t{blocks};
    return roundUp(meta, kBlockSize) + size_t{blocks} * kBlockSize;
}

void Store::bind(void* body, uint32_t entries, uint32_t blocks) {
    if (body == nullptr) {
        *this = Store();
        return;
    }
    auto* p = static_cast<char*>(body);
    head_ = reinterpret_cast<CacheHeadShm*>(p);
    p += sizeof(CacheHeadShm);
    stats_ = reinterpret_cast<CacheStatsShm*>(p);
    p += sizeof(CacheStatsShm) * shm::kMaxSlots;
    locks_ = reinterpret_cast<shm::Atomic64*>(p);
    p += sizeof(shm::Atomic64) * kLocks;
    entries_ = reinterpret_cast<EntryShm*>(p);
    p += sizeof(EntryShm) * entries;
    owner_ = reinterpret_cast<shm::Atomic32*>(p);
    p += sizeof(shm::Atomic32) * blocks;
    next_ = reinterpret_cast<shm::Atomic32*>(p);
    p += sizeof(shm::Atomic32) * blocks;
    data_ = static_cast<char*>(body) +
            roundUp(static_cast<size_t>(p - static_cast<char*>(body)), kBlockSize);
    entry_count_ = entries;
    set_mask_ = entries / kWays - 1;
    block_count_ = blocks;
    seed_ = head_->seed.load();
}

void Store::format(uint64_t seed) {
    head_->seed.store(seed == 0 ? 1 : seed);
    head_->free_blocks.store(block_count_);
    seed_ = head_->seed.load();
}

uint64_t Store::hashKey(std::string_view key) const {
    uint64_t h = XXH3_64bits_withSeed(key.data(), key.size(), seed_);
    return h == 0 ? 1 : h;
}

bool Store::find(std::string_view key, uint64_t hash, Found& out) const {
    if (entries_ == nullptr || key.size() > kMaxKey) {
        return false;
    }
    const uint32_t set = static_cast<uint32_t>(hash) & set_mask_;
    for (uint32_t w = 0; w < kWays; ++w) {
        const uint32_t idx = set * kWays + w;
        const EntryShm& e = entries_[idx];
        if (ld(e.key_hash) != hash) {
            continue;
        }
        const uint64_t v = shm::SeqLock::readBegin(e.version);
        if (shm::SeqLock::isWriting(v)) {
            continue;
        }
        Found f;
        f.idx = idx;
        f.version = v;
        f.first_block = ld(e.first_block);
        f.nblocks = ld(e.nblocks);
        f.meta.stored_us = ld(e.stored_us);
        f.meta.body_len = ld(e.body_len);
        const uint32_t lens = ld(e.lens);
        f.meta.key_len = lens & 0xffff;
        f.meta.head_len = lens >> 16;
        f.meta.lifetime = ld(e.lifetime);
        f.meta.initial_age = ld(e.initial_age);
        f.meta.flags = ld(e.flags);
        f.meta.swr = ld(e.swr);
        f.meta.sie = ld(e.sie);
        const uint64_t h2 = ld(e.key_hash);
        if (!shm::SeqLock::readValid(e.version, v) || h2 != hash) {
            continue;
        }
        if (f.meta.key_len != key.size() || f.first_block >= block_count_ || f.nblocks == 0) {
            continue;
        }
        // The key is at the start of the first block (kMaxKey < kBlockSize).
        if (std::memcmp(blockData(f.first_block), key.data(), key.size()) != 0) {
            continue;
        }
        if (!unchanged(f)) {
            continue;
        }
        out = f;
        return true;
    }
    return false;
}

bool Store::unchanged(const Found& f) const {
    return shm::SeqLock::readValid(entries_[f.idx].version, f.version);
}

bool Store::read(const Found& f, uint64_t off, char* dst, size_t n) const {
    uint32_t b = f.first_block;
    uint32_t hops = static_cast<uint32_t>(off / kBlockSize);
    if (hops >= f.nblocks) {
        return false;
    }
    for (uint32_t i = 0; i < hops; ++i) {
        b = ld(next_[b]);
        if (b >= block_count_) {
            return false;  // the chain changed under us
        }
    }
    size_t in = static_cast<size_t>(off % kBlockSize);
    uint32_t seen = hops;
    while (n > 0) {
        size_t k = std::min(n, kBlockSize - in);
        std::memcpy(dst, blockData(b) + in, k);
        dst += k;
        n -= k;
        in = 0;
        if (n > 0) {
            if (++seen >= f.nblocks) {
                return false;
            }
            b = ld(next_[b]);
            if (b >= block_count_) {
                return false;
            }
        }
    }
    return unchanged(f);
}

void Store::touch(uint32_t idx) {
    shm::Atomic32& h = entries_[idx].hits;
    uint32_t v = h.load(std::memory_order_relaxed);  // a lost increment only ages it sooner
    if (v < 3) {
        h.store(v + 1, std::memory_order_relaxed);
    }
}

void Store::freeChain(uint32_t first, uint32_t nblocks, uint32_t owner) {
    uint32_t b = first;
    for (uint32_t i = 0; i < nblocks && b < block_count_; ++i) {
        uint32_t nx = ld(next_[b]);  // read before the block can be claimed again
        uint32_t expect = owner;
        if (owner_[b].cas(expect, 0)) {
            head_->free_blocks.fetchAdd(1);
            // The next search starts at the lowest block known free: the store stays packed
            // at the front of the segment, so the pages it touches (every process's resident
            // memory) follow what it holds instead of creeping over the whole max_memory.
            uint64_t c = head_->block_cursor.load(std::memory_order_relaxed);
            while (c > b && !head_->block_cursor.cas(c, b)) {
            }
        }
        b = nx;
    }
}

void Store::clearEntry(uint32_t idx, uint32_t /*writer*/, uint64_t token) {
    EntryShm& e = entries_[idx];
    const uint32_t first = ld(e.first_block);
    const uint32_t nb = ld(e.nblocks);
    e.key_hash.store(0, std::memory_order_relaxed);
    e.nblocks.store(0, std::memory_order_relaxed);
    freeChain(first, nb, kEntryOwned | idx);
    shm::SeqLock::endWrite(e.version, token);
}

bool Store::remove(const Found& f, uint32_t writer) {
    uint64_t token = 0;
    if (!beginIf(entries_[f.idx].version, f.version, writer, token)) {
        return false;
    }
    clearEntry(f.idx, writer, token);
    return true;
}

bool Store::evictOne(uint32_t writer) {
    const uint64_t now = shm::monotonicMicros();
    const uint32_t steps = std::min<uint32_t>(kClockSteps, entry_count_ * 4);
    for (uint32_t s = 0; s < steps; ++s) {
        const uint32_t idx =
            static_cast<uint32_t>(head_->clock_hand.fetchAdd(1, std::memory_order_relaxed) %
                                  entry_count_);  // a position only
        EntryShm& e = entries_[idx];
        if (ld(e.key_hash) == 0) {
            continue;
        }
        const uint64_t v = e.version.load();
        if (shm::SeqLock::isWriting(v)) {
            continue;
        }
        // An entry past every use it could still have (stale-while-revalidate/-if-error
        // included) goes whatever its counter says.
        const uint64_t stored = ld(e.stored_us);
        const uint64_t age = ld(e.initial_age) + (now > stored ? (now - stored) / 1000000 : 0);
        const uint64_t keep = uint64_t{ld(e.lifetime)} + std::max(ld(e.swr), ld(e.sie));
        const bool dead = (ld(e.flags) & kVaryMarker) == 0 && age > keep;
        if (!dead) {
            uint32_t h = e.hits.load(std::memory_order_relaxed);  // CLOCK: second chances
            if (h > 0) {
                e.hits.store(h - 1, std::memory_order_relaxed);
                continue;
            }
        }
        uint64_t token = 0;
        if (!beginIf(e.version, v, writer, token)) {
            continue;
        }
        clearEntry(idx, writer, token);
        bump(dead ? stats(writer).expired : stats(writer).evictions);
        return true;
    }
    return false;
}

bool Store::claimBlock(uint32_t owner, uint32_t& out) {
    if (head_->free_blocks.load(std::memory_order_relaxed) == 0) {  // a hint
        return false;
    }
    const uint32_t start = static_cast<uint32_t>(
        head_->block_cursor.load(std::memory_order_relaxed) % block_count_);  // a position only
    for (uint32_t i = 0; i < block_count_; ++i) {
        uint32_t b = start + i;
        if (b >= block_count_) {
            b -= block_count_;
        }
        if (owner_[b].load(std::memory_order_relaxed) != 0) {  // confirmed by the CAS
            continue;
        }
        uint32_t expect = 0;
        if (!owner_[b].cas(expect, owner)) {
            continue;
        }
        uint64_t fb = head_->free_blocks.load(std::memory_order_relaxed);
        while (fb != 0 && !head_->free_blocks.cas(fb, fb - 1)) {
        }
        head_->block_cursor.store(b + 1u, std::memory_order_relaxed);
        next_[b].store(kNoBlock, std::memory_order_relaxed);
        out = b;
        return true;
    }
    head_->free_blocks.store(0, std::memory_order_relaxed);  // the hint was wrong
    return false;
}

void Store::begin(Insert& ins, uint32_t writer, uint64_t limit) const {
    ins = Insert();
    ins.active = entries_ != nullptr;
    ins.writer = writer;
    ins.limit = limit;
}

bool Store::append(Insert& ins, const char* p, size_t n) {
    if (!ins.active) {
        return false;
    }
    if (ins.total + n > ins.limit) {
        abort(ins);
        return false;
    }
    while (n > 0) {
        if (ins.nblocks == 0 || ins.used == kBlockSize) {
            uint32_t b = 0;
            bool got = claimBlock(ins.writer + 1, b);
            for (int t = 0; !got && t < kEvictTries; ++t) {
                if (!evictOne(ins.writer)) {
                    break;
                }
                got = claimBlock(ins.writer + 1, b);
            }
            if (!got) {
                abort(ins);
                return false;
            }
            if (ins.nblocks == 0) {
                ins.first = b;
            } else {
                next_[ins.last].store(b, std::memory_order_relaxed);
            }
            ins.last = b;
            ins.used = 0;
            ++ins.nblocks;
        }
        size_t k = std::min<size_t>(n, kBlockSize - ins.used);
        std::memcpy(blockData(ins.last) + ins.used, p, k);
        ins.used += static_cast<uint32_t>(k);
        ins.total += k;
        p += k;
        n -= k;
    }
    return true;
}

void Store::abort(Insert& ins) {
    if (ins.active && ins.nblocks != 0) {
        freeChain(ins.first, ins.nblocks, ins.writer + 1);
    }
    ins = Insert();
}

bool Store::commit(Insert& ins, uint64_t hash, const EntryMeta& meta) {
    if (!ins.active || ins.nblocks == 0) {
        abort(ins);
        return false;
    }
    const uint32_t set = static_cast<uint32_t>(hash) & set_mask_;
    // The way: the same key's, else a free one, else the least used.
    uint32_t pick = kNoBlock;
    uint32_t best_hits = 4;
    for (uint32_t w = 0; w < kWays; ++w) {
        const uint32_t idx = set * kWays + w;
        const uint64_t h = ld(entries_[idx].key_hash);
        if (h == hash) {
            pick = idx;
            break;
        }
        const uint32_t hits = h == 0 ? 0 : 1 + entries_[idx].hits.load(std::memory_order_relaxed);
        if (hits < best_hits) {
            best_hits = hits;
            pick = idx;
        }
    }
    EntryShm& e = entries_[pick];
    uint64_t token = 0;
    if (!shm::SeqLock::tryBeginWrite(e.version, ins.writer, token)) {
        abort(ins);  // another process is writing this way: drop ours
        return false;
    }
    const uint64_t old = ld(e.key_hash);
    if (old != 0) {
        freeChain(ld(e.first_block), ld(e.nblocks), kEntryOwned | pick);
        if (old != hash) {
            bump(stats(ins.writer).evictions);
        }
    }
    e.key_hash.store(0, std::memory_order_relaxed);
    e.stored_us.store(meta.stored_us, std::memory_order_relaxed);
    e.body_len.store(meta.body_len, std::memory_order_relaxed);
    e.first_block.store(ins.first, std::memory_order_relaxed);
    e.nblocks.store(ins.nblocks, std::memory_order_relaxed);
    e.lens.store((meta.key_len & 0xffff) | (meta.head_len << 16), std::memory_order_relaxed);
    e.lifetime.store(meta.lifetime, std::memory_order_relaxed);
    e.initial_age.store(meta.initial_age, std::memory_order_relaxed);
    e.flags.store(meta.flags, std::memory_order_relaxed);
    e.swr.store(meta.swr, std::memory_order_relaxed);
    e.sie.store(meta.sie, std::memory_order_relaxed);
    e.hits.store(0, std::memory_order_relaxed);
    uint32_t b = ins.first;
    for (uint32_t i = 0; i < ins.nblocks; ++i) {
        uint32_t nx = ld(next_[b]);
        owner_[b].store(kEntryOwned | pick);
        b = nx;
    }
    e.key_hash.store(hash, std::memory_order_relaxed);
    shm::SeqLock::endWrite(e.version, token);
    bump(stats(ins.writer).stores);
    ins = Insert();
    return true;
}

size_t Store::purge(bool (*match)(void* ctx, std::string_view key), void* ctx, uint32_t writer) {
    if (entries_ == nullptr) {
        return 0;
    }
    size_t n = 0;
    char key[kMaxKey];
    for (uint32_t idx = 0; idx < entry_count_; ++idx) {
        EntryShm& e = entries_[idx];
        const uint64_t h = ld(e.key_hash);
        if (h == 0) {
            continue;
        }
        const uint64_t v = e.version.load();
        if (shm::SeqLock::isWriting(v)) {
            continue;
        }
        const uint32_t first = ld(e.first_block);
        const uint32_t klen = ld(e.lens) & 0xffff;
        if (first >= block_count_ || klen > kMaxKey) {
            continue;
        }
        std::memcpy(key, blockData(first), klen);
        if (!shm::SeqLock::readValid(e.version, v) || !match(ctx, std::string_view(key, klen))) {
            continue;
        }
        uint64_t token = 0;
        if (beginIf(e.version, v, writer, token)) {
            clearEntry(idx, writer, token);
            ++n;
        }
    }
    return n;
}

namespace {
constexpr uint64_t kTagMask = 0xffffff;
uint64_t lockWord(uint64_t hash, uint64_t deadline_us) {
    return ((deadline_us / 1000) << 24) | (hash & kTagMask);
}
uint64_t lockDeadlineUs(uint64_t word) { return (word >> 24) * 1000; }
}  // namespace

Store::Lock Store::lock(uint64_t hash, uint64_t now_us, uint64_t timeout_us, uint64_t& word) {
    shm::Atomic64& w = locks_[(hash >> 24) % kLocks];
    uint64_t cur = w.load();
    while (true) {
        if (cur != 0 && lockDeadlineUs(cur) > now_us) {
            return (cur & kTagMask) == (hash & kTagMask) ? Lock::Held : Lock::Busy;
        }
        const uint64_t mine = lockWord(hash, now_us + timeout_us);
        if (w.cas(cur, mine)) {  // free, or its holder's deadline passed
            word = mine;
            return Lock::Acquired;
        }
    }
}

bool Store::locked(uint64_t hash, uint64_t now_us) const {
    const uint64_t cur = locks_[(hash >> 24) % kLocks].load();
    return cur != 0 && (cur & kTagMask) == (hash & kTagMask) && lockDeadlineUs(cur) > now_us;
}

void Store::unlock(uint64_t hash, uint64_t word) {
    uint64_t expect = word;
    locks_[(hash >> 24) % kLocks].cas(expect, 0);  // unless it expired and was taken over
}

CacheStats Store::totals() const {
    CacheStats s;
    if (entries_ == nullptr) {
        return s;
    }
    for (uint32_t i = 0; i < shm::kMaxSlots; ++i) {
        const CacheStatsShm& c = stats_[i];
        s.hits += c.hits.load(std::memory_order_relaxed);  // monotonic counters, summed
        s.misses += c.misses.load(std::memory_order_relaxed);
        s.stores += c.stores.load(std::memory_order_relaxed);
        s.evictions += c.evictions.load(std::memory_order_relaxed);
        s.expired += c.expired.load(std::memory_order_relaxed);
        s.revalidated += c.revalidated.load(std::memory_order_relaxed);
        s.bypass += c.bypass.load(std::memory_order_relaxed);
        s.stale += c.stale.load(std::memory_order_relaxed);
    }
    for (uint32_t idx = 0; idx < entry_count_; ++idx) {
        const EntryShm& e = entries_[idx];
        if (ld(e.key_hash) == 0) {
            continue;
        }
        if ((ld(e.flags) & kVaryMarker) == 0) {
            ++s.entries;
        }
    }
    // Every block not free: stored entries and inserts in progress (a leak would show here).
    for (uint32_t b = 0; b < block_count_; ++b) {
        if (owner_[b].load(std::memory_order_relaxed) != 0) {  // a gauge
            s.memory_bytes += kBlockSize;
        }
    }
    s.capacity_bytes = uint64_t{block_count_} * kBlockSize;
    return s;
}

void Store::reclaimSlot(uint32_t slot) {
    if (entries_ == nullptr) {
        return;
    }
    // Entries it was writing: free every block they own (old chain or new), then void them.
    for (uint32_t idx = 0; idx < entry_count_; ++idx) {
        EntryShm& e = entries_[idx];
        const uint64_t v = e.version.load();
        if (!shm::SeqLock::isWriting(v) || shm::SeqLock::writerOf(v) != (slot & 0x7fu)) {
            continue;
        }
        e.key_hash.store(0, std::memory_order_relaxed);
        e.nblocks.store(0, std::memory_order_relaxed);
        for (uint32_t b = 0; b < block_count_; ++b) {
            uint32_t expect = kEntryOwned | idx;
            if (owner_[b].cas(expect, 0)) {
                head_->free_blocks.fetchAdd(1);
            }
        }
        shm::SeqLock::voidIfOwnedBy(e.version, slot);
    }
    // Blocks of the insert it was building.
    uint64_t free_now = 0;
    for (uint32_t b = 0; b < block_count_; ++b) {
        uint32_t expect = slot + 1;
        owner_[b].cas(expect, 0);
        if (owner_[b].load(std::memory_order_relaxed) == 0) {  // a count for the hint
            ++free_now;
        }
    }
    head_->free_blocks.store(free_now);  // the hint, recounted (a process dies rarely)
}

}  // namespace photon::mod::cache
