// SPDX-License-Identifier: Apache-2.0
// HealthChecker: schedules the active checks of every upstream on one loop and records results.
#pragma once

#include <ev.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "modules/balancer/balancer.h"
#include "modules/balancer/rng.h"
#include "modules/health/http_probe.h"

namespace photon::core {
struct Config;
}
namespace photon::worker {
struct UpstreamRt;
}

namespace photon::mod::health {

/// One upstream to check, with its backend's effective settings.
struct CheckTarget {
    uint32_t upstream = 0;   // global upstream index in the BalancerPlan (and Proxy::upstreams)
    std::string backend;     // backend name, for logs
    std::string address;     // upstream address as configured, for logs
    double interval_s = 10;  // > 0
    balancer::HealthThresholds thresholds;
    ProbeSpec probe;
};

/// Builds the check list from the configuration: one target per upstream of every backend whose
/// effective `health_check.enabled` is true (global `health_check.enabled` and the backend's
/// own). `upstreams` are the resolved upstreams indexed like the plan's global upstream indices
/// (Proxy::upstreams); an unresolved one gets addr_len 0 and fails its checks with Resolve.
/// Per target: kind, path, method, expected_status, interval, timeout and thresholds from the
/// backend's effective health_check; Host header = health_check.host, else the upstream address
/// as configured ("host:port"); TLS name (https) = the upstream's sni_hostname, else the host
/// part of its address; tls_verify from the backend. A backend the plan does not know, or whose
/// upstream count differs from the plan, is skipped with an error log (cannot happen when both
/// come from the same config). Master or helper; allocates.
std::vector<CheckTarget> buildTargets(const core::Config& cfg, const balancer::BalancerPlan& plan,
                                      std::span<const worker::UpstreamRt> upstreams);

/// Delay before a target's first check: uniform in [0, interval_s), from 64 random bits, so
/// checks of many upstreams spread over the first interval instead of firing together.
double firstCheckDelay(double interval_s, uint64_t random_bits);
/// Interval between the starts of two consecutive checks: interval_s × a factor uniform in
/// [0.9, 1.1), from 64 random bits, so upstreams checked together drift apart.
double nextCheckDelay(double interval_s, uint64_t random_bits);

/// Runs the active health checks of a list of targets on one libev loop and records every
/// result in shared memory through a Balancer (the helper's slot is the single health writer).
///
/// Scheduling. Each target has its own timer and Probe, so checks run concurrently and a slow
/// or hanging upstream delays no other (each check is bounded by its own timeout). The first
/// check starts after firstCheckDelay(); each later one nextCheckDelay() after the previous one
/// started, or as soon as the previous one ends if that took longer (checks of one upstream
/// never overlap). Nothing is allocated per check.
///
/// Recording. Every result goes through Balancer::recordCheck with the target's thresholds
/// (hysteresis lives in the table: healthy → unhealthy after failure_threshold consecutive
/// failures, back after success_threshold consecutive successes). Records keep the state they
/// have when checks start: new upstreams start healthy (unresolved ones unhealthy), so a fresh
/// gateway serves at once and a dead upstream leaves rotation after failure_threshold checks;
/// upstreams surviving a reload keep their state. A result that finds the record's seqlock busy
/// (another writer mid-update) is retried a few times, then dropped; the next check records.
/// Transitions are logged once each (warn when an upstream goes down, notice when it comes back)
/// with backend, address and the reason of the last check; individual checks log at debug.
///
/// Helper process only. Not thread-safe. The loop, the Balancer and the plan behind it must
/// outlive the checker.
class HealthChecker {
public:
    /// Called after each recorded result (tests and metrics); `transition` is what recordCheck
    /// returned (Busy if the result was dropped).
    using ResultFn = void (*)(void* ctx, const CheckTarget& target, const ProbeResult& result,
                              balancer::HealthTransition transition);

    /// `seed` seeds the jitter (use Rng::seedFor(pid, slot, now)).
    HealthChecker(struct ev_loop* loop, balancer::Balancer& balancer,
                  std::vector<CheckTarget> targets, uint64_t seed);
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    /// Arms every target's first check. If an https target needs a TLS context that cannot be
    /// created (e.g. the system CA paths cannot be loaded), that is logged once as an error and
    /// those targets' checks fail with TlsHandshake; every other target is checked normally.
    /// Calling start() twice is a no-op.
    void start();
    /// Cancels every timer and running check; no further results are recorded.
    void stop();

    void setResultCallback(ResultFn fn, void* ctx) {
        on_result_ = fn;
        on_result_ctx_ = ctx;
    }

    size_t targetCount() const { return entries_.size(); }
    const CheckTarget& target(size_t i) const { return entries_[i]->target; }
    /// Checks of target i completed (recorded or dropped) since start().
    uint64_t checksDone(size_t i) const { return entries_[i]->checks; }
    /// Checks running right now.
    size_t checksRunning() const;

private:
    struct Entry {
        Entry(HealthChecker* o, size_t i, CheckTarget t);
        HealthChecker* owner;
        size_t index;
        CheckTarget target;
        Probe probe;
        ev_timer timer;
        double next_start = 0;  // ev_now() time at which the next check is due
        uint64_t checks = 0;
    };

    static void onTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
    static void onProbeDone(void* ctx, const ProbeResult& r);
    void beginCheck(Entry& e);
    void record(Entry& e, const ProbeResult& r);

    struct ev_loop* loop_;
    balancer::Balancer* balancer_;
    balancer::Rng rng_;
    TlsClientContexts tls_;
    SSL_CTX* tls_verify_ = nullptr;
    SSL_CTX* tls_no_verify_ = nullptr;
    std::vector<std::unique_ptr<Entry>> entries_;  // stable addresses: watchers point into them
    /// Per backend (by name): how the first HTTP check of each upstream went, to say once when
    /// every upstream answered 404 (the backend does not serve the check path).
    struct FirstChecks {
        uint32_t upstreams = 0;
        uint32_t seen = 0;
        bool all_404 = true;
    };
    std::unordered_map<std::string, FirstChecks> first_checks_;
    void noteFirstCheck(const CheckTarget& t, const ProbeResult& r);
    ResultFn on_result_ = nullptr;
    void* on_result_ctx_ = nullptr;
    bool started_ = false;
};

}  // namespace photon::mod::health
