// SPDX-License-Identifier: Apache-2.0
#include "worker/lazy_timer.h"

#include <gtest/gtest.h>

namespace photon::worker {
namespace {

struct Probe {
    LazyTimer t;
    struct ev_loop* loop = nullptr;
    int wakeups = 0;   // libev callbacks
    int expiries = 0;  // callbacks where the deadline had passed
    double expired_at = 0;
};

void onTimer(struct ev_loop* loop, ev_timer* w, int) {
    auto* p = static_cast<Probe*>(w->data);
    ++p->wakeups;
    if (p->t.expired(loop)) {
        ++p->expiries;
        p->expired_at = ev_now(loop);
    }
}

class LazyTimerTest : public ::testing::Test {
protected:
    void SetUp() override {
        loop_ = ev_loop_new(EVFLAG_AUTO);
        p_.loop = loop_;
        p_.t.init(onTimer, &p_);
    }
    void TearDown() override {
        p_.t.stop(loop_);
        ev_loop_destroy(loop_);
    }
    // Runs the loop for `seconds` of loop time (a guard timer ends it).
    void runFor(double seconds) {
        ev_timer guard;
        ev_timer_init(
            &guard, [](struct ev_loop* l, ev_timer*, int) { ev_break(l, EVBREAK_ALL); }, seconds,
            0.);
        ev_timer_start(loop_, &guard);
        ev_run(loop_, 0);
        ev_timer_stop(loop_, &guard);
    }
    struct ev_loop* loop_ = nullptr;
    Probe p_;
};

TEST_F(LazyTimerTest, FiresAtTheDeadline) {
    ev_now_update(loop_);
    double start = ev_now(loop_);
    p_.t.set(loop_, 0.05);
    runFor(0.3);
    EXPECT_EQ(p_.expiries, 1);
    EXPECT_GE(p_.expired_at - start, 0.05 - 0.006);
    EXPECT_EQ(p_.t.deadline, 0);
}

TEST_F(LazyTimerTest, LaterDeadlineDoesNotTouchTheArmedTimerButIsHonoured) {
    ev_now_update(loop_);
    double start = ev_now(loop_);
    p_.t.set(loop_, 0.05);
    double armed = p_.t.armed;
    p_.t.set(loop_, 0.2);  // pushed back: the armed libev timer stays as it is
    EXPECT_EQ(p_.t.armed, armed);
    runFor(0.5);
    EXPECT_EQ(p_.expiries, 1);
    EXPECT_EQ(p_.wakeups, 2);  // the early wake-up re-armed for the rest
    EXPECT_GE(p_.expired_at - start, 0.2 - 0.006);
}

TEST_F(LazyTimerTest, EarlierDeadlineRearms) {
    ev_now_update(loop_);
    double start = ev_now(loop_);
    p_.t.set(loop_, 5.0);
    p_.t.set(loop_, 0.05);
    EXPECT_LT(p_.t.armed, LazyTimer::now() + 1.0);
    runFor(0.3);
    EXPECT_EQ(p_.expiries, 1);
    EXPECT_LT(p_.expired_at - start, 1.0);
}

TEST_F(LazyTimerTest, ZeroTurnsItOff) {
    p_.t.set(loop_, 0.05);
    p_.t.set(loop_, 0);
    runFor(0.2);
    EXPECT_EQ(p_.expiries, 0);
    EXPECT_LE(p_.wakeups, 1);  // at most the one harmless wake-up
}

TEST_F(LazyTimerTest, StopCancelsTheLibevTimer) {
    p_.t.set(loop_, 0.05);
    p_.t.stop(loop_);
    EXPECT_FALSE(ev_is_active(&p_.t.w));
    runFor(0.15);
    EXPECT_EQ(p_.wakeups, 0);
}

}  // namespace
}  // namespace photon::worker
