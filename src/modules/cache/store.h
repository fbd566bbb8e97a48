// SPDX-License-Identifier: Apache-2.0
// The response cache's shared-memory store: one entry index and one body store for every
// worker, without a lock. See src/shm/README.md for the rules it follows.
//
// Entries live in a set-associative index (kWays entries per set, the set chosen by the key's
// hash). Each entry is a seqlocked record; its data (the key, the stored response head, the body)
// is a chain of fixed-size blocks in the body store. A block's owner word says who holds it:
// free (0), a process slot building an insert (slot + 1), or an entry (kEntryOwned | index).
// Blocks are claimed with one CAS on that word, so every block is always accounted for:
//
// * a lookup reads the record under its seqlock, copies the data it needs and checks the
//   version again: an entry evicted or replaced meanwhile reads as changed, never as wrong data;
// * an insert claims blocks for its slot, fills them, then publishes the record under the
//   seqlock (evicting the way's previous entry first); a process killed at any instruction
//   leaves either blocks owned by its slot or a record left odd by its slot, and the master's
//   reclaimSlot() frees both, so nothing is half-visible and no space leaks;
// * eviction is CLOCK over the whole index with a small hit counter (0-3) per entry; a new entry
//   takes a free way of its set, else the way with the lowest counter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "shm/atomic.h"
#include "shm/slot_layout.h"

namespace photon::mod::cache {

inline constexpr uint32_t kCacheLayoutVersion = 1;
inline constexpr uint32_t kWays = 8;
inline constexpr uint32_t kBlockSize = 4096;
/// Longest key stored (it must fit the first block with room to spare).
inline constexpr uint32_t kMaxKey = 2048;
/// Largest stored response head.
inline constexpr uint32_t kMaxHead = 65535;
inline constexpr uint32_t kEntryOwned = 0x80000000u;

/// Entry flags.
enum : uint32_t {
    kVaryMarker = 1u << 0,      // not a response: the data is the key and the Vary field names
    kNoCache = 1u << 1,         // response no-cache: revalidate before every use
    kMustRevalidate = 1u << 2,  // must-revalidate / proxy-revalidate: never served stale
    kHasEtag = 1u << 3,
    kHasLastModified = 1u << 4,
    kVaried = 1u << 5,  // a variant of a Vary marker
};

/// Request coalescing: one fill at a time per key, across workers. A lock word is
/// (deadline in CLOCK_MONOTONIC ms << 24) | 24-bit key tag; 0 = free. A holder that dies
/// leaves a word that expires at its deadline (lock_timeout).
inline constexpr uint32_t kLocks = 4096;

/// Segment head.
struct CacheHeadShm {
    shm::Atomic64 seed;          // key hash seed, written once by the master
    shm::Atomic64 clock_hand;    // next entry the CLOCK looks at
    shm::Atomic64 block_cursor;  // where the next free-block search starts
    shm::Atomic64 free_blocks;   // a hint: blocks whose owner word is 0
    shm::Atomic64 reserved[4];
};
static_assert(std::is_trivially_copyable_v<CacheHeadShm> && sizeof(CacheHeadShm) == 64,
              "layout changed: bump kCacheLayoutVersion");

/// Counters, one column per process slot (single writer: store(load() + 1)). A process that
/// takes a slot over goes on adding to its column, so the sums never go backwards.
struct CacheStatsShm {
    shm::Atomic64 hits;
    shm::Atomic64 misses;
    shm::Atomic64 stores;
    shm::Atomic64 evictions;
    shm::Atomic64 expired;
    shm::Atomic64 revalidated;
    shm::Atomic64 bypass;
    shm::Atomic64 stale;
};
static_assert(std::is_trivially_copyable_v<CacheStatsShm> && sizeof(CacheStatsShm) == 64,
              "layout changed: bump kCacheLayoutVersion");

/// One entry. Every field but `hits` is written under `version` (shm::SeqLock).
struct EntryShm {
    shm::Atomic64 version;
    shm::Atomic64 key_hash;   // 0 = empty
    shm::Atomic64 stored_us;  // CLOCK_MONOTONIC µs when the response was received
    shm::Atomic32 body_len;
    shm::Atomic32 first_block;
    shm::Atomic32 nblocks;
    shm::Atomic32 lens;         // key length (low 16 bits) and head length (high 16 bits)
    shm::Atomic32 lifetime;     // freshness lifetime, seconds
    shm::Atomic32 initial_age;  // corrected initial age, seconds (RFC 9111 §4.2.3)
    shm::Atomic32 flags;
    shm::Atomic32 hits;  // CLOCK counter, 0-3; relaxed, outside the seqlock
    shm::Atomic32 swr;   // stale-while-revalidate, seconds
    shm::Atomic32 sie;   // stale-if-error, seconds
};
static_assert(std::is_trivially_copyable_v<EntryShm> && sizeof(EntryShm) == 64,
              "layout changed: bump kCacheLayoutVersion");

/// What an entry says about its response (a snapshot taken under the seqlock).
struct EntryMeta {
    uint64_t stored_us = 0;
    uint32_t body_len = 0;
    uint32_t key_len = 0;
    uint32_t head_len = 0;
    uint32_t lifetime = 0;
    uint32_t initial_age = 0;
    uint32_t flags = 0;
    uint32_t swr = 0;
    uint32_t sie = 0;
};

/// A found entry: where it is and the version its snapshot was taken at.
struct Found {
    uint32_t idx = 0;
    uint64_t version = 0;
    uint32_t first_block = 0;
    uint32_t nblocks = 0;
    EntryMeta meta;
};

/// An insert being built by one process (lives in the connection).
struct Insert {
    bool active = false;
    uint32_t writer = 0;  // process slot
    uint32_t first = 0;
    uint32_t last = 0;
    uint32_t nblocks = 0;
    uint32_t used = 0;   // bytes used in `last`
    uint64_t total = 0;  // bytes appended
    uint64_t limit = 0;  // most bytes the insert may take
};

/// Sums over every slot's counters, plus the index's own gauges.
struct CacheStats {
    uint64_t hits = 0, misses = 0, stores = 0, evictions = 0, expired = 0, revalidated = 0,
             bypass = 0, stale = 0;
    uint64_t entries = 0;       // responses stored (Vary markers not counted)
    uint64_t memory_bytes = 0;  // bytes of blocks in use
    uint64_t capacity_bytes = 0;
};

class Store {
public:
    /// Rounds `max_entries` up to whole sets (a power of two of them).
    static uint32_t entriesFor(uint64_t max_entries);
    /// Blocks in `max_memory` bytes (at least 16).
    static uint32_t blocksFor(uint64_t max_memory);
    /// Bytes of segment body for that geometry.
    static uint64_t bodyBytes(uint32_t entries, uint32_t blocks);

    /// Binds this view to a segment body (any process). `body` is null to unbind.
    void bind(void* body, uint32_t entries, uint32_t blocks);
    /// Master, on a fresh (zero-filled) segment: the hash seed and the free-block count.
    void format(uint64_t seed);
    bool mapped() const { return entries_ != nullptr; }
    uint32_t entryCount() const { return entry_count_; }
    uint32_t blockCount() const { return block_count_; }

    uint64_t hashKey(std::string_view key) const;

    /// Finds the entry stored under `key` (hash = hashKey(key)). A torn or changing entry reads
    /// as absent.
    bool find(std::string_view key, uint64_t hash, Found& out) const;
    /// Copies `n` bytes of the entry's data (key, head, body) from `off`. False when the entry
    /// changed since find() (nothing copied can be trusted then).
    bool read(const Found& f, uint64_t off, char* dst, size_t n) const;
    /// Whether the entry is still the one find() returned.
    bool unchanged(const Found& f) const;
    /// Notes a use of the entry for the CLOCK.
    void touch(uint32_t idx);
    /// Removes the entry if it is still the one `f` saw. `writer` = this process's slot.
    bool remove(const Found& f, uint32_t writer);

    // ----- inserts -----
    /// Starts an insert of at most `limit` bytes of data.
    void begin(Insert& ins, uint32_t writer, uint64_t limit) const;
    /// Appends data; false (the insert aborted, its blocks freed) when it would exceed its limit
    /// or no block could be had.
    bool append(Insert& ins, const char* p, size_t n);
    /// Publishes the insert as the entry for `hash` (replacing an entry with the same hash).
    /// The insert is over either way.
    bool commit(Insert& ins, uint64_t hash, const EntryMeta& meta);
    /// Gives back the insert's blocks.
    void abort(Insert& ins);

    /// Visits every stored entry whose key passes `match` and removes it; returns how many.
    size_t purge(bool (*match)(void* ctx, std::string_view key), void* ctx, uint32_t writer);

    // ----- request coalescing -----
    enum class Lock : uint8_t {
        Acquired,  // this request fills the key: `word` is the lock to release
        Held,      // another request is filling it
        Busy,      // the lock slot is held for another key: no coalescing
    };
    Lock lock(uint64_t hash, uint64_t now_us, uint64_t timeout_us, uint64_t& word);
    /// Whether the fill of `hash` is still in progress.
    bool locked(uint64_t hash, uint64_t now_us) const;
    void unlock(uint64_t hash, uint64_t word);

    // ----- counters -----
    CacheStatsShm& stats(uint32_t slot) { return stats_[slot % shm::kMaxSlots]; }
    static void bump(shm::Atomic64& c) {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // own column
    }
    CacheStats totals() const;

    /// Master, after a process died: completes or voids what it left half-done.
    void reclaimSlot(uint32_t slot);

private:
    bool evictOne(uint32_t writer);
    bool claimBlock(uint32_t owner, uint32_t& out);
    void freeChain(uint32_t first, uint32_t nblocks, uint32_t owner);
    void clearEntry(uint32_t idx, uint32_t writer, uint64_t token);
    char* blockData(uint32_t b) const { return data_ + static_cast<size_t>(b) * kBlockSize; }

    CacheHeadShm* head_ = nullptr;
    CacheStatsShm* stats_ = nullptr;
    EntryShm* entries_ = nullptr;
    shm::Atomic32* owner_ = nullptr;  // per block
    shm::Atomic32* next_ = nullptr;   // per block: the next block of its chain
    shm::Atomic64* locks_ = nullptr;  // kLocks words
    char* data_ = nullptr;
    uint32_t entry_count_ = 0;
    uint32_t set_mask_ = 0;
    uint32_t block_count_ = 0;
    uint64_t seed_ = 0;
};

}  // namespace photon::mod::cache
