// SPDX-License-Identifier: Apache-2.0
// BalancerPlan construction: validation, record binding, WRR sequences and hash rings.
#include "modules/balancer/config.h"

#include <unordered_map>
#include <unordered_set>

#include "modules/balancer/wrr.h"

namespace photon::mod::balancer {

namespace {

constexpr std::string_view kAlgorithmNames[] = {
    "round_robin", "weighted_round_robin", "least_connections", "ip_hash",
    "random",      "consistent_hash"};

}  // namespace

bool parseAlgorithm(std::string_view s, Algorithm& out) {
    for (size_t i = 0; i < std::size(kAlgorithmNames); ++i) {
        if (s == kAlgorithmNames[i]) {
            out = static_cast<Algorithm>(i);
            return true;
        }
    }
    return false;
}

std::string_view algorithmName(Algorithm a) { return kAlgorithmNames[static_cast<size_t>(a)]; }

std::string BalancerPlan::upstreamKey(std::string_view backend, std::string_view address,
                                      uint32_t occurrence) {
    std::string key;
    key.reserve(backend.size() + address.size() + 12);
    key.append(backend).append("\n").append(address).append("\n");
    key.append(std::to_string(occurrence));
    return key;
}

std::optional<uint32_t> BalancerPlan::findBackend(std::string_view name) const {
    for (uint32_t b = 0; b < backend_names_.size(); ++b) {
        if (backend_names_[b] == name) {
            return b;
        }
    }
    return std::nullopt;
}

core::Result<BalancerPlan> BalancerPlan::build(const BalancerInput& in, UpstreamTable& table) {
    std::unordered_set<std::string_view> names;
    for (const BackendSpec& b : in.backends) {
        if (b.name.empty()) {
            return core::fail("load_balancing.backends: empty backend name");
        }
        if (!names.insert(b.name).second) {
            return core::fail("load_balancing.backends.", b.name, ": duplicate backend name");
        }
        if (b.upstreams.size() > kMaxUpstreamsPerBackend) {
            return core::fail("load_balancing.backends.", b.name, ".upstreams: more than ",
                              std::to_string(kMaxUpstreamsPerBackend), " upstreams");
        }
        for (const UpstreamSpec& u : b.upstreams) {
            if (u.address.empty()) {
                return core::fail("load_balancing.backends.", b.name, ".upstreams: empty address");
            }
            if (upstreamKey(b.name, u.address, 0).size() + 8 > kMaxKeyBytes) {
                return core::fail("load_balancing.backends.", b.name, ".upstreams: address '",
                                  u.address, "' too long");
            }
        }
    }

    BalancerPlan plan;
    plan.generation_ = table.nextGeneration();
    for (uint32_t bi = 0; bi < in.backends.size(); ++bi) {
        const BackendSpec& spec = in.backends[bi];
        auto brec = table.bindBackend(spec.name, plan.generation_);
        if (!brec) {
            return brec.error();
        }
        BackendPlan bp;
        bp.record = *brec;
        bp.first = static_cast<uint32_t>(plan.upstreams_.size());
        bp.count = static_cast<uint32_t>(spec.upstreams.size());
        bp.algorithm = spec.algorithm;
        bp.two_choices = spec.two_choices;
        bp.fail_open = spec.fail_open;
        bp.max_fails = spec.max_fails;
        bp.fail_timeout_us = spec.fail_timeout_us;
        bp.max_ejection_time_us = spec.max_ejection_time_us;
        bp.max_ejection_percent = spec.max_ejection_percent;
        bp.panic_threshold = spec.panic_threshold;
        bp.retry_budget = spec.retry_budget;
        bp.min_retry_concurrency = spec.min_retry_concurrency;
        bp.max_requests = spec.max_requests;
        bp.max_pending = spec.max_pending;
        bp.failure_percentage = spec.failure_percentage;
        bp.failure_percentage_min_requests = spec.failure_percentage_min_requests;

        std::unordered_map<std::string_view, uint32_t> seen;
        std::vector<std::string> ring_names;
        std::vector<uint32_t> weights;
        for (const UpstreamSpec& u : spec.upstreams) {
            const uint32_t occurrence = seen[u.address]++;
            auto rec = table.bindUpstream(upstreamKey(spec.name, u.address, occurrence),
                                          plan.generation_, u.start_healthy);
            if (!rec) {
                return rec.error();
            }
            plan.upstreams_.push_back(UpstreamPlan{*rec, u.weight, u.max_connections, bi});
            plan.addresses_.push_back(u.address);
            ring_names.push_back(occurrence == 0 ? u.address
                                                 : u.address + "#" + std::to_string(occurrence));
            weights.push_back(u.weight);
            bp.weighted += u.weight != 0 ? 1 : 0;
        }
        if (spec.algorithm == Algorithm::WeightedRoundRobin) {
            const std::vector<uint16_t> seq = smoothWeightedSequence(weights);
            bp.wrr_offset = static_cast<uint32_t>(plan.wrr_.size());
            bp.wrr_period = static_cast<uint32_t>(seq.size());
            plan.wrr_.insert(plan.wrr_.end(), seq.begin(), seq.end());
        } else if (spec.algorithm == Algorithm::IpHash ||
                   spec.algorithm == Algorithm::ConsistentHash) {
            bp.ring = HashRing::build(ring_names, weights);
        }
        plan.backends_.push_back(std::move(bp));
        plan.backend_names_.push_back(spec.name);
    }
    return plan;
}

}  // namespace photon::mod::balancer
