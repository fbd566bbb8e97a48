// SPDX-License-Identifier: Apache-2.0
// Client connections and the request state machine: parse, route, proxy with streaming, reply.
#pragma once

#include <ev.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstdint>
#include <string_view>

#include "core/http_parser.h"
#include "modules/cache/store.h"
#include "worker/buffer.h"
#include "worker/context.h"
#include "worker/io_batch.h"
#include "worker/lazy_timer.h"
#include "worker/pipe_pool.h"
#include "worker/request.h"

namespace photon::worker {

struct UpstreamRt;
class ClientConn;
struct WsTunnel;

/// A connection to an upstream server. Owned by a ClientConn while a request uses it, else by
/// its upstream's idle pool (where a readable event means the server closed it or sent garbage).
class UpstreamConn {
public:
    ListNode pool_node;  // first member: pool lists hold pointers to it
    int fd = -1;
    ev_io rio{};
    ev_io wio{};
    IoOp rx;  // batched recv into rbuf
    IoOp tx;  // batched send of wbuf, or of request body bytes from the client's `in`
    LazyTimer timer;
    Buffer rbuf;  // bytes received from the upstream
    Buffer wbuf;  // request head (and a small body) still to send
    UpstreamRt* up = nullptr;
    ClientConn* owner = nullptr;
    SSL* ssl = nullptr;  // TLS to the upstream; its handshake is part of `connecting`
    bool connecting = false;
    bool pending = false;     // counted in the Connecting gauge until connected or gone
    bool reused = false;      // taken from the idle pool
    bool read_full = false;   // the last recv filled all the space it was offered
    bool tx_body = false;     // the send in flight carries body bytes (not wbuf)
    uint32_t rx_want = 0;     // bytes the recv in flight was offered
    uint8_t readahead = 0;    // reads done without waiting for epoll in a row
    uint32_t served = 0;      // requests completed on this connection
    uint64_t addr_stamp = 0;  // version of the upstream's published address when connected
    double idle_since = 0;    // ev_now() when it went back to the pool
};

/// What the access log and error replies need about the current request, copied out of the
/// read buffer at dispatch so the buffer can be reused while the request runs.
/// The scalars come first and reset() clears only them: the text fields are read only up to
/// their lengths, so a request does not rewrite ~400 bytes of them.
struct RequestMeta {
    uint8_t method_len = 0;
    uint8_t id_len = 0;
    uint16_t path_len = 0;
    int route = -1;
    int status = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    double start = 0;           // ev_now at the first byte of the request
    double upstream_start = 0;  // when the upstream attempt began
    double upstream_time = 0;   // first attempt start → response complete
    const char* upstream_addr = nullptr;
    bool traced = false;      // trace_id holds the request's W3C trace id
    uint8_t referer_len = 0;  // Referer and User-Agent, kept for the combined access log only
    uint8_t agent_len = 0;
    char referer[200];
    char agent[200];
    uint8_t trace_id[16];
    char method[16];
    char id[130];
    char path[256];

    void reset() {
        method_len = id_len = 0;
        path_len = 0;
        route = -1;
        status = 0;
        bytes_in = bytes_out = 0;
        start = upstream_start = upstream_time = 0;
        upstream_addr = nullptr;
        traced = false;
        referer_len = agent_len = 0;
    }
};

/// The per-request part of a connection (see ClientConn::st).
struct ReqState {
    core::http::RequestHead req;
    core::http::ResponseHead resp;
    RequestMeta meta;
    Request rq;  // the request as the phase pipeline sees it
};

/// One client connection. Created on accept, destroyed on close (objects are recycled).
class ClientConn {
public:
    /// Takes ownership of a connected, non-blocking socket and starts reading from it.
    static void create(int fd, const sockaddr* peer, socklen_t len, int listener_kind);

    ListNode node;  // in ctx().idle_conns or ctx().busy_conns
    int fd = -1;
    int kind = 0;                // master::ListenerKind of the listener that accepted it
    SSL* ssl = nullptr;          // the TLS session (HTTPS listener), or plain text
    bool tls_handshake = false;  // the TLS handshake is not complete yet
    bool tls_peeked = false;     // the first byte was looked at (plain HTTP sent to the TLS port?)
    TlsInfo tls_info;            // what the handshake negotiated (rq.tls points here)
    std::string tls_subject;     // the verified client certificate's subject (tls_info views it)
    uint64_t id = 0;
    ev_io rio{};
    ev_io wio{};
    IoOp rx;  // batched recv into `in`
    IoOp tx;  // batched send of `out` and the response bytes ready in up->rbuf
    LazyTimer timer;
    char peer_ip[48] = {};
    uint8_t peer_ip_len = 0;
    uint8_t peer_bin[16] = {};  // the peer address octets (4 or 16)
    uint8_t peer_bin_len = 0;
    // Per request: the client address used for balancing (the peer, or the right-most untrusted
    // X-Forwarded-For entry when the peer is a trusted proxy) and the consistent_hash key.
    uint8_t client_bin[16] = {};
    uint8_t client_bin_len = 0;
    char hash_key[256];
    uint16_t hash_key_len = 0;
    bool counted = false;          // an in-flight request is counted on `up` in shared memory
    bool retrying = false;         // the attempt on `up` is a retry (counted in the Retrying gauge)
    bool backoff_pending = false;  // the client timer runs the back-off before a retry
    Buffer in;                     // bytes from the client (heads, bodies, pipelined requests)
    Buffer out;                    // bytes to the client (response heads, local replies)

    // Tunnel: an upgraded WebSocket connection, driven by ws_tunnel.cc until it closes.
    enum class State : uint8_t { Idle, ReadingHead, Proxying, WritingLocal, Lingering, Tunnel };
    State state = State::Idle;
    size_t scan_hint = 0;
    uint32_t requests = 0;
    bool keep_alive = true;  // decided per response
    bool mx_open = false;    // a request is counted in flight (metrics) until it ends
    bool trace_in = false;   // the client's traceparent was valid: its tracestate goes on too
    uint8_t trace_flags = 0;
    std::string* big = nullptr;  // a large local body sent after `out` (metrics listener only)
    size_t big_off = 0;
    bool client_eof = false;  // client half-closed while we were busy
    bool reading = false;     // rio started
    bool writing = false;     // wio started

    // The request's state (parsed head, metadata, the pipeline's Request, the response head):
    // attached from a per-worker pool while a request is read or in progress, given back when
    // the connection goes idle, so an idle keep-alive connection holds only this object.
    ReqState* st = nullptr;
    size_t head_pending = 0;       // bytes of the request head still at the front of `in`
    std::string_view local_extra;  // gateway reply: extra header lines (arena or static)
    bool local_close = false;      // gateway reply: close the connection after it
    // Request body still to forward. Bytes are first "framed" (counted against Content-Length
    // or validated by the chunked decoder), then sent; req_ready counts framed, unsent bytes at
    // the front of `in`.
    uint64_t req_body_left = 0;  // Content-Length framing: bytes not yet framed
    bool req_chunked = false;
    bool req_framed_all = true;  // the whole body has been framed
    bool req_body_done = true;   // ... and sent
    size_t req_ready = 0;
    core::http::ChunkedDecoder req_decoder;
    bool send_continue = false;       // the upstream head carries "Expect: 100-continue"
    bool awaiting_continue = false;   // ... and the client still waits for our 100
    bool req_body_abandoned = false;  // the upstream answered early: the rest is not forwarded
    double linger_deadline = 0;       // Lingering: when the drain ends at the latest
    bool retryable = true;            // request fully retained in the upstream's wbuf
    bool req_sent = false;        // a byte of the request reached the current upstream connection
    bool force_fresh = false;     // retrying after a stale pooled connection: connect anew
    bool filter_refused = false;  // onResponseHead: a header filter refused the upstream head
    // WebSocket upgrade (checked in dispatch): the key and the subprotocols offered upstream
    // (arena), kept to check the upstream's 101; whether the client's protocol fields are
    // replaced by that list; whether the 101 negotiated extensions (RSV bits allowed).
    bool ws_rewrite = false;
    bool ws_extensions = false;
    char ws_key[24];
    std::string_view ws_protocols;
    WsTunnel* ws = nullptr;  // State::Tunnel
    uint32_t attempts = 0;
    uint32_t tried[8] = {};  // upstreams already tried for this request
    uint8_t tried_count = 0;
    // Response side.
    UpstreamConn* up = nullptr;
    size_t resp_scan_hint = 0;
    bool resp_head_done = false;
    bool resp_started = false;  // a response byte reached the client (no retry/5xx page now)
    core::http::BodyFraming resp_framing = core::http::BodyFraming::None;
    uint64_t resp_body_left = 0;  // Content-Length framing: bytes not yet framed
    size_t resp_ready = 0;        // framed, unsent bytes at the front of up->rbuf
    bool resp_framed_all = false;
    bool resp_dechunk = false;  // HTTP/1.0 client and a chunked response: strip the framing
    core::http::ChunkedDecoder resp_decoder;
    // Large Content-Length bodies move upstream → pipe → client with splice(2), never through
    // user space; resp_body_left then counts bytes not yet spliced in from the upstream.
    Pipe pipe;
    bool splicing = false;
    bool req_was_head = false;
    // Response cache (a route whose `cache` is on; see README.md, "Response cache").
    bool cache_active = false;  // the request went through the cache step: cacheRelease()
    // A background refresh (stale-while-revalidate): no client; its upstream answer is stored
    // and goes to nobody (see startBackgroundRefresh()).
    bool cache_bg = false;
    uint8_t cache_status = 0;         // the X-Cache value this response gets (0: not eligible)
    bool cache_may_store = false;     // a GET that missed: its response may be stored
    bool cache_storing = false;       // the upstream's response is being stored (cache_ins)
    bool cache_serving = false;       // the response comes from the store (cache_found)
    bool cache_invalidate = false;    // an unsafe method: a success invalidates the URI
    bool cache_req_auth = false;      // the request carried credentials (for the store decision)
    bool cache_req_no_store = false;  // ... or Cache-Control: no-store
    bool cache_waiting = false;       // waiting for another request's fill of the key (lock)
    bool cache_revalidating = false;  // the upstream request is conditional, for cache_found
    bool cache_sie = false;           // cache_found answers if the upstream fails (stale-if-error)
    int8_t cache_client_nm = -1;      // the client's conditionals match cache_found (-1: unknown)
    uint64_t cache_lock = 0;          // the fill lock this request holds (0: none) ...
    uint64_t cache_lock_hash = 0;     // ... for this key hash
    uint64_t cache_wait_until = 0;    // CLOCK_MONOTONIC µs: the wait for the lock ends
    std::string_view cache_key;       // arena: the key (X-Cache-Key)
    std::string_view cache_host;      // arena: the request's host (for Location invalidation)
    uint64_t cache_hash = 0;          // hash of the key the response is stored under
    int64_t cache_request_time = 0;   // wall-clock seconds when the request went upstream
    uint64_t cache_off = 0;           // serving: the next data byte to copy
    uint64_t cache_end = 0;           // ... and the end of the data
    mod::cache::Insert cache_ins;
    mod::cache::EntryMeta cache_meta;
    mod::cache::Found cache_found;
    Buffer cbuf;  // serving: bytes from the store; a miss: a copy of the request head (Vary)
    bool in_process = false;  // inside processInput(): finishing must not recurse
    bool dead = false;        // closed while in_process; recycled when the loop unwinds
};

/// Ends the current request with a local JSON error (or a close when the response already
/// started). For body filters that find the upload invalid.
void failRequestPublic(ClientConn* c, int status, std::string_view why);
/// Answers the current request with a JSON body (status and body as given).
void sendJson(ClientConn* c, int status, std::string_view body);
/// Closes a pooled upstream connection (pool teardown).
void closePooled(UpstreamConn* u);

/// Closes idle keep-alive connections (graceful shutdown).
void closeIdleConnections();
/// Closes everything (fast stop, or the end of a graceful stop).
void closeAllConnections();
/// Reopens the access log (SIGUSR1).
void reopenWorkerLogs();

}  // namespace photon::worker
