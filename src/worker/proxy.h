// SPDX-License-Identifier: Apache-2.0
// The compiled proxy model (routes, backends, upstreams) and per-worker upstream connection pools.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/config.h"
#include "modules/cache/cache.h"
#include "core/result.h"
#include "modules/tls/client_tls.h"
#include "worker/context.h"
#include "worker/request.h"

namespace photon::core {
struct Config;
}
namespace photon::mod::routing {
class Router;
}
namespace photon::mod::balancer {
class BalancerPlan;
class UpstreamTable;
}  // namespace photon::mod::balancer

namespace photon::worker {

class UpstreamConn;

/// Blocking name resolution (master side only): first address of host:port. `is_name` false
/// means a numeric literal (no DNS).
bool resolveHostPort(const std::string& host, uint16_t port, bool is_name, sockaddr_storage& sa,
                     socklen_t& len);

/// One upstream server of a backend, as workers use it. Built by the master from the
/// configuration (addresses resolved there, off every event loop) and inherited through fork;
/// only the idle pool changes afterwards, privately in each worker.
struct UpstreamRt {
    std::string address;  // as configured ("10.0.0.5:8080", "api.internal:80")
    std::string host;     // host part; re-resolved periodically when it is a DNS name
    uint16_t port = 0;
    bool is_name = false;
    sockaddr_storage sa{};
    socklen_t salen = 0;
    bool resolved = false;
    bool active_checks = false;  // its backend runs active health checks
    bool tls = false;            // TLS to this upstream (tls_ctx is set)
    SSL_CTX* tls_ctx = nullptr;  // owned by the Proxy (shared by upstreams with the same options)
    std::string tls_name;        // server name sent (SNI) and verified: sni_hostname or host
    mod::tls::SessionSlot tls_session;  // per worker: the latest session, resumed next time
    double connect_timeout = 5;  // seconds
    double read_timeout = 30;
    double write_timeout = 30;
    bool tcp_keepalive = false;
    int ka_idle = 60, ka_interval = 10, ka_count = 9;
    uint32_t max_connections = 0;  // 0 = unlimited; enforced across workers via shared memory
    uint32_t weight = 1;
    int shm_index = -1;  // record in the shared upstream table (and the address table)
    size_t backend_index = 0;
    uint32_t mx_row = UINT32_MAX;  // row in the metrics segment (set by the master)
    // Per-worker pool of idle keep-alive connections (most recently used at the back).
    ListNode idle;
    uint32_t idle_count = 0;
};

/// A named group of upstreams with its balancing algorithm.
struct BackendRt {
    std::string name;
    std::vector<size_t> upstreams;  // indices into Proxy::upstreams
    int shm_index = -1;
    // consistent_hash key: what is hashed (see core::HashKey); Ip = the client address.
    core::HashKey::Kind hash_kind = core::HashKey::Kind::Ip;
    std::string hash_name;  // header or cookie name
    bool count_5xx = false;  // a 5xx answer is a passive-health failure
};

/// A route as the worker runs it; index-aligned with the router's route list.
struct RouteRt {
    std::string id;
    size_t backend = 0;
    double timeout = 0;     // seconds; 0 = use the upstream's own read/write timeouts
    uint32_t retries = 0;   // extra attempts on another upstream (idempotent requests)
    uint8_t retry_on = core::retry_on::kDefault;
    double per_try_timeout = 0;  // seconds; 0 = none
    double backoff = 0.025;      // seconds: base and cap of the wait before a retry
    double backoff_max = 0.25;
    bool retry_non_idempotent = false;
    bool fresh_for_unsafe = false;  // fresh_connection_for_unsafe
    bool rewrites = false;  // strip_prefix or rewrite configured
    // websocket (enabled): upgrades are checked and tunnelled; otherwise never upgraded.
    bool ws = false;
    bool ws_any_protocol = true;            // no `protocols` list: any subprotocol
    std::vector<std::string> ws_protocols;  // the allowed subprotocols
    double ws_idle = 0;      // seconds without a byte either way; 0 = the upstream read_timeout
    double ws_lifetime = 0;  // seconds an upgraded connection may last; 0 = no limit
    uint64_t ws_max_message = 1u << 20;
    Chain chain;            // the handlers of the modules the route lists (empty: none)
    mod::cache::RoutePolicy cache;  // the response cache (cache.on: this route caches)
    uint32_t mx_row = 0;    // row in the metrics segment (set by the master; 0 = none)
};

/// Everything the data path needs, immutable after build() except for the idle pools.
class Proxy {
public:
    /// Builds the model from a validated configuration (master side: compiles the router and
    /// resolves upstream addresses; an unresolvable name leaves that upstream unusable and is
    /// logged). Errors only for what validation should have caught.
    /// `table` is the shared upstream table the balancing plan binds its records in (null in
    /// tests that do not balance).
    static core::Result<std::unique_ptr<Proxy>> build(const core::Config& cfg,
                                                      mod::balancer::UpstreamTable* table);
    ~Proxy();

    /// Compiles the routes of `cfg` the way build() does, without touching anything else (for
    /// `photon -t`). Errors name the route; `warnings` receives routes that can never win etc.
    static core::Result<void> checkRoutes(const core::Config& cfg,
                                          std::vector<std::string>& warnings);

    std::vector<UpstreamRt> upstreams;
    std::vector<BackendRt> backends;
    std::vector<RouteRt> routes;
    std::unique_ptr<mod::routing::Router> router;
    std::unique_ptr<mod::balancer::BalancerPlan> plan;  // upstream indices match `upstreams`
    uint32_t max_idle_per_upstream = 64;
    bool has_health_route = false;            // a configured route matches GET /health (it wins)
    std::vector<core::Cidr> trusted_proxies;  // server.trusted_proxies
    std::vector<std::unique_ptr<ModuleConf>> module_confs;  // what the chains' handlers read
    std::vector<SSL_CTX*> tls_contexts;  // client contexts of the TLS upstreams (owned)

    /// Closes every pooled connection (worker exit).
    void closeIdle();
};

}  // namespace photon::worker
