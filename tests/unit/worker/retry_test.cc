// SPDX-License-Identifier: Apache-2.0
// The retry decision table: method x failure x bytes sent x retries.
#include "worker/retry.h"

#include <gtest/gtest.h>

namespace photon::worker {
namespace {

RetryInput input(bool idempotent, UpstreamFailure kind, bool stale, bool sent, uint32_t attempts,
                 uint32_t retries) {
    RetryInput in;
    in.idempotent = idempotent;
    in.kind = kind;
    in.stale = stale;
    in.request_sent = sent;
    in.attempts = attempts;
    in.retries = retries;
    return in;
}

TEST(RetryTest, DecisionTable) {
    using F = UpstreamFailure;
    struct Row {
        bool idempotent;
        F kind;
        bool stale;
        bool sent;
        uint32_t attempts;
        uint32_t retries;
        bool expected;
    };
    const Row rows[] = {
        // Connect failures: nothing was sent, any method, within `retries`.
        {true, F::Connect, false, false, 1, 0, false},
        {true, F::Connect, false, false, 1, 1, true},
        {false, F::Connect, false, false, 1, 1, true},
        {false, F::Connect, false, false, 2, 1, false},
        // A stale pooled connection: idempotent requests get a fresh one, even with retries 0.
        {true, F::Reset, true, true, 1, 0, true},
        {true, F::Reset, true, true, 2, 0, true},
        {true, F::Reset, true, true, 3, 0, false},
        {true, F::Reset, true, true, 4, 2, true},
        // ... never a request that is not idempotent (the server may have acted on it).
        {false, F::Reset, true, true, 1, 0, false},
        {false, F::Reset, true, true, 1, 5, false},
        // Resets after the request went out: idempotent only, within `retries`.
        {true, F::Reset, false, true, 1, 0, false},
        {true, F::Reset, false, true, 1, 1, true},
        {false, F::Reset, false, true, 1, 1, false},
        // A reset before any byte was written is safe for every method.
        {false, F::Reset, false, false, 1, 1, true},
        // Timeouts and invalid responses are never retried.
        {true, F::Timeout, false, true, 1, 3, false},
        {true, F::BadResponse, false, true, 1, 3, false},
        {false, F::Timeout, false, false, 1, 3, false},
    };
    for (const Row& r : rows) {
        EXPECT_EQ(mayRetry(input(r.idempotent, r.kind, r.stale, r.sent, r.attempts, r.retries)),
                  r.expected)
            << "idempotent=" << r.idempotent << " kind=" << static_cast<int>(r.kind)
            << " stale=" << r.stale << " sent=" << r.sent << " attempts=" << r.attempts
            << " retries=" << r.retries;
    }
}

TEST(RetryTest, OptInAllowsNonIdempotentRetries) {
    RetryInput in = input(false, UpstreamFailure::Reset, true, true, 1, 0);
    EXPECT_FALSE(mayRetry(in));
    in.retry_non_idempotent = true;
    EXPECT_TRUE(mayRetry(in));
    in = input(false, UpstreamFailure::Reset, false, true, 1, 1);
    in.retry_non_idempotent = true;
    EXPECT_TRUE(mayRetry(in));
}

TEST(RetryTest, StreamedBodyIsNeverResent) {
    RetryInput in = input(true, UpstreamFailure::Connect, false, false, 1, 5);
    in.retained = false;
    EXPECT_FALSE(mayRetry(in));
    in.kind = UpstreamFailure::Reset;
    in.stale = true;
    EXPECT_FALSE(mayRetry(in));
}

TEST(RetryTest, RetryOnSelectsTheConditions) {
    RetryInput in = input(true, UpstreamFailure::Timeout, false, true, 1, 1);
    EXPECT_FALSE(mayRetry(in));  // default: connect failures and resets only
    in.retry_on = 0x03 | 0x04;   // + timeout
    EXPECT_TRUE(mayRetry(in));
    in.attempts = 2;             // retries spent
    EXPECT_FALSE(mayRetry(in));

    in = input(true, UpstreamFailure::Status, false, true, 1, 1);
    for (uint16_t status : {502, 503, 504}) {
        in.status = status;
        in.retry_on = 0x03;
        EXPECT_FALSE(mayRetry(in)) << status;
        in.retry_on = 0x08 | 0x10 | 0x20;
        EXPECT_TRUE(mayRetry(in)) << status;
    }
    in.retry_on = 0x10;  // 503 only
    in.status = 502;
    EXPECT_FALSE(mayRetry(in));
    in.status = 500;
    in.retry_on = 0x3f;
    EXPECT_FALSE(mayRetry(in));  // only 502, 503 and 504 can be named

    // Without connect_failure even a connect failure is not retried; a stale pooled
    // connection always is (it says nothing about the upstream).
    in = input(true, UpstreamFailure::Connect, false, false, 1, 2);
    in.retry_on = 0x10;
    EXPECT_FALSE(mayRetry(in));
    in = input(true, UpstreamFailure::Reset, true, true, 1, 0);
    in.retry_on = 0;
    EXPECT_TRUE(mayRetry(in));

    // A 503 to a POST is its answer unless the route opts in.
    in = input(false, UpstreamFailure::Status, false, true, 1, 1);
    in.status = 503;
    in.retry_on = 0x10;
    EXPECT_FALSE(mayRetry(in));
    in.retry_non_idempotent = true;
    EXPECT_TRUE(mayRetry(in));
}

}  // namespace
}  // namespace photon::worker
