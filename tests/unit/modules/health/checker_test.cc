// SPDX-License-Identifier: Apache-2.0
// Tests for HealthChecker: jitter bounds, target building, recording with hysteresis,
// transition logs, and concurrency (a hanging upstream delays no other).
#include "modules/health/checker.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../../shm/shm_test_util.h"
#include "core/config.h"
#include "core/log.h"
#include "health_test_util.h"
#include "modules/balancer/balancer.h"
#include "modules/balancer/config.h"
#include "modules/balancer/rng.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "worker/proxy.h"

namespace photon::mod::health {
namespace {

using balancer::HealthError;
using balancer::HealthTransition;
using testing::BoundSocket;
using testing::ScriptedServer;
using testing::targetPort;
using testing::TestLoop;

// ---- jitter ------------------------------------------------------------------------------------

TEST(CheckJitterTest, FirstDelayIsWithinZeroAndTheInterval) {
    EXPECT_EQ(firstCheckDelay(10, 0), 0.0);
    EXPECT_LT(firstCheckDelay(10, UINT64_MAX), 10.0);
    EXPECT_GT(firstCheckDelay(10, UINT64_MAX), 9.99);
    EXPECT_LT(firstCheckDelay(0.2, UINT64_MAX), 0.2);
    balancer::Rng rng(42);
    double lo = 1e9, hi = -1;
    for (int i = 0; i < 10000; ++i) {
        const double d = firstCheckDelay(2.0, rng.next());
        ASSERT_GE(d, 0.0);
        ASSERT_LT(d, 2.0);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    // Spread over the whole interval, not clustered.
    EXPECT_LT(lo, 0.1);
    EXPECT_GT(hi, 1.9);
}

TEST(CheckJitterTest, NextDelayIsWithinTenPercentOfTheInterval) {
    EXPECT_EQ(nextCheckDelay(10, 0), 10 * 0.9);
    EXPECT_LT(nextCheckDelay(10, UINT64_MAX), 10 * 1.1);
    EXPECT_GT(nextCheckDelay(10, UINT64_MAX), 10.99);
    balancer::Rng rng(7);
    double lo = 1e9, hi = -1;
    for (int i = 0; i < 10000; ++i) {
        const double d = nextCheckDelay(0.5, rng.next());
        ASSERT_GE(d, 0.5 * 0.9);
        ASSERT_LT(d, 0.5 * 1.1);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    EXPECT_LT(lo, 0.46);
    EXPECT_GT(hi, 0.54);
}

// ---- fixture: a table, a plan and the helper's Balancer -----------------------------------------

class HealthCheckerTest : public ::testing::Test {
protected:
    static constexpr uint32_t kSlot = 3;

    void SetUp() override { open(balancer::UpstreamTable::kMinCapacity); }

    void open(uint32_t capacity) {
        writer_.reset();
        plan_.reset();
        table_.reset();
        seg_.reset();
        auto seg = shm::MappedSegment::create(
            name_.str(), balancer::UpstreamTable::bodyBytes(capacity, 16),
            balancer::kUpstreamLayoutVersion, balancer::UpstreamTable::fingerprint(capacity, 16));
        ASSERT_TRUE(seg.ok()) << seg.error().msg;
        seg_.emplace(std::move(seg.value()));
        auto t = balancer::UpstreamTable::bind(*seg_, capacity, 16);
        ASSERT_TRUE(t.ok()) << t.error().msg;
        table_.emplace(t.value());
    }

    /// One backend "api" with `addresses`; start_healthy per `healthy` (default all true).
    void plan(const std::vector<std::string>& addresses, std::vector<bool> healthy = {}) {
        balancer::BackendSpec b;
        b.name = "api";
        for (size_t i = 0; i < addresses.size(); ++i) {
            balancer::UpstreamSpec u;
            u.address = addresses[i];
            u.start_healthy = healthy.empty() || healthy[i];
            b.upstreams.push_back(u);
        }
        balancer::BalancerInput in;
        in.backends.push_back(b);
        build(in);
    }

    void build(const balancer::BalancerInput& in) {
        writer_.reset();
        auto p = balancer::BalancerPlan::build(in, *table_);
        ASSERT_TRUE(p.ok()) << p.error().msg;
        plan_.emplace(std::move(p.value()));
        writer_.emplace(*plan_, *table_, kSlot, 1234);
    }

    /// An http check of upstream `u` against 127.0.0.1:port.
    static CheckTarget httpTarget(uint32_t u, uint16_t port, double interval_s = 0.01) {
        CheckTarget t;
        t.upstream = u;
        t.backend = "api";
        t.address = "127.0.0.1:" + std::to_string(port);
        t.interval_s = interval_s;
        t.probe.kind = core::HealthCheckType::Http;
        t.probe.request = buildCheckRequest("GET", "/health", t.address);
        t.probe.timeout_s = 5;
        targetPort(t.probe, port);
        return t;
    }

    balancer::UpstreamSnapshot snap(uint32_t u) {
        return table_->snapshot(plan_->upstream(u).record, shm::monotonicMicros());
    }

    struct Seen {
        bool ok;
        HealthTransition transition;
        size_t target;
    };
    static void onResult(void* ctx, const CheckTarget& t, const ProbeResult& r,
                         HealthTransition tr) {
        static_cast<std::vector<Seen>*>(ctx)->push_back({r.ok, tr, t.upstream});
    }

    TestLoop loop_;
    shm::testing::ScopedSegmentName name_{"upstreams"};
    std::optional<shm::MappedSegment> seg_;
    std::optional<balancer::UpstreamTable> table_;
    std::optional<balancer::BalancerPlan> plan_;
    std::optional<balancer::Balancer> writer_;
    std::vector<Seen> seen_;
};

/// Sends the error log to a memory file for the lifetime of the object.
class LogCapture {
public:
    LogCapture() : fd_(::memfd_create("health-log", 0)), saved_(core::logState().fd) {
        core::logState().fd = fd_;
        saved_level_ = core::logState().level;
        core::setLogLevel(core::LogLevel::Info);
    }
    ~LogCapture() {
        core::logState().fd = saved_;
        core::setLogLevel(saved_level_);
        ::close(fd_);
    }
    std::string text() const {
        std::string out;
        char buf[4096];
        off_t off = 0;
        ssize_t n;
        while ((n = ::pread(fd_, buf, sizeof buf, off)) > 0) {
            out.append(buf, static_cast<size_t>(n));
            off += n;
        }
        return out;
    }
    size_t count(const std::string& needle) const {
        const std::string t = text();
        size_t n = 0;
        for (size_t p = t.find(needle); p != std::string::npos; p = t.find(needle, p + 1)) {
            ++n;
        }
        return n;
    }

private:
    int fd_;
    int saved_;
    core::LogLevel saved_level_ = core::LogLevel::Info;
};

// ---- buildTargets ------------------------------------------------------------------------------

class BuildTargetsTest : public HealthCheckerTest {
protected:
    static core::UpstreamConfig upstream(const std::string& text) {
        core::UpstreamConfig u;
        auto hp = core::parseHostPort(text);
        EXPECT_TRUE(hp.ok()) << text;
        u.address = hp.value();
        return u;
    }

    /// A config and the matching plan and resolved upstream list (all "resolved" to
    /// 127.0.0.1:<index + 1000> except names starting with "unresolved").
    void make() {
        balancer::BalancerInput in;
        rts_.clear();
        for (const auto& b : cfg_.load_balancing.backends) {
            balancer::BackendSpec bs;
            bs.name = b.name;
            for (const auto& u : b.upstreams) {
                balancer::UpstreamSpec us;
                us.address = u.address.toString();
                bs.upstreams.push_back(us);
                worker::UpstreamRt rt;
                rt.address = us.address;
                rt.resolved = u.address.host.rfind("unresolved", 0) != 0;
                if (rt.resolved) {
                    sockaddr_in a = testing::loopback(static_cast<uint16_t>(1000 + rts_.size()));
                    std::memcpy(&rt.sa, &a, sizeof a);
                    rt.salen = sizeof a;
                }
                rts_.push_back(rt);
            }
            in.backends.push_back(bs);
        }
        build(in);
    }

    std::vector<CheckTarget> targets() {
        return buildTargets(cfg_, *plan_, std::span<const worker::UpstreamRt>(rts_));
    }

    core::Config cfg_;
    std::vector<worker::UpstreamRt> rts_;
};

TEST_F(BuildTargetsTest, TakesEachBackendsEffectiveSettings) {
    core::BackendConfig api;
    api.name = "api";
    api.upstreams = {upstream("10.0.0.1:8080"), upstream("unresolved.test:80")};
    api.health_check.interval = std::chrono::milliseconds(1500);
    api.health_check.timeout = std::chrono::milliseconds(250);
    api.health_check.failure_threshold = 4;
    api.health_check.success_threshold = 5;
    core::BackendConfig secure;
    secure.name = "secure";
    secure.upstreams = {upstream("10.0.0.2:443"), upstream("[::1]:8443")};
    secure.upstreams[0].sni_hostname = "api.example.com";
    secure.health_check.check_type = core::HealthCheckType::Https;
    secure.health_check.method = "HEAD";
    secure.health_check.path = "/live";
    secure.health_check.host = "status.example.com";
    secure.health_check.expected_status = 204;
    secure.health_check.tls_verify = false;
    core::BackendConfig off;
    off.name = "off";
    off.upstreams = {upstream("10.0.0.3:80")};
    off.health_check.enabled = false;
    core::BackendConfig raw;
    raw.name = "raw";
    raw.upstreams = {upstream("10.0.0.4:6379")};
    raw.health_check.check_type = core::HealthCheckType::Tcp;
    cfg_.load_balancing.backends = {api, secure, off, raw};
    make();

    const std::vector<CheckTarget> t = targets();
    ASSERT_EQ(t.size(), 5u);
    // api: http GET /health, Host = the address as configured.
    EXPECT_EQ(t[0].backend, "api");
    EXPECT_EQ(t[0].upstream, plan_->backend(0).first);
    EXPECT_EQ(t[0].address, "10.0.0.1:8080");
    EXPECT_EQ(t[0].probe.kind, core::HealthCheckType::Http);
    EXPECT_EQ(t[0].probe.request, buildCheckRequest("GET", "/health", "10.0.0.1:8080"));
    EXPECT_FALSE(t[0].probe.head_request);
    EXPECT_EQ(t[0].probe.expected_status, 200);
    EXPECT_DOUBLE_EQ(t[0].interval_s, 1.5);
    EXPECT_DOUBLE_EQ(t[0].probe.timeout_s, 0.25);
    EXPECT_EQ(t[0].thresholds.failure_threshold, 4u);
    EXPECT_EQ(t[0].thresholds.success_threshold, 5u);
    EXPECT_EQ(t[0].probe.addr_len, sizeof(sockaddr_in));
    EXPECT_EQ(std::memcmp(&t[0].probe.addr, &rts_[0].sa, sizeof(sockaddr_in)), 0);
    EXPECT_TRUE(t[0].probe.tls_name.empty());
    // The unresolved upstream is still checked (and fails with Resolve).
    EXPECT_EQ(t[1].upstream, plan_->backend(0).first + 1);
    EXPECT_EQ(t[1].probe.addr_len, 0u);
    // secure: https HEAD with its own Host; SNI from sni_hostname, else the address host.
    EXPECT_EQ(t[2].backend, "secure");
    EXPECT_EQ(t[2].upstream, plan_->backend(1).first);
    EXPECT_EQ(t[2].probe.kind, core::HealthCheckType::Https);
    EXPECT_EQ(t[2].probe.request, buildCheckRequest("HEAD", "/live", "status.example.com"));
    EXPECT_TRUE(t[2].probe.head_request);
    EXPECT_EQ(t[2].probe.expected_status, 204);
    EXPECT_FALSE(t[2].probe.tls_verify);
    EXPECT_EQ(t[2].probe.tls_name, "api.example.com");
    EXPECT_EQ(t[3].probe.tls_name, "::1");
    EXPECT_EQ(t[3].address, "[::1]:8443");
    // off: nothing; raw: tcp without a request.
    EXPECT_EQ(t[4].backend, "raw");
    EXPECT_EQ(t[4].upstream, plan_->backend(3).first);
    EXPECT_EQ(t[4].probe.kind, core::HealthCheckType::Tcp);
    EXPECT_TRUE(t[4].probe.request.empty());
}

TEST_F(BuildTargetsTest, GlobalSwitchTurnsEverythingOff) {
    core::BackendConfig api;
    api.name = "api";
    api.upstreams = {upstream("10.0.0.1:8080")};
    cfg_.load_balancing.backends = {api};
    make();
    EXPECT_EQ(targets().size(), 1u);
    cfg_.health_check.enabled = false;
    EXPECT_TRUE(targets().empty());
}

TEST_F(BuildTargetsTest, BackendThatDoesNotMatchThePlanIsSkipped) {
    core::BackendConfig api;
    api.name = "api";
    api.upstreams = {upstream("10.0.0.1:8080")};
    cfg_.load_balancing.backends = {api};
    make();
    cfg_.load_balancing.backends[0].upstreams.push_back(upstream("10.0.0.9:80"));
    cfg_.load_balancing.backends.push_back(api);
    cfg_.load_balancing.backends.back().name = "unknown";
    LogCapture log;
    EXPECT_TRUE(targets().empty());
    EXPECT_EQ(log.count("does not match the balancing plan"), 2u);
}

// ---- checking ----------------------------------------------------------------------------------

TEST_F(HealthCheckerTest, HysteresisAndOneLogLinePerTransition) {
    ScriptedServer server(loop_.get());
    server.reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    plan({"127.0.0.1:" + std::to_string(server.port())});
    CheckTarget t = httpTarget(0, server.port());
    t.thresholds.failure_threshold = 2;
    t.thresholds.success_threshold = 3;
    LogCapture log;
    HealthChecker checker(loop_.get(), *writer_, {t}, 99);
    checker.setResultCallback(onResult, &seen_);
    checker.start();

    auto transitions = [&](HealthTransition want) {
        return std::count_if(seen_.begin(), seen_.end(),
                             [&](const Seen& s) { return s.transition == want; });
    };
    ASSERT_TRUE(
        loop_.runUntil([&] { return transitions(HealthTransition::BecameUnhealthy) == 1; }));
    ASSERT_EQ(seen_.size(), 2u);  // exactly failure_threshold failed checks
    EXPECT_FALSE(seen_[0].ok);
    EXPECT_EQ(seen_[0].transition, HealthTransition::None);
    EXPECT_FALSE(writer_->isHealthy(0));
    balancer::UpstreamSnapshot s = snap(0);
    EXPECT_EQ(s.last_error, HealthError::BadStatus);
    EXPECT_EQ(s.last_http_status, 503);
    EXPECT_NE(s.last_check_us, 0u);

    // More failures: no new transition, no new log line.
    ASSERT_TRUE(loop_.runUntil([&] { return seen_.size() >= 6; }));
    EXPECT_EQ(transitions(HealthTransition::BecameUnhealthy), 1);

    server.reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ASSERT_TRUE(loop_.runUntil([&] { return transitions(HealthTransition::BecameHealthy) == 1; }));
    // The transition came with the third consecutive success.
    ASSERT_GE(seen_.size(), 3u);
    const size_t n = seen_.size();
    EXPECT_TRUE(seen_[n - 1].ok && seen_[n - 2].ok && seen_[n - 3].ok);
    EXPECT_FALSE(seen_[n - 4].ok) << "a success before the last three";
    EXPECT_TRUE(writer_->isHealthy(0));
    ASSERT_TRUE(loop_.runUntil([&] { return seen_.size() >= n + 3; }));
    checker.stop();
    EXPECT_EQ(checker.checksRunning(), 0u);

    EXPECT_EQ(log.count("is now unhealthy"), 1u) << log.text();
    EXPECT_EQ(log.count("healthy again"), 1u) << log.text();
    const std::string text = log.text();
    const std::string down_line = text.substr(text.find("is now unhealthy"));
    EXPECT_NE(text.find("upstream 127.0.0.1:" + std::to_string(server.port()) + " of backend api"),
              std::string::npos);
    EXPECT_NE(down_line.find("bad_status 503 (expected 200)"), std::string::npos) << down_line;
    EXPECT_EQ(snap(0).health_changes, 2u);
}

TEST_F(HealthCheckerTest, RefusedConnectionsMarkTheUpstreamUnhealthy) {
    BoundSocket closed(-1);
    plan({"127.0.0.1:" + std::to_string(closed.port())});
    CheckTarget t = httpTarget(0, closed.port());
    t.thresholds.failure_threshold = 3;
    LogCapture log;
    HealthChecker checker(loop_.get(), *writer_, {t}, 5);
    checker.setResultCallback(onResult, &seen_);
    checker.start();
    ASSERT_TRUE(loop_.runUntil([&] { return seen_.size() == 3; }));
    EXPECT_EQ(seen_.back().transition, HealthTransition::BecameUnhealthy);
    EXPECT_FALSE(writer_->isHealthy(0));
    EXPECT_EQ(snap(0).last_error, HealthError::ConnectRefused);
}

TEST_F(HealthCheckerTest, UnresolvedUpstreamStaysUnhealthyWithResolveError) {
    plan({"unresolved.test:80"}, {false});
    CheckTarget t = httpTarget(0, 1);
    t.probe.addr_len = 0;
    t.thresholds.success_threshold = 1;
    HealthChecker checker(loop_.get(), *writer_, {t}, 5);
    checker.setResultCallback(onResult, &seen_);
    checker.start();
    ASSERT_TRUE(loop_.runUntil([&] { return seen_.size() == 2; }));
    EXPECT_FALSE(writer_->isHealthy(0));
    EXPECT_EQ(snap(0).last_error, HealthError::Resolve);
    EXPECT_EQ(snap(0).health_changes, 0u);
}

TEST_F(HealthCheckerTest, HangingUpstreamDelaysNoOtherCheck) {
    ScriptedServer hang(loop_.get());
    hang.mode = ScriptedServer::Mode::Hang;
    ScriptedServer fast(loop_.get());
    plan({"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"});
    std::vector<CheckTarget> targets;
    targets.push_back(httpTarget(0, hang.port()));
    targets[0].probe.timeout_s = 60;
    for (uint32_t u = 1; u < 4; ++u) {
        targets.push_back(httpTarget(u, fast.port()));
    }
    HealthChecker checker(loop_.get(), *writer_, targets, 11);
    checker.start();
    ASSERT_TRUE(loop_.runUntil([&] {
        return checker.checksDone(1) >= 5 && checker.checksDone(2) >= 5 &&
               checker.checksDone(3) >= 5;
    }));
    EXPECT_EQ(checker.checksDone(0), 0u);
    EXPECT_EQ(hang.requests.size(), 1u);  // its check is still waiting for an answer
    EXPECT_GE(checker.checksRunning(), 1u);
    for (uint32_t u = 1; u < 4; ++u) {
        EXPECT_TRUE(writer_->isHealthy(u));
        EXPECT_EQ(snap(u).last_http_status, 200);
    }

    // stop() abandons the hanging check and closes its connection.
    checker.stop();
    EXPECT_EQ(checker.checksRunning(), 0u);
    ASSERT_TRUE(loop_.runUntil([&] { return hang.closed_by_peer == 1; }));
}

TEST_F(HealthCheckerTest, ChecksHundredsOfUpstreamsConcurrently) {
    constexpr uint32_t kUpstreams = 300;
    open(balancer::UpstreamTable::capacityFor(kUpstreams));
    ScriptedServer server(loop_.get());
    server.mode = ScriptedServer::Mode::CloseAtOnce;
    std::vector<std::string> addresses;
    for (uint32_t i = 0; i < kUpstreams; ++i) {
        addresses.push_back("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                            ":80");
    }
    plan(addresses, std::vector<bool>(kUpstreams, false));
    std::vector<CheckTarget> targets;
    for (uint32_t u = 0; u < kUpstreams; ++u) {
        CheckTarget t = httpTarget(u, server.port(), 0.5);
        t.probe.kind = core::HealthCheckType::Tcp;
        t.thresholds.success_threshold = 1;
        targets.push_back(std::move(t));
    }
    LogCapture log;
    HealthChecker checker(loop_.get(), *writer_, std::move(targets), 3);
    checker.start();
    ASSERT_TRUE(loop_.runUntil([&] {
        for (uint32_t u = 0; u < kUpstreams; ++u) {
            if (checker.checksDone(u) == 0) {
                return false;
            }
        }
        return true;
    }));
    for (uint32_t u = 0; u < kUpstreams; ++u) {
        ASSERT_TRUE(writer_->isHealthy(u)) << u;
    }
    EXPECT_EQ(log.count("healthy again"), kUpstreams);
}

}  // namespace
}  // namespace photon::mod::health
