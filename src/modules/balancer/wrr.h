// SPDX-License-Identifier: Apache-2.0
// Smooth weighted round-robin: precomputes nginx's interleaved pick order for one period.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace photon::mod::balancer {

/// Longest precomputed period; larger weight sums are scaled down to fit (see below).
inline constexpr uint32_t kMaxWrrPeriod = 4096;

/// Returns the order in which nginx's smooth weighted round-robin (ngx_http_upstream_get_peer:
/// every step adds each weight to its current value, picks the largest current value — the
/// first one on ties — and subtracts the weight total from it) picks the members of `weights`,
/// for one full period. Entries are indices into `weights`; weight-0 members never appear.
/// Examples: {3, 1} → 0 0 1 0; {5, 1, 1} → 0 0 1 0 2 0 0.
///
/// The weights are first divided by their gcd. If the period (sum of weights) still exceeds
/// `max_period`, each weight w becomes max(1, w * max_period / sum), which keeps the ratios to
/// within one unit per member and bounds the period by max_period + weights.size().
/// Empty result iff every weight is 0. At most 65535 members. Master-side (config time): allocates.
std::vector<uint16_t> smoothWeightedSequence(std::span<const uint32_t> weights,
                                             uint32_t max_period = kMaxWrrPeriod);

}  // namespace photon::mod::balancer
