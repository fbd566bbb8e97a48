// SPDX-License-Identifier: Apache-2.0
// Shared-memory layout of the upstream table: upstream/backend records, keys and per-slot columns.
#pragma once

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"
#include "shm/slot_layout.h"

namespace photon::mod::balancer {

using shm::Atomic32;
using shm::Atomic64;

/// Bump whenever any struct below, the column order or the geometry rules change.
inline constexpr uint32_t kUpstreamLayoutVersion = 2;

/// Columns of the counter arrays: one per process slot plus the retired column that collects the
/// counters of reclaimed slots (so sums never go backwards).
inline constexpr uint32_t kSlotColumns = shm::kMaxSlots + 1;

/// Per-slot gauges kept per upstream record beside in-flight (UpstreamTable::gaugeAdd).
enum class SlotGauge : uint8_t { Retrying, Connecting };
inline constexpr uint32_t kSlotGauges = 2;
inline constexpr uint32_t kRetiredColumn = shm::kMaxSlots;

/// Key hash values with a special meaning; real hashes are remapped to >= kFirstKeyHash.
inline constexpr uint64_t kKeyFree = 0;
inline constexpr uint64_t kKeyTombstone = 1;
inline constexpr uint64_t kFirstKeyHash = 2;

/// Bytes available for one stored key ("<backend>\n<address>\n<occurrence>" or a backend name).
inline constexpr uint32_t kMaxKeyBytes = 504;

/// Bits of UpstreamRecordShm::health.
inline constexpr uint64_t kHealthHealthy = 1ull << 0;  // passes active checks (or unchecked)
inline constexpr uint64_t kHealthDrained = 1ull << 1;  // administratively removed from rotation
inline constexpr unsigned kHealthFailShift = 16;       // 16 bits: consecutive failed checks
inline constexpr unsigned kHealthOkShift = 32;         // 16 bits: consecutive passed checks

/// Segment body prologue. Offsets of everything else follow from the two capacities (see
/// TableGeometry in upstream_table.cc), which the segment fingerprint pins.
struct UpstreamTableHeaderShm {
    Atomic32 capacity;          // upstream records (power of two); master at format
    Atomic32 backend_capacity;  // backend records (power of two); master at format
    Atomic32 max_slots;         // shm::kMaxSlots at format; master
    Atomic32 formatted;         // 1 once the fields above are set; master, release, last
    Atomic64 active_slots;      // bit s: slot s may have non-zero columns. Set by the master's
                                // acquire hook and by the slot's process (fetchOr), cleared by
                                // reclaim (fetchAnd). Acquire/release.
    Atomic64 fold_seq;          // SeqLock over the counter columns while reclaim folds a slot
                                // into the retired column; master (writer kMasterWriter)
    Atomic32 generation;        // last plan generation handed out; master
    Atomic32 reserved0;
    Atomic64 reserved1[3];
    Atomic32 slot_generation[shm::kMaxSlots];  // plan generation slot s runs; 0 = active but not
                                               // pinned yet (blocks garbage collection). Master
                                               // (acquire, reclaim) and slot s itself (pin).
};
static_assert(std::is_standard_layout_v<UpstreamTableHeaderShm> &&
              std::is_trivially_copyable_v<UpstreamTableHeaderShm>);
static_assert(sizeof(UpstreamTableHeaderShm) == 64 + 4 * shm::kMaxSlots,
              "layout changed: bump kUpstreamLayoutVersion");

/// State of one upstream of one backend, keyed by (backend name, address, occurrence). Exactly one
/// cache line; pick reads `health` and `ejected_until_us` from it.
struct UpstreamRecordShm {
    Atomic64 key_hash;          // kKeyFree, kKeyTombstone or xxh3 of the key (>= kFirstKeyHash);
                                // master, release after the key and every field are written
    Atomic64 health;            // kHealth* bits; written under health_seq by the health writer
                                // (helper) or the master; read by anyone as one word, acquire
    Atomic64 ejected_until_us;  // passive ejection end, CLOCK_MONOTONIC µs (0 = never ejected);
                                // workers, CAS acq_rel
    Atomic64 passive_epoch_us;  // failures in windows that began before this are ignored; the
                                // worker that ejects (store, release)
    Atomic64 health_seq;        // shm::SeqLock over health, last_check_us, last_error and
                                // health_changes
    Atomic64 last_check_us;     // CLOCK_MONOTONIC µs of the last recorded check; under health_seq
    Atomic32 last_error;        // low 16 bits HealthError, high 16 bits HTTP status of the last
                                // check; under health_seq
    Atomic32 generation;        // last plan generation that bound this record; master
    Atomic64 health_changes;    // healthy<->unhealthy transitions; under health_seq
    // Second cache line: read on the failure path only, never by pick.
    Atomic64 ejections;        // consecutive ejections (the multiplier of the next one's length);
                               // written by the worker whose CAS ejected it
    Atomic64 ejections_total;  // every passive ejection (statistics); fetchAdd
    Atomic64 reserved2[6];
};
static_assert(std::is_standard_layout_v<UpstreamRecordShm> &&
              std::is_trivially_copyable_v<UpstreamRecordShm>);
static_assert(sizeof(UpstreamRecordShm) == 128, "layout changed: bump kUpstreamLayoutVersion");

/// Shared state of one backend, keyed by its name.
struct BackendRecordShm {
    Atomic64 key_hash;  // as UpstreamRecordShm::key_hash
    Atomic64 rotation;  // pick counter shared by all workers (RR/WRR position, least-conn tie
                        // rotation); workers fetchAdd. Wraps harmlessly.
    Atomic64 fail_open_rotation;  // the same for fail-open picks, kept apart so that a failed
                                  // normal pass does not move fail-open picks in lockstep
    Atomic32 generation;          // last plan generation that bound this record; master
    Atomic32 reserved0;
    Atomic64 reserved1[4];
};
static_assert(std::is_standard_layout_v<BackendRecordShm> &&
              std::is_trivially_copyable_v<BackendRecordShm>);
static_assert(sizeof(BackendRecordShm) == 64, "layout changed: bump kUpstreamLayoutVersion");

/// The full key of a record, stored for collision checks. Written by the master before the
/// record's key_hash is published; read only by masters.
struct KeyShm {
    Atomic32 length;  // bytes used in `bytes`
    Atomic32 reserved0;
    uint8_t bytes[kMaxKeyBytes];
};
static_assert(std::is_standard_layout_v<KeyShm> && std::is_trivially_copyable_v<KeyShm>);
static_assert(sizeof(KeyShm) == 512, "layout changed: bump kUpstreamLayoutVersion");

// Per-slot columns follow the records, each stored slot-major ([slot][record]) so that a worker
// only ever writes cache lines of its own slot:
//   Atomic32 inflight[kMaxSlots][capacity]   gauge: requests in flight; slot's process
//   Atomic64 passive[kMaxSlots][capacity]    gauge: failure window, (start ms << 24) | count;
//                                            slot's process
//   Atomic64 requests[kSlotColumns][capacity]  counter: upstream attempts; slot's process,
//                                            retired column by the master's reclaim
//   Atomic64 failures[kSlotColumns][capacity]  counter: passive failures reported; likewise
// Gauges of a slot are zeroed by reclaim; counters are added into kRetiredColumn, then zeroed.

}  // namespace photon::mod::balancer
