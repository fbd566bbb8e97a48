// SPDX-License-Identifier: Apache-2.0
// JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515): strict parsing, keys (HMAC secrets,
// PEM public keys, JWKS documents), signature verification with OpenSSL and the registered
// claims. No I/O except the explicit file loaders; verification never allocates more than the
// decoded token needs and never throws.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace photon::mod::auth {

/// The algorithms a route may accept (RFC 7518 names; EdDSA = Ed25519, RFC 8037).
enum class JwtAlg : uint8_t {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA
};

/// Exact, case-sensitive ("none" and "hs256" are not algorithms).
std::optional<JwtAlg> jwtAlgFromName(std::string_view name);
std::string_view jwtAlgName(JwtAlg a);
inline bool jwtAlgIsHmac(JwtAlg a) { return a <= JwtAlg::HS512; }

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

/// One verification key.
struct JwtKey {
    enum class Kind : uint8_t { Hmac, Rsa, EcP256, EcP384, Ed25519 };
    Kind kind = Kind::Hmac;
    std::string kid;            // empty when the key has none
    std::optional<JwtAlg> alg;  // the JWK's "alg", when given: the only algorithm it serves
    std::string secret;         // Hmac: the raw key bytes
    std::unique_ptr<EVP_PKEY, PkeyFree> pkey;  // the others: the public key

    /// Whether this key may verify a token signed with `a`: the kind fits the algorithm family
    /// (HMAC only with a secret, RS/PS only RSA, ES256 only P-256, ES384 only P-384, EdDSA only
    /// Ed25519 — never an RSA public key used as an HMAC secret) and `alg`, when set, is `a`.
    bool fits(JwtAlg a) const;
};

/// The keys one auth instance verifies with. Immutable once built; any process.
class JwtKeySet {
public:
    /// An HMAC secret (raw bytes).
    static JwtKeySet fromSecret(std::string secret);
    /// A PEM public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"), or an X.509
    /// certificate whose public key is used. RSA keys under 2048 bits are refused.
    static core::Result<JwtKeySet> fromPem(std::string_view pem);
    static core::Result<JwtKeySet> fromPemFile(const std::string& path);
    /// A JWKS document (RFC 7517 {"keys": [...]}): RSA ("n","e"), EC P-256/P-384 ("crv","x","y")
    /// and OKP Ed25519 ("crv","x") keys; "oct" keys ("k") as HMAC secrets. Keys whose "use" is set
    /// and not "sig", or whose "kty"/"crv"/"alg" this build does not know, are skipped (counted in
    /// skipped()); a document with no usable key, or that is not valid JSON, is an error.
    static core::Result<JwtKeySet> fromJwks(std::string_view json);
    static core::Result<JwtKeySet> fromJwksFile(const std::string& path);

    /// The key for a token with header `kid` (empty = none given) and algorithm `alg`: with a
    /// kid, the key with that kid if it fits, else the single fitting key without a kid (a
    /// secret or PEM key); without a kid, the single key that fits. nullptr when none or
    /// several fit: a token must name its key when the set has more than one.
    const JwtKey* find(std::string_view kid, JwtAlg alg) const;

    /// Adds the keys of `other` (a PEM key or a JWKS document next to a secret).
    void merge(JwtKeySet&& other) {
        for (auto& k : other.keys_) {
            keys_.push_back(std::move(k));
        }
        skipped_ += other.skipped_;
    }

    size_t size() const { return keys_.size(); }
    size_t skipped() const { return skipped_; }
    const std::vector<JwtKey>& keys() const { return keys_; }

private:
    std::vector<JwtKey> keys_;
    size_t skipped_ = 0;
};

/// Why a token was refused; the text class goes into the 401/403 body (never the token).
enum class JwtError : uint8_t {
    None,
    Malformed,    // not three base64url parts, bad base64url, bad JSON, not an object
    TooLarge,     // longer than the configured limit
    Algorithm,    // alg missing, "none", not in the accepted list
    Header,       // crit present, or jku / x5u / jwk / x5c (keys from the token are never used)
    UnknownKey,   // no key fits kid + alg
    Signature,    // the signature does not verify
    Expired,      // exp + leeway <= now
    NotYetValid,  // nbf - leeway > now
    MissingExp,   // require_exp and no exp
    BadClaim,     // exp / nbf / iat not a number; iss / aud of the wrong type
    Issuer,       // iss not one of the accepted issuers
    Audience,     // aud does not contain an accepted audience
};
std::string_view jwtErrorText(JwtError e);  // "token expired", "invalid signature", ...

/// What verification checks besides the signature.
struct JwtPolicy {
    std::vector<JwtAlg> algorithms;  // accepted (authoritative: the token's alg must be one)
    int64_t leeway_s = 0;            // for exp and nbf
    bool require_exp = false;
    std::vector<std::string> issuers;    // empty = iss not checked; else iss must equal one
    std::vector<std::string> audiences;  // empty = aud not checked; else aud (string or array)
                                         // must contain one
    size_t max_size = 8192;              // bytes of the compact token
};

/// A verified token's payload (a parsed JSON object), for claim checks and forwarding.
class JwtClaims {
public:
    JwtClaims();
    ~JwtClaims();
    JwtClaims(JwtClaims&&) noexcept;
    JwtClaims& operator=(JwtClaims&&) noexcept;

    /// The claim `name` as header-ready text: strings as they are, numbers as JSON numbers
    /// (integers without a fraction), true/false, arrays and objects as compact JSON. Empty
    /// optional when absent or null.
    std::optional<std::string> text(std::string_view name) const;
    bool has(std::string_view name) const;
    /// Whether claim `name` equals `value` (a string claim) or, for an array claim, contains
    /// it as a string element.
    bool matches(std::string_view name, std::string_view value) const;
    /// exp, when present as a number (seconds since the epoch).
    std::optional<int64_t> exp() const;

private:
    friend JwtError verifyJwt(std::string_view, const JwtKeySet&, const JwtPolicy&, int64_t,
                              JwtClaims*);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Verifies compact token `token` (no "Bearer " prefix) at `now_s` (seconds since the epoch):
/// size, structure, header (alg in policy.algorithms, no crit / jku / x5u / jwk / x5c), the key
/// (set.find(kid, alg)), the signature (constant-time for HMAC; ES signatures in JOSE R||S form,
/// PS with salt length = hash length), then exp / nbf / iss / aud. On None, `claims` (when not
/// null) holds the payload.
JwtError verifyJwt(std::string_view token, const JwtKeySet& set, const JwtPolicy& policy,
                   int64_t now_s, JwtClaims* claims);

/// base64url without padding (the encoding JWS uses; for tests and tools that mint tokens).
std::string base64urlEncode(std::string_view in);

/// Strict base64url (RFC 4648 §5) without padding: only [A-Za-z0-9_-], no '=', unused trailing
/// bits zero, length mod 4 != 1. Appends to `out`; false on any violation.
bool base64urlDecode(std::string_view in, std::string& out);

}  // namespace photon::mod::auth
