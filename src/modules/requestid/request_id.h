// SPDX-License-Identifier: Apache-2.0
// Request ids: "req-<16 hex>-<counter hex>", unique across workers and restarts, lock-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace photon::mod::requestid {

/// Maximum length of a generated id ("req-" + 16 + "-" + 16) and of an accepted incoming id.
inline constexpr size_t kGeneratedMax = 37;
inline constexpr size_t kIncomingMax = 128;

/// Per-process generator. The 16-hex prefix is fixed per process: the process start time in
/// nanoseconds with the low byte replaced by the worker slot, so two workers (or two runs) never
/// share a prefix; the suffix is a per-process counter. No atomics: each worker owns its
/// generator, so uniqueness needs no shared state.
class Generator {
public:
    Generator() = default;
    /// Sets the prefix from a start time (ns since the epoch) and a process slot.
    void init(uint64_t start_ns, unsigned slot);
    /// Writes the next id into `out` (capacity ≥ kGeneratedMax) and returns its length.
    size_t next(char* out);

private:
    char prefix_[21] = {};  // "req-" + 16 hex + "-"
    uint64_t counter_ = 0;
};

/// True when an incoming X-Request-ID may be kept: 1..128 bytes of visible ASCII (0x21-0x7E).
bool isSaneIncoming(std::string_view id);

}  // namespace photon::mod::requestid
