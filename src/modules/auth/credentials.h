// SPDX-License-Identifier: Apache-2.0
// Credential lookups that must not leak through timing: the API key set, and the per-worker
// cache of credentials that verified (JWTs, Basic credentials).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace photon::mod::auth {

/// Equal contents, in time that depends on the lengths only (never on where they differ).
bool constantTimeEquals(std::string_view a, std::string_view b);

/// The accepted API keys. A lookup hashes the presented key once with a per-process random
/// secret (the hash is only an index: an attacker cannot aim at a slot) and compares it with
/// the one candidate in constant time: the cost is the same for 1 or 10 000 keys and reveals
/// neither a matching prefix nor which key matched. Immutable after construction; any process.
class ApiKeySet {
public:
    explicit ApiKeySet(const std::vector<core::ApiKeyConfig::Key>& keys);

    /// The consumer name of the key equal to `presented` ("" when it has none), or nullptr.
    const std::string* find(std::string_view presented) const;
    size_t size() const { return count_; }

private:
    struct Slot {
        uint64_t hash = 0;  // 0 = empty
        std::string key;
        std::string name;
    };
    uint64_t hashOf(std::string_view s) const;

    std::vector<Slot> slots_;
    size_t mask_ = 0;
    size_t count_ = 0;
    unsigned char secret_[192];  // XXH3 custom secret (random per process)
};

/// Verified credentials remembered by one worker. A hit is confirmed against the whole stored
/// credential (constant time), never against a hash alone; entries expire at their own time
/// (a JWT's exp, the cache TTL); failures are never stored. Fixed capacity: inserting into a
/// full neighbourhood evicts the entry that expires first. Worker only (no locking).
class VerifiedCache {
public:
    struct Entry {
        uint64_t hash = 0;
        uint64_t expires_us = 0;  // CLOCK_MONOTONIC
        std::string credential;   // the token, or a digest of a Basic credential
        std::vector<std::string> values;  // the instance's claims (AuthInstance::claims)
        uint64_t present = 0;             // bit i: values[i] is set (the claim was there)
        std::string consumer;
    };

    explicit VerifiedCache(size_t capacity);

    /// The live entry for `credential` at `now_us`, or nullptr.
    const Entry* find(std::string_view credential, uint64_t now_us) const;
    /// Remembers `e` (its credential and expiry set by the caller).
    void insert(Entry e, uint64_t now_us);

    static constexpr size_t kProbe = 8;

private:
    uint64_t hashOf(std::string_view s) const;

    std::vector<Entry> slots_;
    size_t mask_;
    uint64_t seed_;
};

}  // namespace photon::mod::auth
