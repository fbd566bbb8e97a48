// SPDX-License-Identifier: Apache-2.0
// libphoton: the Photon API gateway as a library.
//
//   #include <photon/photon.h>
//
//   int main() {
//       try {
//           photon::Gateway gateway(photon::Config::fromFile("/etc/photon/photon.yaml"));
//           return gateway.run();
//       } catch (const photon::ConfigError& e) {
//           std::fprintf(stderr, "%s\n", e.what());
//           return 1;
//       }
//   }
//
// Build with `pkg-config --cflags --libs photon` (shared) or `pkg-config --static ...`.
//
// Gateway::run() makes the calling process the master: it binds the listeners, creates the
// shared-memory segments and forks the worker processes (and the health-check helper), which are
// copies of the calling program. It returns when the gateway has stopped. The master handles the
// same signals as the photon(8) daemon (HUP reload, QUIT graceful stop, TERM/INT fast stop, USR1
// reopen logs, USR2 binary upgrade, WINCH), so it owns the process's signal dispositions while it
// runs (it blocks them in the calling thread and waits for them; SIGPIPE is ignored). One Gateway
// runs per process at a time. In a program with other threads, block SIGHUP, SIGQUIT, SIGTERM,
// SIGINT, SIGUSR1, SIGUSR2, SIGWINCH and SIGCHLD in them (pthread_sigmask before creating them) so
// that these signals reach the master. Nothing here is thread-safe except the static request*()
// functions, which only send a signal to the calling process.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#define PHOTON_API __attribute__((visibility("default")))

namespace photon {

namespace core {
struct Config;
}

/// Version of the library ("0.1.0").
PHOTON_API const char* version();

/// A configuration that failed to load: what() is every error, one per line, as `photon -t`
/// prints them ("file:line:col: key.path: message").
class PHOTON_API ConfigError : public std::runtime_error {
public:
    ConfigError(const std::string& what, std::vector<std::string> errors);
    ~ConfigError() override;
    /// The errors, one entry each.
    const std::vector<std::string>& errors() const noexcept { return errors_; }

private:
    std::vector<std::string> errors_;
};

/// A loaded and fully validated configuration (YAML, JSON or TOML, chosen by the file's
/// extension; ${VAR} substituted from the environment), as `photon -t` checks it.
class PHOTON_API Config {
public:
    /// Loads `path`. Throws ConfigError listing every error found; warnings are kept.
    static Config fromFile(const std::string& path);

    Config(Config&&) noexcept;
    Config& operator=(Config&&) noexcept;
    ~Config();

    /// The file it was loaded from; a reload (SIGHUP) reads this file again.
    const std::string& path() const noexcept;
    /// Warnings of the load ("file:line:col: key.path: message"), in file order.
    const std::vector<std::string>& warnings() const noexcept;
    /// The configuration as `photon -t -l debug` prints it, secrets masked.
    std::string dump() const;

private:
    Config();
    friend class Gateway;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The gateway: a master process with its workers, run in the calling program.
class PHOTON_API Gateway {
public:
    struct Options {
        /// Detach from the terminal first, as `photon -d`: the calling process exits (status 0
        /// once the gateway serves, 1 if it failed to start) and run() goes on in the detached
        /// child.
        bool daemon = false;
        /// "error", "warn", "info" or "debug"; empty keeps server.log_level of the file.
        std::string log_level;
    };

    explicit Gateway(Config config);
    Gateway(Config config, Options options);
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;
    ~Gateway();

    /// Runs until the gateway stops (QUIT, TERM, INT or requestStop()). Returns the exit status
    /// photon(8) would have (0 after a clean stop). May be called once.
    int run();

    /// Asks the running gateway of this process to stop: graceful (in-flight requests finish
    /// within server.shutdown_timeout) or fast. Async-signal-safe; callable from any thread.
    static void requestStop(bool graceful = true) noexcept;
    /// Asks the running gateway of this process to reload its configuration file.
    static void requestReload() noexcept;

private:
    Options options_;
    std::unique_ptr<core::Config> config_;
    std::string path_;
    bool ran_ = false;
};

}  // namespace photon
