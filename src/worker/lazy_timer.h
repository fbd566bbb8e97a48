// SPDX-License-Identifier: Apache-2.0
// Timeouts that are re-armed far more often than they fire (per request, per read).
#pragma once

#include <ev.h>

namespace photon::worker {

/// A one-shot timeout over an ev_timer, re-armed lazily: set() only records the deadline and
/// touches libev's timer heap only when the new deadline is earlier than the one armed; when the
/// libev timer fires early for a deadline that moved later, expired() re-arms it for the rest.
/// A keep-alive connection thus costs a heap operation every few seconds, not several per
/// request. The callback must call expired() first and act only when it returns true.
struct LazyTimer {
    ev_timer w{};
    double deadline = 0;  // loop time at which the timeout is due; 0: off
    double armed = 0;     // loop time at which the started libev timer fires; 0: stopped

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
        double d = ev_now(loop) + seconds;
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
        double left = deadline - ev_now(loop);
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
    static constexpr double kSlack = 0.001;  // seconds; libev's timer granularity order

    void arm(struct ev_loop* loop, double after, double at) {
        ev_timer_stop(loop, &w);
        ev_timer_set(&w, after, 0.);
        ev_timer_start(loop, &w);
        armed = at;
    }
};

}  // namespace photon::worker
