// SPDX-License-Identifier: Apache-2.0
// The auth handlers on parsed requests: Bearer tokens (HS256 minted here), the verified cache,
// forwarded claims and the client fields they replace, query credentials, API keys, Basic
// credentials against crypt(3) hashes, and the challenges of each refusal.
#include "modules/auth/auth.h"

#include <crypt.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <string>
#include <vector>

#include "shm/clock.h"
#include "worker/request_fixture.h"

namespace photon::mod::auth {
namespace {

using worker::Verdict;

std::string b64url(std::string_view in) { return base64urlEncode(in); }

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::string hs256(const std::string& payload, const std::string& secret = kSecret) {
    std::string signing = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(payload);
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return signing + "." + b64url(std::string_view(reinterpret_cast<char*>(mac), len));
}

int64_t now() { return static_cast<int64_t>(time(nullptr)); }

class AuthTest : public worker::RequestFixture {
protected:
    void use(const core::AuthConfig& c) {
        auto inst = AuthInstance::compile(c, "");
        ASSERT_TRUE(inst.ok()) << inst.error().msg;
        conf_.inst = inst.value();
        conf_.slot = 2;
    }
    /// Access, then (as the engine does) HeaderFilter.
    Verdict run(const std::string& text) {
        parse(text);
        Verdict v = accessHandler(req_, &conf_);
        headerHandler(req_, &conf_);
        return v;
    }
    /// The upstream edits as "drop:a,b|add:Name: value;..." for assertions.
    std::string edits() {
        std::string out;
        for (const worker::HeadEdits* e = req_.upstream_edits; e != nullptr; e = e->next) {
            out += "drop:";
            for (size_t i = 0; i < e->drop_count; ++i) {
                out += std::string(e->drop[i]) + (i + 1 < e->drop_count ? "," : "");
            }
            out += "|add:";
            for (size_t i = 0; i < e->add_count; ++i) {
                out += std::string(e->add[i].text) + std::string(e->add[i].value) + ";";
            }
        }
        return out;
    }

    static core::AuthConfig jwtConfig() {
        core::AuthConfig c;
        c.auth_type = core::AuthType::Jwt;
        c.jwt.emplace();
        c.jwt->secret = kSecret;
        c.jwt->algorithms = {core::JwtAlgorithm::HS256};
        return c;
    }

    AuthConf conf_;
};

std::string bearer(const std::string& token) {
    return "GET /api HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + token + "\r\n\r\n";
}

TEST_F(AuthTest, ValidBearerTokenPasses) {
    use(jwtConfig());
    std::string t = hs256(R"({"sub":"alice","exp":)" + std::to_string(now() + 60) + "}");
    EXPECT_EQ(run(bearer(t)), Verdict::Next);
    EXPECT_FALSE(req_.local());
    // The scheme is case-insensitive.
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: bEaReR " + t + "\r\n\r\n"),
              Verdict::Next);
}

TEST_F(AuthTest, MissingCredentialsAre401WithABearerChallenge) {
    use(jwtConfig());
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
    EXPECT_EQ(req_.replyError(), "missing credentials");
    EXPECT_EQ(value("WWW-Authenticate"), "Bearer");
    // Another scheme in Authorization is no Bearer credential either.
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YTpi\r\n\r\n"),
              Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
    EXPECT_EQ(value("WWW-Authenticate"), "Bearer");
}

TEST_F(AuthTest, BadTokensAre401InvalidTokenAndNeverEchoed) {
    use(jwtConfig());
    std::string expired = hs256(R"({"sub":"a","exp":)" + std::to_string(now() - 5) + "}");
    EXPECT_EQ(run(bearer(expired)), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
    EXPECT_EQ(req_.replyError(), "invalid token: token expired");
    EXPECT_EQ(value("WWW-Authenticate"),
              "Bearer error=\"invalid_token\", error_description=\"token expired\"");
    std::string forged = hs256(R"({"sub":"a"})", "another secret, quite long enough....");
    EXPECT_EQ(run(bearer(forged)), Verdict::Respond);
    EXPECT_EQ(req_.replyError(), "invalid token: invalid signature");
    EXPECT_EQ(req_.replyError().find(forged), std::string_view::npos);
    EXPECT_EQ(run(bearer("not-a-token")), Verdict::Respond);
    EXPECT_EQ(req_.replyError(), "invalid token: malformed token");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a b\r\n\r\n"),
              Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
}

TEST_F(AuthTest, TwoCredentialFieldsAreRefused) {
    use(jwtConfig());
    std::string t = hs256(R"({"sub":"a"})");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + t +
                  "\r\nAuthorization: Bearer " + t + "\r\n\r\n"),
              Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 400);
}

TEST_F(AuthTest, RequiredClaimsAre403) {
    core::AuthConfig c = jwtConfig();
    c.jwt->required_claims = {{"scope", std::string("admin")}, {"sub", std::nullopt}};
    use(c);
    EXPECT_EQ(run(bearer(hs256(R"({"sub":"a","scope":["read","admin"]})"))), Verdict::Next);
    EXPECT_EQ(run(bearer(hs256(R"({"sub":"a","scope":"read"})"))), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 403);
    EXPECT_EQ(value("WWW-Authenticate"), "Bearer error=\"insufficient_scope\"");
    EXPECT_EQ(run(bearer(hs256(R"({"scope":"admin"})"))), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 403);
}

TEST_F(AuthTest, ForwardedClaimsReplaceClientFields) {
    core::AuthConfig c = jwtConfig();
    c.jwt->forward_claims = {{"sub", "X-User-Id"}, {"tier", "X-Tier"}, {"n", "X-N"}};
    c.jwt->forward_token = false;
    use(c);
    std::string t = hs256(R"({"sub":"alice","n":42,"tier":"gold\r\nX-Evil: 1"})");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nX-User-Id: mallory\r\nAuthorization: Bearer " + t +
                  "\r\n\r\n"),
              Verdict::Next);
    // Client fields of those names (and the token) never reach the upstream; a
    // claim that would break the head is not forwarded.
    EXPECT_EQ(edits(), "drop:X-User-Id,X-Tier,X-N,Authorization|add:X-User-Id: alice;X-N: 42;");
    // A cache hit forwards the same.
    EXPECT_EQ(run(bearer(t)), Verdict::Next);
    EXPECT_EQ(edits(), "drop:X-User-Id,X-Tier,X-N,Authorization|add:X-User-Id: alice;X-N: 42;");
}

TEST_F(AuthTest, ClaimsArePublishedForHeaderTransforms) {
    core::AuthConfig c = jwtConfig();
    c.jwt->forward_claims = {{"sub", "X-User-Id"}};
    auto inst = AuthInstance::compile(c, "", {"tenant", "sub", "absent"});
    ASSERT_TRUE(inst.ok());
    conf_.inst = inst.value();
    conf_.slot = 2;
    std::string t = hs256(R"({"sub":"alice","tenant":"acme"})");
    for (int pass = 0; pass < 2; ++pass) {  // verified, then from the cache
        ASSERT_EQ(run(bearer(t)), Verdict::Next);
        ASSERT_EQ(req_.claim_count, 2u);
        EXPECT_EQ(req_.claims[0].name, "sub");
        EXPECT_EQ(req_.claims[0].value, "alice");
        EXPECT_EQ(req_.claims[1].name, "tenant");
        EXPECT_EQ(req_.claims[1].value, "acme");
        // Only the forwarded claim becomes a header.
        EXPECT_EQ(edits(), "drop:X-User-Id|add:X-User-Id: alice;");
    }
}

TEST_F(AuthTest, CacheRemembersOnlySuccessesAndNotPastExpiry) {
    core::AuthConfig c = jwtConfig();
    use(c);
    std::string t = hs256(R"({"sub":"a","exp":)" + std::to_string(now() + 1) + "}");
    EXPECT_EQ(run(bearer(t)), Verdict::Next);
    ASSERT_NE(conf_.inst->cache, nullptr);
    EXPECT_NE(conf_.inst->cache->find(t, photon::shm::monotonicMicros()), nullptr);
    // Remembered at most until exp: two seconds later the entry is gone.
    EXPECT_EQ(conf_.inst->cache->find(t, photon::shm::monotonicMicros() + 2'000'000), nullptr);
    std::string bad = t;
    bad.back() = bad.back() == 'A' ? 'B' : 'A';
    EXPECT_EQ(run(bearer(bad)), Verdict::Respond);
    EXPECT_EQ(conf_.inst->cache->find(bad, photon::shm::monotonicMicros()), nullptr);
    c.cache_ttl = std::chrono::seconds(0);
    use(c);
    EXPECT_EQ(run(bearer(t)), Verdict::Next);
    EXPECT_EQ(conf_.inst->cache, nullptr);
}

TEST_F(AuthTest, QueryTokenIsTakenAndStripped) {
    core::AuthConfig c = jwtConfig();
    c.jwt->query = "access_token";
    use(c);
    std::string t = hs256(R"({"sub":"a"})");
    EXPECT_EQ(run("GET /x?a=1&access_token=" + t + "&b=2 HTTP/1.1\r\nHost: a\r\n\r\n"),
              Verdict::Next);
    ASSERT_TRUE(req_.query_override_set);
    EXPECT_EQ(req_.query_override, "a=1&b=2");
    EXPECT_EQ(run("GET /x?access_token=" + t + " HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Next);
    EXPECT_TRUE(req_.query_override_set);
    EXPECT_EQ(req_.query_override, "");
    // Even when the header carried the credential, the parameter does not travel on.
    EXPECT_EQ(run("GET /x?access%5Ftoken=zzz&k=v HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " +
                  t + "\r\n\r\n"),
              Verdict::Next);
    EXPECT_EQ(req_.query_override, "k=v");
}

TEST_F(AuthTest, CookieToken) {
    core::AuthConfig c = jwtConfig();
    c.jwt->cookie = "session";
    use(c);
    std::string t = hs256(R"({"sub":"a"})");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; session=" + t + "\r\n\r\n"),
              Verdict::Next);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nCookie: sessionx=" + t + "\r\n\r\n"),
              Verdict::Respond);
}

TEST_F(AuthTest, RemoveQueryParam) {
    char out[64];
    auto rm = [&](std::string_view q, std::string_view n) {
        return std::string(out, removeQueryParam(q, n, out));
    };
    EXPECT_EQ(rm("a=1&k=2&b", "k"), "a=1&b");
    EXPECT_EQ(rm("k=1&k=2", "k"), "");
    EXPECT_EQ(rm("%6B=1&kk=2&=3", "k"), "kk=2&=3");
    EXPECT_EQ(rm("a=1", "k"), "a=1");
}

TEST_F(AuthTest, ApiKeysInHeaderAndQueryWithConsumers) {
    core::AuthConfig c;
    c.auth_type = core::AuthType::ApiKey;
    c.api_key.emplace();
    c.api_key->keys = {{"k-one", "partner-a"}, {"k-two", ""}};
    c.api_key->query = "api_key";
    use(c);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: k-one\r\nX-Consumer: forged\r\n\r\n"),
              Verdict::Next);
    EXPECT_EQ(edits(), "drop:X-Consumer|add:X-Consumer: partner-a;");
    EXPECT_EQ(run("GET /?api_key=k-two&x=1 HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Next);
    EXPECT_EQ(edits(), "drop:X-Consumer|add:");
    EXPECT_EQ(req_.query_override, "x=1");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: k-on\r\n\r\n"), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
    EXPECT_EQ(req_.replyError(), "invalid API key");
    EXPECT_EQ(value("WWW-Authenticate"), "ApiKey");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Respond);
    EXPECT_EQ(req_.replyError(), "missing credentials");
}

TEST(ApiKeySetTest, TenThousandKeys) {
    std::vector<core::ApiKeyConfig::Key> keys;
    for (int i = 0; i < 10000; ++i) {
        keys.push_back({"key-" + std::to_string(i), "c" + std::to_string(i)});
    }
    ApiKeySet set(keys);
    EXPECT_EQ(set.size(), 10000u);
    for (int i = 0; i < 10000; i += 97) {
        const std::string* n = set.find("key-" + std::to_string(i));
        ASSERT_NE(n, nullptr) << i;
        EXPECT_EQ(*n, "c" + std::to_string(i));
    }
    EXPECT_EQ(set.find("key-10000"), nullptr);
    EXPECT_EQ(set.find("key-1 "), nullptr);
    EXPECT_EQ(set.find(""), nullptr);
}

class BasicTest : public AuthTest {
protected:
    void SetUp() override {
        path_ = ::testing::TempDir() + "/htpasswd-" + std::to_string(getpid());
        crypt_data data{};
        const char* h = crypt_r("s3cret pass", "$5$rounds=1000$abcdefgh$", &data);
        ASSERT_NE(h, nullptr);
        FILE* f = std::fopen(path_.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fprintf(f, "# users\nalice:%s\n", h);
        std::fclose(f);
        core::AuthConfig c;
        c.auth_type = core::AuthType::Basic;
        c.basic.emplace();
        c.basic->htpasswd_file = path_;
        c.basic->realm = "api";
        use(c);
    }
    void TearDown() override { std::remove(path_.c_str()); }
    static std::string basic(const std::string& creds) {
        std::string b64;
        static const char* kAlphabet =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t i = 0;
        for (; i + 2 < creds.size(); i += 3) {
            uint32_t v = (uint8_t(creds[i]) << 16) | (uint8_t(creds[i + 1]) << 8) | uint8_t(creds[i + 2]);
            for (int k = 3; k >= 0; --k) b64.push_back(kAlphabet[(v >> (6 * k)) & 63]);
        }
        if (creds.size() - i == 1) {
            uint32_t v = uint8_t(creds[i]) << 16;
            b64 += std::string{kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
        } else if (creds.size() - i == 2) {
            uint32_t v = (uint8_t(creds[i]) << 16) | (uint8_t(creds[i + 1]) << 8);
            b64 += std::string{kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63],
                               kAlphabet[(v >> 6) & 63], '='};
        }
        return "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic " + b64 + "\r\n\r\n";
    }
    std::string path_;
};

TEST_F(BasicTest, CheckedAgainstTheHtpasswdHash) {
    EXPECT_EQ(run(basic("alice:s3cret pass")), Verdict::Next);
    EXPECT_EQ(edits(), "drop:X-Consumer|add:X-Consumer: alice;");
    EXPECT_EQ(run(basic("alice:s3cret pass")), Verdict::Next);  // from the cache
    EXPECT_EQ(run(basic("alice:wrong")), Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
    EXPECT_EQ(value("WWW-Authenticate"), "Basic realm=\"api\", charset=\"UTF-8\"");
    EXPECT_EQ(run(basic("bob:s3cret pass")), Verdict::Respond);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Respond);
    EXPECT_EQ(req_.replyError(), "missing credentials");
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic !!!\r\n\r\n"),
              Verdict::Respond);
    EXPECT_EQ(req_.replyStatus(), 401);
}

TEST(HtpasswdTest, WeakOrUnknownSchemesAreRefused) {
    std::string path = ::testing::TempDir() + "/weak-" + std::to_string(getpid());
    for (const char* line : {"bob:$apr1$abc$def", "bob:plaintext", "bob:{SHA}abc=",
                             "bob:$1$abc$def", ":$5$a$b"}) {
        FILE* f = std::fopen(path.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fprintf(f, "%s\n", line);
        std::fclose(f);
        auto r = loadHtpasswd(path);
        EXPECT_FALSE(r.ok()) << line;
        if (!r.ok()) {
            EXPECT_NE(r.error().msg.find("line 1"), std::string::npos);
            EXPECT_EQ(r.error().msg.find("plaintext"), std::string::npos);  // never the line
        }
    }
    std::remove(path.c_str());
}

}  // namespace
}  // namespace photon::mod::auth
