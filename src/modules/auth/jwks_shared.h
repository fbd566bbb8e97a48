// SPDX-License-Identifier: Apache-2.0
// JWKS documents from a URL, shared with every worker: the master fetches them (at start, on an
// interval, and when a worker meets an unknown kid) and publishes the last good document in a
// shared-memory segment per authentication instance; workers re-read it when its version moves.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/config.h"
#include "core/result.h"
#include "shm/atomic.h"

namespace photon::mod::auth {

inline constexpr size_t kJwksMaxBytes = 256 * 1024;

/// One published document. `version` is a shm::SeqLock word written by the master only; the
/// document is copied as words, so a reader racing a write sees a torn copy and retries.
struct JwksShm {
    shm::Atomic64 version;
    shm::Atomic64 length;              // bytes of the document
    shm::Atomic64 content_hash;        // xxh3 of the document (the master skips equal ones)
    shm::Atomic64 refresh_request_us;  // CLOCK_MONOTONIC: a worker met an unknown kid
    shm::Atomic64 reserved[4];
    shm::Atomic64 words[kJwksMaxBytes / 8];
};
static_assert(std::is_trivially_copyable_v<JwksShm>, "shm layout");
inline constexpr uint32_t kJwksLayoutVersion = 1;

/// The document and its version; false when none is published yet or the reads kept racing a
/// write (try again on a later request). Any process.
bool readJwks(const JwksShm& s, std::string& doc, uint64_t& version);

/// Master: creates or re-attaches the segment of every instance with a jwks_url, and fetches a
/// fresh segment's document at once (blocking, bounded by jwks_timeout).
core::Result<void> mapRemoteJwks(const core::Config& cfg, std::string_view shm_instance);
/// Master, about once a second: fetches what is due (interval, or a worker's request at most
/// every 5 s). Blocking, bounded by each instance's jwks_timeout.
void remoteJwksTick(uint64_t now_us);
/// Master, clean exit.
void removeRemoteJwks();
/// The segment of `instance`'s JWKS URL, or nullptr (`photon -t`).
JwksShm* findRemoteJwks(std::string_view instance);

}  // namespace photon::mod::auth
