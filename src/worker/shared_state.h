// SPDX-License-Identifier: Apache-2.0
// The worker's view of state shared with every other process: connection and in-flight counts,
// upstream health and balancing. Thin, allocation-free calls over the shared-memory segments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "worker/addr_table.h"

namespace photon::shm {
class SlotTable;
}
namespace photon::mod::balancer {
class UpstreamTable;
}

namespace photon::worker {

class Proxy;
struct ServerCountersShm;
struct WsSlotCounters;

/// The shared-memory views the master maps before forking; workers inherit them.
struct SharedSegments {
    shm::SlotTable* slots = nullptr;
    mod::balancer::UpstreamTable* upstreams = nullptr;
    ServerCountersShm* server = nullptr;
    AddrTable addrs;  // resolved upstream addresses, by upstream-table record
};
/// Master: publishes the mapped segments (before the first fork).
void setSharedSegments(const SharedSegments& s);
const SharedSegments& sharedSegments();

/// Maps this worker's slot; called once in the worker right after fork.
core::Result<void> attachWorkerSharedState(int slot);

/// The current address of the upstream whose upstream-table record is `record` (as the master
/// last resolved it). False when it has not resolved. Any process; lock-free.
bool sharedUpstreamAddress(uint32_t record, sockaddr_storage& out, socklen_t& len);
/// Changes whenever the record's published address does (see AddrTable::stamp).
uint64_t sharedUpstreamAddressStamp(uint32_t record);

/// server.max_connections across all workers: true and counted when below `max` (0 = no limit).
bool sharedTryAddConnection(uint32_t max);
void sharedRemoveConnection();
/// Client connections open across all workers.
uint64_t sharedConnectionCount();
/// This worker's WebSocket counters (its slot's; a private dummy when nothing is mapped).
WsSlotCounters& sharedWsCounters();

/// Context a balancer may use for one pick.
struct PickInput {
    const uint8_t* client_addr = nullptr;  // client IP octets (4 or 16), for ip_hash
    size_t client_addr_len = 0;
    const char* hash_key = nullptr;  // consistent_hash key (header/cookie/path value)
    size_t hash_key_len = 0;
    const uint32_t* exclude = nullptr;  // upstreams (Proxy::upstreams indices) already tried
    size_t exclude_count = 0;
};

/// Picks an upstream of `backend` (index into proxy.upstreams) that is healthy, not ejected,
/// not drained and below its max_connections, and counts one in-flight request on it.
/// Returns -1 when none is available (the caller answers 503).
int sharedPickAndAcquire(const Proxy& proxy, size_t backend, const PickInput& in);
/// Ends the in-flight request counted by sharedPickAndAcquire.
void sharedRelease(const Proxy& proxy, size_t upstream);
/// Passive health: a connect failure, reset or timeout (ok=false) or a good response (ok=true).
void sharedReport(const Proxy& proxy, size_t upstream, bool ok);

/// One upstream's shared state as a scrape reports it.
struct UpstreamView {
    const char* state = "unhealthy";  // healthy | unhealthy | ejected | drained
    bool usable = false;              // a pick may use it now
    uint64_t inflight = 0;
    uint64_t ejections = 0;  // passive ejections so far
    std::string_view last_error;
};
/// The state of upstream `upstream` (index into proxy.upstreams). Any worker; lock-free.
UpstreamView sharedUpstreamView(const Proxy& proxy, size_t upstream);

/// Retry budget of `backend` (see mod::balancer::Balancer::retryAllowed).
bool sharedRetryAllowed(size_t backend);
/// Circuit breaking: the limit (`max_requests`, `max_pending`) `backend` is at, or nullptr.
const char* sharedOverLimit(size_t backend);
/// This worker's gauges of `upstream`: a retry attempt in flight, a connection being made.
void sharedRetrying(size_t upstream, int delta);
void sharedConnecting(size_t upstream, int delta);

/// Whether `backend` is in panic routing now (too few healthy upstreams). Any worker.
bool sharedBackendPanic(size_t backend);

/// Appends the /health JSON "backends" object and returns false when some backend has no
/// healthy upstream.
bool sharedHealthJson(const Proxy& proxy, std::string& out);

}  // namespace photon::worker
