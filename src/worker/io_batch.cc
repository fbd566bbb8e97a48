// SPDX-License-Identifier: Apache-2.0
#include "worker/io_batch.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace photon::worker {

namespace {
constexpr unsigned kRingEntries = 256;
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
}  // namespace

IoBatch::~IoBatch() {
    if (ring_ != nullptr) {
        io_uring_queue_exit(ring_);
        delete ring_;
    }
}

bool IoBatch::init(bool use_ring) {
    if (!use_ring || ring_ != nullptr) {
        return ring_ != nullptr;
    }
    auto* ring = new io_uring;
    // Only this process submits, and every operation completes while it is being submitted, so
    // the kernel never needs to interrupt the task to post a completion.
    const unsigned preferred =
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int r = io_uring_queue_init(kRingEntries, ring, preferred);
    if (r == -EINVAL) {
        r = io_uring_queue_init(kRingEntries, ring, 0);  // a kernel older than 6.0
    }
    if (r < 0) {
        LOG_INFO("io_uring unavailable (%s); one system call per socket read or write",
                 std::strerror(-r));
        delete ring;
        return false;
    }
    ring_ = ring;
    ring_entries_ = kRingEntries;
    return true;
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
        if (ring_ != nullptr) {
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
        unsigned cnt = 0;
        for (; i < total && cnt < ring_entries_; ++i) {
            IoOp* op = cur_[i];
            if (op == nullptr) {
                continue;
            }
            IoArgs& a = args_[i];
            a = IoArgs{};
            if (!op->prep(op, a)) {
                op->running = -1;
                cur_[i] = nullptr;
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
            ++cnt;
        }
        if (cnt == 0) {
            continue;
        }
        int r;
        do {
            r = io_uring_submit_and_wait(ring_, cnt);
        } while (r == -EINTR);
        ++enters_;
        ops_ += cnt;
        if (r < 0) {
            // The ring itself failed (it should not): these operations fail, so their
            // connections close instead of waiting, and plain system calls take over.
            LOG_ERROR("io_uring_enter: %s; using plain system calls from now on",
                      std::strerror(-r));
            for (size_t k = first; k < i; ++k) {
                res_[k] = -EIO;
            }
        }
        unsigned head;
        unsigned seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(ring_, head, cqe) {
            size_t idx = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
            if (idx < total) {
                res_[idx] = cqe->res;
            }
            ++seen;
        }
        io_uring_cq_advance(ring_, seen);
        // Receives are delivered before sends: a connection's send completion may consume or
        // release a buffer that one of its receives has just filled past the end of its data.
        for (int sends = 0; sends < 2; ++sends) {
            for (size_t k = first; k < i; ++k) {
                IoOp* op = cur_[k];
                if (op == nullptr || args_[k].send != (sends == 1)) {
                    continue;  // dropped at prep, cancelled by an earlier completion, or later
                }
                op->running = -1;
                cur_[k] = nullptr;
                op->done(op, res_[k]);
            }
        }
        if (r < 0) {
            io_uring_queue_exit(ring_);
            delete ring_;
            ring_ = nullptr;
            runPlain(i);
            return;
        }
    }
}

}  // namespace photon::worker
