// SPDX-License-Identifier: Apache-2.0
// Worker process entry point: one libev loop that accepts, parses, routes and proxies.
#pragma once

#include <cstdint>
#include <vector>

namespace photon::core {
struct Config;
}
namespace photon::master {
struct Listener;
}

namespace photon::worker {

class Proxy;

/// Everything a worker receives from the master through fork(). The pointed-to objects are owned
/// by the master's copy of the address space and are read-only in the worker.
struct WorkerInit {
    const core::Config* config = nullptr;
    Proxy* proxy = nullptr;  // compiled routes/backends/upstreams (see worker/proxy.h)
    const std::vector<master::Listener>* listeners = nullptr;
    int slot = 0;               // process slot in shared memory (0-based)
    int master_fd = -1;         // our end of the socketpair to the master; EOF = master is gone
    uint64_t generation = 0;    // configuration generation (bumped by each reload)
    int64_t start_time_us = 0;  // master start time (CLOCK_REALTIME µs), for /health uptime
};

/// Runs the worker loop until a stop signal (TERM/INT: fast; QUIT: graceful, bounded by
/// server.shutdown_timeout) or the master's socket closes. Returns the process exit code.
/// Called in the child right after fork(); never returns to the master's code paths.
int runWorker(const WorkerInit& init);

}  // namespace photon::worker
