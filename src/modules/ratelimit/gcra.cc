// SPDX-License-Identifier: Apache-2.0
// GCRA decisions.
#include "modules/ratelimit/gcra.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>

namespace photon::mod::ratelimit {

GcraParams GcraParams::make(double rate_per_second, uint32_t burst) {
    GcraParams p;
    p.burst = burst;
    p.interval_us =
        rate_per_second > 0 ? static_cast<uint64_t>(std::llround(1e6 / rate_per_second)) : 0;
    if (p.interval_us == 0 && rate_per_second > 0) {
        p.interval_us = 1;  // above a million per second: one microsecond apart
    }
    p.tolerance_us = burst > 0 && p.interval_us > 0 ? (burst - 1) * p.interval_us : 0;
    return p;
}

size_t GcraTable::capacityFor(uint64_t keys) {
    size_t cap = 16;
    while (cap < keys * 2 && cap < (size_t{1} << 40)) {
        cap <<= 1;
    }
    return cap;
}

uint64_t GcraTable::keyHash(std::string_view key, uint64_t seed) {
    uint64_t h = XXH3_64bits_withSeed(key.data(), key.size(), seed);
    return h == 0 ? 1 : h;
}

GcraDecision GcraTable::decide(uint64_t key_hash, uint64_t now_us, const GcraParams& p) {
    GcraDecision d;
    if (p.burst == 0) {
        d.kind = GcraDecision::Kind::Limited;
        d.retry_after_us = 1'000'000;
        return d;
    }
    // Rate 0: the bucket never refills; the tat counts admitted requests in "slots" of 1 µs
    // past a fixed origin, so burst requests are admitted in all and nothing after.
    const uint64_t T = p.interval_us == 0 ? 1 : p.interval_us;
    const uint64_t tau = p.interval_us == 0 ? p.burst - 1 : p.tolerance_us;
    const uint64_t now = p.interval_us == 0 ? 1 : now_us;

    // Find the key's slot. Slots are never emptied, only handed from an idle key to a new one,
    // so a free slot ends a key's probe sequence: look for the key up to there first, then
    // claim the first free slot or the first slot of an idle key (its bucket is full again, so
    // the new key loses nothing by inheriting its arrival time).
    RateSlotShm* slot = nullptr;
    const size_t start = static_cast<size_t>(key_hash) & mask_;
    for (size_t i = 0; i < kMaxProbe; ++i) {
        RateSlotShm& s = slots_[(start + i) & mask_];
        uint64_t k = s.key_hash.load();
        if (k == key_hash) {
            slot = &s;
            break;
        }
        if (k == 0) {
            break;
        }
    }
    for (size_t i = 0; i < kMaxProbe && slot == nullptr; ++i) {
        RateSlotShm& s = slots_[(start + i) & mask_];
        uint64_t k = s.key_hash.load();
        bool claimable = k == 0 || (p.interval_us != 0 && s.tat_us.load() <= now);
        if (k == key_hash) {
            slot = &s;  // another worker claimed it meanwhile
        } else if (claimable && (s.key_hash.cas(k, key_hash) || k == key_hash)) {
            slot = &s;
        }
    }
    if (slot == nullptr) {
        d.kind = GcraDecision::Kind::TableFull;
        return d;
    }
    // One CAS per decision; bounded retries against other workers deciding on the same key.
    uint64_t tat = slot->tat_us.load();
    for (int attempt = 0; attempt < 64; ++attempt) {
        uint64_t base = std::max(tat, now);
        uint64_t new_tat = base + T;
        if (new_tat - now > tau + T) {
            d.kind = GcraDecision::Kind::Limited;
            d.retry_after_us = new_tat - now - tau - T;  // until base - tau <= now
            if (p.interval_us == 0) {
                d.retry_after_us = UINT64_MAX;
            }
            d.reset_us = p.interval_us == 0 ? UINT64_MAX : tat > now ? tat - now : 0;
            d.remaining = 0;
            return d;
        }
        if (slot->tat_us.cas(tat, new_tat)) {
            d.kind = GcraDecision::Kind::Allowed;
            uint64_t used = new_tat - now;  // <= tau + T
            d.remaining = static_cast<uint32_t>((tau + T - used) / T);
            d.reset_us = p.interval_us == 0 ? UINT64_MAX : used;
            return d;
        }
    }
    d.kind = GcraDecision::Kind::Contended;
    return d;
}

}  // namespace photon::mod::ratelimit
