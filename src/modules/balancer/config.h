// SPDX-License-Identifier: Apache-2.0
// Balancer configuration: the plain input description and the immutable plan built from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "modules/balancer/hash_ring.h"
#include "modules/balancer/upstream_table.h"

namespace photon::mod::balancer {

/// Backend `algorithm` values (config strings in parseAlgorithm()).
enum class Algorithm : uint8_t {
    RoundRobin,          // "round_robin"
    WeightedRoundRobin,  // "weighted_round_robin"
    LeastConnections,    // "least_connections"
    IpHash,              // "ip_hash"
    Random,              // "random"
    ConsistentHash,      // "consistent_hash"
};

/// Parses the config spelling; returns false (leaving `out` alone) for anything else.
bool parseAlgorithm(std::string_view s, Algorithm& out);
std::string_view algorithmName(Algorithm a);

/// Upper bound on upstreams in one backend (pick keeps per-upstream bitmaps on the stack).
inline constexpr uint32_t kMaxUpstreamsPerBackend = 1024;

/// One configured upstream.
struct UpstreamSpec {
    std::string address;           // "host:port" as configured; part of the state key
    uint32_t weight = 1;           // 0 = never picked by any algorithm
    uint32_t max_connections = 0;  // cap on in-flight requests summed over all workers; 0 = none
    bool start_healthy = true;     // initial state of a new record (false: e.g. name unresolved)
};

/// One configured backend.
struct BackendSpec {
    std::string name;
    Algorithm algorithm = Algorithm::RoundRobin;
    bool two_choices = false;  // random only: power of two choices on in-flight counts
    bool fail_open = false;    // no eligible upstream → ignore health and ejection (see pick)
    uint32_t max_fails = 5;    // passive ejection threshold; 0 disables passive ejection
    uint64_t fail_timeout_us = 10'000'000;  // failure window and ejection length
    // The configuration's defaults (core::BackendConfig) are 300 s, 50 % and 50 %; these are
    // the neutral values (no growth, no cap but the last usable upstream, no panic).
    uint64_t max_ejection_time_us = 0;    // cap of a repeated ejection (window × n); 0 = window
    uint32_t max_ejection_percent = 100;  // at most this share of the upstreams ejected at once
    uint32_t panic_threshold = 0;         // healthy share (%) below which health is ignored
    uint32_t retry_budget = 0;            // retries in flight ≤ this % of requests in flight
                                          // (0 = no budget); core default 20
    uint32_t min_retry_concurrency = 3;   // ... or this many, whichever is more
    uint32_t max_requests = 0;            // requests in flight over all workers (0 = no limit)
    uint32_t max_pending = 0;             // connections being made (0 = no limit)
    uint32_t failure_percentage = 0;      // eject at this failure rate within fail_timeout (0 off)
    uint32_t failure_percentage_min_requests = 20;  // ... judged on at least this many attempts
    std::vector<UpstreamSpec> upstreams;
};

/// Everything the balancer needs from the configuration.
struct BalancerInput {
    std::vector<BackendSpec> backends;
};

/// Per-upstream plan entry; hot in pick, 16 bytes.
struct UpstreamPlan {
    uint32_t record;  // index in UpstreamTable
    uint32_t weight;
    uint32_t max_connections;  // 0 = unlimited
    uint32_t backend;          // index in BalancerPlan::backend()
};

/// Per-backend plan entry.
struct BackendPlan {
    uint32_t record = 0;    // backend record in UpstreamTable (rotation counter)
    uint32_t first = 0;     // index of its first upstream in BalancerPlan::upstream()
    uint32_t count = 0;     // number of upstreams
    uint32_t weighted = 0;  // upstreams with weight > 0
    Algorithm algorithm = Algorithm::RoundRobin;
    bool two_choices = false;
    bool fail_open = false;
    uint32_t max_fails = 0;
    uint64_t fail_timeout_us = 0;
    uint64_t max_ejection_time_us = 0;
    uint32_t max_ejection_percent = 100;
    uint32_t panic_threshold = 0;  // 0 = never
    uint32_t retry_budget = 0;     // 0 = no budget
    uint32_t min_retry_concurrency = 3;
    uint32_t max_requests = 0;        // 0 = no limit
    uint32_t max_pending = 0;         // 0 = no limit
    uint32_t failure_percentage = 0;  // 0 = off
    uint32_t failure_percentage_min_requests = 20;
    uint32_t wrr_offset = 0;  // weighted_round_robin: sequence in BalancerPlan::wrrSequence()
    uint32_t wrr_period = 0;
    HashRing ring;  // ip_hash / consistent_hash only
};

/// The immutable, config-derived half of the balancer: backend and upstream lists, the upstream
/// table records they map to, precomputed smooth-WRR sequences and hash rings.
///
/// Built by the master (config time, allocates); read-only afterwards and inherited by workers
/// and the helper through fork. Upstream indices ("upstream" in the balancer API) are global
/// across backends: backend b owns [backend(b).first, backend(b).first + backend(b).count), in
/// config order. Returned views live as long as the plan.
class BalancerPlan {
public:
    /// Master. Validates `in` (backend names non-empty and unique; at most
    /// kMaxUpstreamsPerBackend upstreams per backend; keys fit kMaxKeyBytes), takes a new
    /// generation from `table` and binds every backend and upstream record under it: state of
    /// upstreams that existed before (same backend name, address and occurrence of that address
    /// in the backend) is kept, new ones start fresh. Fails, binding nothing further, if the table
    /// is full: create a bigger segment (UpstreamTable::capacityFor) and build again.
    /// After committing the plan, call table.collectGarbage(plan.generation()).
    static core::Result<BalancerPlan> build(const BalancerInput& in, UpstreamTable& table);

    uint32_t generation() const { return generation_; }
    uint32_t backendCount() const { return static_cast<uint32_t>(backends_.size()); }
    uint32_t upstreamCount() const { return static_cast<uint32_t>(upstreams_.size()); }
    const BackendPlan& backend(uint32_t b) const { return backends_[b]; }
    const UpstreamPlan& upstream(uint32_t u) const { return upstreams_[u]; }
    const UpstreamPlan* upstreams() const { return upstreams_.data(); }
    std::string_view backendName(uint32_t b) const { return backend_names_[b]; }
    std::string_view upstreamAddress(uint32_t u) const { return addresses_[u]; }
    /// Index of the backend named `name`, if any (config time: routes resolve names once).
    std::optional<uint32_t> findBackend(std::string_view name) const;
    /// Smooth WRR order of a weighted_round_robin backend: local upstream indices, length
    /// backend(b).wrr_period, starting at backend(b).wrr_offset.
    const uint16_t* wrrSequence() const { return wrr_.data(); }
    /// The state key of upstream `u` as stored in the table.
    static std::string upstreamKey(std::string_view backend, std::string_view address,
                                   uint32_t occurrence);

private:
    uint32_t generation_ = 0;
    std::vector<BackendPlan> backends_;
    std::vector<UpstreamPlan> upstreams_;
    std::vector<std::string> backend_names_;
    std::vector<std::string> addresses_;
    std::vector<uint16_t> wrr_;
};

}  // namespace photon::mod::balancer
