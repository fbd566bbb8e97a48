// SPDX-License-Identifier: Apache-2.0
#include "worker/io_batch.h"

#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/log.h"
#include "worker/tls_io.h"

namespace photon::worker {

namespace {
constexpr unsigned kRingEntries = 256;
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
constexpr ssize_t kNotRun = INT64_MIN;  // res_ of an operation the ring did not take
}  // namespace

IoBatch::~IoBatch() {
    if (ring_ != nullptr) {
        io_uring_queue_exit(ring_);
        delete ring_;
    }
}

bool IoBatch::init(bool use_ring, size_t min_ring_round) {
    min_ring_round_ = min_ring_round;
    if (!use_ring || ring_ != nullptr) {
        return ring_ != nullptr;
    }
    auto* ring = new io_uring;
    // Only this process submits, and every operation completes while it is being submitted, so
    // the kernel never needs to interrupt the task to post a completion. These flags need
    // Linux 6.0, which is also where a MSG_DONTWAIT socket operation reliably completes with
    // -EAGAIN instead of waiting inside the kernel: an older kernel gets plain system calls.
    const unsigned flags =
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int r = io_uring_queue_init(kRingEntries, ring, flags);
    if (r == 0) {
        io_uring_probe* probe = io_uring_get_probe_ring(ring);
        bool ops = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                   io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                   io_uring_opcode_supported(probe, IORING_OP_SENDMSG);
        if (probe != nullptr) {
            io_uring_free_probe(probe);
        }
        if (!ops) {
            io_uring_queue_exit(ring);
            r = -EOPNOTSUPP;
        }
    }
    if (r < 0) {
        LOG_INFO("io_uring unavailable (%s); one system call per socket read or write",
                 std::strerror(-r));
        delete ring;
        return false;
    }
    ring_ = ring;
    ring_entries_ = kRingEntries;
    sq_order_.reserve(kRingEntries);
    return true;
}

void IoBatch::dropRing(const char* why, int err) {
    LOG_ERROR("%s: %s; using plain system calls from now on", why, std::strerror(-err));
    io_uring_queue_exit(ring_);  // discards whatever was not submitted
    delete ring_;
    ring_ = nullptr;
}

void IoBatch::flush() {
    // Completions queue follow-up operations (a request read → its upstream write); each round
    // carries those out, and the chains end when a socket would block.
    while (!next_.empty()) {
        cur_.swap(next_);
        next_.clear();
        for (size_t i = 0; i < cur_.size(); ++i) {
            if (IoOp* op = cur_[i]) {
                op->queued = -1;
                op->running = static_cast<int32_t>(i);
            }
        }
        if (ring_ != nullptr && cur_.size() >= min_ring_round_) {
            runRing();
        } else {
            runPlain(0);
        }
        cur_.clear();
    }
}

void IoBatch::runPlain(size_t from) {
    for (size_t i = from; i < cur_.size(); ++i) {
        IoOp* op = cur_[i];
        if (op == nullptr) {
            continue;  // cancelled by an earlier completion
        }
        IoArgs a;
        bool go = op->prep(op, a);
        op->running = -1;
        cur_[i] = nullptr;
        if (!go) {
            continue;
        }
        ssize_t n;
        if (a.ssl != nullptr) {
            ++ops_;
            op->done(op, a.send ? tlsWritev(a.ssl, a.iov, a.iovcnt)
                                : tlsRead(a.ssl, a.iov[0].iov_base, a.iov[0].iov_len));
            continue;
        }
        do {
            if (!a.send) {
                n = ::recv(a.fd, a.iov[0].iov_base, a.iov[0].iov_len, MSG_DONTWAIT);
            } else if (a.iovcnt == 1) {
                n = ::send(a.fd, a.iov[0].iov_base, a.iov[0].iov_len, kSendFlags);
            } else {
                msghdr m{};
                m.msg_iov = a.iov;
                m.msg_iovlen = static_cast<size_t>(a.iovcnt);
                n = ::sendmsg(a.fd, &m, kSendFlags);
            }
        } while (n < 0 && errno == EINTR);
        ++ops_;
        op->done(op, n < 0 ? -errno : n);
    }
}

void IoBatch::runRing() {
    const size_t total = cur_.size();
    if (args_.size() < total) {
        args_.resize(total);
        msgs_.resize(total);
        res_.resize(total);
    }
    size_t i = 0;
    while (i < total) {
        // Describe up to a ring's worth of operations (their buffers stay put until they have
        // completed: nothing runs between the submission and the completions).
        size_t first = i;
        sq_order_.clear();
        for (; i < total && sq_order_.size() < ring_entries_; ++i) {
            IoOp* op = cur_[i];
            if (op == nullptr) {
                continue;
            }
            IoArgs& a = args_[i];
            a.iovcnt = 1;
            a.send = false;
            a.ssl = nullptr;
            if (!op->prep(op, a)) {
                op->running = -1;
                cur_[i] = nullptr;
                continue;
            }
            if (a.ssl != nullptr) {
                // TLS: the library does the socket I/O; its result is delivered with the
                // ring's completions of this round, in the same order of receives and sends.
                res_[i] = a.send ? tlsWritev(a.ssl, a.iov, a.iovcnt)
                                 : tlsRead(a.ssl, a.iov[0].iov_base, a.iov[0].iov_len);
                ++ops_;
                continue;
            }
            io_uring_sqe* sqe = io_uring_get_sqe(ring_);
            if (!a.send) {
                io_uring_prep_recv(sqe, a.fd, a.iov[0].iov_base, a.iov[0].iov_len, MSG_DONTWAIT);
            } else if (a.iovcnt == 1) {
                io_uring_prep_send(sqe, a.fd, a.iov[0].iov_base, a.iov[0].iov_len, kSendFlags);
            } else {
                msghdr& m = msgs_[i];
                m = msghdr{};
                m.msg_iov = a.iov;
                m.msg_iovlen = static_cast<size_t>(a.iovcnt);
                io_uring_prep_sendmsg(sqe, a.fd, &m, kSendFlags);
            }
            io_uring_sqe_set_data64(sqe, i);
            res_[i] = -ECANCELED;
            sq_order_.push_back(static_cast<uint32_t>(i));
        }
        const auto cnt = static_cast<int>(sq_order_.size());
        int r = 0;
        int submitted = 0;
        if (cnt > 0) {
            // Non-blocking operations complete while they are submitted, so no waiting is needed;
            // the wait below only covers a completion the kernel posted late.
            r = io_uring_submit(ring_);
            ++enters_;
            submitted = r < 0 ? 0 : std::min(r, cnt);
            if (submitted > 0 && io_uring_cq_ready(ring_) < static_cast<unsigned>(submitted)) {
                io_uring_cqe* cqe;
                int w;
                do {
                    w = io_uring_wait_cqe_nr(ring_, &cqe, static_cast<unsigned>(submitted));
                } while (w == -EINTR);
            }
            unsigned head;
            unsigned seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(ring_, head, cqe) {
                auto idx = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
                if (idx >= first && idx < i) {
                    res_[idx] = cqe->res;
                }
                ++seen;
            }
            io_uring_cq_advance(ring_, seen);
            ops_ += static_cast<uint64_t>(submitted);
            if (submitted < cnt) {
                // The ring refused some (it should not): those never ran. Carry them out as plain
                // system calls below, after the completions of the ones that did, and stop using
                // the ring.
                for (int k = submitted; k < cnt; ++k) {
                    res_[sq_order_[static_cast<size_t>(k)]] = kNotRun;
                }
            }
        }  // cnt > 0
        // Receives are delivered before sends: a connection's send completion may consume or
        // release a buffer that one of its receives has just filled past the end of its data.
        for (int sends = 0; sends < 2; ++sends) {
            for (size_t k = first; k < i; ++k) {
                IoOp* op = cur_[k];
                if (op == nullptr || args_[k].send != (sends == 1) || res_[k] == kNotRun) {
                    continue;  // dropped at prep, cancelled by an earlier completion, or later
                }
                op->running = -1;
                cur_[k] = nullptr;
                op->done(op, res_[k]);
            }
        }
        if (submitted < cnt) {
            dropRing("io_uring_submit", r < 0 ? r : -EIO);
            runPlain(first);  // the ones not run yet, and the rest of the batch
            return;
        }
    }
}

}  // namespace photon::worker
