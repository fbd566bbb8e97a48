// SPDX-License-Identifier: Apache-2.0
// Tests for Probe: TCP, HTTP and HTTPS checks against scripted servers on 127.0.0.1.
#include "modules/health/http_probe.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "health_test_util.h"

namespace photon::mod::health {
namespace {

using balancer::HealthError;
using testing::BoundSocket;
using testing::ScriptedServer;
using testing::targetPort;
using testing::TestLoop;

class ProbeTest : public ::testing::Test {
protected:
    struct Outcome {
        int calls = 0;
        ProbeResult result;
    };

    static void onDone(void* ctx, const ProbeResult& r) {
        auto* o = static_cast<Outcome*>(ctx);
        ++o->calls;
        o->result = r;
    }

    /// Runs one check of spec_ to completion and returns its result.
    ProbeResult check(SSL_CTX* tls = nullptr) {
        probe_.start(spec_, tls);
        EXPECT_EQ(out_.calls, 0) << "the callback ran inside start()";
        EXPECT_TRUE(loop_.runUntil([&] { return out_.calls > 0; }));
        EXPECT_EQ(out_.calls, 1);
        EXPECT_FALSE(probe_.running());
        out_.calls = 0;
        return out_.result;
    }

    void http(uint16_t port, std::string_view method = "GET", std::string_view path = "/health") {
        spec_.kind = core::HealthCheckType::Http;
        spec_.request = buildCheckRequest(method, path, "127.0.0.1:" + std::to_string(port));
        targetPort(spec_, port);
    }

    TestLoop loop_;
    Outcome out_;
    Probe probe_{loop_.get(), &ProbeTest::onDone, &out_};
    ProbeSpec spec_;
};

TEST(BuildCheckRequestTest, WritesMethodPathHostUserAgentAndClose) {
    EXPECT_EQ(buildCheckRequest("HEAD", "/status?x=1", "api.internal:8080"),
              "HEAD /status?x=1 HTTP/1.1\r\nHost: api.internal:8080\r\n"
              "User-Agent: photon-health-check\r\nConnection: close\r\n\r\n");
}

TEST(DescribeResultTest, NamesTheErrorAndItsDetails) {
    ProbeSpec spec;
    spec.expected_status = 204;
    spec.timeout_s = 1.5;
    char buf[128];
    ProbeResult r;
    r.error = HealthError::BadStatus;
    r.http_status = 503;
    EXPECT_STREQ(describeResult(r, spec, buf, sizeof buf), "bad_status 503 (expected 204)");
    r = ProbeResult{};
    r.error = HealthError::Timeout;
    EXPECT_STREQ(describeResult(r, spec, buf, sizeof buf), "timeout after 1.500s");
    r = ProbeResult{};
    r.error = HealthError::ConnectRefused;
    r.sys_errno = ECONNREFUSED;
    EXPECT_EQ(std::string(describeResult(r, spec, buf, sizeof buf)),
              std::string("connect_refused (") + std::strerror(ECONNREFUSED) + ")");
    r = ProbeResult{};
    r.error = HealthError::Protocol;
    r.detail = "bad status line";
    EXPECT_STREQ(describeResult(r, spec, buf, sizeof buf), "protocol (bad status line)");
    char tiny[8];
    EXPECT_STREQ(describeResult(r, spec, tiny, sizeof tiny), "protoco");
}

TEST_F(ProbeTest, TcpCheckSucceedsAgainstAListeningSocket) {
    BoundSocket listener(16);
    spec_.kind = core::HealthCheckType::Tcp;
    targetPort(spec_, listener.port());
    ProbeResult r = check();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.error, HealthError::None);
}

TEST_F(ProbeTest, TcpCheckAgainstAClosedPortFailsWithConnectRefused) {
    BoundSocket not_listening(-1);
    spec_.kind = core::HealthCheckType::Tcp;
    targetPort(spec_, not_listening.port());
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::ConnectRefused);
    EXPECT_EQ(r.sys_errno, ECONNREFUSED);
}

TEST_F(ProbeTest, UnresolvedAddressFailsWithResolveFromTheLoop) {
    spec_.kind = core::HealthCheckType::Http;
    spec_.addr_len = 0;
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Resolve);
}

TEST_F(ProbeTest, HttpCheckSendsTheConfiguredRequestAndAcceptsTheExpectedStatus) {
    ScriptedServer server(loop_.get());
    http(server.port(), "GET", "/ready");
    ProbeResult r = check();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.http_status, 200);
    ASSERT_EQ(server.requests.size(), 1u);
    EXPECT_EQ(server.requests[0], spec_.request);
    EXPECT_EQ(server.requests[0].rfind("GET /ready HTTP/1.1\r\n", 0), 0u);
}

TEST_F(ProbeTest, HttpCheckExpecting200FailsWithBadStatusWhenTheServerAnswers503) {
    ScriptedServer server(loop_.get());
    server.reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    http(server.port());
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::BadStatus);
    EXPECT_EQ(r.http_status, 503);
}

TEST_F(ProbeTest, ExpectedStatusIsComparedExactly) {
    ScriptedServer server(loop_.get());
    server.reply = "HTTP/1.1 204 No Content\r\n\r\n";
    http(server.port());
    spec_.expected_status = 204;
    EXPECT_TRUE(check().ok);
    spec_.expected_status = 200;
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::BadStatus);
    EXPECT_EQ(r.http_status, 204);
}

TEST_F(ProbeTest, InterimResponsesAreSkipped) {
    ScriptedServer server(loop_.get());
    server.reply =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    http(server.port());
    ProbeResult r = check();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.http_status, 200);
}

TEST_F(ProbeTest, BodyIsIgnoredOnceTheHeadIsComplete) {
    ScriptedServer server(loop_.get());
    server.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial";
    http(server.port());
    EXPECT_TRUE(check().ok);
}

TEST_F(ProbeTest, ServerThatNeverAnswersFailsWithTimeout) {
    ScriptedServer server(loop_.get());
    server.mode = ScriptedServer::Mode::Hang;
    http(server.port());
    spec_.timeout_s = 0.2;
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Timeout);
    EXPECT_EQ(server.requests.size(), 1u);
    // The probe closed its socket: the server sees the close.
    EXPECT_TRUE(loop_.runUntil([&] { return server.closed_by_peer == 1; }));
}

TEST_F(ProbeTest, UnparsableAnswerFailsWithProtocol) {
    ScriptedServer server(loop_.get());
    server.reply = "HELLO THERE\r\n\r\n";
    http(server.port());
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Protocol);
    EXPECT_FALSE(r.detail.empty());
}

TEST_F(ProbeTest, OversizedHeadFailsWithProtocol) {
    ScriptedServer server(loop_.get());
    server.reply =
        "HTTP/1.1 200 OK\r\nX-Big: " + std::string(Probe::kBufferBytes, 'a') + "\r\n\r\n";
    http(server.port());
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Protocol);
}

TEST_F(ProbeTest, CloseBeforeAnAnswerFailsWithIo) {
    ScriptedServer server(loop_.get());
    server.reply = "HTTP/1.1 200 O";  // cut short inside the status line
    http(server.port());
    ProbeResult r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Io);

    server.mode = ScriptedServer::Mode::CloseAtOnce;
    r = check();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::Io);
}

TEST_F(ProbeTest, FullAcceptQueueFailsWithConnectTimeout) {
    // A listener with backlog 0 that never accepts: once its queue is full the kernel drops
    // further SYNs, so the connect never completes.
    BoundSocket listener(0);
    std::vector<int> fillers;
    ProbeSpec tcp;
    tcp.kind = core::HealthCheckType::Tcp;
    tcp.timeout_s = 0.3;
    targetPort(tcp, listener.port());
    spec_ = tcp;
    ProbeResult r;
    // Keep filling the queue with probes' worth of blocking-free connects until one times out.
    for (int i = 0; i < 8; ++i) {
        r = check();
        if (!r.ok) {
            break;
        }
        // The connection completed (queue had room): hold a connection open to fill it.
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in a = testing::loopback(listener.port());
        (void)::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        fillers.push_back(fd);
    }
    for (int fd : fillers) {
        ::close(fd);
    }
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::ConnectTimeout);
}

TEST_F(ProbeTest, CancelStopsTheCheckWithoutCallingBack) {
    ScriptedServer server(loop_.get());
    server.mode = ScriptedServer::Mode::Hang;
    http(server.port());
    spec_.timeout_s = 30;
    probe_.start(spec_, nullptr);
    EXPECT_TRUE(probe_.running());
    ASSERT_TRUE(loop_.runUntil([&] { return server.requests.size() == 1; }));
    probe_.cancel();
    EXPECT_FALSE(probe_.running());
    ASSERT_TRUE(loop_.runUntil([&] { return server.closed_by_peer == 1; }));
    EXPECT_EQ(out_.calls, 0);
}

TEST_F(ProbeTest, ProbeCanBeRestartedFromItsCallback) {
    ScriptedServer server(loop_.get());
    http(server.port());
    struct Chain {
        Probe* probe;
        const ProbeSpec* spec;
        int done = 0;
    } chain{nullptr, &spec_};
    Probe p(
        loop_.get(),
        [](void* ctx, const ProbeResult& r) {
            auto* c = static_cast<Chain*>(ctx);
            EXPECT_TRUE(r.ok);
            if (++c->done < 3) {
                c->probe->start(*c->spec, nullptr);
            }
        },
        &chain);
    chain.probe = &p;
    p.start(spec_, nullptr);
    ASSERT_TRUE(loop_.runUntil([&] { return chain.done == 3; }));
    EXPECT_EQ(server.requests.size(), 3u);
    EXPECT_FALSE(p.running());
}

class HttpsProbeTest : public ProbeTest {
protected:
    void https(uint16_t port, std::string tls_name, bool verify) {
        http(port);
        spec_.kind = core::HealthCheckType::Https;
        spec_.tls_name = std::move(tls_name);
        spec_.tls_verify = verify;
    }
    SSL_CTX* ctx(bool verify) {
        auto c = contexts_.get(verify);
        EXPECT_TRUE(c.ok());
        return c.ok() ? c.value() : nullptr;
    }

    TlsClientContexts contexts_;
};

TEST_F(HttpsProbeTest, WithoutVerificationSucceedsAndSendsTheNameAsSni) {
    ScriptedServer server(loop_.get(), /*tls=*/true);
    https(server.port(), "api.example.test", false);
    ProbeResult r = check(ctx(false));
    EXPECT_TRUE(r.ok) << static_cast<int>(r.error) << " " << r.detail;
    EXPECT_EQ(r.http_status, 200);
    ASSERT_EQ(server.server_names.size(), 1u);
    EXPECT_EQ(server.server_names[0], "api.example.test");
    ASSERT_EQ(server.requests.size(), 1u);
    EXPECT_EQ(server.requests[0], spec_.request);
}

TEST_F(HttpsProbeTest, BadStatusOverTlsIsReported) {
    ScriptedServer server(loop_.get(), true);
    server.reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
    https(server.port(), "api.example.test", false);
    ProbeResult r = check(ctx(false));
    EXPECT_EQ(r.error, HealthError::BadStatus);
    EXPECT_EQ(r.http_status, 500);
}

TEST_F(HttpsProbeTest, AnIpLiteralNameIsNotSentAsSni) {
    ScriptedServer server(loop_.get(), true);
    https(server.port(), "127.0.0.1", false);
    EXPECT_TRUE(check(ctx(false)).ok);
    ASSERT_EQ(server.server_names.size(), 1u);
    EXPECT_EQ(server.server_names[0], "");
}

TEST_F(HttpsProbeTest, VerificationRejectsASelfSignedCertificate) {
    ScriptedServer server(loop_.get(), true);
    https(server.port(), "health.test", true);
    ProbeResult r = check(ctx(true));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::TlsHandshake);
    EXPECT_NE(std::string(r.detail).find("self"), std::string::npos) << r.detail;
    EXPECT_TRUE(server.requests.empty());
}

TEST_F(HttpsProbeTest, PlaintextServerFailsTheHandshake) {
    ScriptedServer server(loop_.get(), false);
    server.mode = ScriptedServer::Mode::ReplyAtOnce;
    server.reply = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
    https(server.port(), "health.test", false);
    ProbeResult r = check(ctx(false));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, HealthError::TlsHandshake);
}

TEST_F(HttpsProbeTest, MissingTlsContextFailsTheHandshake) {
    ScriptedServer server(loop_.get(), true);
    https(server.port(), "health.test", false);
    ProbeResult r = check(nullptr);
    EXPECT_EQ(r.error, HealthError::TlsHandshake);
    EXPECT_EQ(server.accepted, 0u);
}

}  // namespace
}  // namespace photon::mod::health
