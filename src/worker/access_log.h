// SPDX-License-Identifier: Apache-2.0
// Access log: one line per request (JSON, or the NCSA combined format), buffered per worker,
// flushed by size and by timer.
#pragma once

#include <ev.h>

#include <memory>
#include <string>

namespace photon::core {
struct Config;
}

namespace photon::worker {

class ClientConn;

/// Buffered access log writer. Lines from different workers never interleave: each flush is
/// one write(2) of whole lines to an O_APPEND file. Secrets are never written: only method,
/// path (no query string), status, sizes, times, addresses and ids.
class AccessLog {
public:
    /// nullptr when server.access_log is empty or "off".
    static std::unique_ptr<AccessLog> create(const core::Config& cfg);
    ~AccessLog();

    /// Appends the line for the request that just finished on `c` (at loop time `now`).
    void write(const ClientConn& c, double now);
    /// Writes buffered lines out.
    void flush();
    /// Reopens the file (after rotation; `photon -s reopen` / SIGUSR1).
    void reopen();

private:
    AccessLog() = default;
    static void onTimer(struct ev_loop* loop, ev_timer* w, int) noexcept;
    void writeCombined(const ClientConn& c);
    void scheduleFlush();
    bool combined_ = false;
    std::string path_;
    int fd_ = -1;
    std::string buf_;
    ev_timer timer_{};
    bool timer_on_ = false;
    double last_warn_ = -1e9;  // ev_time() of the last "lines are being lost" error
};

}  // namespace photon::worker
