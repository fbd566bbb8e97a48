// SPDX-License-Identifier: Apache-2.0
// Authentication in the Access phase: JWT (Bearer), API keys and Basic, with the worker's
// verified-credential cache, forwarded claims and consumers, and RFC 6750 / 7617 challenges.
#include "modules/auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "core/http_parser.h"
#include "core/log.h"
#include "shm/clock.h"
#include "worker/query.h"

namespace photon::mod::auth {

namespace {

using worker::Request;
using worker::Verdict;

/// What the HeaderFilter adds to a refusal: the challenge.
struct AuthState {
    std::string_view challenge;  // WWW-Authenticate value (static or instance text)
};

int64_t wallSeconds() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec);
}

/// Refuses with `status` and remembers the challenge for the HeaderFilter handler.
/// The metrics' reason (1-based index into mod::metrics::kAuthReasons) for a refusal.
uint8_t reasonOf(int status, std::string_view why, std::string_view challenge) {
    size_t i = status == 400                                   ? 6   // ambiguous_credentials
               : status == 403                                 ? 3   // insufficient_scope
               : why == "missing credentials"                  ? 0
               : why == "invalid API key"                      ? 4
               : why == "invalid credentials"                  ? 5
               : challenge.find("token expired") != std::string_view::npos ? 2
                                                               : 1;  // invalid_token
    return static_cast<uint8_t>(i + 1);
}

Verdict refuse(Request& req, const AuthConf& c, int status, std::string_view why,
               std::string_view challenge) {
    req.refusal_reason = reasonOf(status, why, challenge);
    if (!challenge.empty()) {
        void* mem = req.alloc(sizeof(AuthState));
        if (mem != nullptr) {
            req.slot(c.slot) = new (mem) AuthState{challenge};
        }
    }
    return req.fail(status, why);
}

// The challenges and reasons (static text: they outlive every request).
constexpr std::string_view kBearer = "Bearer";
constexpr std::string_view kBearerInvalidRequest = "Bearer error=\"invalid_request\"";
constexpr std::string_view kBearerScope = "Bearer error=\"insufficient_scope\"";
constexpr std::string_view kApiKey = "ApiKey";

std::string_view bearerInvalid(JwtError e) {
    switch (e) {
        case JwtError::Expired:
            return "Bearer error=\"invalid_token\", error_description=\"token expired\"";
        case JwtError::NotYetValid:
            return "Bearer error=\"invalid_token\", error_description=\"token not yet valid\"";
        default:
            return "Bearer error=\"invalid_token\"";
    }
}

std::string_view jwtReason(JwtError e) {
    switch (e) {
        case JwtError::Malformed:
            return "invalid token: malformed token";
        case JwtError::TooLarge:
            return "invalid token: token too large";
        case JwtError::Algorithm:
            return "invalid token: algorithm not accepted";
        case JwtError::Header:
            return "invalid token: token header not accepted";
        case JwtError::UnknownKey:
            return "invalid token: unknown signing key";
        case JwtError::Signature:
            return "invalid token: invalid signature";
        case JwtError::Expired:
            return "invalid token: token expired";
        case JwtError::NotYetValid:
            return "invalid token: token not yet valid";
        case JwtError::MissingExp:
            return "invalid token: token has no expiry";
        case JwtError::BadClaim:
            return "invalid token: invalid claim";
        case JwtError::Issuer:
            return "invalid token: issuer not accepted";
        case JwtError::Audience:
            return "invalid token: audience not accepted";
        case JwtError::None:
            break;
    }
    return "invalid token";
}

/// Header-safe: no control characters but tab (a claim value must not split a field).
bool fieldSafe(std::string_view v) {
    return std::none_of(v.begin(), v.end(), [](char ch) {
        auto u = static_cast<unsigned char>(ch);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

/// The one field named `name`: `value` set, or how many there are (0 or 2+).
int singleField(const Request& req, std::string_view name, std::string_view& value) {
    int n = 0;
    for (const auto& f : req.head->headers) {
        if (core::http::equalsIgnoreCase(f.name, name)) {
            if (n++ == 0) {
                value = f.value;
            }
        }
    }
    return n;
}

/// Cookie `name` from the Cookie fields (first occurrence).
bool findCookie(const Request& req, std::string_view name, std::string_view& out) {
    for (const auto& f : req.head->headers) {
        if (!core::http::equalsIgnoreCase(f.name, "cookie")) {
            continue;
        }
        std::string_view v = f.value;
        while (!v.empty()) {
            size_t semi = v.find(';');
            std::string_view pair = v.substr(0, semi);
            v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
            while (!pair.empty() && pair.front() == ' ') {
                pair.remove_prefix(1);
            }
            size_t eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
                out = pair.substr(eq + 1);
                if (out.size() >= 2 && out.front() == '"' && out.back() == '"') {
                    out = out.substr(1, out.size() - 2);
                }
                return true;
            }
        }
    }
    return false;
}

/// The decoded value of query parameter `name` (first occurrence) copied into the arena.
/// Returns false when absent; `out` empty when it did not fit.
bool findQueryValue(Request& req, std::string_view name, std::string_view& out) {
    bool found = false;
    worker::forEachQueryParam(req.head->query, [&](std::string_view n, std::string_view v, bool) {
        if (!worker::decodedEquals(n, name)) {
            return true;
        }
        found = true;
        char* mem = req.alloc(v.size() + 1);
        if (mem == nullptr) {
            out = {};
            return false;
        }
        size_t len = 0;
        worker::formDecode(v, [&](const char* d, size_t k) {
            std::memcpy(mem + len, d, k);
            len += k;
        });
        out = std::string_view(mem, len);
        return false;
    });
    return found;
}

/// Removes the credential parameter from the upstream request's query.
bool stripQuery(Request& req, std::string_view name) {
    std::string_view q = req.head->query;
    bool present = false;
    worker::forEachQueryParam(q, [&](std::string_view n, std::string_view, bool) {
        present = worker::decodedEquals(n, name);
        return !present;
    });
    if (!present) {
        return true;
    }
    char* out = req.alloc(q.size() + 1);
    if (out == nullptr) {
        return false;
    }
    size_t n = removeQueryParam(q, name, out);
    req.query_override = std::string_view(out, n);
    req.query_override_set = true;
    return true;
}

/// The upstream edits (the instance's drops, then the forwarded claims and the consumer) and
/// the claims published to header transforms.
bool addEdits(Request& req, const AuthInstance& a, const VerifiedCache::Entry& e) {
    using Field = worker::HeadEdits::Field;
    using Claim = Request::Claim;
    const size_t forwards = a.forward_lines.size();
    size_t n = 0;
    size_t published = 0;
    for (size_t i = 0; i < e.values.size(); ++i) {
        if ((e.present >> i & 1) != 0) {
            n += i < forwards ? 1 : 0;
            ++published;
        }
    }
    const bool consumer = !a.consumer_line.empty() && !e.consumer.empty();
    n += consumer ? 1 : 0;
    Claim* claims = nullptr;
    if (published != 0) {
        claims = reinterpret_cast<Claim*>(req.alloc(sizeof(Claim) * published));
        if (claims == nullptr) {
            return false;
        }
    }
    worker::HeadEdits* edits = nullptr;
    Field* fields = nullptr;
    if (!a.drop.empty() || n != 0) {
        char* mem = req.alloc(sizeof(worker::HeadEdits) + sizeof(Field) * n);
        if (mem == nullptr) {
            return false;
        }
        edits = new (mem) worker::HeadEdits;
        fields = reinterpret_cast<Field*>(mem + sizeof(worker::HeadEdits));
        edits->drop = a.drop.data();
        edits->drop_count = a.drop.size();
        edits->drop_mask = a.drop_mask;
    }
    size_t k = 0;
    size_t c = 0;
    for (size_t i = 0; i < e.values.size(); ++i) {
        if ((e.present >> i & 1) == 0) {
            continue;
        }
        // The entry outlives the request unless the cache evicts it meanwhile: copy.
        std::string_view v = req.copy(e.values[i]);
        if (v.empty() && !e.values[i].empty()) {
            return false;
        }
        if (i < forwards) {
            new (&fields[k++]) Field{a.forward_lines[i], v, false};
        }
        new (&claims[c++]) Claim{a.claims[i], v};
    }
    if (consumer) {
        std::string_view v = req.copy(e.consumer);
        if (v.empty()) {
            return false;
        }
        new (&fields[k++]) Field{a.consumer_line, v, false};
    }
    req.claims = claims;
    req.claim_count = static_cast<uint16_t>(c);
    if (edits != nullptr) {
        edits->add = fields;
        edits->add_count = static_cast<uint16_t>(k);
        req.addUpstreamEdits(edits);
    }
    return true;
}

VerifiedCache* cacheOf(const AuthInstance& a) {
    if (a.cache_ttl_us == 0) {
        return nullptr;
    }
    if (!a.cache) {
        a.cache = std::make_unique<VerifiedCache>(4096);
    }
    return a.cache.get();
}

/// A new document published for the instance's jwks_url: parse it, and forget the tokens
/// verified with the previous keys. One atomic load when nothing changed.
void refreshRemoteKeys(const AuthInstance& a) {
    if (a.jwks->version.load() == a.jwks_seen) {
        return;
    }
    std::string doc;
    uint64_t version = 0;
    if (!readJwks(*a.jwks, doc, version)) {
        return;  // nothing yet, or racing a write: the next request looks again
    }
    a.jwks_seen = version;
    auto ks = JwtKeySet::fromJwks(doc);
    if (ks.ok()) {  // the master published only documents that parsed
        a.jwks_keys = std::make_unique<JwtKeySet>(std::move(ks.value()));
        a.cache.reset();
    }
}

const JwtKeySet& keysOf(const AuthInstance& a) {
    static const JwtKeySet kNone{};
    if (a.jwks == nullptr) {
        return a.keys;
    }
    return a.jwks_keys ? *a.jwks_keys : kNone;
}

Verdict jwtAccess(Request& req, const AuthConf& c, const AuthInstance& a) {
    std::string_view token;
    std::string_view v;
    int fields = singleField(req, a.header, v);
    if (fields > 1) {
        return refuse(req, c, 400, "more than one credential field", kBearerInvalidRequest);
    }
    if (fields == 1) {
        bool bearer = v.size() > 7 && core::http::equalsIgnoreCase(v.substr(0, 7), "bearer ");
        if (bearer) {
            token = v.substr(7);
            while (!token.empty() && token.front() == ' ') {
                token.remove_prefix(1);
            }
        } else if (!a.header_is_authorization) {
            token = v;  // a dedicated header may carry the bare token
        }
        if (token.find(' ') != std::string_view::npos) {
            return refuse(req, c, 401, "invalid token: malformed token", kBearerInvalidRequest);
        }
    }
    if (token.empty() && !a.cookie.empty()) {
        findCookie(req, a.cookie, token);
    }
    if (!a.query.empty()) {
        std::string_view q;
        if (findQueryValue(req, a.query, q) && token.empty()) {
            token = q;
        }
        if (!stripQuery(req, a.query)) {
            return req.fail(431, "request header too large");
        }
    }
    if (token.empty()) {
        return refuse(req, c, 401, "missing credentials", kBearer);
    }
    if (token.size() > a.policy.max_size) {
        return refuse(req, c, 401, jwtReason(JwtError::TooLarge), bearerInvalid(JwtError::TooLarge));
    }
    const uint64_t now_us = shm::monotonicMicros();
    if (a.jwks != nullptr) {
        refreshRemoteKeys(a);
    }
    VerifiedCache* cache = cacheOf(a);
    if (cache != nullptr) {
        if (const VerifiedCache::Entry* hit = cache->find(token, now_us)) {
            return addEdits(req, a, *hit) ? Verdict::Next
                                          : req.fail(431, "request header too large");
        }
    }
    JwtClaims claims;
    const int64_t now_s = wallSeconds();
    JwtError err = verifyJwt(token, keysOf(a), a.policy, now_s, &claims);
    if (err == JwtError::UnknownKey && a.jwks != nullptr) {
        // Perhaps the issuer rotated its keys: ask the master to fetch the document again.
        const_cast<JwksShm*>(a.jwks)->refresh_request_us.store(now_us,
                                                               std::memory_order_relaxed);
    }
    if (err != JwtError::None) {
        return refuse(req, c, 401, jwtReason(err), bearerInvalid(err));
    }
    for (const auto& [name, value] : a.required_claims) {
        if (value ? !claims.matches(name, *value) : !claims.has(name)) {
            return refuse(req, c, 403, "token lacks a required claim", kBearerScope);
        }
    }
    VerifiedCache::Entry e;
    e.values.resize(a.claims.size());
    for (size_t i = 0; i < a.claims.size(); ++i) {
        std::optional<std::string> t = claims.text(a.claims[i]);
        if (t && fieldSafe(*t) && t->size() <= 4096) {
            e.values[i] = std::move(*t);
            e.present |= uint64_t{1} << i;
        }
    }
    if (!addEdits(req, a, e)) {
        return req.fail(431, "request header too large");
    }
    if (cache != nullptr) {
        // Remembered until the cache TTL or the token's own expiry, whichever comes first.
        uint64_t ttl = a.cache_ttl_us;
        if (std::optional<int64_t> exp = claims.exp()) {
            int64_t left = *exp + a.policy.leeway_s - now_s;
            ttl = left <= 0 ? 0 : std::min<uint64_t>(ttl, static_cast<uint64_t>(left) * 1'000'000);
        }
        if (ttl > 0) {
            e.credential.assign(token);
            e.expires_us = now_us + ttl;
            cache->insert(std::move(e), now_us);
        }
    }
    return Verdict::Next;
}

Verdict apiKeyAccess(Request& req, const AuthConf& c, const AuthInstance& a) {
    std::string_view key;
    int fields = singleField(req, a.key_header, key);
    if (fields > 1) {
        return refuse(req, c, 400, "more than one credential field", kApiKey);
    }
    if (!a.key_query.empty()) {
        std::string_view q;
        if (findQueryValue(req, a.key_query, q) && fields == 0) {
            key = q;
        }
        if (!stripQuery(req, a.key_query)) {
            return req.fail(431, "request header too large");
        }
    }
    if (key.empty()) {
        return refuse(req, c, 401, "missing credentials", kApiKey);
    }
    const std::string* name = a.api_keys->find(key);
    if (name == nullptr) {
        return refuse(req, c, 401, "invalid API key", kApiKey);
    }
    VerifiedCache::Entry e;  // no claims; the consumer only (no allocation for short names)
    e.consumer = *name;
    return addEdits(req, a, e) ? Verdict::Next : req.fail(431, "request header too large");
}

Verdict basicAccess(Request& req, const AuthConf& c, const AuthInstance& a) {
    std::string_view v;
    int fields = singleField(req, "Authorization", v);
    if (fields > 1) {
        return refuse(req, c, 400, "more than one credential field", a.basic_challenge);
    }
    std::string user;
    std::string password;
    if (fields == 0 || !parseBasicCredentials(v, user, password)) {
        return refuse(req, c, 401, "missing credentials", a.basic_challenge);
    }
    // The cache keeps a digest of the credential, never the password.
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    std::string both = user + ":" + password;
    bool hashed = EVP_Digest(both.data(), both.size(), digest, &dlen, EVP_sha256(), nullptr) == 1;
    OPENSSL_cleanse(both.data(), both.size());
    std::string_view cred(reinterpret_cast<const char*>(digest), dlen);
    const uint64_t now_us = shm::monotonicMicros();
    VerifiedCache* cache = hashed ? cacheOf(a) : nullptr;
    if (cache != nullptr) {
        if (const VerifiedCache::Entry* hit = cache->find(cred, now_us)) {
            OPENSSL_cleanse(password.data(), password.size());
            return addEdits(req, a, *hit) ? Verdict::Next
                                          : req.fail(431, "request header too large");
        }
    }
    auto it = a.users.find(user);
    // An unknown user costs a verification too: timing does not tell which users exist.
    bool ok = verifyCryptPassword(password, it != a.users.end() ? it->second : a.dummy_hash) &&
              it != a.users.end();
    OPENSSL_cleanse(password.data(), password.size());
    if (!ok) {
        return refuse(req, c, 401, "invalid credentials", a.basic_challenge);
    }
    VerifiedCache::Entry e;
    e.consumer = user;
    if (!addEdits(req, a, e)) {
        return req.fail(431, "request header too large");
    }
    if (cache != nullptr) {
        e.credential.assign(cred);
        e.expires_us = now_us + a.cache_ttl_us;
        cache->insert(std::move(e), now_us);
    }
    return Verdict::Next;
}

}  // namespace

size_t removeQueryParam(std::string_view query, std::string_view name, char* out) {
    size_t n = 0;
    worker::forEachQueryParam(query, [&](std::string_view k, std::string_view v, bool has_value) {
        if (worker::decodedEquals(k, name)) {
            return true;
        }
        if (n != 0) {
            out[n++] = '&';
        }
        std::memcpy(out + n, k.data(), k.size());
        n += k.size();
        if (has_value) {
            out[n++] = '=';
            std::memcpy(out + n, v.data(), v.size());
            n += v.size();
        }
        return true;
    });
    return n;
}

std::vector<std::string> transformClaimNames(const core::Config& cfg) {
    std::vector<std::string> names;
    auto scan = [&](const core::HeaderList& fields) {
        for (const auto& [field, value] : fields) {
            for (size_t at = value.find("${jwt."); at != std::string::npos;
                 at = value.find("${jwt.", at + 1)) {
                size_t close = value.find('}', at);
                if (close == std::string::npos) {
                    break;
                }
                std::string name = value.substr(at + 6, close - at - 6);
                if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) {
                    names.push_back(std::move(name));
                }
            }
        }
    };
    auto all = [&](const core::TransformConfig& t) {
        for (const auto* side : {&t.request_headers, &t.response_headers}) {
            scan(side->set);
            scan(side->add);
        }
    };
    if (cfg.middleware.transform) {
        all(*cfg.middleware.transform);
    }
    for (const auto& [n, t] : cfg.middleware.transform_named) {
        all(t);
    }
    return names;
}

core::Result<std::shared_ptr<AuthInstance>> AuthInstance::compile(
    const core::AuthConfig& c, std::string_view instance,
    const std::vector<std::string>& variable_claims) {
    auto a = std::make_shared<AuthInstance>();
    a->type = c.auth_type;
    a->name = instance.empty() ? "default" : std::string(instance);
    a->cache_ttl_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(c.cache_ttl).count());
    std::string consumer_header;
    switch (c.auth_type) {
        case core::AuthType::Jwt: {
            const core::JwtConfig& j = *c.jwt;
            std::vector<JwtKey> all;
            if (!j.secret.empty()) {
                std::string secret = j.secret;
                if (j.secret_base64) {
                    secret.clear();
                    decodeBase64Any(j.secret, secret);
                }
                a->keys = JwtKeySet::fromSecret(std::move(secret));
            }
            // A PEM key or a JWKS document adds to (or replaces) the secret's set.
            for (const std::string* file : {&j.public_key_file, &j.jwks_file}) {
                if (file->empty()) {
                    continue;
                }
                auto ks = file == &j.public_key_file ? JwtKeySet::fromPemFile(*file)
                                                     : JwtKeySet::fromJwksFile(*file);
                if (!ks.ok()) {
                    return ks.error();
                }
                a->keys.merge(std::move(ks.value()));
            }
            for (auto alg : j.algorithms) {
                a->policy.algorithms.push_back(static_cast<JwtAlg>(alg));
            }
            a->policy.leeway_s =
                std::chrono::duration_cast<std::chrono::seconds>(j.leeway).count();
            a->policy.require_exp = j.require_exp;
            a->policy.issuers = j.issuer;
            a->policy.audiences = j.audience;
            a->policy.max_size = j.max_token_size;
            if (!j.jwks_url.empty()) {
                a->jwks = findRemoteJwks(instance);
            }
            a->header = j.header;
            a->header_is_authorization = core::http::equalsIgnoreCase(j.header, "authorization");
            a->cookie = j.cookie;
            a->query = j.query;
            a->required_claims = j.required_claims;
            for (const auto& [claim, header] : j.forward_claims) {
                a->claims.push_back(claim);
                a->forward_lines.push_back(header + ": ");
                a->drop_names.push_back(header);
            }
            for (const auto& name : variable_claims) {
                if (std::find(a->claims.begin(), a->claims.end(), name) == a->claims.end()) {
                    a->claims.push_back(name);
                }
            }
            if (a->claims.size() > 64) {
                return core::Error{"more than 64 claims forwarded or read by transforms"};
            }
            if (!j.forward_token) {
                a->drop_names.push_back(j.header);
            }
            break;
        }
        case core::AuthType::ApiKey: {
            const core::ApiKeyConfig& k = *c.api_key;
            std::vector<core::ApiKeyConfig::Key> keys = k.keys;
            keys.insert(keys.end(), k.file_keys.begin(), k.file_keys.end());
            a->api_keys = std::make_unique<ApiKeySet>(keys);
            a->key_header = k.header;
            a->key_query = k.query.value_or("");
            consumer_header = k.consumer_header;
            if (!k.forward_key) {
                a->drop_names.push_back(k.header);
            }
            break;
        }
        case core::AuthType::Basic: {
            const core::BasicAuthConfig& b = *c.basic;
            auto users = loadHtpasswd(b.htpasswd_file);
            if (!users.ok()) {
                return users.error();
            }
            for (auto& u : users.value()) {
                if (a->dummy_hash.empty()) {
                    a->dummy_hash = u.hash;
                }
                a->users.emplace(std::move(u.user), std::move(u.hash));
            }
            if (a->dummy_hash.empty()) {
                a->dummy_hash = "$5$rounds=5000$photon$";  // no users: still a real computation
            }
            a->basic_challenge = "Basic realm=\"" + b.realm + "\", charset=\"UTF-8\"";
            consumer_header = b.consumer_header;
            break;
        }
    }
    if (!consumer_header.empty()) {
        a->consumer_line = consumer_header + ": ";
        a->drop_names.push_back(consumer_header);  // clients cannot claim to be a consumer
    }
    for (const auto& n : a->drop_names) {
        a->drop.emplace_back(n);
    }
    a->drop_mask = worker::nameLengthMask(a->drop.data(), a->drop.size());
    return a;
}

Verdict accessHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const AuthConf*>(conf);
    const AuthInstance& a = *c.inst;
    switch (a.type) {
        case core::AuthType::Jwt:
            return jwtAccess(req, c, a);
        case core::AuthType::ApiKey:
            return apiKeyAccess(req, c, a);
        case core::AuthType::Basic:
            return basicAccess(req, c, a);
    }
    req.refusal_reason = 8;  // unavailable
    return req.fail(503, "authentication is not available");
}

Verdict headerHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const AuthConf*>(conf);
    const auto* st = static_cast<const AuthState*>(req.slot(c.slot));
    if (st != nullptr && req.local()) {
        worker::setHeader(req.responseHeaders(), "WWW-Authenticate", st->challenge);
    }
    return Verdict::Next;
}

}  // namespace photon::mod::auth
