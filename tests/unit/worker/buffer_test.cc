// SPDX-License-Identifier: Apache-2.0
#include "worker/buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace photon::worker {
namespace {

std::string contents(const Buffer& b) { return std::string(b.readPtr(), b.size()); }

/// A receive set up at the end of the data, which the kernel filled, then delivered after
/// something else changed the buffer.
struct Landing : ::testing::Test {
    BufferPool pool{64};
    Buffer b;
    void SetUp() override {
        pool.acquire(b);
        b.append("abcdef", 6);
    }
    void TearDown() override { pool.release(b); }
    uint32_t receive(const char* bytes) {  // what the kernel does before the delivery
        uint32_t off = b.wpos;
        std::memcpy(b.writePtr(), bytes, std::strlen(bytes));
        return off;
    }
};

TEST_F(Landing, UnchangedBufferJustGrows) {
    uint32_t off = receive("XYZ");
    b.produceAt(off, 3);
    EXPECT_EQ(contents(b), "abcdefXYZ");
}

TEST_F(Landing, DataConsumedMeanwhileIsFollowedByTheNewBytes) {
    b.consume(2);
    uint32_t off = receive("XYZ");
    b.consume(4);  // all consumed: the buffer rewinds to offset 0
    ASSERT_EQ(b.wpos, 0u);
    b.produceAt(off, 3);
    EXPECT_EQ(contents(b), "XYZ");
}

TEST_F(Landing, CompactedMeanwhileKeepsOrder) {
    b.consume(3);
    uint32_t off = receive("XYZ");
    b.compact();  // "def" moves to the front
    b.produceAt(off, 3);
    EXPECT_EQ(contents(b), "defXYZ");
}

}  // namespace
}  // namespace photon::worker
