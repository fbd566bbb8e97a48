// SPDX-License-Identifier: Apache-2.0
// The master process: owns config, listeners and shared memory; forks and supervises workers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "master/cli.h"
#include "master/listener.h"

namespace photon::core {
struct Config;
}

namespace photon::master {

/// One worker process as the master sees it.
struct WorkerSlot {
    pid_t pid = 0;              // 0 = no process in this slot
    int fd = -1;                // master's end of the socketpair
    int shm_slot = -1;          // process slot in shared memory (distinct while old workers drain)
    uint64_t generation = 0;    // config generation the worker runs
    int64_t started_us = 0;     // monotonic µs at fork
    int fast_crashes = 0;       // consecutive deaths shortly after start (backoff)
    int64_t respawn_at_us = 0;  // when a dead slot may be refilled (0 = now)
    bool retiring = false;      // sent QUIT as part of a reload; do not respawn
};

/// Runs the master until shutdown. Takes ownership of the loaded configuration. Returns the
/// process exit code. The caller has already printed configuration diagnostics.
class Master {
public:
    Master(CliOptions cli, std::unique_ptr<core::Config> config);
    ~Master();
    int run();

private:
    /// Forks a child in a new shared-memory slot with a socketpair to the master; `run(slot,
    /// master_fd)` runs in the child and returns its exit code. Fills `s`; on failure sets
    /// s.respawn_at_us and returns false.
    bool forkChild(WorkerSlot& s, bool helper, const std::function<int(int, int)>& run);
    bool spawnWorker(size_t slot);
    /// Forks the health-check helper (when any backend has active checks enabled).
    bool spawnHelper();
    bool helperWanted() const;
    void closeSiblingChannels();
    void reapChildren();
    void respawnDue(int64_t now_us);
    void signalWorkers(int sig, bool include_retiring = true);
    bool waitAllExited(int64_t deadline_us);
    void reload();
    void reopenLogs();
    /// USR2: starts the binary at the path this one was started from, handing it the listening
    /// sockets (PHOTON_LISTEN_FDS); the pid file becomes <pid_file>.oldbin meanwhile.
    void upgrade();
    int64_t nextWakeUs(int64_t now_us) const;

    CliOptions cli_;
    std::unique_ptr<core::Config> config_;
    std::vector<std::unique_ptr<core::Config>> old_configs_;  // kept while retiring workers run
    std::vector<Listener> listeners_;
    std::vector<WorkerSlot> slots_;
    std::vector<WorkerSlot> retiring_;
    WorkerSlot helper_;  // the health-check helper process
    uint64_t generation_ = 1;
    int64_t start_time_us_ = 0;
    std::string pid_path_;
    bool stopping_ = false;
    pid_t new_master_ = 0;  // a binary upgrade's new master, while it runs
    bool winched_ = false;  // WINCH: workers stopped on purpose; not respawned until HUP
    bool handed_over_ = false;  // QUIT gave the sockets to a `--upgrade` instance
};

/// `photon --upgrade`: the listening sockets a running instance hands over through
/// server.upgrade_sock (empty when none did within 10 s).
std::vector<Listener> receiveListeners(const std::string& path);

/// The command line the master was started with (for a binary upgrade); call from main()
/// before anything rewrites argv.
void saveCommandLine(int argc, char** argv);

/// Resolves the effective pid-file path of a configuration (server.pid_file, else the
/// compiled-in default).
std::string pidPathOf(const core::Config& c);

/// Sends `-s` signals: stop→TERM, quit→QUIT, reload→HUP, reopen→USR1, to the master named by
/// the pid file. Returns the exit code and prints errors on stderr.
int sendSignalCommand(const std::string& signal, const std::string& pid_path);
/// `photon -s reload` with a configuration that passed validation: signals the master and
/// waits (up to 30 s) for it to report the reload's outcome through shared memory. Exit code:
/// 0 reloaded, 1 failed (the running configuration stays) or no answer.
int reloadCommand(const std::string& pid_path);
/// `photon -s upgrade`: USR2 to the master, waits for the new master to run its workers, then
/// QUIT to the old one. Exit code 0 upgraded, 1 when the new binary failed (the old serves on).
int upgradeCommand(const std::string& pid_path);

}  // namespace photon::master
