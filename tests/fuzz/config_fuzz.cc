// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the configuration front ends (YAML, JSON, TOML) and the whole load path
// behind them: ${ENV} substitution, typed decoding, module blocks and validation. The first input
// byte picks the format; the rest is the document.
// Properties: nothing crashes, hangs or trips a sanitizer; a load either yields a config and no
// error or errors and no config, every diagnostic formats; an accepted config dumps (the
// `photon -t -l debug` summary, masked and unmasked), and the unmasked dump loads back as YAML to
// an equal model (but for the Redis passwords, which no dump shows) whose dump is the same text.
// fuzz-sources: all
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "master/config_loader.h"

using namespace photon;

namespace {

// A fixed environment, so that substitutions reach typed keys (ports, durations, booleans),
// empty values (for ${VAR:-default}) and values that themselves hold "${".
std::optional<std::string> fakeEnv(const std::string& name) {
    static const struct {
        const char* name;
        const char* value;
    } kVars[] = {
        {"PORT", "8080"},
        {"HOST", "127.0.0.1"},
        {"ADDR", "127.0.0.1:9001"},
        {"DUR", "30s"},
        {"BOOL", "true"},
        {"EMPTY", ""},
        {"NAME", "api"},
        {"SECRET", "s3cr3t-value-for-hs256-at-least-32b"},
        {"DOLLAR", "${x}"},
        {"PATH_PREFIX", "/api"},
        {"VAR", "value"},
        {"API_KEY_1", "sk-test-0123456789"},
    };
    for (const auto& v : kVars) {
        if (name == v.name) {
            return std::string(v.value);
        }
    }
    return std::nullopt;
}

// Names ending in ".invalid" do not resolve (RFC 6761); everything else does. Never blocks.
bool fakeResolve(const std::string& host) {
    return host.size() < 8 || host.compare(host.size() - 8, 8, ".invalid") != 0;
}

const master::EnvLookup kEnv = fakeEnv;
const master::HostResolver kResolver = fakeResolve;
const master::EnvLookup kNoEnv = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
};

bool hasError(const master::LoadResult& r) {
    for (const auto& d : r.diagnostics) {
        if (d.severity == master::Diagnostic::Severity::Error) {
            return true;
        }
    }
    return false;
}

void checkResult(const master::LoadResult& r) {
    for (const auto& d : r.diagnostics) {
        FUZZ_CHECK(!d.format().empty());
    }
    FUZZ_CHECK(r.ok() != hasError(r));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > 64 * 1024) {
        return 0;
    }
    static const char* const kFormats[] = {"yaml", "json", "toml"};
    const char* format = kFormats[data[0] % 3];
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    master::LoadResult a = master::loadConfigString(text, format, "fuzz", kEnv, kResolver);
    checkResult(a);
    if (!a.ok()) {
        return 0;
    }
    FUZZ_CHECK(!master::dumpConfigMasked(*a.config).empty());
    const std::string dump = master::dumpConfigUnmasked(*a.config);
    FUZZ_CHECK(!dump.empty());

    // The dump escapes what substitution would expand, so it needs no environment.
    master::LoadResult b = master::loadConfigString(dump, "yaml", "dump.yaml", kNoEnv, kResolver);
    checkResult(b);
    if (!b.ok()) {
        for (const auto& d : b.diagnostics) {
            std::fprintf(stderr, "%s\n", d.format().c_str());
        }
        std::fprintf(stderr, "--- dump:\n%s", dump.c_str());
    }
    FUZZ_CHECK(b.ok());
    // The Redis passwords are never shown, not even in the unmasked dump.
    for (auto field : {&core::RedisConfig::password, &core::RedisConfig::sentinel_password}) {
        if (!(a.config->redis.*field).empty()) {
            FUZZ_CHECK(b.config->redis.*field == "****");
            b.config->redis.*field = a.config->redis.*field;
        }
    }
    if (!(*a.config == *b.config)) {
        const core::Config& x = *a.config;
        const core::Config& y = *b.config;
        std::fprintf(stderr, "models differ in:%s%s%s%s%s%s%s%s\n",
                     x.server == y.server ? "" : " server",
                     x.load_balancing == y.load_balancing ? "" : " load_balancing",
                     x.routes == y.routes ? "" : " routes",
                     x.middleware == y.middleware ? "" : " middleware",
                     x.health_check == y.health_check ? "" : " health_check",
                     x.metrics == y.metrics ? "" : " metrics", x.cache == y.cache ? "" : " cache",
                     x.redis == y.redis ? "" : " redis");
        std::fprintf(stderr, "--- dump:\n%s", dump.c_str());
    }
    FUZZ_CHECK(*a.config == *b.config);
    FUZZ_CHECK(master::dumpConfigUnmasked(*b.config) == dump);
    return 0;
}
