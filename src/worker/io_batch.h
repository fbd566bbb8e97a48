// SPDX-License-Identifier: Apache-2.0
// Socket reads and writes batched per loop iteration: the connections queue what they want to
// receive or send while the loop runs its callbacks, and the lot is carried out at the end of
// the iteration with one io_uring_enter(2) instead of one system call each.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <vector>

struct io_uring;
struct ssl_st;

namespace photon::worker {

/// What one queued operation does, filled in at flush time from its connection's state then.
struct IoArgs {
    int fd = -1;
    bool send = false;
    /// A TLS connection's session: the operation is SSL_read/SSL_write, carried out at once
    /// (not through the ring), with the same result convention.
    struct ssl_st* ssl = nullptr;
    int iovcnt = 1;
    struct iovec iov[2];
};

/// A connection's receive or send. Embedded in the connection; at most one of each kind is
/// queued at a time. Every operation is non-blocking (MSG_DONTWAIT): it completes during the
/// flush that carries it out, with -EAGAIN when the socket is not ready, so nothing is ever
/// left in the kernel between loop iterations.
struct IoOp {
    /// Describes the operation from the connection's current state; false drops it.
    bool (*prep)(IoOp*, IoArgs&) = nullptr;
    /// The result: bytes moved, 0 at end of stream (receive), or -errno.
    void (*done)(IoOp*, ssize_t) = nullptr;
    void* owner = nullptr;
    /// Where a receive's bytes land (buffer, offset), recorded by its prep, so that its
    /// completion can tell whether the buffer's data moved meanwhile.
    char* land_buf = nullptr;
    uint32_t land_off = 0;
    int32_t queued = -1;   // index in the batch to run next
    int32_t running = -1;  // index in the batch being run
    bool busy() const { return queued >= 0 || running >= 0; }
};

/// One per worker process. Not thread-safe (one loop per process).
class IoBatch {
public:
    IoBatch() = default;
    ~IoBatch();
    IoBatch(const IoBatch&) = delete;
    IoBatch& operator=(const IoBatch&) = delete;

    /// Sets up an io_uring when `use_ring` is true and the kernel allows it; otherwise (or when
    /// it is refused) every operation is one plain system call at flush time. A round of fewer
    /// than `min_ring_round` operations also uses plain system calls: one operation alone is
    /// cheaper that way. Returns whether the ring is in use.
    bool init(bool use_ring, size_t min_ring_round = 2);
    bool usingRing() const { return ring_ != nullptr; }

    /// Queues `op` for the next flush; nothing when it is queued or running already.
    void queue(IoOp* op) {
        if (op->busy()) {
            return;
        }
        op->queued = static_cast<int32_t>(next_.size());
        next_.push_back(op);
    }
    /// Forgets `op` (its connection is closing or changed course): it is not carried out, or
    /// if the kernel has already carried it out, its completion is not delivered.
    void cancel(IoOp* op) {
        if (op->queued >= 0) {
            next_[static_cast<size_t>(op->queued)] = nullptr;
            op->queued = -1;
        }
        if (op->running >= 0) {
            cur_[static_cast<size_t>(op->running)] = nullptr;
            op->running = -1;
        }
    }
    bool pending() const { return !next_.empty(); }

    /// Carries out every queued operation and delivers its completion, then whatever those
    /// completions queued, until nothing is left. Called before the loop waits for events.
    void flush();

    /// Operations carried out and io_uring_enter calls made (statistics, tests).
    uint64_t ops() const { return ops_; }
    uint64_t enters() const { return enters_; }

private:
    void runPlain(size_t from);
    void runRing();
    void dropRing(const char* why, int err);

    io_uring* ring_ = nullptr;
    unsigned ring_entries_ = 0;
    size_t min_ring_round_ = 2;
    std::vector<IoOp*> next_;
    std::vector<IoOp*> cur_;
    std::vector<IoArgs> args_;
    std::vector<msghdr> msgs_;
    std::vector<ssize_t> res_;
    std::vector<uint32_t> sq_order_;  // batch indices in submission order
    uint64_t ops_ = 0;
    uint64_t enters_ = 0;
};

}  // namespace photon::worker
