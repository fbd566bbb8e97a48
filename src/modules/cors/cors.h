// SPDX-License-Identifier: Apache-2.0
// CORS (Fetch standard): preflights answered by the gateway in Access, response headers added in
// HeaderFilter, for gateway replies too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "worker/module.h"

namespace photon::mod::cors {

/// One allowed origin, compiled: "*", an exact origin, or "scheme://*.domain[:port]".
struct OriginRule {
    bool any = false;
    bool wildcard = false;  // subdomains of `host` only (never `host` itself)
    std::string scheme;     // "https"
    std::string host;       // lower-case; for a wildcard the suffix without "*." ("example.com")
    std::string port;       // "" = none given
    std::string exact;      // exact rules: "scheme://host[:port]" in lower case
};

/// A compiled `cors` instance (immutable after load).
struct CorsConf : worker::ModuleConf {
    std::vector<OriginRule> origins;
    std::vector<std::string> methods;  // case-sensitive, as configured
    std::vector<std::string> headers;  // configured names (lower-cased for matching)
    bool any_header = false;           // allowed_headers: ["*"]
    bool any_origin = false;           // "*" listed
    bool credentials = false;
    std::string allow_methods;   // "GET, POST"
    std::string allow_headers;   // "Content-Type, Authorization" (empty with "*")
    std::string expose_headers;  // "" = header not sent
    std::string max_age;         // "" = header not sent
    uint16_t slot = 0;
    std::string empty_;  // matchOrigin's answer for "*" and wildcard rules

    /// Compiles a validated config block.
    static CorsConf compile(const core::CorsConfig& c);
    /// Whether `origin` (the Origin header value) is allowed. No allocation.
    bool originAllowed(std::string_view origin) const;
    /// The exact rule's canonical text (lower case) that `origin` matched, an empty string for
    /// "*" or a wildcard rule, nullptr when not allowed. No allocation.
    const std::string* matchOrigin(std::string_view origin) const;
    /// Whether every name in the comma-separated `requested` list is allowed.
    bool headersAllowed(std::string_view requested) const;
    bool methodAllowed(std::string_view method) const;
};

/// Access handler: answers a preflight (204 or 403) and remembers the Origin of an actual
/// request for the HeaderFilter handler.
worker::Verdict accessHandler(worker::Request& req, const void* conf);
/// HeaderFilter handler: the preflight's headers, or the actual response's.
worker::Verdict headerHandler(worker::Request& req, const void* conf);

}  // namespace photon::mod::cors
