// SPDX-License-Identifier: Apache-2.0
// Tests for MappedSegment: naming, create/reuse/fresh start, attach, remove, fork inheritance.
#include "shm/segment.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "shm_test_util.h"

namespace photon::shm {
namespace {

using testing::ScopedSegmentName;

constexpr uint32_t kVersion = 3;
constexpr uint64_t kFingerprint = 0xabcdef;

TEST(SegmentNameTest, InstanceNameIsStableLowercaseHex) {
    const std::string a = instanceName("/run/photon.pid");
    EXPECT_EQ(a.size(), 16u);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(a, instanceName("/run/photon.pid"));
    EXPECT_NE(a, instanceName("/run/photon2.pid"));
}

TEST(SegmentNameTest, BuildsDottedNameAndRejectsBadParts) {
    EXPECT_EQ(segmentName("0123abcd", "upstreams"), "photon.0123abcd.upstreams");
    EXPECT_EQ(segmentName("0123abcd", ""), "");
    EXPECT_EQ(segmentName("0123abcd", "a/b"), "");
    EXPECT_EQ(segmentName("0123abcd", "Upper"), "");
    EXPECT_EQ(segmentName("", "slots"), "");
    EXPECT_EQ(segmentName("0123abcd", std::string(33, 'x')), "");
}

TEST(MappedSegmentTest, RejectsInvalidNameAndZeroSize) {
    EXPECT_FALSE(MappedSegment::create("not-photon", 100, kVersion, kFingerprint).ok());
    EXPECT_FALSE(MappedSegment::create("photon.x/y.z", 100, kVersion, kFingerprint).ok());
    ScopedSegmentName name("zero");
    EXPECT_FALSE(MappedSegment::create(name.str(), 0, kVersion, kFingerprint).ok());
}

TEST(MappedSegmentTest, CreateStartsZeroedWithCompleteHeader) {
    ScopedSegmentName name("fresh");
    auto seg = MappedSegment::create(name.str(), 10000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok()) << seg.error().msg;
    EXPECT_FALSE(seg->reused());
    EXPECT_GE(seg->bodyBytes(), 10000u);
    EXPECT_EQ(seg->size(), MappedSegment::totalBytesFor(10000));
    EXPECT_EQ(seg->size() % 4096, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(seg->body()) % 64, 0u);
    const SegmentHeader& h = seg->header();
    EXPECT_EQ(h.magic.load(), kSegmentMagic);
    EXPECT_EQ(h.layout_version.load(), kVersion);
    EXPECT_EQ(h.header_bytes.load(), kSegmentHeaderBytes);
    EXPECT_EQ(h.segment_bytes.load(), seg->size());
    EXPECT_EQ(h.fingerprint.load(), kFingerprint);
    EXPECT_EQ(h.creator_pid.load(), static_cast<uint32_t>(getpid()));
    for (uint64_t i = 0; i < seg->bodyBytes(); ++i) {
        ASSERT_EQ(seg->body()[i], std::byte{0}) << "offset " << i;
    }
}

TEST(MappedSegmentTest, CreateReusesMatchingSegmentAndKeepsItsContents) {
    ScopedSegmentName name("reuse");
    auto first = MappedSegment::create(name.str(), 5000, kVersion, kFingerprint);
    ASSERT_TRUE(first.ok()) << first.error().msg;
    first->body()[123] = std::byte{0x5a};
    auto second = MappedSegment::create(name.str(), 5000, kVersion, kFingerprint);
    ASSERT_TRUE(second.ok()) << second.error().msg;
    EXPECT_TRUE(second->reused());
    EXPECT_EQ(second->body()[123], std::byte{0x5a});
    second->body()[124] = std::byte{0x11};
    EXPECT_EQ(first->body()[124], std::byte{0x11});  // same object, two mappings
}

TEST(MappedSegmentTest, CreateStartsFreshWhenVersionFingerprintOrSizeDiffer) {
    ScopedSegmentName name("mismatch");
    struct Case {
        uint64_t body;
        uint32_t version;
        uint64_t fingerprint;
    };
    const Case cases[] = {{5000, kVersion + 1, kFingerprint},
                          {5000, kVersion, kFingerprint + 1},
                          {50000, kVersion, kFingerprint}};
    for (const Case& c : cases) {
        auto old = MappedSegment::create(name.str(), 5000, kVersion, kFingerprint);
        ASSERT_TRUE(old.ok()) << old.error().msg;
        old->body()[7] = std::byte{0x42};
        auto fresh = MappedSegment::create(name.str(), c.body, c.version, c.fingerprint);
        ASSERT_TRUE(fresh.ok()) << fresh.error().msg;
        EXPECT_FALSE(fresh->reused());
        EXPECT_EQ(fresh->body()[7], std::byte{0});
        EXPECT_EQ(fresh->header().layout_version.load(), c.version);
        EXPECT_EQ(fresh->header().fingerprint.load(), c.fingerprint);
        // Whoever mapped the old segment keeps a valid mapping.
        EXPECT_EQ(old->body()[7], std::byte{0x42});
        ASSERT_TRUE(MappedSegment::remove(name.str()));
    }
}

TEST(MappedSegmentTest, HalfCreatedSegmentIsNeverReusedOrAttached) {
    ScopedSegmentName name("half");
    auto seg = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok());
    reinterpret_cast<SegmentHeader*>(seg->base())->magic.store(0);  // creator died before magic
    EXPECT_FALSE(MappedSegment::attach(name.str(), 4000, kVersion, kFingerprint).ok());
    auto again = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->reused());
    EXPECT_EQ(again->header().magic.load(), kSegmentMagic);
}

TEST(MappedSegmentTest, AttachMapsExistingSegmentOnlyIfHeaderMatches) {
    ScopedSegmentName name("attach");
    EXPECT_FALSE(MappedSegment::attach(name.str(), 4000, kVersion, kFingerprint).ok());
    auto seg = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok());
    seg->body()[0] = std::byte{9};

    auto bad_version = MappedSegment::attach(name.str(), 4000, kVersion + 1, kFingerprint);
    EXPECT_FALSE(bad_version.ok());
    EXPECT_NE(bad_version.error().msg.find("layout version"), std::string::npos);
    EXPECT_FALSE(MappedSegment::attach(name.str(), 4000, kVersion, kFingerprint + 1).ok());
    EXPECT_FALSE(MappedSegment::attach(name.str(), 90000, kVersion, kFingerprint).ok());

    // A failed attach never removes or replaces anything.
    auto ok = MappedSegment::attach(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(ok.ok()) << ok.error().msg;
    EXPECT_TRUE(ok->reused());
    EXPECT_EQ(ok->body()[0], std::byte{9});
}

TEST(MappedSegmentTest, RemoveUnlinksNameButKeepsMappingsValid) {
    ScopedSegmentName name("remove");
    auto seg = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok());
    seg->body()[1] = std::byte{1};
    EXPECT_TRUE(MappedSegment::remove(name.str()));
    EXPECT_FALSE(MappedSegment::remove(name.str()));
    EXPECT_FALSE(MappedSegment::attach(name.str(), 4000, kVersion, kFingerprint).ok());
    seg->body()[2] = std::byte{2};
    EXPECT_EQ(seg->body()[1], std::byte{1});
}

TEST(MappedSegmentTest, MoveTransfersTheMapping) {
    ScopedSegmentName name("move");
    auto seg = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok());
    std::byte* body = seg->body();
    MappedSegment moved = std::move(seg.value());
    EXPECT_EQ(moved.body(), body);
    EXPECT_EQ(moved.name(), name.str());
    body[5] = std::byte{5};
    EXPECT_EQ(moved.body()[5], std::byte{5});
}

TEST(MappedSegmentTest, ForkedChildSharesTheMapping) {
    ScopedSegmentName name("fork");
    auto seg = MappedSegment::create(name.str(), 4000, kVersion, kFingerprint);
    ASSERT_TRUE(seg.ok());
    auto* word = reinterpret_cast<Atomic64*>(seg->body());
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        word->store(0x600d);
        _exit(0);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_EQ(word->load(), 0x600du);
}

}  // namespace
}  // namespace photon::shm
