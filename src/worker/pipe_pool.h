// SPDX-License-Identifier: Apache-2.0
// Kernel pipes for splice(2): large response bodies go upstream socket → pipe → client socket
// without being copied through user space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace photon::worker {

/// Both ends of a pipe and how many bytes it holds. Owned by one connection while in use.
struct Pipe {
    int rfd = -1;
    int wfd = -1;
    uint32_t len = 0;   // body bytes spliced in and not yet spliced out
    bool junk = false;  // also holds bytes the upstream sent beyond the body
    bool open() const { return rfd >= 0; }
};

/// A per-worker free list of empty pipes (creating one is two syscalls and two descriptors).
/// Not thread-safe (one loop per process).
class PipePool {
public:
    PipePool() = default;
    ~PipePool();
    PipePool(const PipePool&) = delete;
    PipePool& operator=(const PipePool&) = delete;

    /// Gives `p` an empty pipe. False when none can be made (descriptor limit): the caller
    /// copies through user space instead.
    bool acquire(Pipe& p);
    /// Takes `p` back. A pipe that still holds bytes is closed (its data belonged to a response
    /// that was abandoned, or is junk after a body); an empty one is kept for reuse.
    void release(Pipe& p);
    /// Closes the cached pipes (descriptor pressure, shutdown).
    void trim();
    size_t cached() const { return free_.size(); }

    /// Whether splice(2) is used at all. Turned off for good when the kernel refuses it.
    bool enabled() const { return enabled_; }
    void disable() { enabled_ = false; }

private:
    static constexpr size_t kMaxFree = 64;
    std::vector<Pipe> free_;
    bool enabled_ = true;
};

}  // namespace photon::worker
