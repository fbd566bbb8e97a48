// SPDX-License-Identifier: Apache-2.0
// JWT verification with keys generated here: every algorithm, strict encodings, refused headers,
// key selection and confusion, the registered claims and their edges, JWKS documents.
#include "modules/auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <string>
#include <vector>

namespace photon::mod::auth {
namespace {

std::string b64url(std::string_view in) { return base64urlEncode(in); }

struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const int64_t kNow = 1'800'000'000;

std::string hmacSign(const std::string& signing, const EVP_MD* md, const std::string& secret) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
}

std::string pkeySign(const std::string& signing, EVP_PKEY* key, const EVP_MD* md, bool pss,
                     size_t ec_width) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    EVP_DigestSignInit(ctx, &pctx, md, nullptr, key);
    if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t len = 0;
    auto data = reinterpret_cast<const unsigned char*>(signing.data());
    EVP_DigestSign(ctx, nullptr, &len, data, signing.size());
    std::vector<unsigned char> sig(len);
    EVP_DigestSign(ctx, sig.data(), &len, data, signing.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    if (ec_width == 0) {
        return std::string(sig.begin(), sig.end());
    }
    const unsigned char* p = sig.data();
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string rs(2 * ec_width, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(s), reinterpret_cast<unsigned char*>(rs.data()),
                 static_cast<int>(ec_width));
    BN_bn2binpad(ECDSA_SIG_get0_s(s), reinterpret_cast<unsigned char*>(rs.data()) + ec_width,
                 static_cast<int>(ec_width));
    ECDSA_SIG_free(s);
    return rs;
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

/// "<b64(header)>.<b64(payload)>.<b64(sig)>" for `alg` signed with `key` or kSecret.
std::string token(const std::string& alg, const std::string& payload, EVP_PKEY* key = nullptr,
                  const std::string& extra_header = "") {
    std::string header = R"({"alg":")" + alg + "\"" + extra_header + "}";
    std::string signing = b64url(header) + "." + b64url(payload);
    std::string sig;
    if (alg[0] == 'H') {
        const EVP_MD* md = alg == "HS256" ? EVP_sha256() : alg == "HS384" ? EVP_sha384()
                                                                          : EVP_sha512();
        sig = hmacSign(signing, md, kSecret);
    } else {
        const EVP_MD* md = alg == "EdDSA"       ? nullptr
                           : alg.ends_with("256") ? EVP_sha256()
                           : alg.ends_with("384") ? EVP_sha384()
                                                  : EVP_sha512();
        size_t width = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 0;
        sig = pkeySign(signing, key, md, alg[0] == 'P', width);
    }
    return signing + "." + b64url(sig);
}

JwtPolicy policy(std::initializer_list<JwtAlg> algs) {
    JwtPolicy p;
    p.algorithms = algs;
    return p;
}

class JwtTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
        p256_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
        p384_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
        ed_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    }
    static JwtKeySet pemSet(EVP_PKEY* k) {
        auto s = JwtKeySet::fromPem(publicPem(k));
        EXPECT_TRUE(s.ok()) << s.error().msg;
        return std::move(s.value());
    }
    static Key rsa_, p256_, p384_, ed_;
};
Key JwtTest::rsa_, JwtTest::p256_, JwtTest::p384_, JwtTest::ed_;

TEST_F(JwtTest, EveryAlgorithmVerifies) {
    const std::string payload = R"({"sub":"u","exp":1800000060})";
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    for (auto [name, alg] : {std::pair{"HS256", JwtAlg::HS256}, std::pair{"HS384", JwtAlg::HS384},
                             std::pair{"HS512", JwtAlg::HS512}}) {
        EXPECT_EQ(verifyJwt(token(name, payload), hmac, policy({alg}), kNow, nullptr),
                  JwtError::None)
            << name;
    }
    struct Case {
        const char* name;
        JwtAlg alg;
        EVP_PKEY* key;
    };
    for (Case c : {Case{"RS256", JwtAlg::RS256, rsa_.get()}, Case{"RS384", JwtAlg::RS384, rsa_.get()},
                   Case{"RS512", JwtAlg::RS512, rsa_.get()}, Case{"PS256", JwtAlg::PS256, rsa_.get()},
                   Case{"PS384", JwtAlg::PS384, rsa_.get()}, Case{"PS512", JwtAlg::PS512, rsa_.get()},
                   Case{"ES256", JwtAlg::ES256, p256_.get()},
                   Case{"ES384", JwtAlg::ES384, p384_.get()},
                   Case{"EdDSA", JwtAlg::EdDSA, ed_.get()}}) {
        JwtKeySet set = pemSet(c.key);
        std::string t = token(c.name, payload, c.key);
        EXPECT_EQ(verifyJwt(t, set, policy({c.alg}), kNow, nullptr), JwtError::None) << c.name;
        // One flipped bit anywhere in the signature fails.
        std::string bad = t;
        bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
        EXPECT_EQ(verifyJwt(bad, set, policy({c.alg}), kNow, nullptr), JwtError::Signature)
            << c.name;
    }
}

TEST_F(JwtTest, TheAlgorithmListIsAuthoritative) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    std::string hs384 = token("HS384", "{}");
    EXPECT_EQ(verifyJwt(hs384, hmac, policy({JwtAlg::HS256}), kNow, nullptr), JwtError::Algorithm);
    std::string none = b64url(R"({"alg":"none"})") + "." + b64url("{}") + ".";
    EXPECT_EQ(verifyJwt(none, hmac, policy({JwtAlg::HS256}), kNow, nullptr), JwtError::Malformed);
    std::string none_sig = b64url(R"({"alg":"none"})") + "." + b64url("{}") + ".AAAA";
    EXPECT_EQ(verifyJwt(none_sig, hmac, policy({JwtAlg::HS256}), kNow, nullptr),
              JwtError::Algorithm);
    std::string lower = b64url(R"({"alg":"hs256"})") + "." + b64url("{}") + ".AAAA";
    EXPECT_EQ(verifyJwt(lower, hmac, policy({JwtAlg::HS256}), kNow, nullptr), JwtError::Algorithm);
    std::string missing = b64url(R"({"typ":"JWT"})") + "." + b64url("{}") + ".AAAA";
    EXPECT_EQ(verifyJwt(missing, hmac, policy({JwtAlg::HS256}), kNow, nullptr),
              JwtError::Algorithm);
}

TEST_F(JwtTest, HmacTokenAgainstAnRsaKeyIsKeyConfusion) {
    // The attacker signs HS256 with the public key's PEM text as the secret.
    std::string pem = publicPem(rsa_.get());
    std::string signing = b64url(R"({"alg":"HS256"})") + "." + b64url(R"({"sub":"admin"})");
    std::string t = signing + "." + b64url(hmacSign(signing, EVP_sha256(), pem));
    JwtKeySet set = pemSet(rsa_.get());
    EXPECT_EQ(verifyJwt(t, set, policy({JwtAlg::HS256, JwtAlg::RS256}), kNow, nullptr),
              JwtError::UnknownKey);
    // An ES256 token against an RSA key, and an ES384 token against a P-256 key.
    EXPECT_EQ(verifyJwt(token("ES256", "{}", p256_.get()), set, policy({JwtAlg::ES256}), kNow,
                        nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("ES384", "{}", p384_.get()), pemSet(p256_.get()),
                        policy({JwtAlg::ES384}), kNow, nullptr),
              JwtError::UnknownKey);
}

TEST_F(JwtTest, HeadersThatBringKeysOrExtensionsAreRefused) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    for (const char* extra : {R"(,"crit":["exp"])", R"(,"jku":"https://evil.test/")",
                              R"(,"jwk":{"kty":"oct","k":"AA"})", R"(,"x5u":"https://evil.test")",
                              R"(,"x5c":["MIIB"])"}) {
        EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, extra), hmac, policy({JwtAlg::HS256}),
                            kNow, nullptr),
                  JwtError::Header)
            << extra;
    }
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"kid":7)"), hmac,
                        policy({JwtAlg::HS256}), kNow, nullptr),
              JwtError::Malformed);
}

TEST_F(JwtTest, StrictEncodings) {
    std::string out;
    EXPECT_TRUE(base64urlDecode("YWJj", out));
    EXPECT_EQ(out, "abc");
    out.clear();
    EXPECT_TRUE(base64urlDecode("YWI", out));
    EXPECT_EQ(out, "ab");
    // Padding, the other alphabet, whitespace, impossible lengths, and non-zero trailing bits
    // ("YWJ" and "YWK" would also decode to "ab": only "YWI" is accepted).
    for (const char* bad : {"YWI=", "YW+j", "YW/j", "YW j", "Y", "YWJ", "YWK"}) {
        out.clear();
        EXPECT_FALSE(base64urlDecode(bad, out)) << bad;
    }
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    // Repeated names, not an object, trailing bytes, and bytes hidden behind a NUL.
    const std::string payloads[] = {R"({"a":1,"a":2})", R"([1])", R"({"a":1}x)",
                                    std::string("{\"a\":1}\0x", 9)};
    for (const std::string& payload : payloads) {
        EXPECT_EQ(verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr), JwtError::Malformed)
            << payload;
    }
    std::string t = token("HS256", "{}");
    EXPECT_EQ(verifyJwt(t + ".x", hmac, p, kNow, nullptr), JwtError::Malformed);
    EXPECT_EQ(verifyJwt("a.b", hmac, p, kNow, nullptr), JwtError::Malformed);
    EXPECT_EQ(verifyJwt(t.substr(0, t.rfind('.') + 1), hmac, p, kNow, nullptr),
              JwtError::Malformed);
    std::string padded = t + "=";
    EXPECT_EQ(verifyJwt(padded, hmac, p, kNow, nullptr), JwtError::Malformed);
    p.max_size = t.size() - 1;
    EXPECT_EQ(verifyJwt(t, hmac, p, kNow, nullptr), JwtError::TooLarge);
}

TEST_F(JwtTest, TimeClaimsAndLeeway) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    auto at = [&](const std::string& payload) {
        return verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr);
    };
    EXPECT_EQ(at(R"({"exp":1800000000})"), JwtError::Expired);  // "on or after" exp
    EXPECT_EQ(at(R"({"exp":1800000001})"), JwtError::None);
    EXPECT_EQ(at(R"({"nbf":1800000001})"), JwtError::NotYetValid);
    EXPECT_EQ(at(R"({"nbf":1800000000})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":"1900000000"})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({"iat":true})"), JwtError::BadClaim);
    EXPECT_EQ(at(R"({})"), JwtError::None);
    p.leeway_s = 1;
    EXPECT_EQ(at(R"({"exp":1800000000})"), JwtError::None);
    EXPECT_EQ(at(R"({"exp":1799999999})"), JwtError::Expired);
    EXPECT_EQ(at(R"({"nbf":1800000001})"), JwtError::None);
    EXPECT_EQ(at(R"({"nbf":1800000002})"), JwtError::NotYetValid);
    p.require_exp = true;
    EXPECT_EQ(at(R"({})"), JwtError::MissingExp);
}

TEST_F(JwtTest, IssuerAndAudience) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtPolicy p = policy({JwtAlg::HS256});
    p.issuers = {"https://a.test/", "https://b.test/"};
    p.audiences = {"api"};
    auto at = [&](const std::string& payload) {
        return verifyJwt(token("HS256", payload), hmac, p, kNow, nullptr);
    };
    EXPECT_EQ(at(R"({"iss":"https://b.test/","aud":"api"})"), JwtError::None);
    EXPECT_EQ(at(R"({"iss":"https://b.test/","aud":["web","api"]})"), JwtError::None);
    EXPECT_EQ(at(R"({"iss":"https://c.test/","aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"aud":"api"})"), JwtError::Issuer);
    EXPECT_EQ(at(R"({"iss":"https://a.test/","aud":["web"]})"), JwtError::Audience);
    EXPECT_EQ(at(R"({"iss":"https://a.test/"})"), JwtError::Audience);
}

TEST_F(JwtTest, ClaimsForForwarding) {
    JwtKeySet hmac = JwtKeySet::fromSecret(kSecret);
    JwtClaims c;
    ASSERT_EQ(verifyJwt(token("HS256", R"({"sub":"alice","n":42,"f":1.5,"ok":true,)"
                                       R"("o":{"a":[1,2]},"z":null,"exp":1900000000})"),
                        hmac, policy({JwtAlg::HS256}), kNow, &c),
              JwtError::None);
    EXPECT_EQ(c.text("sub"), "alice");
    EXPECT_EQ(c.text("n"), "42");
    EXPECT_EQ(c.text("f"), "1.5");
    EXPECT_EQ(c.text("ok"), "true");
    EXPECT_EQ(c.text("o"), R"({"a":[1,2]})");
    EXPECT_EQ(c.text("z"), std::nullopt);
    EXPECT_EQ(c.text("nope"), std::nullopt);
    EXPECT_TRUE(c.has("sub"));
    EXPECT_FALSE(c.has("z"));
    EXPECT_EQ(c.exp(), 1900000000);
}

TEST_F(JwtTest, JwksSelectsByKidAndSkipsWhatItCannotUse) {
    auto jwkOf = [](EVP_PKEY* k, const std::string& kid, const std::string& alg) {
        std::string json = R"({"kid":")" + kid + R"(","alg":")" + alg + "\"";
        if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
            BIGNUM* n = nullptr;
            BIGNUM* e = nullptr;
            EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
            EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
            std::string nb(static_cast<size_t>(BN_num_bytes(n)), '\0');
            std::string eb(static_cast<size_t>(BN_num_bytes(e)), '\0');
            BN_bn2bin(n, reinterpret_cast<unsigned char*>(nb.data()));
            BN_bn2bin(e, reinterpret_cast<unsigned char*>(eb.data()));
            BN_free(n);
            BN_free(e);
            json += R"(,"kty":"RSA","n":")" + b64url(nb) + R"(","e":")" + b64url(eb) + "\"";
        } else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
            unsigned char pt[65];
            size_t len = 0;
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len);
            json += R"(,"kty":"EC","crv":"P-256","x":")" +
                    b64url(std::string_view(reinterpret_cast<char*>(pt) + 1, 32)) +
                    R"(","y":")" + b64url(std::string_view(reinterpret_cast<char*>(pt) + 33, 32)) +
                    "\"";
        } else {
            unsigned char raw[32];
            size_t len = sizeof raw;
            EVP_PKEY_get_raw_public_key(k, raw, &len);
            json += R"(,"kty":"OKP","crv":"Ed25519","x":")" +
                    b64url(std::string_view(reinterpret_cast<char*>(raw), 32)) + "\"";
        }
        return json + "}";
    };
    std::string doc = R"({"keys":[)" + jwkOf(rsa_.get(), "r1", "RS256") + "," +
                      jwkOf(p256_.get(), "e1", "ES256") + "," + jwkOf(ed_.get(), "o1", "EdDSA") +
                      R"(,{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"})" +
                      R"(,{"kty":"oct","kid":"h1","k":")" + b64url(kSecret) + R"("}]})";
    auto set = JwtKeySet::fromJwks(doc);
    ASSERT_TRUE(set.ok()) << set.error().msg;
    EXPECT_EQ(set.value().size(), 4u);
    EXPECT_EQ(set.value().skipped(), 1u);
    JwtPolicy p = policy({JwtAlg::RS256, JwtAlg::ES256, JwtAlg::EdDSA, JwtAlg::HS256});
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"r1")"), set.value(), p, kNow,
                        nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(token("ES256", "{}", p256_.get(), R"(,"kid":"e1")"), set.value(), p,
                        kNow, nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(token("EdDSA", "{}", ed_.get(), R"(,"kid":"o1")"), set.value(), p, kNow,
                        nullptr),
              JwtError::None);
    EXPECT_EQ(verifyJwt(token("HS256", "{}", nullptr, R"(,"kid":"h1")"), set.value(), p, kNow,
                        nullptr),
              JwtError::None);
    // The kid of an RSA key on an ES256 token; an unknown kid; no kid (one key fits each).
    EXPECT_EQ(verifyJwt(token("ES256", "{}", p256_.get(), R"(,"kid":"r1")"), set.value(), p,
                        kNow, nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get(), R"(,"kid":"zz")"), set.value(), p, kNow,
                        nullptr),
              JwtError::UnknownKey);
    EXPECT_EQ(verifyJwt(token("RS256", "{}", rsa_.get()), set.value(), p, kNow, nullptr),
              JwtError::None);

    EXPECT_FALSE(JwtKeySet::fromJwks("not json").ok());
    EXPECT_FALSE(JwtKeySet::fromJwks(R"({"keys":{}})").ok());
    EXPECT_FALSE(JwtKeySet::fromJwks(R"({"keys":[{"kty":"RSA","use":"enc"}]})").ok());
}

TEST_F(JwtTest, WeakOrForeignPemKeysAreRefused) {
    Key small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
    auto r = JwtKeySet::fromPem(publicPem(small.get()));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().msg.find("2048"), std::string::npos);
    EXPECT_FALSE(JwtKeySet::fromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                     .ok());
    auto missing = JwtKeySet::fromPemFile("/nonexistent/key.pem");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().msg.find("/nonexistent/key.pem"), std::string::npos);
}

}  // namespace
}  // namespace photon::mod::auth
