// SPDX-License-Identifier: Apache-2.0
// GCRA rate-limit decisions over a fixed-capacity key table in shared memory (STYLE.md §5.8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "modules/ratelimit/gcra_layout.h"

namespace photon::mod::ratelimit {

/// A limit's shape: a token bucket of `burst` requests, refilled at `rate_per_second` (may be
/// below 1, e.g. 0.5), starting full. As GCRA: emission interval T = 1 s / rate, tolerance
/// (burst - 1) * T.
struct GcraParams {
    uint64_t interval_us = 1'000'000;  // T; 0 = rate 0 (only the initial burst is ever admitted)
    uint64_t tolerance_us = 0;         // (burst - 1) * T
    uint32_t burst = 1;

    /// From a rate (requests per second, > 0 or 0) and a burst (>= 1; 0 admits nothing).
    static GcraParams make(double rate_per_second, uint32_t burst);
};

/// The outcome of one decision.
struct GcraDecision {
    enum class Kind : uint8_t {
        Allowed,
        Limited,
        TableFull,  // no slot for a new key: the limit's on_full policy decides
        Contended,  // the key's word kept changing (bounded retries): refused as Limited
    };
    Kind kind = Kind::Allowed;
    uint32_t remaining = 0;       // requests the key may still make at once (Allowed/Limited)
    uint64_t retry_after_us = 0;  // Limited: until one more request is admitted
    uint64_t reset_us = 0;        // until the bucket is full again
};

/// A view of one limit's table (RateSlotShm[capacity], capacity a power of two) in a mapped
/// segment. Cheap to copy; any process that maps the segment may decide. Never blocks, never
/// allocates; a decision costs one probe sequence and one CAS in the common case.
class GcraTable {
public:
    /// Longest probe sequence; a key that finds no slot within it is TableFull.
    static constexpr size_t kMaxProbe = 16;

    GcraTable(RateSlotShm* slots, size_t capacity) : slots_(slots), mask_(capacity - 1) {}

    /// Bytes of a table of `capacity` slots (a power of two).
    static constexpr size_t bytesFor(size_t capacity) { return capacity * sizeof(RateSlotShm); }
    /// The smallest power of two holding `keys` keys at a load of at most one half.
    static size_t capacityFor(uint64_t keys);

    /// One decision for the key whose hash is `key_hash` (never 0: keyHash() avoids it) at
    /// monotonic time `now_us`. A key idle long enough for its bucket to be full again
    /// (tat <= now) may lose its slot to a new key, which then starts with a full bucket too.
    GcraDecision decide(uint64_t key_hash, uint64_t now_us, const GcraParams& p);

    /// xxh3 of `key` with `seed` (the limit's identity), never 0.
    static uint64_t keyHash(std::string_view key, uint64_t seed);

private:
    RateSlotShm* slots_;
    size_t mask_;
};

}  // namespace photon::mod::ratelimit
