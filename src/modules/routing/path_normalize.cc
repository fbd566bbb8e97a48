// SPDX-License-Identifier: Apache-2.0
// Request-path normalisation: percent-escape canonicalisation, slash merging, dot segments.
#include "modules/routing/path_normalize.h"

namespace photon::mod::routing {

namespace {

int hexValue(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

constexpr char kHexUpper[] = "0123456789ABCDEF";

}  // namespace

std::string_view normalizeResultName(NormalizeResult r) {
    switch (r) {
        case NormalizeResult::Ok:
            return "ok";
        case NormalizeResult::NotAbsolute:
            return "not_absolute";
        case NormalizeResult::BadEscape:
            return "bad_escape";
        case NormalizeResult::EncodedSlash:
            return "encoded_slash";
        case NormalizeResult::EncodedNul:
            return "encoded_nul";
        case NormalizeResult::BadCharacter:
            return "bad_character";
        case NormalizeResult::EscapesRoot:
            return "escapes_root";
        case NormalizeResult::TooLong:
            return "too_long";
    }
    return "unknown";
}

// The write index never passes the read index (decoding and dot removal only shrink the
// output, and an escape is read completely before it is rewritten), which is what makes
// in-place use safe.
NormalizeResult normalizePath(std::string_view raw, char* out, size_t out_cap, size_t& out_len) {
    const size_t n = raw.size();
    if (n == 0 || raw[0] != '/') {
        return NormalizeResult::NotAbsolute;
    }
    if (out_cap == 0) {
        return NormalizeResult::TooLong;
    }
    size_t r = 1;
    size_t w = 0;
    out[w++] = '/';
    // Invariant at the top of the loop: out[0, w) is normalised and ends with '/'.
    for (;;) {
        const size_t seg_start = w;
        while (r < n && raw[r] != '/') {
            const auto c = static_cast<unsigned char>(raw[r]);
            if (c == '%') {
                if (r + 2 >= n) {
                    return NormalizeResult::BadEscape;
                }
                const int hi = hexValue(static_cast<unsigned char>(raw[r + 1]));
                const int lo = hexValue(static_cast<unsigned char>(raw[r + 2]));
                if (hi < 0 || lo < 0) {
                    return NormalizeResult::BadEscape;
                }
                const auto v = static_cast<unsigned char>(hi * 16 + lo);
                if (v == 0) {
                    return NormalizeResult::EncodedNul;
                }
                if (v == '/') {
                    return NormalizeResult::EncodedSlash;
                }
                r += 3;
                if (isUnreserved(v)) {
                    if (w >= out_cap) {
                        return NormalizeResult::TooLong;
                    }
                    out[w++] = static_cast<char>(v);
                } else {
                    if (w + 3 > out_cap) {
                        return NormalizeResult::TooLong;
                    }
                    out[w++] = '%';
                    out[w++] = kHexUpper[hi];
                    out[w++] = kHexUpper[lo];
                }
                continue;
            }
            if (c <= 0x20 || c == 0x7F) {
                return NormalizeResult::BadCharacter;
            }
            if (w >= out_cap) {
                return NormalizeResult::TooLong;
            }
            out[w++] = static_cast<char>(c);
            ++r;
        }
        const bool at_end = r >= n;
        const size_t seg_len = w - seg_start;
        if (seg_len == 1 && out[seg_start] == '.') {
            w = seg_start;
        } else if (seg_len == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.') {
            if (seg_start == 1) {
                return NormalizeResult::EscapesRoot;
            }
            // out[seg_start - 1] is the '/' closing the previous segment; drop that segment.
            size_t j = seg_start - 1;
            while (j > 0 && out[j - 1] != '/') {
                --j;
            }
            w = j;
        } else if (seg_len != 0 && !at_end) {
            if (w >= out_cap) {
                return NormalizeResult::TooLong;
            }
            out[w++] = '/';
        }
        if (at_end) {
            break;
        }
        ++r;  // skip the '/' that ended this segment; an empty segment is thereby merged
    }
    out_len = w;
    return NormalizeResult::Ok;
}

}  // namespace photon::mod::routing
