// SPDX-License-Identifier: Apache-2.0
#include "modules/tracing/traceparent.h"

#include <cstring>

namespace photon::mod::tracing {

namespace {

int nibble(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;  // upper case is invalid in traceparent
}

/// Decodes 2n lower-case hex characters; false on anything else.
bool unhex(const char* s, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; ++i) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

bool allZero(const uint8_t* p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; ++i) {
        acc |= p[i];
    }
    return acc == 0;
}

}  // namespace

bool parse(std::string_view v, TraceParent& out) {
    if (v.size() < kTraceParentLen) {
        return false;
    }
    const char* s = v.data();
    uint8_t version;
    if (!unhex(s, 1, &version) || version == 0xff || s[2] != '-' || s[35] != '-' ||
        s[52] != '-') {
        return false;
    }
    if (version == 0 ? v.size() != kTraceParentLen
                     : v.size() > kTraceParentLen && s[kTraceParentLen] != '-') {
        return false;
    }
    TraceParent t;
    if (!unhex(s + 3, 16, t.trace_id) || !unhex(s + 36, 8, t.parent_id) ||
        !unhex(s + 53, 1, &t.flags) || allZero(t.trace_id, 16) || allZero(t.parent_id, 8)) {
        return false;
    }
    out = t;
    return true;
}

namespace {

/// The two hex digits of every byte value (one table read per byte, on the request path).
struct HexPairs {
    char v[256][2];
    constexpr HexPairs() : v() {
        constexpr char kDigits[] = "0123456789abcdef";
        for (int i = 0; i < 256; ++i) {
            v[i][0] = kDigits[i >> 4];
            v[i][1] = kDigits[i & 15];
        }
    }
};
constexpr HexPairs kHex;

}  // namespace

void hex(const uint8_t* p, size_t n, char* out) {
    for (size_t i = 0; i < n; ++i) {
        std::memcpy(out + 2 * i, kHex.v[p[i]], 2);
    }
}

void format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags, char* out) {
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    hex(trace_id, 16, out + 3);
    out[35] = '-';
    hex(span_id, 8, out + 36);
    out[52] = '-';
    hex(&flags, 1, out + 53);
}

}  // namespace photon::mod::tracing
