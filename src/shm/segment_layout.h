// SPDX-License-Identifier: Apache-2.0
// SegmentHeader: the versioned prologue at offset 0 of every Photon shared-memory segment.
#pragma once

#include <cstdint>
#include <type_traits>

#include "shm/atomic.h"

namespace photon::shm {

/// "PHOTONSG" read as a little-endian integer.
inline constexpr uint64_t kSegmentMagic = 0x47534e4f544f4850ull;

/// Size of SegmentHeader; the body starts right after it, so it is 64-byte aligned.
inline constexpr uint32_t kSegmentHeaderBytes = 64;

/// First 64 bytes of every segment. Written once by the creating master (all fields before
/// `magic`, then `magic` with release), read by any process that attaches. A segment whose magic
/// is not kSegmentMagic is either being created or was left half-created by a master that died:
/// attach rejects it and create replaces it.
///
/// The header is not named ...Shm because every segment of every module shares it; it follows the
/// same layout rules (fixed-width words, explicit padding, no pointers).
struct SegmentHeader {
    Atomic64 magic;           // kSegmentMagic once the segment is fully created; creator, release
    Atomic32 layout_version;  // owner module's kLayoutVersion; creator
    Atomic32 header_bytes;    // kSegmentHeaderBytes; creator
    Atomic64 segment_bytes;   // total mapped size including this header; creator
    Atomic64 fingerprint;     // capacity fingerprint chosen by the owner module; creator
    Atomic32 creator_pid;     // pid of the master that created the segment; creator
    Atomic32 reserved0;
    Atomic64 created_us;  // CLOCK_MONOTONIC µs at creation; creator
    Atomic64 reserved1;
    Atomic64 reserved2;
};
static_assert(std::is_standard_layout_v<SegmentHeader> &&
              std::is_trivially_copyable_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) == kSegmentHeaderBytes, "layout changed: bump every version");

}  // namespace photon::shm
