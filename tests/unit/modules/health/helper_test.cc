// SPDX-License-Identifier: Apache-2.0
// Tests for runHealthHelper: a forked helper records checks in shm and exits on EOF or SIGTERM.
#include "modules/health/helper.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>

#include "../../shm/shm_test_util.h"
#include "core/config.h"
#include "core/log.h"
#include "health_test_util.h"
#include "modules/balancer/config.h"
#include "modules/balancer/upstream_table.h"
#include "modules/routing/router.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::mod::health {
namespace {

/// A config with backend "api" whose only upstream is 127.0.0.1:<port> (nothing listens there:
/// the port is bound but not listening), checked by tcp every 20 ms, unhealthy after 2
/// failures; the Proxy and table the master would build for it.
class HealthHelperTest : public ::testing::Test {
protected:
    void SetUp() override {
        constexpr uint32_t kCap = balancer::UpstreamTable::kMinCapacity;
        auto seg = shm::MappedSegment::create(
            name_.str(), balancer::UpstreamTable::bodyBytes(kCap, 16),
            balancer::kUpstreamLayoutVersion, balancer::UpstreamTable::fingerprint(kCap, 16));
        ASSERT_TRUE(seg.ok()) << seg.error().msg;
        seg_.emplace(std::move(seg.value()));
        auto t = balancer::UpstreamTable::bind(*seg_, kCap, 16);
        ASSERT_TRUE(t.ok());
        table_.emplace(t.value());

        const std::string address = "127.0.0.1:" + std::to_string(closed_.port());
        core::BackendConfig b;
        b.name = "api";
        core::UpstreamConfig u;
        u.address = core::parseHostPort(address).value();
        b.upstreams.push_back(u);
        b.health_check.check_type = core::HealthCheckType::Tcp;
        b.health_check.interval = std::chrono::milliseconds(20);
        b.health_check.failure_threshold = 2;
        cfg_.load_balancing.backends.push_back(b);

        balancer::BalancerInput in;
        balancer::BackendSpec bs;
        bs.name = "api";
        bs.upstreams.push_back({address, 1, 0, true});
        in.backends.push_back(bs);
        auto plan = balancer::BalancerPlan::build(in, *table_);
        ASSERT_TRUE(plan.ok());
        proxy_.plan = std::make_unique<balancer::BalancerPlan>(std::move(plan.value()));
        worker::UpstreamRt rt;
        rt.address = address;
        rt.resolved = true;
        sockaddr_in a = testing::loopback(closed_.port());
        std::memcpy(&rt.sa, &a, sizeof a);
        rt.salen = sizeof a;
        proxy_.upstreams.push_back(rt);

        worker::SharedSegments segs;
        segs.upstreams = &*table_;
        worker::setSharedSegments(segs);
    }

    void TearDown() override { worker::setSharedSegments({}); }

    /// Forks a helper whose error log goes to a pipe; returns its pid. `parent_fd` (the master's
    /// end of the socketpair, if any) is closed in the child, as the master does.
    pid_t spawn(int master_fd, int parent_fd = -1) {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        log_fd_ = p[0];
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(p[0]);
            if (parent_fd >= 0) {
                ::close(parent_fd);
            }
            core::logState().fd = p[1];
            core::setLogLevel(core::LogLevel::Info);
            HelperInit init;
            init.config = &cfg_;
            init.proxy = &proxy_;
            init.slot = 5;
            init.master_fd = master_fd;
            std::_Exit(runHealthHelper(init));
        }
        ::close(p[1]);
        return pid;
    }

    /// Reads the helper's log until `needle` appears (true) or the log ends (false).
    bool waitForLog(const std::string& needle) {
        while (log_.find(needle) == std::string::npos) {
            pollfd pfd{log_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, 20000) <= 0) {
                return false;
            }
            char buf[4096];
            const ssize_t n = ::read(log_fd_, buf, sizeof buf);
            if (n <= 0) {
                return false;
            }
            log_.append(buf, static_cast<size_t>(n));
        }
        return true;
    }

    int waitExit(pid_t pid) {
        int status = 0;
        EXPECT_EQ(::waitpid(pid, &status, 0), pid);
        ::close(log_fd_);
        return status;
    }

    testing::BoundSocket closed_{-1};
    shm::testing::ScopedSegmentName name_{"upstreams"};
    std::optional<shm::MappedSegment> seg_;
    std::optional<balancer::UpstreamTable> table_;
    core::Config cfg_;
    worker::Proxy proxy_;
    int log_fd_ = -1;
    std::string log_;
};

TEST_F(HealthHelperTest, MarksADeadUpstreamUnhealthyAndExitsWhenTheMasterGoes) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    const uint32_t record = proxy_.plan->upstream(0).record;
    ASSERT_TRUE(table_->isHealthy(record));  // records start healthy
    const pid_t pid = spawn(sv[1], sv[0]);
    ::close(sv[1]);
    ASSERT_TRUE(waitForLog("is now unhealthy")) << log_;
    EXPECT_NE(log_.find("of backend api"), std::string::npos) << log_;
    EXPECT_NE(log_.find("connect_refused"), std::string::npos) << log_;
    EXPECT_FALSE(table_->isHealthy(record));
    const auto snap = table_->snapshot(record, shm::monotonicMicros());
    EXPECT_EQ(snap.last_error, balancer::HealthError::ConnectRefused);
    EXPECT_EQ(table_->pinnedGeneration(5), proxy_.plan->generation());

    ::close(sv[0]);  // the master goes away
    EXPECT_TRUE(waitForLog("master process went away")) << log_;
    const int status = waitExit(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(HealthHelperTest, ExitsCleanlyOnSigterm) {
    const pid_t pid = spawn(-1);
    ASSERT_TRUE(waitForLog("health checks: 1 upstream(s) in 1 backend(s)")) << log_;
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    const int status = waitExit(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(HealthHelperTest, FailsWithoutTheSharedTable) {
    worker::setSharedSegments({});
    const pid_t pid = spawn(-1);
    const int status = waitExit(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
}

}  // namespace
}  // namespace photon::mod::health
