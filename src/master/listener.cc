// SPDX-License-Identifier: Apache-2.0
// Opening listening sockets.
#include "master/listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace photon::master {

bool splitHostPort(const std::string& s, std::string& host, std::string& port) {
    size_t colon;
    if (!s.empty() && s[0] == '[') {
        size_t rb = s.find(']');
        if (rb == std::string::npos || rb + 1 >= s.size() || s[rb + 1] != ':') {
            return false;
        }
        host = s.substr(1, rb - 1);
        colon = rb + 1;
    } else {
        colon = s.rfind(':');
        if (colon == std::string::npos) {
            return false;
        }
        host = s.substr(0, colon);
        if (host.find(':') != std::string::npos) {
            return false;  // bare IPv6 needs brackets
        }
    }
    port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5) {
        return false;
    }
    long v = 0;
    for (char c : port) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    return v >= 1 && v <= 65535;
}

core::Result<Listener> openListener(const std::string& addr, ListenerKind kind, int backlog) {
    std::string host, port;
    if (!splitHostPort(addr, host, port)) {
        return core::fail(addr, ": invalid listen address (expected IP:PORT or [IPv6]:PORT)");
    }
    if (host == "*" || host.empty()) {
        host = "0.0.0.0";
    }
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    struct addrinfo* res = nullptr;
    int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (gai != 0 || res == nullptr) {
        return core::fail(addr, ": cannot resolve listen address: ", gai_strerror(gai));
    }
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        ::freeaddrinfo(res);
        return core::fail(addr, ": socket(): ", std::strerror(e));
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6) {
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int e = errno;
        ::freeaddrinfo(res);
        ::close(fd);
        if (e == EADDRINUSE) {
            return core::fail(addr,
                              ": address already in use (is another photon or server running?)");
        }
        return core::fail(addr, ": bind(): ", std::strerror(e));
    }
    ::freeaddrinfo(res);
    if (::listen(fd, backlog) != 0) {
        int e = errno;
        ::close(fd);
        return core::fail(addr, ": listen(): ", std::strerror(e));
    }
    Listener l;
    l.kind = kind;
    l.addr = addr;
    l.fd = fd;
    return l;
}

void closeListeners(std::vector<Listener>& ls) {
    for (auto& l : ls) {
        if (l.fd >= 0) {
            ::close(l.fd);
            l.fd = -1;
        }
    }
}

}  // namespace photon::master
