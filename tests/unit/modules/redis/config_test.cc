// SPDX-License-Identifier: Apache-2.0
// The `redis` block and the store keys of rate limits: accepted shapes, every refusal with its
// key path, the store: redis / redis block cross-check, and the password kept out of dumps.
#include "modules/redis/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <string>

#include "master/config_loader.h"
#include "modules/redis/client.h"

namespace photon::mod::redis {
namespace {

using master::Diagnostic;
using master::LoadResult;
using Severity = Diagnostic::Severity;

const master::HostResolver kResolver = [](const std::string&) { return true; };

LoadResult load(const std::string& redis_block, const std::string& limit_extra = "",
                std::map<std::string, std::string> env = {}) {
    std::string text = R"(server:
  http_addr: "127.0.0.1:8080"
load_balancing:
  backends:
    default:
      upstreams:
        - address: "127.0.0.1:9000"
routes:
  - id: api
    path: /api/**
    backend: default
    middleware: [rate_limit]
middleware:
  rate_limiting:
    requests_per_second: 10
    burst: 20
    key: ip
)" + limit_extra + R"(health_check:
  enabled: false
  interval: 10s
  timeout: 2s
  failure_threshold: 3
  success_threshold: 2
metrics:
  prometheus: false
  metrics_path: /metrics
)" + redis_block;
    master::EnvLookup lookup = [env](const std::string& n) -> std::optional<std::string> {
        auto it = env.find(n);
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    return master::loadConfigString(text, "yaml", "t.yaml", lookup, kResolver);
}

std::string describe(const LoadResult& r) {
    std::string out;
    for (const auto& d : r.diagnostics) {
        out += d.format() + "\n";
    }
    return out;
}

bool has(const LoadResult& r, Severity sev, const std::string& path, const std::string& text) {
    for (const auto& d : r.diagnostics) {
        if (d.severity == sev && d.path == path && d.message.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

TEST(RedisConfigTest, AcceptsAStandaloneServerAndARedisLimit) {
    LoadResult r = load(R"(redis:
  address: "127.0.0.1:6380"
  database: 3
  connect_timeout: 2s
  command_timeout: 100ms
  key_prefix: "gw:"
  pool_size: 4
)",
                        "    store: redis\n    on_store_error: deny\n    sync: exact\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const core::RedisConfig& c = r.config->redis;
    EXPECT_TRUE(c.configured);
    ASSERT_EQ(c.addresses.size(), 1u);
    EXPECT_EQ(c.addresses[0].toString(), "127.0.0.1:6380");
    EXPECT_EQ(c.database, 3u);
    EXPECT_EQ(c.command_timeout, std::chrono::milliseconds(100));
    EXPECT_EQ(c.key_prefix, "gw:");
    EXPECT_EQ(c.pool_size, 4u);
    const auto& rl = *r.config->middleware.rate_limiting;
    EXPECT_EQ(rl.store, core::RateLimitConfig::Store::Redis);
    EXPECT_EQ(rl.on_store_error, core::RateLimitConfig::OnStoreError::Deny);
}

TEST(RedisConfigTest, DefaultsAreLocalStoreAndLocalFallback) {
    LoadResult r = load("");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_FALSE(r.config->redis.configured);
    const auto& rl = *r.config->middleware.rate_limiting;
    EXPECT_EQ(rl.store, core::RateLimitConfig::Store::Local);
    EXPECT_EQ(rl.on_store_error, core::RateLimitConfig::OnStoreError::Local);
    EXPECT_EQ(rl.instances, 1u);
}

TEST(RedisConfigTest, RedisStoreWithoutRedisBlockIsAnError) {
    LoadResult r = load("", "    store: redis\n");
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.store", "top-level redis"))
        << describe(r);
}

TEST(RedisConfigTest, RefusesBadModeAndSyncCombinations) {
    LoadResult r = load("redis:\n  address: \"127.0.0.1:6379\"\n  mode: sentinel\n  tls: true\n",
                        "    store: redis\n    sync: eventually\n    batch_interval: 20s\n");
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(has(r, Severity::Error, "redis.master_name", "mode sentinel needs master_name"))
        << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.sync", "exact or batched"))
        << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.batch_interval", "1ms to 10s"))
        << describe(r);
}

TEST(RedisConfigTest, BatchedSyncTakesAnInterval) {
    LoadResult r = load("redis:\n  address: \"127.0.0.1:6379\"\n",
                        "    store: redis\n    sync: batched\n    batch_interval: 250ms\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const auto& rl = *r.config->middleware.rate_limiting;
    EXPECT_EQ(rl.sync, core::RateLimitConfig::Sync::Batched);
    EXPECT_EQ(rl.batch_interval, std::chrono::milliseconds(250));
    EXPECT_NE(master::dumpConfigMasked(*r.config).find("batch_interval: \"250ms\""),
              std::string::npos)
        << master::dumpConfigMasked(*r.config);
    r = load("redis:\n  address: \"127.0.0.1:6379\"\n",
             "    store: redis\n    batch_interval: 250ms\n");
    EXPECT_TRUE(
        has(r, Severity::Warning, "middleware.rate_limiting.batch_interval", "only sync: batched"))
        << describe(r);
}

// Found by config_fuzz: settings warned about as having no effect stayed in the model, which
// the dump leaves them out of, so the dump did not read back to an equal config.
TEST(RedisConfigTest, SettingsWithoutEffectKeepTheirDefaults) {
    LoadResult local = load("", "    instances: 2\n    on_store_error: deny\n    sync: batched\n");
    ASSERT_TRUE(local.ok()) << describe(local);
    EXPECT_TRUE(has(local, Severity::Warning, "middleware.rate_limiting.instances",
                    "has no effect with store: local"))
        << describe(local);
    const core::RateLimitConfig def;
    const auto& rl = *local.config->middleware.rate_limiting;
    EXPECT_EQ(rl.instances, def.instances);
    EXPECT_EQ(rl.on_store_error, def.on_store_error);
    EXPECT_EQ(rl.sync, def.sync);
    LoadResult exact = load("redis:\n  address: \"127.0.0.1:6379\"\n",
                            "    store: redis\n    batch_interval: 250ms\n");
    ASSERT_TRUE(exact.ok()) << describe(exact);
    EXPECT_EQ(exact.config->middleware.rate_limiting->batch_interval, def.batch_interval);
    for (const LoadResult* r : {&local, &exact}) {
        std::string dump = master::dumpConfigUnmasked(*r->config);
        LoadResult back = master::loadConfigString(
            dump, "yaml", "dump.yaml",
            [](const std::string&) -> std::optional<std::string> { return std::nullopt; },
            kResolver);
        ASSERT_TRUE(back.ok()) << describe(back) << dump;
        EXPECT_TRUE(back.config->middleware == r->config->middleware) << dump;
    }
}

TEST(RedisConfigTest, BadValuesNameTheirKey) {
    LoadResult r = load(R"(redis:
  address: "redis.example:6379"
  database: -1
  command_timeout: 0s
  key_prefix: "a{b}"
  pool_size: 17
  mode: primary
)",
                        "    store: remote\n    on_store_error: maybe\n    instances: 0\n");
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(has(r, Severity::Error, "redis.address", "not the name")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.database", "")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.command_timeout", "above 0")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.key_prefix", "braces")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.pool_size", "")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.mode", "unknown mode")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.store", "unknown value"))
        << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.on_store_error", "unknown"))
        << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "middleware.rate_limiting.instances", "")) << describe(r);
}

TEST(RedisConfigTest, ClusterTakesSeedsAndOnlyDatabaseZero) {
    LoadResult r = load(
        "redis:\n  mode: cluster\n  addresses: [\"127.0.0.1:7000\", "
        "\"127.0.0.1:7001\"]\n",
        "    store: redis\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->redis.mode, core::RedisConfig::Mode::Cluster);
    EXPECT_EQ(r.config->redis.addresses.size(), 2u);
    r = load("redis:\n  mode: cluster\n  address: \"127.0.0.1:7000\"\n  database: 2\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.database", "database 0 only")) << describe(r);
    r = load("redis:\n  addresses: [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.addresses", "exactly one")) << describe(r);
}

TEST(RedisConfigTest, SentinelTakesSentinelAddressesAndAMasterName) {
    LoadResult r = load(
        "redis:\n  mode: sentinel\n  master_name: mymaster\n"
        "  addresses: [\"127.0.0.1:26379\", \"127.0.0.1:26380\", \"[::1]:26381\"]\n"
        "  database: 2\n",
        "    store: redis\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const core::RedisConfig& c = r.config->redis;
    EXPECT_EQ(c.mode, core::RedisConfig::Mode::Sentinel);
    EXPECT_EQ(c.master_name, "mymaster");
    ASSERT_EQ(c.addresses.size(), 3u);
    EXPECT_EQ(c.addresses[2].toString(), "[::1]:26381");
    EXPECT_EQ(c.database, 2u);
    const std::string dump = master::dumpConfigMasked(*r.config);
    EXPECT_NE(dump.find("mode: sentinel"), std::string::npos) << dump;
    EXPECT_NE(dump.find("master_name: \"mymaster\""), std::string::npos) << dump;
    EXPECT_NE(dump.find("sentinel_password: ~"), std::string::npos) << dump;
    // One Sentinel is enough (address or addresses).
    r = load("redis:\n  mode: sentinel\n  master_name: m\n  address: \"127.0.0.1:26379\"\n");
    ASSERT_TRUE(r.ok()) << describe(r);
}

TEST(RedisConfigTest, SentinelRefusesBadCombinations) {
    LoadResult r = load("redis:\n  mode: sentinel\n  address: \"127.0.0.1:26379\"\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.master_name", "needs master_name")) << describe(r);
    r = load(
        "redis:\n  mode: sentinel\n  address: \"127.0.0.1:26379\"\n  master_name: \"a b\"\n"
        "  sentinel_username: watcher\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.master_name", "without spaces")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.sentinel_username", "needs sentinel_password"))
        << describe(r);
    r = load("redis:\n  mode: sentinel\n  address: \"127.0.0.1:26379\"\n  master_name: \"\"\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.master_name", "1 to 128")) << describe(r);
    r = load("redis:\n  mode: sentinel\n  master_name: m\n  address: \"sentinel.local:26379\"\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.address", "not the name")) << describe(r);
    for (const char* key : {"master_name: m", "sentinel_password: x", "sentinel_username: u"}) {
        r = load(std::string("redis:\n  address: \"127.0.0.1:6379\"\n  ") + key + "\n");
        const std::string k(key, std::string_view(key).find(':'));
        EXPECT_TRUE(has(r, Severity::Error, "redis." + k, "mode sentinel only")) << describe(r);
    }
    r = load("redis:\n  mode: cluster\n  address: \"127.0.0.1:7000\"\n  master_name: m\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.master_name", "mode sentinel only")) << describe(r);
}

TEST(RedisConfigTest, SentinelSecretsFromEnvironmentNeverAppearInDumps) {
    const std::string secret = "s3ntinel-Pa55";
    const std::string data_secret = "d4ta-Pa55";
    LoadResult r = load(
        "redis:\n  mode: sentinel\n  master_name: m\n  address: \"127.0.0.1:26379\"\n"
        "  sentinel_username: watcher\n  sentinel_password: ${SENTINEL_PASSWORD}\n"
        "  password: ${REDIS_PASSWORD}\n",
        "    store: redis\n", {{"SENTINEL_PASSWORD", secret}, {"REDIS_PASSWORD", data_secret}});
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->redis.sentinel_password, secret);
    EXPECT_EQ(r.config->redis.sentinel_username, "watcher");
    EXPECT_EQ(r.config->redis.password, data_secret);
    for (const std::string& dump :
         {master::dumpConfigMasked(*r.config), master::dumpConfigUnmasked(*r.config)}) {
        EXPECT_EQ(dump.find(secret), std::string::npos) << dump;
        EXPECT_EQ(dump.find(data_secret), std::string::npos) << dump;
        EXPECT_NE(dump.find("sentinel_password: \"****\""), std::string::npos) << dump;
        EXPECT_NE(dump.find("sentinel_username: \"watcher\""), std::string::npos) << dump;
    }
    r = load(
        "redis:\n  mode: sentinel\n  master_name: m\n  address: \"127.0.0.1:26379\"\n"
        "  sentinel_password: \"a\\nb\"\n");
    EXPECT_TRUE(has(r, Severity::Error, "redis.sentinel_password", "line break")) << describe(r);
}

TEST(RedisKeySlotTest, MatchesRedisClusterSlots) {
    // Values from CLUSTER KEYSLOT.
    EXPECT_EQ(keySlot("foo"), 12182);
    EXPECT_EQ(keySlot("bar"), 5061);
    EXPECT_EQ(keySlot("{user1000}.following"), keySlot("user1000"));
    EXPECT_EQ(keySlot("foo{}{bar}"), keySlot("foo{}{bar}"));
    EXPECT_EQ(keySlot("photon:rl:{0123456789abcdef}"), keySlot("0123456789abcdef"));
}

TEST(RedisConfigTest, MissingAddressAndUserWithoutPassword) {
    LoadResult r = load("redis:\n  username: gw\n");
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(has(r, Severity::Error, "redis.address", "missing")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.username", "needs a password")) << describe(r);
}

TEST(RedisConfigTest, StoreKeysWarnWithLocalStore) {
    LoadResult r = load("", "    on_store_error: deny\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(has(r, Severity::Warning, "middleware.rate_limiting.on_store_error",
                    "no effect with store: local"))
        << describe(r);
}

TEST(RedisConfigTest, PasswordFromEnvironmentNeverAppearsInDumps) {
    const std::string secret = "s3cr3t-Pa55";
    LoadResult r = load(
        "redis:\n  address: \"127.0.0.1:6379\"\n  username: gw\n"
        "  password: ${REDIS_PASSWORD}\n",
        "    store: redis\n", {{"REDIS_PASSWORD", secret}});
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->redis.password, secret);
    for (const std::string& dump :
         {master::dumpConfigMasked(*r.config), master::dumpConfigUnmasked(*r.config)}) {
        EXPECT_EQ(dump.find(secret), std::string::npos) << dump;
        EXPECT_NE(dump.find("password: \"****\""), std::string::npos) << dump;
        EXPECT_NE(dump.find("store: redis"), std::string::npos) << dump;
    }
}

/// A file in the test's temporary directory holding `text`; removed at exit of the test.
struct TempFile {
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/photon-redis-tls-XXXXXX";
        int fd = ::mkstemp(tmpl);
        path = tmpl;
        if (fd >= 0) {
            (void)!::write(fd, text.data(), text.size());
            ::close(fd);
        }
    }
    ~TempFile() { ::unlink(path.c_str()); }
    std::string path;
};

TEST(RedisTlsConfigTest, BooleanAndBlockFormsWithTheUpstreamKeyNames) {
    LoadResult r =
        load("redis:\n  address: \"127.0.0.1:6379\"\n  tls: true\n", "    store: redis\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(r.config->redis.tls.enabled);
    EXPECT_TRUE(r.config->redis.tls.tls_verify);
    EXPECT_FALSE(r.config->redis.tls.sni_hostname);

    TempFile ca("not a certificate\n");
    TempFile cert("not a certificate either\n");
    TempFile key("-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n");
    r = load("redis:\n  address: \"127.0.0.1:6379\"\n  tls:\n    ca_file: " + ca.path +
                 "\n    tls_cert: " + cert.path + "\n    tls_key: " + key.path +
                 "\n    sni_hostname: redis.internal\n    tls_verify: false\n",
             "    store: redis\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const core::RedisTlsConfig& t = r.config->redis.tls;
    EXPECT_TRUE(t.enabled);  // the block alone enables it
    EXPECT_FALSE(t.tls_verify);
    EXPECT_EQ(t.ca_file, ca.path);
    EXPECT_EQ(t.tls_cert, cert.path);
    EXPECT_EQ(t.tls_key, key.path);
    EXPECT_EQ(t.sni_hostname.value_or(""), "redis.internal");
    EXPECT_TRUE(has(r, Severity::Warning, "redis.tls.tls_verify", "not verified")) << describe(r);
    // Dumps show the paths, never what the files hold.
    const std::string dump = master::dumpConfigMasked(*r.config);
    EXPECT_NE(dump.find("tls_key: \"" + key.path + "\""), std::string::npos) << dump;
    EXPECT_EQ(dump.find("SECRETKEYMATERIAL"), std::string::npos) << dump;
    // The files are read when the context is made: a bad one is an error naming it.
    auto ctx = makeTlsContext(r.config->redis);
    ASSERT_FALSE(ctx.ok());
    EXPECT_NE(ctx.error().msg.find(cert.path), std::string::npos) << ctx.error().msg;
    EXPECT_EQ(ctx.error().msg.find("SECRETKEYMATERIAL"), std::string::npos);
}

TEST(RedisTlsConfigTest, RefusesMissingFilesHalfAClientCertificateAndMisplacedKeys) {
    LoadResult r = load(
        "redis:\n  address: \"127.0.0.1:6379\"\n  tls:\n    ca_file: /nonexistent/ca.pem\n"
        "    tls_cert: /nonexistent/c.pem\n    sentinels: false\n    sni_hostname: \"a b\"\n",
        "    store: redis\n");
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(has(r, Severity::Error, "redis.tls.ca_file", "cannot read")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.tls.tls_cert", "tls_key is missing")) << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.tls.sentinels", "mode sentinel only"))
        << describe(r);
    EXPECT_TRUE(has(r, Severity::Error, "redis.tls.sni_hostname", "DNS name")) << describe(r);
    // Turned off: the other keys are ignored with a warning, and files are not checked.
    r = load(
        "redis:\n  address: \"127.0.0.1:6379\"\n  tls:\n    enabled: false\n"
        "    ca_file: /nonexistent/ca.pem\n",
        "    store: redis\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_FALSE(r.config->redis.tls.enabled);
    EXPECT_TRUE(has(r, Severity::Warning, "redis.tls.ca_file", "ignored")) << describe(r);
    auto ctx = makeTlsContext(r.config->redis);
    ASSERT_TRUE(ctx.ok());
    EXPECT_EQ(ctx.value(), nullptr);
}

}  // namespace
}  // namespace photon::mod::redis
