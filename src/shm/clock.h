// SPDX-License-Identifier: Apache-2.0
// Monotonic microseconds: the only time unit stored in shared memory.
#pragma once

#include <time.h>

#include <cstdint>

namespace photon::shm {

/// CLOCK_MONOTONIC in microseconds. The clock is system-wide, so values written by one process are
/// comparable in every other process on the host, including a re-executed binary after an upgrade.
/// Never use libev's ev_now() (wall-clock based) for anything stored in shm. One vDSO call; workers
/// should read it once per loop iteration and pass the value down instead of calling it per
/// request.
inline uint64_t monotonicMicros() noexcept {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace photon::shm
