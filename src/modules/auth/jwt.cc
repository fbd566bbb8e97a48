// SPDX-License-Identifier: Apache-2.0
// JWT parsing, keys and verification (RFC 7515 / 7517 / 7518 / 7519 / 8037) with OpenSSL 3.
#include "modules/auth/jwt.h"

#include <cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "modules/auth/basic.h"

namespace photon::mod::auth {

namespace {

constexpr std::string_view kAlgNames[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                          "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"};

// 2^53: doubles hold every integer up to here exactly.
constexpr double kExactDoubleInt = 9007199254740992.0;

const EVP_MD* digestOf(JwtAlg a) {
    switch (a) {
        case JwtAlg::HS256:
        case JwtAlg::RS256:
        case JwtAlg::PS256:
        case JwtAlg::ES256:
            return EVP_sha256();
        case JwtAlg::HS384:
        case JwtAlg::RS384:
        case JwtAlg::PS384:
        case JwtAlg::ES384:
            return EVP_sha384();
        case JwtAlg::HS512:
        case JwtAlg::RS512:
        case JwtAlg::PS512:
            return EVP_sha512();
        case JwtAlg::EdDSA:
            return nullptr;
    }
    return nullptr;
}

struct JsonFree {
    void operator()(cJSON* j) const { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, JsonFree>;

/// False for text that cJSON reads differently from other JSON parsers: raw control characters
/// (cJSON skips every byte below 0x21 as whitespace and copies control characters into
/// strings, where RFC 8259 requires escapes) and the escape \u0000 (decoded into a NUL that
/// ends the C string early, so "iss":"a\u0000b" would be read as "a"). Refusing both keeps what
/// we check equal to what every other reader of the same signed bytes sees. Quotes are tracked
/// exactly for valid JSON; anything else cJSON refuses anyway.
bool plainJsonText(std::string_view text) {
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const auto ch = static_cast<unsigned char>(text[i]);
        if (ch < 0x20 && (in_string || (ch != '\t' && ch != '\n' && ch != '\r'))) {
            return false;
        }
        if (ch == '"') {
            in_string = !in_string;
        } else if (ch == '\\' && in_string) {
            if (text.substr(i + 1, 5) == "u0000") {
                return false;
            }
            ++i;  // the escaped character neither ends the string nor starts an escape
            if (i < text.size() && static_cast<unsigned char>(text[i]) < 0x20) {
                return false;
            }
        }
    }
    return true;
}

/// Whether the members of object `v` have unique names and, with `deep`, so do those of every
/// object nested in it. cJSON keeps repeated names and reads the first, other libraries the
/// last: a repeated name would let two verifiers see different claims in one signed token.
/// Sorting keeps this O(n log n): the header is checked before any signature, so a quadratic
/// scan would let an unauthenticated 8 KiB header cost a worker milliseconds.
bool uniqueNames(const cJSON* v, bool deep) {
    std::vector<const char*> names;
    for (const cJSON* c = v->child; c != nullptr; c = c->next) {
        if (cJSON_IsObject(v)) {
            names.push_back(c->string != nullptr ? c->string : "");
        }
        if (deep && (cJSON_IsObject(c) || cJSON_IsArray(c)) && !uniqueNames(c, true)) {
            return false;
        }
    }
    std::sort(names.begin(), names.end(),
              [](const char* a, const char* b) { return std::strcmp(a, b) < 0; });
    return std::adjacent_find(names.begin(), names.end(), [](const char* a, const char* b) {
               return std::strcmp(a, b) == 0;
           }) == names.end();
}

/// Parses exactly `text` as one JSON object (no trailing bytes) whose member names are unique
/// (in nested objects too with `deep`); nullptr otherwise.
Json parseObject(const std::string& text, bool deep) {
    if (!plainJsonText(text)) {
        return nullptr;
    }
    // require_null_terminated: after the value only whitespace, then the string's own NUL.
    const char* end = nullptr;
    Json j(cJSON_ParseWithLengthOpts(text.c_str(), text.size() + 1, &end, true));
    if (!j || !cJSON_IsObject(j.get()) || end != text.c_str() + text.size() ||
        !uniqueNames(j.get(), deep)) {
        return nullptr;
    }
    return j;
}

const cJSON* member(const cJSON* obj, const char* name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

bool verifyHmac(const JwtKey& k, JwtAlg a, std::string_view signing, std::string_view sig) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(digestOf(a), k.secret.data(), static_cast<int>(k.secret.size()),
             reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac,
             &len) == nullptr) {
        ERR_clear_error();
        return false;
    }
    // The length first (CRYPTO_memcmp compares equal lengths), then the bytes in constant time.
    return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
}

bool verifyPkey(const JwtKey& k, JwtAlg a, std::string_view signing, std::string_view sig) {
    std::string der;
    if (a == JwtAlg::ES256 || a == JwtAlg::ES384) {
        // JOSE sends R || S at fixed width; OpenSSL verifies DER.
        const size_t width = a == JwtAlg::ES256 ? 32 : 48;
        if (sig.size() != 2 * width) {
            return false;
        }
        ECDSA_SIG* es = ECDSA_SIG_new();
        BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()),
                              static_cast<int>(width), nullptr);
        BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + width,
                              static_cast<int>(width), nullptr);
        if (es == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            ERR_clear_error();
            return false;
        }
        unsigned char* buf = nullptr;
        int n = i2d_ECDSA_SIG(es, &buf);
        ECDSA_SIG_free(es);
        if (n <= 0) {
            ERR_clear_error();
            return false;
        }
        der.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
        OPENSSL_free(buf);
        sig = der;
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) {
        return false;
    }
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = EVP_DigestVerifyInit(ctx, &pctx, digestOf(a), nullptr, k.pkey.get()) == 1;
    if (ok && (a == JwtAlg::PS256 || a == JwtAlg::PS384 || a == JwtAlg::PS512)) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, digestOf(a)) == 1;
    } else if (ok && (a == JwtAlg::RS256 || a == JwtAlg::RS384 || a == JwtAlg::RS512)) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    ok = ok && EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                reinterpret_cast<const unsigned char*>(signing.data()),
                                signing.size()) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        // A refused token is not an OpenSSL error for whoever looks at this thread's queue next
        // (SSL_get_error on a TLS connection of the same worker reads it).
        ERR_clear_error();
    }
    return ok;
}

/// The key's kind from an OpenSSL public key; nullopt for types we do not verify with.
std::optional<JwtKey::Kind> kindOf(EVP_PKEY* k, std::string& why) {
    switch (EVP_PKEY_get_base_id(k)) {
        case EVP_PKEY_RSA:
        case EVP_PKEY_RSA_PSS: {
            const int bits = EVP_PKEY_get_bits(k);
            if (bits < 2048) {
                why = "RSA keys under 2048 bits are refused";
                return std::nullopt;
            }
            if (bits > OPENSSL_RSA_MAX_MODULUS_BITS) {
                // OpenSSL would refuse every signature: better said at load time.
                why = "RSA keys over 16384 bits are refused";
                return std::nullopt;
            }
            // e = 1 (or any even e) makes "verification" meaningless; OpenSSL does not check
            // public exponents it is handed through JWKS parameters.
            BIGNUM* e = nullptr;
            const bool e_ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
                              BN_is_odd(e) && !BN_is_one(e);
            BN_free(e);
            if (!e_ok) {
                ERR_clear_error();
                why = "RSA public exponent must be odd and greater than 1";
                return std::nullopt;
            }
            return JwtKey::Kind::Rsa;
        }
        case EVP_PKEY_EC: {
            char group[64] = {};
            size_t len = 0;
            if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                               &len) == 1) {
                if (std::strcmp(group, "prime256v1") == 0) {
                    return JwtKey::Kind::EcP256;
                }
                if (std::strcmp(group, "secp384r1") == 0) {
                    return JwtKey::Kind::EcP384;
                }
            }
            why = "EC keys must be on P-256 or P-384";
            return std::nullopt;
        }
        case EVP_PKEY_ED25519:
            return JwtKey::Kind::Ed25519;
        default:
            why = "unsupported key type (RSA, EC P-256/P-384 or Ed25519)";
            return std::nullopt;
    }
}

/// Base64url member `name` of a JWK, decoded; false when absent or invalid.
bool jwkBytes(const cJSON* jwk, const char* name, std::string& out) {
    const cJSON* v = member(jwk, name);
    out.clear();
    return cJSON_IsString(v) && v->valuestring[0] != '\0' && base64urlDecode(v->valuestring, out);
}

EVP_PKEY* fromParams(const char* type, OSSL_PARAM_BLD* bld) {
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* key = nullptr;
    if (params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1) {
        if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
            key = nullptr;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return key;
}

/// One JWKS member as a key; false (skipped) when it is not one we verify with.
bool jwkToKey(const cJSON* jwk, JwtKey& out) {
    if (!cJSON_IsObject(jwk) || !uniqueNames(jwk, true)) {
        return false;
    }
    const cJSON* use = member(jwk, "use");
    if (use != nullptr && !(cJSON_IsString(use) && std::strcmp(use->valuestring, "sig") == 0)) {
        return false;
    }
    const cJSON* alg = member(jwk, "alg");
    if (alg != nullptr) {
        if (!cJSON_IsString(alg)) {
            return false;
        }
        out.alg = jwtAlgFromName(alg->valuestring);
        if (!out.alg) {
            return false;
        }
    }
    const cJSON* kid = member(jwk, "kid");
    if (kid != nullptr) {
        if (!cJSON_IsString(kid)) {
            return false;
        }
        out.kid = kid->valuestring;
    }
    const cJSON* kty = member(jwk, "kty");
    if (!cJSON_IsString(kty)) {
        return false;
    }
    std::string_view type = kty->valuestring;
    EVP_PKEY* key = nullptr;
    if (type == "oct") {
        out.kind = JwtKey::Kind::Hmac;
        // An "alg" of another family would make the key unusable: count it as skipped.
        return jwkBytes(jwk, "k", out.secret) && (!out.alg || out.fits(*out.alg));
    }
    if (type == "RSA") {
        std::string n, e;
        if (!jwkBytes(jwk, "n", n) || !jwkBytes(jwk, "e", e)) {
            return false;
        }
        BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                               static_cast<int>(n.size()), nullptr);
        BIGNUM* be = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                               static_cast<int>(e.size()), nullptr);
        OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
        if (bn != nullptr && be != nullptr && bld != nullptr &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1) {
            key = fromParams("RSA", bld);
        }
        OSSL_PARAM_BLD_free(bld);
        BN_free(bn);
        BN_free(be);
    } else if (type == "EC") {
        const cJSON* crv = member(jwk, "crv");
        if (!cJSON_IsString(crv)) {
            return false;
        }
        std::string_view c = crv->valuestring;
        size_t width = c == "P-256" ? 32 : c == "P-384" ? 48 : 0;
        std::string x, y;
        // RFC 7518 §6.2.1.2 wants each coordinate at full width, but some producers (PyJWT
        // before 2.7, for one) drop its leading zero bytes: those are restored. Longer is wrong.
        if (width == 0 || !jwkBytes(jwk, "x", x) || !jwkBytes(jwk, "y", y) || x.empty() ||
            y.empty() || x.size() > width || y.size() > width) {
            return false;
        }
        x.insert(0, width - x.size(), '\0');
        y.insert(0, width - y.size(), '\0');
        std::string point = "\x04" + x + y;
        OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
        if (bld != nullptr &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            width == 32 ? "prime256v1" : "secp384r1", 0) == 1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                             point.size()) == 1) {
            key = fromParams("EC", bld);
        }
        OSSL_PARAM_BLD_free(bld);
    } else if (type == "OKP") {
        const cJSON* crv = member(jwk, "crv");
        std::string x;
        if (!cJSON_IsString(crv) || std::strcmp(crv->valuestring, "Ed25519") != 0 ||
            !jwkBytes(jwk, "x", x) || x.size() != 32) {
            return false;
        }
        key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                          reinterpret_cast<const unsigned char*>(x.data()), 32);
    } else {
        return false;
    }
    if (key == nullptr) {
        ERR_clear_error();
        return false;
    }
    out.pkey.reset(key);
    std::string why;
    auto kind = kindOf(key, why);
    if (!kind) {
        return false;
    }
    out.kind = *kind;
    return !out.alg || out.fits(*out.alg);
}

/// For PEM blocks that say they are encrypted: never prompt on a terminal for a passphrase
/// (OpenSSL's default callback would), a public key needs none.
int noPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

std::optional<JwtAlg> jwtAlgFromName(std::string_view name) {
    for (size_t i = 0; i < std::size(kAlgNames); ++i) {
        if (name == kAlgNames[i]) {
            return static_cast<JwtAlg>(i);
        }
    }
    return std::nullopt;
}

std::string_view jwtAlgName(JwtAlg a) {
    const auto i = static_cast<size_t>(a);
    return i < std::size(kAlgNames) ? kAlgNames[i] : std::string_view("?");
}

bool JwtKey::fits(JwtAlg a) const {
    if (alg && *alg != a) {
        return false;
    }
    switch (kind) {
        case Kind::Hmac:
            return jwtAlgIsHmac(a) && !secret.empty();
        case Kind::Rsa:
            return a >= JwtAlg::RS256 && a <= JwtAlg::PS512;
        case Kind::EcP256:
            return a == JwtAlg::ES256;
        case Kind::EcP384:
            return a == JwtAlg::ES384;
        case Kind::Ed25519:
            return a == JwtAlg::EdDSA;
    }
    return false;
}

JwtKeySet JwtKeySet::fromSecret(std::string secret) {
    JwtKeySet s;
    JwtKey k;
    k.kind = JwtKey::Kind::Hmac;
    k.secret = std::move(secret);
    s.keys_.push_back(std::move(k));
    return s;
}

core::Result<JwtKeySet> JwtKeySet::fromPem(std::string_view pem) {
    if (pem.size() > static_cast<size_t>(INT_MAX)) {
        return core::Error{"PEM text too large"};
    }
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) {
        return core::Error{"out of memory"};
    }
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, noPassphrase, nullptr);
    if (key == nullptr) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        X509* cert =
            bio != nullptr ? PEM_read_bio_X509(bio, nullptr, noPassphrase, nullptr) : nullptr;
        if (cert != nullptr) {
            key = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(bio);
    // The failed first attempt ("no start line") must not linger on the error queue.
    ERR_clear_error();
    if (key == nullptr) {
        return core::Error{
            "not a PEM public key (\"BEGIN PUBLIC KEY\") or certificate; a private key or an "
            "RSA PUBLIC KEY (PKCS#1) block is not accepted"};
    }
    JwtKey k;
    k.pkey.reset(key);
    std::string why;
    auto kind = kindOf(key, why);
    if (!kind) {
        return core::Error{why};
    }
    k.kind = *kind;
    JwtKeySet s;
    s.keys_.push_back(std::move(k));
    return s;
}

core::Result<JwtKeySet> JwtKeySet::fromPemFile(const std::string& path) {
    std::string text;
    if (!readSmallFile(path, text)) {
        return core::fail("cannot read '", path, "': ", std::strerror(errno));
    }
    auto r = fromPem(text);
    OPENSSL_cleanse(text.data(), text.size());
    if (!r.ok()) {
        return core::fail("'", path, "': ", r.error().msg);
    }
    return r;
}

core::Result<JwtKeySet> JwtKeySet::fromJwks(std::string_view json) {
    // Repeated names inside one key only skip that key (jwkToKey); at the top they are fatal.
    Json doc = parseObject(std::string(json), false);
    if (!doc) {
        return core::Error{
            "not a JSON object with unique member names (a JWKS document is {\"keys\": [...]})"};
    }
    const cJSON* keys = member(doc.get(), "keys");
    if (!cJSON_IsArray(keys)) {
        return core::Error{"no \"keys\" array (a JWKS document is {\"keys\": [...]})"};
    }
    JwtKeySet s;
    for (const cJSON* jwk = keys->child; jwk != nullptr; jwk = jwk->next) {
        JwtKey k;
        if (jwkToKey(jwk, k)) {
            s.keys_.push_back(std::move(k));
        } else {
            ++s.skipped_;
        }
    }
    if (s.keys_.empty()) {
        return core::fail("no usable key (", std::to_string(s.skipped_), " skipped)");
    }
    return s;
}

core::Result<JwtKeySet> JwtKeySet::fromJwksFile(const std::string& path) {
    std::string text;
    if (!readSmallFile(path, text)) {
        return core::fail("cannot read '", path, "': ", std::strerror(errno));
    }
    auto r = fromJwks(text);
    OPENSSL_cleanse(text.data(), text.size());
    if (!r.ok()) {
        return core::fail("'", path, "': ", r.error().msg);
    }
    return r;
}

const JwtKey* JwtKeySet::find(std::string_view kid, JwtAlg alg) const {
    // With a kid: the key of that kid. Without one, or when no key has that kid: the single
    // fitting key that has no kid of its own (a secret or a PEM key, to which identity
    // providers that always send a kid still sign); never a guess among several.
    const JwtKey* unnamed = nullptr;
    size_t unnamed_count = 0;
    const JwtKey* only = nullptr;
    size_t fitting = 0;
    for (const auto& k : keys_) {
        if (!k.fits(alg)) {
            continue;
        }
        if (!kid.empty() && k.kid == kid) {
            return &k;
        }
        ++fitting;
        only = &k;
        if (k.kid.empty()) {
            ++unnamed_count;
            unnamed = &k;
        }
    }
    if (kid.empty()) {
        return fitting == 1 ? only : nullptr;  // several fit: the token must say which
    }
    return unnamed_count == 1 ? unnamed : nullptr;
}

std::string_view jwtErrorText(JwtError e) {
    switch (e) {
        case JwtError::None:
            return "valid";
        case JwtError::Malformed:
            return "malformed token";
        case JwtError::TooLarge:
            return "token too large";
        case JwtError::Algorithm:
            return "algorithm not accepted";
        case JwtError::Header:
            return "token header not accepted";
        case JwtError::UnknownKey:
            return "unknown signing key";
        case JwtError::Signature:
            return "invalid signature";
        case JwtError::Expired:
            return "token expired";
        case JwtError::NotYetValid:
            return "token not yet valid";
        case JwtError::MissingExp:
            return "token has no expiry";
        case JwtError::BadClaim:
            return "invalid claim";
        case JwtError::Issuer:
            return "issuer not accepted";
        case JwtError::Audience:
            return "audience not accepted";
    }
    return "invalid token";
}

struct JwtClaims::Impl {
    Json payload;
};

JwtClaims::JwtClaims() = default;
JwtClaims::~JwtClaims() = default;
JwtClaims::JwtClaims(JwtClaims&&) noexcept = default;
JwtClaims& JwtClaims::operator=(JwtClaims&&) noexcept = default;

std::optional<std::string> JwtClaims::text(std::string_view name) const {
    if (!impl_) {
        return std::nullopt;
    }
    const cJSON* v = member(impl_->payload.get(), std::string(name).c_str());
    if (v == nullptr || cJSON_IsNull(v)) {
        return std::nullopt;
    }
    if (cJSON_IsString(v)) {
        return std::string(v->valuestring);
    }
    if (cJSON_IsBool(v)) {
        return std::string(cJSON_IsTrue(v) ? "true" : "false");
    }
    if (cJSON_IsNumber(v)) {
        const double d = v->valuedouble;
        if (std::trunc(d) == d && std::fabs(d) < kExactDoubleInt) {
            // Through int64 so that -0 prints as 0.
            return std::to_string(static_cast<long long>(d));
        }
        char buf[40];
        // The shortest form that reads back the same (0.1, not 0.10000000000000001).
        std::snprintf(buf, sizeof buf, "%.15g", d);
        if (std::strtod(buf, nullptr) != d) {
            std::snprintf(buf, sizeof buf, "%.17g", d);  // round-trips any double
        }
        return std::string(buf);
    }
    char* printed = cJSON_PrintUnformatted(v);
    if (printed == nullptr) {
        return std::nullopt;
    }
    std::string out(printed);
    cJSON_free(printed);
    return out;
}

bool JwtClaims::has(std::string_view name) const {
    if (!impl_) {
        return false;
    }
    const cJSON* v = member(impl_->payload.get(), std::string(name).c_str());
    return v != nullptr && !cJSON_IsNull(v);
}

bool JwtClaims::matches(std::string_view name, std::string_view value) const {
    if (!impl_) {
        return false;
    }
    const cJSON* v = member(impl_->payload.get(), std::string(name).c_str());
    if (cJSON_IsString(v)) {
        return value == v->valuestring;
    }
    if (cJSON_IsArray(v)) {
        for (const cJSON* e = v->child; e != nullptr; e = e->next) {
            if (cJSON_IsString(e) && value == e->valuestring) {
                return true;
            }
        }
    }
    return false;
}

std::optional<int64_t> JwtClaims::exp() const {
    if (!impl_) {
        return std::nullopt;
    }
    const cJSON* v = member(impl_->payload.get(), "exp");
    if (!cJSON_IsNumber(v) || !std::isfinite(v->valuedouble)) {
        return std::nullopt;
    }
    // Clamped to ±2^53 s: converting a larger double to int64 is undefined, and callers add
    // the leeway to the result.
    return static_cast<int64_t>(
        std::clamp(std::floor(v->valuedouble), -kExactDoubleInt, kExactDoubleInt));
}

std::string base64urlEncode(std::string_view in) {
    static const char* kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char ch : in) {
        acc = (acc << 8) | ch;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) {
        out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
    }
    return out;
}

bool base64urlDecode(std::string_view in, std::string& out) {
    // '=', '+', '/' and whitespace are not base64url as JWS writes it; the bits left over must
    // be zero, so that each byte sequence has one spelling (no malleable encodings).
    return base64Decode(in, out, true);
}

JwtError verifyJwt(std::string_view token, const JwtKeySet& set, const JwtPolicy& policy,
                   int64_t now_s, JwtClaims* claims) {
    if (claims != nullptr) {
        claims->impl_.reset();  // a reused object never keeps the claims of an earlier token
    }
    if (token.size() > policy.max_size) {
        return JwtError::TooLarge;
    }
    const size_t d1 = token.find('.');
    const size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos ||
        d1 == 0 || d2 == d1 + 1 || d2 + 1 == token.size()) {
        return JwtError::Malformed;  // not three non-empty parts (an unsigned token included)
    }
    std::string header_text, payload_text, sig;
    if (!base64urlDecode(token.substr(0, d1), header_text) ||
        !base64urlDecode(token.substr(d1 + 1, d2 - d1 - 1), payload_text) ||
        !base64urlDecode(token.substr(d2 + 1), sig)) {
        return JwtError::Malformed;
    }
    Json header = parseObject(header_text, true);
    if (!header) {
        return JwtError::Malformed;
    }
    const cJSON* alg = member(header.get(), "alg");
    if (!cJSON_IsString(alg)) {
        return JwtError::Algorithm;
    }
    // The configured list decides, never the token: "none", unknown names and algorithms of
    // another family than the key's are all refused here or by the key's fits().
    std::optional<JwtAlg> a = jwtAlgFromName(alg->valuestring);
    if (!a || std::find(policy.algorithms.begin(), policy.algorithms.end(), *a) ==
                  policy.algorithms.end()) {
        return JwtError::Algorithm;
    }
    // Extensions we do not implement must not be ignored (crit), and a token never brings its
    // own key or a place to fetch one from.
    for (const char* refused : {"crit", "jku", "x5u", "jwk", "x5c"}) {
        if (member(header.get(), refused) != nullptr) {
            return JwtError::Header;
        }
    }
    std::string_view kid;
    if (const cJSON* k = member(header.get(), "kid")) {
        if (!cJSON_IsString(k)) {
            return JwtError::Malformed;
        }
        kid = k->valuestring;
    }
    const JwtKey* key = set.find(kid, *a);
    if (key == nullptr) {
        return JwtError::UnknownKey;
    }
    // The signing input is the token's own ASCII text up to the second '.', not a re-encoding.
    std::string_view signing = token.substr(0, d2);
    bool good =
        jwtAlgIsHmac(*a) ? verifyHmac(*key, *a, signing, sig) : verifyPkey(*key, *a, signing, sig);
    if (!good) {
        return JwtError::Signature;
    }
    // Only a signed payload is parsed: the JSON parser sees no unauthenticated claims text
    // (so a token with a bad signature is refused as Signature even if its payload is junk).
    Json payload = parseObject(payload_text, true);
    if (!payload) {
        return JwtError::Malformed;
    }
    for (const char* date : {"exp", "nbf", "iat"}) {
        const cJSON* v = member(payload.get(), date);
        if (v != nullptr && (!cJSON_IsNumber(v) || !std::isfinite(v->valuedouble))) {
            return JwtError::BadClaim;
        }
    }
    // In double, as NumericDate may have a fraction; no int64 overflow with any leeway.
    const double now = static_cast<double>(now_s);
    const double leeway = static_cast<double>(policy.leeway_s);
    const cJSON* exp = member(payload.get(), "exp");
    if (exp != nullptr) {
        if (now >= exp->valuedouble + leeway) {  // RFC 7519 4.1.4: "on or after" exp
            return JwtError::Expired;
        }
    } else if (policy.require_exp) {
        return JwtError::MissingExp;
    }
    const cJSON* nbf = member(payload.get(), "nbf");
    if (nbf != nullptr && now + leeway < nbf->valuedouble) {
        return JwtError::NotYetValid;
    }
    // iss and aud are only looked at when the policy checks them. Absent: Issuer / Audience;
    // present with a type RFC 7519 does not allow (iss not a string; aud neither a string nor
    // an array of strings): BadClaim, as for the dates.
    if (!policy.issuers.empty()) {
        const cJSON* iss = member(payload.get(), "iss");
        if (iss == nullptr) {
            return JwtError::Issuer;
        }
        if (!cJSON_IsString(iss)) {
            return JwtError::BadClaim;
        }
        if (std::find(policy.issuers.begin(), policy.issuers.end(), iss->valuestring) ==
            policy.issuers.end()) {
            return JwtError::Issuer;
        }
    }
    if (!policy.audiences.empty()) {
        const cJSON* aud = member(payload.get(), "aud");
        if (aud == nullptr) {
            return JwtError::Audience;
        }
        auto accepted = [&](const cJSON* v) {
            return std::find(policy.audiences.begin(), policy.audiences.end(), v->valuestring) !=
                   policy.audiences.end();
        };
        bool found = false;
        if (cJSON_IsString(aud)) {
            found = accepted(aud);
        } else if (cJSON_IsArray(aud)) {
            for (const cJSON* e = aud->child; e != nullptr; e = e->next) {
                if (!cJSON_IsString(e)) {
                    return JwtError::BadClaim;
                }
                found = found || accepted(e);
            }
        } else {
            return JwtError::BadClaim;
        }
        if (!found) {
            return JwtError::Audience;
        }
    }
    if (claims != nullptr) {
        claims->impl_ = std::make_unique<JwtClaims::Impl>();
        claims->impl_->payload = std::move(payload);
    }
    return JwtError::None;
}

}  // namespace photon::mod::auth
