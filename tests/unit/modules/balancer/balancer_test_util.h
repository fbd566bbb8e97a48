// SPDX-License-Identifier: Apache-2.0
// Test helpers: an upstream table on a private shm segment and compact backend descriptions.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "../../shm/shm_test_util.h"
#include "modules/balancer/config.h"
#include "modules/balancer/upstream_table.h"
#include "shm/segment.h"

namespace photon::mod::balancer::testing {

/// Upstream address number i.
inline std::string addr(uint32_t i) { return "10.0.0." + std::to_string(i) + ":8080"; }

/// A backend with one upstream per weight (addresses addr(0), addr(1), ...).
inline BackendSpec backendSpec(const std::string& name, Algorithm algo,
                               const std::vector<uint32_t>& weights, uint32_t max_connections = 0) {
    BackendSpec b;
    b.name = name;
    b.algorithm = algo;
    for (uint32_t i = 0; i < weights.size(); ++i) {
        UpstreamSpec u;
        u.address = addr(i);
        u.weight = weights[i];
        u.max_connections = max_connections;
        b.upstreams.push_back(u);
    }
    return b;
}

/// Fixture owning a fresh upstream table segment for each test.
class TableFixture : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(openTable(UpstreamTable::kMinCapacity, 16)); }

    bool openTable(uint32_t capacity, uint32_t backend_capacity) {
        table_.reset();
        seg_.reset();
        auto seg = shm::MappedSegment::create(
            name_.str(), UpstreamTable::bodyBytes(capacity, backend_capacity),
            kUpstreamLayoutVersion, UpstreamTable::fingerprint(capacity, backend_capacity));
        if (!seg.ok()) {
            ADD_FAILURE() << seg.error().msg;
            return false;
        }
        seg_.emplace(std::move(seg.value()));
        auto t = UpstreamTable::bind(*seg_, capacity, backend_capacity);
        if (!t.ok()) {
            ADD_FAILURE() << t.error().msg;
            return false;
        }
        table_.emplace(t.value());
        return true;
    }

    /// Builds a plan into plan_; false (with a test failure) on error.
    bool build(const BalancerInput& in) {
        plan_.reset();
        auto p = BalancerPlan::build(in, *table_);
        if (!p.ok()) {
            ADD_FAILURE() << p.error().msg;
            return false;
        }
        plan_.emplace(std::move(p.value()));
        return true;
    }

    bool build(const BackendSpec& b) {
        BalancerInput in;
        in.backends.push_back(b);
        return build(in);
    }

    UpstreamTable& table() { return *table_; }
    const BalancerPlan& plan() { return *plan_; }
    uint32_t rec(uint32_t upstream) { return plan_->upstream(upstream).record; }

    shm::testing::ScopedSegmentName name_{"upstreams"};
    std::optional<shm::MappedSegment> seg_;
    std::optional<UpstreamTable> table_;
    std::optional<BalancerPlan> plan_;
};

}  // namespace photon::mod::balancer::testing
