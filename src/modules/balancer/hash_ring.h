// SPDX-License-Identifier: Apache-2.0
// HashRing: consistent-hash ring of weighted virtual nodes for ip_hash and consistent_hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace photon::mod::balancer {

/// An immutable ring of virtual nodes. Member i (an upstream of one backend) owns
/// points_per_weight * weights[i] points, each at XXH3-64(names[i], seed = point number), so
/// the ring depends only on the members' names and weights: every worker, every restart and every
/// build of Photon computes the same ring, and removing or adding one member moves only the keys
/// whose nearest point belonged to that member.
///
/// Built by the master at config time (allocates); afterwards read-only and shared with workers
/// through fork. Lookups never allocate.
class HashRing {
public:
    static constexpr uint32_t kPointsPerWeight = 160;
    /// Bound on the total number of points; beyond it every member's share is scaled down
    /// proportionally (each member keeping at least one point).
    static constexpr uint32_t kMaxPoints = 1u << 20;

    HashRing() = default;

    /// `names` and `weights` have the same length (at most 65535 members). Weight-0 members get no
    /// points. An empty ring results when all weights are 0.
    static HashRing build(std::span<const std::string> names, std::span<const uint32_t> weights,
                          uint32_t points_per_weight = kPointsPerWeight,
                          uint32_t max_points = kMaxPoints);

    /// XXH3-64 of a lookup key (client address bytes, header value, ...).
    static uint64_t hashKey(const void* data, size_t len);

    bool empty() const { return hashes_.empty(); }
    uint32_t size() const { return static_cast<uint32_t>(hashes_.size()); }
    /// Index of the first point whose hash is >= `hash`, wrapping to 0 past the last point.
    /// The ring must not be empty.
    uint32_t lowerBound(uint64_t hash) const;
    /// Member owning point `point` (< size()).
    uint32_t ownerAt(uint32_t point) const { return owners_[point]; }
    uint64_t hashAt(uint32_t point) const { return hashes_[point]; }
    /// The member owning the first point at or after `hash`, ignoring eligibility.
    uint32_t lookup(uint64_t hash) const { return owners_[lowerBound(hash)]; }

private:
    std::vector<uint64_t> hashes_;  // sorted ascending
    std::vector<uint16_t> owners_;  // parallel to hashes_
};

}  // namespace photon::mod::balancer
