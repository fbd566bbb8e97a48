// SPDX-License-Identifier: Apache-2.0
// Unit tests for gateway-generated replies: framing, JSON escaping, HEAD handling.
#include "worker/local_reply.h"

#include <gtest/gtest.h>

#include <string>

#include "worker/buffer.h"

namespace photon::worker {
namespace {

struct Reply {
    std::string head;
    std::string body;
};

Reply split(const Buffer& b) {
    std::string all(b.readPtr(), b.size());
    size_t e = all.find("\r\n\r\n");
    EXPECT_NE(e, std::string::npos);
    return {all.substr(0, e + 4), all.substr(e + 4)};
}

size_t contentLength(const std::string& head) {
    size_t p = head.find("Content-Length: ");
    EXPECT_NE(p, std::string::npos);
    return std::stoul(head.substr(p + 16));
}

class LocalReplyTest : public ::testing::Test {
protected:
    BufferPool pool_{16384};
    Buffer out_;
    void SetUp() override { pool_.acquire(out_); }
    void TearDown() override { pool_.release(out_); }
};

TEST_F(LocalReplyTest, ErrorBodyIsJsonWithMatchingContentLength) {
    buildLocalReply(out_, 404, "no route", "req-1", {}, true, false);
    Reply r = split(out_);
    EXPECT_EQ(r.head.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
    EXPECT_EQ(r.body, "{\"error\":\"no route\",\"status\":404,\"request_id\":\"req-1\"}\n");
    EXPECT_EQ(contentLength(r.head), r.body.size());
    EXPECT_NE(r.head.find("X-Request-ID: req-1\r\n"), std::string::npos);
    EXPECT_EQ(r.head.find("Connection: close"), std::string::npos);
}

TEST_F(LocalReplyTest, CloseAndExtraHeadersAreWritten) {
    buildLocalReply(out_, 503, "busy", "id", "Retry-After: 1\r\n", false, false);
    Reply r = split(out_);
    EXPECT_NE(r.head.find("Retry-After: 1\r\n"), std::string::npos);
    EXPECT_NE(r.head.find("Connection: close\r\n"), std::string::npos);
}

TEST_F(LocalReplyTest, HeadReplyKeepsLengthButSendsNoBody) {
    buildLocalReply(out_, 405, "method not allowed", "id", {}, true, true);
    Reply r = split(out_);
    EXPECT_TRUE(r.body.empty());
    EXPECT_GT(contentLength(r.head), 0u);
}

TEST_F(LocalReplyTest, ErrorTextAndRequestIdAreJsonEscaped) {
    buildLocalReply(out_, 400, "bad \"quote\" \\ and \x01", "a\"b", {}, true, false);
    Reply r = split(out_);
    EXPECT_NE(r.body.find("bad \\\"quote\\\" \\\\ and \\u0001"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"request_id\":\"a\\\"b\""), std::string::npos) << r.body;
    EXPECT_EQ(contentLength(r.head), r.body.size());
}

TEST_F(LocalReplyTest, JsonReplyCarriesCallerBody) {
    buildJsonReply(out_, 200, "{\"status\":\"ok\"}", "id", true, false);
    Reply r = split(out_);
    EXPECT_EQ(r.body, "{\"status\":\"ok\"}");
    EXPECT_EQ(contentLength(r.head), r.body.size());
}

TEST(JsonEscapeTest, EscapesLongInputCompletely) {
    std::string in(300, 'x');
    in[150] = '"';
    std::string out;
    appendJsonEscaped(out, in);
    EXPECT_EQ(out.size(), 301u);
    EXPECT_EQ(out.substr(150, 2), "\\\"");
}

TEST(BufferTest, ConsumeResetsAndCompactMovesPendingBytes) {
    BufferPool pool(64);
    Buffer b;
    pool.acquire(b);
    EXPECT_EQ(b.append("hello world", 11), 11u);
    b.consume(6);
    EXPECT_EQ(std::string(b.readPtr(), b.size()), "world");
    b.compact();
    EXPECT_EQ(b.rpos, 0u);
    EXPECT_EQ(std::string(b.readPtr(), b.size()), "world");
    b.consume(5);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.wpos, 0u);
    EXPECT_EQ(b.append(std::string(100, 'a').data(), 100), 64u);  // bounded by capacity
    pool.release(b);
    EXPECT_EQ(b.data, nullptr);
}

}  // namespace
}  // namespace photon::worker
