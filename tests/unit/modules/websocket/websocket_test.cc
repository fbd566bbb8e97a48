// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/http_parser.h"
#include "modules/websocket/frame.h"
#include "modules/websocket/handshake.h"

namespace ws = photon::mod::websocket;
namespace http = photon::core::http;

namespace {

std::string frame(uint8_t b0, uint64_t len, bool masked, bool minimal = true) {
    std::string f(1, static_cast<char>(b0));
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126 && minimal) {
        f += static_cast<char>(m | len);
    } else if (len <= 0xFFFF && minimal) {
        f += static_cast<char>(m | 126);
        f += static_cast<char>(len >> 8);
        f += static_cast<char>(len & 0xFF);
    } else {
        f += static_cast<char>(m | 127);
        for (int i = 7; i >= 0; --i) {
            f += static_cast<char>((len >> (8 * i)) & 0xFF);
        }
    }
    if (masked) {
        f += "abcd";
    }
    f += std::string(len, 'x');
    return f;
}

ws::FrameScanner::Result scanAll(ws::FrameScanner& s, const std::string& b) {
    return s.scan(reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

ws::FrameScanner client(uint64_t max = 1000, bool ext = false) {
    return ws::FrameScanner({true, ext, max});
}

}  // namespace

TEST(WsFrame, PassesWholeFramesAndCountsMessages) {
    auto s = client();
    std::string b = frame(0x81, 5, true) + frame(0x82, 0, true) + frame(0x89, 3, true);
    auto r = scanAll(s, b);
    EXPECT_EQ(r.consumed, b.size());
    EXPECT_EQ(r.error, 0);
    EXPECT_EQ(r.messages, 2u);  // the ping is not a message
    EXPECT_TRUE(s.atBoundary());
}

TEST(WsFrame, LengthEdgesInEveryEncoding) {
    for (uint64_t len : {0ull, 125ull, 126ull, 65535ull, 65536ull}) {
        auto s = client(1u << 20);
        std::string b = frame(0x82, len, true);
        auto r = scanAll(s, b);
        EXPECT_EQ(r.consumed, b.size()) << len;
        EXPECT_EQ(r.messages, 1u) << len;
    }
}

TEST(WsFrame, PartialHeaderIsHeldAndPayloadStreams) {
    auto s = client();
    std::string b = frame(0x81, 200, true);
    auto r = s.scan(reinterpret_cast<const uint8_t*>(b.data()), 3);  // 126 form needs 8 bytes
    EXPECT_EQ(r.consumed, 0u);
    r = s.scan(reinterpret_cast<const uint8_t*>(b.data()), 50);
    EXPECT_EQ(r.consumed, 50u);
    EXPECT_FALSE(s.atBoundary());
    EXPECT_EQ(s.payloadLeft(), b.size() - 50);
    r = s.scan(reinterpret_cast<const uint8_t*>(b.data()) + 50, b.size() - 50);
    EXPECT_EQ(r.messages, 1u);
    EXPECT_TRUE(s.atBoundary());
}

TEST(WsFrame, MessageLimitCountsFragmentsExactly) {
    auto s = client(100);
    std::string ok = frame(0x01, 60, true) + frame(0x89, 100, true) + frame(0x80, 40, true);
    auto r = scanAll(s, ok);
    EXPECT_EQ(r.error, 0);
    EXPECT_EQ(r.messages, 1u);
    std::string big = frame(0x01, 60, true) + frame(0x80, 41, true);
    auto s2 = client(100);
    r = scanAll(s2, big);
    EXPECT_EQ(r.error, ws::kCloseTooBig);
    EXPECT_EQ(r.consumed, frame(0x01, 60, true).size());  // stops before the bad header
    EXPECT_TRUE(s2.atBoundary());
    // Sticky.
    r = scanAll(s2, big);
    EXPECT_EQ(r.error, ws::kCloseTooBig);
    EXPECT_EQ(r.consumed, 0u);
}

TEST(WsFrame, ProtocolErrors) {
    std::vector<std::string> bad = {
        frame(0x81, 1, false),                         // unmasked client frame
        frame(0x83, 1, true),                          // reserved data opcode
        frame(0x8B, 1, true),                          // reserved control opcode
        frame(0xC1, 1, true),                          // RSV1 without an extension
        frame(0x89, 126, true),                        // control frame over 125 bytes
        frame(0x09, 1, true),                          // fragmented control frame
        frame(0x80, 1, true),                          // continuation with nothing to continue
        frame(0x01, 1, true) + frame(0x81, 1, true),   // new message inside a fragmented one
        frame(0x88, 1, true),                          // close with a 1-byte payload
        frame(0x82, 10, true, false),                  // non-minimal length
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        auto s = client(1u << 20);
        EXPECT_EQ(scanAll(s, bad[i]).error, ws::kCloseProtocolError) << i;
    }
    std::string top = "\x82\xff";
    top += std::string(1, '\x80') + std::string(7, '\0') + "abcd";
    auto s = client(0);
    EXPECT_EQ(scanAll(s, top).error, ws::kCloseProtocolError);
    auto server = ws::FrameScanner({false, false, 0});
    EXPECT_EQ(scanAll(server, frame(0x81, 1, true)).error, ws::kCloseProtocolError);
    EXPECT_EQ(ws::FrameScanner({false, false, 0}).scan(
                  reinterpret_cast<const uint8_t*>(frame(0x81, 1, false).data()), 3).error,
              0);
    auto ext = client(100, true);
    EXPECT_EQ(scanAll(ext, frame(0xC1, 1, true)).error, 0);  // RSV1 with permessage-deflate
}

TEST(WsFrame, CloseFrames) {
    uint8_t out[8];
    ASSERT_EQ(ws::writeClose(out, 1009, nullptr), 4u);
    EXPECT_EQ(std::memcmp(out, "\x88\x02\x03\xf1", 4), 0);
    const uint8_t mask[4] = {1, 2, 3, 4};
    ASSERT_EQ(ws::writeClose(out, 1002, mask), 8u);
    EXPECT_EQ(out[0], 0x88);
    EXPECT_EQ(out[1], 0x82);
    EXPECT_EQ(out[6], (1002 >> 8) ^ 1);
    EXPECT_EQ(out[7], (1002 & 0xFF) ^ 2);
    auto s = client();
    EXPECT_EQ(s.scan(out, 8).error, 0);  // our masked close is a valid client frame
}

TEST(WsHandshake, KeysAndAccept) {
    EXPECT_TRUE(ws::validKey("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_FALSE(ws::validKey("dGhlIHNhbXBsZSBub25jZQ="));
    EXPECT_FALSE(ws::validKey("dGhlIHNhbXBsZSBub25jZR=="));  // non-zero padding bits
    EXPECT_FALSE(ws::validKey("dGhlIHNhbXBsZS*ub25jZQ=="));
    EXPECT_FALSE(ws::validKey(""));
    char acc[ws::kAcceptLen];
    ws::acceptFor("dGhlIHNhbXBsZSBub25jZQ==", acc);  // RFC 6455 §1.3
    EXPECT_EQ(std::string(acc, ws::kAcceptLen), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

namespace {
struct Parsed {
    std::string text;
    http::RequestHead head;
};
void parse(Parsed& p) {
    size_t hint = 0;
    ASSERT_EQ(http::parseRequest(p.text.data(), p.text.size(), http::Limits{}, p.head, hint),
              http::ParseStatus::Complete);
}
}  // namespace

TEST(WsHandshake, RequestChecks) {
    const std::string base =
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    char list[64];
    size_t len = 0;
    bool rewrite = false;
    std::vector<std::string> allowed = {"chat", "superchat"};
    {
        Parsed p{base + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x, superchat\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n", {}};
        parse(p);
        EXPECT_EQ(ws::checkRequest(p.head, &allowed, list, sizeof list, len, rewrite),
                  ws::Check::Ok);
        EXPECT_EQ(std::string(list, len), "superchat, chat");
        EXPECT_TRUE(rewrite);
        EXPECT_EQ(ws::checkRequest(p.head, nullptr, list, sizeof list, len, rewrite),
                  ws::Check::Ok);
        EXPECT_EQ(std::string(list, len), "x, superchat, chat");
        EXPECT_FALSE(rewrite);
    }
    {
        Parsed p{base + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x, Chat\r\n\r\n", {}};
        parse(p);
        EXPECT_EQ(ws::checkRequest(p.head, &allowed, list, sizeof list, len, rewrite),
                  ws::Check::ProtocolRefused);
    }
    {
        Parsed p{base + "Sec-WebSocket-Version: 8\r\n\r\n", {}};
        parse(p);
        EXPECT_EQ(ws::checkRequest(p.head, nullptr, list, sizeof list, len, rewrite),
                  ws::Check::BadVersion);
    }
    {
        Parsed p{"POST /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Version: 13\r\n\r\n", {}};
        parse(p);
        EXPECT_EQ(ws::checkRequest(p.head, nullptr, list, sizeof list, len, rewrite),
                  ws::Check::NotGet);
    }
    {
        Parsed p{"GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: abc\r\n\r\n", {}};
        parse(p);
        EXPECT_EQ(ws::checkRequest(p.head, nullptr, list, sizeof list, len, rewrite),
                  ws::Check::BadKey);
    }
}

TEST(WsHandshake, ResponseChecks) {
    auto check = [](const std::string& extra, std::string_view offered) {
        std::string t = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n" + extra + "\r\n";
        http::ResponseHead h;
        size_t hint = 0;
        EXPECT_EQ(http::parseResponse(t.data(), t.size(), http::Limits{}, h, hint, false),
                  http::ParseStatus::Complete);
        return ws::checkResponse(h, "dGhlIHNhbXBsZSBub25jZQ==", offered);
    };
    const std::string ok = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    EXPECT_EQ(check(ok, ""), nullptr);
    EXPECT_EQ(check(ok + "Sec-WebSocket-Protocol: chat\r\n", "superchat, chat"), nullptr);
    EXPECT_NE(check(ok + "Sec-WebSocket-Protocol: chat\r\n", ""), nullptr);
    EXPECT_NE(check(ok + "Sec-WebSocket-Protocol: chat\r\n", "superchat"), nullptr);
    EXPECT_NE(check("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOp=\r\n", ""), nullptr);
    EXPECT_NE(check("", ""), nullptr);
}
