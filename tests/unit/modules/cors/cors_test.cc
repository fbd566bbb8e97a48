// SPDX-License-Identifier: Apache-2.0
// CORS: origin rules, requested headers and methods, and the handlers on a socket-less request.
#include "modules/cors/cors.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "worker/request_fixture.h"

namespace photon::mod::cors {
namespace {

using worker::Verdict;

core::CorsConfig config(std::vector<std::string> origins, bool credentials = false) {
    core::CorsConfig c;
    c.allowed_origins = std::move(origins);
    c.allowed_methods = {"GET", "POST"};
    c.allowed_headers = {"Content-Type", "Authorization"};
    c.max_age = std::chrono::seconds(600);
    c.expose_headers = {"X-Total"};
    c.allow_credentials = credentials;
    return c;
}

TEST(CorsConfTest, ExactOriginsMatchWholeOriginsOnly) {
    CorsConf c = CorsConf::compile(config({"https://app.example.com", "http://localhost:3000"}));
    EXPECT_TRUE(c.originAllowed("https://app.example.com"));
    EXPECT_TRUE(c.originAllowed("https://APP.example.com"));  // host case-insensitive
    EXPECT_TRUE(c.originAllowed("http://localhost:3000"));
    EXPECT_FALSE(c.originAllowed("http://app.example.com"));        // scheme
    EXPECT_FALSE(c.originAllowed("https://app.example.com:8443"));  // port
    EXPECT_FALSE(c.originAllowed("http://localhost"));
    EXPECT_FALSE(c.originAllowed("https://app.example.com.evil.net"));
    EXPECT_FALSE(c.originAllowed("https://evilapp.example.com"));
    EXPECT_FALSE(c.originAllowed("null"));
    EXPECT_FALSE(c.originAllowed(""));
}

TEST(CorsConfTest, WildcardMatchesSubdomainsButNotTheDomain) {
    CorsConf c = CorsConf::compile(config({"https://*.example.org"}));
    EXPECT_TRUE(c.originAllowed("https://a.example.org"));
    EXPECT_TRUE(c.originAllowed("https://x.y.example.org"));
    EXPECT_TRUE(c.originAllowed("https://A.Example.ORG"));
    EXPECT_FALSE(c.originAllowed("https://example.org"));
    EXPECT_FALSE(c.originAllowed("https://badexample.org"));
    EXPECT_FALSE(c.originAllowed("http://a.example.org"));
    EXPECT_FALSE(c.originAllowed("https://a.example.org:444"));
    EXPECT_FALSE(c.originAllowed("https://a.example.org/path"));
}

TEST(CorsConfTest, StarAllowsAnyOrigin) {
    CorsConf c = CorsConf::compile(config({"*"}));
    EXPECT_TRUE(c.originAllowed("https://whatever.test"));
    EXPECT_TRUE(c.any_origin);
}

TEST(CorsConfTest, RequestedHeadersAndMethods) {
    CorsConf c = CorsConf::compile(config({"*"}));
    EXPECT_TRUE(c.headersAllowed("content-type, AUTHORIZATION"));
    EXPECT_TRUE(c.headersAllowed(""));
    EXPECT_TRUE(c.headersAllowed(" , content-type"));
    EXPECT_FALSE(c.headersAllowed("content-type, x-secret"));
    EXPECT_TRUE(c.methodAllowed("POST"));
    EXPECT_FALSE(c.methodAllowed("post"));  // methods are case-sensitive
    EXPECT_FALSE(c.methodAllowed("DELETE"));
    EXPECT_EQ(c.allow_methods, "GET, POST");
    EXPECT_EQ(c.allow_headers, "Content-Type, Authorization");
    EXPECT_EQ(c.max_age, "600");
    EXPECT_EQ(c.expose_headers, "X-Total");
    core::CorsConfig any = config({"*"});
    any.allowed_headers = {"*"};
    CorsConf a = CorsConf::compile(any);
    EXPECT_TRUE(a.headersAllowed("x-anything"));
    EXPECT_TRUE(a.allow_headers.empty());
}

// Drives the two handlers on a request parsed from text.
class CorsHandlerTest : public worker::RequestFixture {};

TEST_F(CorsHandlerTest, PreflightIsAnswered204WithTheGrants) {
    CorsConf c = CorsConf::compile(config({"https://app.example.com"}, true));
    parse(
        "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\n"
        "Access-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: content-type\r\n\r\n");
    EXPECT_EQ(accessHandler(req_, &c), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 204);
    EXPECT_FALSE(req_.replyHasBody());
    EXPECT_EQ(headerHandler(req_, &c), Verdict::Next);
    EXPECT_EQ(value("Access-Control-Allow-Origin"), "https://app.example.com");
    EXPECT_EQ(value("Access-Control-Allow-Methods"), "GET, POST");
    EXPECT_EQ(value("Access-Control-Allow-Headers"), "Content-Type, Authorization");
    EXPECT_EQ(value("Access-Control-Max-Age"), "600");
    EXPECT_EQ(value("Access-Control-Allow-Credentials"), "true");
    EXPECT_EQ(value("Vary"),
              "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
}

TEST_F(CorsHandlerTest, PreflightRefusalsAre403WithoutGrants) {
    CorsConf c = CorsConf::compile(config({"https://app.example.com"}));
    for (const char* bad :
         {"Origin: https://evil.test\r\nAccess-Control-Request-Method: GET\r\n",
          "Origin: https://app.example.com\r\nAccess-Control-Request-Method: DELETE\r\n",
          "Origin: https://app.example.com\r\nAccess-Control-Request-Method: GET\r\n"
          "Access-Control-Request-Headers: x-secret\r\n"}) {
        parse(std::string("OPTIONS /x HTTP/1.1\r\nHost: h\r\n") + bad + "\r\n");
        EXPECT_EQ(accessHandler(req_, &c), Verdict::Respond) << bad;
        EXPECT_EQ(req_.replyStatus(), 403) << bad;
        EXPECT_EQ(headerHandler(req_, &c), Verdict::Next);
        EXPECT_EQ(resp_.headers.count, 0) << bad;
    }
}

TEST_F(CorsHandlerTest, ActualResponseGetsGrantsAndUpstreamOnesAreReplaced) {
    CorsConf c = CorsConf::compile(config({"https://app.example.com"}));
    parse("GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\n\r\n");
    EXPECT_EQ(accessHandler(req_, &c), Verdict::Next);
    worker::addHeader(resp_.headers, "Access-Control-Allow-Origin", "*");
    worker::addHeader(resp_.headers, "Vary", "Accept-Encoding");
    EXPECT_EQ(headerHandler(req_, &c), Verdict::Next);
    EXPECT_EQ(resp_.headers.countOf("access-control-allow-origin"), 1u);
    EXPECT_EQ(value("Access-Control-Allow-Origin"), "https://app.example.com");
    EXPECT_EQ(value("Vary"), "Accept-Encoding, Origin");
    EXPECT_EQ(value("Access-Control-Expose-Headers"), "X-Total");
    EXPECT_EQ(value("Access-Control-Allow-Credentials"), "<absent>");
}

TEST_F(CorsHandlerTest, DisallowedOriginLosesUpstreamGrantsAndNoOriginIsUntouched) {
    CorsConf c = CorsConf::compile(config({"https://app.example.com"}));
    parse("GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.test\r\n\r\n");
    EXPECT_EQ(accessHandler(req_, &c), Verdict::Next);
    worker::addHeader(resp_.headers, "Access-Control-Allow-Origin", "*");
    headerHandler(req_, &c);
    EXPECT_EQ(resp_.headers.count, 0);

    parse("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(accessHandler(req_, &c), Verdict::Next);
    worker::addHeader(resp_.headers, "Access-Control-Allow-Origin", "*");
    headerHandler(req_, &c);
    EXPECT_EQ(value("Access-Control-Allow-Origin"), "*");
}

TEST_F(CorsHandlerTest, OptionsWithoutRequestMethodIsAnActualRequest) {
    CorsConf c = CorsConf::compile(config({"*"}));
    parse("OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.test\r\n\r\n");
    EXPECT_EQ(accessHandler(req_, &c), Verdict::Next);
    headerHandler(req_, &c);
    EXPECT_EQ(value("Access-Control-Allow-Origin"), "*");
}

}  // namespace
}  // namespace photon::mod::cors
