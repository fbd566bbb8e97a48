// SPDX-License-Identifier: Apache-2.0
// IP addresses, listen addresses, upstream host:port strings and CIDR ranges as configured.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace photon::core {

enum class AddressFamily : uint8_t { Ipv4, Ipv6 };

/// A numeric IPv4 or IPv6 address in network byte order. IPv4 uses bytes[0..3]; the rest stay
/// zero so that defaulted equality works. Trivially copyable; no allocation.
struct IpAddress {
    AddressFamily family = AddressFamily::Ipv4;
    std::array<uint8_t, 16> bytes{};

    /// Canonical text: dotted quad, or RFC 5952 IPv6 without brackets.
    std::string toString() const;
    /// True for an IPv6 address of the form ::ffff:a.b.c.d.
    bool isV4Mapped() const;
    /// Reads the address of an AF_INET or AF_INET6 sockaddr (the port is ignored). Returns false
    /// for any other family. Allocation-free: usable on a worker's accept path.
    static bool fromSockaddr(const sockaddr* sa, IpAddress& out);

    bool operator==(const IpAddress&) const = default;
};

/// Parses a literal IPv4 (strict dotted quad, no leading zeros beyond inet_pton's rules) or IPv6
/// address without brackets. Host names are rejected.
Result<IpAddress> parseIpAddress(std::string_view text);

/// A socket address to bind or connect to.
struct SocketAddress {
    IpAddress ip;
    uint16_t port = 0;  // host byte order, 1-65535 once parsed

    /// "a.b.c.d:port" or "[v6]:port".
    std::string toString() const;
    /// Fills `out` (zeroed first) and returns the length to pass to bind(2)/connect(2).
    socklen_t toSockaddr(sockaddr_storage& out) const;

    bool operator==(const SocketAddress&) const = default;
};

/// Parses a listen address (`server.http_addr`, `https_addr`, `metrics.metrics_addr`):
///   `a.b.c.d:port`, `[v6]:port`                       the original's SocketAddr syntax;
///   `localhost:port` → 127.0.0.1, `*:port` and `:port` → 0.0.0.0   (superset).
/// The port is mandatory and must be 1-65535 (decimal digits only). Anything else is an error
/// whose message says what was expected.
Result<SocketAddress> parseListenAddress(std::string_view text);

enum class HostKind : uint8_t { Ipv4, Ipv6, Name };

/// An upstream's `host:port`. `host` never carries IPv6 brackets; `ip` is meaningful only when
/// kind != Name. A Name is only checked syntactically here; resolving it is the caller's job.
struct HostPort {
    std::string host;
    uint16_t port = 0;
    HostKind kind = HostKind::Name;
    IpAddress ip;

    /// "host:port", with brackets around an IPv6 literal.
    std::string toString() const;

    bool operator==(const HostPort&) const = default;
};

/// Parses an upstream `address`: `a.b.c.d:port`, `[v6]:port` or `dns.name:port`. A DNS name must
/// consist of dot-separated labels of letters, digits, '-' and '_' (1-63 bytes each, no leading
/// or trailing '-', at most 253 bytes in total); an unbracketed IPv6 literal, a missing or
/// out-of-range port, a scheme prefix ("http://") or a path are errors.
Result<HostPort> parseHostPort(std::string_view text);

/// An address range from `server.trusted_proxies`.
struct Cidr {
    IpAddress base;  // masked to prefix_len bits
    uint8_t prefix_len = 0;

    /// True if `ip` lies in the range. An IPv4 range also matches the IPv4-mapped IPv6 form
    /// (::ffff:a.b.c.d) of its addresses, as a dual-stack listener reports them.
    /// Allocation-free and branch-light: called per request on the worker's trust check.
    bool contains(const IpAddress& ip) const;
    /// "base/prefix_len".
    std::string toString() const;

    bool operator==(const Cidr&) const = default;
};

/// Parses `a.b.c.d/n` (n ≤ 32), `v6/n` (n ≤ 128) or a bare address (a /32 or /128 range). Host
/// bits set below the prefix are an error ("10.0.0.1/8": did you mean 10.0.0.0/8?), since they
/// usually betray a typo.
Result<Cidr> parseCidr(std::string_view text);

}  // namespace photon::core
