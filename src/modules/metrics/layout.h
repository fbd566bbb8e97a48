// SPDX-License-Identifier: Apache-2.0
// Shared-memory layout of the metrics segment: request counters and histograms per route,
// upstream counters, per-slot gauges and the master's own counters, summed when scraped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>

#include "shm/atomic.h"
#include "shm/slot_layout.h"

namespace photon::mod::metrics {

inline constexpr uint32_t kLayoutVersion = 1;

/// Counter cells are sharded: a process adds into shard (slot % kShards) with a relaxed
/// fetch_add. Relaxed suffices: the counters are independent sums read by a scrape that needs no
/// ordering between them; the RMW keeps an add whole even when two workers share a shard or a
/// worker dies at any instant. Nothing ever zeroes a counter that is in use, so a restarted or
/// retired worker never makes a sum go backwards. Sharding keeps each worker adding on its own
/// cache lines (up to kShards workers).
inline constexpr uint32_t kShards = 8;

/// Upper bounds (seconds) of gateway_request_duration_seconds and
/// gateway_upstream_duration_seconds (the original's); +Inf is the last bucket.
inline constexpr double kDurationBounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,   1,    2.5,   5,    10};
inline constexpr size_t kDurationBuckets = std::size(kDurationBounds) + 1;
inline constexpr uint64_t kDurationBoundsUs[] = {1000,    5000,    10000,   25000,
                                                 50000,   100000,  250000,  500000,
                                                 1000000, 2500000, 5000000, 10000000};

/// Method classes of the `method` label (others are counted as OTHER).
inline constexpr const char* kMethodNames[] = {"GET",     "HEAD",  "POST",  "PUT",
                                               "DELETE",  "OPTIONS", "PATCH", "OTHER"};
inline constexpr size_t kMethods = std::size(kMethodNames);
/// Status classes 1xx..5xx (index = status / 100 - 1).
inline constexpr size_t kClasses = 5;
/// Refusals by a route's middleware (Access phase answers), by the module that answered:
/// the module's registry index (only the first kRefusalModules are counted) and the status.
inline constexpr size_t kRefusalModules = 6;
inline constexpr uint16_t kRefusalStatuses[] = {400, 401, 403, 429, 503};
inline constexpr size_t kRefusalKinds = std::size(kRefusalStatuses) + 1;  // + other

/// Why the auth module refused a request (gateway_auth_rejections_total{reason}); index + 1 is
/// Request::refusal_reason.
inline constexpr const char* kAuthReasons[] = {
    "missing_credentials", "invalid_token",        "expired_token",
    "insufficient_scope",  "invalid_api_key",      "invalid_credentials",
    "ambiguous_credentials", "unavailable"};
inline constexpr size_t kAuthReasonCount = std::size(kAuthReasons);

/// One histogram: non-cumulative bucket counts (count = their sum) and the sum in µs.
struct HistShm {
    shm::Atomic64 buckets[kDurationBuckets];
    shm::Atomic64 sum_us;
};

/// One route's counters in one shard. Route row 0 counts requests no route took (404, 405,
/// parse errors).
struct RouteCellShm {
    shm::Atomic64 requests[kMethods][kClasses];
    HistShm duration;           // first byte of the request → response complete
    HistShm upstream_duration;  // first attempt → response complete (proxied requests only)
    shm::Atomic64 bytes_in;
    shm::Atomic64 bytes_out;
    shm::Atomic64 gateway_errors;  // 5xx replies the gateway made (502/503/504 ...)
    shm::Atomic64 refusals[kRefusalModules][kRefusalKinds];
    shm::Atomic64 auth_refusals[kAuthReasonCount];
    shm::Atomic64 events[3];  // RouteEvent: retries, retries the budget denied, breaker 503s
};
static_assert(sizeof(RouteCellShm) == 8 * (40 + 28 + 3 + 36 + 8 + 3),
              "layout changed: bump kLayoutVersion");

/// Route events besides requests (RouteCellShm::events).
enum class RouteEvent : uint8_t { Retry, RetryDenied, Overflow };

/// Why an upstream attempt failed (gateway_upstream_errors_total{kind}).
enum class UpstreamError : uint8_t { Connect, Timeout, Reset, BadResponse, Status5xx, Count };
inline constexpr const char* kUpstreamErrorNames[] = {"connect", "timeout", "reset",
                                                      "invalid_response", "5xx"};

/// One upstream's counters in one shard.
struct UpstreamCellShm {
    shm::Atomic64 requests;  // attempts sent to it (connections made or reused)
    shm::Atomic64 errors[static_cast<size_t>(UpstreamError::Count)];
    shm::Atomic64 reserved[2];
};
static_assert(sizeof(UpstreamCellShm) == 64, "layout changed: bump kLayoutVersion");

/// Written by the master only (single writer); read by scrapes.
struct MasterStatsShm {
    shm::Atomic64 started_unix_ms;   // when the first master of this segment started
    shm::Atomic64 generation;        // config generation of the current proxy model
    shm::Atomic64 reloads_ok;
    shm::Atomic64 reloads_failed;
    shm::Atomic64 last_reload_result;  // 0 none, 1 ok, 2 failed
    shm::Atomic64 last_reload_unix_ms;
    shm::Atomic64 worker_restarts;   // workers that died unexpectedly and were replaced
    shm::Atomic64 workers_configured;
    shm::Atomic64 draining;          // 1 while the instance stops (/ready answers 503)
    shm::Atomic64 reserved[7];
};
static_assert(sizeof(MasterStatsShm) == 128, "layout changed: bump kLayoutVersion");

/// The segment's fixed head; the name tables and cell arrays follow (MetricsGeometry).
struct MetricsHeadShm {
    MasterStatsShm master;
    shm::Atomic64 inflight[shm::kMaxSlots];  // requests in progress per process slot (gauge)
};
static_assert(std::is_trivially_copyable_v<MetricsHeadShm> &&
                  sizeof(MetricsHeadShm) == 128 + 8 * shm::kMaxSlots,
              "layout changed: bump kLayoutVersion");

/// Where everything lies in a segment of the given capacities (rows).
struct MetricsGeometry {
    uint32_t route_rows = 0;
    uint32_t upstream_rows = 0;

    size_t routeNamesOff() const { return sizeof(MetricsHeadShm); }
    size_t upstreamNamesOff() const { return routeNamesOff() + 8 * size_t(route_rows); }
    size_t routeCellsOff() const {
        size_t o = upstreamNamesOff() + 8 * size_t(upstream_rows);
        return (o + 63) & ~size_t(63);
    }
    size_t upstreamCellsOff() const {
        return routeCellsOff() + sizeof(RouteCellShm) * kShards * size_t(route_rows);
    }
    size_t bytes() const {
        return upstreamCellsOff() + sizeof(UpstreamCellShm) * kShards * size_t(upstream_rows);
    }
    uint64_t fingerprint() const {
        return (uint64_t{route_rows} << 32) | upstream_rows;
    }
};

}  // namespace photon::mod::metrics
