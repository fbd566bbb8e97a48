// SPDX-License-Identifier: Apache-2.0
// The helper process: signals, master liveness, heartbeat and the health checker on one loop.
#include "modules/health/helper.h"

#include <ev.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <span>

#include "core/config.h"
#include "core/log.h"
#include "modules/balancer/balancer.h"
#include "modules/balancer/rng.h"
#include "modules/health/checker.h"
#include "shm/clock.h"
#include "shm/slot_table.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::mod::health {

namespace {

struct HelperLoop {
    const HelperInit* init = nullptr;
    ev_signal sig_term, sig_int, sig_quit, sig_usr1;
    ev_io master_io;
    ev_timer heartbeat;
};

void onSignal(struct ev_loop* loop, ev_signal* w, int) noexcept {
    auto* h = static_cast<HelperLoop*>(w->data);
    if (w->signum == SIGUSR1) {
        const std::string& path = h->init->config->server.error_log;
        if (!path.empty() && path != "stderr" && !core::openLogFile(path.c_str())) {
            LOG_ERROR("cannot reopen error log %s", path.c_str());
        }
        return;
    }
    ev_break(loop, EVBREAK_ALL);
}

void onMasterGone(struct ev_loop* loop, ev_io* w, int) noexcept {
    char buf[64];
    const ssize_t n = ::read(w->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        LOG_WARN("master process went away: health checks stop");
        ev_io_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
    }
}

void onHeartbeat(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* h = static_cast<HelperLoop*>(w->data);
    if (shm::SlotTable* slots = worker::sharedSegments().slots) {
        slots->heartbeat(static_cast<uint32_t>(h->init->slot), shm::monotonicMicros());
    }
}

}  // namespace

int runHealthHelper(const HelperInit& init) {
    if (init.slot >= 0) {
        core::setLogSlot(init.slot);
    }
    balancer::UpstreamTable* table = worker::sharedSegments().upstreams;
    if (init.config == nullptr || init.proxy == nullptr || init.proxy->plan == nullptr ||
        table == nullptr || init.slot < 0) {
        LOG_ERROR("health checks: shared upstream table or balancing plan missing");
        return 1;
    }
    struct ev_loop* loop =
        ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) | static_cast<unsigned>(EVFLAG_NOENV));
    if (loop == nullptr) {
        LOG_ERROR("health checks: cannot create event loop");
        return 1;
    }
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);

    const uint32_t slot = static_cast<uint32_t>(init.slot);
    const uint64_t seed =
        balancer::Rng::seedFor(static_cast<uint64_t>(getpid()), slot, shm::monotonicMicros());
    {
        // The constructor pins the plan's generation for this slot.
        balancer::Balancer writer(*init.proxy->plan, *table, slot, seed);
        std::vector<CheckTarget> targets =
            buildTargets(*init.config, *init.proxy->plan,
                         std::span<const worker::UpstreamRt>(init.proxy->upstreams));
        size_t backends = 0;
        for (size_t i = 0; i < targets.size(); ++i) {
            backends += (i == 0 || targets[i].backend != targets[i - 1].backend) ? 1 : 0;
        }
        HealthChecker checker(loop, writer, std::move(targets), seed ^ 0x5851f42d4c957f2dull);

        HelperLoop h;
        h.init = &init;
        ev_signal_init(&h.sig_term, onSignal, SIGTERM);
        ev_signal_init(&h.sig_int, onSignal, SIGINT);
        ev_signal_init(&h.sig_quit, onSignal, SIGQUIT);
        ev_signal_init(&h.sig_usr1, onSignal, SIGUSR1);
        for (ev_signal* s : {&h.sig_term, &h.sig_int, &h.sig_quit, &h.sig_usr1}) {
            s->data = &h;
            ev_signal_start(loop, s);
        }
        if (init.master_fd >= 0) {
            ev_io_init(&h.master_io, onMasterGone, init.master_fd, EV_READ);
            ev_io_start(loop, &h.master_io);
        }
        ev_timer_init(&h.heartbeat, onHeartbeat, 0., 1.);
        h.heartbeat.data = &h;
        ev_timer_start(loop, &h.heartbeat);

        LOG_INFO("health checks: %zu upstream(s) in %zu backend(s)", checker.targetCount(),
                 backends);
        checker.start();
        ev_run(loop, 0);
        checker.stop();
        ev_timer_stop(loop, &h.heartbeat);
        if (init.master_fd >= 0) {
            ev_io_stop(loop, &h.master_io);
        }
        for (ev_signal* s : {&h.sig_term, &h.sig_int, &h.sig_quit, &h.sig_usr1}) {
            ev_signal_stop(loop, s);
        }
    }
    ev_loop_destroy(loop);
    return 0;
}

}  // namespace photon::mod::health
