// SPDX-License-Identifier: Apache-2.0
// Gateway-generated responses: JSON error bodies and the built-in /health document.
#pragma once

#include <string>
#include <string_view>

#include "core/http_parser.h"
#include "worker/buffer.h"

namespace photon::worker {

/// Writes a complete error response into `out`: status line, Content-Type application/json,
/// a correct Content-Length, X-Request-ID, `extra_headers` (complete CRLF-terminated lines),
/// Connection: close unless keep_alive, and the body
/// {"error":"<error>","status":N,"request_id":"<id>"}. `head_only` (HEAD request) omits the
/// body but keeps its Content-Length. The error text is JSON-escaped.
/// `fields` (may be null) are further header fields set by the HeaderFilter phase (CORS,
/// transforms), written after `extra_headers`. `body` false writes neither body nor
/// Content-Type (a CORS preflight's 204); Content-Length is then left out for 1xx/204/304 and
/// written as 0 otherwise. A head that did not fit sets out.overflowed.
void buildLocalReply(Buffer& out, int status, std::string_view error, std::string_view request_id,
                     std::string_view extra_headers, bool keep_alive, bool head_only,
                     const core::http::HeaderList* fields = nullptr, bool body = true);

/// Same framing for a caller-built JSON body.
void buildJsonReply(Buffer& out, int status, std::string_view json_body,
                    std::string_view request_id, bool keep_alive, bool head_only);

/// The head of a reply whose body (`body_len` bytes of `content_type`) the caller sends itself:
/// status line, Content-Type, Content-Length, Cache-Control: no-store, X-Request-ID, and
/// Connection: close unless keep_alive.
void buildTypedHead(Buffer& out, int status, std::string_view content_type, size_t body_len,
                    std::string_view request_id, bool keep_alive);

/// Builds the /health document (status, uptime, workers, generation, backends with each
/// upstream's state) and returns its HTTP status: 200, or 503 when a backend has no healthy
/// upstream. Worker side; not for the hot path (allocates).
int healthBody(std::string& out);

/// Appends `s` JSON-escaped (quotes, backslash, control characters) to `out`.
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace photon::worker
