// SPDX-License-Identifier: Apache-2.0
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent field, parsed
// strictly and written for the gateway's hop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace photon::mod::tracing {

/// The parts of a traceparent value the gateway carries on.
struct TraceParent {
    uint8_t trace_id[16] = {};
    uint8_t parent_id[8] = {};
    uint8_t flags = 0;
};

/// Length of a version-00 traceparent value ("00-" 32 hex "-" 16 hex "-" 2 hex).
inline constexpr size_t kTraceParentLen = 55;

/// Parses `v` per the specification (§3.2): lower-case hex only, version not "ff", for version
/// 00 exactly 55 characters, for a later version at least 55 with a '-' after the flags when
/// longer (its own fields are ignored); a trace id or parent id of all zeros is invalid.
bool parse(std::string_view v, TraceParent& out);

/// Writes the version-00 value for `trace_id`, `span_id` and `flags` into `out`
/// (kTraceParentLen bytes, not terminated).
void format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags, char* out);

/// Lower-case hex of `n` bytes into `out` (2n characters).
void hex(const uint8_t* p, size_t n, char* out);

}  // namespace photon::mod::tracing
