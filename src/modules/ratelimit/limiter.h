// SPDX-License-Identifier: Apache-2.0
// The rate_limit module at work: each configured limit's shared table (mapped by the master),
// the per-route compiled limit, and its Access and HeaderFilter handlers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/result.h"
#include "modules/ratelimit/gcra.h"
#include "modules/ratelimit/gcra_layout.h"
#include "worker/request.h"

namespace photon::mod::ratelimit {

/// One limit's shared state as the master mapped it: counters and key table.
struct SharedLimit {
    RateStatsShm* stats = nullptr;
    RateSlotShm* slots = nullptr;
    size_t capacity = 0;
};

/// Master only. Creates or re-attaches one segment per configured limit (the default block and
/// every named instance) under `shm_instance`. A limit whose shape (rate, burst, key, scope,
/// table size) is unchanged keeps its buckets; a changed one starts with full buckets. On error
/// the previous set stays current. Mappings are kept until removeSharedLimits(), so a worker
/// forked from an older proxy model never meets an unmapped table.
core::Result<void> mapSharedLimits(const core::Config& cfg, std::string_view shm_instance);
/// Master only, clean exit: unmaps every limit's segment and removes the names.
void removeSharedLimits();
/// The current shared state of limit `instance` ("" = the default block), or nullptr when no
/// segment is mapped (`photon -t`, unit tests).
const SharedLimit* findSharedLimit(std::string_view instance);

/// The `seed` the key hashes of a limit use, so that two limits never share a bucket.
uint64_t limitSeed(std::string_view instance, std::string_view route_id);

/// A limit as one route applies it (immutable after the master built it).
struct LimitConf final : worker::ModuleConf {
    GcraParams params;
    SharedLimit shared;  // copied from findSharedLimit(); slots null = refuse (503)
    uint64_t seed = 0;
    core::RateLimitKey::Kind kind = core::RateLimitKey::Kind::Ip;
    std::string key_name;     // header or query parameter name
    uint64_t fixed_hash = 0;  // key: route — the route's bucket (precomputed)
    uint64_t missing_hash = 0;  // missing_key: share — the bucket of requests without the key
    bool reject_missing = false;
    bool deny_when_full = false;
    bool headers = false;  // on admitted responses too
    bool legacy_headers = false;
    std::string policy_name;     // as RateLimit fields name it: "default" or the instance
    std::string policy;          // the RateLimit-Policy value
    std::string limit_text;      // X-RateLimit-Limit value (the burst)
    std::string missing_reason;  // the 400's error text (missing_key: reject)
    uint16_t slot = 0;
    // store: redis (otherwise the fields below are unused).
    bool redis = false;
    core::RateLimitConfig::OnStoreError on_store_error = core::RateLimitConfig::OnStoreError::Local;
    GcraParams fallback;  // on_store_error: local — rate and burst divided by `instances`
    // sync: batched — tokens asked per round trip (1 = exact) and how long a lease lasts.
    uint32_t lease = 1;
    uint64_t lease_us = 0;
    // Per-process (each worker has its own copy after fork): the last store-error notice.
    mutable uint64_t last_store_log_us = 0;
    mutable uint64_t store_log_suppressed = 0;
    // Per-process (each worker has its own copy after fork): the last table-full notice.
    mutable uint64_t last_full_log_us = 0;

    /// Builds the route's limit from its configuration (`instance` "" = the default block).
    static std::unique_ptr<LimitConf> compile(const core::RateLimitConfig& c,
                                              std::string_view instance, std::string_view route_id,
                                              const SharedLimit* shared);
};

/// Access: decides the request against the limit; 429 (or 400 for a missing key with
/// missing_key: reject) when it is refused.
worker::Verdict accessHandler(worker::Request& req, const void* conf);
/// HeaderFilter: adds Retry-After and the RateLimit fields of the limit that decided.
worker::Verdict headerHandler(worker::Request& req, const void* conf);

/// Decides the request on this machine's shared table with `params` (the limit's own, or its
/// on_store_error: local share), as the Access handler does for store: local.
worker::Verdict decideLocal(worker::Request& req, const LimitConf& c, uint64_t key_hash,
                            const GcraParams& params);
/// Notes a decision for the HeaderFilter (the RateLimit fields), as the local limiter does.
void recordDecision(worker::Request& req, const LimitConf& c, const GcraDecision& d, bool refused);

/// The key hash of a request for `c` (exposed for tests). `found` is false when the request
/// lacks the key (the caller applies missing_key).
uint64_t requestKeyHash(const worker::Request& req, const LimitConf& c, bool& found);

/// xxh3 (seeded) of the form-urlencoded decoding of the first value of query parameter `name`
/// in `query` (the name compared after decoding too); `found` false when absent or empty.
uint64_t queryParamHash(std::string_view query, std::string_view name, uint64_t seed,
                        bool& found);

}  // namespace photon::mod::ratelimit
