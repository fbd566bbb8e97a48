// SPDX-License-Identifier: Apache-2.0
// HashRing construction (config time) and lookup.
#include "modules/balancer/hash_ring.h"

#include <algorithm>
#include <utility>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace photon::mod::balancer {

HashRing HashRing::build(std::span<const std::string> names, std::span<const uint32_t> weights,
                         uint32_t points_per_weight, uint32_t max_points) {
    HashRing ring;
    const size_t n = std::min(names.size(), weights.size());
    if (n == 0 || n > 0xffff || points_per_weight == 0) {
        return ring;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        total += uint64_t{weights[i]} * points_per_weight;
    }
    if (total == 0) {
        return ring;
    }
    std::vector<uint64_t> points(n);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; ++i) {
        uint64_t p = uint64_t{weights[i]} * points_per_weight;
        if (p != 0 && total > max_points) {
            p = std::max<uint64_t>(1, p * max_points / total);
        }
        points[i] = p;
        sum += p;
    }
    std::vector<std::pair<uint64_t, uint16_t>> all;
    all.reserve(sum);
    for (size_t i = 0; i < n; ++i) {
        for (uint64_t k = 0; k < points[i]; ++k) {
            all.emplace_back(XXH3_64bits_withSeed(names[i].data(), names[i].size(), k),
                             static_cast<uint16_t>(i));
        }
    }
    std::sort(all.begin(), all.end());
    ring.hashes_.reserve(all.size());
    ring.owners_.reserve(all.size());
    for (const auto& [h, owner] : all) {
        ring.hashes_.push_back(h);
        ring.owners_.push_back(owner);
    }
    return ring;
}

uint64_t HashRing::hashKey(const void* data, size_t len) { return XXH3_64bits(data, len); }

uint32_t HashRing::lowerBound(uint64_t hash) const {
    const auto it = std::lower_bound(hashes_.begin(), hashes_.end(), hash);
    return it == hashes_.end() ? 0u : static_cast<uint32_t>(it - hashes_.begin());
}

}  // namespace photon::mod::balancer
