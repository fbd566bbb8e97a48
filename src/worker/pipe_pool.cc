// SPDX-License-Identifier: Apache-2.0
#include "worker/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace photon::worker {

namespace {

void closePipe(Pipe& p) {
    if (p.rfd >= 0) {
        ::close(p.rfd);
    }
    if (p.wfd >= 0) {
        ::close(p.wfd);
    }
    p = Pipe{};
}

}  // namespace

PipePool::~PipePool() { trim(); }

bool PipePool::acquire(Pipe& p) {
    if (p.open()) {
        return true;
    }
    if (!free_.empty()) {
        p = free_.back();
        free_.pop_back();
        return true;
    }
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        return false;
    }
    p.rfd = fds[0];
    p.wfd = fds[1];
    p.len = 0;
    return true;
}

void PipePool::release(Pipe& p) {
    if (!p.open()) {
        return;
    }
    if (p.len != 0 || p.junk || free_.size() >= kMaxFree) {
        closePipe(p);
        return;
    }
    free_.push_back(p);
    p = Pipe{};
}

void PipePool::trim() {
    for (Pipe& p : free_) {
        closePipe(p);
    }
    free_.clear();
}

}  // namespace photon::worker
