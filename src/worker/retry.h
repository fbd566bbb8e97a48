// SPDX-License-Identifier: Apache-2.0
// When a failed upstream attempt may be repeated: one pure decision, shared by the connection
// code and its unit test (photon.conf(5), "Retries").
#pragma once

#include <cstdint>

#include "core/retry_on.h"

namespace photon::worker {

/// How an attempt failed, before any response byte reached the client.
enum class UpstreamFailure : uint8_t {
    Connect,      // the connection could not be made: nothing was sent
    Reset,        // the upstream closed or reset the connection before a complete response head
    Timeout,      // no answer in time: the request may be executing
    BadResponse,  // the upstream answered with something that is not HTTP/1.1
    Status,       // a 502, 503 or 504 answer (RetryInput::status), nothing of it sent on
};

struct RetryInput {
    bool idempotent = true;  // RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE
    UpstreamFailure kind = UpstreamFailure::Connect;
    // A reused pooled connection that the server closed before any response byte: the classic
    // keep-alive race, where the server most likely never saw the request.
    bool stale = false;
    bool request_sent = false;  // some byte of the request was written to this connection
    bool retained = true;       // the whole request is still held (no body byte streamed on)
    uint32_t attempts = 1;      // attempts made so far, this one included
    uint32_t retries = 0;       // the route's `retries`
    bool retry_non_idempotent = false;  // the route's opt-in
    uint8_t retry_on = core::retry_on::kDefault;  // the route's retry_on
    uint16_t status = 0;      // kind Status: the answer's status
};

/// Whether the request may be sent again (to another upstream where one exists).
/// - Nothing that cannot be re-sent is (a body already streamed on).
/// - A request that is not idempotent is never sent again once any of its bytes reached an
///   upstream, whatever the failure, unless the route opts in (retry_non_idempotent).
/// - Connect failures are retried while attempts <= retries, for every method.
/// - A stale pooled connection is retried on a fresh one while attempts < retries + 3: the
///   server closed an idle connection as we reused it, which says nothing about its health.
/// - Each of connect failures, resets, timeouts and 502/503/504 answers is retried while
///   attempts <= retries only when the route's retry_on names it (default: connect failures
///   and resets). A timeout or an answer means the request was sent: for a request that is not
///   idempotent that is the rule above.
/// - Invalid responses never are (the answer would be the same).
constexpr bool mayRetry(const RetryInput& in) {
    if (!in.retained) {
        return false;
    }
    if (in.request_sent && !in.idempotent && !in.retry_non_idempotent) {
        return false;
    }
    namespace on = core::retry_on;
    const bool within = in.attempts <= in.retries;
    switch (in.kind) {
        case UpstreamFailure::Connect:
            return within && (in.retry_on & on::kConnectFailure) != 0;
        case UpstreamFailure::Reset:
            return in.stale ? in.attempts < in.retries + 3
                            : within && (in.retry_on & on::kReset) != 0;
        case UpstreamFailure::Timeout:
            return within && (in.retry_on & on::kTimeout) != 0;
        case UpstreamFailure::Status:
            return within && (in.retry_on & on::statusBit(in.status)) != 0;
        case UpstreamFailure::BadResponse:
            return false;
    }
    return false;
}

}  // namespace photon::worker
