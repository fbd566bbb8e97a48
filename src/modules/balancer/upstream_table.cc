// SPDX-License-Identifier: Apache-2.0
// UpstreamTable implementation: geometry, keyed binding, per-slot columns, health seqlock, reclaim.
#include "modules/balancer/upstream_table.h"

#include <algorithm>
#include <cstring>
#include <string>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/log.h"
#include "shm/seqlock.h"

namespace photon::mod::balancer {

using shm::SeqLock;

namespace {

constexpr uint64_t kPassiveCountMask = (1ull << 24) - 1;
constexpr unsigned kPassiveStartShift = 24;
constexpr uint64_t kHealthCounterMask = 0xffff;

constexpr uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

/// Byte offsets of every region from the start of the segment body.
struct Geometry {
    uint64_t backends, backend_keys, records, keys, inflight, passive, requests, failures, gauges,
        total;
};

Geometry geometry(uint32_t cap, uint32_t bcap) {
    Geometry g{};
    uint64_t off = align64(sizeof(UpstreamTableHeaderShm));
    g.backends = off;
    off += align64(uint64_t{bcap} * sizeof(BackendRecordShm));
    g.backend_keys = off;
    off += align64(uint64_t{bcap} * sizeof(KeyShm));
    g.records = off;
    off += align64(uint64_t{cap} * sizeof(UpstreamRecordShm));
    g.keys = off;
    off += align64(uint64_t{cap} * sizeof(KeyShm));
    g.inflight = off;
    off += align64(uint64_t{shm::kMaxSlots} * cap * sizeof(Atomic32));
    g.passive = off;
    off += align64(uint64_t{shm::kMaxSlots} * cap * sizeof(Atomic64));
    g.requests = off;
    off += align64(uint64_t{kSlotColumns} * cap * sizeof(Atomic64));
    g.failures = off;
    off += align64(uint64_t{kSlotColumns} * cap * sizeof(Atomic64));
    g.gauges = off;
    off += align64(uint64_t{kSlotGauges} * shm::kMaxSlots * cap * sizeof(Atomic32));
    g.total = off;
    return g;
}

uint32_t nextPow2(uint64_t n) {
    uint64_t p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p > 0xffffffffull ? 0 : static_cast<uint32_t>(p);
}

uint64_t keyHash(std::string_view key) {
    const uint64_t h = XXH3_64bits(key.data(), key.size());
    return h < kFirstKeyHash ? h + kFirstKeyHash : h;
}

bool keyEquals(const KeyShm& k, std::string_view key) {
    return k.length.load() == key.size() && memcmp(k.bytes, key.data(), key.size()) == 0;
}

void storeKey(KeyShm& k, std::string_view key) {
    memcpy(k.bytes, key.data(), key.size());
    k.length.store(static_cast<uint32_t>(key.size()));
}

/// Open addressing with linear probing over `hashes(i)` (capacity a power of two). Returns the
/// matching index via `found`, or the first reusable index (free or tombstone) via `slot`.
/// Returns false if neither exists (table full of other keys).
template <typename HashAt, typename KeyAt>
bool probe(uint32_t cap, uint64_t hash, std::string_view key, HashAt hash_at, KeyAt key_at,
           uint32_t& index, bool& found) {
    const uint32_t mask = cap - 1;
    uint32_t reusable = UINT32_MAX;
    for (uint32_t i = 0; i < cap; ++i) {
        const uint32_t r = (static_cast<uint32_t>(hash) + i) & mask;
        const uint64_t h = hash_at(r).load();
        if (h == kKeyFree) {
            if (reusable == UINT32_MAX) {
                reusable = r;
            }
            break;
        }
        if (h == kKeyTombstone) {
            if (reusable == UINT32_MAX) {
                reusable = r;
            }
            continue;
        }
        if (h == hash && keyEquals(key_at(r), key)) {
            index = r;
            found = true;
            return true;
        }
    }
    found = false;
    index = reusable;
    return reusable != UINT32_MAX;
}

/// Single-writer increment: only the slot's own process writes its cells.
template <typename W>
void bump(W& cell, typename W::value_type d) {
    // Relaxed: one writer per cell; readers only sum these advisory values.
    cell.store(cell.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

}  // namespace

std::string_view healthErrorName(HealthError e) {
    switch (e) {
        case HealthError::None:
            return "none";
        case HealthError::ConnectRefused:
            return "connect_refused";
        case HealthError::ConnectTimeout:
            return "connect_timeout";
        case HealthError::Timeout:
            return "timeout";
        case HealthError::TlsHandshake:
            return "tls_handshake";
        case HealthError::BadStatus:
            return "bad_status";
        case HealthError::Io:
            return "io";
        case HealthError::Resolve:
            return "resolve";
        case HealthError::Protocol:
            return "protocol";
        case HealthError::Admin:
            return "admin";
    }
    return "unknown";
}

uint32_t UpstreamTable::capacityFor(size_t upstreams) {
    const uint32_t cap = nextPow2(std::max<uint64_t>(kMinCapacity, uint64_t{upstreams} * 2));
    return cap == 0 || cap > kMaxCapacity ? 0 : cap;
}

uint32_t UpstreamTable::backendCapacityFor(size_t backends) {
    const uint32_t cap = nextPow2(std::max<uint64_t>(kMinBackendCapacity, uint64_t{backends} * 2));
    return cap == 0 || cap > kMaxCapacity ? 0 : cap;
}

uint64_t UpstreamTable::bodyBytes(uint32_t capacity, uint32_t backend_capacity) {
    return geometry(capacity, backend_capacity).total;
}

uint64_t UpstreamTable::fingerprint(uint32_t capacity, uint32_t backend_capacity) {
    const uint64_t parts[] = {capacity, backend_capacity, shm::kMaxSlots, kMaxKeyBytes,
                              bodyBytes(capacity, backend_capacity)};
    return XXH3_64bits(parts, sizeof parts);
}

core::Result<UpstreamTable> UpstreamTable::bind(const shm::MappedSegment& seg, uint32_t capacity,
                                                uint32_t backend_capacity) {
    auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
    if (!pow2(capacity) || !pow2(backend_capacity) || capacity > kMaxCapacity ||
        backend_capacity > kMaxCapacity) {
        return core::fail("upstream table: capacities must be powers of two <= ",
                          std::to_string(kMaxCapacity));
    }
    const Geometry g = geometry(capacity, backend_capacity);
    if (seg.bodyBytes() < g.total) {
        return core::fail("upstream table segment ", seg.name(), " is too small");
    }
    std::byte* body = seg.body();
    auto* hdr = reinterpret_cast<UpstreamTableHeaderShm*>(body);
    if (hdr->formatted.load() == 0) {
        hdr->capacity.store(capacity);
        hdr->backend_capacity.store(backend_capacity);
        hdr->max_slots.store(shm::kMaxSlots);
        hdr->formatted.store(1);
    } else if (hdr->capacity.load() != capacity ||
               hdr->backend_capacity.load() != backend_capacity ||
               hdr->max_slots.load() != shm::kMaxSlots) {
        return core::fail("upstream table segment ", seg.name(), " has another geometry");
    }
    UpstreamTable t;
    t.header_ = hdr;
    t.backends_ = reinterpret_cast<BackendRecordShm*>(body + g.backends);
    t.backend_keys_ = reinterpret_cast<KeyShm*>(body + g.backend_keys);
    t.records_ = reinterpret_cast<UpstreamRecordShm*>(body + g.records);
    t.keys_ = reinterpret_cast<KeyShm*>(body + g.keys);
    t.inflight_ = reinterpret_cast<Atomic32*>(body + g.inflight);
    t.passive_ = reinterpret_cast<Atomic64*>(body + g.passive);
    t.requests_ = reinterpret_cast<Atomic64*>(body + g.requests);
    t.failures_ = reinterpret_cast<Atomic64*>(body + g.failures);
    for (uint32_t k = 0; k < kSlotGauges; ++k) {
        t.gauges_[k] = reinterpret_cast<Atomic32*>(body + g.gauges) +
                       static_cast<size_t>(k) * shm::kMaxSlots * capacity;
    }
    t.capacity_ = capacity;
    t.backend_capacity_ = backend_capacity;
    return t;
}

uint32_t UpstreamTable::nextGeneration() {
    uint32_t g = header_->generation.fetchAdd(1) + 1;
    if (g == 0) {  // wrapped after 2^32 reloads; 0 means "unpinned"
        g = header_->generation.fetchAdd(1) + 1;
    }
    return g;
}

core::Result<uint32_t> UpstreamTable::bindUpstream(std::string_view key, uint32_t generation,
                                                   bool start_healthy, bool* created) {
    if (key.empty() || key.size() > kMaxKeyBytes) {
        return core::fail("upstream key must be 1..", std::to_string(kMaxKeyBytes),
                          " bytes (backend name + address too long)");
    }
    const uint64_t hash = keyHash(key);
    uint32_t r = 0;
    bool found = false;
    if (!probe(
            capacity_, hash, key, [&](uint32_t i) -> Atomic64& { return records_[i].key_hash; },
            [&](uint32_t i) -> const KeyShm& { return keys_[i]; }, r, found)) {
        return core::fail("upstream table full (", std::to_string(capacity_), " records)");
    }
    UpstreamRecordShm& rec = records_[r];
    if (created != nullptr) {
        *created = !found;
    }
    if (found) {
        rec.generation.store(generation);
        return r;
    }
    storeKey(keys_[r], key);
    for (uint32_t s = 0; s < shm::kMaxSlots; ++s) {
        inflight_[static_cast<size_t>(s) * capacity_ + r].store(0);
        passive_[static_cast<size_t>(s) * capacity_ + r].store(0);
        for (uint32_t k = 0; k < kSlotGauges; ++k) {
            gauges_[k][static_cast<size_t>(s) * capacity_ + r].store(0);
        }
    }
    for (uint32_t c = 0; c < kSlotColumns; ++c) {
        requests_[static_cast<size_t>(c) * capacity_ + r].store(0);
        failures_[static_cast<size_t>(c) * capacity_ + r].store(0);
    }
    rec.health.store(start_healthy ? kHealthHealthy : 0);
    rec.ejected_until_us.store(0);
    rec.passive_epoch_us.store(0);
    rec.health_seq.store(0);
    rec.last_check_us.store(0);
    rec.last_error.store(0);
    rec.health_changes.store(0);
    rec.ejections.store(0);
    rec.ejections_total.store(0);
    rec.generation.store(generation);
    rec.key_hash.store(hash);  // publish last
    return r;
}

core::Result<uint32_t> UpstreamTable::bindBackend(std::string_view name, uint32_t generation) {
    if (name.empty() || name.size() > kMaxKeyBytes) {
        return core::fail("backend name must be 1..", std::to_string(kMaxKeyBytes), " bytes");
    }
    const uint64_t hash = keyHash(name);
    uint32_t r = 0;
    bool found = false;
    if (!probe(
            backend_capacity_, hash, name,
            [&](uint32_t i) -> Atomic64& { return backends_[i].key_hash; },
            [&](uint32_t i) -> const KeyShm& { return backend_keys_[i]; }, r, found)) {
        return core::fail("backend table full (", std::to_string(backend_capacity_), " records)");
    }
    BackendRecordShm& rec = backends_[r];
    if (!found) {
        storeKey(backend_keys_[r], name);
        rec.rotation.store(0);
        rec.fail_open_rotation.store(0);
    }
    rec.generation.store(generation);
    if (!found) {
        rec.key_hash.store(hash);
    }
    return r;
}

uint32_t UpstreamTable::collectGarbage(uint32_t serving_generation) {
    uint32_t oldest = serving_generation;
    uint64_t mask = header_->active_slots.load();
    while (mask != 0) {
        const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
        mask &= mask - 1;
        const uint32_t g = header_->slot_generation[s].load();
        if (g == 0) {
            return 0;  // a process between fork and pinSlot: it may run any recent plan
        }
        oldest = std::min(oldest, g);
    }
    uint32_t freed = 0;
    for (uint32_t r = 0; r < capacity_; ++r) {
        if (records_[r].key_hash.load() >= kFirstKeyHash &&
            records_[r].generation.load() < oldest) {
            records_[r].key_hash.store(kKeyTombstone);
            ++freed;
        }
    }
    for (uint32_t b = 0; b < backend_capacity_; ++b) {
        if (backends_[b].key_hash.load() >= kFirstKeyHash &&
            backends_[b].generation.load() < oldest) {
            backends_[b].key_hash.store(kKeyTombstone);
            ++freed;
        }
    }
    return freed;
}

shm::SlotHook UpstreamTable::slotHook() {
    shm::SlotHook h;
    h.name = "balancer.upstreams";
    h.ctx = this;
    h.on_acquire = [](void* ctx, uint32_t slot) {
        static_cast<UpstreamTable*>(ctx)->activateSlot(slot);
    };
    h.on_reclaim = [](void* ctx, uint32_t slot) {
        static_cast<UpstreamTable*>(ctx)->reclaimSlot(slot);
    };
    return h;
}

void UpstreamTable::activateSlot(uint32_t slot) {
    header_->slot_generation[slot].store(0);
    header_->active_slots.fetchOr(1ull << slot);
}

void UpstreamTable::pinSlot(uint32_t slot, uint32_t generation) {
    header_->slot_generation[slot].store(generation);
    header_->active_slots.fetchOr(1ull << slot);
}

void UpstreamTable::reclaimSlot(uint32_t slot) {
    uint64_t token = 0;
    // Another master (binary upgrade) may be folding one of its own slots; wait for it. If it died
    // mid-fold, its version stays odd forever: take over after a bounded wait.
    for (int i = 0; !SeqLock::tryBeginWrite(header_->fold_seq, SeqLock::kMasterWriter, token);
         ++i) {
        if (i > (1 << 20)) {
            SeqLock::voidIfOwnedBy(header_->fold_seq, SeqLock::kMasterWriter);
        }
    }
    const size_t gauge = static_cast<size_t>(slot) * capacity_;
    const size_t retired = static_cast<size_t>(kRetiredColumn) * capacity_;
    for (uint32_t r = 0; r < capacity_; ++r) {
        inflight_[gauge + r].store(0, std::memory_order_relaxed);
        passive_[gauge + r].store(0, std::memory_order_relaxed);
        for (uint32_t k = 0; k < kSlotGauges; ++k) {
            gauges_[k][gauge + r].store(0, std::memory_order_relaxed);  // died with the process
        }
        // Relaxed loads/stores inside the fold seqlock: the fences in SeqLock order them. The
        // retired column is updated with fetchAdd because two masters may fold at once.
        const uint64_t req = requests_[gauge + r].load(std::memory_order_relaxed);
        if (req != 0) {
            requests_[retired + r].fetchAdd(req, std::memory_order_relaxed);
            requests_[gauge + r].store(0, std::memory_order_relaxed);
        }
        const uint64_t fail = failures_[gauge + r].load(std::memory_order_relaxed);
        if (fail != 0) {
            failures_[retired + r].fetchAdd(fail, std::memory_order_relaxed);
            failures_[gauge + r].store(0, std::memory_order_relaxed);
        }
        SeqLock::voidIfOwnedBy(records_[r].health_seq, slot);
    }
    SeqLock::endWrite(header_->fold_seq, token);
    header_->slot_generation[slot].store(0);
    header_->active_slots.fetchAnd(~(1ull << slot));
}

uint32_t UpstreamTable::reclaimInactive(const shm::SlotTable& slots) {
    uint32_t n = 0;
    uint64_t mask = header_->active_slots.load();
    while (mask != 0) {
        const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
        mask &= mask - 1;
        if (slots.info(s).state == shm::SlotState::Free) {
            reclaimSlot(s);
            ++n;
        }
    }
    return n;
}

void UpstreamTable::acquire(uint32_t record, uint32_t slot) {
    const size_t cell = static_cast<size_t>(slot) * capacity_ + record;
    bump(inflight_[cell], 1u);
    bump(requests_[cell], 1u);
}

void UpstreamTable::gaugeAdd(SlotGauge g, uint32_t record, uint32_t slot, int delta) {
    Atomic32& cell =
        gauges_[static_cast<size_t>(g)][static_cast<size_t>(slot) * capacity_ + record];
    // Relaxed: single writer (this slot's process); readers only sum an advisory gauge.
    const uint32_t v = cell.load(std::memory_order_relaxed);
    cell.store(delta >= 0
                   ? v + static_cast<uint32_t>(delta)
                   : (v >= static_cast<uint32_t>(-delta) ? v - static_cast<uint32_t>(-delta) : 0),
               std::memory_order_relaxed);
}

uint64_t UpstreamTable::gaugeSum(SlotGauge g, uint32_t record, uint64_t mask) const {
    uint64_t sum = 0;
    const Atomic32* col = gauges_[static_cast<size_t>(g)];
    while (mask != 0) {
        const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
        mask &= mask - 1;
        sum += col[static_cast<size_t>(s) * capacity_ + record].load(std::memory_order_relaxed);
    }
    return sum;
}

void UpstreamTable::release(uint32_t record, uint32_t slot) {
    Atomic32& cell = inflight_[static_cast<size_t>(slot) * capacity_ + record];
    // Relaxed: single writer (see bump()).
    const uint32_t v = cell.load(std::memory_order_relaxed);
    if (v != 0) {
        cell.store(v - 1, std::memory_order_relaxed);
    }
}

bool UpstreamTable::reportFailure(uint32_t record, uint32_t slot, uint64_t now_us,
                                  const EjectionPolicy& p) {
    const uint32_t max_fails = p.max_fails;
    const uint64_t fail_timeout_us = p.window_us;
    const size_t cell = static_cast<size_t>(slot) * capacity_ + record;
    bump(failures_[cell], 1u);
    if ((max_fails == 0 && !p.rate_tripped) || fail_timeout_us == 0) {
        return false;
    }
    UpstreamRecordShm& rec = records_[record];
    const uint64_t now_ms = now_us / 1000;
    const uint64_t window_ms = fail_timeout_us / 1000;
    const uint64_t epoch_ms = rec.passive_epoch_us.load() / 1000;
    auto fresh = [&](uint64_t start_ms) {
        return start_ms >= epoch_ms && start_ms + window_ms >= now_ms;
    };

    // Our own window: single writer, relaxed (the sum below tolerates any interleaving).
    const uint64_t w = passive_[cell].load(std::memory_order_relaxed);
    uint64_t start_ms = w >> kPassiveStartShift;
    uint64_t count = w & kPassiveCountMask;
    if (count == 0 || !fresh(start_ms)) {
        start_ms = now_ms;
        count = 0;
    }
    count = std::min(count + 1, kPassiveCountMask);
    passive_[cell].store((start_ms << kPassiveStartShift) | count, std::memory_order_relaxed);

    uint64_t total = 0;
    uint64_t mask = header_->active_slots.load() | (1ull << slot);
    while (mask != 0) {
        const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
        mask &= mask - 1;
        // Relaxed: an approximate sum is fine; the ejection itself is decided by one CAS.
        const uint64_t v =
            passive_[static_cast<size_t>(s) * capacity_ + record].load(std::memory_order_relaxed);
        if ((v & kPassiveCountMask) != 0 && fresh(v >> kPassiveStartShift)) {
            total += v & kPassiveCountMask;
        }
    }
    if (total < max_fails && !p.rate_tripped) {
        return false;
    }
    uint64_t until = rec.ejected_until_us.load();
    if (until > now_us) {
        return false;  // already ejected
    }
    if (!p.may_eject) {
        return false;  // the backend has as many out as it may (or this is its last usable one)
    }
    // The n-th ejection in a row (each within max_ejection_us of the previous one's end) lasts
    // n × the window, capped: a flapping upstream stays out longer and longer.
    uint64_t n = 1;
    if (p.max_ejection_us > 0 && until != 0 && now_us < until + p.max_ejection_us) {
        n = std::min<uint64_t>(rec.ejections.load(std::memory_order_relaxed) + 1, 1u << 16);
    }
    uint64_t len = fail_timeout_us;
    if (p.max_ejection_us > 0) {
        len = std::min(fail_timeout_us * n, std::max(p.max_ejection_us, fail_timeout_us));
    }
    const uint64_t new_until = now_us + len;
    if (!rec.ejected_until_us.cas(until, new_until)) {
        return false;  // another worker ejected it first
    }
    // Relaxed: written only by the worker that won the CAS above; read for statistics and by
    // the next ejection, which follows this one by at least `len`.
    rec.ejections.store(n, std::memory_order_relaxed);
    rec.ejections_total.fetchAdd(1, std::memory_order_relaxed);
    // Failures from windows that started before the ejection ends no longer count.
    rec.passive_epoch_us.store(new_until);
    return true;
}

void UpstreamTable::reportSuccess(uint32_t record, uint32_t slot) {
    Atomic64& cell = passive_[static_cast<size_t>(slot) * capacity_ + record];
    // Relaxed: single writer; see reportFailure().
    if (cell.load(std::memory_order_relaxed) != 0) {
        cell.store(0, std::memory_order_relaxed);
    }
}

HealthTransition UpstreamTable::recordCheck(uint32_t record, uint32_t writer, bool ok,
                                            uint64_t now_us, HealthError err, uint16_t http_status,
                                            const HealthThresholds& thresholds) {
    UpstreamRecordShm& rec = records_[record];
    uint64_t token = 0;
    if (!SeqLock::tryBeginWrite(rec.health_seq, writer, token)) {
        return HealthTransition::Busy;
    }
    const uint64_t h = rec.health.load(std::memory_order_relaxed);  // we are the only writer
    bool healthy = (h & kHealthHealthy) != 0;
    uint64_t fails = (h >> kHealthFailShift) & kHealthCounterMask;
    uint64_t oks = (h >> kHealthOkShift) & kHealthCounterMask;
    const uint64_t fail_th = std::max<uint32_t>(thresholds.failure_threshold, 1);
    const uint64_t ok_th = std::max<uint32_t>(thresholds.success_threshold, 1);
    HealthTransition t = HealthTransition::None;
    if (ok) {
        oks = std::min(oks + 1, kHealthCounterMask);
        fails = 0;
        if (!healthy && oks >= ok_th) {
            healthy = true;
            t = HealthTransition::BecameHealthy;
        }
    } else {
        fails = std::min(fails + 1, kHealthCounterMask);
        oks = 0;
        if (healthy && fails >= fail_th) {
            healthy = false;
            t = HealthTransition::BecameUnhealthy;
        }
    }
    rec.health.store((h & kHealthDrained) | (healthy ? kHealthHealthy : 0) |
                     (fails << kHealthFailShift) | (oks << kHealthOkShift));
    // Relaxed inside the seqlock: SeqLock's fences order these for readers.
    rec.last_check_us.store(now_us, std::memory_order_relaxed);
    const uint32_t code = ok ? 0u : static_cast<uint32_t>(err);
    rec.last_error.store(code | (uint32_t{http_status} << 16), std::memory_order_relaxed);
    if (t != HealthTransition::None) {
        bump(rec.health_changes, 1u);
    }
    SeqLock::endWrite(rec.health_seq, token);
    return t;
}

bool UpstreamTable::setHealth(uint32_t record, uint32_t writer, bool healthy, uint64_t now_us,
                              HealthError err, uint16_t http_status) {
    UpstreamRecordShm& rec = records_[record];
    uint64_t token = 0;
    if (!SeqLock::tryBeginWrite(rec.health_seq, writer, token)) {
        return false;
    }
    const uint64_t h = rec.health.load(std::memory_order_relaxed);  // we are the only writer
    rec.health.store((h & kHealthDrained) | (healthy ? kHealthHealthy : 0));
    // Relaxed inside the seqlock: SeqLock's fences order these for readers.
    rec.last_check_us.store(now_us, std::memory_order_relaxed);
    rec.last_error.store(static_cast<uint32_t>(err) | (uint32_t{http_status} << 16),
                         std::memory_order_relaxed);
    if (((h & kHealthHealthy) != 0) != healthy) {
        bump(rec.health_changes, 1u);
    }
    SeqLock::endWrite(rec.health_seq, token);
    return true;
}

bool UpstreamTable::setDrained(uint32_t record, uint32_t writer, bool drained) {
    UpstreamRecordShm& rec = records_[record];
    uint64_t token = 0;
    if (!SeqLock::tryBeginWrite(rec.health_seq, writer, token)) {
        return false;
    }
    const uint64_t h = rec.health.load(std::memory_order_relaxed);  // we are the only writer
    rec.health.store(drained ? (h | kHealthDrained) : (h & ~kHealthDrained));
    SeqLock::endWrite(rec.health_seq, token);
    return true;
}

uint64_t UpstreamTable::sumCounter(const Atomic64* column0, uint32_t record, uint64_t mask) const {
    // Relaxed inside the fold seqlock read section (see snapshot()).
    uint64_t sum = column0[static_cast<size_t>(kRetiredColumn) * capacity_ + record].load(
        std::memory_order_relaxed);
    while (mask != 0) {
        const unsigned s = static_cast<unsigned>(__builtin_ctzll(mask));
        mask &= mask - 1;
        sum += column0[static_cast<size_t>(s) * capacity_ + record].load(std::memory_order_relaxed);
    }
    return sum;
}

UpstreamSnapshot UpstreamTable::snapshot(uint32_t record, uint64_t now_us) const {
    const UpstreamRecordShm& rec = records_[record];
    UpstreamSnapshot out;
    bool ok = false;
    uint64_t h = 0;
    uint32_t err = 0;
    for (int i = 0; i < SeqLock::kReadAttempts && !ok; ++i) {
        const uint64_t v = SeqLock::readBegin(rec.health_seq);
        if (SeqLock::isWriting(v)) {
            continue;
        }
        h = rec.health.load(std::memory_order_relaxed);
        out.last_check_us = rec.last_check_us.load(std::memory_order_relaxed);
        err = rec.last_error.load(std::memory_order_relaxed);
        out.health_changes = rec.health_changes.load(std::memory_order_relaxed);
        ok = SeqLock::readValid(rec.health_seq, v);
    }
    if (!ok) {
        out.consistent = false;
        h = rec.health.load();
        out.last_check_us = rec.last_check_us.load();
        err = rec.last_error.load();
        out.health_changes = rec.health_changes.load();
    }
    out.healthy = (h & kHealthHealthy) != 0;
    out.drained = (h & kHealthDrained) != 0;
    out.consecutive_failures = static_cast<uint16_t>((h >> kHealthFailShift) & kHealthCounterMask);
    out.consecutive_successes = static_cast<uint16_t>((h >> kHealthOkShift) & kHealthCounterMask);
    out.last_error = static_cast<HealthError>(err & 0xffff);
    out.last_http_status = static_cast<uint16_t>(err >> 16);
    out.ejected_until_us = rec.ejected_until_us.load();
    out.ejected = out.ejected_until_us > now_us;
    out.ejections = rec.ejections.load(std::memory_order_relaxed);
    out.ejections_total = rec.ejections_total.load(std::memory_order_relaxed);
    out.inflight = inflight(record);

    bool counters_ok = false;
    for (int i = 0; i < SeqLock::kReadAttempts && !counters_ok; ++i) {
        const uint64_t v = SeqLock::readBegin(header_->fold_seq);
        if (SeqLock::isWriting(v)) {
            continue;
        }
        const uint64_t mask = header_->active_slots.load();
        out.requests_total = sumCounter(requests_, record, mask);
        out.failures_total = sumCounter(failures_, record, mask);
        counters_ok = SeqLock::readValid(header_->fold_seq, v);
    }
    if (!counters_ok) {
        // A fold stayed in progress for every attempt: report the unsynchronised sum.
        out.consistent = false;
        const uint64_t mask = header_->active_slots.load();
        out.requests_total = sumCounter(requests_, record, mask);
        out.failures_total = sumCounter(failures_, record, mask);
    }
    return out;
}

}  // namespace photon::mod::balancer
