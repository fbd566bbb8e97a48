// SPDX-License-Identifier: Apache-2.0
// JWT verification with keys generated here: every algorithm, wrong keys and tampering, strict
// encodings, refused headers, key selection and confusion, the registered claims and their
// edges, claim texts, JWKS documents and PEM keys or certificates.
#include "modules/auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace photon::mod::auth {

// Failures print "token expired" rather than "1-byte object <07>" (found by ADL: not in the
// anonymous namespace).
[[maybe_unused]] static void PrintTo(JwtError e, std::ostream* os) { *os << jwtErrorText(e); }

namespace {

std::string b64url(std::string_view in) { return base64urlEncode(in); }

struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const int64_t kNow = 1'800'000'000;

const EVP_MD* mdOf(std::string_view alg) {
    if (alg == "EdDSA") {
        return nullptr;
    }
    return alg.ends_with("256") ? EVP_sha256() : alg.ends_with("384") ? EVP_sha384() : EVP_sha512();
}

std::string hmacSign(const std::string& signing, const EVP_MD* md, const std::string& secret) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
}

/// How an RSA signature is padded: PKCS#1 v1.5, or PSS with this salt length.
struct Padding {
    bool pss = false;
    int salt = RSA_PSS_SALTLEN_DIGEST;
};

/// The signature of `signing` as the key's algorithm makes it (DER for ECDSA).
std::string pkeySignRaw(const std::string& signing, EVP_PKEY* key, const EVP_MD* md, Padding pad) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    EXPECT_EQ(EVP_DigestSignInit(ctx, &pctx, md, nullptr, key), 1);
    if (pad.pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pad.salt);
    }
    size_t len = 0;
    auto data = reinterpret_cast<const unsigned char*>(signing.data());
    EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &len, data, signing.size()), 1);
    std::vector<unsigned char> sig(len);
    EXPECT_EQ(EVP_DigestSign(ctx, sig.data(), &len, data, signing.size()), 1);
    EVP_MD_CTX_free(ctx);
    return std::string(sig.begin(), sig.begin() + static_cast<long>(len));
}

/// A DER ECDSA signature in JOSE form: R || S, each `width` bytes.
std::string derToJose(const std::string& der, size_t width) {
    auto p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    EXPECT_NE(s, nullptr);
    std::string rs(2 * width, '\0');
    auto out = reinterpret_cast<unsigned char*>(rs.data());
    BN_bn2binpad(ECDSA_SIG_get0_r(s), out, static_cast<int>(width));
    BN_bn2binpad(ECDSA_SIG_get0_s(s), out + width, static_cast<int>(width));
    ECDSA_SIG_free(s);
    return rs;
}

/// The JOSE signature for `alg` ("HS256" ... "EdDSA") over `signing`.
std::string sign(const std::string& alg, const std::string& signing, EVP_PKEY* key,
                 const std::string& secret = kSecret, Padding pad = {}) {
    if (alg[0] == 'H') {
        return hmacSign(signing, mdOf(alg), secret);
    }
    if (alg[0] == 'P') {
        pad.pss = true;
    }
    std::string sig = pkeySignRaw(signing, key, mdOf(alg), pad);
    if (alg[0] == 'E' && alg != "EdDSA") {
        return derToJose(sig, alg == "ES256" ? 32 : 48);
    }
    return sig;
}

/// A compact token with exactly this header and payload JSON, signed for `alg`.
std::string rawToken(const std::string& alg, const std::string& header, const std::string& payload,
                     EVP_PKEY* key = nullptr, const std::string& secret = kSecret) {
    std::string signing = b64url(header) + "." + b64url(payload);
    return signing + "." + b64url(sign(alg, signing, key, secret));
}

/// {"alg":"<alg>"<extra_header>} over `payload`.
std::string token(const std::string& alg, const std::string& payload, EVP_PKEY* key = nullptr,
                  const std::string& extra_header = "") {
    return rawToken(alg, R"({"alg":")" + alg + "\"" + extra_header + "}", payload, key);
}

/// A token whose parts are given as text (not re-encoded), signed over exactly that text.
std::string signedParts(const std::string& alg, const std::string& header_b64,
                        const std::string& payload_b64, EVP_PKEY* key = nullptr) {
    std::string signing = header_b64 + "." + payload_b64;
    return signing + "." + b64url(sign(alg, signing, key));
}

std::string publicPem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    return pem;
}

std::string bnBytes(EVP_PKEY* k, const char* param, int width = 0) {
    BIGNUM* bn = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    std::string out(static_cast<size_t>(width > 0 ? width : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
}

/// The public JWK of `k`, with `extra` members (",\"kid\":\"a\"") appended.
std::string jwkOf(EVP_PKEY* k, const std::string& extra = "") {
    std::string json;
    switch (EVP_PKEY_get_base_id(k)) {
        case EVP_PKEY_RSA:
            json = R"({"kty":"RSA","n":")" + b64url(bnBytes(k, OSSL_PKEY_PARAM_RSA_N)) +
                   R"(","e":")" + b64url(bnBytes(k, OSSL_PKEY_PARAM_RSA_E)) + "\"";
            break;
        case EVP_PKEY_EC: {
            const int w = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
            json = R"({"kty":"EC","crv":")" + std::string(w == 32 ? "P-256" : "P-384") +
                   R"(","x":")" + b64url(bnBytes(k, OSSL_PKEY_PARAM_EC_PUB_X, w)) + R"(","y":")" +
                   b64url(bnBytes(k, OSSL_PKEY_PARAM_EC_PUB_Y, w)) + "\"";
            break;
        }
        default: {
            unsigned char raw[32];
            size_t len = sizeof raw;
            EXPECT_EQ(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
            json = R"({"kty":"OKP","crv":"Ed25519","x":")" +
                   b64url(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"";
        }
    }
    return json + extra + "}";
}

JwtPolicy policy(std::initializer_list<JwtAlg> algs) {
    JwtPolicy p;
    p.algorithms = algs;
    return p;
}

JwtPolicy allAlgorithms() {
    JwtPolicy p;
    for (int a = 0; a <= static_cast<int>(JwtAlg::EdDSA); ++a) {
        p.algorithms.push_back(static_cast<JwtAlg>(a));
    }
    return p;
}

class JwtTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
        rsa2_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
        p256_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
        p256b_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
        p384_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
        p384b_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
        ed_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
        ed2_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
        ASSERT_TRUE(rsa_ && rsa2_ && p256_ && p256b_ && p384_ && p384b_ && ed_ && ed2_);
    }
    static void TearDownTestSuite() {
        for (Key* k : {&rsa_, &rsa2_, &p256_, &p256b_, &p384_, &p384b_, &ed_, &ed2_}) {
            k->reset();
        }
    }
    static JwtKeySet pemSet(EVP_PKEY* k) {
        auto s = JwtKeySet::fromPem(publicPem(k));
        EXPECT_TRUE(s.ok()) << s.error().msg;
        return s.ok() ? std::move(s.value()) : JwtKeySet{};
    }
    static JwtKeySet jwks(const std::string& doc) {
        auto s = JwtKeySet::fromJwks(doc);
        EXPECT_TRUE(s.ok()) << s.error().msg;
        return s.ok() ? std::move(s.value()) : JwtKeySet{};
    }
    static Key rsa_, rsa2_, p256_, p256b_, p384_, p384b_, ed_, ed2_;
};
Key JwtTest::rsa_, JwtTest::rsa2_, JwtTest::p256_, JwtTest::p256b_, JwtTest::p384_, JwtTest::p384b_,
    JwtTest::ed_, JwtTest::ed2_;

struct AsymCase {
    const char* name;
    JwtAlg alg;
    EVP_PKEY* key;
    EVP_PKEY* other;  // same type, different key
};

TEST_F(JwtTest, EveryAlgorithmVerifiesAndAnyChangeOrOtherKeyFails) {
    const std::string payload = R"({"sub":"u","exp":1800000060})";
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtKeySet other_hmac = JwtKeySet::fromSecret(kSecret + "x");
    for (auto [name, alg] : {std::pair{"HS256", JwtAlg::HS256}, std::pair{"HS384", JwtAlg::HS384},
                             std::pair{"HS512", JwtAlg::HS512}}) {
        std::string t = token(name, payload);
        EXPECT_EQ(verifyJwt(t, hmac, policy({alg}), kNow, nullptr), JwtError::None) << name;
        EXPECT_EQ(verifyJwt(t, other_hmac, policy({alg}), kNow, nullptr), JwtError::Signature)
            << name;
        // The MAC must be exactly the digest: not truncated, not followed by more bytes.
        const std::string signing = t.substr(0, t.rfind('.'));
        const std::string mac = hmacSign(signing, mdOf(name), kSecret);
        for (const std::string& sig : {mac.substr(0, 16), mac.substr(0, mac.size() - 1),
                                       mac + std::string(1, '\0'), mac + mac, std::string()}) {
            EXPECT_EQ(verifyJwt(signing + "." + b64url(sig), hmac, policy({alg}), kNow, nullptr),
                      sig.empty() ? JwtError::Malformed : JwtError::Signature)
                << name << " " << sig.size();
        }
    }
    for (AsymCase c : {AsymCase{"RS256", JwtAlg::RS256, rsa_.get(), rsa2_.get()},
                       AsymCase{"RS384", JwtAlg::RS384, rsa_.get(), rsa2_.get()},
                       AsymCase{"RS512", JwtAlg::RS512, rsa_.get(), rsa2_.get()},
                       AsymCase{"PS256", JwtAlg::PS256, rsa_.get(), rsa2_.get()},
                       AsymCase{"PS384", JwtAlg::PS384, rsa_.get(), rsa2_.get()},
                       AsymCase{"PS512", JwtAlg::PS512, rsa_.get(), rsa2_.get()},
                       AsymCase{"ES256", JwtAlg::ES256, p256_.get(), p256b_.get()},
                       AsymCase{"ES384", JwtAlg::ES384, p384_.get(), p384b_.get()},
                       AsymCase{"EdDSA", JwtAlg::EdDSA, ed_.get(), ed2_.get()}}) {
        SCOPED_TRACE(c.name);
        JwtKeySet set = pemSet(c.key);
        const JwtPolicy p = policy({c.alg});
        std::string t = token(c.name, payload, c.key);
        EXPECT_EQ(verifyJwt(t, set, p, kNow, nullptr), JwtError::None);
        // Signed by another key of the same type.
        EXPECT_EQ(verifyJwt(token(c.name, payload, c.other), set, p, kNow, nullptr),
                  JwtError::Signature);
        // One changed character in the signature.
        std::string bad = t;
        bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
        EXPECT_EQ(verifyJwt(bad, set, p, kNow, nullptr), JwtError::Signature);
        // The signature of this token on another header or payload.
        const size_t d1 = t.find('.');
        const size_t d2 = t.rfind('.');
        const std::string sig = t.substr(d2);
        std::string other_payload = b64url(R"({"sub":"admin","exp":1800000060})");
        EXPECT_EQ(verifyJwt(t.substr(0, d1 + 1) + other_payload + sig, set, p, kNow, nullptr),
                  JwtError::Signature);
        std::string other_header =
            b64url(R"({"alg":")" + std::string(c.name) + R"(","typ":"JWT"})");
        EXPECT_EQ(verifyJwt(other_header + t.substr(d1, d2 - d1) + sig, set, p, kNow, nullptr),
                  JwtError::Signature);
        // One changed character in the payload text: the signature fails before the (now
        // invalid) JSON is looked at.
        std::string flipped = t;
        flipped[d1 + 1] = flipped[d1 + 1] == 'e' ? 'f' : 'e';
        EXPECT_EQ(verifyJwt(flipped, set, p, kNow, nullptr), JwtError::Signature);
    }
}

TEST_F(JwtTest, TheAlgorithmListIsAuthoritative) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    const JwtPolicy hs256 = policy({JwtAlg::HS256});
    EXPECT_EQ(verifyJwt(token("HS384", "{}"), hmac, hs256, kNow, nullptr), JwtError::Algorithm);
    EXPECT_EQ(verifyJwt(token("HS256", "{}"), hmac, JwtPolicy{}, kNow, nullptr),
              JwtError::Algorithm);
    // An unsigned token has an empty third part: not even a token.
    std::string none = b64url(R"({"alg":"none"})") + "." + b64url("{}") + ".";
    EXPECT_EQ(verifyJwt(none, hmac, hs256, kNow, nullptr), JwtError::Malformed);
    // Headers that are not a usable algorithm name, each with an HS256 MAC that would verify.
    for (const char* header :
         {R"({"alg":"none"})", R"({"alg":"None"})", R"({"alg":"hs256"})", R"({"alg":"HS256 "})",
          R"({"alg":" HS256"})", R"({"alg":256})", R"({"alg":null})", R"({"alg":["HS256"]})",
          R"({"typ":"JWT"})", R"({})"}) {
        EXPECT_EQ(verifyJwt(rawToken("HS256", header, "{}"), hmac, hs256, kNow, nullptr),
                  JwtError::Algorithm)
            << header;
    }
    EXPECT_FALSE(jwtAlgFromName("none"));
    EXPECT_FALSE(jwtAlgFromName("hs256"));
    EXPECT_FALSE(jwtAlgFromName("EDDSA"));
    for (int a = 0; a <= static_cast<int>(JwtAlg::EdDSA); ++a) {
        EXPECT_EQ(jwtAlgFromName(jwtAlgName(static_cast<JwtAlg>(a))), static_cast<JwtAlg>(a));
    }
}

TEST_F(JwtTest, HmacTokenAgainstAnRsaKeyIsKeyConfusion) {
    // The attacker signs HS256 with the public key's PEM text as the secret.
    std::string pem = publicPem(rsa_.get());
    std::string signing = b64url(R"({"alg":"HS256"})") + "." + b64url(R"({"sub":"admin"})");
    std::string t = signing + "." + b64url(hmacSign(signing, EVP_sha256(), pem));
    JwtKeySet set = pemSet(rsa_.get());
    EXPECT_EQ(verifyJwt(t, set, policy({JwtAlg::HS256, JwtAlg::RS256}), kNow, nullptr),
              JwtError::UnknownKey);
    // The same through a JWKS document holding only the RSA key.
    JwtKeySet from_jwks = jwks(R"({"keys":[)" + jwkOf(rsa_.get()) + "]}");
    EXPECT_EQ(verifyJwt(t, from_jwks, policy({JwtAlg::HS256, JwtAlg::RS256}), kNow, nullptr),
              JwtError::UnknownKey);
    // An ES256 token against an RSA key, an ES384 token against a P-256 key, an EdDSA token
    // against a P-256 key, an RS256 token against an HMAC secret.
    EXPECT_EQ(
        verifyJwt(token("ES256", "{}", p256_.get()), set, policy({JwtAlg::ES256}), kNow, nullptr),
        JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("ES384", "{}", p384_.get()), pemSet(p256_.get()),
                        policy({JwtAlg::ES384}), kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("EdDSA", "{}", ed_.get()), pemSet(p256_.get()),
                        policy({JwtAlg::EdDSA}), kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get()), JwtKeySet::fromSecret(kSecret),
                        policy({JwtAlg::RS256}), kNow, nullptr),
              JwtError::UnknownKey);
}

TEST_F(JwtTest, HeadersThatBringKeysOrExtensionsAreRefused) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    const JwtPolicy p = policy({JwtAlg::HS256});
    for (const char* extra :
         {R"(,"crit":["exp"])", R"(,"crit":[])", R"(,"jku":"https://evil.test/")",
          R"(,"jwk":{"kty":"oct","k":"AA"})", R"(,"x5u":"https://evil.test")", R"(,"x5c":["MIIB"])",
          R"(,"jwk":null)"}) {
        EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, extra), hmac, p, kNow, nullptr),
                  JwtError::Header)
            << extra;
    }
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"kid":7)"), hmac, p, kNow, nullptr),
              JwtError::Malformed);
    // typ and unknown members are ignored.
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"typ":"at+jwt","x":[1])"), hmac, p, kNow,
                        nullptr),
              JwtError::None);
}

TEST_F(JwtTest, StrictBase64url) {
    std::string out;
    EXPECT_TRUE(base64urlDecode("YWJj", out));
    EXPECT_EQ(out, "abc");
    out.clear();
    EXPECT_TRUE(base64urlDecode("YWI", out));
    EXPECT_EQ(out, "ab");
    out.clear();
    EXPECT_TRUE(base64urlDecode("-_8", out));
    EXPECT_EQ(out, "\xfb\xff");
    out = "x";
    EXPECT_TRUE(base64urlDecode("", out));
    EXPECT_EQ(out, "x");  // appends
    // Padding, the other alphabet, whitespace, impossible lengths, and non-zero trailing bits
    // ("YWJ" and "YWK" would also decode to "ab": only "YWI" is accepted).
    for (const char* bad : {"YWI=", "YWJj====", "YW+j", "YW/j", "YW j", "YWJj\n", "\tYWJj", "Y",
                            "YWJjZ", "YWJ", "YWK", "YR"}) {
        out.clear();
        EXPECT_FALSE(base64urlDecode(bad, out)) << bad;
    }
    EXPECT_FALSE(base64urlDecode(std::string_view("YW\0j", 4), out));
    out.clear();
    EXPECT_TRUE(base64urlDecode("YQ", out));  // 'a': the four unused bits are zero
    EXPECT_EQ(out, "a");
    // Round trip of every byte value.
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all.push_back(static_cast<char>(i));
    }
    for (size_t n = 0; n <= all.size(); n += 37) {
        out.clear();
        ASSERT_TRUE(base64urlDecode(base64urlEncode(all.substr(0, n)), out)) << n;
        EXPECT_EQ(out, all.substr(0, n));
    }
}

TEST_F(JwtTest, TokensMustUseStrictBase64urlEvenWhenSigned) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    const JwtPolicy p = policy({JwtAlg::HS256});
    const std::string header = b64url(R"({"alg":"HS256"})");
    // {"a":"~~~"} encodes with '-', {"s":"???"} with '_'; the standard alphabet has '+', '/'.
    const std::string dash = b64url(R"({"a":"~~~"})");
    const std::string under = b64url(R"({"s":"???"})");
    ASSERT_EQ(dash, "eyJhIjoifn5-In0");
    ASSERT_EQ(under, "eyJzIjoiPz8_In0");
    EXPECT_EQ(verifyJwt(signedParts("HS256", header, dash), hmac, p, kNow, nullptr),
              JwtError::None);
    // Each variant correctly signed over its own text: the encoding itself is refused.
    for (const std::string& payload :
         {std::string("eyJhIjoifn5+In0"), std::string("eyJzIjoiPz8/In0"),
          std::string("eyJhIjoifn5-In0="), std::string("eyJhIjoi fn5-In0"),
          std::string("eyJhIjoifn5-In1")}) {  // "In1": non-zero unused bits
        EXPECT_EQ(verifyJwt(signedParts("HS256", header, payload), hmac, p, kNow, nullptr),
                  JwtError::Malformed)
            << payload;
    }
    const std::string padded_header = b64url(R"({"alg":"HS256" })") + "==";
    EXPECT_EQ(verifyJwt(signedParts("HS256", padded_header, dash), hmac, p, kNow, nullptr),
              JwtError::Malformed);
    std::string t = token("HS256", "{}");
    EXPECT_EQ(verifyJwt(t + "=", hmac, p, kNow, nullptr), JwtError::Malformed);
}

TEST_F(JwtTest, TokenStructure) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    std::string t = token("HS256", "{}");
    const size_t d1 = t.find('.');
    const size_t d2 = t.rfind('.');
    for (const std::string& bad : {t + ".x", t + ".", std::string("a.b"), std::string(""),
                                   std::string(".."), t.substr(0, d2 + 1), "." + t.substr(d1 + 1),
                                   t.substr(0, d1 + 1) + t.substr(d2), "Bearer " + t}) {
        EXPECT_EQ(verifyJwt(bad, hmac, p, kNow, nullptr), JwtError::Malformed) << bad;
    }
    // The size limit comes first, before any parsing.
    p.max_size = t.size();
    EXPECT_EQ(verifyJwt(t, hmac, p, kNow, nullptr), JwtError::None);
    p.max_size = t.size() - 1;
    EXPECT_EQ(verifyJwt(t, hmac, p, kNow, nullptr), JwtError::TooLarge);
    EXPECT_EQ(verifyJwt(std::string(9000, '.'), hmac, policy({JwtAlg::HS256}), kNow, nullptr),
              JwtError::TooLarge);
}

TEST_F(JwtTest, StrictJson) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    const JwtPolicy p = policy({JwtAlg::HS256});
    // Payloads, each correctly signed: repeated names (also nested), not an object, trailing
    // bytes, bytes hidden behind a NUL, raw control characters, and \u0000 (which cJSON would
    // turn into a shorter string).
    const std::string payloads[] = {R"({"a":1,"a":2})",
                                    R"({"sub":"a","b":{"c":1,"c":1}})",
                                    R"({"b":[{"c":1,"c":1}]})",
                                    R"([1])",
                                    R"("text")",
                                    "",
                                    R"({"a":1}x)",
                                    R"({"a":1}{})",
                                    std::string("{\"a\":1}\0x", 9),
                                    "{\"a\":1}\x01",
                                    "\x01{\"a\":1}",
                                    "{\"sub\":\"a\x01\"}",
                                    "{\"sub\":\"a\nb\"}",
                                    R"({"sub":"admin\u0000x"})",
                                    R"({"iss\u0000x":"a"})",
                                    R"({"a":1)"};
    for (const std::string& payload : payloads) {
        EXPECT_EQ(verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr), JwtError::Malformed)
            << payload;
    }
    // The same in the header.
    for (const char* header :
         {R"({"alg":"HS256","alg":"HS256"})", R"({"alg":"none","alg":"HS256"})",
          "{\"alg\":\"HS256\"}\x01", R"({"alg":"HS256"} x)"}) {
        EXPECT_EQ(verifyJwt(rawToken("HS256", header, "{}"), hmac, p, kNow, nullptr),
                  JwtError::Malformed)
            << header;
    }
    // JSON whitespace around the value, an escaped backslash before "u0000", and other escapes
    // are fine.
    JwtClaims c;
    EXPECT_EQ(verifyJwt(token("HS256", " \t\r\n{\"sub\":\"a\\\\u0000\"} \n"), hmac, p, kNow, &c),
              JwtError::None);
    EXPECT_EQ(c.text("sub"), "a\\u0000");
    EXPECT_EQ(verifyJwt(token("HS256", R"({"sub":"\u00e9\n"})"), hmac, p, kNow, &c),
              JwtError::None);
    EXPECT_EQ(c.text("sub"), "\xc3\xa9\n");
}

TEST_F(JwtTest, TimeClaimsAndLeeway) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    auto at = [&](const std::string& payload) {
        return verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr);
    };
    EXPECT_EQ(at(R"({"exp":1800000000})"), JwtError::Expired);  // "on or after" exp
    EXPECT_EQ(at(R"({"exp":1800000001})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":1800000000.5})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":1799999999.5})"), JwtError::Expired);
    EXPECT_EQ(at(R"({"exp":0})"), JwtError::Expired);
    EXPECT_EQ(at(R"({"nbf":1800000001})"), JwtError::NotYetValid);
    EXPECT_EQ(at(R"({"nbf":1800000000})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":"1900000000"})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"nbf":null})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iat":true})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"exp":1e999})"), JwtError::BadClaim);   // not finite
    EXPECT_EQ(at(R"({"iat":1900000000})"), JwtError::None);  // iat is only type-checked
    EXPECT_EQ(at(R"({})"), JwtError::None);
    p.leeway_s = 1;
    EXPECT_EQ(at(R"({"exp":1800000000})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":1799999999})"), JwtError::Expired);
    EXPECT_EQ(at(R"({"nbf":1800000001})"), JwtError::None);
    EXPECT_EQ(at(R"({"nbf":1800000002})"), JwtError::NotYetValid);
    p.require_exp = true;
    EXPECT_EQ(at(R"({})"), JwtError::MissingExp);
    EXPECT_EQ(at(R"({"nbf":1700000000})"), JwtError::MissingExp);
    EXPECT_EQ(at(R"({"exp":1800000060})"), JwtError::None);
    // A far-away exp verifies and reads back clamped, never as an overflowed integer.
    JwtClaims c;
    ASSERT_EQ(verifyJwt(token("HS256", R"({"exp":1e300})"), hmac, p, kNow, &c), JwtError::None);
    EXPECT_EQ(c.exp(), int64_t{1} << 53);
}

TEST_F(JwtTest, IssuerAndAudience) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    auto at = [&](const std::string& payload) {
        return verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr);
    };
    // Unchecked when the policy lists none, whatever their type.
    EXPECT_EQ(at(R"({"iss":7,"aud":{"x":1}})"), JwtError::None);
    p.issuers = {"https://a.test/", "https://b.test/"};
    p.audiences = {"api", "admin"};
    EXPECT_EQ(at(R"({"iss":"https://b.test/","aud":"api"})"), JwtError::None);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":"admin"})"), JwtError::None);
    EXPECT_EQ(at(R"({"iss":"https://b.test/","aud":["web","api"]})"), JwtError::None);
    EXPECT_EQ(at(R"({"iss":"https://c.test/","aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"iss":"https://a.test","aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"iss":"HTTPS://A.TEST/","aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"iss":["https://a.test/"],"aud":"api"})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iss":null,"aud":"api"})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":["web"]})"), JwtError::Audience);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":[]})"), JwtError::Audience);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":"API"})"), JwtError::Audience);
    EXPECT_EQ(at(R"({"iss":"https://a.test/"})"), JwtError::Audience);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":7})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":["api",7]})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":[["api"]]})"), JwtError::BadClaim);
    // Time comes before issuer and audience.
    EXPECT_EQ(at(R"({"exp":1,"iss":"x","aud":"y"})"), JwtError::Expired);
}

TEST_F(JwtTest, ClaimsForForwarding) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    const JwtPolicy p = policy({JwtAlg::HS256});
    JwtClaims c;
    EXPECT_FALSE(c.has("sub"));
    EXPECT_EQ(c.text("sub"), std::nullopt);
    EXPECT_EQ(c.exp(), std::nullopt);
    ASSERT_EQ(verifyJwt(token("HS256", R"({"sub":"alice","n":42,"neg":-7,"mz":-0,"f":1.5,)"
                                       R"("tenth":0.1,"big":9007199254740992,"e":1e20,)"
                                       R"("ok":true,"no":false,"o":{"a":[1,2],"b":"x"},)"
                                       R"("roles":["admin","ops"],"z":null,"s":"",)"
                                       R"("exp":1900000000})"),
                        hmac, p, kNow, &c),
              JwtError::None);
    EXPECT_EQ(c.text("sub"), "alice");
    EXPECT_EQ(c.text("n"), "42");
    EXPECT_EQ(c.text("neg"), "-7");
    EXPECT_EQ(c.text("mz"), "0");
    EXPECT_EQ(c.text("f"), "1.5");
    EXPECT_EQ(c.text("tenth"), "0.1");  // the shortest form that reads back the same
    EXPECT_EQ(c.text("big"), "9007199254740992");
    EXPECT_EQ(c.text("e"), "1e+20");
    EXPECT_EQ(c.text("ok"), "true");
    EXPECT_EQ(c.text("no"), "false");
    EXPECT_EQ(c.text("o"), R"({"a":[1,2],"b":"x"})");
    EXPECT_EQ(c.text("roles"), R"(["admin","ops"])");
    EXPECT_EQ(c.text("s"), "");
    EXPECT_EQ(c.text("z"), std::nullopt);
    EXPECT_EQ(c.text("nope"), std::nullopt);
    EXPECT_EQ(c.text("SUB"), std::nullopt);  // names are case-sensitive
    EXPECT_TRUE(c.has("sub"));
    EXPECT_TRUE(c.has("no"));
    EXPECT_FALSE(c.has("z"));
    EXPECT_EQ(c.exp(), 1900000000);
    EXPECT_TRUE(c.matches("sub", "alice"));
    EXPECT_FALSE(c.matches("sub", "alic"));
    EXPECT_TRUE(c.matches("roles", "ops"));
    EXPECT_FALSE(c.matches("roles", "root"));
    EXPECT_FALSE(c.matches("n", "42"));  // only strings match
    EXPECT_FALSE(c.matches("nope", ""));

    // Moves carry the claims.
    JwtClaims moved(std::move(c));
    EXPECT_EQ(moved.text("sub"), "alice");
    JwtClaims assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.text("sub"), "alice");

    // A refused token leaves nothing behind, even in an object that held claims.
    EXPECT_EQ(verifyJwt(token("HS256", R"({"sub":"bob","exp":1})"), hmac, p, kNow, &assigned),
              JwtError::Expired);
    EXPECT_FALSE(assigned.has("sub"));
}

TEST_F(JwtTest, EcSignaturesMustBeFixedWidthRAndS) {
    JwtKeySet p256 = pemSet(p256_.get());
    JwtKeySet p384 = pemSet(p384_.get());
    const std::string signing = b64url(R"({"alg":"ES256"})") + "." + b64url(R"({"sub":"u"})");
    const std::string der = pkeySignRaw(signing, p256_.get(), EVP_sha256(), {});
    const std::string rs = derToJose(der, 32);
    const JwtPolicy es256 = policy({JwtAlg::ES256});
    EXPECT_EQ(verifyJwt(signing + "." + b64url(rs), p256, es256, kNow, nullptr), JwtError::None);
    // The DER form, a byte short, a byte long (leading zero), R and S swapped, zero R.
    std::string zero_r = std::string(32, '\0') + rs.substr(32);
    for (const std::string& sig :
         {der, rs.substr(1), std::string(1, '\0') + rs, rs + std::string(1, '\0'),
          rs.substr(32) + rs.substr(0, 32), zero_r, std::string(64, '\0')}) {
        EXPECT_EQ(verifyJwt(signing + "." + b64url(sig), p256, es256, kNow, nullptr),
                  JwtError::Signature)
            << sig.size();
    }
    // ES384 wants 96 bytes: a 64-byte signature (ES256-sized) is refused.
    const std::string signing384 = b64url(R"({"alg":"ES384"})") + "." + b64url("{}");
    const std::string rs384 = derToJose(pkeySignRaw(signing384, p384_.get(), EVP_sha384(), {}), 48);
    const JwtPolicy es384 = policy({JwtAlg::ES384});
    EXPECT_EQ(verifyJwt(signing384 + "." + b64url(rs384), p384, es384, kNow, nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(signing384 + "." + b64url(rs384.substr(0, 64)), p384, es384, kNow, nullptr),
              JwtError::Signature);
}

TEST_F(JwtTest, RsaPaddingsAreNotInterchangeable) {
    JwtKeySet set = pemSet(rsa_.get());
    const JwtPolicy all = allAlgorithms();
    auto with = [&](const std::string& alg, Padding pad, const EVP_MD* md) {
        std::string signing = b64url(R"({"alg":")" + alg + "\"}") + "." + b64url("{}");
        return verifyJwt(signing + "." + b64url(pkeySignRaw(signing, rsa_.get(), md, pad)), set,
                         all, kNow, nullptr);
    };
    EXPECT_EQ(with("PS256", {true, RSA_PSS_SALTLEN_DIGEST}, EVP_sha256()), JwtError::None);
    EXPECT_EQ(with("PS256", {true, 32}, EVP_sha256()), JwtError::None);
    // PSS with another salt length than the hash length (RFC 7518 3.5).
    EXPECT_EQ(with("PS256", {true, RSA_PSS_SALTLEN_MAX}, EVP_sha256()), JwtError::Signature);
    EXPECT_EQ(with("PS256", {true, 0}, EVP_sha256()), JwtError::Signature);
    EXPECT_EQ(with("PS384", {true, 32}, EVP_sha384()), JwtError::Signature);
    // PKCS#1 v1.5 under a PS name and PSS under an RS name; the right padding, wrong hash.
    EXPECT_EQ(with("PS256", {}, EVP_sha256()), JwtError::Signature);
    EXPECT_EQ(with("RS256", {true, RSA_PSS_SALTLEN_DIGEST}, EVP_sha256()), JwtError::Signature);
    EXPECT_EQ(with("RS256", {}, EVP_sha384()), JwtError::Signature);
    EXPECT_EQ(with("RS256", {}, EVP_sha256()), JwtError::None);
}

TEST_F(JwtTest, KeysFitTheirAlgorithmFamilyOnly) {
    JwtKeySet rsa = pemSet(rsa_.get());
    JwtKeySet p256 = pemSet(p256_.get());
    JwtKeySet p384 = pemSet(p384_.get());
    JwtKeySet ed = pemSet(ed_.get());
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    ASSERT_EQ(rsa.size(), 1u);
    EXPECT_EQ(rsa.keys()[0].kind, JwtKey::Kind::Rsa);
    EXPECT_EQ(p256.keys()[0].kind, JwtKey::Kind::EcP256);
    EXPECT_EQ(p384.keys()[0].kind, JwtKey::Kind::EcP384);
    EXPECT_EQ(ed.keys()[0].kind, JwtKey::Kind::Ed25519);
    EXPECT_EQ(hmac.keys()[0].kind, JwtKey::Kind::Hmac);
    const std::set<std::string_view> rsa_algs = {"RS256", "RS384", "RS512",
                                                 "PS256", "PS384", "PS512"};
    for (int i = 0; i <= static_cast<int>(JwtAlg::EdDSA); ++i) {
        const auto a = static_cast<JwtAlg>(i);
        const std::string_view n = jwtAlgName(a);
        EXPECT_EQ(rsa.keys()[0].fits(a), rsa_algs.count(n) == 1) << n;
        EXPECT_EQ(p256.keys()[0].fits(a), n == "ES256") << n;
        EXPECT_EQ(p384.keys()[0].fits(a), n == "ES384") << n;
        EXPECT_EQ(ed.keys()[0].fits(a), n == "EdDSA") << n;
        EXPECT_EQ(hmac.keys()[0].fits(a), jwtAlgIsHmac(a)) << n;
    }
    // An "alg" narrows a key to that one algorithm; an empty secret fits nothing.
    JwtKey k;
    k.secret = kSecret;
    k.alg = JwtAlg::HS384;
    EXPECT_FALSE(k.fits(JwtAlg::HS256));
    EXPECT_TRUE(k.fits(JwtAlg::HS384));
    EXPECT_FALSE(JwtKeySet::fromSecret("").keys()[0].fits(JwtAlg::HS256));

    // find: without a kid only a single fitting key; merged sets keep both.
    JwtKeySet merged = JwtKeySet::fromSecret(kSecret);
    merged.merge(pemSet(rsa_.get()));
    merged.merge(pemSet(rsa2_.get()));
    EXPECT_EQ(merged.size(), 3u);
    EXPECT_EQ(merged.find("", JwtAlg::HS256), &merged.keys()[0]);
    EXPECT_EQ(merged.find("", JwtAlg::RS256), nullptr);  // two RSA keys fit
    EXPECT_EQ(merged.find("", JwtAlg::ES256), nullptr);
    // No key has that kid: the single fitting key without one (the secret), never a guess
    // between the two RSA keys.
    EXPECT_EQ(merged.find("k1", JwtAlg::HS256), &merged.keys()[0]);
    EXPECT_EQ(merged.find("k1", JwtAlg::RS256), nullptr);
}

TEST_F(JwtTest, JwksSelectsByKid) {
    const std::string doc = R"({"keys":[)" + jwkOf(rsa_.get(), R"(,"kid":"r1","alg":"RS256")") +
                            "," + jwkOf(p256_.get(), R"(,"kid":"e1","alg":"ES256","use":"sig")") +
                            "," + jwkOf(p384_.get(), R"(,"kid":"e2","key_ops":["verify"])") + "," +
                            jwkOf(ed_.get(), R"(,"kid":"o1","alg":"EdDSA")") +
                            R"(,{"kty":"oct","kid":"h1","k":")" + b64url(kSecret) + R"("}]})";
    JwtKeySet set = jwks(doc);
    EXPECT_EQ(set.size(), 5u);
    EXPECT_EQ(set.skipped(), 0u);
    const JwtPolicy p = allAlgorithms();
    struct Case {
        const char* alg;
        EVP_PKEY* key;
        const char* kid;
    };
    for (Case c : {Case{"RS256", rsa_.get(), "r1"}, Case{"ES256", p256_.get(), "e1"},
                   Case{"ES384", p384_.get(), "e2"}, Case{"EdDSA", ed_.get(), "o1"},
                   Case{"HS256", nullptr, "h1"}}) {
        const std::string kid = std::string(R"(,"kid":")") + c.kid + "\"";
        EXPECT_EQ(verifyJwt(token(c.alg, "{}", c.key, kid), set, p, kNow, nullptr), JwtError::None)
            << c.alg;
        // Without a kid one key fits each of these algorithms.
        EXPECT_EQ(verifyJwt(token(c.alg, "{}", c.key), set, p, kNow, nullptr), JwtError::None)
            << c.alg;
    }
    // The JWK's "alg" binds: r1 is RS256 only.
    EXPECT_EQ(verifyJwt(token("PS256", "{}", rsa_.get(), R"(,"kid":"r1")"), set, p, kNow, nullptr),
              JwtError::UnknownKey);
    // The kid of an RSA key on an ES256 token; an unknown kid; a kid in another case.
    EXPECT_EQ(verifyJwt(token("ES256", "{}", p256_.get(), R"(,"kid":"r1")"), set, p, kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"zz")"), set, p, kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"R1")"), set, p, kNow, nullptr),
              JwtError::UnknownKey);
}

TEST_F(JwtTest, JwksWithSeveralFittingKeysNeedsAKid) {
    JwtKeySet set = jwks(R"({"keys":[)" + jwkOf(rsa_.get(), R"(,"kid":"r1")") + "," +
                         jwkOf(rsa2_.get(), R"(,"kid":"r2")") + "]}");
    ASSERT_EQ(set.size(), 2u);
    const JwtPolicy p = policy({JwtAlg::RS256});
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa2_.get()), set, p, kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa2_.get(), R"(,"kid":"r2")"), set, p, kNow, nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"r1")"), set, p, kNow, nullptr),
              JwtError::None);
    // The kid picks the key; the signature must then be that key's.
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa2_.get(), R"(,"kid":"r1")"), set, p, kNow, nullptr),
              JwtError::Signature);
}

TEST_F(JwtTest, JwksSkipsKeysItCannotUse) {
    Key small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
    ASSERT_TRUE(small);
    const std::string p256 = jwkOf(p256_.get());
    const std::string x = p256.substr(p256.find(R"("x":")") + 5, 43);  // 32 bytes
    const std::vector<std::string> unusable = {
        jwkOf(rsa_.get(), R"(,"use":"enc")"),
        jwkOf(rsa_.get(), R"(,"use":7)"),
        jwkOf(rsa_.get(), R"(,"alg":"RSA-OAEP")"),
        jwkOf(rsa_.get(), R"(,"alg":"rs256")"),
        jwkOf(rsa_.get(), R"(,"alg":"ES256")"),  // not an RSA algorithm
        jwkOf(rsa_.get(), R"(,"kid":5)"),
        jwkOf(small.get()),  // 1024 bits
        jwkOf(rsa_.get(), R"(,"kid":"a","kid":"b")"),
        R"({"kty":"RSA","n":")" + b64url(std::string(256, '\xc1')) + R"(","e":"AQ"})",    // e = 1
        R"({"kty":"RSA","n":")" + b64url(std::string(256, '\xc1')) + R"(","e":"AQAA"})",  // even
        R"({"kty":"RSA","n":"AQAB+","e":"AQAB"})",
        R"({"kty":"RSA","e":"AQAB"})",
        R"({"kty":"EC","crv":"P-521","x":")" + x + R"(","y":")" + x + "\"}",
        R"({"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + x + "\"}",  // not on the curve
        R"({"kty":"EC","crv":"P-384","x":")" + x + R"(","y":")" + x + "\"}",  // 32-byte x, y
        jwkOf(ed_.get(), R"(,"alg":"ES256")"),
        R"({"kty":"OKP","crv":"Ed448","x":")" + x + "\"}",
        R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})",
        R"({"kty":"oct","k":""})",
        R"({"kty":"oct","k":"c2VjcmV0","alg":"RS256"})",
        R"({"kty":"oct"})",
        R"({"kty":"rsa"})",
        R"({"n":"AQAB"})",
        R"("not a key")",
        R"(null)"};
    for (const std::string& jwk : unusable) {
        auto r = JwtKeySet::fromJwks(R"({"keys":[)" + jwk + "]}");
        EXPECT_FALSE(r.ok()) << jwk;
    }
    std::string doc = R"({"keys":[)";
    for (const std::string& jwk : unusable) {
        doc += jwk + ",";
    }
    doc += jwkOf(ed_.get(), R"(,"kid":"ok")") + "]}";
    JwtKeySet set = jwks(doc);
    EXPECT_EQ(set.size(), 1u);
    EXPECT_EQ(set.skipped(), unusable.size());
    EXPECT_EQ(
        verifyJwt(token("EdDSA", "{}", ed_.get()), set, policy({JwtAlg::EdDSA}), kNow, nullptr),
        JwtError::None);
}

TEST_F(JwtTest, BadJwksDocumentsAreErrors) {
    const std::string good = jwkOf(ed_.get());
    for (const std::string& doc :
         {std::string("not json"), std::string(""), std::string("[]"),
          std::string(R"({"keys":{}})"), std::string(R"({"keys":[]})"),
          std::string(R"({"Keys":[)") + good + "]}", std::string(R"({"keys":[)") + good + "]}x",
          std::string(R"({"keys":[)") + good + "]",
          std::string(R"({"keys":[],"keys":[)") + good + "]}"}) {
        auto r = JwtKeySet::fromJwks(doc);
        ASSERT_FALSE(r.ok()) << doc;
        EXPECT_FALSE(r.error().msg.empty());
    }
    EXPECT_TRUE(JwtKeySet::fromJwks(R"({"keys":[)" + good + R"(],"other":{"a":1}})").ok());
    auto missing = JwtKeySet::fromJwksFile("/nonexistent/jwks.json");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().msg.find("/nonexistent/jwks.json"), std::string::npos);
}

/// A self-signed certificate for `key`, as PEM.
std::string selfSignedPem(EVP_PKEY* key) {
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("idp.test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    EXPECT_GT(X509_sign(cert, key, EVP_sha256()), 0);
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    X509_free(cert);
    return pem;
}

TEST_F(JwtTest, PemKeysAndCertificates) {
    // A certificate's public key.
    auto cert = JwtKeySet::fromPem(selfSignedPem(p256_.get()));
    ASSERT_TRUE(cert.ok()) << cert.error().msg;
    EXPECT_EQ(verifyJwt(token("ES256", "{}", p256_.get()), cert.value(), policy({JwtAlg::ES256}),
                        kNow, nullptr),
              JwtError::None);
    // From a file.
    char path[] = "/tmp/photon_jwt_test_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string pem = publicPem(rsa_.get());
    ASSERT_EQ(write(fd, pem.data(), pem.size()), static_cast<ssize_t>(pem.size()));
    close(fd);
    auto file = JwtKeySet::fromPemFile(path);
    ASSERT_TRUE(file.ok()) << file.error().msg;
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get()), file.value(), policy({JwtAlg::RS256}),
                        kNow, nullptr),
              JwtError::None);
    unlink(path);
    auto missing = JwtKeySet::fromPemFile("/nonexistent/key.pem");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().msg.find("/nonexistent/key.pem"), std::string::npos);
    EXPECT_NE(missing.error().msg.find("No such file"), std::string::npos);
}

TEST_F(JwtTest, WeakOrForeignPemKeysAreRefused) {
    Key small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
    auto r = JwtKeySet::fromPem(publicPem(small.get()));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().msg.find("2048"), std::string::npos);
    Key p521(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"));
    Key ed448(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
    Key x25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
    for (EVP_PKEY* k : {p521.get(), ed448.get(), x25519.get()}) {
        const std::string pem = publicPem(k);
        auto f = JwtKeySet::fromPem(pem);
        ASSERT_FALSE(f.ok()) << EVP_PKEY_get0_type_name(k);
        EXPECT_FALSE(f.error().msg.empty());
        // Never the key material in the message.
        EXPECT_EQ(f.error().msg.find(pem.substr(27, 20)), std::string::npos);
    }
    // A private key, garbage inside the armour, no PEM at all.
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, p256_.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    const std::string priv(data, static_cast<size_t>(n));
    BIO_free(bio);
    auto pr = JwtKeySet::fromPem(priv);
    ASSERT_FALSE(pr.ok());
    EXPECT_EQ(pr.error().msg.find(priv.substr(30, 20)), std::string::npos);
    EXPECT_FALSE(
        JwtKeySet::fromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").ok());
    EXPECT_FALSE(JwtKeySet::fromPem("").ok());
    EXPECT_FALSE(JwtKeySet::fromPem(jwkOf(rsa_.get())).ok());
}

TEST_F(JwtTest, RefusalsLeaveNoOpenSslErrorsBehind) {
    // A worker's TLS code reads the thread's error queue (SSL_get_error): a refused token or a
    // key loaded on the second try must not leave errors there.
    ERR_clear_error();
    const JwtPolicy p = allAlgorithms();
    std::string rs = token("RS256", "{}", rsa2_.get());
    std::string es = token("ES256", "{}", p256b_.get());
    std::string ps = token("PS256", "{}", rsa2_.get());
    EXPECT_EQ(verifyJwt(rs, pemSet(rsa_.get()), p, kNow, nullptr), JwtError::Signature);
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_EQ(verifyJwt(ps, pemSet(rsa_.get()), p, kNow, nullptr), JwtError::Signature);
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_EQ(verifyJwt(es, pemSet(p256_.get()), p, kNow, nullptr), JwtError::Signature);
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_TRUE(JwtKeySet::fromPem(selfSignedPem(p256_.get())).ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_FALSE(JwtKeySet::fromPem("junk").ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
    const std::string p256 = jwkOf(p256_.get());
    const std::string x = p256.substr(p256.find(R"("x":")") + 5, 43);
    EXPECT_FALSE(JwtKeySet::fromJwks(R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x +
                                     R"(","y":")" + x + "\"}]}")
                     .ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(JwtErrorTextTest, ShortDistinctPhrases) {
    std::set<std::string_view> seen;
    for (int i = static_cast<int>(JwtError::Malformed); i <= static_cast<int>(JwtError::Audience);
         ++i) {
        std::string_view t = jwtErrorText(static_cast<JwtError>(i));
        EXPECT_FALSE(t.empty());
        EXPECT_TRUE(seen.insert(t).second) << t;
        for (char ch : t) {
            EXPECT_FALSE(ch >= 'A' && ch <= 'Z') << t;
        }
    }
    EXPECT_EQ(jwtErrorText(JwtError::Expired), "token expired");
    EXPECT_EQ(jwtErrorText(JwtError::Signature), "invalid signature");
}

TEST_F(JwtTest, AKidFallsBackToTheOneKeyWithoutAKid) {
    // Identity providers that always send a kid still sign with a configured PEM key or secret.
    JwtPolicy p = policy({JwtAlg::RS256, JwtAlg::HS256});
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"idp-2024")"),
                        pemSet(rsa_.get()), p, kNow, nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"kid":"any")"),
                        JwtKeySet::fromSecret(kSecret), p, kNow, nullptr),
              JwtError::None);
    // Two keys without a kid: no guessing.
    JwtKeySet two = JwtKeySet::fromSecret(kSecret);
    two.merge(JwtKeySet::fromSecret("another secret of enough length, 0123456789"));
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"kid":"any")"), two, p, kNow, nullptr),
              JwtError::UnknownKey);
}

}  // namespace
}  // namespace photon::mod::auth
