// SPDX-License-Identifier: Apache-2.0
// Tests for the config loader: front ends, env substitution, schema, validation, dumps, examples.
// Runs from the repository root (fixtures and conf/ are opened by relative path).
#include "master/config_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace photon::master {
namespace {

namespace fs = std::filesystem;
using core::Config;
using Severity = Diagnostic::Severity;
using std::chrono::seconds;

// Deterministic name resolution: only *.resolvable and localhost resolve; nothing touches DNS.
const HostResolver kResolver = [](const std::string& host) {
    return host == "localhost" ||
           (host.size() > 11 && host.compare(host.size() - 11, 11, ".resolvable") == 0);
};

EnvLookup envOf(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

const EnvLookup kNoEnv = envOf({});

LoadResult loadYaml(std::string_view text, const EnvLookup& env = kNoEnv) {
    return loadConfigString(text, "yaml", "test.yaml", env, kResolver);
}
LoadResult loadJson(std::string_view text, const EnvLookup& env = kNoEnv) {
    return loadConfigString(text, "json", "test.json", env, kResolver);
}
LoadResult loadToml(std::string_view text, const EnvLookup& env = kNoEnv) {
    return loadConfigString(text, "toml", "test.toml", env, kResolver);
}
LoadResult loadFile(const std::string& path, const EnvLookup& env = kNoEnv) {
    return loadConfigFile(path, env, kResolver);
}

std::string describe(const LoadResult& r) {
    std::string out;
    for (const auto& d : r.diagnostics) {
        out += (d.severity == Severity::Error ? "error: " : "warning: ") + d.format() + "\n";
    }
    return out.empty() ? "(no diagnostics)" : out;
}

size_t count(const LoadResult& r, Severity sev) {
    size_t n = 0;
    for (const auto& d : r.diagnostics) {
        n += d.severity == sev ? 1 : 0;
    }
    return n;
}

// The diagnostic with exactly this key path and severity whose message contains `text`.
const Diagnostic* find(const LoadResult& r, Severity sev, const std::string& path,
                       const std::string& text) {
    for (const auto& d : r.diagnostics) {
        if (d.severity == sev && d.path == path && d.message.find(text) != std::string::npos) {
            return &d;
        }
    }
    return nullptr;
}

// Asserts a load failed with an error at `path` (on `line` when > 0) mentioning `text`.
void expectError(const LoadResult& r, const std::string& path, const std::string& text,
                 int line = 0) {
    EXPECT_FALSE(r.ok()) << describe(r);
    EXPECT_EQ(r.config, nullptr);
    const Diagnostic* d = find(r, Severity::Error, path, text);
    ASSERT_NE(d, nullptr) << "no error at '" << path << "' containing '" << text << "' in:\n"
                          << describe(r);
    if (line > 0) {
        EXPECT_EQ(d->line, line) << d->format();
    }
}

void expectWarning(const LoadResult& r, const std::string& path, const std::string& text,
                   int line = 0) {
    const Diagnostic* d = find(r, Severity::Warning, path, text);
    ASSERT_NE(d, nullptr) << "no warning at '" << path << "' containing '" << text << "' in:\n"
                          << describe(r);
    if (line > 0) {
        EXPECT_EQ(d->line, line) << d->format();
    }
}

// A small valid YAML config; tests splice their own lines in through the placeholders.
std::string baseYaml(const std::string& server_extra = "", const std::string& backend_extra = "",
                     const std::string& route_extra = "", const std::string& tail = "") {
    return "server:\n"                            // 1
           "  http_addr: \"127.0.0.1:8080\"\n" +  // 2
           server_extra +                         //
           "load_balancing:\n"                    //
           "  backends:\n"                        //
           "    web:\n"                           //
           "      upstreams:\n"                   //
           "        - address: \"127.0.0.1:3001\"\n" +
           backend_extra +
           "routes:\n"
           "  - id: home\n"
           "    path: \"/\"\n"
           "    backend: web\n" +
           route_extra +
           "health_check: {}\n"
           "metrics:\n"
           "  prometheus: false\n" +
           tail;
}

// ---------------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, DiagnosticFormatOmitsUnknownParts) {
    Diagnostic d;
    d.file = "photon.yaml";
    d.line = 12;
    d.column = 5;
    d.path = "routes[2].backend";
    d.message = "unknown backend 'x'";
    EXPECT_EQ(d.format(), "photon.yaml:12:5: routes[2].backend: unknown backend 'x'");
    d.column = 0;
    EXPECT_EQ(d.format(), "photon.yaml:12: routes[2].backend: unknown backend 'x'");
    d.line = 0;
    EXPECT_EQ(d.format(), "photon.yaml: routes[2].backend: unknown backend 'x'");
    d.path.clear();
    EXPECT_EQ(d.format(), "photon.yaml: unknown backend 'x'");
}

TEST(ConfigLoaderTest, EditDistanceCountsEdits) {
    EXPECT_EQ(editDistance("backend", "backend"), 0u);
    EXPECT_EQ(editDistance("backnd", "backend"), 1u);
    EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
    EXPECT_EQ(editDistance("", "abc"), 3u);
}

// ---------------------------------------------------------------------------------------------
// Files and front ends
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, RejectsUnknownSuffixListingTheSupportedOnes) {
    for (const char* path : {"conf/photon.conf", "conf/photon.YAML", "photon"}) {
        LoadResult r = loadFile(path);
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.diagnostics.size(), 1u);
        const std::string& m = r.diagnostics[0].message;
        EXPECT_NE(m.find(".yaml"), std::string::npos) << m;
        EXPECT_NE(m.find(".yml"), std::string::npos) << m;
        EXPECT_NE(m.find(".json"), std::string::npos) << m;
        EXPECT_NE(m.find(".toml"), std::string::npos) << m;
        EXPECT_EQ(r.diagnostics[0].file, path);
    }
}

TEST(ConfigLoaderTest, ReportsUnreadableFile) {
    LoadResult r = loadFile("tests/fixtures/config/does-not-exist.yaml");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_NE(r.diagnostics[0].message.find("failed to read config file"), std::string::npos);
    EXPECT_NE(r.diagnostics[0].message.find("No such file"), std::string::npos);
}

TEST(ConfigLoaderTest, LoadsYmlSuffixAsYaml) {
    char tmpl[] = "/tmp/photon-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir(tmpl);
    fs::copy_file("conf/photon.yaml", dir / "photon.yml");
    LoadResult r = loadFile((dir / "photon.yml").string());
    fs::remove_all(dir);
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.http_addr.toString(), "127.0.0.1:8080");
}

TEST(ConfigLoaderTest, YamlSyntaxErrorCarriesLineAndColumn) {
    LoadResult r = loadYaml("server:\n  http_addr: x\n    port: 80\n");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u) << describe(r);
    EXPECT_NE(r.diagnostics[0].message.find("YAML syntax error"), std::string::npos);
    EXPECT_EQ(r.diagnostics[0].line, 3);
    EXPECT_EQ(r.diagnostics[0].column, 9);  // yaml-cpp points at the offending ":"
    EXPECT_EQ(r.diagnostics[0].file, "test.yaml");
}

TEST(ConfigLoaderTest, JsonSyntaxErrorCarriesLineAndColumn) {
    LoadResult r = loadJson("{\n  \"server\": {\n    \"http_addr\": 12,,\n  }\n}\n");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_NE(r.diagnostics[0].message.find("JSON syntax error"), std::string::npos);
    EXPECT_EQ(r.diagnostics[0].line, 3);
    EXPECT_GE(r.diagnostics[0].column, 21);  // cJSON points at or just after the second comma
    EXPECT_LE(r.diagnostics[0].column, 22);
}

TEST(ConfigLoaderTest, JsonTrailingGarbageIsAnError) {
    LoadResult r = loadJson("{}\n}");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.diagnostics[0].line, 2);
}

TEST(ConfigLoaderTest, TomlSyntaxErrorCarriesLineAndColumn) {
    LoadResult r = loadToml("[server]\nhttp_addr = \n");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_NE(r.diagnostics[0].message.find("TOML syntax error"), std::string::npos);
    EXPECT_EQ(r.diagnostics[0].line, 2);
    EXPECT_GT(r.diagnostics[0].column, 0);
}

TEST(ConfigLoaderTest, DuplicateKeysAreErrorsWithLines) {
    LoadResult y =
        loadYaml("server:\n  http_addr: \"127.0.0.1:1\"\n  http_addr: \"127.0.0.1:2\"\n");
    ASSERT_FALSE(y.ok());
    EXPECT_NE(y.diagnostics[0].message.find("duplicate key 'http_addr' (first defined at line 2)"),
              std::string::npos)
        << describe(y);
    EXPECT_EQ(y.diagnostics[0].line, 3);

    LoadResult j = loadJson("{\"a\": 1,\n \"a\": 2}");
    ASSERT_FALSE(j.ok());
    EXPECT_NE(j.diagnostics[0].message.find("duplicate key 'a'"), std::string::npos);
    EXPECT_EQ(j.diagnostics[0].line, 2);
}

TEST(ConfigLoaderTest, YamlAnchorsAndMergeKeysWork) {
    LoadResult r = loadYaml(
        "x-upstream: &up\n"
        "  read_timeout: 7s\n"
        "  weight: 5\n"
        "server:\n"
        "  http_addr: \"127.0.0.1:8080\"\n"
        "load_balancing:\n"
        "  backends:\n"
        "    web:\n"
        "      upstreams:\n"
        "        - <<: *up\n"
        "          address: \"127.0.0.1:1\"\n"
        "          weight: 2\n"
        "routes: []\n"
        "health_check: {}\n"
        "metrics: {prometheus: false}\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const auto& u = r.config->load_balancing.backends[0].upstreams[0];
    EXPECT_EQ(u.read_timeout, seconds(7));
    EXPECT_EQ(u.weight, 2u);  // keys written in the map win over merged ones
    // Top-level x- keys hold anchors and are not reported as unknown.
    EXPECT_EQ(find(r, Severity::Warning, "x-upstream", ""), nullptr) << describe(r);
    LoadResult bad = loadYaml("a:\n  <<: 5\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(describe(bad).find("merge key needs a map"), std::string::npos) << describe(bad);
}

// Nine levels of ten aliases each ("billion laughs") stand for 10^9 nodes in a few hundred
// bytes; building them all hung the master and exhausted its memory (config_fuzz's corpus has
// the same input).
TEST(ConfigLoaderTest, YamlAliasExpansionIsBounded) {
    std::string doc = "x-a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
    for (int i = 1; i < 9; ++i) {
        std::string prev = "*a" + std::to_string(i - 1);
        doc += "x-a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int k = 0; k < 10; ++k) {
            doc += (k > 0 ? ", " : "") + prev;
        }
        doc += "]\n";
    }
    LoadResult r = loadYaml(doc);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(describe(r).find("nodes through its aliases"), std::string::npos) << describe(r);
}

TEST(ConfigLoaderTest, EmptyDocumentIsAnError) {
    LoadResult r = loadYaml("# nothing here\n");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(describe(r).find("the configuration is empty"), std::string::npos) << describe(r);
    LoadResult list = loadYaml("- a\n- b\n");
    ASSERT_FALSE(list.ok());
    EXPECT_NE(describe(list).find("must be a map of sections"), std::string::npos);
}

TEST(ConfigLoaderTest, JsonValuesCarryLocations) {
    LoadResult r = loadJson(
        "{\n"
        "  \"server\": {\"http_addr\": \"127.0.0.1:8080\"},\n"
        "  \"load_balancing\": {\"backends\": {\"web\": {\"upstreams\": [\n"
        "      {\"address\": \"127.0.0.1:1\", \"weight\": -1}]}}},\n"
        "  \"routes\": [],\n"
        "  \"health_check\": {},\n"
        "  \"metrics\": {\"prometheus\": false}\n"
        "}\n");
    expectError(r, "load_balancing.backends.web.upstreams[0].weight", "out of range", 4);
    EXPECT_EQ(
        find(r, Severity::Error, "load_balancing.backends.web.upstreams[0].weight", "")->column,
        44);
}

// ---------------------------------------------------------------------------------------------
// Environment substitution
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, SubstitutesEnvironmentVariables) {
    LoadResult r = loadYaml(baseYaml("  upgrade_sock: \"${RUN_DIR}/upgrade-${NAME}.sock\"\n"),
                            envOf({{"RUN_DIR", "/run/photon"}, {"NAME", "a"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.upgrade_sock, "/run/photon/upgrade-a.sock");
}

TEST(ConfigLoaderTest, DefaultIsUsedWhenVariableIsUnsetOrEmpty) {
    std::string yaml = baseYaml("  pid_file: \"${PID:-/tmp/default.pid}\"\n");
    LoadResult unset = loadYaml(yaml);
    ASSERT_TRUE(unset.ok()) << describe(unset);
    EXPECT_EQ(unset.config->server.pid_file, "/tmp/default.pid");
    LoadResult empty = loadYaml(yaml, envOf({{"PID", ""}}));
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(empty.config->server.pid_file, "/tmp/default.pid");
    LoadResult set = loadYaml(yaml, envOf({{"PID", "/run/p.pid"}}));
    ASSERT_TRUE(set.ok());
    EXPECT_EQ(set.config->server.pid_file, "/run/p.pid");
    LoadResult empty_default = loadYaml(baseYaml("  pid_file: \"x${PID:-}y\"\n"));
    ASSERT_TRUE(empty_default.ok());
    EXPECT_EQ(empty_default.config->server.pid_file, "xy");
}

TEST(ConfigLoaderTest, SetButEmptyVariableWithoutDefaultIsUsed) {
    LoadResult r = loadYaml(baseYaml("  pid_file: \"a${EMPTY}b\"\n"), envOf({{"EMPTY", ""}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.pid_file, "ab");
}

TEST(ConfigLoaderTest, DoubleDollarWritesALiteralDollarBrace) {
    LoadResult r = loadYaml(baseYaml("  pid_file: \"$${HOME}/x and $$ and $5\"\n"),
                            envOf({{"HOME", "/root"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.pid_file, "${HOME}/x and $$ and $5");
}

TEST(ConfigLoaderTest, UnsetVariableWithoutDefaultNamesVariableAndKey) {
    LoadResult r = loadYaml(baseYaml("  pid_file: \"${PHOTON_PID_DIR}/photon.pid\"\n"));
    expectError(r, "server.pid_file", "'PHOTON_PID_DIR' is not set", 3);
}

TEST(ConfigLoaderTest, UnsetVariableInsideAListNamesTheItemPath) {
    LoadResult r = loadYaml(baseYaml("  trusted_proxies: [\"10.0.0.0/8\", \"${PROXY}\"]\n"));
    expectError(r, "server.trusted_proxies[1]", "'PROXY' is not set", 3);
}

TEST(ConfigLoaderTest, MalformedReferencesAreErrors) {
    expectError(loadYaml(baseYaml("  pid_file: \"${UNCLOSED\"\n")), "server.pid_file",
                "unterminated");
    expectError(loadYaml(baseYaml("  pid_file: \"${1BAD}\"\n")), "server.pid_file",
                "invalid environment variable reference");
    expectError(loadYaml(baseYaml("  pid_file: \"${}\"\n")), "server.pid_file",
                "invalid environment variable reference");
}

TEST(ConfigLoaderTest, SubstitutedScalarsConvertToTheExpectedType) {
    LoadResult r =
        loadYaml(baseYaml("  max_connections: ${MAXC}\n  reuse_port: \"${REUSE}\"\n"
                          "  connection_timeout: ${TIMEOUT}\n  worker_processes: ${WORKERS}\n"),
                 envOf({{"MAXC", "1234"}, {"REUSE", "true"}, {"TIMEOUT", "45"}, {"WORKERS", "3"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.max_connections, 1234u);
    EXPECT_TRUE(r.config->server.reuse_port);
    EXPECT_EQ(r.config->server.connection_timeout, seconds(45));
    EXPECT_EQ(r.config->server.worker_processes, 3u);
    EXPECT_FALSE(r.config->server.worker_processes_auto);
}

TEST(ConfigLoaderTest, SubstitutedPortWorksInAddressAndJson) {
    LoadResult r = loadJson(
        R"({"server": {"http_addr": "127.0.0.1:${PORT}", "max_connections": "${MAXC:-77}"},
            "load_balancing": {"backends": {"b": {"upstreams": [{"address": "127.0.0.1:1"}]}}},
            "routes": [], "health_check": {}, "metrics": {"prometheus": false}})",
        envOf({{"PORT", "8088"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.http_addr.port, 8088);
    EXPECT_EQ(r.config->server.max_connections, 77u);
}

TEST(ConfigLoaderTest, SubstitutedNonNumberIsStillATypeError) {
    LoadResult r = loadYaml(baseYaml("  max_connections: ${MAXC}\n"), envOf({{"MAXC", "many"}}));
    expectError(r, "server.max_connections", "expected a non-negative integer", 3);
}

TEST(ConfigLoaderTest, QuotedNumberWithoutSubstitutionIsATypeError) {
    LoadResult r = loadYaml(baseYaml("  max_connections: \"100\"\n"));
    expectError(r, "server.max_connections", "quoted numbers are not converted", 3);
}

// ---------------------------------------------------------------------------------------------
// Schema and defaults
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, AppliesDocumentedDefaults) {
    LoadResult r = loadYaml(baseYaml());
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(r.diagnostics.empty()) << describe(r);
    const Config& c = *r.config;
    EXPECT_EQ(c.server.connection_timeout, seconds(60));
    EXPECT_EQ(c.server.max_connections, 10000u);
    EXPECT_EQ(c.server.upgrade_sock, "/tmp/photon_upgrade.sock");
    EXPECT_TRUE(c.server.worker_processes_auto);
    EXPECT_EQ(c.server.worker_processes,
              static_cast<uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))));
    EXPECT_EQ(c.server.pid_file, "");
    EXPECT_EQ(c.server.error_log, "");
    EXPECT_FALSE(c.server.log_level.has_value());
    EXPECT_EQ(c.server.access_log, "");
    EXPECT_EQ(c.server.shutdown_timeout, seconds(10));
    EXPECT_EQ(c.server.max_body_size, 10u * 1024 * 1024);
    EXPECT_EQ(c.server.max_request_line, 8192u);
    EXPECT_EQ(c.server.max_header_size, 16384u);
    EXPECT_EQ(c.server.max_headers, 100u);
    EXPECT_EQ(c.server.header_read_timeout, seconds(10));
    EXPECT_EQ(c.server.keepalive_requests, 10000u);
    EXPECT_EQ(c.server.request_id, core::RequestIdMode::Keep);
    EXPECT_TRUE(c.server.trusted_proxies.empty());
    EXPECT_FALSE(c.server.reuse_port);

    EXPECT_EQ(c.load_balancing.algorithm, core::LbAlgorithm::RoundRobin);
    ASSERT_EQ(c.load_balancing.backends.size(), 1u);
    const auto& b = c.load_balancing.backends[0];
    EXPECT_EQ(b.name, "web");
    EXPECT_EQ(b.algorithm, core::LbAlgorithm::RoundRobin);
    EXPECT_FALSE(b.two_choices);
    EXPECT_EQ(b.hash_key.kind, core::HashKey::Kind::Ip);
    EXPECT_FALSE(b.fail_open);
    EXPECT_EQ(b.max_fails, 3u);
    EXPECT_EQ(b.fail_timeout, seconds(10));
    const auto& u = b.upstreams.at(0);
    EXPECT_EQ(u.weight, 1u);
    EXPECT_FALSE(u.tls);
    EXPECT_FALSE(u.sni_hostname.has_value());
    EXPECT_FALSE(u.max_connections.has_value());
    EXPECT_FALSE(u.tcp_keepalive.enabled);
    EXPECT_EQ(u.tcp_keepalive.idle, seconds(60));
    EXPECT_EQ(u.tcp_keepalive.interval, seconds(10));
    EXPECT_EQ(u.tcp_keepalive.count, 9u);
    EXPECT_EQ(u.connection_timeout, seconds(5));
    EXPECT_EQ(u.read_timeout, seconds(30));
    EXPECT_EQ(u.write_timeout, seconds(30));
    const auto& hc = b.health_check;
    EXPECT_FALSE(hc.configured);
    EXPECT_TRUE(hc.enabled);
    EXPECT_EQ(hc.check_type, core::HealthCheckType::Http);
    EXPECT_EQ(hc.path, "/health");
    EXPECT_EQ(hc.expected_status, 200);
    EXPECT_EQ(hc.method, "GET");
    EXPECT_EQ(hc.interval, seconds(10));
    EXPECT_EQ(hc.timeout, seconds(5));
    EXPECT_EQ(hc.failure_threshold, 3u);
    EXPECT_EQ(hc.success_threshold, 2u);

    const auto& rt = c.routes.at(0);
    EXPECT_TRUE(rt.methods.empty());
    EXPECT_FALSE(rt.host.has_value());
    EXPECT_EQ(rt.backend_index, 0u);
    EXPECT_EQ(rt.retries, 0u);
    EXPECT_FALSE(rt.timeout.has_value());

    EXPECT_TRUE(c.health_check.enabled);
    EXPECT_EQ(c.metrics.metrics_path, "/metrics");
    EXPECT_FALSE(c.metrics.metrics_addr.has_value());
    EXPECT_FALSE(c.metrics.detailed_metrics);
    EXPECT_FALSE(c.metrics.expose_on_main);
    EXPECT_FALSE(c.cache.configured);
    EXPECT_EQ(c.cache.max_entries, 10000u);
    EXPECT_EQ(c.cache.default_ttl, seconds(300));
    EXPECT_EQ(c.cache.max_body_size, 1024u * 1024);
    EXPECT_FALSE(c.cache.cache_with_query_params);
    EXPECT_FALSE(c.middleware.authentication.has_value());
}

TEST(ConfigLoaderTest, MiddlewareDefaults) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  rate_limiting:\n"
                                     "    requests_per_second: 7\n"
                                     "    key: ip\n"
                                     "  authentication:\n"
                                     "    auth_type: api_key\n"
                                     "    api_key:\n"
                                     "      keys: [k1]\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->middleware.rate_limiting->burst, 14u);
    EXPECT_EQ(r.config->middleware.authentication->api_key->header, "X-API-Key");
    EXPECT_FALSE(r.config->middleware.authentication->api_key->query.has_value());
    LoadResult j = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  authentication:\n"
                                     "    auth_type: jwt\n"
                                     "    jwt:\n"
                                     "      secret: \"0123456789abcdef0123456789abcdef\"\n"
                                     "      algorithm: HS256\n"));
    ASSERT_TRUE(j.ok()) << describe(j);
    EXPECT_EQ(j.config->middleware.authentication->jwt->header, "Authorization");
    EXPECT_EQ(j.config->middleware.authentication->jwt->leeway, seconds(0));
}

TEST(ConfigLoaderTest, BurstDefaultSaturatesAtU32Max) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  rate_limiting:\n"
                                     "    requests_per_second: 4294967295\n"
                                     "    key: ip\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->middleware.rate_limiting->burst, UINT32_MAX);
}

LoadResult rateLimit(const std::string& body) {
    return loadYaml(baseYaml("", "", "", "middleware:\n  rate_limiting:\n" + body));
}

TEST(ConfigLoaderTest, RateLimitRatesAndTheirDefaultBursts) {
    LoadResult half = rateLimit("    requests_per_second: 0.5\n    key: ip\n");
    ASSERT_TRUE(half.ok()) << describe(half);
    const auto& h = *half.config->middleware.rate_limiting;
    EXPECT_DOUBLE_EQ(h.requests, 0.5);
    EXPECT_EQ(h.burst, 1u);  // 2 × 0.5, rounded up
    EXPECT_EQ(h.scope, core::RateLimitConfig::Scope::Shared);
    EXPECT_EQ(h.missing_key, core::RateLimitConfig::MissingKey::Share);
    EXPECT_EQ(h.on_full, core::RateLimitConfig::OnFull::Allow);
    EXPECT_EQ(h.max_keys, 100000u);
    EXPECT_FALSE(h.headers);
    EXPECT_FALSE(h.legacy_headers);

    LoadResult m = rateLimit(
        "    requests_per_minute: 30\n    key: \"header:X-Key\"\n    scope: route\n"
        "    missing_key: reject\n    on_full: deny\n    max_keys: 10\n    headers: true\n"
        "    legacy_headers: true\n");
    ASSERT_TRUE(m.ok()) << describe(m);
    const auto& c = *m.config->middleware.rate_limiting;
    EXPECT_EQ(c.per, core::RateLimitConfig::Per::Minute);
    EXPECT_DOUBLE_EQ(c.ratePerSecond(), 0.5);
    EXPECT_EQ(c.burst, 30u);  // a minute's worth
    EXPECT_EQ(c.scope, core::RateLimitConfig::Scope::Route);
    EXPECT_EQ(c.missing_key, core::RateLimitConfig::MissingKey::Reject);
    EXPECT_EQ(c.on_full, core::RateLimitConfig::OnFull::Deny);
    EXPECT_EQ(c.max_keys, 10u);
    EXPECT_TRUE(c.headers);
    EXPECT_TRUE(c.legacy_headers);

    LoadResult hour = rateLimit("    requests_per_hour: 7200\n    burst: 5\n    key: ip\n");
    ASSERT_TRUE(hour.ok()) << describe(hour);
    EXPECT_DOUBLE_EQ(hour.config->middleware.rate_limiting->ratePerSecond(), 2.0);
    EXPECT_EQ(hour.config->middleware.rate_limiting->burst, 5u);

    // JSON numbers and TOML floats are rates too.
    LoadResult j = loadJson(
        R"({"server": {"http_addr": "127.0.0.1:8080"}, "load_balancing": {"backends": {"default":)"
        R"( {"upstreams": [{"address": "127.0.0.1:9000"}]}}}, "routes": [{"id": "r", "path": "/",)"
        R"( "backend": "default", "middleware": ["rate_limit"]}], "health_check": {},)"
        R"( "metrics": {"prometheus": false}, "middleware": {"rate_limiting": {"requests_per_second": 2.5,)"
        R"( "key": "ip"}}})");
    ASSERT_TRUE(j.ok()) << describe(j);
    EXPECT_DOUBLE_EQ(j.config->middleware.rate_limiting->requests, 2.5);
    EXPECT_EQ(j.config->middleware.rate_limiting->burst, 5u);
}

TEST(ConfigLoaderTest, SeveralRateLimitsOnOneRouteAllApply) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [rate_limit, \"rate_limit:wide\"]\n",
                                     "middleware:\n  rate_limiting:\n"
                                     "    requests_per_second: 1\n    key: ip\n"
                                     "  \"rate_limit:wide\":\n"
                                     "    requests_per_second: 100\n    key: ip\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->routes[0].middleware,
              (std::vector<std::string>{"rate_limit", "rate_limit:wide"}));
    EXPECT_EQ(count(r, Severity::Warning), 0u) << describe(r);
}

TEST(ConfigLoaderTest, RateLimitRejectsWhatItCannotEnforce) {
    expectError(rateLimit("    requests_per_second: 1\n    requests_per_minute: 60\n"
                          "    key: ip\n"),
                "middleware.rate_limiting.requests_per_minute", "give one rate only");
    expectError(rateLimit("    key: ip\n"), "middleware.rate_limiting.requests_per_second",
                "missing required key");
    for (const char* bad : {"-1", "abc", ".5", "1e999", "0x10", "\"5\""}) {
        expectError(rateLimit(std::string("    requests_per_second: ") + bad + "\n    key: ip\n"),
                    "middleware.rate_limiting.requests_per_second", "", 0);
    }
    expectError(rateLimit("    requests_per_second: 0.0000001\n    key: ip\n"),
                "middleware.rate_limiting.requests_per_second", "too small");
    expectError(rateLimit("    requests_per_second: 1\n    key: ip\n    on_full: maybe\n"),
                "middleware.rate_limiting.on_full", "expected allow or deny");
    expectError(rateLimit("    requests_per_second: 1\n    key: ip\n    scope: global\n"),
                "middleware.rate_limiting.scope", "expected shared or route");
    expectError(rateLimit("    requests_per_second: 1\n    key: ip\n    missing_key: 400\n"),
                "middleware.rate_limiting.missing_key", "expected share or reject");
    expectError(rateLimit("    requests_per_second: 1\n    key: ip\n    max_keys: 0\n"),
                "middleware.rate_limiting.max_keys", "out of range");
    expectError(rateLimit("    requests_per_second: 1\n    key: ip\n    max_keys: 16777217\n"),
                "middleware.rate_limiting.max_keys", "out of range");
    LoadResult zero = rateLimit("    requests_per_second: 5\n    burst: 0\n    key: ip\n");
    ASSERT_TRUE(zero.ok()) << describe(zero);
    expectWarning(zero, "middleware.rate_limiting.burst", "rejects every request");
}

TEST(ConfigLoaderTest, LoadsReadmeQuickStartWithDefaultsForMissingKeys) {
    LoadResult r = loadFile("tests/fixtures/config/readme-quickstart.yaml");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(r.diagnostics.empty()) << describe(r);
    const Config& c = *r.config;
    EXPECT_EQ(c.server.http_addr.toString(), "0.0.0.0:8080");
    EXPECT_EQ(c.server.connection_timeout, seconds(60));
    EXPECT_EQ(c.load_balancing.algorithm, core::LbAlgorithm::RoundRobin);
    EXPECT_EQ(c.health_check.failure_threshold, 3u);
    EXPECT_EQ(c.health_check.success_threshold, 2u);
    ASSERT_EQ(c.routes.size(), 1u);
    EXPECT_EQ(c.routes[0].retries, 3u);
    EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"GET", "POST"}));
    EXPECT_EQ(c.routes[0].timeout, seconds(30));
    EXPECT_TRUE(c.cache.configured);
    EXPECT_EQ(c.metrics.metrics_addr->toString(), "127.0.0.1:9090");
}

TEST(ConfigLoaderTest, LoadsReconstructedOriginalExampleWithoutDiagnostics) {
    LoadResult r = loadFile("tests/fixtures/config/config.example.yaml");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(r.diagnostics.empty()) << describe(r);
    const Config& c = *r.config;
    ASSERT_EQ(c.routes.size(), 7u);
    EXPECT_EQ(c.routes[0].id, "web_home");
    EXPECT_EQ(c.routes[2].id, "api");
    EXPECT_EQ(c.routes[2].host, "api.example.com");
    EXPECT_EQ(c.routes[2].middleware, (std::vector<std::string>{"auth", "rate_limit"}));
    EXPECT_EQ(c.routes[2].backend_index, 1u);
    ASSERT_TRUE(c.routes[1].cache.has_value());
    EXPECT_EQ(c.routes[1].cache->ttl, seconds(3600));
    ASSERT_TRUE(c.routes[4].websocket.has_value());
    EXPECT_EQ(c.routes[4].websocket->protocols,
              (std::vector<std::string>{"chat-protocol", "echo-protocol"}));
    EXPECT_EQ(c.routes[4].websocket->max_message_size, 65536u);
    EXPECT_FALSE(c.routes[5].websocket->protocols.has_value());
    EXPECT_EQ(c.routes[6].id, "web_catchall");
    EXPECT_FALSE(c.routes[6].timeout.has_value());  // `timeout: null`
    const auto* chat = c.load_balancing.findBackend("chat_service");
    ASSERT_NE(chat, nullptr);
    EXPECT_EQ(chat->algorithm, core::LbAlgorithm::IpHash);
    EXPECT_EQ(chat->health_check.check_type, core::HealthCheckType::Tcp);
    EXPECT_EQ(chat->health_check.interval, seconds(10));  // `interval: null` → global
    EXPECT_EQ(c.load_balancing.findBackend("api_service")->health_check.interval, seconds(15));
    EXPECT_EQ(c.middleware.cors->max_age, seconds(3600));
    EXPECT_EQ(c.middleware.transform->response_headers.set.size(), 2u);
}

TEST(ConfigLoaderTest, GlobalAlgorithmIsTheBackendDefault) {
    std::string yaml = baseYaml("",
                                "    other:\n"
                                "      algorithm: random\n"
                                "      upstreams: [{address: \"127.0.0.1:2\"}]\n");
    yaml.replace(yaml.find("  backends:"), 0, "  algorithm: ip_hash\n");
    LoadResult r = loadYaml(yaml);
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->load_balancing.findBackend("web")->algorithm, core::LbAlgorithm::IpHash);
    EXPECT_EQ(r.config->load_balancing.findBackend("other")->algorithm, core::LbAlgorithm::Random);
}

TEST(ConfigLoaderTest, NullForOptionalKeysMeansAbsent) {
    LoadResult r = loadYaml(
        baseYaml("  https_addr: ~\n  log_level:\n", "", "    timeout: null\n    host: ~\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_FALSE(r.config->server.https_addr.has_value());
    EXPECT_FALSE(r.config->routes[0].timeout.has_value());
    EXPECT_FALSE(r.config->routes[0].host.has_value());
}

TEST(ConfigLoaderTest, WorkerProcessesAcceptsAutoOrACount) {
    LoadResult a = loadYaml(baseYaml("  worker_processes: auto\n"));
    ASSERT_TRUE(a.ok()) << describe(a);
    EXPECT_TRUE(a.config->server.worker_processes_auto);
    EXPECT_GE(a.config->server.worker_processes, 1u);
    LoadResult n = loadYaml(baseYaml("  worker_processes: 6\n"));
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n.config->server.worker_processes, 6u);
    EXPECT_FALSE(n.config->server.worker_processes_auto);
    expectError(loadYaml(baseYaml("  worker_processes: 0\n")), "server.worker_processes",
                "out of range", 3);
    expectError(loadYaml(baseYaml("  worker_processes: \"4\"\n")), "server.worker_processes",
                "expected \"auto\"", 3);
    expectError(loadYaml(baseYaml("  worker_processes: many\n")), "server.worker_processes",
                "expected \"auto\"", 3);
}

TEST(ConfigLoaderTest, ParsesServerEnumsAndLogSettings) {
    LoadResult r =
        loadYaml(baseYaml("  log_level: trace\n  request_id: always_generate\n"
                          "  access_log: \"off\"\n  error_log: stderr\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.log_level, core::LogLevel::Trace);
    EXPECT_EQ(r.config->server.request_id, core::RequestIdMode::AlwaysGenerate);
    EXPECT_EQ(r.config->server.access_log, "");
    EXPECT_EQ(r.config->server.error_log, "");
    expectError(loadYaml(baseYaml("  log_level: verbose\n")), "server.log_level",
                "unknown log level 'verbose'", 3);
    expectError(loadYaml(baseYaml("  access_log_format: common\n")), "server.access_log_format",
                "unknown access log format 'common'", 3);
    auto combined = loadYaml(baseYaml("  access_log_format: combined\n  trace_context: \"off\"\n"
                                      "  trace_sampled: true\n"));
    ASSERT_TRUE(combined.ok()) << describe(combined);
    EXPECT_EQ(combined.config->server.access_log_format, core::AccessLogFormat::Combined);
    EXPECT_FALSE(combined.config->server.trace_context);
    EXPECT_TRUE(combined.config->server.trace_sampled);
    expectError(loadYaml(baseYaml("  trace_context: sometimes\n")), "server.trace_context",
                "unknown trace_context 'sometimes'", 3);
    expectError(loadYaml(baseYaml("  request_id: regenerate\n")), "server.request_id",
                "unknown request_id mode", 3);
}

TEST(ConfigLoaderTest, DurationsAcceptHumantimeAndBareSeconds) {
    LoadResult r =
        loadYaml(baseYaml("  connection_timeout: \"1h 30m\"\n"
                          "  shutdown_timeout: 15\n"
                          "  header_read_timeout: \"15 seconds\"\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.connection_timeout, std::chrono::minutes(90));
    EXPECT_EQ(r.config->server.shutdown_timeout, seconds(15));
    EXPECT_EQ(r.config->server.header_read_timeout, seconds(15));
}

TEST(ConfigLoaderTest, BadDurationsAreErrors) {
    expectError(loadYaml(baseYaml("  connection_timeout: \"30 parsecs\"\n")),
                "server.connection_timeout", "unknown time unit 'parsecs'", 3);
    expectError(loadYaml(baseYaml("  connection_timeout: \"30\"\n")), "server.connection_timeout",
                "time unit needed", 3);
    expectError(loadYaml(baseYaml("  connection_timeout: 1.5\n")), "server.connection_timeout",
                "expected a duration", 3);
    expectError(loadYaml(baseYaml("  connection_timeout: -5\n")), "server.connection_timeout",
                "must not be negative", 3);
    expectError(loadYaml(baseYaml("  connection_timeout: \"0s\"\n")), "server.connection_timeout",
                "greater than zero", 3);
    expectError(loadYaml(baseYaml("", "", "    timeout: [1]\n")), "routes[0].timeout",
                "expected a duration", 12);
}

TEST(ConfigLoaderTest, ParsesAllRateLimitKeySpellings) {
    using K = core::RateLimitKey::Kind;
    struct Case {
        const char* yaml;
        K kind;
        const char* name;
    };
    const Case cases[] = {
        {"ip", K::Ip, ""},
        {"\"ip\"", K::Ip, ""},
        {"route", K::Route, ""},
        {"!header X-API-Key", K::Header, "X-API-Key"},
        {"!query_param api_key", K::QueryParam, "api_key"},
        {"{header: X-API-Key}", K::Header, "X-API-Key"},
        {"{query_param: api_key}", K::QueryParam, "api_key"},
        {"\"header:X-API-Key\"", K::Header, "X-API-Key"},
        {"\"query_param:api_key\"", K::QueryParam, "api_key"},
    };
    for (const auto& c : cases) {
        LoadResult r = loadYaml(baseYaml("", "", "",
                                         std::string("middleware:\n  rate_limiting:\n"
                                                     "    requests_per_second: 5\n    key: ") +
                                             c.yaml + "\n"));
        ASSERT_TRUE(r.ok()) << c.yaml << "\n" << describe(r);
        EXPECT_EQ(r.config->middleware.rate_limiting->key.kind, c.kind) << c.yaml;
        EXPECT_EQ(r.config->middleware.rate_limiting->key.name, c.name) << c.yaml;
    }
    LoadResult toml = loadToml(
        "routes = []\n[server]\nhttp_addr = \"127.0.0.1:1\"\n"
        "[load_balancing.backends.b]\nupstreams = [{address = \"127.0.0.1:2\"}]\n"
        "[health_check]\n[metrics]\nprometheus = false\n"
        "[middleware.rate_limiting]\nrequests_per_second = 1\nkey = { query_param = \"k\" }\n");
    ASSERT_TRUE(toml.ok()) << describe(toml);
    EXPECT_EQ(toml.config->middleware.rate_limiting->key.kind, K::QueryParam);
    EXPECT_EQ(toml.config->middleware.rate_limiting->key.name, "k");
}

TEST(ConfigLoaderTest, RejectsInvalidRateLimitKeys) {
    for (const char* key : {"cookie:session", "\"header:\"", "!cookie x", "{header: a, ip: b}",
                            "[ip]", "\"header:bad name\""}) {
        LoadResult r = loadYaml(baseYaml("", "", "",
                                         std::string("middleware:\n  rate_limiting:\n"
                                                     "    requests_per_second: 5\n    key: ") +
                                             key + "\n"));
        expectError(r, "middleware.rate_limiting.key", "", 18);
    }
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n  rate_limiting:\n"
                                     "    requests_per_second: 5\n    key: client\n"));
    expectError(r, "middleware.rate_limiting.key", "unknown rate-limit key 'client'", 18);
}

TEST(ConfigLoaderTest, TomlRequiresRealValuesAndOmitsNullableKeys) {
    // TOML has no null: the original's "required but nullable" keys are simply left out.
    LoadResult ok = loadToml(
        "[server]\nhttp_addr = \"127.0.0.1:8080\"\n"
        "[load_balancing.backends.web]\nupstreams = [{ address = \"127.0.0.1:1\", weight = 2 }]\n"
        "health_check = { check_type = \"tcp\" }\n"
        "[[routes]]\nid = \"r\"\npath = \"/**\"\nbackend = \"web\"\n"
        "websocket = { enabled = true }\ncache = { enabled = true }\n"
        "[health_check]\n[metrics]\nprometheus = true\ndetailed_metrics = false\n");
    ASSERT_TRUE(ok.ok()) << describe(ok);
    EXPECT_EQ(ok.config->load_balancing.backends[0].upstreams[0].weight, 2u);
    EXPECT_FALSE(ok.config->routes[0].timeout.has_value());
    EXPECT_FALSE(ok.config->routes[0].websocket->timeout.has_value());
    EXPECT_FALSE(ok.config->routes[0].cache->ttl.has_value());

    // A quoted number is a string in TOML too, and a TOML date is not a duration.
    LoadResult quoted = loadToml(
        "routes = []\n[server]\nhttp_addr = \"127.0.0.1:8080\"\nmax_connections = \"100\"\n"
        "connection_timeout = 1979-05-27\n"
        "[load_balancing.backends.web]\nupstreams = [{ address = \"127.0.0.1:1\" }]\n"
        "[health_check]\n[metrics]\nprometheus = \"true\"\n");
    expectError(quoted, "server.max_connections", "quoted numbers are not converted", 4);
    expectError(quoted, "server.connection_timeout", "", 5);
    expectError(quoted, "metrics.prometheus", "expected a boolean", 10);
}

// ---------------------------------------------------------------------------------------------
// Validation errors (each names its key path and, for YAML, its line)
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, MissingRequiredSectionsAreErrors) {
    LoadResult r = loadYaml("server:\n  http_addr: \"127.0.0.1:8080\"\nroutes: []\n");
    expectError(r, "load_balancing", "missing required key 'load_balancing'", 1);
    expectError(r, "health_check", "missing required key", 1);
    expectError(r, "metrics", "missing required key", 1);
    EXPECT_EQ(count(r, Severity::Error), 3u) << describe(r);
}

TEST(ConfigLoaderTest, MissingRequiredKeysInsideBlocksAreErrors) {
    LoadResult r = loadYaml(
        "server:\n"
        "  max_connections: 5\n"
        "load_balancing:\n"
        "  backends:\n"
        "    web:\n"
        "      upstreams:\n"
        "        - weight: 2\n"
        "routes:\n"
        "  - id: a\n"
        "    path: /\n"
        "health_check: {}\n"
        "metrics: {}\n");
    expectError(r, "server.http_addr", "missing required key 'http_addr'", 2);
    expectError(r, "load_balancing.backends.web.upstreams[0].address", "missing required key", 7);
    expectError(r, "routes[0].backend", "missing required key 'backend'", 9);
    expectError(r, "metrics.prometheus", "missing required key", 12);
}

TEST(ConfigLoaderTest, RequiredKeyWithNullValueIsAnError) {
    std::string yaml = baseYaml();
    yaml.replace(yaml.find("    backend: web\n"), 17, "    backend:\n");
    expectError(loadYaml(yaml), "routes[0].backend", "a value is required", 11);
}

TEST(ConfigLoaderTest, WrongTypesAreErrors) {
    LoadResult r =
        loadYaml(baseYaml("  reuse_port: yes\n  max_headers: [1]\n", "", "    methods: GET\n"));
    expectError(r, "server.reuse_port", "expected a boolean (true or false), got the string 'yes'",
                3);
    expectError(r, "server.max_headers", "expected a non-negative integer, got a list", 4);
    expectError(r, "routes[0].methods", "expected a list of strings", 14);
    LoadResult s = loadYaml(baseYaml("", "", "", "cache: []\n"));
    expectError(s, "cache", "expected a map", 15);
}

TEST(ConfigLoaderTest, HttpsWithoutCertificateIsAnError) {
    LoadResult r = loadYaml(baseYaml("  https_addr: \"127.0.0.1:8443\"\n"));
    expectError(r, "server.https_addr",
                "TLS certificate and key must be provided when HTTPS is enabled: server.tls_cert "
                "is missing",
                3);
    expectError(r, "server.https_addr", "server.tls_key is missing", 3);
}

TEST(ConfigLoaderTest, UnreadableCertificateIsAnError) {
    LoadResult r =
        loadYaml(baseYaml("  https_addr: \"127.0.0.1:8443\"\n"
                          "  tls_cert: \"tests/fixtures/config/missing.crt\"\n"
                          "  tls_key: \"conf/examples/tls/example-only.key\"\n"));
    expectError(r, "server.tls_cert", "cannot read 'tests/fixtures/config/missing.crt'", 4);
    EXPECT_EQ(find(r, Severity::Error, "server.tls_key", ""), nullptr) << describe(r);
}

TEST(ConfigLoaderTest, CertificateWithoutHttpsIsAWarning) {
    LoadResult r = loadYaml(baseYaml("  tls_cert: \"x.crt\"\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    expectWarning(r, "server.tls_cert", "server.https_addr is not set", 3);
}

TEST(ConfigLoaderTest, UnknownRouteBackendSuggestsTheClosestName) {
    std::string yaml = baseYaml("", "", "  - id: api\n    path: /api/**\n    backend: wbe\n");
    LoadResult r = loadYaml(yaml);
    expectError(r, "routes[1].backend", "unknown backend 'wbe'; did you mean 'web'?", 14);
    LoadResult far =
        loadYaml(baseYaml("", "", "  - id: api\n    path: /api/**\n    backend: payments\n"));
    expectError(far, "routes[1].backend", "unknown backend 'payments'", 14);
}

TEST(ConfigLoaderTest, BackendWithoutUpstreamsIsAnError) {
    LoadResult r = loadYaml(baseYaml("", "    empty:\n      upstreams: []\n"));
    expectError(r, "load_balancing.backends.empty.upstreams",
                "Backend 'empty' must have at least one upstream server", 9);
    LoadResult null_backend = loadYaml(baseYaml("", "    empty:\n"));
    expectError(null_backend, "load_balancing.backends.empty", "at least one upstream", 8);
}

TEST(ConfigLoaderTest, DuplicateRouteIdsAreErrors) {
    LoadResult r = loadYaml(baseYaml("", "", "  - id: home\n    path: /x\n    backend: web\n"));
    expectError(r, "routes[1].id", "Duplicate route ID: home (first defined at line 9)", 12);
}

TEST(ConfigLoaderTest, BadRegexPatternsReportPcre2MessageAndOffset) {
    LoadResult r =
        loadYaml(baseYaml("", "",
                          "  - id: re\n    path: \"^/users/([0-9]+$\"\n    backend: web\n"
                          "    host: \"^(api|www.example.com$\"\n"));
    expectError(r, "routes[1].path",
                "invalid path regex '^/users/([0-9]+$': missing closing "
                "parenthesis at offset 16",
                13);
    expectError(r, "routes[1].host", "invalid host regex", 15);
}

TEST(ConfigLoaderTest, GlobPatternsAreNotCompiledAsRegexes) {
    LoadResult r = loadYaml(baseYaml("", "",
                                     "  - id: g\n    path: \"/static/(*.js\"\n"
                                     "    backend: web\n"));
    EXPECT_TRUE(r.ok()) << describe(r);
}

TEST(ConfigLoaderTest, BadListenAddressesAreErrors) {
    LoadResult r = loadYaml(baseYaml("  https_addr: \"example.com:443\"\n"));
    expectError(r, "server.https_addr", "IP literal", 3);
    std::string yaml = baseYaml();
    yaml.replace(yaml.find("127.0.0.1:8080"), 14, "127.0.0.1:70000");
    LoadResult p = loadYaml(yaml);
    expectError(p, "server.http_addr", "between 1 and 65535", 2);
}

TEST(ConfigLoaderTest, OverlappingListenersAreErrors) {
    std::string yaml = baseYaml();
    yaml.replace(yaml.find("  prometheus: false\n"), 20,
                 "  prometheus: true\n  metrics_addr: \"0.0.0.0:8080\"\n");
    LoadResult r = loadYaml(yaml);
    expectError(r, "metrics.metrics_addr", "overlaps server.http_addr", 15);
}

TEST(ConfigLoaderTest, MalformedUpstreamAddressIsAnError) {
    LoadResult r = loadYaml(baseYaml("",
                                     "        - address: \"http://10.0.0.1:80\"\n"
                                     "        - address: \"10.0.0.1\"\n"));
    expectError(r, "load_balancing.backends.web.upstreams[1].address", "without a scheme", 8);
    expectError(r, "load_balancing.backends.web.upstreams[2].address", "port is required", 9);
}

TEST(ConfigLoaderTest, UnresolvableUpstreamNameIsOnlyAWarning) {
    LoadResult r = loadYaml(baseYaml("",
                                     "        - address: \"api.nowhere.invalid:80\"\n"
                                     "        - address: \"api.resolvable:80\"\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    expectWarning(r, "load_balancing.backends.web.upstreams[1].address",
                  "host 'api.nowhere.invalid' does not resolve yet", 8);
    EXPECT_EQ(count(r, Severity::Warning), 1u) << describe(r);
    const auto& ups = r.config->load_balancing.backends[0].upstreams;
    ASSERT_EQ(ups.size(), 3u);
    EXPECT_EQ(ups[1].address.kind, core::HostKind::Name);
    EXPECT_EQ(ups[1].address.port, 80);
}

TEST(ConfigLoaderTest, UnknownMiddlewareNameIsAnErrorWithSuggestion) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [rate_limt]\n",
                                     "middleware:\n  rate_limiting:\n"
                                     "    requests_per_second: 1\n    key: ip\n"));
    expectError(r, "routes[0].middleware[0]",
                "unknown middleware 'rate_limt'; did you mean 'rate_limit'?", 12);
    LoadResult far = loadYaml(baseYaml("", "", "    middleware: [waf]\n"));
    expectError(far, "routes[0].middleware[0]",
                "unknown middleware 'waf' (known: cors, rate_limit, auth or transform)", 12);
}

TEST(ConfigLoaderTest, MiddlewareWithoutItsBlockIsAnError) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [cors, auth]\n", "middleware: {}\n"));
    expectError(r, "routes[0].middleware[1]",
                "uses middleware 'auth' but middleware.authentication is not configured", 12);
    expectError(r, "routes[0].middleware[0]", "middleware.cors is not configured", 12);
}

TEST(ConfigLoaderTest, InvalidMiddlewareBlockIsReportedOnce) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [cors]\n",
                                     "middleware:\n  cors:\n    allowed_origins: [\"*\"]\n"));
    expectError(r, "middleware.cors.allowed_methods", "missing required key", 18);
    EXPECT_EQ(find(r, Severity::Error, "routes[0].middleware[0]", ""), nullptr) << describe(r);
}

TEST(ConfigLoaderTest, AuthTypeNeedsItsBlock) {
    LoadResult jwt = loadYaml(baseYaml("", "", "",
                                       "middleware:\n  authentication:\n"
                                       "    auth_type: jwt\n"));
    expectError(jwt, "middleware.authentication.jwt",
                "auth_type 'jwt' requires a middleware.authentication.jwt block", 17);
    LoadResult key = loadYaml(baseYaml("", "", "",
                                       "middleware:\n  authentication:\n"
                                       "    auth_type: api_key\n    jwt:\n      secret: s\n"
                                       "      algorithm: HS256\n"));
    expectError(key, "middleware.authentication.api_key", "requires", 17);
}

TEST(ConfigLoaderTest, BasicAuthNeedsItsBlock) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n  authentication:\n"
                                     "    auth_type: basic\n"));
    expectError(r, "middleware.authentication.basic",
                "auth_type 'basic' requires a middleware.authentication.basic block", 17);
    LoadResult missing = loadYaml(baseYaml("", "", "",
                                           "middleware:\n  authentication:\n"
                                           "    auth_type: basic\n    basic:\n"
                                           "      htpasswd_file: /nonexistent/htpasswd\n"));
    expectError(missing, "middleware.authentication.basic.htpasswd_file",
                "cannot read '/nonexistent/htpasswd'");
}

TEST(ConfigLoaderTest, UnknownAuthTypeIsAnError) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n  authentication:\n"
                                     "    auth_type: jwtt\n"));
    expectError(r, "middleware.authentication.auth_type",
                "unknown auth_type 'jwtt'; did you mean 'jwt'?", 17);
}

TEST(ConfigLoaderTest, JwtAlgorithmsNeedTheirKeys) {
    auto withAlgorithm = [](const std::string& alg) {
        return loadYaml(baseYaml("", "", "",
                                 "middleware:\n  authentication:\n    auth_type: jwt\n"
                                 "    jwt:\n      secret: \"0123456789abcdef0123456789abcdef-"
                                 "0123456789abcdef0123456789abcdef\"\n      algorithm: " +
                                     alg + "\n"));
    };
    expectError(withAlgorithm("RS256"), "middleware.authentication.jwt.public_key_file",
                "need a public_key_file, a jwks_file or a jwks_url");
    expectError(withAlgorithm("HS999"), "middleware.authentication.jwt.algorithm",
                "unknown JWT algorithm 'HS999'", 20);
    expectError(withAlgorithm("hs256"), "middleware.authentication.jwt.algorithm",
                "did you mean 'HS256'?", 20);
    expectError(withAlgorithm("none"), "middleware.authentication.jwt.algorithm",
                "unknown JWT algorithm 'none'", 20);
    LoadResult ok = withAlgorithm("HS512");
    ASSERT_TRUE(ok.ok()) << describe(ok);
    EXPECT_EQ(ok.config->middleware.authentication->jwt->algorithms,
              std::vector<core::JwtAlgorithm>{core::JwtAlgorithm::HS512});
    EXPECT_EQ(count(ok, Severity::Warning), 0u) << describe(ok);  // 64-byte secret
    LoadResult both = loadYaml(baseYaml("", "", "",
                                        "middleware:\n  authentication:\n    auth_type: jwt\n"
                                        "    jwt:\n      secret: s\n      algorithm: HS256\n"
                                        "      algorithms: [HS256]\n"));
    expectError(both, "middleware.authentication.jwt.algorithms", "not both");
}

LoadResult authYaml(const std::string& body) {
    return loadYaml(baseYaml("", "", "", "middleware:\n  authentication:\n" + body));
}

TEST(ConfigLoaderTest, JwtKeysOfThisVersion) {
    LoadResult r = authYaml(
        "    auth_type: jwt\n    cache_ttl: 1m\n    jwt:\n"
        "      secret: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n"
        "      secret_base64: true\n      algorithms: [HS256, HS384]\n"
        "      cookie: session\n      query: access_token\n"
        "      issuer: https://idp.example.com/\n      audience: [api, web]\n"
        "      required_claims: {scope: admin}\n      require_exp: true\n"
        "      max_token_size: 4096\n      forward_claims: {sub: X-User-Id, email: X-Email}\n"
        "      forward_token: false\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(count(r, Severity::Warning), 0u) << describe(r);  // 32 decoded bytes
    const auto& a = *r.config->middleware.authentication;
    EXPECT_EQ(a.cache_ttl, std::chrono::minutes(1));
    const auto& j = *a.jwt;
    EXPECT_EQ(j.algorithms, (std::vector<core::JwtAlgorithm>{core::JwtAlgorithm::HS256,
                                                             core::JwtAlgorithm::HS384}));
    EXPECT_EQ(j.issuer, std::vector<std::string>{"https://idp.example.com/"});
    EXPECT_EQ(j.audience, (std::vector<std::string>{"api", "web"}));
    ASSERT_EQ(j.required_claims.size(), 1u);
    EXPECT_EQ(j.required_claims[0].first, "scope");
    EXPECT_EQ(j.required_claims[0].second, std::optional<std::string>("admin"));
    EXPECT_TRUE(j.require_exp);
    EXPECT_EQ(j.max_token_size, 4096u);
    ASSERT_EQ(j.forward_claims.size(), 2u);
    EXPECT_EQ(j.forward_claims[1], (std::pair<std::string, std::string>{"email", "X-Email"}));
    EXPECT_FALSE(j.forward_token);
    EXPECT_EQ(j.cookie, "session");
    EXPECT_EQ(j.query, "access_token");

    expectError(authYaml("    auth_type: jwt\n    jwt:\n      secret: \"!!\"\n"
                         "      secret_base64: true\n      algorithm: HS256\n"),
                "middleware.authentication.jwt.secret", "not valid base64");
    expectError(authYaml("    auth_type: jwt\n    jwt:\n      algorithm: HS256\n"),
                "middleware.authentication.jwt.secret", "need a secret");
    expectError(authYaml("    auth_type: jwt\n    jwt:\n      secret: s\n      algorithm: HS256\n"
                         "      forward_claims: {sub: \"X User\"}\n"),
                "middleware.authentication.jwt.forward_claims.sub", "not a valid header name");
    expectError(authYaml("    auth_type: jwt\n    jwt:\n      secret: s\n      algorithm: HS256\n"
                         "      max_token_size: 10\n"),
                "middleware.authentication.jwt.max_token_size", "out of range");
    expectError(authYaml("    auth_type: jwt\n    jwt:\n      public_key_file: /nonexistent.pem\n"
                         "      algorithm: RS256\n"),
                "middleware.authentication.jwt.public_key_file", "/nonexistent.pem");
}

TEST(ConfigLoaderTest, ApiKeysWithNamesAndAKeysFile) {
    std::string file = ::testing::TempDir() + "/keys-" + std::to_string(getpid());
    {
        FILE* f = std::fopen(file.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs("# partner keys\n\nk-file-1 partner-b\n  k-file-2  \n", f);
        std::fclose(f);
    }
    LoadResult r = authYaml("    auth_type: api_key\n    api_key:\n"
                            "      keys: [k-inline, {key: k-named, name: partner-a}]\n"
                            "      keys_file: " + file + "\n      forward_key: false\n");
    ASSERT_TRUE(r.ok()) << describe(r);
    const auto& k = *r.config->middleware.authentication->api_key;
    ASSERT_EQ(k.keys.size(), 2u);
    EXPECT_EQ(k.keys[1].name, "partner-a");
    ASSERT_EQ(k.file_keys.size(), 2u);
    EXPECT_EQ(k.file_keys[0].key, "k-file-1");
    EXPECT_EQ(k.file_keys[0].name, "partner-b");
    EXPECT_EQ(k.file_keys[1].key, "k-file-2");
    EXPECT_TRUE(k.file_keys[1].name.empty());
    EXPECT_EQ(k.consumer_header, "X-Consumer");
    EXPECT_FALSE(k.forward_key);
    {
        FILE* f = std::fopen(file.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs("good-key\nsecret\x01key\n", f);
        std::fclose(f);
    }
    LoadResult bad = authYaml("    auth_type: api_key\n    api_key:\n      keys_file: " + file +
                              "\n");
    expectError(bad, "middleware.authentication.api_key.keys_file", "line 2");
    EXPECT_EQ(describe(bad).find("secret"), std::string::npos) << describe(bad);
    std::remove(file.c_str());
    expectError(authYaml("    auth_type: api_key\n    api_key:\n      keys: [\"a b\"]\n"),
                "middleware.authentication.api_key.keys[0]", "visible ASCII");
}

TEST(ConfigLoaderTest, ShortJwtSecretWarnsAndEmptyOneFails) {
    auto withSecret = [](const std::string& secret) {
        return loadYaml(baseYaml("", "", "",
                                 "middleware:\n  authentication:\n    auth_type: jwt\n"
                                 "    jwt:\n      secret: \"" +
                                     secret + "\"\n      algorithm: HS256\n"));
    };
    LoadResult short_secret = withSecret("short");
    ASSERT_TRUE(short_secret.ok());
    expectWarning(short_secret, "middleware.authentication.jwt.secret", "shorter than 32 bytes",
                  19);
    expectError(withSecret(""), "middleware.authentication.jwt.secret", "must not be empty", 19);
}

TEST(ConfigLoaderTest, UnknownAlgorithmNamesAreErrors) {
    LoadResult r = loadYaml(baseYaml("", "      algorithm: round_robbin\n"));
    expectError(r, "load_balancing.backends.web.algorithm",
                "unknown load-balancing algorithm 'round_robbin'; did you mean 'round_robin'?", 8);
    LoadResult c = loadYaml(baseYaml("", "      health_check:\n        check_type: grpc\n"));
    expectError(c, "load_balancing.backends.web.health_check.check_type",
                "unknown check_type 'grpc' (expected tcp, http or https)", 9);
}

TEST(ConfigLoaderTest, IntegerRangesAreChecked) {
    LoadResult r = loadYaml(baseYaml("",
                                     "          weight: 4294967296\n"
                                     "      health_check:\n"
                                     "        check_type: http\n"
                                     "        expected_status: 700\n"
                                     "        failure_threshold: 0\n"));
    expectError(r, "load_balancing.backends.web.upstreams[0].weight", "out of range (0-4294967295)",
                8);
    expectError(r, "load_balancing.backends.web.health_check.expected_status",
                "out of range (100-599)", 11);
    expectError(r, "load_balancing.backends.web.health_check.failure_threshold", "out of range",
                12);
    LoadResult neg = loadYaml(baseYaml("", "          weight: -1\n"));
    expectError(neg, "load_balancing.backends.web.upstreams[0].weight", "out of range", 8);
    LoadResult frac = loadYaml(baseYaml("", "          weight: 1.5\n"));
    expectError(frac, "load_balancing.backends.web.upstreams[0].weight", "the number 1.5", 8);
    LoadResult hex = loadYaml(baseYaml("", "          weight: 0x10\n"));
    ASSERT_TRUE(hex.ok()) << describe(hex);
    EXPECT_EQ(hex.config->load_balancing.backends[0].upstreams[0].weight, 16u);
}

TEST(ConfigLoaderTest, RouteFieldsAreValidated) {
    LoadResult r = loadYaml(baseYaml("", "",
                                     "    methods: [\"GET\", \"BAD METHOD\"]\n"
                                     "    strip_prefix: api\n"
                                     "    rewrite: \"\"\n"
                                     "    websocket:\n"
                                     "      protocols: [chat]\n"
                                     "    cache:\n"
                                     "      ttl: 1m\n"));
    expectError(r, "routes[0].methods[1]", "invalid method 'BAD METHOD'", 12);
    expectError(r, "routes[0].strip_prefix", "must start with '/'", 13);
    expectError(r, "routes[0].rewrite", "must start with '/'", 14);
    expectError(r, "routes[0].websocket.enabled", "missing required key", 16);
    expectError(r, "routes[0].cache.enabled", "missing required key", 18);
}

TEST(ConfigLoaderTest, BackendOptionsAreValidated) {
    LoadResult r = loadYaml(baseYaml("",
                                     "      hash_key: \"query:x\"\n"
                                     "      health_check:\n"
                                     "        path: health\n"));
    expectError(r, "load_balancing.backends.web.hash_key", "unknown hash_key 'query:x'", 8);
    expectError(r, "load_balancing.backends.web.health_check.check_type", "missing required key",
                10);
    expectError(r, "load_balancing.backends.web.health_check.path", "must be an absolute path", 10);
}

TEST(ConfigLoaderTest, SettingsThatCannotApplyWarn) {
    LoadResult r = loadYaml(baseYaml("",
                                     "      hash_key: path\n"
                                     "      two_choices: true\n"
                                     "      health_check:\n"
                                     "        check_type: tcp\n"
                                     "        path: /status\n"
                                     "        method: GET\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    expectWarning(r, "load_balancing.backends.web.hash_key", "only used with", 8);
    expectWarning(r, "load_balancing.backends.web.two_choices", "only used with algorithm 'random'",
                  9);
    expectWarning(r, "load_balancing.backends.web.health_check.path",
                  "ignored for tcp health checks", 12);
    // `method: GET` is the default and therefore not worth a warning.
    EXPECT_EQ(find(r, Severity::Warning, "load_balancing.backends.web.health_check.method", ""),
              nullptr)
        << describe(r);
    EXPECT_EQ(count(r, Severity::Warning), 3u) << describe(r);
}

TEST(ConfigLoaderTest, TrustedProxiesMustBeCidrs) {
    LoadResult r =
        loadYaml(baseYaml("  trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.1/8\", "
                          "\"proxy.local\"]\n"));
    expectError(r, "server.trusted_proxies[1]", "did you mean '10.0.0.0/8'", 3);
    expectError(r, "server.trusted_proxies[2]", "invalid CIDR", 3);
}

TEST(ConfigLoaderTest, HeaderTransformValuesMustBeSafe) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n  transform:\n    request_headers:\n"
                                     "      add:\n        X-A: \"line1\\r\\nInjected: 1\"\n"
                                     "        \"Bad Name\": x\n"));
    expectError(r, "middleware.transform.request_headers.add.X-A", "control characters", 19);
    expectError(r, "middleware.transform.request_headers.add.Bad Name", "invalid header name", 20);
}

TEST(ConfigLoaderTest, ReportsAllErrorsInOneRunSortedByLine) {
    LoadResult r = loadYaml(baseYaml("  max_connections: 0\n", "          weight: x\n",
                                     "    retries: -1\n", "cache: {}\n"));
    EXPECT_FALSE(r.ok());
    expectError(r, "server.max_connections", "out of range", 3);
    expectError(r, "load_balancing.backends.web.upstreams[0].weight", "got the string 'x'", 9);
    expectError(r, "routes[0].retries", "out of range", 14);
    expectError(r, "cache.enabled", "missing required key", 18);
    EXPECT_EQ(count(r, Severity::Error), 4u) << describe(r);
    for (size_t i = 1; i < r.diagnostics.size(); ++i) {
        EXPECT_LE(r.diagnostics[i - 1].line, r.diagnostics[i].line) << describe(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Unknown keys
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, UnknownKeysWarnWithDidYouMean) {
    LoadResult r = loadYaml(
        baseYaml("  conection_timeout: 5s\n", "", "    timout: 5s\n", "middlewares: {}\nfoo: 1\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    expectWarning(r, "server.conection_timeout",
                  "unknown key 'conection_timeout' is ignored; did you mean 'connection_timeout'?",
                  3);
    expectWarning(r, "routes[0].timout", "did you mean 'timeout'?", 13);
    expectWarning(r, "middlewares", "did you mean 'middleware'?", 17);
    const Diagnostic* foo = find(r, Severity::Warning, "foo", "unknown key 'foo' is ignored");
    ASSERT_NE(foo, nullptr) << describe(r);
    EXPECT_EQ(foo->message.find("did you mean"), std::string::npos);
}

TEST(ConfigLoaderTest, MisspelledRequiredKeyGivesErrorAndHint) {
    std::string yaml = baseYaml();
    yaml.replace(yaml.find("      upstreams:"), 16, "      upstream:");
    LoadResult r = loadYaml(yaml);
    expectError(r, "load_balancing.backends.web.upstreams", "missing required key", 6);
    expectWarning(r, "load_balancing.backends.web.upstream", "did you mean 'upstreams'?", 6);
}

TEST(ConfigLoaderTest, ReadmeOnlyKeysAreKnown) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n  authentication:\n    auth_type: api_key\n"
                                     "    api_key:\n      keys: [\"k\"]\n"
                                     "      header: \"X-API-Key\"\n      query: \"api_key\"\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_TRUE(r.diagnostics.empty()) << describe(r);
    EXPECT_EQ(r.config->middleware.authentication->api_key->query, "api_key");
}

// ---------------------------------------------------------------------------------------------
// One model from three formats, dumps and masking
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, FullFixtureIsIdenticalInYamlJsonAndToml) {
    LoadResult y = loadFile("tests/fixtures/config/full.yaml");
    LoadResult j = loadFile("tests/fixtures/config/full.json");
    LoadResult t = loadFile("tests/fixtures/config/full.toml");
    ASSERT_TRUE(y.ok()) << describe(y);
    ASSERT_TRUE(j.ok()) << describe(j);
    ASSERT_TRUE(t.ok()) << describe(t);
    EXPECT_EQ(dumpConfigUnmasked(*y.config), dumpConfigUnmasked(*j.config));
    EXPECT_EQ(dumpConfigUnmasked(*y.config), dumpConfigUnmasked(*t.config));
    EXPECT_TRUE(*y.config == *j.config);
    EXPECT_TRUE(*y.config == *t.config);

    // Spot checks that the fixture really exercises the schema.
    const Config& c = *y.config;
    EXPECT_EQ(c.server.https_addr->toString(), "[::]:8443");
    EXPECT_EQ(c.server.trusted_proxies.size(), 3u);
    EXPECT_EQ(c.load_balancing.backends.size(), 3u);
    EXPECT_EQ(c.load_balancing.backends[0].name, "web_service");  // document order kept
    EXPECT_EQ(c.load_balancing.backends[2].name, "random_service");
    EXPECT_EQ(c.load_balancing.backends[0].algorithm, core::LbAlgorithm::LeastConnections);
    EXPECT_EQ(c.load_balancing.backends[0].upstreams[1].read_timeout, seconds(90));
    EXPECT_EQ(c.load_balancing.backends[0].health_check.method, "HEAD");
    EXPECT_EQ(c.load_balancing.backends[1].hash_key.name, "X-User-ID");
    EXPECT_EQ(c.load_balancing.backends[1].health_check.interval, seconds(20));
    EXPECT_EQ(c.routes[1].middleware,
              (std::vector<std::string>{"cors", "auth", "rate_limit", "transform"}));
    EXPECT_EQ(c.routes[1].backend_index, 1u);
    EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"GET"}));
    EXPECT_EQ(c.middleware.rate_limiting->key.kind, core::RateLimitKey::Kind::Header);
    ASSERT_EQ(c.middleware.transform->request_headers.add.size(), 2u);
    EXPECT_EQ(c.middleware.transform->request_headers.add[0].first, "X-Gateway-Route");
    EXPECT_EQ(c.middleware.transform->response_headers.set[1].first, "Server");
}

TEST(ConfigLoaderTest, ModelsThatDifferCompareUnequal) {
    LoadResult a = loadFile("tests/fixtures/config/full.yaml");
    LoadResult b = loadFile("tests/fixtures/config/full.yaml");
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(*a.config == *b.config);
    b.config->load_balancing.backends[1].upstreams[0].weight = 9;
    EXPECT_FALSE(*a.config == *b.config);
}

TEST(ConfigLoaderTest, UnmaskedDumpReadsBackToTheSameModel) {
    for (const char* path :
         {"tests/fixtures/config/full.yaml", "conf/photon.yaml",
          "tests/fixtures/config/config.example.yaml", "conf/examples/env.yaml"}) {
        LoadResult a = loadFile(path);
        ASSERT_TRUE(a.ok()) << path << "\n" << describe(a);
        std::string dump = dumpConfigUnmasked(*a.config);
        LoadResult b = loadConfigString(dump, "yaml", "dump.yaml", kNoEnv, kResolver);
        ASSERT_TRUE(b.ok()) << path << "\n" << describe(b) << dump;
        EXPECT_EQ(count(b, Severity::Warning), count(a, Severity::Warning)) << describe(b);
        EXPECT_TRUE(*a.config == *b.config) << path << "\n" << dump;
    }
}

// Found by config_fuzz: with only named instances the dump said "middleware: {}", so
// `photon -t -l debug` hid them and the dump read back to a config without them.
TEST(ConfigLoaderTest, DumpShowsNamedMiddlewareWithoutADefaultBlock) {
    LoadResult a = loadYaml(baseYaml("", "", "    middleware: [\"rate_limit:login\"]\n",
                                     "middleware:\n"
                                     "  \"rate_limit:login\":\n"
                                     "    requests_per_second: 5\n    key: ip\n"));
    ASSERT_TRUE(a.ok()) << describe(a);
    std::string dump = dumpConfigUnmasked(*a.config);
    EXPECT_EQ(dump.find("middleware: {}"), std::string::npos) << dump;
    EXPECT_NE(dump.find("\"rate_limit:login\":"), std::string::npos) << dump;
    LoadResult b = loadConfigString(dump, "yaml", "dump.yaml", kNoEnv, kResolver);
    ASSERT_TRUE(b.ok()) << describe(b) << dump;
    EXPECT_TRUE(*a.config == *b.config) << dump;
}

TEST(ConfigLoaderTest, MaskedDumpHidesSecrets) {
    LoadResult jwt = loadFile("tests/fixtures/config/full.yaml");
    ASSERT_TRUE(jwt.ok());
    const std::string& secret = jwt.config->middleware.authentication->jwt->secret;
    std::string masked = dumpConfigMasked(*jwt.config);
    EXPECT_EQ(masked.find(secret), std::string::npos);
    EXPECT_NE(masked.find("secret: \"****\""), std::string::npos) << masked;
    EXPECT_NE(dumpConfigUnmasked(*jwt.config).find(secret), std::string::npos);

    LoadResult keys = loadYaml(baseYaml("", "", "",
                                        "middleware:\n  authentication:\n    auth_type: api_key\n"
                                        "    api_key:\n      keys: [\"sk-live-abc\", \"${K2}\"]\n"),
                               envOf({{"K2", "sk-live-def"}}));
    ASSERT_TRUE(keys.ok()) << describe(keys);
    std::string m = dumpConfigMasked(*keys.config);
    EXPECT_EQ(m.find("sk-live"), std::string::npos) << m;
    EXPECT_NE(m.find("keys: [\"****\", \"****\"]"), std::string::npos) << m;
    EXPECT_NE(dumpConfigUnmasked(*keys.config).find("sk-live-def"), std::string::npos);
}

TEST(ConfigLoaderTest, DumpShowsEffectiveValues) {
    LoadResult r = loadFile("conf/photon.yaml");
    ASSERT_TRUE(r.ok());
    std::string d = dumpConfigMasked(*r.config);
    EXPECT_NE(d.find("http_addr: \"127.0.0.1:8080\""), std::string::npos) << d;
    EXPECT_NE(d.find("worker_processes: auto  # "), std::string::npos) << d;
    EXPECT_NE(d.find("max_body_size: 10485760"), std::string::npos) << d;
    EXPECT_NE(d.find("check_type: tcp"), std::string::npos) << d;
}

// ---------------------------------------------------------------------------------------------
// Shipped configuration files
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, EveryShippedConfigLoadsWithoutDiagnostics) {
    std::vector<std::string> files;
    for (const char* dir : {"conf", "conf/examples"}) {
        for (const auto& e : fs::directory_iterator(dir)) {
            std::string ext = e.path().extension().string();
            if (e.is_regular_file() &&
                (ext == ".yaml" || ext == ".yml" || ext == ".json" || ext == ".toml")) {
                files.push_back(e.path().string());
            }
        }
    }
    EXPECT_GE(files.size(), 11u);
    for (const auto& f : files) {
        LoadResult r = loadFile(f);
        EXPECT_TRUE(r.ok()) << f << "\n" << describe(r);
        EXPECT_TRUE(r.diagnostics.empty()) << f << "\n" << describe(r);
    }
}

TEST(ConfigLoaderTest, DefaultConfigIsTheDemoSetupInAllThreeFormats) {
    LoadResult y = loadFile("conf/photon.yaml");
    LoadResult j = loadFile("conf/examples/photon.json");
    LoadResult t = loadFile("conf/examples/photon.toml");
    ASSERT_TRUE(y.ok() && j.ok() && t.ok()) << describe(y) << describe(j) << describe(t);
    EXPECT_TRUE(*y.config == *j.config) << dumpConfigUnmasked(*j.config);
    EXPECT_TRUE(*y.config == *t.config) << dumpConfigUnmasked(*t.config);
    const Config& c = *y.config;
    EXPECT_EQ(c.server.http_addr.toString(), "127.0.0.1:8080");
    EXPECT_EQ(c.metrics.metrics_addr->toString(), "127.0.0.1:9090");
    EXPECT_TRUE(c.server.worker_processes_auto);
    const auto* demo = c.load_balancing.findBackend("demo");
    ASSERT_NE(demo, nullptr);
    ASSERT_EQ(demo->upstreams.size(), 2u);
    EXPECT_EQ(demo->upstreams[0].address.toString(), "127.0.0.1:9001");
    EXPECT_EQ(demo->upstreams[1].address.toString(), "127.0.0.1:9002");
    std::vector<std::string> paths;
    for (const auto& r : c.routes) {
        paths.push_back(r.path);
        EXPECT_EQ(r.backend, "demo");
    }
    EXPECT_NE(std::find(paths.begin(), paths.end(), "/**"), paths.end());
    EXPECT_NE(std::find(paths.begin(), paths.end(), "/api/**"), paths.end());
}

TEST(ConfigLoaderTest, EnvExampleHonoursVariables) {
    LoadResult r =
        loadFile("conf/examples/env.yaml", envOf({{"PHOTON_HTTP_ADDR", "127.0.0.1:18080"},
                                                  {"PHOTON_WORKERS", "2"},
                                                  {"PHOTON_REUSE_PORT", "true"},
                                                  {"HEALTH_INTERVAL", "3s"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.config->server.http_addr.port, 18080);
    EXPECT_EQ(r.config->server.worker_processes, 2u);
    EXPECT_TRUE(r.config->server.reuse_port);
    EXPECT_EQ(r.config->health_check.interval, seconds(3));
    const auto& set = r.config->middleware.transform->request_headers.set;
    ASSERT_EQ(set.size(), 2u);
    EXPECT_EQ(set[0].second, "development");
    // Transform values are templates expanded per request: "$${" stays the literal-"${" escape
    // there (the header is sent as ${not_a_variable}).
    EXPECT_EQ(set[1].second, "$${not_a_variable}");
}

// ---------------------------------------------------------------------------------------------
// Named middleware instances and gateway variables
// ---------------------------------------------------------------------------------------------

TEST(ConfigLoaderTest, NamedInstancesLoadAndRoutesPickThem) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [\"cors:public\", \"transform\"]\n",
                                     "middleware:\n"
                                     "  \"cors:public\":\n"
                                     "    allowed_origins: [\"*\"]\n"
                                     "    allowed_methods: [GET]\n"
                                     "    allowed_headers: []\n"
                                     "  transform:\n"
                                     "    response_headers:\n"
                                     "      add: {X-Rid: \"${request_id}\"}\n"));
    ASSERT_TRUE(r.ok()) << describe(r);
    ASSERT_EQ(r.config->middleware.cors_named.size(), 1u);
    EXPECT_EQ(r.config->middleware.cors_named[0].first, "public");
    EXPECT_FALSE(r.config->middleware.cors.has_value());
    EXPECT_EQ(r.config->routes[0].middleware,
              (std::vector<std::string>{"cors:public", "transform"}));
    EXPECT_EQ(r.config->middleware.transform->response_headers.add[0].second, "${request_id}");
}

TEST(ConfigLoaderTest, MissingNamedInstanceIsAnError) {
    LoadResult r = loadYaml(baseYaml("", "", "    middleware: [\"cors:nope\"]\n",
                                     "middleware:\n"
                                     "  cors:\n"
                                     "    allowed_origins: [\"*\"]\n"
                                     "    allowed_methods: [GET]\n"
                                     "    allowed_headers: []\n"));
    expectError(r, "routes[0].middleware[0]", "middleware.\"cors:nope\" is not configured");
    LoadResult bad = loadYaml(baseYaml("", "", "",
                                       "middleware:\n"
                                       "  \"waf:x\": {}\n"
                                       "  \"cors:\": {}\n"));
    expectError(bad, "middleware.waf:x", "unknown middleware 'waf'");
    expectError(bad, "middleware.cors:", "invalid instance name");
}

TEST(ConfigLoaderTest, CorsCredentialsWithStarOriginIsAnError) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  cors:\n"
                                     "    allowed_origins: [\"*\"]\n"
                                     "    allowed_methods: [GET]\n"
                                     "    allowed_headers: []\n"
                                     "    allow_credentials: true\n"));
    expectError(r, "middleware.cors.allow_credentials", "cannot be used with \"*\"");
    LoadResult o = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  cors:\n"
                                     "    allowed_origins: [\"https://a.test/path\"]\n"
                                     "    allowed_methods: [GET]\n"
                                     "    allowed_headers: []\n"));
    expectError(o, "middleware.cors.allowed_origins[0]", "invalid origin");
}

TEST(ConfigLoaderTest, TransformValuesKeepGatewayVariablesAndTakeEnvironmentOnes) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  transform:\n"
                                     "    request_headers:\n"
                                     "      set:\n"
                                     "        X-A: \"${request_id}-${DEPLOY}\"\n"
                                     "        X-B: \"$${request_id}\"\n"
                                     "        X-C: \"${INJECT}\"\n"),
                            envOf({{"DEPLOY", "prod"}, {"INJECT", "${method}"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    const auto& set = r.config->middleware.transform->request_headers.set;
    EXPECT_EQ(set[0].second, "${request_id}-prod");
    EXPECT_EQ(set[1].second, "$${request_id}");  // a literal ${request_id}
    EXPECT_EQ(set[2].second, "$${method}");      // an environment value is never a variable
}

TEST(ConfigLoaderTest, EnvironmentVariableNamedLikeAGatewayVariableWarns) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  transform:\n"
                                     "    response_headers:\n"
                                     "      add: {X-A: \"${host}\"}\n"),
                            envOf({{"host", "box1"}}));
    ASSERT_TRUE(r.ok()) << describe(r);
    expectWarning(r, "middleware.transform.response_headers.add.X-A", "gateway variable host");
    EXPECT_EQ(r.config->middleware.transform->response_headers.add[0].second, "${host}");
}

TEST(ConfigLoaderTest, TransformRefusesProtectedNamesAndBadVariables) {
    LoadResult r = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  transform:\n"
                                     "    request_headers:\n"
                                     "      set: {Content-Length: \"1\", X-U: \"${upstream}\"}\n"
                                     "      add: {Host: \"h\"}\n"
                                     "      remove: [X-Forwarded-For, connection]\n"
                                     "    response_headers:\n"
                                     "      add: {X-Request-ID: \"x\"}\n"));
    expectError(r, "middleware.transform.request_headers.set.Content-Length", "framing");
    expectError(r, "middleware.transform.request_headers.set.X-U", "only known for responses");
    expectError(r, "middleware.transform.request_headers.add.Host", "Host can only be set");
    expectError(r, "middleware.transform.request_headers.remove[0]", "X-Forwarded-For");
    expectError(r, "middleware.transform.request_headers.remove[1]", "hop-by-hop");
    expectError(r, "middleware.transform.response_headers.add.X-Request-ID", "X-Request-ID");
    LoadResult v = loadYaml(baseYaml("", "", "",
                                     "middleware:\n"
                                     "  transform:\n"
                                     "    response_headers:\n"
                                     "      add: {X-V: \"${nope}\"}\n"));
    expectError(v, "middleware.transform.response_headers.add.X-V", "unknown variable '${nope}'");
}

}  // namespace
}  // namespace photon::master
