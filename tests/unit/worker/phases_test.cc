// SPDX-License-Identifier: Apache-2.0
// The phase engine on a socket-less request: chain order, verdicts, suspension and abort.
#include "worker/phases.h"

#include <ev.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "worker/http_conn.h"
#include "worker/module.h"

namespace photon::worker {
namespace {

// Records what the engine asks of the connection.
class FakeHost final : public RequestHost {
public:
    std::vector<std::string> events;
    void proxy(Request&) override { events.push_back("proxy"); }
    void sendHead(Request& req) override {
        events.push_back(req.local() ? "reply " + std::to_string(req.replyStatus()) : "head");
    }
    void resumed(Request&) override { events.push_back("resumed"); }
};

// A handler that logs its tag (conf) and returns the verdict encoded after ':'.
std::vector<std::string>* g_log = nullptr;

Verdict tagged(Request& req, const void* conf) {
    std::string tag = static_cast<const char*>(conf);
    g_log->push_back(tag);
    if (tag.find(":skip") != std::string::npos) {
        return Verdict::SkipPhase;
    }
    if (tag.find(":403") != std::string::npos) {
        return req.fail(403, "refused");
    }
    return Verdict::Next;
}

class PhasesTest : public ::testing::Test {
protected:
    void SetUp() override {
        g_log = &host_.events;
        req_.host_ = &host_;
        req_.meta = &meta_;
        req_.resp = &resp_;
        req_.head = &head_;
    }
    void run(const RouteChainBuilder& b) {
        chain_ = b.build();
        req_.reset();
        req_.chain = &chain_;
        req_.clearSlots();
        runAfterRoute(req_);
    }
    FakeHost host_;
    Request req_;
    RequestMeta meta_;
    core::http::ResponseHead resp_;
    core::http::RequestHead head_;
    Chain chain_;
};

TEST_F(PhasesTest, ChainIsOrderedByPhaseThenModuleNotByInsertion) {
    RouteChainBuilder b;
    b.add(Phase::Proxy, tagged, "proxy-m0", 0);
    b.add(Phase::Access, tagged, "access-m3", 3);
    b.add(Phase::Access, tagged, "access-m1", 1);
    b.add(Phase::Route, tagged, "route-m2", 2);
    run(b);
    EXPECT_EQ(host_.events, (std::vector<std::string>{"route-m2", "access-m1", "access-m3",
                                                      "proxy-m0", "proxy"}));
    EXPECT_TRUE(chain_.has(Phase::Access));
    EXPECT_FALSE(chain_.has(Phase::CacheLookup));
}

TEST_F(PhasesTest, EmptyChainGoesStraightToProxy) {
    RouteChainBuilder b;
    run(b);
    EXPECT_EQ(host_.events, (std::vector<std::string>{"proxy"}));
}

TEST_F(PhasesTest, SkipPhaseJumpsToTheNextPhase) {
    RouteChainBuilder b;
    b.add(Phase::Access, tagged, "a1:skip", 0);
    b.add(Phase::Access, tagged, "a2", 1);
    b.add(Phase::Proxy, tagged, "p1", 2);
    run(b);
    EXPECT_EQ(host_.events, (std::vector<std::string>{"a1:skip", "p1", "proxy"}));
}

TEST_F(PhasesTest, RespondRunsHeaderFilterAndNeverProxies) {
    RouteChainBuilder b;
    b.add(Phase::Access, tagged, "a1:403", 0);
    b.add(Phase::Access, tagged, "a2", 1);
    b.add(Phase::HeaderFilter, tagged, "hf", 0);
    b.add(Phase::Log, tagged, "log", 0);
    run(b);
    EXPECT_EQ(host_.events, (std::vector<std::string>{"a1:403", "hf", "reply 403"}));
    EXPECT_EQ(req_.replyError(), "refused");
    runLog(req_);
    EXPECT_EQ(host_.events.back(), "log");
}

TEST_F(PhasesTest, HeaderFilterRunsForUpstreamHeads) {
    RouteChainBuilder b;
    b.add(Phase::HeaderFilter, tagged, "hf1", 0);
    b.add(Phase::HeaderFilter, tagged, "hf2", 1);
    run(b);
    EXPECT_TRUE(filterUpstreamHead(req_));
    // An upstream head is written by the connection when the filters return.
    EXPECT_EQ(host_.events, (std::vector<std::string>{"proxy", "hf1", "hf2"}));
}

// A module that suspends on a libev timer and resumes when it fires.
struct TimerWork {
    ev_timer timer;
    Request* req = nullptr;
    bool aborted = false;
    Verdict outcome = Verdict::Next;
};
TimerWork* g_work = nullptr;

void onTimer(struct ev_loop*, ev_timer* w, int) {
    auto* work = static_cast<TimerWork*>(w->data);
    g_log->push_back("timer");
    work->req->resume(work->outcome);
}

void cancelWork(Request&, void* arg) {
    auto* work = static_cast<TimerWork*>(arg);
    ev_timer_stop(EV_DEFAULT, &work->timer);
    work->aborted = true;
}

Verdict suspending(Request& req, const void*) {
    g_log->push_back("suspend");
    g_work->req = &req;
    ev_timer_init(&g_work->timer, onTimer, 0.01, 0);
    g_work->timer.data = g_work;
    ev_timer_start(EV_DEFAULT, &g_work->timer);
    req.onAbort(cancelWork, g_work);
    return Verdict::Suspend;
}

TEST_F(PhasesTest, SuspendedRequestResumesAfterTheTimerAtTheNextHandler) {
    TimerWork work;
    g_work = &work;
    RouteChainBuilder b;
    b.add(Phase::Access, suspending, nullptr, 0);
    b.add(Phase::Access, tagged, "after", 1);
    run(b);
    EXPECT_TRUE(req_.suspended());
    EXPECT_EQ(host_.events, (std::vector<std::string>{"suspend"}));
    ev_run(EV_DEFAULT, 0);  // until the timer fired
    EXPECT_FALSE(req_.suspended());
    EXPECT_EQ(host_.events,
              (std::vector<std::string>{"suspend", "timer", "resumed", "after", "proxy"}));
}

TEST_F(PhasesTest, ResumeWithRespondGoesToHeaderFilter) {
    TimerWork work;
    work.outcome = Verdict::Respond;
    g_work = &work;
    RouteChainBuilder b;
    b.add(Phase::Access, suspending, nullptr, 0);
    b.add(Phase::Access, tagged, "after", 1);
    b.add(Phase::HeaderFilter, tagged, "hf", 1);
    run(b);
    req_.fail(429, "slow down");  // what the module decided while suspended
    ev_run(EV_DEFAULT, 0);
    EXPECT_EQ(host_.events,
              (std::vector<std::string>{"suspend", "timer", "resumed", "hf", "reply 429"}));
}

TEST_F(PhasesTest, AbortCancelsSuspendedWorkAndItNeverResumes) {
    TimerWork work;
    g_work = &work;
    RouteChainBuilder b;
    b.add(Phase::Access, suspending, nullptr, 0);
    b.add(Phase::Access, tagged, "after", 1);
    run(b);
    req_.abort();  // the client went away
    EXPECT_TRUE(work.aborted);
    EXPECT_FALSE(req_.suspended());
    ev_run(EV_DEFAULT, EVRUN_NOWAIT);
    req_.resume(Verdict::Next);  // a late resume is ignored
    EXPECT_EQ(host_.events, (std::vector<std::string>{"suspend"}));
}

TEST_F(PhasesTest, ArenaIsBoundedAndResetPerRequest) {
    req_.reset();
    std::string_view a = req_.copy("hello");
    EXPECT_EQ(a, "hello");
    EXPECT_EQ(req_.alloc(kArenaSize), nullptr);  // more than is left
    req_.reset();
    EXPECT_NE(req_.alloc(kArenaSize - 8), nullptr);  // all of it again
}

TEST(HeaderEditTest, RemoveSetAddKeepOrderAndCase) {
    core::http::HeaderList h;
    addHeader(h, "Accept", "a");
    addHeader(h, "X-Debug", "1");
    addHeader(h, "x-debug", "2");
    addHeader(h, "Vary", "b");
    EXPECT_EQ(removeHeader(h, "X-DEBUG"), 2u);
    ASSERT_EQ(h.count, 2);
    EXPECT_EQ(h.items[0].name, "Accept");
    EXPECT_EQ(h.items[1].name, "Vary");
    EXPECT_TRUE(setHeader(h, "accept", "c"));
    ASSERT_EQ(h.count, 2);
    EXPECT_EQ(h.items[1].value, "c");
    std::string_view names[] = {"vary", "accept"};
    removeHeaders(h, names, 2, nameLengthMask(names, 2));
    EXPECT_EQ(h.count, 0);
    for (size_t i = 0; i < core::http::kMaxHeaders; ++i) {
        ASSERT_TRUE(addHeader(h, "F", "v"));
    }
    EXPECT_FALSE(addHeader(h, "F", "v"));  // full: the caller answers 431/502
}

}  // namespace
}  // namespace photon::worker
