// SPDX-License-Identifier: Apache-2.0
// photon(8) entry point: command line, configuration test, signals to a running master, start.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "config.h"
#include "core/config.h"
#include "core/log.h"
#include "master/cli.h"
#include "master/config_loader.h"
#include "master/master.h"
#include "master/process.h"
#include "master/runtime.h"
#include "modules/tls/server_tls.h"
#include "worker/proxy.h"

using namespace photon;

namespace {

/// Prints every diagnostic on stderr, errors first kept in file order. Returns the error count.
size_t printDiagnostics(const master::LoadResult& r) {
    size_t errors = 0;
    for (const auto& d : r.diagnostics) {
        bool err = d.severity == master::Diagnostic::Severity::Error;
        errors += err ? 1 : 0;
        std::fprintf(stderr, "photon: [%s] %s\n", err ? "error" : "warn", d.format().c_str());
    }
    return errors;
}

}  // namespace

int main(int argc, char** argv) {
    master::saveCommandLine(argc, argv);  // before the title overwrites argv
    master::CliParse cli = master::parseCli(argc, argv);
    master::ProcTitle::init(argc, argv);
    if (!cli.error.empty()) {
        std::fprintf(stderr, "photon: %s\n%s", cli.error.c_str(), master::usageText().c_str());
        return 2;
    }
    const master::CliOptions& o = cli.opts;
    if (o.help) {
        std::fputs(master::helpText().c_str(), stdout);
        return 0;
    }
    if (o.version) {
        std::fputs(master::versionText().c_str(), stdout);
        return 0;
    }
    core::LogLevel level = core::LogLevel::Info;
    if (o.log_level) {
        core::parseLogLevel(*o.log_level, level);
    }
    core::setLogLevel(level);

    master::LoadResult loaded = master::loadConfigFile(o.config_path);
    if (o.signal == "reload") {
        // Validated here first, as `photon -t` would: a file with errors is reported now and
        // never reaches the running gateway.
        size_t errors = printDiagnostics(loaded);
        if (loaded.ok()) {
            std::vector<std::string> warnings;
            if (auto r = worker::Proxy::checkRoutes(*loaded.config, warnings); !r.ok()) {
                std::fprintf(stderr, "photon: [error] %s: %s\n", o.config_path.c_str(),
                             r.error().msg.c_str());
                ++errors;
            }
            if (auto r = master::buildServerTls(*loaded.config, warnings); !r.ok()) {
                std::fprintf(stderr, "photon: [error] %s: %s\n", o.config_path.c_str(),
                             r.error().msg.c_str());
                ++errors;
            }
        }
        if (errors != 0 || !loaded.ok()) {
            std::fprintf(stderr,
                         "photon: configuration file %s has %zu error%s; reload not sent, the "
                         "running configuration stays\n",
                         o.config_path.c_str(), errors, errors == 1 ? "" : "s");
            return 1;
        }
        return master::reloadCommand(master::pidPathOf(*loaded.config));
    }
    if (o.signal == "upgrade") {
        if (!loaded.ok()) {
            printDiagnostics(loaded);
            std::fprintf(stderr, "photon: configuration file %s has errors; no upgrade\n",
                         o.config_path.c_str());
            return 1;
        }
        return master::upgradeCommand(master::pidPathOf(*loaded.config));
    }
    if (!o.signal.empty()) {
        // The pid file comes from the configuration when it loads, else the built-in default.
        std::string pid_path = loaded.ok() ? master::pidPathOf(*loaded.config) : PHOTON_PID_PATH;
        return master::sendSignalCommand(o.signal, pid_path);
    }
    size_t errors = printDiagnostics(loaded);
    if (loaded.ok()) {
        // Route patterns are compiled as the workers will use them.
        std::vector<std::string> warnings;
        auto r = worker::Proxy::checkRoutes(*loaded.config, warnings);
        // Certificates and keys loaded as the master will load them (mismatches, bad files).
        auto tls = master::buildServerTls(*loaded.config, warnings);
        for (const auto& w : warnings) {
            std::fprintf(stderr, "photon: [warn] %s: %s\n", o.config_path.c_str(), w.c_str());
        }
        for (const auto* e : {r.ok() ? nullptr : &r.error(), tls.ok() ? nullptr : &tls.error()}) {
            if (e != nullptr) {
                std::fprintf(stderr, "photon: [error] %s: %s\n", o.config_path.c_str(),
                             e->msg.c_str());
                loaded.config.reset();
                ++errors;
            }
        }
    }
    if (o.test) {
        if (loaded.ok() && level >= core::LogLevel::Debug) {
            std::fputs(master::dumpConfigMasked(*loaded.config).c_str(), stdout);
        }
        if (loaded.ok()) {
            // The original's health-check default, which its own binary never ran: say what it
            // means here, since an application without /health would be marked down.
            for (const auto& b : loaded.config->load_balancing.backends) {
                if (b.health_check.enabled && !b.health_check.configured) {
                    std::fprintf(stderr,
                                 "photon: [notice] backend %s: no health_check block, so its "
                                 "upstreams are checked with GET /health and must answer 200; "
                                 "set health_check.path, check_type: tcp or enabled: false if "
                                 "they do not serve it\n",
                                 b.name.c_str());
                }
            }
            std::fprintf(stderr, "photon: configuration file %s test is successful\n",
                         o.config_path.c_str());
            return 0;
        }
        std::fprintf(stderr, "photon: configuration file %s test failed (%zu error%s)\n",
                     o.config_path.c_str(), errors, errors == 1 ? "" : "s");
        return 1;
    }
    if (!loaded.ok()) {
        std::fprintf(stderr, "photon: configuration file %s has %zu error%s; not starting\n",
                     o.config_path.c_str(), errors, errors == 1 ? "" : "s");
        return 1;
    }
    master::applyRuntimeLogSettings(*loaded.config, o.log_level.has_value());
    master::Master m(o, std::move(loaded.config));
    return m.run();
}
