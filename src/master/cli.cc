// SPDX-License-Identifier: Apache-2.0
// Command-line parsing, help and version text.
#include "master/cli.h"

#include <cjson/cJSON.h>
#include <ev.h>
#include <openssl/opensslv.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <xxhash.h>
#include <yaml-cpp/yaml.h>

#include <boost/version.hpp>
#include <cstring>
#include <string_view>

#include "config.h"

namespace photon::master {

namespace {

bool takesValue(char c) { return c == 'c' || c == 'l' || c == 's'; }

const char* longToShort(std::string_view name) {
    struct Map {
        std::string_view lng;
        const char* shrt;
    };
    static constexpr Map kMap[] = {{"config", "c"},  {"log-level", "l"}, {"daemon", "d"},
                                   {"upgrade", "u"}, {"test", "t"},      {"signal", "s"},
                                   {"help", "h"},    {"version", "V"}};
    for (const auto& m : kMap) {
        if (m.lng == name) {
            return m.shrt;
        }
    }
    return nullptr;
}

std::string apply(CliOptions& o, char c, const std::string& v) {
    switch (c) {
        case 'c':
            if (v.empty()) {
                return "option -c/--config needs a file name";
            }
            o.config_path = v;
            return {};
        case 'l':
            if (v != "error" && v != "warn" && v != "info" && v != "debug" && v != "trace") {
                return "invalid log level '" + v + "' (expected error, warn, info, debug or trace)";
            }
            o.log_level = v;
            return {};
        case 's':
            if (v != "reload" && v != "reopen" && v != "quit" && v != "stop" && v != "upgrade") {
                return "invalid signal '" + v +
                       "' (expected reload, reopen, quit, stop or upgrade)";
            }
            o.signal = v;
            return {};
        case 'd':
            o.daemon = true;
            return {};
        case 'u':
            o.upgrade = true;
            return {};
        case 't':
            o.test = true;
            return {};
        case 'h':
            o.help = true;
            return {};
        case 'V':
            o.version = true;
            return {};
        default:
            return std::string("unknown option -") + c;
    }
}

}  // namespace

CliParse parseCli(int argc, const char* const* argv) {
    CliParse r;
    r.opts.config_path = PHOTON_CONF_PATH;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.size() > 2 && a.substr(0, 2) == "--") {
            std::string_view name = a.substr(2);
            std::string value;
            bool has_inline = false;
            if (auto eq = name.find('='); eq != std::string_view::npos) {
                value = std::string(name.substr(eq + 1));
                name = name.substr(0, eq);
                has_inline = true;
            }
            const char* s = longToShort(name);
            if (s == nullptr) {
                r.error = "unknown option --" + std::string(name);
                return r;
            }
            if (takesValue(s[0])) {
                if (!has_inline) {
                    if (i + 1 >= argc) {
                        r.error = "option --" + std::string(name) + " needs a value";
                        return r;
                    }
                    value = argv[++i];
                }
            } else if (has_inline) {
                r.error = "option --" + std::string(name) + " takes no value";
                return r;
            }
            if (auto e = apply(r.opts, s[0], value); !e.empty()) {
                r.error = e;
                return r;
            }
        } else if (a.size() > 1 && a[0] == '-' && a != "--") {
            for (size_t k = 1; k < a.size(); ++k) {
                char c = a[k];
                if (!std::strchr("cldutshV", c)) {
                    r.error = std::string("unknown option -") + c;
                    return r;
                }
                std::string value;
                if (takesValue(c)) {
                    if (k + 1 < a.size()) {
                        value = std::string(a.substr(k + 1));
                    } else if (i + 1 < argc) {
                        value = argv[++i];
                    } else {
                        r.error = std::string("option -") + c + " needs a value";
                        return r;
                    }
                    if (auto e = apply(r.opts, c, value); !e.empty()) {
                        r.error = e;
                        return r;
                    }
                    break;  // the rest of this word was the value
                }
                if (auto e = apply(r.opts, c, value); !e.empty()) {
                    r.error = e;
                    return r;
                }
            }
        } else {
            r.error = "unexpected argument '" + std::string(a) + "'";
            return r;
        }
    }
    return r;
}

std::string usageText() {
    return "usage: photon [-c FILE] [-l LEVEL] [-d] [-u] [-t] [-s SIGNAL] [-h] [-V]\n"
           "try 'photon --help' for more information\n";
}

std::string helpText() {
    std::string s;
    s += "photon " PHOTON_VERSION " - high-performance API gateway\n\n";
    s += usageText().substr(0, usageText().find('\n') + 1);
    s += R"(
Options:
  -c, --config FILE     configuration file; the format follows the suffix:
                        .yaml/.yml (YAML), .json (JSON), .toml (TOML)
                        [default: )" PHOTON_CONF_PATH R"(]
  -l, --log-level LEVEL error, warn, info, debug or trace; overrides
                        server.log_level from the configuration
  -d, --daemon          detach from the terminal, write the pid file and log to
                        server.error_log
  -u, --upgrade         take over the listening sockets of a running instance
                        through server.upgrade_sock (zero-downtime restart)
  -t, --test            load and validate the configuration, print every error
                        and warning, then exit: 0 if valid, 1 if not; opens no
                        socket and writes no file
  -s, --signal SIGNAL   send SIGNAL to the running master (found through its
                        pid file) and exit:
                          stop    fast shutdown (SIGTERM)
                          quit    graceful shutdown (SIGQUIT): stop accepting,
                                  finish in-flight requests, then exit
                          reload  re-read the configuration (SIGHUP)
                          reopen  reopen the log files (SIGUSR1)
                          upgrade start the binary now installed at the same
                                  path on the same sockets (SIGUSR2), then
                                  stop the old one gracefully (SIGQUIT)
  -h, --help            print this help and exit
  -V, --version         print the version and build options and exit

Signals understood by the master process:
  TERM, INT   fast shutdown          QUIT   graceful shutdown
  HUP         reload configuration   USR1   reopen log files
  USR2        start a new binary     WINCH  stop the workers gracefully

Environment:
  ${VAR} and ${VAR:-default} in configuration values are replaced from the
  environment; $${ writes a literal ${.

Exit status: 0 on success, 1 on a configuration or start-up error,
2 on a command-line usage error.

See photon(8) and photon.conf(5).
)";
    return s;
}

std::string versionText() {
    std::string s = "photon version " PHOTON_VERSION "\n";
    s += "configure arguments: " PHOTON_CONFIGURE_ARGS "\n";
    s += "built with: g++ " __VERSION__;
#if PHOTON_WITH_SANITIZERS
    s += ", ASan+UBSan";
#endif
    s += "\nlibraries: ";
    s += "libev " + std::to_string(ev_version_major()) + "." + std::to_string(ev_version_minor());
    s += ", " OPENSSL_VERSION_TEXT;
    s += ", PCRE2 " + std::to_string(PCRE2_MAJOR) + "." + std::to_string(PCRE2_MINOR);
    s += ", xxHash " + std::to_string(XXH_versionNumber() / 10000) + "." +
         std::to_string(XXH_versionNumber() / 100 % 100) + "." +
         std::to_string(XXH_versionNumber() % 100);
    s += ", cJSON ";
    s += cJSON_Version();
    s += ", Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
         std::to_string(BOOST_VERSION / 100 % 1000);
    s += ", yaml-cpp, toml++, prometheus-cpp\n";
    s += "features: HTTP/1.1 proxy, YAML/JSON/TOML configuration, shared-memory state\n";
    return s;
}

}  // namespace photon::master
