// SPDX-License-Identifier: Apache-2.0
#include "modules/websocket/handshake.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace photon::mod::websocket {

namespace {

using core::http::equalsIgnoreCase;

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool isB64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

using core::http::trimOws;

/// Calls fn(token) for each non-empty element of a comma-separated list; stops when it
/// returns false.
template <typename Fn>
bool forEachToken(std::string_view list, Fn&& fn) {
    while (true) {
        size_t comma = list.find(',');
        std::string_view t = trimOws(list.substr(0, comma));
        if (!t.empty() && !fn(t)) {
            return false;
        }
        if (comma == std::string_view::npos) {
            return true;
        }
        list.remove_prefix(comma + 1);
    }
}

bool isTokenChar(char c) {
    if (c <= 0x20 || c >= 0x7F) {
        return false;
    }
    return std::strchr("()<>@,;:\\\"/[]?={}", c) == nullptr;
}

bool isToken(std::string_view t) {
    if (t.empty()) {
        return false;
    }
    for (char c : t) {
        if (!isTokenChar(c)) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool validKey(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; ++i) {
        if (!isB64(key[i])) {
            return false;
        }
    }
    // The last character before the padding carries 2 bits of data and 4 zero bits.
    static const char kLast[] = "AQgw";
    return std::strchr(kLast, key[21]) != nullptr;
}

void acceptFor(std::string_view key, char* out) {
    // Keys are checked (24 characters) before they get here; longer input is cut, which can
    // only make the answer wrong, never overflow.
    unsigned char in[64 + kGuid.size()];
    size_t kl = std::min<size_t>(key.size(), 64);
    std::memcpy(in, key.data(), kl);
    std::memcpy(in + kl, kGuid.data(), kGuid.size());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(in, kl + kGuid.size(), md, &mdlen, EVP_sha1(), nullptr);
    unsigned char b64[kAcceptLen + 1];
    EVP_EncodeBlock(b64, md, 20);
    std::memcpy(out, b64, kAcceptLen);
}

bool hasToken(const core::http::HeaderList& h, std::string_view name, std::string_view token) {
    for (const auto& f : h) {
        if (!equalsIgnoreCase(f.name, name)) {
            continue;
        }
        bool found = !forEachToken(f.value, [&](std::string_view t) {
            return !equalsIgnoreCase(t, token);  // false stops: found
        });
        if (found) {
            return true;
        }
    }
    return false;
}

std::string_view checkMessage(Check c) {
    switch (c) {
        case Check::Ok:
            return {};
        case Check::NotGet:
            return "a WebSocket upgrade must be a GET request";
        case Check::HasBody:
            return "a WebSocket upgrade request must not have a body";
        case Check::BadVersion:
            return "unsupported WebSocket version (13 is supported)";
        case Check::BadKey:
            return "missing or invalid Sec-WebSocket-Key";
        case Check::ProtocolRefused:
            return "WebSocket subprotocol not supported";
        case Check::ProtocolsTooLong:
            return "Sec-WebSocket-Protocol too long";
    }
    return {};
}

Check checkRequest(const core::http::RequestHead& r, const std::vector<std::string>* allowed,
                   char* protocols, size_t cap, size_t& protocols_len, bool& rewrite) {
    protocols_len = 0;
    rewrite = false;
    if (r.method_id != core::http::Method::Get) {
        return Check::NotGet;
    }
    if (r.framing != core::http::BodyFraming::None) {
        return Check::HasBody;
    }
    const core::http::HeaderField* version = nullptr;
    const core::http::HeaderField* key = nullptr;
    int versions = 0, keys = 0;
    for (const auto& f : r.headers) {
        if (f.name.size() < 17 || (f.name[0] | 0x20) != 's') {
            continue;
        }
        if (equalsIgnoreCase(f.name, "sec-websocket-version")) {
            version = &f;
            ++versions;
        } else if (equalsIgnoreCase(f.name, "sec-websocket-key")) {
            key = &f;
            ++keys;
        }
    }
    if (versions != 1 || version->value != "13") {
        return Check::BadVersion;
    }
    if (keys != 1 || !validKey(key->value)) {
        return Check::BadKey;
    }
    // With no list configured any subprotocol is allowed and the client's fields go upstream
    // as they are; the list is still collected, to check the upstream's choice against it.
    rewrite = allowed != nullptr;
    bool offered = false, too_long = false, bad = false;
    for (const auto& f : r.headers) {
        if (!equalsIgnoreCase(f.name, "sec-websocket-protocol")) {
            continue;
        }
        forEachToken(f.value, [&](std::string_view t) {
            offered = true;
            if (!isToken(t)) {
                bad = true;
                return false;
            }
            bool ok = allowed == nullptr;
            for (size_t k = 0; !ok && k < allowed->size(); ++k) {
                ok = (*allowed)[k] == t;
            }
            if (ok) {
                size_t need = t.size() + (protocols_len ? 2 : 0);
                if (protocols_len + need > cap) {
                    too_long = true;
                    return false;
                }
                if (protocols_len) {
                    std::memcpy(protocols + protocols_len, ", ", 2);
                    protocols_len += 2;
                }
                std::memcpy(protocols + protocols_len, t.data(), t.size());
                protocols_len += t.size();
            }
            return true;
        });
    }
    if (bad) {
        return Check::ProtocolRefused;
    }
    if (too_long) {
        return Check::ProtocolsTooLong;
    }
    if (offered && protocols_len == 0) {
        return Check::ProtocolRefused;
    }
    return Check::Ok;
}

const char* checkResponse(const core::http::ResponseHead& resp, std::string_view key,
                          std::string_view offered) {
    if (resp.version != core::http::Version::Http11) {
        return "101 from an HTTP/1.0 server";
    }
    if (!hasToken(resp.headers, "upgrade", "websocket")) {
        return "101 without Upgrade: websocket";
    }
    if (!hasToken(resp.headers, "connection", "upgrade")) {
        return "101 without Connection: upgrade";
    }
    const core::http::HeaderField* accept = nullptr;
    const core::http::HeaderField* proto = nullptr;
    for (const auto& f : resp.headers) {
        if (equalsIgnoreCase(f.name, "sec-websocket-accept")) {
            if (accept != nullptr) {
                return "101 with two Sec-WebSocket-Accept fields";
            }
            accept = &f;
        } else if (equalsIgnoreCase(f.name, "sec-websocket-protocol")) {
            if (proto != nullptr) {
                return "101 with two Sec-WebSocket-Protocol fields";
            }
            proto = &f;
        }
    }
    char want[kAcceptLen];
    acceptFor(key, want);
    if (accept == nullptr || accept->value != std::string_view(want, kAcceptLen)) {
        return "101 with a wrong Sec-WebSocket-Accept";
    }
    if (proto != nullptr) {
        bool found = !forEachToken(offered, [&](std::string_view t) { return t != proto->value; });
        if (!found) {
            return "101 selecting a subprotocol the client did not offer";
        }
    }
    return nullptr;
}

}  // namespace photon::mod::websocket
