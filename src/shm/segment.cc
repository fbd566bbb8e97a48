// SPDX-License-Identifier: Apache-2.0
// MappedSegment implementation on Boost.Interprocess shared_memory_object + mapped_region.
#include "shm/segment.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/log.h"
#include "shm/clock.h"

namespace photon::shm {

namespace bip = boost::interprocess;

namespace {

constexpr uint64_t kPageBytes = 4096;
constexpr size_t kMaxNameBytes = 200;

bool isTagChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool validName(std::string_view name) {
    if (name.size() < 8 || name.size() > kMaxNameBytes || name.substr(0, 7) != "photon.") {
        return false;
    }
    for (char c : name) {
        if (!isTagChar(c) && c != '.') {
            return false;
        }
    }
    return true;
}

core::Error osError(std::string_view what, std::string_view name,
                    const bip::interprocess_exception& e) {
    core::Error err = core::fail("shm segment ", name, ": ", what, ": ", e.what());
    err.code = e.get_native_error();
    return err;
}

/// Why `hdr` (of an object of `object_bytes`) cannot be reused; nullptr when it can.
const char* mismatch(const SegmentHeader& hdr, uint64_t object_bytes, uint64_t total,
                     uint32_t layout_version, uint64_t fingerprint) {
    if (object_bytes != total) {
        return "size changed";
    }
    if (hdr.magic.load() != kSegmentMagic) {
        return "not a complete Photon segment";
    }
    if (hdr.layout_version.load() != layout_version) {
        return "layout version changed";
    }
    if (hdr.header_bytes.load() != kSegmentHeaderBytes || hdr.segment_bytes.load() != total) {
        return "header or size changed";
    }
    if (hdr.fingerprint.load() != fingerprint) {
        return "capacity changed";
    }
    return nullptr;
}

}  // namespace

std::string instanceName(std::string_view seed) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx",
             static_cast<unsigned long long>(XXH3_64bits(seed.data(), seed.size())));
    return std::string(buf, 16);
}

std::string segmentName(std::string_view instance, std::string_view segment) {
    if (instance.empty() || instance.size() > 64 || segment.empty() || segment.size() > 32) {
        return {};
    }
    for (char c : instance) {
        if (!isTagChar(c)) {
            return {};
        }
    }
    for (char c : segment) {
        if (!isTagChar(c)) {
            return {};
        }
    }
    std::string out = "photon.";
    out.append(instance).append(".").append(segment);
    return out;
}

uint64_t MappedSegment::totalBytesFor(uint64_t body_bytes) {
    return (kSegmentHeaderBytes + body_bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
}

MappedSegment::MappedSegment(MappedSegment&& other) noexcept
    : region_(std::move(other.region_)),
      name_(std::move(other.name_)),
      base_(other.base_),
      size_(other.size_),
      reused_(other.reused_) {
    other.base_ = nullptr;
    other.size_ = 0;
}

MappedSegment& MappedSegment::operator=(MappedSegment&& other) noexcept {
    if (this != &other) {
        region_ = std::move(other.region_);
        name_ = std::move(other.name_);
        base_ = other.base_;
        size_ = other.size_;
        reused_ = other.reused_;
        other.base_ = nullptr;
        other.size_ = 0;
    }
    return *this;
}

MappedSegment::~MappedSegment() = default;

core::Result<MappedSegment> MappedSegment::attach(std::string_view name, uint64_t body_bytes,
                                                  uint32_t layout_version, uint64_t fingerprint) {
    if (!validName(name) || body_bytes == 0) {
        return core::fail("shm segment '", name, "': invalid name or size");
    }
    return openExisting(name, totalBytesFor(body_bytes), layout_version, fingerprint, false);
}

core::Result<MappedSegment> MappedSegment::attachExisting(std::string_view name,
                                                          uint32_t layout_version) {
    if (!validName(name)) {
        return core::fail("shm segment '", name, "': invalid name");
    }
    return openExisting(name, 0, layout_version, 0, true);
}

core::Result<MappedSegment> MappedSegment::openExisting(std::string_view name, uint64_t total,
                                                        uint32_t layout_version,
                                                        uint64_t fingerprint, bool from_header) {
    const std::string n(name);
    try {
        bip::shared_memory_object shm(bip::open_only, n.c_str(), bip::read_write);
        bip::offset_t object_bytes = 0;
        if (!shm.get_size(object_bytes)) {
            return core::fail("shm segment ", n, ": cannot read size");
        }
        if (static_cast<uint64_t>(object_bytes) < kSegmentHeaderBytes) {
            return core::fail("shm segment ", n, ": too small to hold a header");
        }
        auto region = std::make_unique<bip::mapped_region>(shm, bip::read_write);
        const auto* hdr = static_cast<const SegmentHeader*>(region->get_address());
        if (from_header) {
            total = hdr->segment_bytes.load();
            fingerprint = hdr->fingerprint.load();
        }
        if (const char* why = mismatch(*hdr, static_cast<uint64_t>(object_bytes), total,
                                       layout_version, fingerprint)) {
            return core::fail("shm segment ", n, ": cannot attach: ", why);
        }
        MappedSegment seg;
        seg.base_ = static_cast<std::byte*>(region->get_address());
        seg.size_ = total;
        seg.region_ = std::move(region);
        seg.name_ = n;
        seg.reused_ = true;
        return seg;
    } catch (const bip::interprocess_exception& e) {
        return osError("cannot attach", n, e);
    }
}

core::Result<MappedSegment> MappedSegment::create(std::string_view name, uint64_t body_bytes,
                                                  uint32_t layout_version, uint64_t fingerprint) {
    if (!validName(name) || body_bytes == 0) {
        return core::fail("shm segment '", name, "': invalid name or size");
    }
    const std::string n(name);
    const uint64_t total = totalBytesFor(body_bytes);

    // Reuse a matching segment (reload, upgrade, or a restart after a crash).
    try {
        bip::shared_memory_object old(bip::open_only, n.c_str(), bip::read_write);
        bip::offset_t object_bytes = 0;
        const char* why = "cannot read size";
        if (old.get_size(object_bytes) &&
            static_cast<uint64_t>(object_bytes) >= kSegmentHeaderBytes) {
            auto region = std::make_unique<bip::mapped_region>(old, bip::read_write);
            const auto* hdr = static_cast<const SegmentHeader*>(region->get_address());
            why = mismatch(*hdr, static_cast<uint64_t>(object_bytes), total, layout_version,
                           fingerprint);
            if (why == nullptr) {
                MappedSegment seg;
                seg.base_ = static_cast<std::byte*>(region->get_address());
                seg.size_ = total;
                seg.region_ = std::move(region);
                seg.name_ = n;
                seg.reused_ = true;
                LOG_INFO("shm segment %s: reusing existing state (%llu bytes)", n.c_str(),
                         static_cast<unsigned long long>(total));
                return seg;
            }
        } else if (static_cast<uint64_t>(object_bytes) < kSegmentHeaderBytes) {
            why = "too small to hold a header";
        }
        LOG_NOTICE("shm segment %s: existing segment not reusable (%s), starting fresh", n.c_str(),
                   why);
        bip::shared_memory_object::remove(n.c_str());
    } catch (const bip::interprocess_exception& e) {
        if (e.get_error_code() != bip::not_found_error) {
            return osError("cannot open existing segment", n, e);
        }
    }

    try {
        bip::shared_memory_object shm(bip::create_only, n.c_str(), bip::read_write,
                                      bip::permissions(0600));
        shm.truncate(static_cast<bip::offset_t>(total));
        // Reserve every page now; tmpfs otherwise allocates on first touch and a full /dev/shm
        // would surface as SIGBUS in whichever process touches a new page first.
        const int fd = shm.get_mapping_handle().handle;
        const int rc = posix_fallocate(fd, 0, static_cast<off_t>(total));
        if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
            bip::shared_memory_object::remove(n.c_str());
            core::Error err = core::fail("shm segment ", n, ": cannot reserve ",
                                         std::to_string(total), " bytes: ", strerror(rc));
            err.code = rc;
            return err;
        }
        auto region = std::make_unique<bip::mapped_region>(shm, bip::read_write);
        auto* hdr = static_cast<SegmentHeader*>(region->get_address());
        hdr->layout_version.store(layout_version);
        hdr->header_bytes.store(kSegmentHeaderBytes);
        hdr->segment_bytes.store(total);
        hdr->fingerprint.store(fingerprint);
        hdr->creator_pid.store(static_cast<uint32_t>(getpid()));
        hdr->created_us.store(monotonicMicros());
        // Last, with release: a segment without magic is never reused or attached.
        hdr->magic.store(kSegmentMagic);

        MappedSegment seg;
        seg.base_ = static_cast<std::byte*>(region->get_address());
        seg.size_ = total;
        seg.region_ = std::move(region);
        seg.name_ = n;
        seg.reused_ = false;
        LOG_DEBUG("shm segment %s: created (%llu bytes)", n.c_str(),
                  static_cast<unsigned long long>(total));
        return seg;
    } catch (const bip::interprocess_exception& e) {
        return osError("cannot create", n, e);
    }
}

bool MappedSegment::remove(std::string_view name) {
    if (!validName(name)) {
        return false;
    }
    const std::string n(name);
    return bip::shared_memory_object::remove(n.c_str());
}

}  // namespace photon::shm
