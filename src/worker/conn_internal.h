// SPDX-License-Identifier: Apache-2.0
// The seam between the connection state machine (http_conn.cc) and the response cache step
// (cache_step.cc): what each calls of the other. Worker-internal; not part of any interface.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string_view>

#include "worker/http_conn.h"

namespace photon::worker::conn {

/// A response body of at most this much that came with the head is sent in one piece with it.
inline constexpr size_t kJoinBody = 2048;

// ----- the connection, for the cache step (defined in http_conn.cc) -----

void attachState(ClientConn* c);
void buildClientHead(ClientConn* c, bool own_gateway);
void clientTimer(ClientConn* c, double seconds);
void closeClient(ClientConn* c);
void failRequest(ClientConn* c, int status, std::string_view why);
void finishRequest(ClientConn* c);
void moveToList(ClientConn* c, ListNode& list);
/// A connection object for `fd` (-1 for a background refresh, which has no client).
ClientConn* newConn(int fd, int kind);
/// The request goes on to its upstream (the cache step is skipped for a background refresh).
void proceedProxy(ClientConn* c);
void releaseUpstream(ClientConn* c, bool reusable);
void sendLocal(ClientConn* c, int status, std::string_view error, std::string_view extra_headers,
               bool close);
void startTrace(ClientConn* c);
void stopWrite(ClientConn* c);

// ----- the cache step, for the connection (defined in cache_step.cc) -----
// Every call site checks the connection's cache flags first (cache_active, cache_storing,
// cache_serving, cache_sie), so the plain proxy path never calls into this file.

/// The lookup of a route with `cache`, after its Access handlers: true when the request was
/// answered here (or waits for another request's fill of its key).
bool cacheLookup(ClientConn* c);
/// Sends more of a stored body (a hit being served).
void pumpCached(ClientConn* c);
/// PURGE /cache/... on the metrics listener.
void cachePurge(ClientConn* c, std::string_view what);
/// The upstream's head arrived: invalidation, the store decision, X-Cache.
void cacheOnHead(ClientConn* c);
/// A status to answer from the store instead (a 304 to a revalidation); true when it did.
bool cacheOnStatus(ClientConn* c, bool retried);
/// stale-if-error: the stored response answers a failed attempt; true when it did.
bool cacheServeStaleOnError(ClientConn* c);
/// Bytes of the decoded response body, copied into the entry being stored.
void cacheTee(ClientConn* c, const char* p, size_t n);
/// The whole body was stored: the entry becomes visible.
void cacheCommit(ClientConn* c);
/// The request ends: an insert not committed is dropped and the fill lock released.
void cacheRelease(ClientConn* c);

}  // namespace photon::worker::conn
