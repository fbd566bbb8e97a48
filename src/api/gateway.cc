// SPDX-License-Identifier: Apache-2.0
// libphoton's public interface (include/photon/photon.h) over the master's own code paths: the
// same load and validation as `photon -t`, the same Master as photon(8).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "config.h"
#include "core/config.h"
#include "core/log.h"
#include "master/cli.h"
#include "master/config_loader.h"
#include "master/master.h"
#include "master/runtime.h"
#include "modules/tls/server_tls.h"
#include "photon/photon.h"
#include "worker/proxy.h"

namespace photon {

const char* version() { return PHOTON_VERSION; }

ConfigError::ConfigError(const std::string& what, std::vector<std::string> errors)
    : std::runtime_error(what), errors_(std::move(errors)) {}
ConfigError::~ConfigError() = default;

struct Config::Impl {
    std::unique_ptr<core::Config> config;
    std::string path;
    std::vector<std::string> warnings;
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Config Config::fromFile(const std::string& path) {
    master::LoadResult loaded = master::loadConfigFile(path);
    Config c;
    c.impl_->path = path;
    std::vector<std::string> errors;
    for (const auto& d : loaded.diagnostics) {
        (d.severity == master::Diagnostic::Severity::Error ? errors : c.impl_->warnings)
            .push_back(d.format());
    }
    if (loaded.ok()) {
        // Route patterns compiled as the workers will compile them, as `photon -t` does.
        std::vector<std::string> warnings;
        auto r = worker::Proxy::checkRoutes(*loaded.config, warnings);
        for (auto& w : warnings) {
            c.impl_->warnings.push_back(path + ": " + w);
        }
        if (!r.ok()) {
            errors.push_back(path + ": " + r.error().msg);
        }
        std::vector<std::string> tls_warnings;
        if (auto t = master::buildServerTls(*loaded.config, tls_warnings); !t.ok()) {
            errors.push_back(path + ": " + t.error().msg);
        }
        for (auto& w : tls_warnings) {
            c.impl_->warnings.push_back(path + ": " + w);
        }
    }
    if (!loaded.ok() || !errors.empty()) {
        std::string what = "configuration file " + path + " has " +
                           std::to_string(errors.size()) +
                           (errors.size() == 1 ? " error" : " errors");
        for (const auto& e : errors) {
            what += "\n" + e;
        }
        throw ConfigError(what, std::move(errors));
    }
    c.impl_->config = std::move(loaded.config);
    return c;
}

const std::string& Config::path() const noexcept { return impl_->path; }
const std::vector<std::string>& Config::warnings() const noexcept { return impl_->warnings; }
std::string Config::dump() const { return master::dumpConfigMasked(*impl_->config); }

Gateway::Gateway(Config config) : Gateway(std::move(config), Options{}) {}

Gateway::Gateway(Config config, Options options)
    : options_(std::move(options)),
      config_(std::move(config.impl_->config)),
      path_(std::move(config.impl_->path)) {
    if (!config_) {
        throw std::invalid_argument("photon::Gateway: the Config was already used");
    }
    core::LogLevel level{};
    if (!options_.log_level.empty() && !core::parseLogLevel(options_.log_level, level)) {
        throw std::invalid_argument("photon::Gateway: unknown log level '" + options_.log_level +
                                    "' (error, warn, info or debug)");
    }
}

Gateway::~Gateway() = default;

namespace {

/// A binary upgrade (USR2) starts the program again with the same arguments, as photon(8) does;
/// the embedding program did not hand them over, so they come from the kernel.
void saveOwnCommandLine() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    size_t start = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        if (all[i] == '\0') {
            args.emplace_back(all, start, i - start);
            start = i + 1;
        }
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    master::saveCommandLine(static_cast<int>(args.size()), argv.data());
}

}  // namespace

int Gateway::run() {
    if (ran_ || !config_) {
        throw std::logic_error("photon::Gateway::run: may be called once");
    }
    ran_ = true;
    saveOwnCommandLine();
    master::CliOptions cli;
    cli.config_path = path_;
    cli.daemon = options_.daemon;
    if (!options_.log_level.empty()) {
        cli.log_level = options_.log_level;
        core::LogLevel level{};
        core::parseLogLevel(options_.log_level, level);
        core::setLogLevel(level);
    }
    master::applyRuntimeLogSettings(*config_, cli.log_level.has_value());
    sigset_t before;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &before);
    int code;
    {
        master::Master m(std::move(cli), std::move(config_));
        code = m.run();
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);  // the master blocked its signals
    return code;
}

void Gateway::requestStop(bool graceful) noexcept { ::kill(::getpid(), graceful ? SIGQUIT : SIGTERM); }

void Gateway::requestReload() noexcept { ::kill(::getpid(), SIGHUP); }

}  // namespace photon
