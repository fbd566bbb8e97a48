// SPDX-License-Identifier: Apache-2.0
// Configuration loading: file → ConfigNode (YAML/JSON/TOML front end) → env substitution →
// typed core::Config → validation, with every problem reported as a located Diagnostic.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/config_node.h"
#include "core/config_reader.h"

namespace photon::master {

/// One problem found while loading (see core/config_reader.h).
using Diagnostic = core::cfg::Diagnostic;

/// Outcome of a load. `config` is set only when there were no errors; `diagnostics` holds every
/// error and warning in the order found (all errors of one run are reported, not just the first).
struct LoadResult {
    std::unique_ptr<core::Config> config;
    std::vector<Diagnostic> diagnostics;

    bool ok() const { return config != nullptr; }
    bool hasWarnings() const;
};

/// Looks up an environment variable; nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// getenv(3) of the calling process.
const EnvLookup& processEnv();

/// Decides whether an upstream DNS name resolves; called once per distinct name during a load.
/// Returning false produces a warning (decision: unresolvable names start unhealthy), never an
/// error.
using HostResolver = core::cfg::HostResolver;

/// getaddrinfo(3)-based resolver (blocking; fine in the master, never use it in a worker).
const HostResolver& systemResolver();

/// Loads the file at `path`. The format comes from the suffix, case-sensitively: `.yaml`/`.yml`
/// YAML, `.json` JSON, `.toml` TOML; anything else is an error listing the four suffixes. Every
/// string value goes through environment substitution before typing:
///   ${VAR}            the value of VAR; unset → error naming VAR and the key path
///   ${VAR:-default}   VAR's value, or `default` when VAR is unset or empty
///   $${               a literal "${"
/// A value that contained a substitution is typed by its key's schema, so `port: ${PORT}` works
/// where an integer is expected (a value written quoted stays a string otherwise).
/// Unknown keys are warnings (with a "did you mean" when a known key is close), except top-level
/// keys starting with "x-", which are reserved for extensions such as YAML anchors:
///   x-defaults: &defaults {read_timeout: 60s}     ...     - <<: *defaults
/// (YAML `<<` merge keys are supported; keys written in the map itself win.)
/// Relative paths inside the config (tls_cert, tls_key) are relative to the working directory.
/// Never throws; master-only (reads files, resolves names, compiles regexes).
LoadResult loadConfigFile(const std::string& path, const EnvLookup& env = processEnv(),
                          const HostResolver& resolver = systemResolver());

/// Same as loadConfigFile for in-memory text. `format` is "yaml", "json" or "toml";
/// `display_name` is used as the file name in diagnostics.
LoadResult loadConfigString(std::string_view text, std::string_view format,
                            const std::string& display_name, const EnvLookup& env = processEnv(),
                            const HostResolver& resolver = systemResolver());

/// Human-readable summary of the whole effective config (every field, defaults included) for
/// `photon -t -l debug`. Secrets — jwt.secret and every api_key.keys entry — print as "****".
std::string dumpConfigMasked(const core::Config& config);

/// Same summary with secrets in clear; for tests that compare models.
std::string dumpConfigUnmasked(const core::Config& config);

// ---------------------------------------------------------------------------------------------
// Front ends (one per format, each in its own .cc). Each turns text into a ConfigNode tree with
// 1-based source marks and document-ordered, duplicate-free maps, or reports syntax errors
// (with line:column) into `errors` and returns nullopt. They do no env substitution or typing.
// ---------------------------------------------------------------------------------------------

std::optional<core::ConfigNode> parseYamlDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors);
std::optional<core::ConfigNode> parseJsonDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors);
std::optional<core::ConfigNode> parseTomlDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors);

/// Environment substitution over every scalar of a tree (map keys are left alone), as described
/// at loadConfigFile. Scalars that contained a substitution become ScalarKind::Untyped.
/// Problems are appended to `diags` with the key path; returns false if any was an error.
bool substituteEnv(core::ConfigNode& root, const EnvLookup& env, std::vector<Diagnostic>& diags);

/// Levenshtein distance, used for "did you mean" hints.
using core::cfg::editDistance;

}  // namespace photon::master
