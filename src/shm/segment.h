// SPDX-License-Identifier: Apache-2.0
// MappedSegment: creates, re-attaches and maps one named, versioned shared-memory segment (RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "shm/segment_layout.h"

namespace boost::interprocess {
class mapped_region;
}

namespace photon::shm {

/// The instance component of segment names: 16 lowercase hex digits of XXH3-64 of `seed`. The
/// master passes the pid-file path exactly as configured (not the `.oldbin` name), so a master and
/// the binary it upgrades to agree on the name while two independent Photons on one host do not
/// collide. Pure function; any process.
std::string instanceName(std::string_view seed);

/// "photon.<instance>.<segment>". `segment` is a short lowercase tag chosen by the owning module
/// ("slots", "upstreams", ...): 1-32 characters of [a-z0-9_-]. Returns an empty string if either
/// part is invalid, which create/attach then reject.
std::string segmentName(std::string_view instance, std::string_view segment);

/// A mapping of one POSIX shared-memory object laid out as SegmentHeader + body.
///
/// Ownership: move-only. The destructor unmaps (it never removes the name: a reload or an
/// upgraded binary may still want it). Pointers into the mapping stay valid until this object is
/// destroyed or moved from, and in forked children for as long as they live (MAP_SHARED mappings
/// are inherited). Create segments in the master before fork; workers use the inherited mapping
/// and never create, resize or remove segments.
///
/// Boost.Interprocess is used only for shared_memory_object and mapped_region. Its exceptions are
/// caught here and returned as errors; nothing from this class throws.
class MappedSegment {
public:
    /// Master only. Maps segment `name` with a body of at least `body_bytes` (the total is rounded
    /// up to a page). If a segment of that name exists whose header matches (magic, layout
    /// version, header size, total size, fingerprint), it is reused as is and reused() is true:
    /// this is how state survives a reload or an upgrade. Otherwise any stale segment is removed
    /// (a notice says why) and a fresh zero-filled one is created with its pages reserved up front,
    /// so a full /dev/shm fails here instead of raising SIGBUS in a worker later. Processes that
    /// mapped the old segment keep their mapping until they exit.
    /// Errors: invalid name, body_bytes == 0, or any OS error (message carries errno text, code
    /// carries errno when known).
    static core::Result<MappedSegment> create(std::string_view name, uint64_t body_bytes,
                                              uint32_t layout_version, uint64_t fingerprint);

    /// Master only (a re-executed binary after an upgrade, or a tool). Maps an existing segment
    /// without ever creating, replacing or removing anything; fails unless the header matches
    /// exactly as for reuse in create(). reused() is true on success.
    static core::Result<MappedSegment> attach(std::string_view name, uint64_t body_bytes,
                                              uint32_t layout_version, uint64_t fingerprint);

    /// Tools (`photon -s reload`): maps an existing, complete segment of `layout_version` with
    /// the size and fingerprint its own header gives, whatever configuration made it. Never
    /// creates, replaces or removes anything.
    static core::Result<MappedSegment> attachExisting(std::string_view name,
                                                      uint32_t layout_version);

    /// Master only, on clean shutdown. Unlinks the name; existing mappings stay valid. Returns
    /// false if no such segment existed or the name is invalid.
    static bool remove(std::string_view name);

    /// Total bytes create() maps for a body of `body_bytes`: header + body rounded up to 4 KiB.
    static uint64_t totalBytesFor(uint64_t body_bytes);

    MappedSegment(MappedSegment&& other) noexcept;
    MappedSegment& operator=(MappedSegment&& other) noexcept;
    MappedSegment(const MappedSegment&) = delete;
    MappedSegment& operator=(const MappedSegment&) = delete;
    ~MappedSegment();

    /// Base of the mapping (the SegmentHeader); 4 KiB aligned.
    std::byte* base() const { return base_; }
    /// Total mapped bytes, header included.
    uint64_t size() const { return size_; }
    /// First byte after the header; 64-byte aligned. Owners place their *Shm layout here.
    std::byte* body() const { return base_ + kSegmentHeaderBytes; }
    /// Usable body bytes (>= the body_bytes requested).
    uint64_t bodyBytes() const { return size_ - kSegmentHeaderBytes; }
    const SegmentHeader& header() const { return *reinterpret_cast<const SegmentHeader*>(base_); }
    const std::string& name() const { return name_; }
    /// True if the segment existed and matched (create) or always (attach). A fresh segment's
    /// body is all zero bytes.
    bool reused() const { return reused_; }

private:
    MappedSegment() = default;
    /// attach() and attachExisting(): maps `name` when its header matches `layout_version` and
    /// the size and fingerprint given, or (`from_header`) the ones the header itself records.
    static core::Result<MappedSegment> openExisting(std::string_view name, uint64_t total,
                                                    uint32_t layout_version, uint64_t fingerprint,
                                                    bool from_header);

    std::unique_ptr<boost::interprocess::mapped_region> region_;
    std::string name_;
    std::byte* base_ = nullptr;
    uint64_t size_ = 0;
    bool reused_ = false;
};

}  // namespace photon::shm
