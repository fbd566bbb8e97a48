// SPDX-License-Identifier: Apache-2.0
// The helper process entry point: runs the active health checks until told to stop.
#pragma once

namespace photon::core {
struct Config;
}
namespace photon::worker {
class Proxy;
}

namespace photon::mod::health {

/// What the helper receives from the master through fork(). The pointed-to objects live in the
/// master's copy of the address space and are read-only here.
struct HelperInit {
    const core::Config* config = nullptr;  // the configuration generation the helper checks
    const worker::Proxy* proxy = nullptr;  // resolved upstreams and the balancing plan (`plan`)
    int slot = -1;                         // the helper's process slot (SlotState::Helper)
    int master_fd = -1;  // our end of a socketpair to the master; EOF = the master is gone
};

/// Runs the helper: one libev loop (epoll) with a HealthChecker over every upstream whose
/// effective health_check.enabled is true (see buildTargets), recording results into the shared
/// upstream table (worker::sharedSegments().upstreams, mapped by the master before fork) as the
/// writer in `slot`. Also refreshes the slot's heartbeat once a second when the slot table is
/// mapped, and reopens the error log on SIGUSR1.
///
/// Returns the process exit code: 0 after SIGTERM, SIGINT or SIGQUIT (a check in progress is
/// simply abandoned; there is nothing to drain) or EOF on master_fd; 1 if the shared table or
/// the plan is missing or the loop cannot be created. Called in the child right after fork();
/// never returns to the master's code paths. Ignores SIGPIPE and SIGHUP.
///
/// What the master does around it (as for a worker): acquire the slot as SlotState::Helper
/// before fork; in the child close its own socketpair end and every listening socket (the
/// helper never accepts, and an inherited listener would keep a port the master closed
/// accepting connections), unblock signals and set the process title; after waitpid reclaim the
/// slot (which also voids a health seqlock the helper left half-written) and respawn it.
///
/// Reloads: a helper checks one configuration generation. On reload the master starts a new
/// helper with the new config and proxy and stops the old one (SIGTERM); upstream records keep
/// their health across the switch. While both run, both record checks (the record seqlock keeps
/// each write whole); at worst a transition comes one check early.
int runHealthHelper(const HelperInit& init);

}  // namespace photon::mod::health
