// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of the worker's socket I/O batch: one loop turn's worth of small sends and
// receives (one request-sized message per connection), carried out with one io_uring_enter or
// with one plain system call each. Time per operation.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "core/log.h"
#include "worker/io_batch.h"

namespace {

using photon::worker::IoArgs;
using photon::worker::IoBatch;
using photon::worker::IoOp;

constexpr char kMsg[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// A connected pair: `tx` sends kMsg on one end, `rx` receives it on the other.
struct Pair {
    int fds[2] = {-1, -1};
    char buf[256];
    IoOp tx{};
    IoOp rx{};
    Pair() {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
            fds[0] = fds[1] = -1;
        }
        tx = IoOp{[](IoOp* op, IoArgs& a) {
                      a.fd = static_cast<Pair*>(op->owner)->fds[0];
                      a.send = true;
                      a.iov[0] = {const_cast<char*>(kMsg), sizeof kMsg - 1};
                      return true;
                  },
                  [](IoOp*, ssize_t n) { benchmark::DoNotOptimize(n); }, this};
        rx = IoOp{[](IoOp* op, IoArgs& a) {
                      auto* p = static_cast<Pair*>(op->owner);
                      a.fd = p->fds[1];
                      a.iov[0] = {p->buf, sizeof p->buf};
                      return true;
                  },
                  [](IoOp*, ssize_t n) { benchmark::DoNotOptimize(n); }, this};
    }
    ~Pair() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;
};

/// Arg 0: connections per turn; arg 1: 1 = io_uring (even for one operation), 0 = plain system
/// calls.
void BM_IoBatch_SendThenReceive(benchmark::State& state) {
    photon::core::setLogLevel(photon::core::LogLevel::Error);
    const auto n = static_cast<size_t>(state.range(0));
    IoBatch batch;
    if (batch.init(state.range(1) != 0, 1) != (state.range(1) != 0)) {
        state.SkipWithError("io_uring is not available here");
        return;
    }
    std::vector<Pair> pairs(n);
    for (auto _ : state) {
        for (auto& p : pairs) {
            batch.queue(&p.tx);
        }
        batch.flush();
        for (auto& p : pairs) {
            batch.queue(&p.rx);
        }
        batch.flush();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n * 2));
    state.counters["enters_per_op"] =
        batch.ops() ? static_cast<double>(batch.enters()) / static_cast<double>(batch.ops()) : 0;
}
BENCHMARK(BM_IoBatch_SendThenReceive)
    ->ArgNames({"conns", "ring"})
    ->ArgsProduct({{1, 8, 32}, {0, 1}});

}  // namespace
