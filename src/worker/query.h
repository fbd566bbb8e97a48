// SPDX-License-Identifier: Apache-2.0
// Query strings as modules read them: form-urlencoded parameters, compared and read after
// decoding, so that a client cannot slip past a check by re-encoding a name or a value.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace photon::worker {

inline int hexValue(char ch) {
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = static_cast<char>(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/// Form-urlencoded decoding of `in` ('+' is a space, %XX a byte; a malformed escape stays as
/// it is), handed to `sink(data, n)` in chunks of at most 256 bytes. No allocation.
template <typename Sink>
void formDecode(std::string_view in, Sink&& sink) {
    char buf[256];
    size_t n = 0;
    for (size_t i = 0; i < in.size(); ++i) {
        char ch = in[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 &&
                   hexValue(in[i + 2]) >= 0) {
            ch = static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2]));
            i += 2;
        }
        buf[n++] = ch;
        if (n == sizeof buf) {
            sink(buf, n);
            n = 0;
        }
    }
    if (n != 0) {
        sink(buf, n);
    }
}

/// Whether the form-urlencoded `raw` decodes to exactly `name`.
inline bool decodedEquals(std::string_view raw, std::string_view name) {
    if (raw.find_first_of("%+") == std::string_view::npos) {
        return raw == name;
    }
    size_t at = 0;
    bool same = true;
    formDecode(raw, [&](const char* d, size_t n) {
        if (!same || at + n > name.size() || std::memcmp(name.data() + at, d, n) != 0) {
            same = false;
            return;
        }
        at += n;
    });
    return same && at == name.size();
}

/// Calls `fn(raw_name, raw_value, has_value)` for each '&'-separated parameter of `query` until
/// it returns false.
template <typename Fn>
void forEachQueryParam(std::string_view query, Fn&& fn) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        size_t eq = pair.find('=');
        std::string_view value =
            eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        if (!fn(pair.substr(0, eq), value, eq != std::string_view::npos)) {
            return;
        }
    }
}

}  // namespace photon::worker
