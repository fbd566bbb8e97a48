// SPDX-License-Identifier: Apache-2.0
// A blocking HTTPS GET for JWKS documents. Master only: it runs where no client waits, bounded
// by a timeout for the whole exchange.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace photon::mod::auth {

/// Splits "https://host[:port][/path]" (host a name, an IPv4 literal or a bracketed IPv6
/// literal). False when it is not such a URL.
bool splitHttpsUrl(std::string_view url, std::string& host, std::string& port,
                   std::string& target);

/// GETs `url` over TLS 1.2 or later, verifying the server's certificate and name against the
/// system CAs or the PEM bundle `ca_file`, and returns the body of a 200 answer (at most
/// 1 MiB). Any other outcome is an error whose message names the step that failed.
core::Result<std::string> fetchHttps(const std::string& url, const std::string& ca_file,
                                     double timeout_s);

}  // namespace photon::mod::auth
