// SPDX-License-Identifier: Apache-2.0
// Atomic64/Atomic32: plain integers for shared-memory layouts, reached only through atomic_ref.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace photon::shm {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "64-bit atomics must be lock-free: shm words are shared across processes");
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free,
              "32-bit atomics must be lock-free: shm words are shared across processes");

/// A word of shared memory. It holds a plain integer, so structs made of these stay standard-layout
/// and trivially copyable, and a process that merely maps a segment runs no constructor (zeroed
/// memory is a valid value 0). Every access goes through std::atomic_ref with an explicit memory
/// order; the defaults are acquire for loads, release for stores and acq_rel for read-modify-write.
/// A call site that passes std::memory_order_relaxed must say in a comment why it suffices.
///
/// Methods are usable by any process that maps the word. They never block and never allocate.
/// Copying an AtomicWord copies the current value non-atomically: only do it to a word no other
/// process can see (e.g. a snapshot on the stack).
template <typename T>
class AtomicWord {
    static_assert(std::is_same_v<T, uint64_t> || std::is_same_v<T, uint32_t>,
                  "shm words are uint64_t or uint32_t");

public:
    using value_type = T;

    T load(std::memory_order mo = std::memory_order_acquire) const noexcept {
        return ref().load(mo);
    }
    void store(T v, std::memory_order mo = std::memory_order_release) noexcept {
        ref().store(v, mo);
    }
    T exchange(T v, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return ref().exchange(v, mo);
    }
    /// Returns the previous value. Wraps modulo 2^N like the underlying integer.
    T fetchAdd(T d, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return ref().fetch_add(d, mo);
    }
    T fetchSub(T d, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return ref().fetch_sub(d, mo);
    }
    T fetchOr(T bits, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return ref().fetch_or(bits, mo);
    }
    T fetchAnd(T bits, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return ref().fetch_and(bits, mo);
    }
    /// Strong compare-and-swap. On failure `expected` receives the current value.
    bool cas(T& expected, T desired, std::memory_order success = std::memory_order_acq_rel,
             std::memory_order failure = std::memory_order_acquire) noexcept {
        return ref().compare_exchange_strong(expected, desired, success, failure);
    }

private:
    std::atomic_ref<T> ref() const noexcept { return std::atomic_ref<T>(v_); }

    // `mutable` lets const readers form an atomic_ref (atomic_ref<const T> does not exist in
    // C++20); it does not affect triviality or layout.
    alignas(std::atomic_ref<T>::required_alignment) mutable T v_;
};

using Atomic64 = AtomicWord<uint64_t>;
using Atomic32 = AtomicWord<uint32_t>;

static_assert(sizeof(Atomic64) == 8 && alignof(Atomic64) == 8);
static_assert(sizeof(Atomic32) == 4 && alignof(Atomic32) == 4);
static_assert(std::is_trivially_copyable_v<Atomic64> && std::is_standard_layout_v<Atomic64>);
static_assert(std::is_trivially_copyable_v<Atomic32> && std::is_standard_layout_v<Atomic32>);
static_assert(std::is_trivially_default_constructible_v<Atomic64>);

}  // namespace photon::shm
