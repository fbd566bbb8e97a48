// SPDX-License-Identifier: Apache-2.0
// Address parsing and formatting (inet_pton/inet_ntop; no name resolution here).
#include "core/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace photon::core {

namespace {

bool parsePort(std::string_view s, uint16_t& out) {
    if (s.empty() || s.size() > 5) {
        return false;
    }
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) {
        return false;
    }
    out = static_cast<uint16_t>(v);
    return true;
}

std::string quoted(std::string_view s) {
    std::string out = "'";
    out.append(s);
    out += '\'';
    return out;
}

bool isLabelChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool validDnsName(std::string_view name) {
    if (name.empty() || name.size() > 253) {
        return false;
    }
    if (name.back() == '.') {  // a fully qualified "name." is fine
        name.remove_suffix(1);
    }
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string_view::npos) {
            dot = name.size();
        }
        std::string_view label = name.substr(start, dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
            return false;
        }
        for (char c : label) {
            if (!isLabelChar(c)) {
                return false;
            }
        }
        start = dot + 1;
    }
    return true;
}

// Splits "host:port" / "[v6]:port"; reports what is wrong in terms of the whole text.
Result<std::pair<std::string_view, std::string_view>> splitHostPort(std::string_view text,
                                                                    const char* what,
                                                                    bool& bracketed) {
    bracketed = false;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return fail("invalid ", what, " ", quoted(text),
                        ": missing ']' after the IPv6 address");
        }
        bracketed = true;
        std::string_view host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':') {
            return fail("invalid ", what, " ", quoted(text),
                        ": a port is required, e.g. '[::1]:8080'");
        }
        return std::pair{host, rest.substr(1)};
    }
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return fail("invalid ", what, " ", quoted(text), ": a port is required, e.g. '",
                    std::string(text), ":8080'");
    }
    std::string_view host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
        return fail("invalid ", what, " ", quoted(text),
                    ": an IPv6 address must be written in brackets, e.g. '[::1]:8080'");
    }
    return std::pair{host, text.substr(colon + 1)};
}

}  // namespace

std::string IpAddress::toString() const {
    char buf[INET6_ADDRSTRLEN];
    if (family == AddressFamily::Ipv4) {
        inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf));
    } else {
        inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
    }
    return buf;
}

bool IpAddress::isV4Mapped() const {
    if (family != AddressFamily::Ipv6) {
        return false;
    }
    for (int i = 0; i < 10; ++i) {
        if (bytes[i] != 0) {
            return false;
        }
    }
    return bytes[10] == 0xff && bytes[11] == 0xff;
}

bool IpAddress::fromSockaddr(const sockaddr* sa, IpAddress& out) {
    if (sa == nullptr) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        out = IpAddress{};
        out.family = AddressFamily::Ipv4;
        std::memcpy(out.bytes.data(), &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        out.family = AddressFamily::Ipv6;
        std::memcpy(out.bytes.data(), &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

Result<IpAddress> parseIpAddress(std::string_view text) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof(buf)) {
        return fail("invalid IP address ", quoted(text));
    }
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpAddress ip;
    if (inet_pton(AF_INET, buf, ip.bytes.data()) == 1) {
        ip.family = AddressFamily::Ipv4;
        return ip;
    }
    if (inet_pton(AF_INET6, buf, ip.bytes.data()) == 1) {
        ip.family = AddressFamily::Ipv6;
        return ip;
    }
    return fail("invalid IP address ", quoted(text));
}

std::string SocketAddress::toString() const {
    if (ip.family == AddressFamily::Ipv6) {
        return "[" + ip.toString() + "]:" + std::to_string(port);
    }
    return ip.toString() + ":" + std::to_string(port);
}

socklen_t SocketAddress::toSockaddr(sockaddr_storage& out) const {
    std::memset(&out, 0, sizeof(out));
    if (ip.family == AddressFamily::Ipv4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        std::memcpy(&in->sin_addr, ip.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

Result<SocketAddress> parseListenAddress(std::string_view text) {
    bool bracketed = false;
    auto split = splitHostPort(text, "address", bracketed);
    if (!split.ok()) {
        return split.error();
    }
    auto [host, port_text] = split.value();
    SocketAddress addr;
    if (!parsePort(port_text, addr.port)) {
        return fail("invalid address ", quoted(text), ": port ", quoted(port_text),
                    " is not a number between 1 and 65535");
    }
    if (!bracketed && (host.empty() || host == "*")) {
        addr.ip = IpAddress{};  // 0.0.0.0
        return addr;
    }
    if (!bracketed && host == "localhost") {
        addr.ip.family = AddressFamily::Ipv4;
        addr.ip.bytes = {127, 0, 0, 1};
        return addr;
    }
    auto ip = parseIpAddress(host);
    if (!ip.ok()) {
        return fail("invalid address ", quoted(text),
                    ": expected an IP literal and port such as '0.0.0.0:8080' or '[::]:8080' "
                    "(host names other than 'localhost' are not allowed here)");
    }
    if (bracketed != (ip->family == AddressFamily::Ipv6)) {
        return fail("invalid address ", quoted(text),
                    bracketed ? ": only IPv6 addresses go in brackets"
                              : ": an IPv6 address must be written in brackets");
    }
    addr.ip = ip.value();
    return addr;
}

std::string HostPort::toString() const {
    if (kind == HostKind::Ipv6) {
        return "[" + host + "]:" + std::to_string(port);
    }
    return host + ":" + std::to_string(port);
}

Result<HostPort> parseHostPort(std::string_view text) {
    if (text.find("://") != std::string_view::npos) {
        return fail("invalid upstream address ", quoted(text),
                    ": expected host:port without a scheme (use 'tls: true' for HTTPS upstreams)");
    }
    if (text.find('/') != std::string_view::npos) {
        return fail("invalid upstream address ", quoted(text),
                    ": expected host:port without a path");
    }
    bool bracketed = false;
    auto split = splitHostPort(text, "upstream address", bracketed);
    if (!split.ok()) {
        return split.error();
    }
    auto [host, port_text] = split.value();
    HostPort hp;
    if (!parsePort(port_text, hp.port)) {
        return fail("invalid upstream address ", quoted(text), ": port ", quoted(port_text),
                    " is not a number between 1 and 65535");
    }
    if (host.empty()) {
        return fail("invalid upstream address ", quoted(text), ": the host is missing");
    }
    auto ip = parseIpAddress(host);
    if (ip.ok()) {
        if (bracketed != (ip->family == AddressFamily::Ipv6)) {
            return fail("invalid upstream address ", quoted(text),
                        bracketed ? ": only IPv6 addresses go in brackets"
                                  : ": an IPv6 address must be written in brackets");
        }
        hp.kind = ip->family == AddressFamily::Ipv4 ? HostKind::Ipv4 : HostKind::Ipv6;
        hp.ip = ip.value();
        hp.host = hp.ip.toString();
        return hp;
    }
    if (bracketed) {
        return fail("invalid upstream address ", quoted(text),
                    ": the bracketed part is not an IPv6 address");
    }
    if (!validDnsName(host)) {
        return fail("invalid upstream address ", quoted(text), ": ", quoted(host),
                    " is neither an IP address nor a valid DNS name");
    }
    hp.kind = HostKind::Name;
    hp.host = std::string(host);
    return hp;
}

bool Cidr::contains(const IpAddress& ip) const {
    const uint8_t* a = ip.bytes.data();
    if (base.family == AddressFamily::Ipv4) {
        if (ip.family == AddressFamily::Ipv6) {
            if (!ip.isV4Mapped()) {
                return false;
            }
            a += 12;
        }
    } else if (ip.family != AddressFamily::Ipv6) {
        return false;
    }
    unsigned full = prefix_len / 8;
    if (std::memcmp(a, base.bytes.data(), full) != 0) {
        return false;
    }
    unsigned rem = prefix_len % 8;
    if (rem == 0) {
        return true;
    }
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
    return (a[full] & mask) == base.bytes[full];
}

std::string Cidr::toString() const { return base.toString() + "/" + std::to_string(prefix_len); }

Result<Cidr> parseCidr(std::string_view text) {
    size_t slash = text.find('/');
    std::string_view addr_text = text.substr(0, slash);
    auto ip = parseIpAddress(addr_text);
    if (!ip.ok()) {
        return fail("invalid CIDR ", quoted(text),
                    ": expected an address range such as '10.0.0.0/8' or 'fd00::/8'");
    }
    unsigned max = ip->family == AddressFamily::Ipv4 ? 32 : 128;
    unsigned len = max;
    if (slash != std::string_view::npos) {
        std::string_view len_text = text.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
        if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size() ||
            len > max) {
            return fail("invalid CIDR ", quoted(text), ": prefix length must be 0-",
                        std::to_string(max));
        }
    }
    Cidr c;
    c.base = ip.value();
    c.prefix_len = static_cast<uint8_t>(len);
    Cidr masked = c;
    unsigned bytes = max / 8;
    for (unsigned i = 0; i < bytes; ++i) {
        unsigned bit = i * 8;
        uint8_t mask = bit + 8 <= len ? 0xff
                       : bit >= len   ? 0
                                      : static_cast<uint8_t>(0xff << (8 - (len - bit)));
        masked.base.bytes[i] &= mask;
    }
    if (!(masked.base == c.base)) {
        return fail("invalid CIDR ", quoted(text), ": host bits are set below the /",
                    std::to_string(len), " prefix (did you mean '", masked.toString(), "'?)");
    }
    return c;
}

}  // namespace photon::core
