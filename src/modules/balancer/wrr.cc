// SPDX-License-Identifier: Apache-2.0
// Smooth weighted round-robin sequence generation (config time).
#include "modules/balancer/wrr.h"

#include <algorithm>
#include <numeric>

namespace photon::mod::balancer {

std::vector<uint16_t> smoothWeightedSequence(std::span<const uint32_t> weights,
                                             uint32_t max_period) {
    std::vector<uint64_t> w(weights.begin(), weights.end());
    uint64_t g = 0;
    for (uint64_t x : w) {
        g = std::gcd(g, x);
    }
    if (g == 0 || w.size() > 0xffff) {
        return {};
    }
    uint64_t sum = 0;
    for (uint64_t& x : w) {
        x /= g;
        sum += x;
    }
    if (max_period == 0) {
        max_period = 1;
    }
    if (sum > max_period) {
        for (uint64_t& x : w) {
            if (x != 0) {
                x = std::max<uint64_t>(1, x * max_period / sum);
            }
        }
        uint64_t g2 = 0;
        for (uint64_t x : w) {
            g2 = std::gcd(g2, x);
        }
        sum = 0;
        for (uint64_t& x : w) {
            x /= g2;
            sum += x;
        }
    }

    std::vector<uint16_t> seq;
    seq.reserve(sum);
    std::vector<int64_t> current(w.size(), 0);
    const auto total = static_cast<int64_t>(sum);
    for (uint64_t step = 0; step < sum; ++step) {
        size_t best = w.size();
        for (size_t i = 0; i < w.size(); ++i) {
            if (w[i] == 0) {
                continue;
            }
            current[i] += static_cast<int64_t>(w[i]);
            if (best == w.size() || current[i] > current[best]) {
                best = i;
            }
        }
        current[best] -= total;
        seq.push_back(static_cast<uint16_t>(best));
    }
    return seq;
}

}  // namespace photon::mod::balancer
