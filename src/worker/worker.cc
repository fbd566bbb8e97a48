// SPDX-License-Identifier: Apache-2.0
// Worker loop: accept on the shared listeners, signals, master liveness, graceful shutdown.
#include "worker/worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "core/config.h"
#include "core/log.h"
#include "master/listener.h"
#include "modules/registry.h"
#include "worker/access_log.h"
#include "worker/context.h"
#include "worker/http_conn.h"
#include "worker/local_reply.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::worker {

WorkerCtx* g_ctx = nullptr;

namespace {

ev_signal g_sig_term, g_sig_int, g_sig_quit, g_sig_usr1;
ev_io g_master_io;
ev_timer g_shutdown_timer;
ev_timer g_accept_pause;  // accepting paused: this worker holds more than its share
ev_prepare g_io_flush;    // the iteration's socket reads and writes, before waiting again

void stopAccepting() {
    WorkerCtx& c = *g_ctx;
    if (c.stopping) {
        return;
    }
    c.stopping = true;
    ev_timer_stop(c.loop, &g_accept_pause);
    for (auto& w : c.accept_watchers) {
        ev_io_stop(c.loop, &w);
        // Our copy of the listening socket: once every old process closed it, a port the new
        // configuration no longer uses refuses connections instead of queueing them.
        ::close(w.fd);
    }
}

void maybeFinishGraceful() {
    WorkerCtx& c = *g_ctx;
    if (c.graceful && c.conn_count == 0) {
        ev_break(c.loop, EVBREAK_ALL);
    }
}

void beginGraceful() {
    WorkerCtx& c = *g_ctx;
    if (c.graceful) {
        return;
    }
    c.graceful = true;
    stopAccepting();
    closeIdleConnections();
    ev_timer_start(c.loop, &g_shutdown_timer);
    maybeFinishGraceful();
}

void onSignal(struct ev_loop* loop, ev_signal* w, int) noexcept {
    if (w->signum == SIGQUIT) {
        LOG_INFO("graceful shutdown");
        beginGraceful();
    } else if (w->signum == SIGUSR1) {
        reopenWorkerLogs();
    } else {
        ev_break(loop, EVBREAK_ALL);
    }
}

void onIoFlush(struct ev_loop*, ev_prepare*, int) noexcept { ctx().io.flush(); }

void onMasterGone(struct ev_loop*, ev_io* w, int) noexcept {
    char buf[64];
    ssize_t n = ::read(w->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        LOG_WARN("master process went away: finishing requests and exiting");
        ev_io_stop(g_ctx->loop, w);
        beginGraceful();
    }
}

void onShutdownTimeout(struct ev_loop* loop, ev_timer*, int) noexcept {
    LOG_WARN("shutdown_timeout reached with %llu connection(s) open: closing them",
             static_cast<unsigned long long>(g_ctx->conn_count));
    ev_break(loop, EVBREAK_ALL);
}

void resumeAccepting(struct ev_loop* loop, ev_timer*, int) noexcept {
    WorkerCtx& c = *g_ctx;
    if (c.stopping) {
        return;
    }
    for (auto& w : c.accept_watchers) {
        ev_io_start(loop, &w);
    }
}

/// Stops accepting for `seconds` (resumeAccepting() starts again).
void pauseAccepting(WorkerCtx& c, struct ev_loop* loop, double seconds) {
    for (auto& aw : c.accept_watchers) {
        ev_io_stop(loop, &aw);
    }
    ev_timer_set(&g_accept_pause, seconds, 0.);
    ev_timer_start(loop, &g_accept_pause);
}

/// Balances connections over the workers that share a listening socket (the kernel wakes them
/// in no fair order): a worker holding clearly more than its share of all client connections
/// leaves the next ones to the others for a moment, like nginx's accept_disabled. "Clearly"
/// grows with the count (an eighth of the share): with a fixed margin of 2, two workers taking
/// turns during a burst of connections were both paused most of the time, and the listen queue
/// overflowed (clients waited a second for their SYN to be sent again).
bool overShare(const WorkerCtx& c) {
    uint32_t workers = c.init->config->server.worker_processes;
    if (workers < 2) {
        return false;
    }
    uint64_t share = sharedConnectionCount() / workers;
    return c.conn_count >= 4 && c.conn_count > share + 2 + share / 8;
}

int g_accept_pauses = 0;  // consecutive pauses; bounded so a lone worker never starves

void onAccept(struct ev_loop* loop, ev_io* w, int) noexcept {
    WorkerCtx& c = *g_ctx;
    // After a few pauses nobody else took the connection (the other workers may be down or
    // busy): take it anyway.
    if (g_accept_pauses < 3 && overShare(c)) {
        ++g_accept_pauses;
        pauseAccepting(c, loop, 0.002);
        return;
    }
    g_accept_pauses = 0;
    int kind = c.accept_kinds[static_cast<size_t>(w - c.accept_watchers.data())];
    // With several workers on one shared socket, take one connection per wake-up (as nginx's
    // default multi_accept off) so that connections spread over the workers instead of the
    // first one to wake taking a whole burst; alone, drain a bounded batch.
    const int batch = c.init->config->server.worker_processes > 1 ? 1 : 64;
    for (int i = 0; i < batch; ++i) {
        sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd =
            ::accept4(w->fd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                // EMFILE, ENFILE, ENOBUFS...: the socket stays readable, so back off for 100 ms
                // instead of spinning (and logging) on it.
                LOG_ERROR("accept(): %s; pausing accepts for 100 ms", std::strerror(errno));
                c.pipes.trim();  // cached splice pipes hold descriptors too
                pauseAccepting(c, loop, 0.1);
            }
            return;
        }
        if (!sharedTryAddConnection(c.limits.max_connections)) {
            // Over server.max_connections across all workers: refuse politely and close.
            char id[mod::requestid::kGeneratedMax + 1];
            size_t idn = c.ids.next(id);
            char busy[768];
            Buffer reply;  // over a stack array: never given to a pool
            reply.data = busy;
            reply.cap = sizeof busy;
            buildLocalReply(reply, 503, "too many connections", std::string_view(id, idn),
                            "Retry-After: 1\r\n", false, false);
            ssize_t wr = ::send(fd, reply.readPtr(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)wr;
            ::close(fd);
            continue;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ClientConn::create(fd, reinterpret_cast<const sockaddr*>(&ss), sl, kind);
    }
}

}  // namespace

void loadWorkerLimits(const core::Config& cfg, WorkerLimits& l) {
    auto secs = [](core::Duration d) { return std::chrono::duration<double>(d).count(); };
    const auto& s = cfg.server;
    l.max_request_line = s.max_request_line;
    l.max_header_size = s.max_header_size;
    l.max_headers = s.max_headers;
    l.max_body_size = s.max_body_size;
    l.header_timeout = secs(s.header_read_timeout);
    l.drop_underscores = !s.underscores_in_headers;
    l.handshake_timeout = secs(s.tls.handshake_timeout);
    l.keepalive_timeout = secs(s.connection_timeout);
    l.keepalive_requests = s.keepalive_requests;
    l.max_connections = static_cast<uint32_t>(std::min<uint64_t>(s.max_connections, UINT32_MAX));
    l.keep_request_id = s.request_id == core::RequestIdMode::Keep;
    l.trace_context = s.trace_context;
    l.trace_sampled = s.trace_sampled;
    l.log_agents = !s.access_log.empty() && s.access_log != "off" &&
                   s.access_log_format == core::AccessLogFormat::Combined;
    l.upstream_keepalive_timeout = secs(s.upstream_keepalive_timeout);
    l.lingering_time = secs(s.lingering_time);
    l.lingering_timeout = secs(s.lingering_timeout);
    l.client_abort_cancel = s.client_abort_cancel;
    l.shutdown_timeout = secs(s.shutdown_timeout);
    ctx().expose_metrics_on_main = cfg.metrics.prometheus && cfg.metrics.expose_on_main;
    // Buffers must hold a whole request head plus what we add to it when forwarding.
    uint32_t need = s.max_header_size + 4096;
    if (need > ctx().io_pool.bufSize()) {
        ctx().io_pool.~BufferPool();
        new (&ctx().io_pool) BufferPool(need);
    }
}

void onConnectionClosed() {
    sharedRemoveConnection();
    maybeFinishGraceful();
}

int runWorker(const WorkerInit& init) {
    WorkerCtx c;
    g_ctx = &c;
    c.init = &init;
    c.loop =
        ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) | static_cast<unsigned>(EVFLAG_NOENV));
    if (c.loop == nullptr) {
        LOG_ERROR("cannot create event loop");
        return 1;
    }
    loadWorkerLimits(*init.config, c.limits);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c.ids.init(static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec),
               static_cast<unsigned>(init.slot));
    c.proxy = init.proxy;
    if (auto r = attachWorkerSharedState(init.slot); !r.ok()) {
        LOG_ERROR("shared memory: %s", r.error().msg.c_str());
        return 1;
    }
    c.access_log = AccessLog::create(*init.config);
    for (Module* m : mod::modules()) {
        if (auto r = m->initProcess(); !r.ok()) {
            LOG_ERROR("%s: %s", std::string(m->name()).c_str(), r.error().msg.c_str());
            return 1;
        }
    }

    ev_signal_init(&g_sig_term, onSignal, SIGTERM);
    ev_signal_init(&g_sig_int, onSignal, SIGINT);
    ev_signal_init(&g_sig_quit, onSignal, SIGQUIT);
    ev_signal_init(&g_sig_usr1, onSignal, SIGUSR1);
    for (ev_signal* s : {&g_sig_term, &g_sig_int, &g_sig_quit, &g_sig_usr1}) {
        ev_signal_start(c.loop, s);
    }
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ev_io_init(&g_master_io, onMasterGone, init.master_fd, EV_READ);
    ev_io_start(c.loop, &g_master_io);
    ev_timer_init(&g_shutdown_timer, onShutdownTimeout, c.limits.shutdown_timeout, 0.);
    ev_timer_init(&g_accept_pause, resumeAccepting, 0.002, 0.);
    c.io.init(init.config->server.io_uring);
    ev_prepare_init(&g_io_flush, onIoFlush);
    ev_prepare_start(c.loop, &g_io_flush);
    ev_unref(c.loop);  // the flush alone does not keep the loop running

    c.accept_watchers.resize(init.listeners->size());
    c.accept_kinds.resize(init.listeners->size());
    for (size_t i = 0; i < init.listeners->size(); ++i) {
        const auto& l = (*init.listeners)[i];
        ev_io_init(&c.accept_watchers[i], onAccept, l.fd, EV_READ);
        c.accept_kinds[i] = static_cast<int>(l.kind);
        ev_io_start(c.loop, &c.accept_watchers[i]);
    }

    ev_run(c.loop, 0);

    closeAllConnections();
    if (c.access_log) {
        c.access_log->flush();
    }
    ev_loop_destroy(c.loop);
    g_ctx = nullptr;
    return 0;
}

}  // namespace photon::worker
