// SPDX-License-Identifier: Apache-2.0
// Authentication costs (modules/auth): a JWT verified from scratch (HS256, RS256, ES256), a
// verified-cache hit for a typical 300-byte token, and an API key lookup among 10 000 keys.
#include <benchmark/benchmark.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include "modules/auth/credentials.h"
#include "modules/auth/jwt.h"
#include "shm/clock.h"
#include "shm/seqlock.h"

namespace {

using namespace photon::mod::auth;

std::string b64url(std::string_view in) { return base64urlEncode(in); }

// A payload of typical size: the token comes to about 300 bytes with an HS256 signature.
std::string payload() {
    return R"({"iss":"https://auth.example.com/","sub":"user-1234567890","aud":"api",)"
           R"("exp":4102444800,"iat":1700000000,"scope":"read write","tenant":"acme"})";
}

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::string hs256Token() {
    std::string signing = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(payload());
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return signing + "." + b64url(std::string_view(reinterpret_cast<char*>(mac), len));
}

/// A token signed with `key` (RS256 or ES256), and the key set verifying it.
std::string signedToken(EVP_PKEY* key, const char* alg, const EVP_MD* md, bool ecdsa) {
    std::string signing =
        b64url(std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})") + "." + b64url(payload());
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, md, nullptr, key);
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(signing.data()),
                   signing.size());
    std::vector<unsigned char> sig(len);
    EVP_DigestSign(ctx, sig.data(), &len, reinterpret_cast<const unsigned char*>(signing.data()),
                   signing.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    std::string raw(sig.begin(), sig.end());
    if (ecdsa) {  // DER → JOSE R||S
        const unsigned char* p = sig.data();
        ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        unsigned char rs[64];
        BN_bn2binpad(ECDSA_SIG_get0_r(s), rs, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), rs + 32, 32);
        ECDSA_SIG_free(s);
        raw.assign(reinterpret_cast<char*>(rs), 64);
    }
    return signing + "." + b64url(raw);
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

void verifyLoop(benchmark::State& state, const std::string& token, const JwtKeySet& set,
                JwtAlg alg) {
    JwtPolicy policy;
    policy.algorithms = {alg};
    const int64_t now = 1'800'000'000;
    for (auto _ : state) {
        JwtError e = verifyJwt(token, set, policy, now, nullptr);
        if (e != JwtError::None) {
            state.SkipWithError("token refused");
            break;
        }
    }
    state.counters["token_bytes"] = static_cast<double>(token.size());
}

void BM_Jwt_HS256_Verify(benchmark::State& state) {
    verifyLoop(state, hs256Token(), JwtKeySet::fromSecret(kSecret), JwtAlg::HS256);
}
BENCHMARK(BM_Jwt_HS256_Verify);

void BM_Jwt_RS256_Verify(benchmark::State& state) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
    std::string token = signedToken(key, "RS256", EVP_sha256(), false);
    auto set = JwtKeySet::fromPem(publicPem(key));
    EVP_PKEY_free(key);
    verifyLoop(state, token, set.value(), JwtAlg::RS256);
}
BENCHMARK(BM_Jwt_RS256_Verify);

void BM_Jwt_ES256_Verify(benchmark::State& state) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    std::string token = signedToken(key, "ES256", EVP_sha256(), true);
    auto set = JwtKeySet::fromPem(publicPem(key));
    EVP_PKEY_free(key);
    verifyLoop(state, token, set.value(), JwtAlg::ES256);
}
BENCHMARK(BM_Jwt_ES256_Verify);

// What a request whose token verified before costs: the cache lookup, confirmed against the
// whole token.
void BM_Jwt_CacheHit(benchmark::State& state) {
    VerifiedCache cache(4096);
    std::string token = hs256Token();
    uint64_t now = photon::shm::monotonicMicros();
    for (int i = 0; i < 2000; ++i) {  // a populated cache
        VerifiedCache::Entry e;
        e.credential = token + std::to_string(i);
        e.expires_us = now + 60'000'000;
        cache.insert(std::move(e), now);
    }
    VerifiedCache::Entry e;
    e.credential = token;
    e.expires_us = now + 60'000'000;
    cache.insert(std::move(e), now);
    for (auto _ : state) {
        const VerifiedCache::Entry* hit = cache.find(token, now);
        benchmark::DoNotOptimize(hit);
        if (hit == nullptr) {
            state.SkipWithError("miss");
            break;
        }
    }
    state.counters["token_bytes"] = static_cast<double>(token.size());
}
BENCHMARK(BM_Jwt_CacheHit);

// The alternative the cache design was measured against: one table in shared memory for all
// workers. Entries must be read under a seqlock (a worker may be overwriting one) and copied out
// word by word before comparing, since another process may change them meanwhile; this
// prototype is that lookup, uncontended, and with a second thread reading the same entry.
struct SharedEntry {
    photon::shm::Atomic64 version;
    photon::shm::Atomic64 hash;
    photon::shm::Atomic64 expires_us;
    photon::shm::Atomic64 length;
    photon::shm::Atomic64 words[64];  // tokens up to 512 bytes
};

std::vector<SharedEntry>& sharedTable() {
    static std::vector<SharedEntry> t(4096);
    return t;
}

bool sharedFind(const std::vector<SharedEntry>& t, std::string_view token, uint64_t now) {
    const uint64_t h = XXH3_64bits(token.data() + token.size() - 64, 64) | 1;
    const SharedEntry& e = t[h & (t.size() - 1)];
    char copy[512];
    for (int attempt = 0; attempt < 8; ++attempt) {
        uint64_t v = photon::shm::SeqLock::readBegin(e.version);
        if (photon::shm::SeqLock::isWriting(v)) {
            continue;
        }
        uint64_t len = e.length.load(std::memory_order_relaxed);
        if (e.hash.load(std::memory_order_relaxed) != h || len != token.size() || len > 512 ||
            e.expires_us.load(std::memory_order_relaxed) <= now) {
            return false;
        }
        for (size_t i = 0; i < (len + 7) / 8; ++i) {
            uint64_t w = e.words[i].load(std::memory_order_relaxed);
            std::memcpy(copy + i * 8, &w, 8);
        }
        if (photon::shm::SeqLock::readValid(e.version, v)) {
            return constantTimeEquals(std::string_view(copy, len), token);
        }
    }
    return false;
}

void BM_Jwt_CacheHitSharedPrototype(benchmark::State& state) {
    auto& t = sharedTable();
    std::string token = hs256Token();
    uint64_t now = photon::shm::monotonicMicros();
    if (state.thread_index() == 0) {
        const uint64_t h = XXH3_64bits(token.data() + token.size() - 64, 64) | 1;
        SharedEntry& e = t[h & (t.size() - 1)];
        uint64_t tok = 0;
        photon::shm::SeqLock::tryBeginWrite(e.version, 0, tok);
        e.hash.store(h, std::memory_order_relaxed);
        e.expires_us.store(now + 60'000'000, std::memory_order_relaxed);
        e.length.store(token.size(), std::memory_order_relaxed);
        std::string padded = token + std::string(8, '\0');
        for (size_t i = 0; i < (token.size() + 7) / 8; ++i) {
            uint64_t w;
            std::memcpy(&w, padded.data() + i * 8, 8);
            e.words[i].store(w, std::memory_order_relaxed);
        }
        photon::shm::SeqLock::endWrite(e.version, tok);
    }
    for (auto _ : state) {
        bool hit = sharedFind(t, token, now);
        benchmark::DoNotOptimize(hit);
    }
}
BENCHMARK(BM_Jwt_CacheHitSharedPrototype)->Threads(1)->Threads(2);

// One API key lookup with 10 000 keys configured (a hit, and a miss).
void BM_ApiKey_Check(benchmark::State& state) {
    std::vector<photon::core::ApiKeyConfig::Key> keys;
    for (int i = 0; i < 10000; ++i) {
        keys.push_back({"pk_live_7f3a9c2e51b84d06a" + std::to_string(100000 + i), ""});
    }
    ApiKeySet set(keys);
    std::string probe = state.range(0) != 0 ? keys[4321].key : "pk_live_7f3a9c2e51b84d06a099999";
    for (auto _ : state) {
        const std::string* name = set.find(probe);
        benchmark::DoNotOptimize(name);
    }
}
BENCHMARK(BM_ApiKey_Check)->Arg(1)->Arg(0);

}  // namespace
