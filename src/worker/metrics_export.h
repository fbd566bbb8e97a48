// SPDX-License-Identifier: Apache-2.0
// What the metrics listener serves: Prometheus families summed over every worker (text format
// 0.0.4 or OpenMetrics), the dashboard's JSON snapshot and the readiness answer. Worker side,
// off the request path (allocates; reads shared memory without locks).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
struct MetricFamily;
}

namespace photon::worker {

/// Every family, summed over the shards and slots (detailed ones when `detailed`).
std::vector<prometheus::MetricFamily> collectMetrics(bool detailed);
/// The exposition of collectMetrics(): Prometheus text 0.0.4, or OpenMetrics 1.0.0 text.
std::string metricsText(bool detailed, bool openmetrics);
/// True when `accept` (an Accept field value) prefers OpenMetrics text.
bool wantsOpenMetrics(std::string_view accept);
/// The dashboard's snapshot (see src/modules/metrics/dashboard.html for its consumer).
std::string dashboardJson();
/// The dashboard page (self-contained HTML).
std::string_view dashboardHtml();
/// False while the instance is draining (a graceful stop): /ready answers 503.
bool readyNow();

}  // namespace photon::worker
