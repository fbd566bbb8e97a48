// SPDX-License-Identifier: Apache-2.0
// Resolved upstream addresses in shared memory: the master re-resolves host names periodically
// (off every event loop) and publishes them here; workers and the helper read them on connect.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"

namespace photon::worker {

inline constexpr uint32_t kAddrTableLayoutVersion = 1;

/// One upstream's current address, indexed like the upstream table's records (so it survives
/// reloads with them). Writer: the master only, under the seqlock in `version` (writer id
/// SeqLock::kMasterWriter); readers: any process, lock-free with bounded retries.
struct AddrEntryShm {
    shm::Atomic64 version;    // SeqLock word
    shm::Atomic64 len;        // socklen_t of the address; 0 = not resolved (yet)
    shm::Atomic64 words[16];  // sockaddr_storage bytes (relaxed stores/loads inside the seqlock)
};
static_assert(std::is_trivially_copyable_v<AddrEntryShm> && sizeof(AddrEntryShm) == 144,
              "layout changed: bump kAddrTableLayoutVersion");
static_assert(sizeof(sockaddr_storage) == 128);

/// A view of the entries (no ownership). Cheap to copy.
class AddrTable {
public:
    AddrTable() = default;
    AddrTable(AddrEntryShm* entries, uint32_t capacity) : e_(entries), cap_(capacity) {}
    static uint64_t bodyBytes(uint32_t capacity) {
        return uint64_t{capacity} * sizeof(AddrEntryShm);
    }

    /// Copies record's address into `out`. False when it never resolved, the record is out of
    /// range, or a write stayed in progress for every attempt (the caller treats it as absent).
    bool load(uint32_t record, sockaddr_storage& out, socklen_t& len) const;
    /// Master: publishes an address (len 0 marks it unresolved). Returns true if it changed.
    bool store(uint32_t record, const sockaddr_storage& sa, socklen_t len);
    /// The entry's version word: changes whenever the address does (0 for a missing table).
    /// Connections remember it, so one made to an address the name no longer has is not reused.
    uint64_t stamp(uint32_t record) const {
        return e_ == nullptr || record >= cap_ ? 0
                                               : e_[record].version.load(std::memory_order_acquire);
    }
    uint32_t capacity() const { return cap_; }

private:
    AddrEntryShm* e_ = nullptr;
    uint32_t cap_ = 0;
};

}  // namespace photon::worker
