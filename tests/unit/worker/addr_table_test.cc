// SPDX-License-Identifier: Apache-2.0
// Unit tests for the shared table of resolved upstream addresses.
#include "worker/addr_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace photon::worker {
namespace {

sockaddr_storage v4(const char* ip, uint16_t port, socklen_t& len) {
    sockaddr_storage ss{};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    len = sizeof(sockaddr_in);
    return ss;
}

// A zeroed table of four entries, as a fresh shared-memory segment holds it.
class AddrTableTest : public ::testing::Test {
protected:
    AddrTableTest() { std::memset(mem.data(), 0, mem.size() * sizeof(AddrEntryShm)); }
    std::vector<AddrEntryShm> mem = std::vector<AddrEntryShm>(4);
    AddrTable t{mem.data(), 4};
};

TEST_F(AddrTableTest, UnresolvedUntilStored) {
    sockaddr_storage out;
    socklen_t len = 0;
    EXPECT_FALSE(t.load(1, out, len));
    EXPECT_FALSE(t.load(9, out, len));  // out of range
}

TEST_F(AddrTableTest, StoreThenLoadRoundTripsAndReportsChanges) {
    socklen_t l1;
    sockaddr_storage a = v4("10.1.2.3", 8080, l1);
    EXPECT_TRUE(t.store(2, a, l1));
    EXPECT_FALSE(t.store(2, a, l1));  // unchanged
    sockaddr_storage out;
    socklen_t len = 0;
    ASSERT_TRUE(t.load(2, out, len));
    EXPECT_EQ(len, l1);
    EXPECT_EQ(std::memcmp(&out, &a, l1), 0);
    socklen_t l2;
    sockaddr_storage b = v4("10.9.9.9", 8080, l2);
    EXPECT_TRUE(t.store(2, b, l2));
    ASSERT_TRUE(t.load(2, out, len));
    EXPECT_EQ(reinterpret_cast<sockaddr_in*>(&out)->sin_addr.s_addr,
              reinterpret_cast<sockaddr_in*>(&b)->sin_addr.s_addr);
    EXPECT_TRUE(t.store(2, b, 0));  // marked unresolved
    EXPECT_FALSE(t.load(2, out, len));
}

TEST_F(AddrTableTest, StampChangesWithTheAddressOnly) {
    socklen_t l;
    sockaddr_storage a = v4("10.1.2.3", 8080, l);
    sockaddr_storage b = v4("10.1.2.4", 8080, l);
    uint64_t s0 = t.stamp(2);
    ASSERT_TRUE(t.store(2, a, l));
    uint64_t s1 = t.stamp(2);
    EXPECT_NE(s1, s0);
    EXPECT_FALSE(t.store(2, a, l));  // same address: connections to it stay reusable
    EXPECT_EQ(t.stamp(2), s1);
    EXPECT_EQ(t.stamp(1), s0);  // other records untouched
    ASSERT_TRUE(t.store(2, b, l));
    EXPECT_NE(t.stamp(2), s1);
    EXPECT_EQ(t.stamp(99), 0u);  // out of range
    EXPECT_EQ(AddrTable().stamp(0), 0u);
}

TEST_F(AddrTableTest, ReaderTreatsAStuckWriteAsAbsent) {
    socklen_t l;
    sockaddr_storage a = v4("127.0.0.1", 80, l);
    ASSERT_TRUE(t.store(0, a, l));
    mem[0].version.store(mem[0].version.load() | 1);  // a writer died mid-update
    sockaddr_storage out;
    socklen_t len = 0;
    EXPECT_FALSE(t.load(0, out, len));
}

}  // namespace
}  // namespace photon::worker
