// SPDX-License-Identifier: Apache-2.0
// SeqLock: writer-tagged sequence locks over one Atomic64 version word, recoverable after kill -9.
#pragma once

#include <atomic>
#include <cstdint>

#include "shm/atomic.h"

namespace photon::shm {

/// A sequence lock for a multi-word shm record. The version word is laid out as
///
///   bit 0      1 while a write is in progress ("odd")
///   bits 1..7  the writer's id while odd: a process slot (0..126) or kMasterWriter
///   bits 8..63 the number of completed writes
///
/// Writers start with one CAS from an even version to an odd one, so concurrent writers are safe
/// (the loser gets false and does not write). Readers never block: they retry a bounded number of
/// times and then treat the record as absent or stale. If a writer dies while the word is odd, the
/// master's reclaim of that writer's slot calls voidIfOwnedBy(), which completes the version so
/// readers make progress again; the record's fields may then be half-updated, so only protect
/// fields for which any mix of old and new values is harmless, or validate them separately.
///
/// Fields inside the record must themselves be Atomic64/Atomic32, accessed with relaxed order
/// between begin/end (the fences here provide the ordering). All functions are lock-free and usable
/// by any process that maps the record. Never log or make syscalls between begin and end.
class SeqLock {
public:
    /// Writer id used by the master process (which owns no slot).
    static constexpr uint32_t kMasterWriter = 127;
    /// Suggested bound for reader retries.
    static constexpr int kReadAttempts = 64;

    static constexpr bool isWriting(uint64_t version) { return (version & 1u) != 0; }
    static constexpr uint32_t writerOf(uint64_t version) {
        return static_cast<uint32_t>((version >> 1) & 0x7fu);
    }
    static constexpr uint64_t sequenceOf(uint64_t version) { return version >> 8; }

    /// Starts a write as `writer` (0..127). Returns false, without side effects, if another write
    /// is in progress. On success `token` must be passed to endWrite().
    static bool tryBeginWrite(Atomic64& word, uint32_t writer, uint64_t& token) noexcept {
        uint64_t cur = word.load(std::memory_order_relaxed);  // validated by the CAS below
        if (isWriting(cur)) {
            return false;
        }
        const uint64_t odd = (cur & ~uint64_t{0xff}) | (uint64_t{writer & 0x7fu} << 1) | 1u;
        if (!word.cas(cur, odd, std::memory_order_acquire, std::memory_order_relaxed)) {
            return false;
        }
        // Orders the odd version before every field store that follows.
        std::atomic_thread_fence(std::memory_order_release);
        token = odd;
        return true;
    }

    /// Completes a write begun with tryBeginWrite(): publishes the next even version (release).
    static void endWrite(Atomic64& word, uint64_t token) noexcept {
        word.store(nextEven(token), std::memory_order_release);
    }

    /// Reader side: returns the version to pass to readValid(). If it is odd a write is in
    /// progress; retry (bounded) instead of reading.
    static uint64_t readBegin(const Atomic64& word) noexcept { return word.load(); }

    /// Reader side, after loading the fields (relaxed): true if they form a consistent snapshot.
    static bool readValid(const Atomic64& word, uint64_t begin) noexcept {
        std::atomic_thread_fence(std::memory_order_acquire);
        // Relaxed: the acquire fence above orders the field loads before this load.
        return !isWriting(begin) && word.load(std::memory_order_relaxed) == begin;
    }

    /// Recovery (master, after `writer` is known dead): if the word is odd and tagged with
    /// `writer`, moves it to the next even version. Returns true if it did.
    static bool voidIfOwnedBy(Atomic64& word, uint32_t writer) noexcept {
        uint64_t cur = word.load();
        while (isWriting(cur) && writerOf(cur) == (writer & 0x7fu)) {
            if (word.cas(cur, nextEven(cur))) {
                return true;
            }
        }
        return false;
    }

private:
    static constexpr uint64_t nextEven(uint64_t odd) { return ((odd >> 8) + 1) << 8; }
};

}  // namespace photon::shm
