// SPDX-License-Identifier: Apache-2.0
// Validation of the auth middleware's keys.
#include "modules/auth/config.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

namespace photon::mod::auth {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decodeAuth(const ConfigNode& node, const std::string& path,
                    std::optional<core::AuthConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        core::AuthConfig a;
        bool type_ok = false;
        if (const ConfigNode* t = r.require("auth_type")) {
            std::string s;
            if (ctx_.convert(*t, r.path("auth_type"), s)) {
                if (s == "jwt") {
                    a.auth_type = core::AuthType::Jwt;
                    type_ok = true;
                } else if (s == "api_key") {
                    a.auth_type = core::AuthType::ApiKey;
                    type_ok = true;
                } else if (s == "basic") {
                    ctx_.error(*t, r.path("auth_type"),
                               "auth_type 'basic' is not supported: it has no credential "
                               "configuration (the original product accepted any credentials); "
                               "use 'jwt' or 'api_key'");
                } else {
                    std::string hint = didYouMean(s, {"jwt", "api_key"});
                    ctx_.error(*t, r.path("auth_type"),
                               "unknown auth_type " + quoted(s) +
                                   (hint.empty() ? " (expected jwt or api_key)" : hint));
                }
            }
        }
        bool ok = type_ok;
        if (const ConfigNode* j = r.get("jwt")) {
            ok = decodeJwt(*j, r.path("jwt"), a.jwt) && ok;
        }
        if (const ConfigNode* k = r.get("api_key")) {
            ok = decodeApiKey(*k, r.path("api_key"), a.api_key) && ok;
        }
        if (type_ok) {
            bool jwt = a.auth_type == core::AuthType::Jwt;
            const char* need = jwt ? "jwt" : "api_key";
            const char* other = jwt ? "api_key" : "jwt";
            if (node.find(need) == nullptr || node.find(need)->isNull()) {
                ctx_.error(r.markOf("auth_type"), r.path(need),
                           std::string("auth_type '") + need + "' requires a " + path + "." + need +
                               " block");
                ok = false;
            }
            if (node.find(other) != nullptr) {
                ctx_.warn(r.markOf(other), r.path(other),
                          std::string("ignored because auth_type is '") + need + "'");
            }
        }
        if (ok) {
            out = std::move(a);
        }
    }

    bool decodeJwt(const ConfigNode& node, const std::string& path,
                   std::optional<core::JwtConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::JwtConfig j;
        bool ok = r.req("secret", j.secret);
        if (ok && j.secret.empty()) {
            ctx_.error(r.markOf("secret"), r.path("secret"), "must not be empty");
            ok = false;
        }
        if (const ConfigNode* a = r.require("algorithm")) {
            std::string s;
            if (!ctx_.convert(*a, r.path("algorithm"), s)) {
                ok = false;
            } else if (s == "HS256" || s == "HS384" || s == "HS512") {
                j.algorithm = s == "HS256"   ? core::JwtAlgorithm::HS256
                              : s == "HS384" ? core::JwtAlgorithm::HS384
                                             : core::JwtAlgorithm::HS512;
            } else if (s == "RS256" || s == "RS384" || s == "RS512" || s == "ES256" ||
                       s == "ES384" || s == "ES512" || s == "PS256" || s == "PS384" ||
                       s == "PS512" || s == "EdDSA") {
                ctx_.error(*a, r.path("algorithm"),
                           "JWT algorithm " + quoted(s) +
                               " is not supported yet (supported: HS256, HS384, HS512)");
                ok = false;
            } else {
                std::string hint = didYouMean(s, {"HS256", "HS384", "HS512"});
                ctx_.error(*a, r.path("algorithm"),
                           "unknown JWT algorithm " + quoted(s) +
                               (hint.empty() ? " (supported: HS256, HS384, HS512)" : hint));
                ok = false;
            }
        } else {
            ok = false;
        }
        ok = readHeaderName(r, "header", j.header) && ok;
        ok = r.opt("leeway", j.leeway) && ok;
        ok = r.opt("issuer", j.issuer) && ok;
        ok = r.opt("audience", j.audience) && ok;
        if (ok) {
            size_t min = j.algorithm == core::JwtAlgorithm::HS256   ? 32
                         : j.algorithm == core::JwtAlgorithm::HS384 ? 48
                                                                    : 64;
            if (j.secret.size() < min) {
                ctx_.warn(r.markOf("secret"), r.path("secret"),
                          "shorter than " + std::to_string(min) + " bytes, the minimum key size " +
                              "RFC 7518 sets for " + std::string(jwtAlgorithmName(j.algorithm)));
            }
            out = std::move(j);
        }
        return ok;
    }

    bool decodeApiKey(const ConfigNode& node, const std::string& path,
                      std::optional<core::ApiKeyConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::ApiKeyConfig k;
        bool ok = true;
        if (const ConfigNode* keys = r.require("keys")) {
            if (!keys->isList()) {
                // Do not echo the value: it is probably a key.
                ctx_.error(*keys, r.path("keys"),
                           "expected a list of keys, e.g. [\"key1\", \"key2\"]");
                ok = false;
            } else {
                ok = ctx_.convert(*keys, r.path("keys"), k.keys);
                if (ok && k.keys.empty()) {
                    ctx_.warn(*keys, r.path("keys"), "no keys: every request will be rejected");
                }
                for (size_t i = 0; ok && i < k.keys.size(); ++i) {
                    if (k.keys[i].empty()) {
                        ctx_.error(keys->item(i), indexPath(r.path("keys"), i),
                                   "an API key must not be empty");
                        ok = false;
                    }
                }
            }
        } else {
            ok = false;
        }
        ok = readHeaderName(r, "header", k.header) && ok;
        ok = r.opt("query", k.query) && ok;
        if (ok && k.query && k.query->empty()) {
            ctx_.error(r.markOf("query"), r.path("query"), "must not be empty");
            ok = false;
        }
        if (ok) {
            out = std::move(k);
        }
        return ok;
    }

private:
    Ctx& ctx_;
};

}  // namespace

void decodeAuth(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                std::optional<core::AuthConfig>& out) {
    Decoder(ctx).decodeAuth(node, path, out);
}

}  // namespace photon::mod::auth
