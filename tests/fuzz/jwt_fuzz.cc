// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for JWT verification: arbitrary tokens against HMAC and RSA key sets, and
// arbitrary header / payload JSON signed correctly here, so that the parsing and claim checks
// behind the signature are reached too.
// fuzz-sources: src/modules/auth/jwt.cc src/modules/auth/basic.cc
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/auth/jwt.h"
#include "fuzz_check.h"

using namespace photon::mod::auth;

namespace {

const std::string kSecret = "fuzz-secret-0123456789abcdef-0123";

std::string b64url(std::string_view in) { return base64urlEncode(in); }

const JwtKeySet& hmacSet() {
    static const JwtKeySet s = JwtKeySet::fromSecret(kSecret);
    return s;
}

JwtPolicy anyPolicy(uint8_t sel) {
    JwtPolicy p;
    for (int a = 0; a <= static_cast<int>(JwtAlg::EdDSA); ++a) {
        p.algorithms.push_back(static_cast<JwtAlg>(a));
    }
    p.leeway_s = sel & 7;
    p.require_exp = (sel & 8) != 0;
    if ((sel & 16) != 0) {
        p.issuers = {"https://idp.test/"};
    }
    if ((sel & 32) != 0) {
        p.audiences = {"api", "web"};
    }
    p.max_size = (sel & 64) != 0 ? 96 : 8192;
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    const uint8_t mode = data[0];
    const JwtPolicy policy = anyPolicy(data[1]);
    std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

    // Strict base64url: whatever decodes re-encodes to the same text.
    std::string decoded;
    if (base64urlDecode(in, decoded)) {
        FUZZ_CHECK(b64url(decoded) == in);
    }

    JwtClaims claims;
    if ((mode & 1) == 0) {
        // A raw token.
        JwtError e = verifyJwt(in, hmacSet(), policy, 1'800'000'000, &claims);
        if (e == JwtError::None) {
            claims.text("sub");
            claims.exp();
        }
        return 0;
    }
    // "header\npayload", signed with the HMAC secret.
    size_t nl = in.find('\n');
    if (nl == std::string_view::npos) {
        return 0;
    }
    std::string signing = b64url(in.substr(0, nl)) + "." + b64url(in.substr(nl + 1));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const EVP_MD* md = (mode & 6) == 0 ? EVP_sha256() : (mode & 6) == 2 ? EVP_sha384()
                                                                        : EVP_sha512();
    HMAC(md, kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    std::string token = signing + "." + b64url(std::string_view(reinterpret_cast<char*>(mac), len));
    JwtError e = verifyJwt(token, hmacSet(), policy, 1'800'000'000, &claims);
    if (e == JwtError::None) {
        // A verified payload is an object whose claims can be read.
        claims.text("sub");
        claims.has("aud");
        claims.matches("scope", "admin");
    }
    return 0;
}
