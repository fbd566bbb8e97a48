// SPDX-License-Identifier: Apache-2.0
// Timeouts that are re-armed far more often than they fire (per request, per read).
#pragma once

#include <ev.h>
#include <time.h>

namespace photon::worker {

/// A one-shot timeout over an ev_timer, re-armed lazily: set() only records the deadline and
/// touches libev's timer heap only when the new deadline is earlier than the one armed; when the
/// libev timer fires early for a deadline that moved later, expired() re-arms it for the rest.
/// A keep-alive connection thus costs a heap operation every few seconds, not several per
/// request. The callback must call expired() first and act only when it returns true.
struct LazyTimer {
    ev_timer w{};
    double deadline = 0;  // monotonic time at which the timeout is due; 0: off
    double armed = 0;     // monotonic time at which the started libev timer fires; 0: stopped

    /// Monotonic seconds (as libev's timers run; ev_now() is wall-clock time and would move
    /// every deadline when the clock is stepped). The coarse clock is a few nanoseconds to
    /// read and ticks every few milliseconds, plenty for timeouts of seconds.
    static double now() {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    }

    void init(void (*cb)(struct ev_loop*, ev_timer*, int), void* data) {
        ev_init(&w, cb);
        w.data = data;
        deadline = armed = 0;
    }

    /// Due `seconds` from now; 0 (or less) turns the timeout off.
    void set(struct ev_loop* loop, double seconds) {
        if (seconds <= 0) {
            deadline = 0;  // the libev timer may still fire once; expired() ignores it
            return;
        }
        double d = now() + seconds;
        deadline = d;
        if (armed != 0 && armed <= d) {
            return;  // fires first; re-armed then for what is left
        }
        arm(loop, seconds, d);
    }

    /// For the callback: true when the deadline has really passed (the timeout is then off).
    bool expired(struct ev_loop* loop) {
        armed = 0;
        if (deadline == 0) {
            return false;
        }
        double left = deadline - now();
        if (left > kSlack) {
            arm(loop, left, deadline);
            return false;
        }
        deadline = 0;
        return true;
    }

    /// Off, and the libev timer stopped (before the owner is freed or reused).
    void stop(struct ev_loop* loop) {
        deadline = armed = 0;
        ev_timer_stop(loop, &w);
    }

private:
    // Seconds: the coarse clock's tick (4 ms at HZ=250) plus libev's own rounding.
    static constexpr double kSlack = 0.005;

    void arm(struct ev_loop* loop, double after, double at) {
        ev_timer_stop(loop, &w);
        ev_timer_set(&w, after, 0.);
        ev_timer_start(loop, &w);
        armed = at;
    }
};

}  // namespace photon::worker
