// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the small value parsers of the configuration and the request path:
// durations, addresses (IP, listen, host:port, CIDR), W3C traceparent and path normalisation.
// Properties: every value a parser accepts prints back to text the parser reads as the same
// value; a normalised path is never longer than its input, starts with '/', holds no "//" and
// no "." or ".." segment, and normalising it again changes nothing.
// fuzz-sources: src/core/duration.cc src/core/address.cc src/modules/tracing/traceparent.cc src/modules/routing/path_normalize.cc
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/address.h"
#include "core/duration.h"
#include "fuzz_check.h"
#include "modules/routing/path_normalize.h"
#include "modules/tracing/traceparent.h"

using namespace photon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view s(reinterpret_cast<const char*>(data), size);

    if (auto d = core::parseDuration(s); d.ok()) {
        auto again = core::parseDuration(core::formatDuration(d.value()));
        FUZZ_CHECK(again.ok() && again.value() == d.value());
    }
    if (auto a = core::parseIpAddress(s); a.ok()) {
        auto again = core::parseIpAddress(a.value().toString());
        FUZZ_CHECK(again.ok() && again.value().toString() == a.value().toString());
    }
    if (auto a = core::parseListenAddress(s); a.ok()) {
        auto again = core::parseListenAddress(a.value().toString());
        FUZZ_CHECK(again.ok() && again.value().toString() == a.value().toString());
    }
    if (auto a = core::parseHostPort(s); a.ok()) {
        auto again = core::parseHostPort(a.value().toString());
        FUZZ_CHECK(again.ok() && again.value().toString() == a.value().toString());
    }
    if (auto a = core::parseCidr(s); a.ok()) {
        auto again = core::parseCidr(a.value().toString());
        FUZZ_CHECK(again.ok() && again.value().toString() == a.value().toString());
    }

    mod::tracing::TraceParent tp;
    if (mod::tracing::parse(s, tp)) {
        char out[mod::tracing::kTraceParentLen];
        mod::tracing::format(tp.trace_id, tp.parent_id, tp.flags, out);
        mod::tracing::TraceParent back;
        FUZZ_CHECK(mod::tracing::parse(std::string_view(out, sizeof out), back));
        FUZZ_CHECK(std::memcmp(back.trace_id, tp.trace_id, 16) == 0);
        FUZZ_CHECK(std::memcmp(back.parent_id, tp.parent_id, 8) == 0 && back.flags == tp.flags);
    }

    if (!s.empty() && s[0] == '/') {
        std::string out(s.size(), '\0');
        size_t len = 0;
        if (mod::routing::normalizePath(s, out.data(), out.size(), len) ==
            mod::routing::NormalizeResult::Ok) {
            FUZZ_CHECK(len <= s.size() && len > 0 && out[0] == '/');
            std::string_view n(out.data(), len);
            FUZZ_CHECK(n.find("//") == std::string_view::npos);
            FUZZ_CHECK(n.find("/./") == std::string_view::npos &&
                       n.find("/../") == std::string_view::npos);
            std::string twice(len, '\0');
            size_t len2 = 0;
            FUZZ_CHECK(mod::routing::normalizePath(n, twice.data(), twice.size(), len2) ==
                       mod::routing::NormalizeResult::Ok);
            FUZZ_CHECK(std::string_view(twice.data(), len2) == n);
        }
    }
    return 0;
}
