// SPDX-License-Identifier: Apache-2.0
// Shared state seam (process-local placeholder until the shared-memory tables are wired in).
#include "worker/shared_state.h"

#include <vector>

#include "worker/proxy.h"

namespace photon::worker {

namespace {
uint64_t g_conns = 0;
std::vector<uint32_t> g_inflight;
std::vector<uint64_t> g_rr;
}  // namespace

core::Result<void> attachWorkerSharedState(int) { return {}; }

bool sharedTryAddConnection(uint32_t max) {
    if (max && g_conns >= max) {
        return false;
    }
    ++g_conns;
    return true;
}
void sharedRemoveConnection() { --g_conns; }
uint64_t sharedConnectionCount() { return g_conns; }

int sharedPickAndAcquire(const Proxy& proxy, size_t backend, const PickInput& in) {
    if (g_inflight.size() < proxy.upstreams.size()) {
        g_inflight.resize(proxy.upstreams.size());
    }
    if (g_rr.size() < proxy.backends.size()) {
        g_rr.resize(proxy.backends.size());
    }
    const auto& ups = proxy.backends[backend].upstreams;
    for (size_t k = 0; k < ups.size(); ++k) {
        size_t i = (g_rr[backend]++) % ups.size();
        size_t ui = ups[i];
        const UpstreamRt& u = proxy.upstreams[ui];
        if (!u.resolved || (in.exclude_mask >> (ui % 64) & 1) ||
            (u.max_connections && g_inflight[ui] >= u.max_connections)) {
            continue;
        }
        ++g_inflight[ui];
        return static_cast<int>(ui);
    }
    return -1;
}

void sharedRelease(const Proxy&, size_t upstream) { --g_inflight[upstream]; }
void sharedReport(const Proxy&, size_t, bool) {}

bool sharedHealthJson(const Proxy& proxy, std::string& out) {
    out = "{";
    for (size_t b = 0; b < proxy.backends.size(); ++b) {
        if (b) {
            out += ",";
        }
        out += "\"" + proxy.backends[b].name + "\":{\"upstreams\":[";
        for (size_t k = 0; k < proxy.backends[b].upstreams.size(); ++k) {
            const auto& u = proxy.upstreams[proxy.backends[b].upstreams[k]];
            out += std::string(k ? "," : "") + "{\"address\":\"" + u.address + "\",\"state\":\"" +
                   (u.resolved ? "healthy" : "unresolved") + "\"}";
        }
        out += "]}";
    }
    out += "}";
    return true;
}

}  // namespace photon::worker
