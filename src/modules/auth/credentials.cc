// SPDX-License-Identifier: Apache-2.0
// API key lookups and the verified-credential cache.
#include "modules/auth/credentials.h"

#include <openssl/rand.h>
#include <xxhash.h>

#include <cstring>

namespace photon::mod::auth {

bool constantTimeEquals(std::string_view a, std::string_view b) {
    // The length is not the secret here: keys and tokens of other lengths differ anyway. The
    // contents are folded word by word with no early exit (CRYPTO_memcmp does the same a byte
    // at a time, several times slower for a 300-byte token).
    if (a.size() != b.size()) {
        return false;
    }
    const size_t n = a.size();
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t x[4], y[4];
        std::memcpy(x, a.data() + i, 32);
        std::memcpy(y, b.data() + i, 32);
        diff |= (x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        std::memcpy(&x, a.data() + i, 8);
        std::memcpy(&y, b.data() + i, 8);
        diff |= x ^ y;
    }
    for (; i < n; ++i) {
        diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    }
    return diff == 0;
}

namespace {

size_t powerOfTwoAtLeast(size_t n) {
    size_t c = 16;
    while (c < n) {
        c <<= 1;
    }
    return c;
}

void randomBytes(void* p, size_t n) {
    if (RAND_bytes(static_cast<unsigned char*>(p), static_cast<int>(n)) != 1) {
        // OpenSSL's generator failing leaves us with a weaker index, never a wrong answer: the
        // decision is always the full comparison.
        std::memset(p, 0x5a, n);
    }
}

}  // namespace

ApiKeySet::ApiKeySet(const std::vector<core::ApiKeyConfig::Key>& keys) {
    randomBytes(secret_, sizeof secret_);
    slots_.resize(powerOfTwoAtLeast(keys.size() * 2));
    mask_ = slots_.size() - 1;
    for (const auto& k : keys) {
        uint64_t h = hashOf(k.key);
        for (size_t i = 0;; ++i) {
            Slot& s = slots_[(h + i) & mask_];
            if (s.hash == h && s.key == k.key) {
                break;  // listed twice: the first name wins
            }
            if (s.hash == 0) {
                s.hash = h;
                s.key = k.key;
                s.name = k.name;
                ++count_;
                break;
            }
        }
    }
}

uint64_t ApiKeySet::hashOf(std::string_view s) const {
    uint64_t h = XXH3_64bits_withSecret(s.data(), s.size(), secret_, sizeof secret_);
    return h == 0 ? 1 : h;
}

const std::string* ApiKeySet::find(std::string_view presented) const {
    if (count_ == 0) {
        return nullptr;
    }
    const uint64_t h = hashOf(presented);
    for (size_t i = 0;; ++i) {
        const Slot& s = slots_[(h + i) & mask_];
        if (s.hash == 0) {
            return nullptr;
        }
        if (s.hash == h && constantTimeEquals(s.key, presented)) {
            return &s.name;
        }
    }
}

VerifiedCache::VerifiedCache(size_t capacity)
    : slots_(powerOfTwoAtLeast(capacity)), mask_(slots_.size() - 1) {
    randomBytes(&seed_, sizeof seed_);
}

uint64_t VerifiedCache::hashOf(std::string_view s) const {
    // The index needs only the last 64 bytes: a token ends with its signature, the most
    // varied part, and a digest is 32 bytes. Tokens crafted to share a tail only share a
    // neighbourhood (entries are verified credentials, confirmed in full on every hit).
    const size_t n = s.size() < 64 ? s.size() : 64;
    uint64_t h = XXH3_64bits_withSeed(s.data() + s.size() - n, n, seed_ ^ s.size());
    return h == 0 ? 1 : h;
}

const VerifiedCache::Entry* VerifiedCache::find(std::string_view credential,
                                                uint64_t now_us) const {
    const uint64_t h = hashOf(credential);
    for (size_t i = 0; i < kProbe; ++i) {
        const Entry& e = slots_[(h + i) & mask_];
        if (e.hash == h && e.expires_us > now_us && constantTimeEquals(e.credential, credential)) {
            return &e;
        }
    }
    return nullptr;
}

void VerifiedCache::insert(Entry e, uint64_t now_us) {
    e.hash = hashOf(e.credential);
    Entry* victim = nullptr;
    for (size_t i = 0; i < kProbe; ++i) {
        Entry& s = slots_[(e.hash + i) & mask_];
        if (s.hash == 0 || s.expires_us <= now_us ||
            (s.hash == e.hash && constantTimeEquals(s.credential, e.credential))) {
            victim = &s;
            break;
        }
        if (victim == nullptr || s.expires_us < victim->expires_us) {
            victim = &s;
        }
    }
    *victim = std::move(e);
}

}  // namespace photon::mod::auth
