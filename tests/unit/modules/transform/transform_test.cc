// SPDX-License-Identifier: Apache-2.0
// Header transforms: templates, the order of operations and the variables.
#include "modules/transform/transform.h"

#include <gtest/gtest.h>

#include <string>

#include "worker/http_conn.h"
#include "worker/phases.h"
#include "worker/proxy.h"

namespace photon::mod::transform {
namespace {

using worker::Verdict;

TEST(TemplateTest, LiteralsVariablesAndEscapes) {
    auto t = Template::compile("plain", false);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t.value().constant);
    EXPECT_EQ(t.value().text, "plain");

    t = Template::compile("$${literal}", false);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t.value().constant);
    EXPECT_EQ(t.value().text, "${literal}");

    t = Template::compile("rid=${request_id};p=${path.id}", false);
    ASSERT_TRUE(t.ok());
    EXPECT_FALSE(t.value().constant);
    ASSERT_EQ(t.value().parts.size(), 4u);
    EXPECT_EQ(t.value().parts[1].var, Var::RequestId);
    EXPECT_EQ(t.value().parts[3].var, Var::PathParam);
    EXPECT_EQ(t.value().parts[3].text, "id");
}

TEST(TemplateTest, ErrorsNameTheProblem) {
    auto t = Template::compile("${requestid}", false);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.error().msg.find("unknown variable '${requestid}'"), std::string::npos);
    t = Template::compile("${upstream}", false);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.error().msg.find("response"), std::string::npos);
    EXPECT_TRUE(Template::compile("${upstream}", true).ok());
    EXPECT_FALSE(Template::compile("${request_id", false).ok());
    std::string many;
    for (int i = 0; i < 20; ++i) {
        many += "x${method}";
    }
    EXPECT_FALSE(Template::compile(many, false).ok());
}

TEST(TemplateTest, GatewayVariableNames) {
    EXPECT_TRUE(isGatewayVariable("request_id"));
    EXPECT_TRUE(isGatewayVariable("path.id"));
    EXPECT_TRUE(isGatewayVariable("jwt.sub"));
    EXPECT_FALSE(isGatewayVariable("path."));
    EXPECT_FALSE(isGatewayVariable("HOME"));
    EXPECT_FALSE(isGatewayVariable("requestid"));
}

class TransformHandlerTest : public ::testing::Test {
protected:
    void SetUp() override {
        text_ =
            "GET /users/42 HTTP/1.1\r\nHost: api.test\r\nX-Debug: 1\r\nx-debug: 2\r\n"
            "X-Env: old\r\nAccept: */*\r\n\r\n";
        size_t hint = 0;
        core::http::Limits lim;
        ASSERT_EQ(core::http::parseRequest(text_.data(), text_.size(), lim, head_, hint),
                  core::http::ParseStatus::Complete);
        std::memcpy(meta_.id, "req-1", 5);
        meta_.id_len = 5;
        std::memcpy(meta_.method, "GET", 3);
        meta_.method_len = 3;
        std::memcpy(meta_.path, "/users/42", 9);
        meta_.path_len = 9;
        route_.id = "users";
        req_.reset();
        req_.clearSlots();
        req_.head = &head_;
        req_.resp = &resp_;
        req_.meta = &meta_;
        req_.route = &route_;
        req_.client_ip = "192.0.2.7";
        req_.upstream = "10.0.0.1:80";
    }
    TransformConf build(const core::TransformConfig& c) {
        auto k = TransformConf::compile(c);
        EXPECT_TRUE(k.ok());
        TransformConf conf = std::move(k.value());
        return conf;
    }
    // The fields the upstream head gets: the client's minus the dropped ones, then the added.
    core::http::HeaderList upstreamFields() {
        core::http::HeaderList out;
        for (const auto& f : head_.headers) {
            if (req_.upstream_edits == nullptr || !req_.upstream_edits->drops(f.name)) {
                worker::addHeader(out, f.name, f.value);
            }
        }
        for (const worker::HeadEdits* e = req_.upstream_edits; e != nullptr; e = e->next) {
            for (uint16_t i = 0; i < e->add_count; ++i) {
                worker::addHeader(out, e->add[i].name(), e->add[i].value);
            }
        }
        return out;
    }
    std::vector<std::string> values(const core::http::HeaderList& h, std::string_view name) {
        std::vector<std::string> out;
        for (const auto& f : h) {
            if (core::http::equalsIgnoreCase(f.name, name)) {
                out.emplace_back(f.value);
            }
        }
        return out;
    }
    std::string text_;
    core::http::RequestHead head_;
    core::http::ResponseHead resp_;
    worker::RequestMeta meta_;
    worker::RouteRt route_;
    worker::Request req_;
};

TEST_F(TransformHandlerTest, RemoveThenSetThenAdd) {
    core::TransformConfig c;
    c.request_headers.remove = {"x-debug", "X-Env"};
    c.request_headers.set = {{"X-Env", "prod"}, {"Accept", "application/json"}};
    c.request_headers.add = {{"X-Env", "extra"}, {"X-Trace", "${request_id}/${method}"}};
    TransformConf conf = build(c);
    conf.index();
    EXPECT_EQ(requestHandler(req_, &conf), Verdict::Next);
    core::http::HeaderList up = upstreamFields();
    EXPECT_TRUE(values(up, "x-debug").empty());
    EXPECT_EQ(values(up, "x-env"), (std::vector<std::string>{"prod", "extra"}));
    EXPECT_EQ(values(up, "accept"), (std::vector<std::string>{"application/json"}));
    EXPECT_EQ(values(up, "x-trace"), (std::vector<std::string>{"req-1/GET"}));
    EXPECT_EQ(values(up, "host"), (std::vector<std::string>{"api.test"}));
}

TEST_F(TransformHandlerTest, SetHostChangesTheUpstreamHostOnly) {
    core::TransformConfig c;
    c.request_headers.set = {{"Host", "internal.svc"}};
    TransformConf conf = build(c);
    conf.index();
    EXPECT_EQ(requestHandler(req_, &conf), Verdict::Next);
    EXPECT_EQ(req_.host_override, "internal.svc");
    EXPECT_EQ(values(upstreamFields(), "host"), (std::vector<std::string>{"api.test"}));
}

TEST_F(TransformHandlerTest, ResponseSideVariables) {
    core::TransformConfig c;
    c.response_headers.add = {{"X-Info", "${route_id}|${client_ip}|${upstream}|${path}|${host}"},
                              {"X-Claim", "[${jwt.sub}]"}};
    TransformConf conf = build(c);
    conf.index();
    EXPECT_TRUE(conf.response_needs_request);
    EXPECT_EQ(captureHandler(req_, &conf), Verdict::Next);  // Access: copies the host
    EXPECT_EQ(responseHandler(req_, &conf), Verdict::Next);
    EXPECT_EQ(values(resp_.headers, "x-info"),
              (std::vector<std::string>{"users|192.0.2.7|10.0.0.1:80|/users/42|api.test"}));
    EXPECT_EQ(values(resp_.headers, "x-claim"), (std::vector<std::string>{"[]"}));
}

TEST_F(TransformHandlerTest, FullHeadListIsRefused) {
    core::TransformConfig c;
    c.response_headers.add = {{"X-A", "1"}};
    TransformConf conf = build(c);
    conf.index();
    for (size_t i = 0; i < core::http::kMaxHeaders; ++i) {
        worker::addHeader(resp_.headers, "F", "v");
    }
    EXPECT_EQ(responseHandler(req_, &conf), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 502);
    // The request side refuses a request whose edits no longer fit its arena.
    c = {};
    c.request_headers.add = {{"X-A", "${request_id}${request_id}"}};
    TransformConf rq = build(c);
    rq.index();
    req_.reset();
    ASSERT_NE(req_.alloc(worker::kArenaSize - 64), nullptr);
    EXPECT_EQ(requestHandler(req_, &rq), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 431);
}

}  // namespace
}  // namespace photon::mod::transform
