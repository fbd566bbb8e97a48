// SPDX-License-Identifier: Apache-2.0
// Master-side glue between the typed configuration and the running system: listeners, the
// compiled proxy model, shared-memory segments and process slots.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "master/listener.h"

namespace photon::core {
struct Config;
}
namespace photon::worker {
class Proxy;
}
namespace photon::mod::tls {
class ServerTls;
}

namespace photon::master {

const std::string& runtimePidFile(const core::Config& c);
/// Error log path; empty = stderr.
std::string runtimeErrorLog(const core::Config& c);
int runtimeWorkerCount(const core::Config& c);
int64_t runtimeShutdownTimeoutUs(const core::Config& c);
/// Applies server.log_level unless the command line set one.
void applyRuntimeLogSettings(const core::Config& c, bool cli_overrides);

/// Opens the main listener (http_addr) and, when configured, the metrics listener.
core::Result<std::vector<Listener>> openRuntimeListeners(const core::Config& c);
/// For a reload: the listeners `c` needs, reusing the fds of `current` whose address is
/// unchanged (so no connection is refused during the switch) and opening new ones.
core::Result<std::vector<Listener>> reopenRuntimeListeners(const core::Config& c,
                                                           const std::vector<Listener>& current);
/// Closes the listeners of `old` whose fd is not used by `now`.
void closeListenersNotIn(std::vector<Listener>& old, const std::vector<Listener>& now);

/// Builds the proxy model (routes, backends, resolved upstreams) and the shared-memory segments
/// for `c`; the instance name derives from the pid-file path. Master only, before fork.
core::Result<void> setupSharedState(const core::Config& c, const std::string& pid_path);
/// Builds a new proxy model for a reload; shared state of upstreams that still exist is kept.
/// On failure nothing changes.
core::Result<void> reloadSharedState(const core::Config& c);
/// Frees the proxy models that reloads replaced. Master only: call once no process started on
/// an older configuration is left (the same moment the master drops the old configurations).
void releaseOldProxies();
/// Removes the segments (clean exit).
void teardownSharedState();

/// Builds the TLS listener's contexts of `c` (nullptr without https_addr), reading every
/// certificate and key; the session-ticket keys of the running contexts are kept. Warnings
/// (expired certificates, readable keys) go to `warnings`.
core::Result<std::unique_ptr<mod::tls::ServerTls>> buildServerTls(
    const core::Config& c, std::vector<std::string>& warnings);
/// Makes `t` the contexts of the workers forked from now on.
void installServerTls(std::unique_ptr<mod::tls::ServerTls> t);
/// Re-resolves upstream host names (blocking DNS: master only, where no client waits) and
/// publishes changed addresses to every process through shared memory.
void runtimeResolveTick();
/// Module work the master does about once a second (see worker::Module::masterTick).
void runtimeModuleTick();
/// The proxy model new workers inherit.
worker::Proxy* runtimeProxy();

/// Process slots in shared memory: a free slot for a new worker (-1 if none), its pid, and the
/// release after the worker was reaped (reclaims what it held: in-flight counts, connections).
int acquireShmSlot(bool helper = false);
void registerWorkerPid(int slot, pid_t pid);
void releaseShmSlot(int slot);

}  // namespace photon::master
