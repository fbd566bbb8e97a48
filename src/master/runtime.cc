// SPDX-License-Identifier: Apache-2.0
// Master-side glue: listeners, proxy model, shared state and process slots.
#include "master/runtime.h"

#include <unistd.h>

#include <cstdint>

#include "core/config.h"
#include "core/log.h"
#include "worker/proxy.h"

namespace photon::master {

namespace {

std::unique_ptr<worker::Proxy> g_proxy;
std::vector<std::unique_ptr<worker::Proxy>> g_old_proxies;  // freed at teardown
uint64_t g_slots_used = 0;  // bit i: slot i holds a live process
constexpr int kMaxSlots = 64;

}  // namespace

const std::string& runtimePidFile(const core::Config& c) { return c.server.pid_file; }

std::string runtimeErrorLog(const core::Config& c) {
    return c.server.error_log == "stderr" ? std::string() : c.server.error_log;
}

int runtimeWorkerCount(const core::Config& c) {
    return static_cast<int>(std::min<uint32_t>(std::max<uint32_t>(c.server.worker_processes, 1), 32));
}

int64_t runtimeShutdownTimeoutUs(const core::Config& c) {
    return std::chrono::duration_cast<std::chrono::microseconds>(c.server.shutdown_timeout).count();
}

void applyRuntimeLogSettings(const core::Config& c, bool cli_overrides) {
    if (!cli_overrides && c.server.log_level) {
        core::setLogLevel(*c.server.log_level);
    }
}

core::Result<std::vector<Listener>> openRuntimeListeners(const core::Config& c) {
    return reopenRuntimeListeners(c, {});
}

core::Result<std::vector<Listener>> reopenRuntimeListeners(const core::Config& c,
                                                           const std::vector<Listener>& current) {
    struct Want {
        std::string addr;
        ListenerKind kind;
    };
    std::vector<Want> want;
    want.push_back({c.server.http_addr.toString(), ListenerKind::Main});
    if (c.metrics.metrics_addr) {
        want.push_back({c.metrics.metrics_addr->toString(), ListenerKind::Metrics});
    }
    if (c.server.https_addr) {
        LOG_WARN("server.https_addr: the TLS listener is not available in this build; ignored");
    }
    std::vector<Listener> out;
    for (const auto& w : want) {
        bool reused = false;
        for (const auto& l : current) {
            if (l.addr == w.addr && l.fd >= 0) {
                Listener k = l;
                k.kind = w.kind;
                out.push_back(k);
                reused = true;
                break;
            }
        }
        if (reused) {
            continue;
        }
        auto r = openListener(w.addr, w.kind);
        if (!r.ok()) {
            // Close only what this call opened.
            for (auto& l : out) {
                bool shared = false;
                for (const auto& k : current) {
                    shared = shared || k.fd == l.fd;
                }
                if (!shared) {
                    ::close(l.fd);
                }
            }
            return r.error();
        }
        out.push_back(r.value());
    }
    return out;
}

void closeListenersNotIn(std::vector<Listener>& old, const std::vector<Listener>& now) {
    for (auto& l : old) {
        bool kept = false;
        for (const auto& k : now) {
            kept = kept || k.fd == l.fd;
        }
        if (!kept && l.fd >= 0) {
            ::close(l.fd);
        }
        l.fd = -1;
    }
}

core::Result<void> setupSharedState(const core::Config& c, const std::string&) {
    auto p = worker::Proxy::build(c);
    if (!p.ok()) {
        return p.error();
    }
    g_proxy = std::move(p.value());
    return {};
}

core::Result<void> reloadSharedState(const core::Config& c) {
    auto p = worker::Proxy::build(c);
    if (!p.ok()) {
        return p.error();
    }
    g_old_proxies.push_back(std::move(g_proxy));
    g_proxy = std::move(p.value());
    return {};
}

void teardownSharedState() {
    g_old_proxies.clear();
    g_proxy.reset();
}

worker::Proxy* runtimeProxy() { return g_proxy.get(); }

int acquireShmSlot() {
    for (int i = 0; i < kMaxSlots; ++i) {
        if (!(g_slots_used >> i & 1)) {
            g_slots_used |= uint64_t{1} << i;
            return i;
        }
    }
    return -1;
}

void registerWorkerPid(int, pid_t) {}

void releaseShmSlot(int slot) {
    if (slot >= 0 && slot < kMaxSlots) {
        g_slots_used &= ~(uint64_t{1} << slot);
    }
}

}  // namespace photon::master
