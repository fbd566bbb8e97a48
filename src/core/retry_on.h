// SPDX-License-Identifier: Apache-2.0
// The conditions a route's `retry_on` names, as bits (shared by the configuration and the
// retry decision).
#pragma once

#include <cstdint>
#include <utility>

namespace photon::core::retry_on {

inline constexpr uint8_t kConnectFailure = 1, kReset = 2, kTimeout = 4, k502 = 8, k503 = 16,
                         k504 = 32;
inline constexpr uint8_t kStatuses = k502 | k503 | k504;
inline constexpr uint8_t kDefault = kConnectFailure | kReset;
inline constexpr std::pair<const char*, uint8_t> kNames[] = {{"connect_failure", kConnectFailure},
                                                             {"reset", kReset},
                                                             {"timeout", kTimeout},
                                                             {"502", k502},
                                                             {"503", k503},
                                                             {"504", k504}};

/// The bit of a 502, 503 or 504 answer; 0 for any other status.
constexpr uint8_t statusBit(int status) {
    return status == 502 ? k502 : status == 503 ? k503 : status == 504 ? k504 : 0;
}

}  // namespace photon::core::retry_on
