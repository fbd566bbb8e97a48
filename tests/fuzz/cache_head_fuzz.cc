// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for what the response cache does with heads it did not write: the upstream
// response head it stores (serializeHead), the 304 whose fields freshen a stored head
// (mergeHead), the Vary field names and the request head the variant key is read from
// (rawField, variantKey), the store decision and the conditional answer. The input is split at
// its first NUL into a response head and a request head. Checks that a stored head always
// parses again, keeps no framing or hop-by-hop field and is never longer than its buffer; that
// a merged head parses and keeps the stored status; that keys stay within their bounds.
// fuzz-sources: src/modules/cache/cache.cc src/modules/cache/rfc9111.cc src/core/http_parser.cc
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "modules/cache/cache.h"

using namespace photon::mod::cache;
namespace http = photon::core::http;

namespace {

bool parse(std::string_view s, http::ResponseHead& out) {
    size_t hint = 0;
    http::Limits lim;
    return http::parseResponse(s.data(), s.size(), lim, out, hint, true) ==
           http::ParseStatus::Complete;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    size_t nul = in.find('\0');
    std::string_view resp_text = in.substr(0, nul);
    std::string_view req_text = nul == std::string_view::npos ? in : in.substr(nul + 1);

    auto resp = std::make_unique<http::ResponseHead>();
    if (parse(resp_text, *resp)) {
        static char buf[65536];
        size_t n = serializeHead(*resp, buf, sizeof buf);
        FUZZ_CHECK(n <= sizeof buf);
        if (n != 0) {
            auto again = std::make_unique<http::ResponseHead>();
            FUZZ_CHECK(parse(std::string_view(buf, n), *again));
            FUZZ_CHECK(again->status == resp->status);
            for (const auto& f : again->headers) {
                FUZZ_CHECK(!f.hop_by_hop);
                FUZZ_CHECK(!http::equalsIgnoreCase(f.name, "content-length"));
                FUZZ_CHECK(!http::equalsIgnoreCase(f.name, "age"));
            }
            static char merged[65536 * 2];
            size_t m = mergeHead(*again, *resp, merged, sizeof merged);
            if (m != 0) {
                auto mh = std::make_unique<http::ResponseHead>();
                FUZZ_CHECK(parse(std::string_view(merged, m), *mh));
                FUZZ_CHECK(mh->status == again->status);
            }
            notModified(again->headers, resp->headers);
        }
        RoutePolicy pol;
        pol.on = true;
        CacheControl rcc;
        StorePlan plan = planStore(pol, size % 2 == 0, rcc, *resp, 1000, 1000 + size % 7);
        if (plan.store) {
            FUZZ_CHECK(plan.meta.lifetime > plan.meta.initial_age ||
                       (plan.meta.flags & (kHasEtag | kHasLastModified)) != 0);
            FUZZ_CHECK(resp->status != 206);
        }
        char names[1024];
        size_t nn = varyNames(resp->headers, names, sizeof names);
        FUZZ_CHECK(nn <= sizeof names);
        char vk[kMaxKey];
        size_t vn = variantKey("GET:h/p", 42, std::string_view(names, nn), req_text, vk, sizeof vk);
        FUZZ_CHECK(vn <= kMaxKey);
        FUZZ_CHECK(vn == 0 || std::string_view(vk, vn).starts_with("GET:h/p\n~42"));
    }
    char field[256];
    size_t fn = rawField(req_text, "accept", field, sizeof field);
    FUZZ_CHECK(fn == static_cast<size_t>(-1) || fn <= sizeof field);
    char key[kMaxKey];
    size_t kn = buildKey(req_text.substr(0, 300), "/p", req_text, true, key, sizeof key);
    FUZZ_CHECK(kn <= kMaxKey);
    return 0;
}
