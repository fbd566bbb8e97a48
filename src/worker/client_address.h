// SPDX-License-Identifier: Apache-2.0
// What balancing needs from a request: the client address (PHOTON-SPEC decision 7) and the
// consistent_hash key, decided in the Route phase and copied into the connection.
#pragma once

#include <string_view>

namespace photon::worker {

class ClientConn;
class Proxy;
struct BackendRt;

/// Sets c->client_bin to the client address for balancing: the TCP peer, unless the peer is a
/// trusted proxy (server.trusted_proxies); then the right-most X-Forwarded-For element that is
/// not itself trusted. Also sets the request's ${client_ip} text. Worker only; no allocation.
void resolveClientAddress(ClientConn* c, const Proxy& p);

/// Copies the backend's consistent_hash key (path, a header or a cookie) out of the request into
/// c->hash_key (bounded; views into the request head are not kept).
void captureHashKey(ClientConn* c, const BackendRt& be, std::string_view path);

}  // namespace photon::worker
