// SPDX-License-Identifier: Apache-2.0
// RFC 6455 opening handshake: the client's request checked, the subprotocols it offers filtered
// by the route, the upstream's 101 verified before any byte is tunnelled.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/http_parser.h"

namespace photon::mod::websocket {

/// Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest).
inline constexpr size_t kAcceptLen = 28;

/// True when `key` is the base64 encoding of exactly 16 bytes (24 characters ending "==").
bool validKey(std::string_view key);

/// Writes base64(SHA-1(key + the RFC 6455 GUID)) into out[0, kAcceptLen).
void acceptFor(std::string_view key, char* out);

/// True when some field `name` of `h` lists `token` (comma-separated, case-insensitive).
bool hasToken(const core::http::HeaderList& h, std::string_view name, std::string_view token);

/// Outcome of checking a client's upgrade request.
enum class Check {
    Ok,
    NotGet,             // 400: the upgrade must be a GET
    HasBody,            // 400: an upgrade request carries no body
    BadVersion,         // 426 with "Sec-WebSocket-Version: 13"
    BadKey,             // 400
    ProtocolRefused,    // 400: subprotocols were offered and none is allowed
    ProtocolsTooLong,   // 400: the filtered list does not fit
};
std::string_view checkMessage(Check c);

/// The client's upgrade request checked against the route. `allowed` is the route's protocols
/// list (null: any). On Ok, `protocols` holds the subprotocols offered upstream (the client's
/// order, ", "-separated; empty when none), which the upstream's choice is checked against,
/// and `rewrite` whether the client's fields must be replaced by that list (a route list is
/// configured) or go upstream as received.
Check checkRequest(const core::http::RequestHead& r, const std::vector<std::string>* allowed,
                   char* protocols, size_t cap, size_t& protocols_len, bool& rewrite);

/// The upstream's 101 checked against what was sent: Upgrade, Connection, the Accept value for
/// `key`, and a selected subprotocol that was offered (`offered`: the list sent upstream).
/// Returns null when it is valid, else why not (for the log).
const char* checkResponse(const core::http::ResponseHead& resp, std::string_view key,
                          std::string_view offered);

}  // namespace photon::mod::websocket
