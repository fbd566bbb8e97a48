// SPDX-License-Identifier: Apache-2.0
// Building the proxy model from the configuration (master side) and pool teardown.
#include "worker/proxy.h"

#include <netdb.h>

#include <cstring>

#include "core/config.h"
#include "core/log.h"
#include "modules/balancer/config.h"
#include "modules/registry.h"
#include "modules/routing/router.h"
#include "worker/http_conn.h"
#include "worker/module.h"

namespace photon::worker {

namespace {

double seconds(core::Duration d) { return std::chrono::duration<double>(d).count(); }

/// Resolves host:port (master side, may block). First address wins.
bool resolve(const core::HostPort& hp, sockaddr_storage& sa, socklen_t& len) {
    return resolveHostPort(hp.host, hp.port, hp.kind == core::HostKind::Name, sa, len);
}

}  // namespace

bool resolveHostPort(const std::string& host, uint16_t port_num, bool is_name, sockaddr_storage& sa,
                     socklen_t& len) {
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!is_name) {
        hints.ai_flags = AI_NUMERICHOST;
    }
    std::string port = std::to_string(port_num);
    struct addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
        return false;
    }
    std::memcpy(&sa, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    ::freeaddrinfo(res);
    return true;
}

namespace {

std::vector<mod::routing::RouteSpec> routeSpecs(const core::Config& cfg) {
    std::vector<mod::routing::RouteSpec> specs;
    for (const auto& r : cfg.routes) {
        mod::routing::RouteSpec s;
        s.id = r.id;
        s.path = r.path;
        s.host = r.host.value_or("");
        s.methods = r.methods;
        s.strip_prefix = r.strip_prefix.value_or("");
        s.rewrite = r.rewrite.value_or("");
        specs.push_back(std::move(s));
    }
    return specs;
}

/// The route's handler chain from the modules it lists (each module adds its own handlers;
/// their order is the registry's, not the list's).
core::Result<Chain> buildChain(const core::Config& cfg, const core::RouteConfig& r,
                               std::vector<std::unique_ptr<ModuleConf>>& confs) {
    RouteChainBuilder b;
    for (const auto& m : r.middleware) {
        std::string_view name, instance;
        splitMiddlewareName(m, name, instance);
        const Module* mod = mod::findModule(name);
        if (mod == nullptr) {
            return core::Error{"unknown middleware '" + m + "'"};
        }
        auto ok = mod->attach(b, cfg, r, instance, mod::moduleIndex(mod));
        if (!ok.ok()) {
            return ok.error();
        }
    }
    for (auto& c : b.owned()) {
        confs.push_back(std::move(c));
    }
    return b.build();
}

/// What the configuration asks for that this version does not do yet, in words for the operator.
void unavailableFeatureWarnings(const core::Config& cfg, std::vector<std::string>& out) {
    for (size_t i = 0; i < cfg.routes.size(); ++i) {
        const auto& r = cfg.routes[i];
        for (const auto& m : r.middleware) {
            std::string where =
                "routes[" + std::to_string(i) + "] (\"" + r.id + "\"): middleware '" + m + "'";
            std::string_view name, instance;
            splitMiddlewareName(m, name, instance);
            const Module* mod = mod::findModule(name);
            if (mod != nullptr && !mod->available()) {
                out.push_back(where +
                              " is not available in this version; the route answers 503 "
                              "instead of forwarding unprotected");
            }
        }
    }
}

mod::balancer::Algorithm algorithmOf(core::LbAlgorithm a) {
    using mod::balancer::Algorithm;
    switch (a) {
        case core::LbAlgorithm::RoundRobin:
            return Algorithm::RoundRobin;
        case core::LbAlgorithm::LeastConnections:
            return Algorithm::LeastConnections;
        case core::LbAlgorithm::WeightedRoundRobin:
            return Algorithm::WeightedRoundRobin;
        case core::LbAlgorithm::IpHash:
            return Algorithm::IpHash;
        case core::LbAlgorithm::ConsistentHash:
            return Algorithm::ConsistentHash;
        case core::LbAlgorithm::Random:
            return Algorithm::Random;
    }
    return Algorithm::RoundRobin;
}

}  // namespace

namespace {

/// The client context for an upstream's TLS options: one per distinct set, owned by `p`.
core::Result<SSL_CTX*> upstreamTlsContext(Proxy& p, const core::UpstreamConfig& uc,
                                          std::vector<std::string>& keys) {
    std::string key = (uc.tls_verify ? "1\n" : "0\n") + uc.ca_file + "\n" + uc.tls_cert + "\n" +
                      uc.tls_key;
    for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] == key) {
            return p.tls_contexts[i];
        }
    }
    mod::tls::ClientTlsOptions o;
    o.verify = uc.tls_verify;
    o.ca_file = uc.ca_file;
    o.cert = uc.tls_cert;
    o.key = uc.tls_key;
    auto ctx = mod::tls::makeClientContext(o);
    if (!ctx.ok()) {
        return ctx.error();
    }
    p.tls_contexts.push_back(ctx.value());
    keys.push_back(std::move(key));
    return ctx.value();
}

}  // namespace

core::Result<std::unique_ptr<Proxy>> Proxy::build(const core::Config& cfg,
                                                  mod::balancer::UpstreamTable* table) {
    auto p = std::make_unique<Proxy>();
    std::vector<std::string> tls_keys;  // options of p->tls_contexts[i], to share contexts
    // Upstreams and backends, in configuration order.
    size_t total = 0;
    for (const auto& b : cfg.load_balancing.backends) {
        total += b.upstreams.size();
    }
    p->upstreams.reserve(total);  // element addresses must stay stable (pools link into them)
    for (size_t bi = 0; bi < cfg.load_balancing.backends.size(); ++bi) {
        const auto& b = cfg.load_balancing.backends[bi];
        BackendRt be;
        be.name = b.name;
        be.hash_kind = b.hash_key.kind;
        be.count_5xx = b.count_5xx;
        be.hash_name = b.hash_key.name;
        for (const auto& uc : b.upstreams) {
            UpstreamRt u;
            u.address = uc.address.toString();
            u.host = uc.address.host;
            u.port = uc.address.port;
            u.is_name = uc.address.kind == core::HostKind::Name;
            u.resolved = resolve(uc.address, u.sa, u.salen);
            u.tls = uc.tls;
            if (uc.tls) {
                u.tls_name = uc.sni_hostname ? *uc.sni_hostname : uc.address.host;
                auto ctx = upstreamTlsContext(*p, uc, tls_keys);
                if (!ctx.ok()) {
                    return core::fail("load_balancing.backends.", b.name, " upstream ",
                                      u.address, ": ", ctx.error().msg);
                }
                u.tls_ctx = ctx.value();
            }
            u.active_checks = b.health_check.enabled;
            if (!u.resolved) {
                LOG_WARN(
                    "upstream %s of backend %s does not resolve; it stays unusable until it "
                    "does",
                    u.address.c_str(), b.name.c_str());
            }
            u.connect_timeout = seconds(uc.connection_timeout);
            u.read_timeout = seconds(uc.read_timeout);
            u.write_timeout = seconds(uc.write_timeout);
            u.tcp_keepalive = uc.tcp_keepalive.enabled;
            u.ka_idle = std::max(1, static_cast<int>(seconds(uc.tcp_keepalive.idle)));
            u.ka_interval = std::max(1, static_cast<int>(seconds(uc.tcp_keepalive.interval)));
            u.ka_count = static_cast<int>(uc.tcp_keepalive.count);
            u.max_connections =
                uc.max_connections
                    ? static_cast<uint32_t>(std::min<uint64_t>(*uc.max_connections, UINT32_MAX))
                    : 0;
            u.weight = uc.weight;
            u.backend_index = bi;
            be.upstreams.push_back(p->upstreams.size());
            p->upstreams.push_back(std::move(u));
        }
        p->backends.push_back(std::move(be));
    }
    // ListNode heads point at themselves: fix them up now that the vector no longer moves.
    for (auto& u : p->upstreams) {
        u.idle.prev = u.idle.next = &u.idle;
    }

    for (const auto& r : cfg.routes) {
        RouteRt rt;
        rt.id = r.id;
        rt.backend = r.backend_index;
        rt.timeout = r.timeout ? seconds(*r.timeout) : 0;
        rt.retries = r.retries;
        rt.retry_on = r.retry_on;
        rt.per_try_timeout = r.per_try_timeout ? seconds(*r.per_try_timeout) : 0;
        rt.backoff = seconds(r.retry_backoff);
        rt.backoff_max = seconds(r.retry_backoff_max);
        rt.retry_non_idempotent = r.retry_non_idempotent;
        rt.fresh_for_unsafe = r.fresh_connection_for_unsafe;
        rt.rewrites = r.strip_prefix.has_value() || r.rewrite.has_value();
        if (r.websocket && r.websocket->enabled) {
            const auto& w = *r.websocket;
            rt.ws = true;
            rt.ws_any_protocol = !w.protocols.has_value();
            if (w.protocols) {
                rt.ws_protocols = *w.protocols;
            }
            rt.ws_idle = w.idle_timeout ? seconds(*w.idle_timeout) : 0;
            rt.ws_lifetime = w.timeout ? seconds(*w.timeout) : 0;
            rt.ws_max_message = w.max_message_size;
        }
        rt.cache = mod::cache::compilePolicy(cfg, r);
        auto chain = buildChain(cfg, r, p->module_confs);
        if (!chain.ok()) {
            return core::Error{"route '" + r.id + "': " + chain.error().msg};
        }
        rt.chain = std::move(chain.value());
        p->routes.push_back(std::move(rt));
    }
    std::vector<std::string> warnings;
    auto router = mod::routing::Router::compile(routeSpecs(cfg), &warnings);
    if (!router.ok()) {
        return router.error();
    }
    unavailableFeatureWarnings(cfg, warnings);
    for (const auto& w : warnings) {
        LOG_WARN("%s", w.c_str());
    }
    p->router = std::make_unique<mod::routing::Router>(std::move(router.value()));
    p->trusted_proxies = cfg.server.trusted_proxies;
    p->has_health_route =
        p->router->match("GET", "", "/health").status == mod::routing::MatchStatus::Found;

    if (table != nullptr) {
        mod::balancer::BalancerInput in;
        size_t ui = 0;
        for (const auto& b : cfg.load_balancing.backends) {
            mod::balancer::BackendSpec bs;
            bs.name = b.name;
            bs.algorithm = algorithmOf(b.algorithm);
            bs.two_choices = b.two_choices;
            bs.fail_open = b.fail_open;
            bs.max_fails = b.max_fails;
            bs.fail_timeout_us = static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(b.fail_timeout).count());
            bs.max_ejection_time_us = static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(b.max_ejection_time)
                    .count());
            bs.max_ejection_percent = b.max_ejection_percent;
            bs.panic_threshold = b.panic_threshold;
            bs.retry_budget = b.retry_budget;
            bs.min_retry_concurrency = b.min_retry_concurrency;
            bs.max_requests = b.max_requests;
            bs.max_pending = b.max_pending;
            bs.failure_percentage = b.failure_percentage;
            bs.failure_percentage_min_requests = b.failure_percentage_min_requests;
            for (const auto& uc : b.upstreams) {
                mod::balancer::UpstreamSpec us;
                us.address = uc.address.toString();
                // `max_connections: 0` means "never picked" (as in the original): weight 0.
                bool never = uc.max_connections && *uc.max_connections == 0;
                us.weight = never ? 0 : uc.weight;
                us.max_connections =
                    uc.max_connections
                        ? static_cast<uint32_t>(std::min<uint64_t>(*uc.max_connections, UINT32_MAX))
                        : 0;
                // An unresolvable name starts out of rotation (new records only).
                us.start_healthy = p->upstreams[ui].resolved;
                ++ui;
                bs.upstreams.push_back(std::move(us));
            }
            in.backends.push_back(std::move(bs));
        }
        auto plan = mod::balancer::BalancerPlan::build(in, *table);
        if (!plan.ok()) {
            return plan.error();
        }
        p->plan = std::make_unique<mod::balancer::BalancerPlan>(std::move(plan.value()));
        for (size_t i = 0; i < p->upstreams.size(); ++i) {
            p->upstreams[i].shm_index =
                static_cast<int>(p->plan->upstream(static_cast<uint32_t>(i)).record);
        }
    }
    return p;
}

Proxy::~Proxy() {
    for (auto& u : upstreams) {
        if (u.tls_session.session != nullptr) {
            SSL_SESSION_free(u.tls_session.session);
        }
    }
    for (SSL_CTX* c : tls_contexts) {
        SSL_CTX_free(c);
    }
}

core::Result<void> Proxy::checkRoutes(const core::Config& cfg, std::vector<std::string>& warnings) {
    auto router = mod::routing::Router::compile(routeSpecs(cfg), &warnings);
    if (!router.ok()) {
        return router.error();
    }
    std::vector<std::unique_ptr<ModuleConf>> confs;
    for (const auto& r : cfg.routes) {
        auto chain = buildChain(cfg, r, confs);
        if (!chain.ok()) {
            return core::Error{"route '" + r.id + "': " + chain.error().msg};
        }
    }
    unavailableFeatureWarnings(cfg, warnings);
    return {};
}

void Proxy::closeIdle() {
    for (auto& u : upstreams) {
        while (u.idle.linked()) {
            closePooled(reinterpret_cast<UpstreamConn*>(u.idle.next));
        }
    }
}

}  // namespace photon::worker
