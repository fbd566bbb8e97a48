// SPDX-License-Identifier: Apache-2.0
// The client address and consistent_hash key of a request.
#include "worker/client_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/address.h"
#include "worker/http_conn.h"
#include "worker/proxy.h"

namespace photon::worker {

namespace {

/// Parses one X-Forwarded-For element (an IP, optionally "[v6]" or with ":port" for IPv4).
bool parseForwardedIp(std::string_view s, core::IpAddress& out) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    if (!s.empty() && s.front() == '[') {
        size_t rb = s.find(']');
        if (rb == std::string_view::npos) {
            return false;
        }
        s = s.substr(1, rb - 1);
    } else if (size_t colon = s.find(':'); colon != std::string_view::npos &&
                                           s.find(':', colon + 1) == std::string_view::npos) {
        s = s.substr(0, colon);  // "1.2.3.4:5678"
    }
    char buf[64];
    if (s.empty() || s.size() >= sizeof buf) {
        return false;
    }
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    out = core::IpAddress{};
    if (inet_pton(AF_INET, buf, out.bytes.data()) == 1) {
        out.family = core::AddressFamily::Ipv4;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
        out.family = core::AddressFamily::Ipv6;
        return true;
    }
    return false;
}

bool trusted(const Proxy& p, const core::IpAddress& ip) {
    for (const auto& cidr : p.trusted_proxies) {
        if (cidr.contains(ip)) {
            return true;
        }
    }
    return false;
}

}  // namespace

/// The client address for balancing: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most X-Forwarded-For element that is not itself trusted (decision 7).
void resolveClientAddress(ClientConn* c, const Proxy& p) {
    std::memcpy(c->client_bin, c->peer_bin, sizeof c->peer_bin);
    c->client_bin_len = c->peer_bin_len;
    if (p.trusted_proxies.empty()) {
        return;
    }
    core::IpAddress ip;
    ip.family = c->peer_bin_len == 4 ? core::AddressFamily::Ipv4 : core::AddressFamily::Ipv6;
    std::memcpy(ip.bytes.data(), c->peer_bin, c->peer_bin_len);
    if (!trusted(p, ip)) {
        return;
    }
    const auto& hs = c->st->req.headers;
    c->st->rq.client_ip = std::string_view(c->peer_ip, c->peer_ip_len);
    char text[INET6_ADDRSTRLEN];
    bool moved = false;
    bool stop = false;
    for (size_t i = hs.size(); i-- > 0 && !stop;) {
        if (!core::http::equalsIgnoreCase(hs[i].name, "x-forwarded-for")) {
            continue;
        }
        std::string_view v = hs[i].value;
        while (!v.empty() && !stop) {
            size_t comma = v.rfind(',');
            std::string_view elem = comma == std::string_view::npos ? v : v.substr(comma + 1);
            v = comma == std::string_view::npos ? std::string_view() : v.substr(0, comma);
            core::IpAddress cand;
            if (!parseForwardedIp(elem, cand)) {
                stop = true;  // garbage: keep the last trustworthy address
                break;
            }
            size_t n = cand.family == core::AddressFamily::Ipv4 ? 4 : 16;
            std::memcpy(c->client_bin, cand.bytes.data(), n);
            c->client_bin_len = static_cast<uint8_t>(n);
            moved = true;
            stop = !trusted(p, cand);
        }
    }
    // ${client_ip} is the client as balancing sees it, in canonical text.
    if (moved && inet_ntop(c->client_bin_len == 4 ? AF_INET : AF_INET6, c->client_bin, text,
                           sizeof text) != nullptr) {
        c->st->rq.client_ip = c->st->rq.copy(text);
    }
}

/// Copies the consistent_hash key of the backend out of the request (bounded).
void captureHashKey(ClientConn* c, const BackendRt& be, std::string_view path) {
    std::string_view key;
    switch (be.hash_kind) {
        case core::HashKey::Kind::Ip:
            break;
        case core::HashKey::Kind::Path:
            key = path;
            break;
        case core::HashKey::Kind::Header:
            if (const auto* h = c->st->req.headers.find(be.hash_name)) {
                key = h->value;
            }
            break;
        case core::HashKey::Kind::Cookie:
            for (const auto& h : c->st->req.headers) {
                if (!core::http::equalsIgnoreCase(h.name, "cookie")) {
                    continue;
                }
                std::string_view v = h.value;
                while (!v.empty() && key.empty()) {
                    size_t semi = v.find(';');
                    std::string_view pair = v.substr(0, semi);
                    v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
                    while (!pair.empty() && pair.front() == ' ') {
                        pair.remove_prefix(1);
                    }
                    if (pair.size() > be.hash_name.size() && pair[be.hash_name.size()] == '=' &&
                        pair.substr(0, be.hash_name.size()) == be.hash_name) {
                        key = pair.substr(be.hash_name.size() + 1);
                    }
                }
            }
            break;
    }
    size_t n = std::min(key.size(), sizeof c->hash_key);
    if (n != 0) {
        std::memcpy(c->hash_key, key.data(), n);  // an empty view's data() may be null
    }
    c->hash_key_len = static_cast<uint16_t>(n);
}

}  // namespace photon::worker
