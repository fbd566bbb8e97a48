// SPDX-License-Identifier: Apache-2.0
// Gateway-generated responses: JSON error bodies and the built-in /health document.
#pragma once

#include <string>
#include <string_view>

#include "worker/buffer.h"

namespace photon::worker {

/// Writes a complete error response into `out`: status line, Content-Type application/json,
/// a correct Content-Length, X-Request-ID, `extra_headers` (complete CRLF-terminated lines),
/// Connection: close unless keep_alive, and the body
/// {"error":"<error>","status":N,"request_id":"<id>"}. `head_only` (HEAD request) omits the
/// body but keeps its Content-Length. The error text is JSON-escaped.
void buildLocalReply(Buffer& out, int status, std::string_view error, std::string_view request_id,
                     std::string_view extra_headers, bool keep_alive, bool head_only);

/// Same framing for a caller-built JSON body.
void buildJsonReply(Buffer& out, int status, std::string_view json_body,
                    std::string_view request_id, bool keep_alive, bool head_only);

/// Builds the /health document (status, uptime, workers, generation, backends with each
/// upstream's state) and returns its HTTP status: 200, or 503 when a backend has no healthy
/// upstream. Worker side; not for the hot path (allocates).
int healthBody(std::string& out);

/// Appends `s` JSON-escaped (quotes, backslash, control characters) to `out`.
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace photon::worker
