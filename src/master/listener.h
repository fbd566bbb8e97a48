// SPDX-License-Identifier: Apache-2.0
// Listening sockets: opened by the master before fork, shared by every worker.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"

namespace photon::master {

/// What a listener serves.
enum class ListenerKind : int { Main = 0, Metrics = 1, Https = 2 };

/// One bound, listening, non-blocking socket. The fd is inherited by workers (no CLOEXEC until
/// the binary upgrade feature sets it per exec).
struct Listener {
    ListenerKind kind = ListenerKind::Main;
    std::string addr;  // as configured, for messages
    int fd = -1;
};

/// Binds `addr` ("1.2.3.4:80", "[::1]:80", "localhost:80", "*:80", ":80"). IPv6 sockets are
/// IPV6_V6ONLY so that "0.0.0.0:80" and "[::]:80" can both be configured. Errors name the
/// address and the cause ("127.0.0.1:8080: Address already in use").
core::Result<Listener> openListener(const std::string& addr, ListenerKind kind, int backlog = 511);

/// Closes every listener's fd.
void closeListeners(std::vector<Listener>& ls);

/// Splits "host:port" / "[v6]:port"; false on a malformed string or a port outside 1..65535.
bool splitHostPort(const std::string& s, std::string& host, std::string& port);

}  // namespace photon::master
