// SPDX-License-Identifier: Apache-2.0
// Process plumbing for the master: process titles, daemonizing, pid files.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.h"

namespace photon::master {

/// Process titles as shown by ps ("photon: master process /usr/sbin/photon -c ..."). init() must
/// run in main() after the command line was parsed (set() overwrites the argv strings); it moves
/// environ out of the way so the whole argv+environ area can hold the title. set() truncates
/// titles that do not fit.
class ProcTitle {
public:
    static void init(int argc, char** argv);
    static void set(const std::string& title);
    /// The original command line, joined by spaces (for the master's title).
    static const std::string& commandLine();
};

/// Detaches from the terminal (fork, setsid, stdin/stdout/stderr → /dev/null). Returns in the
/// daemon only, with the write end of a readiness pipe: the parent waits on it and exits 0 once
/// the daemon calls daemonReady(fd, true) (pid file written, workers started), or 1 if the
/// daemon reports failure or dies first. Errors are returned before anything is detached.
core::Result<int> daemonize();
/// Reports start-up success or failure to the waiting parent and closes `fd` (no-op for -1).
void daemonReady(int fd, bool ok);

/// Pid file handling. A pid file names a live master when its pid exists and is a photon process.
struct PidFile {
    /// Reads the pid; 0 when the file is absent or unreadable/garbled.
    static pid_t read(const std::string& path);
    /// True when `pid` is a running process (kill(pid, 0) succeeds or fails with EPERM).
    static bool alive(pid_t pid);
    /// Writes the current pid atomically (write to tmp, rename).
    static core::Result<void> write(const std::string& path, pid_t pid);
    /// Removes the file only if it still names `pid` (an upgraded master may own it now).
    static void removeIfOwned(const std::string& path, pid_t pid);
};

}  // namespace photon::master
