// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for JWKS documents: any input either loads a non-empty key set whose keys
// each fit some algorithm, or is refused; key lookups on a loaded set never fail.
// fuzz-sources: src/modules/auth/jwt.cc src/modules/auth/basic.cc
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "modules/auth/jwt.h"
#include "fuzz_check.h"

using namespace photon::mod::auth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view doc(reinterpret_cast<const char*>(data), size);
    auto set = JwtKeySet::fromJwks(doc);
    if (!set.ok()) {
        return 0;
    }
    FUZZ_CHECK(set.value().size() > 0);
    for (const JwtKey& k : set.value().keys()) {
        bool any = false;
        for (int a = 0; a <= static_cast<int>(JwtAlg::EdDSA); ++a) {
            any = any || k.fits(static_cast<JwtAlg>(a));
        }
        FUZZ_CHECK(any || k.alg.has_value());
        if (k.kind != JwtKey::Kind::Hmac) {
            FUZZ_CHECK(k.pkey != nullptr);
        }
        set.value().find(k.kid, k.alg.value_or(JwtAlg::RS256));
    }
    return 0;
}
