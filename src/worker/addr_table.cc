// SPDX-License-Identifier: Apache-2.0
// Seqlock-protected reads and writes of resolved upstream addresses.
#include "worker/addr_table.h"

#include <cstring>

#include "shm/seqlock.h"

namespace photon::worker {

bool AddrTable::load(uint32_t record, sockaddr_storage& out, socklen_t& len) const {
    if (e_ == nullptr || record >= cap_) {
        return false;
    }
    const AddrEntryShm& e = e_[record];
    uint64_t words[16];
    for (int attempt = 0; attempt < shm::SeqLock::kReadAttempts; ++attempt) {
        uint64_t v = shm::SeqLock::readBegin(e.version);
        if (shm::SeqLock::isWriting(v)) {
            continue;
        }
        // Relaxed loads: the seqlock's fences order them (see shm/seqlock.h).
        uint64_t l = e.len.load(std::memory_order_relaxed);
        for (int i = 0; i < 16; ++i) {
            words[i] = e.words[i].load(std::memory_order_relaxed);
        }
        if (!shm::SeqLock::readValid(e.version, v)) {
            continue;
        }
        if (l == 0 || l > sizeof(sockaddr_storage)) {
            return false;
        }
        std::memcpy(&out, words, sizeof out);
        len = static_cast<socklen_t>(l);
        return true;
    }
    return false;
}

bool AddrTable::store(uint32_t record, const sockaddr_storage& sa, socklen_t len) {
    if (e_ == nullptr || record >= cap_) {
        return false;
    }
    AddrEntryShm& e = e_[record];
    uint64_t words[16] = {};
    if (len > 0) {
        std::memcpy(words, &sa, sizeof sa);
    }
    bool same = e.len.load(std::memory_order_relaxed) == len;
    for (int i = 0; same && i < 16; ++i) {
        same = e.words[i].load(std::memory_order_relaxed) == words[i];
    }
    if (same) {
        return false;
    }
    uint64_t token;
    // Only the master writes, so the word is never odd here except after a master crash left it
    // so; a fresh master voids that before use (segment re-creation zeroes it).
    if (!shm::SeqLock::tryBeginWrite(e.version, shm::SeqLock::kMasterWriter, token)) {
        shm::SeqLock::voidIfOwnedBy(e.version, shm::SeqLock::kMasterWriter);
        if (!shm::SeqLock::tryBeginWrite(e.version, shm::SeqLock::kMasterWriter, token)) {
            return false;
        }
    }
    e.len.store(len, std::memory_order_relaxed);
    for (int i = 0; i < 16; ++i) {
        e.words[i].store(words[i], std::memory_order_relaxed);
    }
    shm::SeqLock::endWrite(e.version, token);
    return true;
}

}  // namespace photon::worker
