// SPDX-License-Identifier: Apache-2.0
// Tests for the HTTP/1.1 head parser and chunked decoder: every rejection rule, framing, splits.
#include "core/http_parser.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../../fixtures/http_samples.h"

namespace photon::core::http {
namespace {

using namespace std::string_literals;

// Heads are ~5 KiB; keep them off the stack of deeply nested test helpers.
std::unique_ptr<RequestHead> newRequest() { return std::make_unique<RequestHead>(); }
std::unique_ptr<ResponseHead> newResponse() { return std::make_unique<ResponseHead>(); }

ParseStatus parseReq(std::string_view s, RequestHead& h, const Limits& lim = {}) {
    size_t hint = 0;
    return parseRequest(s.data(), s.size(), lim, h, hint);
}

ParseStatus parseResp(std::string_view s, ResponseHead& h, bool was_head = false,
                      const Limits& lim = {}) {
    size_t hint = 0;
    return parseResponse(s.data(), s.size(), lim, h, hint, was_head);
}

// Feeds s one growing prefix at a time with one scan_hint; returns the first non-Incomplete
// status (or Incomplete) and the prefix length at which it came.
template <typename Head, typename Fn>
ParseStatus feedGrowing(std::string_view s, Head& h, Fn parse, size_t step, size_t* at) {
    size_t hint = 0;
    for (size_t n = 0; n <= s.size(); n = (n == s.size()) ? n + 1 : std::min(n + step, s.size())) {
        ParseStatus st = parse(s.data(), n, h, hint);
        if (st != ParseStatus::Incomplete) {
            *at = n;
            return st;
        }
    }
    *at = s.size();
    return ParseStatus::Incomplete;
}

// Compares everything a caller can observe of two completed request heads.
void expectSameRequest(const RequestHead& a, const RequestHead& b) {
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.method_id, b.method_id);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.form, b.form);
    EXPECT_EQ(a.path, b.path);
    EXPECT_EQ(a.query, b.query);
    EXPECT_EQ(a.has_query, b.has_query);
    EXPECT_EQ(a.host, b.host);
    EXPECT_EQ(a.version, b.version);
    EXPECT_EQ(a.framing, b.framing);
    EXPECT_EQ(a.content_length, b.content_length);
    EXPECT_EQ(a.keep_alive, b.keep_alive);
    EXPECT_EQ(a.expect_continue, b.expect_continue);
    EXPECT_EQ(a.upgrade, b.upgrade);
    EXPECT_EQ(a.upgrade_protocol, b.upgrade_protocol);
    EXPECT_EQ(a.head_length, b.head_length);
    ASSERT_EQ(a.headers.size(), b.headers.size());
    for (size_t i = 0; i < a.headers.size(); ++i) {
        EXPECT_EQ(a.headers[i].name, b.headers[i].name);
        EXPECT_EQ(a.headers[i].value, b.headers[i].value);
        EXPECT_EQ(a.headers[i].hop_by_hop, b.headers[i].hop_by_hop);
    }
}

const std::string kBrowserGet =
    "GET /search/results?q=photon+gateway&page=2 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "*/*;q=0.8\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Cookie: session=abc123; theme=dark\r\n"
    "\r\n";

// ---- request rejection table ---------------------------------------------------------------

struct RejectCase {
    const char* name;
    std::string input;
    uint16_t status;
};

std::string withHeaders(std::string_view fields, std::string_view line = "GET / HTTP/1.1") {
    std::string s(line);
    s += "\r\n";
    s += fields;
    s += "\r\n";
    return s;
}

std::string crlfs(size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        s += "\r\n";
    }
    return s;
}

std::vector<RejectCase> requestRejections() {
    std::string many_headers = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 100; ++i) {
        many_headers += "X-H" + std::to_string(i) + ": v\r\n";
    }
    many_headers += "\r\n";
    std::string many_options = "GET / HTTP/1.1\r\nHost: a\r\nConnection: ";
    for (size_t i = 0; i <= kMaxConnectionOptions; ++i) {
        many_options += "x" + std::to_string(i) + ",";
    }
    many_options += "\r\n\r\n";
    return {
        // Framing conflicts and Content-Length syntax.
        {"ContentLengthWithTransferEncoding",
         withHeaders("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400},
        {"TransferEncodingWithContentLength",
         withHeaders("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400},
        {"DifferingContentLengths",
         withHeaders("Host: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"), 400},
        {"IdenticalDuplicateContentLengths",
         withHeaders("Host: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n"), 400},
        {"ContentLengthListDiffering", withHeaders("Host: a\r\nContent-Length: 5, 6\r\n"), 400},
        {"ContentLengthListIdentical", withHeaders("Host: a\r\nContent-Length: 5, 5\r\n"), 400},
        {"ContentLengthNonDigit", withHeaders("Host: a\r\nContent-Length: 5a\r\n"), 400},
        {"ContentLengthNegative", withHeaders("Host: a\r\nContent-Length: -1\r\n"), 400},
        {"ContentLengthPlusSign", withHeaders("Host: a\r\nContent-Length: +5\r\n"), 400},
        {"ContentLengthHex", withHeaders("Host: a\r\nContent-Length: 0x10\r\n"), 400},
        {"ContentLengthEmpty", withHeaders("Host: a\r\nContent-Length:\r\n"), 400},
        {"ContentLengthInnerSpace", withHeaders("Host: a\r\nContent-Length: 1 0\r\n"), 400},
        {"ContentLengthOverflow20Digits",
         withHeaders("Host: a\r\nContent-Length: 99999999999999999999\r\n"), 400},
        {"ContentLengthAbove2Pow63",
         withHeaders("Host: a\r\nContent-Length: 9223372036854775808\r\n"), 400},
        // Transfer-Encoding.
        {"TransferEncodingGzipChunked",
         withHeaders("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"), 501},
        {"TransferEncodingChunkedNotLast",
         withHeaders("Host: a\r\nTransfer-Encoding: chunked, gzip\r\n"), 501},
        {"TransferEncodingChunkedTwiceInList",
         withHeaders("Host: a\r\nTransfer-Encoding: chunked, chunked\r\n"), 501},
        {"TransferEncodingIdentity", withHeaders("Host: a\r\nTransfer-Encoding: identity\r\n"),
         501},
        {"TransferEncodingTwoFields",
         withHeaders("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
         501},
        {"TransferEncodingChunkedWithParam",
         withHeaders("Host: a\r\nTransfer-Encoding: chunked;q=1\r\n"), 501},
        {"TransferEncodingEmpty", withHeaders("Host: a\r\nTransfer-Encoding:\r\n"), 400},
        {"TransferEncodingInHttp10",
         withHeaders("Transfer-Encoding: chunked\r\n", "POST / HTTP/1.0"), 400},
        // Line structure.
        {"ObsFoldWithSpace", withHeaders("Host: a\r\nX-A: b\r\n c\r\n"), 400},
        {"ObsFoldWithTab", withHeaders("Host: a\r\nX-A: b\r\n\tc\r\n"), 400},
        {"WhitespaceBeforeFirstHeader", withHeaders(" Host: a\r\n"), 400},
        {"BareLfAfterRequestLine", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
        {"BareLfAfterHeader", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
        {"BareLfAsFinalLine", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
        {"BareLfOnlyHead", "GET / HTTP/1.1\nHost: a\n\n", 400},
        {"BareCrInRequestLine", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
        {"BareCrInValue", withHeaders("Host: a\r\nX-A: b\rc\r\n"), 400},
        {"BareCrAsFinalLine", "GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n", 400},
        {"NulInValue", withHeaders("Host: a\r\nX-A: b\0c\r\n"s), 400},
        {"NulInName", withHeaders("Host: a\r\nX\0A: b\r\n"s), 400},
        {"CtlInValue",
         withHeaders("Host: a\r\nX-A: b\x01"
                     "c\r\n"),
         400},
        {"DelInValue",
         withHeaders("Host: a\r\nX-A: b\x7f"
                     "c\r\n"),
         400},
        {"SpaceBeforeColon", withHeaders("Host : a\r\n"), 400},
        {"TabBeforeColon", withHeaders("Host\t: a\r\n"), 400},
        {"EmptyHeaderName", withHeaders("Host: a\r\n: b\r\n"), 400},
        {"HeaderLineWithoutColon", withHeaders("Host: a\r\nX-A\r\n"), 400},
        {"InvalidCharInHeaderName", withHeaders("Host: a\r\nX(A): b\r\n"), 400},
        {"TooManyLeadingEmptyLines", crlfs(kMaxLeadingEmptyLines + 1) + withHeaders("Host: a\r\n"),
         400},
        // Request line.
        {"InvalidCharInMethod", withHeaders("Host: a\r\n", "G(T / HTTP/1.1"), 400},
        {"CtlInMethod", withHeaders("Host: a\r\n", "GE\x01T / HTTP/1.1"), 400},
        {"MissingMethod", withHeaders("Host: a\r\n", " / HTTP/1.1"), 400},
        {"DoubleSpaceAfterMethod", withHeaders("Host: a\r\n", "GET  / HTTP/1.1"), 400},
        {"TabAsSeparator", withHeaders("Host: a\r\n", "GET\t/ HTTP/1.1"), 400},
        {"TrailingSpaceAfterVersion", withHeaders("Host: a\r\n", "GET / HTTP/1.1 "), 400},
        {"MissingVersion", withHeaders("Host: a\r\n", "GET /"), 400},
        {"VersionHttp20", withHeaders("Host: a\r\n", "GET / HTTP/2.0"), 505},
        {"VersionHttp12", withHeaders("Host: a\r\n", "GET / HTTP/1.2"), 505},
        {"VersionHttp09", withHeaders("Host: a\r\n", "GET / HTTP/0.9"), 505},
        {"VersionHttp30", withHeaders("Host: a\r\n", "GET / HTTP/3.0"), 505},
        {"VersionMissingMinor", withHeaders("Host: a\r\n", "GET / HTTP/1"), 400},
        {"VersionLowerCase", withHeaders("Host: a\r\n", "GET / http/1.1"), 400},
        {"VersionTwoDigits", withHeaders("Host: a\r\n", "GET / HTTP/1.10"), 400},
        {"VersionNoDot", withHeaders("Host: a\r\n", "GET / HTTP/11"), 400},
        {"VersionLetter", withHeaders("Host: a\r\n", "GET / HTTP/1.x"), 400},
        {"VersionGarbage", withHeaders("Host: a\r\n", "GET / FTP/1.1"), 400},
        // Targets.
        {"TargetNotOriginForm", withHeaders("Host: a\r\n", "GET foo HTTP/1.1"), 400},
        {"AsteriskFormWithGet", withHeaders("Host: a\r\n", "GET * HTTP/1.1"), 400},
        {"AuthorityFormConnect", withHeaders("Host: a:443\r\n", "CONNECT a:443 HTTP/1.1"), 400},
        {"AbsoluteFormOtherScheme", withHeaders("Host: a\r\n", "GET ftp://a/ HTTP/1.1"), 400},
        {"AbsoluteFormEmptyAuthority", withHeaders("Host: a\r\n", "GET http:///x HTTP/1.1"), 400},
        {"AbsoluteFormUserinfo", withHeaders("Host: a\r\n", "GET http://u@a/ HTTP/1.1"), 400},
        {"AbsoluteFormHostMismatch", withHeaders("Host: b\r\n", "GET http://a/ HTTP/1.1"), 400},
        {"TargetWithHighByte", withHeaders("Host: a\r\n", "GET /caf\xc3\xa9 HTTP/1.1"), 400},
        {"TargetWithDel", withHeaders("Host: a\r\n", "GET /a\x7f HTTP/1.1"), 400},
        {"TargetWithCtl", withHeaders("Host: a\r\n", "GET /a\x01 HTTP/1.1"), 400},
        {"TargetWithFragment", withHeaders("Host: a\r\n", "GET /a#frag HTTP/1.1"), 400},
        {"TargetBadPercentEscape", withHeaders("Host: a\r\n", "GET /a%zz HTTP/1.1"), 400},
        {"TargetTruncatedPercentEscape", withHeaders("Host: a\r\n", "GET /a%2 HTTP/1.1"), 400},
        // Host.
        {"MissingHostHttp11", withHeaders("Accept: */*\r\n"), 400},
        {"MissingHostAbsoluteForm", withHeaders("Accept: */*\r\n", "GET http://a/ HTTP/1.1"), 400},
        {"TwoHostHeaders", withHeaders("Host: a\r\nHost: a\r\n"), 400},
        {"TwoHostHeadersHttp10", withHeaders("Host: a\r\nHost: b\r\n", "GET / HTTP/1.0"), 400},
        {"EmptyHost", withHeaders("Host:\r\n"), 400},
        {"HostWithSlash", withHeaders("Host: a/b\r\n"), 400},
        {"HostWithUserinfo", withHeaders("Host: u@a\r\n"), 400},
        {"HostWithInnerSpace", withHeaders("Host: a b\r\n"), 400},
        // Connection and Expect.
        {"ConnectionNotTokenList", withHeaders("Host: a\r\nConnection: keep alive\r\n"), 400},
        {"ConnectionBadChar", withHeaders("Host: a\r\nConnection: close;x\r\n"), 400},
        {"TooManyConnectionOptions", many_options, 400},
        {"ExpectOtherThanContinue", withHeaders("Host: a\r\nExpect: 200-ok\r\n"), 417},
        // Limits.
        {"TooManyHeaders", many_headers, 431},
    };
}

class RequestRejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(RequestRejectTest, RejectsWithStatus) {
    const RejectCase& c = GetParam();
    auto h = newRequest();
    ASSERT_EQ(parseReq(c.input, *h), ParseStatus::Error) << c.name;
    EXPECT_EQ(h->error.status, c.status) << c.name << ": " << h->error.reason;
    EXPECT_FALSE(h->error.reason.empty());
}

// The same input delivered in pieces must be rejected too, with the same class of status.
TEST_P(RequestRejectTest, RejectsWhenFedByteByByte) {
    const RejectCase& c = GetParam();
    auto h = newRequest();
    size_t at = 0;
    auto parse = [](const char* b, size_t n, RequestHead& o, size_t& hint) {
        return parseRequest(b, n, Limits{}, o, hint);
    };
    ASSERT_EQ(feedGrowing(c.input, *h, parse, 1, &at), ParseStatus::Error) << c.name;
    EXPECT_EQ(h->error.status / 100, c.status / 100) << c.name << ": " << h->error.reason;
}

INSTANTIATE_TEST_SUITE_P(Rules, RequestRejectTest, ::testing::ValuesIn(requestRejections()),
                         [](const ::testing::TestParamInfo<RejectCase>& i) {
                             return std::string(i.param.name);
                         });

// ---- request limits --------------------------------------------------------------------------

class RequestLimitsTest : public ::testing::Test {
protected:
    std::unique_ptr<RequestHead> h_ = newRequest();
};

TEST_F(RequestLimitsTest, RequestLineAtLimitIsAccepted) {
    Limits lim;
    std::string line = "GET /" + std::string(100, 'a') + " HTTP/1.1";
    lim.max_request_line = static_cast<uint32_t>(line.size());
    EXPECT_EQ(parseReq(withHeaders("Host: a\r\n", line), *h_, lim), ParseStatus::Complete);
}

TEST_F(RequestLimitsTest, RejectsRequestLineOverLimitWith414) {
    Limits lim;
    std::string line = "GET /" + std::string(100, 'a') + " HTTP/1.1";
    lim.max_request_line = static_cast<uint32_t>(line.size() - 1);
    ASSERT_EQ(parseReq(withHeaders("Host: a\r\n", line), *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 414);
}

TEST_F(RequestLimitsTest, RejectsUnterminatedLongRequestLineWithoutWaiting) {
    Limits lim;
    lim.max_request_line = 64;
    std::string partial = "GET /" + std::string(100, 'a');
    ASSERT_EQ(parseReq(partial, *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 414);
    // Fed in pieces too.
    size_t hint = 0;
    ParseStatus st = ParseStatus::Incomplete;
    for (size_t n = 1; n <= partial.size() && st == ParseStatus::Incomplete; ++n) {
        st = parseRequest(partial.data(), n, lim, *h_, hint);
    }
    ASSERT_EQ(st, ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 414);
}

TEST_F(RequestLimitsTest, RejectsHeadOverMaxHeaderBytesWith431) {
    Limits lim;
    lim.max_header_bytes = 256;
    std::string req = withHeaders("Host: a\r\nX-Big: " + std::string(300, 'b') + "\r\n");
    ASSERT_EQ(parseReq(req, *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 431);
    // An unterminated head that already exceeds the limit fails without waiting for the end.
    ASSERT_EQ(parseReq(std::string_view(req).substr(0, 280), *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 431);
}

TEST_F(RequestLimitsTest, HeadExactlyAtMaxHeaderBytesIsAccepted) {
    std::string req = withHeaders("Host: a\r\nX-Pad: " + std::string(50, 'p') + "\r\n");
    Limits lim;
    lim.max_header_bytes = static_cast<uint32_t>(req.size());
    EXPECT_EQ(parseReq(req, *h_, lim), ParseStatus::Complete);
    lim.max_header_bytes = static_cast<uint32_t>(req.size() - 1);
    ASSERT_EQ(parseReq(req, *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 431);
}

TEST_F(RequestLimitsTest, HeaderCountAtLimitIsAcceptedAndOneMoreIsNot) {
    Limits lim;
    lim.max_headers = 3;
    EXPECT_EQ(parseReq(withHeaders("Host: a\r\nA: 1\r\nB: 2\r\n"), *h_, lim),
              ParseStatus::Complete);
    EXPECT_EQ(h_->headers.size(), 3u);
    ASSERT_EQ(parseReq(withHeaders("Host: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n"), *h_, lim),
              ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 431);
}

TEST_F(RequestLimitsTest, MaxHeadersAboveCapacityActsAsCapacity) {
    Limits lim;
    lim.max_headers = 100000;
    lim.max_header_bytes = 1 << 20;
    std::string fields = "Host: a\r\n";
    for (size_t i = 1; i < kMaxHeaders; ++i) {
        fields += "X: v\r\n";
    }
    EXPECT_EQ(parseReq(withHeaders(fields), *h_, lim), ParseStatus::Complete);
    EXPECT_EQ(h_->headers.size(), kMaxHeaders);
    ASSERT_EQ(parseReq(withHeaders(fields + "Y: v\r\n"), *h_, lim), ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 431);
}

// ---- request positive cases ------------------------------------------------------------------

class RequestParseTest : public ::testing::Test {
protected:
    // Keeps the parsed bytes alive as long as the views into them are checked.
    ParseStatus parse(std::string s, const Limits& lim = {}) {
        buf_ = std::move(s);
        return parseReq(buf_, *h_, lim);
    }
    std::unique_ptr<RequestHead> h_ = newRequest();
    std::string buf_;
};

TEST_F(RequestParseTest, ParsesSimpleGet) {
    std::string req = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
    ASSERT_EQ(parse(req), ParseStatus::Complete);
    EXPECT_EQ(h_->method, "GET");
    EXPECT_EQ(h_->method_id, Method::Get);
    EXPECT_EQ(h_->target, "/index.html");
    EXPECT_EQ(h_->form, TargetForm::Origin);
    EXPECT_EQ(h_->path, "/index.html");
    EXPECT_FALSE(h_->has_query);
    EXPECT_TRUE(h_->query.empty());
    EXPECT_EQ(h_->host, "example.com");
    EXPECT_EQ(h_->version, Version::Http11);
    EXPECT_EQ(h_->framing, BodyFraming::None);
    EXPECT_TRUE(h_->keep_alive);
    EXPECT_FALSE(h_->upgrade);
    EXPECT_FALSE(h_->expect_continue);
    EXPECT_EQ(h_->head_length, req.size());
    ASSERT_EQ(h_->headers.size(), 1u);
    EXPECT_EQ(h_->headers[0].name, "Host");
    EXPECT_EQ(h_->error.status, 0);
}

TEST_F(RequestParseTest, ParsesRealisticBrowserRequest) {
    ASSERT_EQ(parse(kBrowserGet), ParseStatus::Complete);
    EXPECT_EQ(h_->head_length, kBrowserGet.size());
    EXPECT_EQ(h_->path, "/search/results");
    EXPECT_TRUE(h_->has_query);
    EXPECT_EQ(h_->query, "q=photon+gateway&page=2");
    EXPECT_EQ(h_->host, "www.example.com");
    EXPECT_EQ(h_->headers.size(), 17u);
    EXPECT_TRUE(h_->keep_alive);
    const HeaderField* ua = h_->headers.find("user-agent");
    ASSERT_NE(ua, nullptr);
    EXPECT_EQ(ua->value.substr(0, 11), "Mozilla/5.0");
    EXPECT_EQ(ua->value.back(), '6');
    const HeaderField* conn = h_->headers.find("CONNECTION");
    ASSERT_NE(conn, nullptr);
    EXPECT_TRUE(conn->hop_by_hop);
    EXPECT_FALSE(h_->headers.find("Cookie")->hop_by_hop);
    EXPECT_EQ(h_->headers.find("sec-ch-ua")->value,
              "\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"");
    EXPECT_EQ(h_->headers.find("X-Missing"), nullptr);
}

TEST_F(RequestParseTest, ViewsPointIntoTheInputBuffer) {
    ASSERT_EQ(parse(kBrowserGet), ParseStatus::Complete);
    const char* lo = buf_.data();
    const char* hi = lo + buf_.size();
    auto inside = [&](std::string_view v) { return v.data() >= lo && v.data() + v.size() <= hi; };
    EXPECT_TRUE(inside(h_->method));
    EXPECT_TRUE(inside(h_->target));
    EXPECT_TRUE(inside(h_->path));
    EXPECT_TRUE(inside(h_->query));
    EXPECT_TRUE(inside(h_->host));
    for (const HeaderField& f : h_->headers) {
        EXPECT_TRUE(inside(f.name));
        EXPECT_TRUE(inside(f.value));
    }
}

TEST_F(RequestParseTest, ReportsHeadLengthOfPipelinedRequests) {
    std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    std::string second = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
    std::string third = "HEAD /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    std::string buf = first + second + third;
    ASSERT_EQ(parse(buf), ParseStatus::Complete);
    EXPECT_EQ(h_->head_length, first.size());
    EXPECT_EQ(h_->path, "/a");
    size_t off = h_->head_length;
    ASSERT_EQ(parseReq(std::string_view(buf).substr(off), *h_), ParseStatus::Complete);
    EXPECT_EQ(h_->method_id, Method::Post);
    EXPECT_EQ(h_->framing, BodyFraming::ContentLength);
    EXPECT_EQ(h_->content_length, 3u);
    EXPECT_EQ(h_->head_length, second.size() - 3);
    off += h_->head_length + h_->content_length;
    ASSERT_EQ(parseReq(std::string_view(buf).substr(off), *h_), ParseStatus::Complete);
    EXPECT_EQ(h_->method_id, Method::Head);
    EXPECT_FALSE(h_->keep_alive);
    EXPECT_EQ(off + h_->head_length, buf.size());
}

TEST_F(RequestParseTest, EveryPrefixIsIncompleteAndTheWholeIsIdentical) {
    auto whole = newRequest();
    ASSERT_EQ(parseReq(kBrowserGet, *whole), ParseStatus::Complete);
    // One call per prefix with a fresh hint (a caller that re-parses from scratch).
    for (size_t n = 0; n < kBrowserGet.size(); ++n) {
        ASSERT_EQ(parseReq(std::string_view(kBrowserGet).substr(0, n), *h_),
                  ParseStatus::Incomplete)
            << "prefix " << n;
    }
    // Two reads split at every point, sharing the hint.
    for (size_t split = 0; split <= kBrowserGet.size(); ++split) {
        size_t hint = 0;
        auto part = newRequest();
        ParseStatus st = parseRequest(kBrowserGet.data(), split, Limits{}, *part, hint);
        if (split < kBrowserGet.size()) {
            ASSERT_EQ(st, ParseStatus::Incomplete) << "split " << split;
            st = parseRequest(kBrowserGet.data(), kBrowserGet.size(), Limits{}, *part, hint);
        }
        ASSERT_EQ(st, ParseStatus::Complete) << "split " << split;
        expectSameRequest(*whole, *part);
    }
}

TEST_F(RequestParseTest, ByteAtATimeFeedGivesTheSameResult) {
    auto whole = newRequest();
    std::string req = kBrowserGet + "GET /next HTTP/1.1\r\n";  // pipelined bytes after the head
    ASSERT_EQ(parseReq(req, *whole), ParseStatus::Complete);
    size_t at = 0;
    auto parse = [](const char* b, size_t n, RequestHead& o, size_t& hint) {
        return parseRequest(b, n, Limits{}, o, hint);
    };
    ASSERT_EQ(feedGrowing(req, *h_, parse, 1, &at), ParseStatus::Complete);
    EXPECT_EQ(at, kBrowserGet.size());
    expectSameRequest(*whole, *h_);
}

TEST_F(RequestParseTest, SkipsLeadingEmptyLines) {
    std::string req = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse(req), ParseStatus::Complete);
    EXPECT_EQ(h_->method, "GET");
    EXPECT_EQ(h_->head_length, req.size());
    // Split in the middle of a leading CRLF.
    size_t hint = 0;
    EXPECT_EQ(parseRequest(req.data(), 3, Limits{}, *h_, hint), ParseStatus::Incomplete);
    EXPECT_EQ(parseRequest(req.data(), req.size(), Limits{}, *h_, hint), ParseStatus::Complete);
    EXPECT_EQ(h_->head_length, req.size());
}

TEST_F(RequestParseTest, Http10KeepAliveSemantics) {
    struct Case {
        const char* head;
        bool keep_alive;
    };
    const Case cases[] = {
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
    };
    for (const Case& c : cases) {
        ASSERT_EQ(parse(c.head), ParseStatus::Complete) << c.head;
        EXPECT_EQ(h_->keep_alive, c.keep_alive) << c.head;
    }
}

TEST_F(RequestParseTest, LongFieldNamesAreScannedExactlyAtEveryPosition) {
    // Names of 1..40 bytes; one byte at each position replaced by another tchar (accepted,
    // name intact) or by a non-tchar (rejected): checks the 16-byte scan and its hand-over to
    // the byte-wise loop at every offset.
    const std::string others = "!#$%&'*+.^_`|~";
    const std::string bad = std::string("\"(),/;<=>?@[\\]{}\x7f\x80\xff\x01", 20);
    for (size_t len = 1; len <= 40; ++len) {
        for (size_t pos = 0; pos < len; ++pos) {
            std::string name(len, 'a');
            for (size_t i = 0; i < len; ++i) {
                name[i] = "aZ9-"[i % 4];
            }
            name[pos] = others[(len + pos) % others.size()];
            ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n" + name + ": v\r\n\r\n"),
                      ParseStatus::Complete)
                << name;
            ASSERT_EQ(h_->headers.count, 2u);
            EXPECT_EQ(h_->headers.items[1].name, name);
            EXPECT_EQ(h_->headers.items[1].value, "v");
            name[pos] = bad[(len * 7 + pos) % bad.size()];
            EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n" + name + ": v\r\n\r\n"),
                      ParseStatus::Error)
                << len << " " << pos;
            EXPECT_EQ(h_->error.status, 400);
        }
    }
}

TEST_F(RequestParseTest, FieldLineLengthCoversTheLineAsReceived) {
    const std::string head =
        "GET / HTTP/1.1\r\nHost: a\r\nX-A:  v w \t\r\nX-B:\r\nUser-Agent: t\r\n\r\n";
    ASSERT_EQ(parse(head), ParseStatus::Complete);
    ASSERT_EQ(h_->headers.count, 4u);
    const char* expect[] = {"Host: a\r\n", "X-A:  v w \t\r\n", "X-B:\r\n", "User-Agent: t\r\n"};
    for (size_t i = 0; i < 4; ++i) {
        const HeaderField& f = h_->headers.items[i];
        EXPECT_EQ(std::string(f.name.data(), f.line_len), expect[i]) << i;
        if (i + 1 < 4) {  // lines are adjacent: a proxy may copy runs of them at once
            EXPECT_EQ(f.name.data() + f.line_len, h_->headers.items[i + 1].name.data()) << i;
        }
    }
    EXPECT_EQ(h_->headers.items[1].value, "v w");
}

TEST_F(RequestParseTest, ConnectionKeepAliveStillHidesNamedFieldsWhenListed) {
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nX-Hop: 1\r\nConnection: x-hop, keep-alive\r\n"
                    "Keep-Alive: timeout=5\r\nX-End: 2\r\n\r\n"),
              ParseStatus::Complete);
    ASSERT_EQ(h_->headers.count, 5u);
    EXPECT_TRUE(h_->headers.items[1].hop_by_hop);   // X-Hop, named by Connection
    EXPECT_TRUE(h_->headers.items[2].hop_by_hop);   // Connection
    EXPECT_TRUE(h_->headers.items[3].hop_by_hop);   // Keep-Alive
    EXPECT_FALSE(h_->headers.items[4].hop_by_hop);  // X-End
    EXPECT_TRUE(h_->keep_alive);
}

TEST_F(RequestParseTest, Http10WithoutHostIsAccepted) {
    ASSERT_EQ(parse("GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->version, Version::Http10);
    EXPECT_TRUE(h_->host.empty());
}

TEST_F(RequestParseTest, MarksHopByHopFields) {
    std::string req = withHeaders(
        "Host: a\r\nConnection: close, X-Private\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
        "Trailer: X-T\r\nProxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\n"
        "x-private: 1\r\nContent-Type: text/plain\r\nX-Public: 2\r\n");
    ASSERT_EQ(parse(req), ParseStatus::Complete);
    for (const HeaderField& f : h_->headers) {
        bool want = !(f.name == "Host" || f.name == "Content-Type" || f.name == "X-Public");
        EXPECT_EQ(f.hop_by_hop, want) << f.name;
    }
}

TEST_F(RequestParseTest, ConnectionCannotHideHostOrContentLength) {
    std::string req = withHeaders(
        "Host: a\r\nContent-Length: 2\r\nConnection: Content-Length, host, x-y\r\nX-Y: 1\r\n",
        "POST / HTTP/1.1");
    ASSERT_EQ(parse(req), ParseStatus::Complete);
    EXPECT_FALSE(h_->headers.find("host")->hop_by_hop);
    EXPECT_FALSE(h_->headers.find("content-length")->hop_by_hop);
    EXPECT_TRUE(h_->headers.find("x-y")->hop_by_hop);
    EXPECT_EQ(h_->content_length, 2u);
}

TEST_F(RequestParseTest, DetectsWebSocketUpgrade) {
    std::string req = withHeaders(
        "Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    ASSERT_EQ(parse(req), ParseStatus::Complete);
    EXPECT_TRUE(h_->upgrade);
    EXPECT_EQ(h_->upgrade_protocol, "websocket");
    EXPECT_TRUE(h_->headers.find("upgrade")->hop_by_hop);

    ASSERT_EQ(parse(withHeaders("Host: a\r\nUpgrade: websocket\r\n")), ParseStatus::Complete);
    EXPECT_FALSE(h_->upgrade) << "Upgrade without Connection: upgrade";
    EXPECT_EQ(h_->upgrade_protocol, "websocket");

    ASSERT_EQ(parse(withHeaders("Host: a\r\nConnection: upgrade\r\n")), ParseStatus::Complete);
    EXPECT_FALSE(h_->upgrade) << "Connection: upgrade without Upgrade";

    ASSERT_EQ(parse(withHeaders("Connection: upgrade\r\nUpgrade: websocket\r\n", "GET / HTTP/1.0")),
              ParseStatus::Complete);
    EXPECT_FALSE(h_->upgrade) << "HTTP/1.0 upgrades are ignored";
}

TEST_F(RequestParseTest, DetectsExpectContinue) {
    ASSERT_EQ(parse(withHeaders("Host: a\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n",
                                "PUT /u HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_TRUE(h_->expect_continue);
    ASSERT_EQ(parse(withHeaders("Expect: 100-continue\r\n", "PUT /u HTTP/1.0")),
              ParseStatus::Complete);
    EXPECT_FALSE(h_->expect_continue) << "ignored in HTTP/1.0";
    ASSERT_EQ(parse(withHeaders("Expect: whatever\r\n", "PUT /u HTTP/1.0")), ParseStatus::Complete);
}

TEST_F(RequestParseTest, DerivesBodyFraming) {
    ASSERT_EQ(parse(withHeaders("Host: a\r\nContent-Length: 0042\r\n", "POST / HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->framing, BodyFraming::ContentLength);
    EXPECT_EQ(h_->content_length, 42u);
    ASSERT_EQ(parse(withHeaders("Host: a\r\nContent-Length: 0\r\n", "POST / HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->framing, BodyFraming::None);
    ASSERT_EQ(parse(withHeaders("Host: a\r\nTransfer-Encoding: Chunked\r\n", "POST / HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->framing, BodyFraming::Chunked);
    ASSERT_EQ(parse(withHeaders("Host: a\r\nContent-Length: 9223372036854775807\r\n")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->content_length, 9223372036854775807ull);
}

TEST_F(RequestParseTest, ParsesAbsoluteForm) {
    ASSERT_EQ(parse(withHeaders("Host: API.example.com:8080\r\n",
                                "GET http://api.example.com:8080/v1/items?id=7 HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->form, TargetForm::Absolute);
    EXPECT_EQ(h_->host, "api.example.com:8080");
    EXPECT_EQ(h_->path, "/v1/items");
    EXPECT_EQ(h_->query, "id=7");

    ASSERT_EQ(parse(withHeaders("Host: a\r\n", "GET HTTPS://a HTTP/1.1")), ParseStatus::Complete);
    EXPECT_EQ(h_->path, "/");
    EXPECT_FALSE(h_->has_query);

    ASSERT_EQ(parse(withHeaders("Host: a\r\n", "GET http://a?x=1 HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->path, "/");
    EXPECT_EQ(h_->query, "x=1");

    ASSERT_EQ(parse(withHeaders("Accept: */*\r\n", "GET http://[::1]:81/ HTTP/1.0")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->host, "[::1]:81");
}

TEST_F(RequestParseTest, AcceptsAsteriskFormForOptions) {
    ASSERT_EQ(parse(withHeaders("Host: a\r\n", "OPTIONS * HTTP/1.1")), ParseStatus::Complete);
    EXPECT_EQ(h_->form, TargetForm::Asterisk);
    EXPECT_EQ(h_->path, "*");
    EXPECT_EQ(h_->method_id, Method::Options);
}

TEST_F(RequestParseTest, SplitsQueryAndValidatesOnlyPathEscapes) {
    ASSERT_EQ(parse(withHeaders("Host: a\r\n", "GET /a%2Fb?x=100%&y HTTP/1.1")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->path, "/a%2Fb");
    EXPECT_EQ(h_->query, "x=100%&y");
    ASSERT_EQ(parse(withHeaders("Host: a\r\n", "GET /p? HTTP/1.1")), ParseStatus::Complete);
    EXPECT_TRUE(h_->has_query);
    EXPECT_TRUE(h_->query.empty());
}

TEST_F(RequestParseTest, RecognisesMethods) {
    const std::pair<const char*, Method> cases[] = {
        {"GET", Method::Get},     {"HEAD", Method::Head},     {"POST", Method::Post},
        {"PUT", Method::Put},     {"DELETE", Method::Delete}, {"OPTIONS", Method::Options},
        {"PATCH", Method::Patch}, {"TRACE", Method::Trace},   {"PROPFIND", Method::Other},
        {"get", Method::Other},
    };
    for (const auto& [m, id] : cases) {
        std::string line = std::string(m) + " / HTTP/1.1";
        ASSERT_EQ(parse(withHeaders("Host: a\r\n", line)), ParseStatus::Complete) << m;
        EXPECT_EQ(h_->method, m);
        EXPECT_EQ(h_->method_id, id) << m;
    }
}

TEST_F(RequestParseTest, TrimsValuesAndAllowsTabsAndObsText) {
    ASSERT_EQ(parse(withHeaders("Host:a\r\nX-A: \t  v 1\tv2 \t \r\nX-B:\r\nX-C: caf\xc3\xa9\r\n")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->host, "a");
    EXPECT_EQ(h_->headers.find("x-a")->value, "v 1\tv2");
    EXPECT_EQ(h_->headers.find("x-b")->value, "");
    EXPECT_EQ(h_->headers.find("x-c")->value, "caf\xc3\xa9");
}

TEST_F(RequestParseTest, CountsRepeatedFields) {
    ASSERT_EQ(parse(withHeaders("Host: a\r\nAccept: a\r\naccept: b\r\nX: 1\r\n")),
              ParseStatus::Complete);
    EXPECT_EQ(h_->headers.countOf("ACCEPT"), 2u);
    EXPECT_EQ(h_->headers.find("accept")->value, "a");
    EXPECT_EQ(h_->headers.countOf("nope"), 0u);
}

TEST_F(RequestParseTest, RejectsBadRequestLineBeforeTheHeadEnds) {
    // The request line is validated as soon as it is complete, not only at the final CRLF.
    std::string req = "G@T / HTTP/1.1\r\nHost: a\r\n";
    size_t hint = 0;
    ParseStatus st = ParseStatus::Incomplete;
    for (size_t n = 1; n <= req.size() && st == ParseStatus::Incomplete; ++n) {
        st = parseRequest(req.data(), n, Limits{}, *h_, hint);
    }
    ASSERT_EQ(st, ParseStatus::Error);
    EXPECT_EQ(h_->error.status, 400);
}

TEST_F(RequestParseTest, ReusedHeadIsOverwritten) {
    ASSERT_EQ(parse(kBrowserGet), ParseStatus::Complete);
    ASSERT_EQ(parse("GET /x HTTP/1.0\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->headers.size(), 0u);
    EXPECT_TRUE(h_->host.empty());
    EXPECT_FALSE(h_->keep_alive);
    EXPECT_FALSE(h_->has_query);
    ASSERT_EQ(parse(withHeaders("Host: a\r\nAccept: */*\r\n", "GET * HTTP/1.1")),
              ParseStatus::Error);
    ASSERT_EQ(parse("GET /y HTTP/1.1\r\nHost: b\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->error.status, 0) << "a success clears the previous error";
}

// ---- responses ------------------------------------------------------------------------------

class ResponseParseTest : public ::testing::Test {
protected:
    ParseStatus parse(std::string s, bool was_head = false) {
        buf_ = std::move(s);
        return parseResp(buf_, *h_, was_head);
    }
    std::unique_ptr<ResponseHead> h_ = newResponse();
    std::string buf_;
};

using photon::testdata::kApiResponse;

TEST_F(ResponseParseTest, ParsesApiResponse) {
    ASSERT_EQ(parse(kApiResponse + "{...}"), ParseStatus::Complete);
    EXPECT_EQ(h_->status, 200);
    EXPECT_EQ(h_->reason, "OK");
    EXPECT_EQ(h_->version, Version::Http11);
    EXPECT_EQ(h_->framing, BodyFraming::ContentLength);
    EXPECT_EQ(h_->content_length, 1234u);
    EXPECT_TRUE(h_->keep_alive);
    EXPECT_EQ(h_->headers.size(), 10u);
    EXPECT_EQ(h_->head_length, kApiResponse.size());
    EXPECT_FALSE(h_->interim);
}

TEST_F(ResponseParseTest, FramingRules) {
    struct Case {
        const char* name;
        std::string head;
        bool was_head;
        BodyFraming framing;
        bool keep_alive;
    };
    const Case cases[] = {
        {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false,
         BodyFraming::Chunked, true},
        {"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false,
         BodyFraming::ContentLength, true},
        {"zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, BodyFraming::None,
         true},
        {"until close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, BodyFraming::UntilClose,
         false},
        {"head request", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, BodyFraming::None,
         true},
        {"head request chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true,
         BodyFraming::None, true},
        {"head request no length", "HTTP/1.1 200 OK\r\n\r\n", true, BodyFraming::None, true},
        {"204", "HTTP/1.1 204 No Content\r\n\r\n", false, BodyFraming::None, true},
        {"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false,
         BodyFraming::None, true},
        {"100", "HTTP/1.1 100 Continue\r\n\r\n", false, BodyFraming::None, true},
        {"103", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", false, BodyFraming::None,
         true},
        {"http10 length", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false,
         BodyFraming::ContentLength, false},
        {"http10 keep-alive",
         "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", false,
         BodyFraming::ContentLength, true},
        {"http10 until close", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false,
         BodyFraming::UntilClose, false},
        {"close", "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false,
         BodyFraming::ContentLength, false},
    };
    for (const Case& c : cases) {
        ASSERT_EQ(parseResp(c.head, *h_, c.was_head), ParseStatus::Complete) << c.name;
        EXPECT_EQ(h_->framing, c.framing) << c.name;
        EXPECT_EQ(h_->keep_alive, c.keep_alive) << c.name;
        EXPECT_EQ(h_->head_length, c.head.size()) << c.name;
    }
}

TEST_F(ResponseParseTest, InterimResponseCanBeSkipped) {
    std::string buf =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    ASSERT_EQ(parse(buf), ParseStatus::Complete);
    EXPECT_EQ(h_->status, 100);
    EXPECT_TRUE(h_->interim);
    EXPECT_FALSE(h_->switching_protocols);
    size_t off = h_->head_length;
    ASSERT_EQ(parseResp(std::string_view(buf).substr(off), *h_), ParseStatus::Complete);
    EXPECT_EQ(h_->status, 201);
    EXPECT_FALSE(h_->interim);
    EXPECT_EQ(off + h_->head_length + h_->content_length, buf.size());
}

TEST_F(ResponseParseTest, FlagsSwitchingProtocols) {
    ASSERT_EQ(parse("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    "Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n"),
              ParseStatus::Complete);
    EXPECT_TRUE(h_->switching_protocols);
    EXPECT_FALSE(h_->interim);
    EXPECT_EQ(h_->upgrade_protocol, "websocket");
    EXPECT_EQ(h_->framing, BodyFraming::None);
    EXPECT_FALSE(h_->keep_alive);
}

TEST_F(ResponseParseTest, AcceptsEmptyOrMissingReason) {
    ASSERT_EQ(parse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->reason, "");
    ASSERT_EQ(parse("HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->status, 599);
    EXPECT_EQ(h_->reason, "");
    ASSERT_EQ(parse("HTTP/1.1 200 All\tGood \r\nContent-Length: 0\r\n\r\n"), ParseStatus::Complete);
    EXPECT_EQ(h_->reason, "All\tGood ");
}

TEST_F(ResponseParseTest, EverySplitGivesTheSameResult) {
    auto whole = newResponse();
    ASSERT_EQ(parseResp(kApiResponse, *whole), ParseStatus::Complete);
    for (size_t split = 0; split < kApiResponse.size(); ++split) {
        size_t hint = 0;
        ASSERT_EQ(parseResponse(kApiResponse.data(), split, Limits{}, *h_, hint, false),
                  ParseStatus::Incomplete);
        ASSERT_EQ(
            parseResponse(kApiResponse.data(), kApiResponse.size(), Limits{}, *h_, hint, false),
            ParseStatus::Complete);
        EXPECT_EQ(h_->head_length, whole->head_length);
        EXPECT_EQ(h_->status, 200);
        EXPECT_EQ(h_->content_length, 1234u);
        EXPECT_EQ(h_->headers.size(), whole->headers.size());
    }
}

std::vector<RejectCase> responseRejections() {
    return {
        {"ContentLengthWithTransferEncoding",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 502},
        {"DuplicateContentLength",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 502},
        {"InvalidContentLength", "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n", 502},
        {"TransferEncodingGzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 502},
        {"TransferEncodingInHttp10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 502},
        {"ObsFold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", 502},
        {"BareLf", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 502},
        {"BareLfInFields", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", 502},
        {"SpaceBeforeColon", "HTTP/1.1 200 OK\r\nServer : x\r\n\r\n", 502},
        {"CtlInValue", "HTTP/1.1 200 OK\r\nServer: x\x01y\r\n\r\n", 502},
        {"CtlInReason", "HTTP/1.1 200 O\x01K\r\n\r\n", 502},
        {"TwoDigitStatus", "HTTP/1.1 20 OK\r\n\r\n", 502},
        {"FourDigitStatus", "HTTP/1.1 2000 OK\r\n\r\n", 502},
        {"StatusBelow100", "HTTP/1.1 099 X\r\n\r\n", 502},
        {"StatusAbove599", "HTTP/1.1 600 X\r\n\r\n", 502},
        {"NonDigitStatus", "HTTP/1.1 2x0 OK\r\n\r\n", 502},
        {"UnknownVersion", "HTTP/2.0 200 OK\r\n\r\n", 502},
        {"MalformedVersion", "HTTP/1 200 OK\r\n\r\n", 502},
        {"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 502},
        {"InvalidConnection", "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n", 502},
    };
}

class ResponseRejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(ResponseRejectTest, RejectsWith502) {
    const RejectCase& c = GetParam();
    auto h = newResponse();
    ASSERT_EQ(parseResp(c.input, *h), ParseStatus::Error) << c.name;
    EXPECT_EQ(h->error.status, c.status) << c.name << ": " << h->error.reason;
    EXPECT_FALSE(h->error.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(Rules, ResponseRejectTest, ::testing::ValuesIn(responseRejections()),
                         [](const ::testing::TestParamInfo<RejectCase>& i) {
                             return std::string(i.param.name);
                         });

TEST(ResponseLimitsTest, RejectsLongStatusLineAndLargeHead) {
    auto h = newResponse();
    Limits lim;
    lim.max_request_line = 20;
    ASSERT_EQ(parseResp("HTTP/1.1 200 A very long reason phrase\r\n\r\n", *h, false, lim),
              ParseStatus::Error);
    EXPECT_EQ(h->error.status, 502);
    lim = Limits{};
    lim.max_header_bytes = 64;
    ASSERT_EQ(
        parseResp("HTTP/1.1 200 OK\r\nX: " + std::string(80, 'x') + "\r\n\r\n", *h, false, lim),
        ParseStatus::Error);
    EXPECT_EQ(h->error.status, 502);
}

// ---- chunked decoder -------------------------------------------------------------------------

struct Collected {
    std::string payload;
    static void append(void* ctx, const char* data, size_t len) {
        static_cast<Collected*>(ctx)->payload.append(data, len);
    }
};

class ChunkedDecoderTest : public ::testing::Test {
protected:
    // Feeds s in pieces of `step` bytes; returns the final status and total bytes consumed.
    ChunkedDecoder::Status feedAll(ChunkedDecoder& d, std::string_view s, size_t step,
                                   size_t* consumed, Collected* out) {
        *consumed = 0;
        ChunkedDecoder::Status st = ChunkedDecoder::Status::NeedMore;
        for (size_t off = 0; off < s.size() && st == ChunkedDecoder::Status::NeedMore;) {
            size_t n = std::min(step, s.size() - off);
            auto r = d.feed(s.data() + off, n, &Collected::append, out);
            EXPECT_LE(r.consumed, n);
            *consumed += r.consumed;
            st = r.status;
            off += n;
        }
        return st;
    }
};

const std::string kChunkedBody =
    "5\r\nhello\r\n"
    "1;name=value;quoted=\"a b\"\r\n,\r\n"
    "00007 \t;ext\r\n world!\r\n"
    "A\r\n0123456789\r\n"
    "0\r\n"
    "Expires: never\r\n"
    "X-Checksum: abc\r\n"
    "\r\n";

TEST_F(ChunkedDecoderTest, DecodesBodyWithExtensionsAndTrailers) {
    ChunkedDecoder d;
    Collected out;
    std::string wire = kChunkedBody + "GET /next HTTP/1.1\r\n";
    auto r = d.feed(wire.data(), wire.size(), &Collected::append, &out);
    EXPECT_EQ(r.status, ChunkedDecoder::Status::Done);
    EXPECT_EQ(r.consumed, kChunkedBody.size());
    EXPECT_EQ(out.payload, "hello, world!0123456789");
    EXPECT_EQ(d.payloadBytes(), 23u);
    EXPECT_TRUE(d.done());
    auto again = d.feed(wire.data(), wire.size());
    EXPECT_EQ(again.consumed, 0u);
    EXPECT_EQ(again.status, ChunkedDecoder::Status::Done);
}

TEST_F(ChunkedDecoderTest, SplitAtEveryPositionGivesTheSameResult) {
    for (size_t split = 0; split <= kChunkedBody.size(); ++split) {
        ChunkedDecoder d;
        Collected out;
        auto a = d.feed(kChunkedBody.data(), split, &Collected::append, &out);
        ASSERT_EQ(a.status, split == kChunkedBody.size() ? ChunkedDecoder::Status::Done
                                                         : ChunkedDecoder::Status::NeedMore)
            << "split " << split;
        ASSERT_EQ(a.consumed, split);
        auto b = d.feed(kChunkedBody.data() + split, kChunkedBody.size() - split,
                        &Collected::append, &out);
        if (split < kChunkedBody.size()) {
            ASSERT_EQ(b.status, ChunkedDecoder::Status::Done) << "split " << split;
            EXPECT_EQ(b.consumed, kChunkedBody.size() - split);
        }
        EXPECT_EQ(out.payload, "hello, world!0123456789") << "split " << split;
        EXPECT_EQ(d.payloadBytes(), 23u);
    }
}

TEST_F(ChunkedDecoderTest, ByteAtATimeGivesTheSameResult) {
    ChunkedDecoder d;
    Collected out;
    size_t consumed = 0;
    EXPECT_EQ(feedAll(d, kChunkedBody + "XYZ", 1, &consumed, &out), ChunkedDecoder::Status::Done);
    EXPECT_EQ(consumed, kChunkedBody.size());
    EXPECT_EQ(out.payload, "hello, world!0123456789");
}

TEST_F(ChunkedDecoderTest, TracksRemainingBytesOfTheCurrentChunk) {
    ChunkedDecoder d;
    std::string part = "10\r\nabcd";
    auto r = d.feed(part.data(), part.size());
    EXPECT_EQ(r.status, ChunkedDecoder::Status::NeedMore);
    EXPECT_EQ(d.chunkRemaining(), 12u);
    EXPECT_EQ(d.payloadBytes(), 4u);
}

TEST_F(ChunkedDecoderTest, AcceptsLargestChunkSize) {
    ChunkedDecoder d;
    std::string s = "7fffffffffffffff\r\n";
    auto r = d.feed(s.data(), s.size());
    EXPECT_EQ(r.status, ChunkedDecoder::Status::NeedMore);
    EXPECT_EQ(d.chunkRemaining(), 0x7fffffffffffffffull);
}

TEST_F(ChunkedDecoderTest, ResetStartsANewBody) {
    ChunkedDecoder d;
    std::string bad = "zz\r\n";
    EXPECT_EQ(d.feed(bad.data(), bad.size()).status, ChunkedDecoder::Status::Error);
    EXPECT_TRUE(d.failed());
    d.reset();
    EXPECT_FALSE(d.failed());
    EXPECT_EQ(d.error().status, 0);
    std::string ok = "0\r\n\r\n";
    auto r = d.feed(ok.data(), ok.size());
    EXPECT_EQ(r.status, ChunkedDecoder::Status::Done);
    EXPECT_EQ(r.consumed, ok.size());
}

struct ChunkRejectCase {
    const char* name;
    std::string input;
    uint16_t status;
    size_t consumed;  // bytes accepted before the offending one
};

std::vector<ChunkRejectCase> chunkRejections() {
    return {
        {"InvalidHexDigit", "5g\r\n", 400, 1},
        {"MissingSize", "\r\n", 400, 0},
        {"LeadingSpace", " 5\r\n", 400, 0},
        {"SizeOverflowsInt64", "8000000000000000\r\n", 400, 15},
        {"SizeOverflowsUint64", "10000000000000000\r\n", 400, 16},
        {"BareLfAfterSize", "5\nhello\r\n", 400, 1},
        {"BareCrAfterSize", "5\rhello\r\n", 400, 2},
        {"TrailingSpaceWithoutExtension", "5 \r\nhello\r\n", 400, 2},
        {"MissingCrlfAfterData", "5\r\nhelloX\r\n", 400, 8},
        {"BareLfAfterData", "5\r\nhello\n0\r\n\r\n", 400, 8},
        {"CrWithoutLfAfterData", "5\r\nhello\rX", 400, 9},
        {"CtlInExtension", "5;a=\x01\r\nhello\r\n", 400, 4},
        {"BareLfInExtension", "5;a\nhello\r\n", 400, 3},
        {"TrailerObsFold", "0\r\nX: a\r\n b\r\n\r\n", 400, 9},
        {"TrailerSpaceBeforeColon", "0\r\nX : a\r\n\r\n", 400, 4},
        {"TrailerEmptyName", "0\r\n: a\r\n\r\n", 400, 3},
        {"TrailerCtlInValue", "0\r\nX: a\x02\r\n\r\n", 400, 7},
        {"TrailerBareLf", "0\r\nX: a\n\r\n", 400, 7},
        {"FinalBareCr", "0\r\n\rX", 400, 4},
    };
}

class ChunkedRejectTest : public ::testing::TestWithParam<ChunkRejectCase> {};

TEST_P(ChunkedRejectTest, RejectsInOneFeedAndByteByByte) {
    const ChunkRejectCase& c = GetParam();
    ChunkedDecoder d;
    auto r = d.feed(c.input.data(), c.input.size());
    ASSERT_EQ(r.status, ChunkedDecoder::Status::Error) << c.name;
    EXPECT_EQ(r.consumed, c.consumed) << c.name;
    EXPECT_EQ(d.error().status, c.status) << c.name;
    EXPECT_FALSE(d.error().reason.empty());

    ChunkedDecoder byte;
    size_t consumed = 0;
    ChunkedDecoder::Status st = ChunkedDecoder::Status::NeedMore;
    for (size_t i = 0; i < c.input.size() && st == ChunkedDecoder::Status::NeedMore; ++i) {
        auto b = byte.feed(c.input.data() + i, 1);
        consumed += b.consumed;
        st = b.status;
    }
    EXPECT_EQ(st, ChunkedDecoder::Status::Error) << c.name;
    EXPECT_EQ(consumed, c.consumed) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Rules, ChunkedRejectTest, ::testing::ValuesIn(chunkRejections()),
                         [](const ::testing::TestParamInfo<ChunkRejectCase>& i) {
                             return std::string(i.param.name);
                         });

TEST_F(ChunkedDecoderTest, RejectsChunkOverConfiguredMaxWith413) {
    ChunkedLimits lim;
    lim.max_chunk_size = 1000;
    ChunkedDecoder d(lim);
    std::string ok = "3e8\r\n";  // 1000
    EXPECT_EQ(d.feed(ok.data(), ok.size()).status, ChunkedDecoder::Status::NeedMore);
    ChunkedDecoder e(lim);
    std::string big = "3e9\r\n";
    auto r = e.feed(big.data(), big.size());
    EXPECT_EQ(r.status, ChunkedDecoder::Status::Error);
    EXPECT_EQ(e.error().status, 413);
}

TEST_F(ChunkedDecoderTest, RejectsOverlongSizeLine) {
    ChunkedLimits lim;
    lim.max_chunk_line = 16;
    ChunkedDecoder d(lim);
    std::string ok = "5;aaaaaaaaaaaaaa\r\nhello\r\n";  // 16 bytes before CRLF
    EXPECT_EQ(d.feed(ok.data(), ok.size()).status, ChunkedDecoder::Status::NeedMore);
    std::string zeros = std::string(17, '0') + "\r\n";
    ChunkedDecoder e(lim);
    EXPECT_EQ(e.feed(zeros.data(), zeros.size()).status, ChunkedDecoder::Status::Error);
    EXPECT_EQ(e.error().status, 400);
    std::string ext = "5;" + std::string(20, 'a') + "\r\n";
    ChunkedDecoder f(lim);
    EXPECT_EQ(f.feed(ext.data(), ext.size()).status, ChunkedDecoder::Status::Error);
}

TEST_F(ChunkedDecoderTest, RejectsTrailerSectionOverLimitWith431) {
    ChunkedLimits lim;
    lim.max_trailer_bytes = 12;
    std::string ok = "0\r\nX: 1234\r\n\r\n";  // trailer section "X: 1234\r\n\r\n" = 11 bytes
    ChunkedDecoder d(lim);
    EXPECT_EQ(d.feed(ok.data(), ok.size()).status, ChunkedDecoder::Status::Done);
    std::string big = "0\r\nX: 123456\r\n\r\n";
    ChunkedDecoder e(lim);
    EXPECT_EQ(e.feed(big.data(), big.size()).status, ChunkedDecoder::Status::Error);
    EXPECT_EQ(e.error().status, 431);
}

// ---- helpers ---------------------------------------------------------------------------------

TEST(ReasonPhraseTest, ReturnsCanonicalPhrases) {
    EXPECT_EQ(reasonPhrase(200), "OK");
    EXPECT_EQ(reasonPhrase(404), "Not Found");
    EXPECT_EQ(reasonPhrase(413), "Content Too Large");
    EXPECT_EQ(reasonPhrase(429), "Too Many Requests");
    EXPECT_EQ(reasonPhrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(reasonPhrase(502), "Bad Gateway");
    EXPECT_EQ(reasonPhrase(505), "HTTP Version Not Supported");
    EXPECT_TRUE(reasonPhrase(299).empty());
    EXPECT_TRUE(reasonPhrase(-1).empty());
}

TEST(HopByHopTest, KnowsTheStaticHopByHopNames) {
    for (const char* n : {"Connection", "keep-alive", "TE", "Trailer", "transfer-encoding",
                          "Upgrade", "Proxy-Authorization", "proxy-connection"}) {
        EXPECT_TRUE(isHopByHopName(n)) << n;
    }
    for (const char* n : {"Host", "Content-Length", "Trailers", "Proxy", "X-Proxy-Id", "TEE"}) {
        EXPECT_FALSE(isHopByHopName(n)) << n;
    }
}

TEST(EqualsIgnoreCaseTest, ComparesAsciiCaseInsensitively) {
    EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
    EXPECT_FALSE(equalsIgnoreCase("Content-Length", "Content-Lengt"));
    EXPECT_FALSE(equalsIgnoreCase("a^", "a~"));
    EXPECT_FALSE(equalsIgnoreCase("x-request-i^", "X-REQUEST-I~"));
    EXPECT_FALSE(equalsIgnoreCase("@", "`"));
    EXPECT_FALSE(equalsIgnoreCase("abcd[", "ABCD{"));
    EXPECT_FALSE(equalsIgnoreCase("\xc1\xc1\xc1\xc1\xc1", "\xe1\xe1\xe1\xe1\xe1"));
    EXPECT_TRUE(equalsIgnoreCase("", ""));
    EXPECT_TRUE(equalsIgnoreCase("TRANSFER-ENCODING", "transfer-encoding"));
}

TEST(EqualsIgnoreCase, MatchesAByteByByteReferenceForEveryLengthAndByte) {
    auto ref = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) {
            return false;
        }
        for (size_t i = 0; i < a.size(); ++i) {
            auto lo = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; };
            if (lo(static_cast<unsigned char>(a[i])) != lo(static_cast<unsigned char>(b[i]))) {
                return false;
            }
        }
        return true;
    };
    // Every pair of byte values at every position of strings of length 1..20, the other bytes
    // equal: covers the word, overlapping-tail and byte-loop paths.
    for (size_t len = 1; len <= 20; ++len) {
        for (size_t pos = 0; pos < len; pos += (len > 9 ? 3 : 1)) {
            std::string a(len, 'k'), b(len, 'K');
            for (int x = 0; x < 256; ++x) {
                for (int y = 0; y < 256; y += 1) {
                    a[pos] = static_cast<char>(x);
                    b[pos] = static_cast<char>(y);
                    ASSERT_EQ(equalsIgnoreCase(a, b), ref(a, b))
                        << "len " << len << " pos " << pos << " bytes " << x << "," << y;
                }
            }
        }
    }
}

}  // namespace
}  // namespace photon::core::http

namespace photon::core::http {
namespace {

// nginx's underscores_in_headers: a CGI-style server reads X_Forwarded_For as X-Forwarded-For.
TEST(UnderscoreFieldsTest, MarkedNotForwardedOnlyWhenAsked) {
    const std::string req =
        "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX-Real: 1\r\n"
        "Some-Very-Long-Field-Name_With: x\r\n\r\n";
    for (bool drop : {true, false}) {
        Limits lim;
        lim.drop_underscores = drop;
        RequestHead h;
        size_t hint = 0;
        ASSERT_EQ(parseRequest(req.data(), req.size(), lim, h, hint), ParseStatus::Complete);
        int marked = 0;
        for (const auto& f : h.headers) {
            bool has = f.name.find('_') != std::string_view::npos;
            EXPECT_EQ(f.hop_by_hop, has && drop) << f.name;
            marked += f.hop_by_hop ? 1 : 0;
        }
        EXPECT_EQ(marked, drop ? 2 : 0);
    }
    // Responses are never affected.
    const std::string resp = "HTTP/1.1 200 OK\r\nX_Custom: 1\r\nContent-Length: 0\r\n\r\n";
    Limits lim;
    lim.drop_underscores = true;
    ResponseHead r;
    size_t hint = 0;
    ASSERT_EQ(parseResponse(resp.data(), resp.size(), lim, r, hint, false), ParseStatus::Complete);
    for (const auto& f : r.headers) {
        EXPECT_FALSE(f.hop_by_hop) << f.name;
    }
}

}  // namespace
}  // namespace photon::core::http
