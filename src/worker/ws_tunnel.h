// SPDX-License-Identifier: Apache-2.0
// An upgraded WebSocket connection: a frame-aware relay between a client and an upstream.
#pragma once

#include <cstdint>

namespace photon::worker {

class ClientConn;
struct RouteRt;

/// Turns the connection into a tunnel. Called once the upstream's 101 was checked, its head
/// consumed from up->rbuf and the client's 101 built in c->out; bytes already in c->in (sent
/// by the client after its request) and in up->rbuf (sent by the upstream after its 101) are
/// relayed first. May close the connection before it returns.
void wsStart(ClientConn* c, const RouteRt& route);
/// Bytes (n > 0) a batched receive begun before the upgrade put in c->in, or its EOF/error
/// (n <= 0).
void wsClientData(ClientConn* c, long n);
/// Frees the tunnel state (from closeClient): timers, counters, the duration sample.
void wsRelease(ClientConn* c);
/// Stop: both sides get a 1001 close frame if their socket takes it now (no waiting).
void wsGoingAwayNow(ClientConn* c);

/// Provided by the connection code (http_conn.cc): the tunnel is over; logs the request and
/// closes both connections (the client's with a lingering drain when `linger`).
void tunnelFinish(ClientConn* c, bool linger);

}  // namespace photon::worker
