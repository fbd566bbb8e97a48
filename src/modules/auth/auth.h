// SPDX-License-Identifier: Apache-2.0
// The auth module at work: one compiled instance per configured authentication block (keys,
// policy, the worker's verified-credential cache) and the Access / HeaderFilter handlers.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "modules/auth/basic.h"
#include "modules/auth/credentials.h"
#include "modules/auth/jwks_shared.h"
#include "modules/auth/jwt.h"
#include "worker/request.h"

namespace photon::mod::auth {

/// One authentication block compiled for the data path (master, before fork; immutable after,
/// except the per-worker cache).
struct AuthInstance {
    core::AuthType type = core::AuthType::Jwt;
    std::string name;  // "default" or the instance name (logs)

    // ----- JWT -----
    JwtKeySet keys;
    JwtPolicy policy;
    std::string header = "Authorization";
    bool header_is_authorization = true;  // the Bearer scheme is required there
    std::string cookie;
    std::string query;
    std::vector<std::pair<std::string, std::optional<std::string>>> required_claims;
    // The claims taken from a verified token: the forwarded ones first (forward_lines[i] is
    // "Header: " for claims[i]), then those header transforms read as ${jwt.NAME}. At most 64.
    std::vector<std::string> claims;
    std::vector<std::string> forward_lines;

    // jwks_url: the published document (null without one, or under `photon -t`), and this
    // worker's parse of it.
    const JwksShm* jwks = nullptr;
    mutable uint64_t jwks_seen = 0;
    mutable std::unique_ptr<JwtKeySet> jwks_keys;

    // ----- API keys -----
    std::unique_ptr<ApiKeySet> api_keys;
    std::string key_header;
    std::string key_query;

    // ----- Basic -----
    std::unordered_map<std::string, std::string> users;  // user → crypt(3) hash
    std::string dummy_hash;  // checked for unknown users, so both cost the same
    std::string basic_challenge;

    // ----- common -----
    std::string consumer_line;  // "X-Consumer: " or empty
    // Client fields the upstream never sees from the client: forwarded claims, the consumer
    // header, and the credential when it is not forwarded.
    std::vector<std::string> drop_names;
    std::vector<std::string_view> drop;
    uint64_t drop_mask = 0;
    uint64_t cache_ttl_us = 0;
    mutable std::unique_ptr<VerifiedCache> cache;  // per worker, created on first use

    /// `variable_claims`: the claims header transforms read (${jwt.NAME}), published to them.
    static core::Result<std::shared_ptr<AuthInstance>> compile(
        const core::AuthConfig& c, std::string_view instance,
        const std::vector<std::string>& variable_claims = {});

};

/// A route's reference to its instance.
struct AuthConf final : worker::ModuleConf {
    std::shared_ptr<const AuthInstance> inst;
    uint16_t slot = 0;
};

worker::Verdict accessHandler(worker::Request& req, const void* conf);
worker::Verdict headerHandler(worker::Request& req, const void* conf);

/// The claim names header transforms anywhere in `cfg` read as ${jwt.NAME}.
std::vector<std::string> transformClaimNames(const core::Config& cfg);

/// `query` without the parameters whose decoded name is `name`, written to `out` (at least
/// query.size() bytes); returns its length.
size_t removeQueryParam(std::string_view query, std::string_view name, char* out);

}  // namespace photon::mod::auth
