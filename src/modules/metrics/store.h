// SPDX-License-Identifier: Apache-2.0
// The metrics segment: the master maps it and gives each route and upstream a row (kept by name
// across reloads); workers count into their shard with relaxed adds; scrapes sum the shards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "modules/metrics/layout.h"

namespace photon::mod::metrics {

/// A view of a mapped metrics segment (any process; trivially copyable).
struct Store {
    MetricsHeadShm* head = nullptr;
    shm::Atomic64* route_names = nullptr;     // [route_rows] name hash, 0 = free
    shm::Atomic64* upstream_names = nullptr;  // [upstream_rows]
    RouteCellShm* route_cells = nullptr;      // [route_rows][kShards]
    UpstreamCellShm* upstream_cells = nullptr;
    MetricsGeometry geo;

    static Store bind(void* body, MetricsGeometry g);
    bool mapped() const { return head != nullptr; }
    RouteCellShm& route(uint32_t row, uint32_t shard) const {
        return route_cells[size_t(row) * kShards + shard];
    }
    UpstreamCellShm& upstream(uint32_t row, uint32_t shard) const {
        return upstream_cells[size_t(row) * kShards + shard];
    }
};

/// The geometry for `routes` routes and `upstreams` upstreams, with room to grow on reload.
MetricsGeometry geometryFor(size_t routes, size_t upstreams);

/// Name hashes of the rows (never 0).
uint64_t routeKey(std::string_view route_id);
uint64_t upstreamKey(std::string_view backend, std::string_view address);
/// The row of requests no route took.
inline constexpr uint32_t kNoRouteRow = 0;

/// Master only: the rows for `route_keys` and `upstream_keys`, reusing the row a name already
/// has (its counters continue) and giving new names free rows, zeroed first. When no row is
/// free, rows whose names are no longer configured are zeroed and reused. Fails when the
/// segment is too small for the configuration (the caller maps a larger one).
core::Result<void> assignRows(const Store& s, const std::vector<uint64_t>& route_keys,
                              const std::vector<uint64_t>& upstream_keys,
                              std::vector<uint32_t>& route_rows,
                              std::vector<uint32_t>& upstream_rows);

// ----- counting (worker side; every call is a no-op when nothing is mapped) -----

/// This process's view and shard; set once after fork (and by the master for its own stats).
void setCounting(const Store& s, int slot);
const Store& store();

/// A request has begun, and has ended (the in-flight gauge; each requestStarted() is followed
/// by exactly one requestEnded()).
void requestStarted();
void requestEnded();
/// Master: the process of `slot` is gone (its in-flight requests died with it).
void reclaimSlot(uint32_t slot);
/// A request is over. `row` its route's row (kNoRouteRow when none took it); `status` 0 when no
/// response was completed; `upstream_us` < 0 when it was not proxied; `refused_by` the registry
/// index + 1 of the module that answered it in place (0 = none).
struct RequestSample {
    uint32_t row = kNoRouteRow;
    uint8_t method = 0;  // index into kMethodNames
    int status = 0;
    uint64_t duration_us = 0;
    int64_t upstream_us = -1;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    bool gateway_error = false;
    uint8_t refused_by = 0;
    uint8_t auth_reason = 0;  // 1-based index into kAuthReasons (0 = not an auth refusal)
};
void requestFinished(const RequestSample& r);
/// One attempt sent to the upstream of row `row`, and a failed one.
void upstreamAttempt(uint32_t row);
/// A retry attempt, a retry the budget refused, a request refused by circuit breaking.
void routeEvent(uint32_t row, RouteEvent e);
void upstreamError(uint32_t row, UpstreamError kind);

/// Master: its own statistics.
void masterStarted(uint64_t generation, uint32_t workers);
void masterReload(bool ok, uint64_t generation, uint32_t workers);
void masterWorkerRestart();
void masterDraining();

}  // namespace photon::mod::metrics
