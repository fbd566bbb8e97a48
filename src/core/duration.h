// SPDX-License-Identifier: Apache-2.0
// Configured durations: the humantime grammar of the original's config files, parsed and printed.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.h"

namespace photon::core {

/// Every configured duration is held as signed 64-bit nanoseconds, which covers ±292 years with
/// nanosecond resolution, so any value the grammar below can express either fits exactly or is
/// rejected as too large. Convert with std::chrono::duration_cast at the point of use (libev wants
/// seconds as double, shm wants microseconds).
using Duration = std::chrono::nanoseconds;

/// Parses a humantime duration (humantime 2.x, the original's parser):
///
///   duration := term (ws* term)*  |  "0"
///   term     := digits ws* unit
///
/// Surrounding whitespace is ignored. Units are case-sensitive (`m` is minutes, `M` months):
///   ns nsec nanos | us usec µs | ms msec millis | s sec secs second seconds |
///   m min mins minute minutes | h hr hrs hour hours | d day days | w wk wks week weeks |
///   M month months (30.44 days = 2 630 016 s) | y yr yrs year years (365.25 days = 31 557 600 s)
///
/// Rejected: the empty string, signs, decimals, a number without a unit (except the bare "0"),
/// unknown units and totals that do not fit in Duration. The error message names the offending
/// part and its byte offset. Pure function; callable from any process; does not allocate on
/// success.
Result<Duration> parseDuration(std::string_view text);

/// Prints a duration in the same grammar, largest units first, without months or years so the
/// value is exact: 5400s → "1h 30m", 1500ms → "1s 500ms", 0 → "0s". parseDuration() of the result
/// yields the same value. Negative values (never produced by the parser) get a leading '-'.
std::string formatDuration(Duration d);

}  // namespace photon::core
