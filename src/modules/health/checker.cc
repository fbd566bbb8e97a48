// SPDX-License-Identifier: Apache-2.0
// HealthChecker: target list, jittered per-upstream timers, result recording and transition logs.
#include "modules/health/checker.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/config.h"
#include "core/log.h"
#include "shm/clock.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::mod::health {

using balancer::HealthTransition;

namespace {

/// Attempts at recording one result while another writer holds the record's seqlock.
constexpr int kBusyRetries = 8;

/// Uniform in [0, 1) from the top 53 bits.
double unit(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

double seconds(core::Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

double firstCheckDelay(double interval_s, uint64_t random_bits) {
    const double d = unit(random_bits) * interval_s;
    return d < interval_s ? d : std::nextafter(interval_s, 0.0);
}

double nextCheckDelay(double interval_s, uint64_t random_bits) {
    const double lo = interval_s * 0.9;
    const double hi = interval_s * 1.1;
    const double d = lo + unit(random_bits) * (hi - lo);
    return d < hi ? std::max(d, lo) : std::nextafter(hi, 0.0);
}

std::vector<CheckTarget> buildTargets(const core::Config& cfg, const balancer::BalancerPlan& plan,
                                      std::span<const worker::UpstreamRt> upstreams) {
    std::vector<CheckTarget> out;
    if (!cfg.health_check.enabled) {
        return out;
    }
    for (const core::BackendConfig& b : cfg.load_balancing.backends) {
        const core::BackendHealthCheckConfig& hc = b.health_check;
        if (!hc.enabled) {
            continue;
        }
        const auto bi = plan.findBackend(b.name);
        if (!bi || plan.backend(*bi).count != b.upstreams.size()) {
            LOG_ERROR("health checks: backend %s does not match the balancing plan; not checked",
                      b.name.c_str());
            continue;
        }
        const uint32_t first = plan.backend(*bi).first;
        for (size_t k = 0; k < b.upstreams.size(); ++k) {
            const core::UpstreamConfig& uc = b.upstreams[k];
            const uint32_t u = first + static_cast<uint32_t>(k);
            CheckTarget t;
            t.upstream = u;
            t.backend = b.name;
            t.address = uc.address.toString();
            t.interval_s = seconds(hc.interval);
            t.thresholds.failure_threshold = hc.failure_threshold;
            t.thresholds.success_threshold = hc.success_threshold;
            ProbeSpec& p = t.probe;
            p.kind = hc.check_type;
            p.timeout_s = seconds(hc.timeout);
            p.expected_status = hc.expected_status;
            p.tls_verify = hc.tls_verify;
            if (u < upstreams.size() && upstreams[u].resolved) {
                std::memcpy(&p.addr, &upstreams[u].sa, sizeof p.addr);
                p.addr_len = upstreams[u].salen;
            }
            if (hc.check_type != core::HealthCheckType::Tcp) {
                p.request = buildCheckRequest(hc.method, hc.path, hc.host ? *hc.host : t.address);
                p.head_request = hc.method == "HEAD";
            }
            if (hc.check_type == core::HealthCheckType::Https) {
                p.tls_name = uc.sni_hostname ? *uc.sni_hostname : uc.address.host;
                if (uc.tls && hc.tls_verify && u < upstreams.size()) {
                    p.tls_ctx = upstreams[u].tls_ctx;
                }
            }
            out.push_back(std::move(t));
        }
    }
    return out;
}

HealthChecker::Entry::Entry(HealthChecker* o, size_t i, CheckTarget t)
    : owner(o), index(i), target(std::move(t)), probe(o->loop_, &HealthChecker::onProbeDone, this) {
    ev_timer_init(&timer, &HealthChecker::onTimer, 0., 0.);
    timer.data = this;
}

HealthChecker::HealthChecker(struct ev_loop* loop, balancer::Balancer& balancer,
                             std::vector<CheckTarget> targets, uint64_t seed)
    : loop_(loop), balancer_(&balancer), rng_(seed) {
    entries_.reserve(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
        entries_.push_back(std::make_unique<Entry>(this, i, std::move(targets[i])));
    }
}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
    if (started_) {
        return;
    }
    started_ = true;
    bool need_verify = false;
    bool need_plain = false;
    for (const auto& e : entries_) {
        if (e->target.probe.kind == core::HealthCheckType::Https) {
            (e->target.probe.tls_verify ? need_verify : need_plain) = true;
        }
    }
    if (need_verify) {
        auto c = tls_.get(true);
        if (c.ok()) {
            tls_verify_ = c.value();
        } else {
            LOG_ERROR("health checks: %s; https checks with tls_verify fail until restart",
                      c.error().msg.c_str());
        }
    }
    if (need_plain) {
        auto c = tls_.get(false);
        if (c.ok()) {
            tls_no_verify_ = c.value();
        } else {
            LOG_ERROR("health checks: %s; https checks fail until restart", c.error().msg.c_str());
        }
    }
    for (auto& e : entries_) {
        e->next_start = 0;
        ev_timer_set(&e->timer, firstCheckDelay(e->target.interval_s, rng_.next()), 0.);
        ev_timer_start(loop_, &e->timer);
    }
}

void HealthChecker::stop() {
    for (auto& e : entries_) {
        ev_timer_stop(loop_, &e->timer);
        e->probe.cancel();
    }
    started_ = false;
}

size_t HealthChecker::checksRunning() const {
    size_t n = 0;
    for (const auto& e : entries_) {
        n += e->probe.running() ? 1 : 0;
    }
    return n;
}

void HealthChecker::onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    Entry* e = static_cast<Entry*>(w->data);
    e->owner->beginCheck(*e);
}

void HealthChecker::beginCheck(Entry& e) {
    e.next_start = ev_now(loop_) + nextCheckDelay(e.target.interval_s, rng_.next());
    // Host names are re-resolved by the master; check the address workers will connect to.
    sockaddr_storage sa;
    socklen_t len = 0;
    if (e.target.upstream < balancer_->plan().upstreamCount() &&
        worker::sharedUpstreamAddress(balancer_->plan().upstream(e.target.upstream).record, sa,
                                      len)) {
        e.target.probe.addr = sa;
        e.target.probe.addr_len = len;
    }
    SSL_CTX* tls = nullptr;
    if (e.target.probe.kind == core::HealthCheckType::Https) {
        tls = e.target.probe.tls_ctx != nullptr ? e.target.probe.tls_ctx
              : e.target.probe.tls_verify       ? tls_verify_
                                                : tls_no_verify_;
    }
    e.probe.start(e.target.probe, tls);
}

void HealthChecker::onProbeDone(void* ctx, const ProbeResult& r) {
    Entry* e = static_cast<Entry*>(ctx);
    HealthChecker* self = e->owner;
    self->record(*e, r);
    if (!self->started_) {
        return;  // stopped from the result callback
    }
    const double delay = std::max(0.0, e->next_start - ev_now(self->loop_));
    ev_timer_set(&e->timer, delay, 0.);
    ev_timer_start(self->loop_, &e->timer);
}

void HealthChecker::noteFirstCheck(const CheckTarget& t, const ProbeResult& r) {
    if (t.probe.kind == core::HealthCheckType::Tcp) {
        return;
    }
    auto it = first_checks_.find(t.backend);
    if (it == first_checks_.end()) {
        FirstChecks fc;
        for (const auto& e : entries_) {
            fc.upstreams += e->target.backend == t.backend ? 1 : 0;
        }
        it = first_checks_.emplace(t.backend, fc).first;
    }
    FirstChecks& fc = it->second;
    ++fc.seen;
    fc.all_404 = fc.all_404 && r.http_status == 404;
    if (fc.seen == fc.upstreams && fc.all_404) {
        // The original's default (GET /health, 200) against an application without that path:
        // every upstream would go unhealthy. Say so once, plainly.
        const std::string& req = t.probe.request;
        size_t sp = req.find(' ');
        size_t end = sp == std::string::npos ? sp : req.find(' ', sp + 1);
        std::string path = sp == std::string::npos ? std::string("the check path")
                                                   : req.substr(sp + 1, end - sp - 1);
        LOG_WARN("health check: backend %s does not serve %s (every upstream answered 404), so "
                 "its upstreams will be marked unhealthy: set health_check.path to a path they "
                 "serve, or health_check.check_type: tcp",
                 t.backend.c_str(), path.c_str());
    }
}

void HealthChecker::record(Entry& e, const ProbeResult& r) {
    const CheckTarget& t = e.target;
    const uint64_t now_us = shm::monotonicMicros();
    HealthTransition tr = HealthTransition::Busy;
    for (int i = 0; i < kBusyRetries && tr == HealthTransition::Busy; ++i) {
        tr = balancer_->recordCheck(t.upstream, r.ok, now_us, r.error, r.http_status, t.thresholds);
    }
    ++e.checks;
    if (e.checks == 1) {
        noteFirstCheck(t, r);
    }
    char why[256];
    switch (tr) {
        case HealthTransition::BecameUnhealthy:
            LOG_WARN(
                "health check: upstream %s of backend %s is now unhealthy after %u failed "
                "check(s): %s",
                t.address.c_str(), t.backend.c_str(),
                std::max<uint32_t>(t.thresholds.failure_threshold, 1),
                describeResult(r, t.probe, why, sizeof why));
            break;
        case HealthTransition::BecameHealthy:
            LOG_NOTICE(
                "health check: upstream %s of backend %s is healthy again after %u "
                "successful check(s)",
                t.address.c_str(), t.backend.c_str(),
                std::max<uint32_t>(t.thresholds.success_threshold, 1));
            break;
        case HealthTransition::Busy:
            LOG_DEBUG("health check: upstream %s of backend %s: result dropped, record busy",
                      t.address.c_str(), t.backend.c_str());
            break;
        case HealthTransition::None:
            LOG_DEBUG("health check: upstream %s of backend %s: %s", t.address.c_str(),
                      t.backend.c_str(), describeResult(r, t.probe, why, sizeof why));
            break;
    }
    if (on_result_ != nullptr) {
        on_result_(on_result_ctx_, t, r, tr);
    }
}

}  // namespace photon::mod::health
