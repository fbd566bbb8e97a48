// SPDX-License-Identifier: Apache-2.0
// Per-worker-process state shared by every connection of the loop.
#pragma once

#include <ev.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "modules/requestid/request_id.h"
#include "worker/buffer.h"
#include "worker/io_batch.h"
#include "worker/pipe_pool.h"
#include "worker/worker.h"

namespace photon::worker {

class ClientConn;
class Proxy;
class AccessLog;

/// Intrusive doubly-linked list node for connection sets (idle/active), O(1) unlink.
struct ListNode {
    ListNode* prev = this;
    ListNode* next = this;
    bool linked() const { return next != this; }
    void unlink() {
        prev->next = next;
        next->prev = prev;
        prev = next = this;
    }
    void pushBack(ListNode* n) {  // `this` is the list head
        n->prev = prev;
        n->next = this;
        prev->next = n;
        prev = n;
    }
};

/// Limits copied out of the configuration once, so the hot path reads plain integers.
struct WorkerLimits {
    uint32_t max_request_line = 8192;
    uint32_t max_header_size = 16384;
    uint32_t max_headers = 100;
    bool drop_underscores = true;        // !server.underscores_in_headers
    uint64_t max_body_size = 10u << 20;  // 0 = unlimited
    double header_timeout = 10;          // seconds: first byte → complete head (408)
    double handshake_timeout = 10;       // seconds: TLS handshake of a new connection
    double keepalive_timeout = 60;       // seconds: idle between requests
    double send_timeout = 60;            // seconds: client not reading our response
    uint32_t keepalive_requests = 10000;
    uint32_t max_connections = 10000;  // global across workers
    bool keep_request_id = true;
    bool trace_context = true;   // W3C traceparent: propagate, or start one
    bool trace_sampled = false;  // the flag of the traces we start
    bool log_agents = false;     // the access log wants Referer and User-Agent (combined)
    double upstream_keepalive_timeout = 4;  // seconds: idle pooled upstream connections
    double lingering_time = 30;             // seconds: draining before a close, in all
    double lingering_timeout = 5;           // seconds: ... between two reads
    bool client_abort_cancel = false;       // server.client_abort: cancel
    double shutdown_timeout = 10;           // seconds: graceful stop bound (QUIT)
};

/// The worker process. One instance, created in runWorker().
struct WorkerCtx {
    struct ev_loop* loop = nullptr;
    const WorkerInit* init = nullptr;
    WorkerLimits limits;
    BufferPool io_pool{16384};    // client buffers and upstream request buffers
    BufferPool body_pool{65536};  // upstream response buffers: large bodies move in few syscalls
    PipePool pipes;               // splice(2) pipes for large response bodies
    IoBatch io;                   // socket reads and writes, carried out once per iteration
    mod::requestid::Generator ids;
    Proxy* proxy = nullptr;  // from WorkerInit; this process's copy
    std::unique_ptr<AccessLog> access_log;
    ListNode idle_conns;  // keep-alive connections waiting for a request
    ListNode busy_conns;  // connections with a request in progress
    uint64_t conn_count = 0;
    uint64_t next_conn_id = 1;
    bool graceful = false;                // QUIT received: close idle connections, finish busy ones
    bool expose_metrics_on_main = false;  // metrics.prometheus and metrics.expose_on_main
    bool stopping = false;                // no more accepting
    std::vector<ev_io> accept_watchers;
    std::vector<int> accept_kinds;  // master::ListenerKind per watcher
};

// Hidden at the declaration too (-fvisibility only covers definitions): position-independent
// code then reads it directly instead of through the GOT.
extern WorkerCtx* g_ctx __attribute__((visibility("hidden")));  // set once by runWorker()
inline WorkerCtx& ctx() { return *g_ctx; }

/// Called when a connection finished (closed); lets a graceful shutdown complete.
void onConnectionClosed();

}  // namespace photon::worker
