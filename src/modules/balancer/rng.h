// SPDX-License-Identifier: Apache-2.0
// Rng: a tiny per-process wyrand generator for random picks (no locks, no heap, not for secrets).
#pragma once

#include <cstdint>

namespace photon::mod::balancer {

/// wyrand (Wang Yi): one 64-bit state word, one 128-bit multiply per number; passes BigCrush and
/// PractRand for load-balancing purposes. Not cryptographic. Not thread-safe: each worker (or
/// benchmark thread) owns one, seeded differently via seedFor().
class Rng {
public:
    explicit Rng(uint64_t seed = 0x9e3779b97f4a7c15ull) : state_(seed) {}

    uint64_t next() {
        state_ += 0xa0761d6478bd642full;
        const unsigned __int128 t =
            static_cast<unsigned __int128>(state_) * (state_ ^ 0xe7037ed1a0b428dbull);
        return static_cast<uint64_t>(t >> 64) ^ static_cast<uint64_t>(t);
    }

    /// Uniform in [0, n) by Lemire's multiply-shift (bias < n / 2^64, negligible). n > 0.
    uint32_t below(uint32_t n) {
        return static_cast<uint32_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
    }

    /// A seed that differs between processes and slots: mixes the three inputs with splitmix64.
    static uint64_t seedFor(uint64_t pid, uint64_t slot, uint64_t now_us) {
        uint64_t z = pid * 0x9e3779b97f4a7c15ull ^ (slot << 48) ^ now_us;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }

private:
    uint64_t state_;
};

}  // namespace photon::mod::balancer
