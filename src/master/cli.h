// SPDX-License-Identifier: Apache-2.0
// Command-line parsing for the photon binary (master side).
#pragma once

#include <optional>
#include <string>

namespace photon::master {

/// What the command line asked for. Filled by parseCli(); defaults are the compiled-in ones.
struct CliOptions {
    std::string config_path;               // -c/--config; default: the configured --conf-path
    std::optional<std::string> log_level;  // -l/--log-level, validated
    bool daemon = false;                   // -d/--daemon
    bool upgrade = false;  // -u/--upgrade: take listening sockets over from an old master
    bool test = false;     // -t/--test: load + validate, print diagnostics, exit
    std::string signal;    // -s/--signal: reload|reopen|quit|stop
    bool help = false;     // -h/--help
    bool version = false;  // -V/--version
};

/// Outcome of parsing: options, or a usage error message (the caller prints usage on stderr and
/// exits 2).
struct CliParse {
    CliOptions opts;
    std::string error;  // empty on success
};

/// Parses argv. Accepts short and long forms, `--opt=value` and `--opt value`, and combined
/// short flags without values (`-td`). Never exits or prints.
CliParse parseCli(int argc, const char* const* argv);

/// The full --help text (man-page quality: every option and signal, defaults included).
std::string helpText();
/// One-paragraph usage for errors.
std::string usageText();
/// -V output: version, build options and the versions of the libraries linked in.
std::string versionText();

}  // namespace photon::master
