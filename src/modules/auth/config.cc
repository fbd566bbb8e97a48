// SPDX-License-Identifier: Apache-2.0
// Validation of the auth middleware's keys.
#include "modules/auth/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string_view>

#include "modules/auth/basic.h"
#include "modules/auth/jwks_fetch.h"
#include "modules/auth/jwt.h"

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
                if (s == "jwt" || s == "api_key" || s == "basic") {
                    a.auth_type = s == "jwt"       ? core::AuthType::Jwt
                                  : s == "api_key" ? core::AuthType::ApiKey
                                                   : core::AuthType::Basic;
                    type_ok = true;
                } else {
                    std::string hint = didYouMean(s, {"jwt", "api_key", "basic"});
                    ctx_.error(*t, r.path("auth_type"),
                               "unknown auth_type " + quoted(s) +
                                   (hint.empty() ? " (expected jwt, api_key or basic)" : hint));
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
        if (const ConfigNode* b = r.get("basic")) {
            ok = decodeBasic(*b, r.path("basic"), a.basic) && ok;
        }
        ok = r.opt("cache_ttl", a.cache_ttl) && ok;
        if (type_ok) {
            const char* need = a.auth_type == core::AuthType::Jwt      ? "jwt"
                               : a.auth_type == core::AuthType::ApiKey ? "api_key"
                                                                       : "basic";
            if (node.find(need) == nullptr || node.find(need)->isNull()) {
                ctx_.error(r.markOf("auth_type"), r.path(need),
                           std::string("auth_type '") + need + "' requires a " + path + "." + need +
                               " block");
                ok = false;
            }
            for (const char* other : {"jwt", "api_key", "basic"}) {
                if (std::string_view(other) != need && node.find(other) != nullptr) {
                    ctx_.warn(r.markOf(other), r.path(other),
                              std::string("ignored because auth_type is '") + need + "'");
                }
            }
        }
        if (ok) {
            out = std::move(a);
        }
    }

    /// A string or a list of strings, into `out`.
    bool stringOrList(MapReader& r, const char* key, std::vector<std::string>& out) {
        const ConfigNode* v = r.get(key);
        if (v == nullptr) {
            return true;
        }
        if (v->isList()) {
            return ctx_.convert(*v, r.path(key), out);
        }
        std::string s;
        if (!ctx_.convert(*v, r.path(key), s)) {
            return false;
        }
        out.push_back(std::move(s));
        return true;
    }

    bool algorithm(const ConfigNode& n, const std::string& path, core::JwtAlgorithm& out) {
        std::string s;
        if (!ctx_.convert(n, path, s)) {
            return false;
        }
        std::vector<std::string> names;
        for (size_t i = 0; i < std::size(core::kJwtAlgorithmNames); ++i) {
            if (s == core::kJwtAlgorithmNames[i]) {
                out = static_cast<core::JwtAlgorithm>(i);
                return true;
            }
            names.emplace_back(core::kJwtAlgorithmNames[i]);
        }
        std::string hint = didYouMean(s, names);
        ctx_.error(n, path,
                   "unknown JWT algorithm " + quoted(s) +
                       (hint.empty() ? " (supported: HS256, HS384, HS512, RS256, RS384, RS512, "
                                       "PS256, PS384, PS512, ES256, ES384, EdDSA)"
                                     : hint));
        return false;
    }

    bool decodeJwt(const ConfigNode& node, const std::string& path,
                   std::optional<core::JwtConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::JwtConfig j;
        bool ok = r.opt("secret", j.secret);
        if (ok && r.get("secret") != nullptr && j.secret.empty()) {
            ctx_.error(r.markOf("secret"), r.path("secret"), "must not be empty");
            return false;
        }
        ok = r.opt("secret_base64", j.secret_base64) && ok;
        ok = r.opt("public_key_file", j.public_key_file) && ok;
        ok = r.opt("jwks_file", j.jwks_file) && ok;
        ok = r.opt("jwks_url", j.jwks_url) && ok;
        ok = r.opt("jwks_ca_file", j.jwks_ca_file) && ok;
        ok = r.opt("jwks_refresh_interval", j.jwks_refresh_interval) && ok;
        ok = r.opt("jwks_timeout", j.jwks_timeout) && ok;
        if (ok && !j.jwks_url.empty()) {
            std::string host, port, target;
            if (!splitHttpsUrl(j.jwks_url, host, port, target)) {
                ctx_.error(r.markOf("jwks_url"), r.path("jwks_url"),
                           "expected an https:// URL with a host (https://host[:port]/path)");
                ok = false;
            } else if (!j.public_key_file.empty() || !j.jwks_file.empty()) {
                ctx_.error(r.markOf("jwks_url"), r.path("jwks_url"),
                           "jwks_url cannot be combined with public_key_file or jwks_file");
                ok = false;
            }
            if (j.jwks_refresh_interval < std::chrono::seconds(1) ||
                j.jwks_timeout < std::chrono::milliseconds(100) ||
                j.jwks_timeout > std::chrono::seconds(60)) {
                ctx_.error(r.markOf("jwks_refresh_interval"), r.path("jwks_refresh_interval"),
                           "jwks_refresh_interval must be at least 1s and jwks_timeout "
                           "100ms-60s");
                ok = false;
            }
        }
        // algorithm (the original's, one) or algorithms (a list): exactly one of them.
        const ConfigNode* one = r.get("algorithm");
        const ConfigNode* many = r.get("algorithms");
        if (one != nullptr && many != nullptr) {
            ctx_.error(*many, r.path("algorithms"), "give algorithm or algorithms, not both");
            ok = false;
        } else if (one != nullptr) {
            core::JwtAlgorithm a{};
            ok = algorithm(*one, r.path("algorithm"), a) && ok;
            j.algorithms.push_back(a);
        } else if (many != nullptr) {
            if (!many->isList() || many->size() == 0) {
                ctx_.error(*many, r.path("algorithms"),
                           "expected a non-empty list such as [RS256, ES256]");
                ok = false;
            } else {
                for (size_t i = 0; i < many->size(); ++i) {
                    core::JwtAlgorithm a{};
                    if (algorithm(many->item(i), indexPath(r.path("algorithms"), i), a)) {
                        if (std::find(j.algorithms.begin(), j.algorithms.end(), a) ==
                            j.algorithms.end()) {
                            j.algorithms.push_back(a);
                        }
                    } else {
                        ok = false;
                    }
                }
            }
        } else {
            ctx_.error(node.mark(), r.path("algorithm"),
                       "missing required key \"algorithm\" (or \"algorithms\", a list)");
            ok = false;
        }
        ok = readHeaderName(r, "header", j.header) && ok;
        ok = r.opt("cookie", j.cookie) && ok;
        ok = r.opt("query", j.query) && ok;
        for (const char* k : {"cookie", "query"}) {
            const std::string& v = std::string_view(k) == "cookie" ? j.cookie : j.query;
            if (!v.empty() && !isToken(v)) {
                ctx_.error(r.markOf(k), r.path(k), quoted(v) + " is not a valid name");
                ok = false;
            }
        }
        ok = r.opt("leeway", j.leeway) && ok;
        ok = stringOrList(r, "issuer", j.issuer) && ok;
        ok = stringOrList(r, "audience", j.audience) && ok;
        if (const ConfigNode* rc = r.get("required_claims")) {
            ok = requiredClaims(*rc, r.path("required_claims"), j.required_claims) && ok;
        }
        ok = r.opt("require_exp", j.require_exp) && ok;
        if (const ConfigNode* m = r.get("max_token_size")) {
            uint64_t v = 0;
            if (ctx_.integer(*m, r.path("max_token_size"), 64, 65536, v)) {
                j.max_token_size = static_cast<uint32_t>(v);
            } else {
                ok = false;
            }
        }
        if (const ConfigNode* fc = r.get("forward_claims")) {
            ok = forwardClaims(*fc, r.path("forward_claims"), j.forward_claims) && ok;
        }
        ok = r.opt("forward_token", j.forward_token) && ok;
        if (!ok) {
            return false;
        }
        // Which keys the algorithms need, and that they load.
        bool hmac = false;
        bool asym = false;
        for (auto a : j.algorithms) {
            (static_cast<int>(a) <= static_cast<int>(core::JwtAlgorithm::HS512) ? hmac : asym) =
                true;
        }
        if (j.secret_base64 && !j.secret.empty()) {
            std::string raw;
            if (!decodeBase64Any(j.secret, raw) || raw.empty()) {
                ctx_.error(r.markOf("secret"), r.path("secret"),
                           "secret_base64 is set but the secret is not valid base64");
                return false;
            }
        }
        const bool remote = !j.jwks_url.empty();
        if (hmac && j.secret.empty() && j.jwks_file.empty() && !remote) {
            ctx_.error(node.mark(), r.path("secret"),
                       "HS algorithms need a secret (or a jwks_file with \"oct\" keys)");
            ok = false;
        }
        if (asym && j.public_key_file.empty() && j.jwks_file.empty() && !remote) {
            ctx_.error(node.mark(), r.path("public_key_file"),
                       "RS/PS/ES/EdDSA algorithms need a public_key_file, a jwks_file or a "
                       "jwks_url");
            ok = false;
        }
        if (!j.secret.empty() && !hmac) {
            ctx_.warn(r.markOf("secret"), r.path("secret"),
                      "ignored: no HS algorithm is accepted");
        }
        if (!j.public_key_file.empty()) {
            auto ks = JwtKeySet::fromPemFile(j.public_key_file);
            if (!ks.ok()) {
                ctx_.error(r.markOf("public_key_file"), r.path("public_key_file"),
                           ks.error().msg);
                ok = false;
            } else if (!anyFits(ks.value(), j.algorithms)) {
                ctx_.error(r.markOf("public_key_file"), r.path("public_key_file"),
                           "the key fits none of the accepted algorithms");
                ok = false;
            }
        }
        if (!j.jwks_file.empty()) {
            auto ks = JwtKeySet::fromJwksFile(j.jwks_file);
            if (!ks.ok()) {
                ctx_.error(r.markOf("jwks_file"), r.path("jwks_file"), ks.error().msg);
                ok = false;
            } else if (!anyFits(ks.value(), j.algorithms)) {
                ctx_.error(r.markOf("jwks_file"), r.path("jwks_file"),
                           "no key of the document fits the accepted algorithms");
                ok = false;
            } else if (ks.value().skipped() != 0) {
                ctx_.warn(r.markOf("jwks_file"), r.path("jwks_file"),
                          std::to_string(ks.value().skipped()) +
                              " key(s) skipped (not for signatures, unknown type or algorithm, "
                              "or RSA under 2048 bits)");
            }
        }
        if (ok && hmac && !j.secret.empty()) {
            size_t bytes = j.secret.size();
            if (j.secret_base64) {
                std::string raw;
                decodeBase64Any(j.secret, raw);
                bytes = raw.size();
            }
            if (bytes < 32) {
                ctx_.warn(r.markOf("secret"), r.path("secret"),
                          "shorter than 32 bytes, the minimum key size RFC 7518 sets for HS256");
            }
        }
        if (ok) {
            out = std::move(j);
        }
        return ok;
    }

    static bool anyFits(const JwtKeySet& ks, const std::vector<core::JwtAlgorithm>& algs) {
        for (const auto& k : ks.keys()) {
            for (auto a : algs) {
                if (k.fits(static_cast<JwtAlg>(a))) {
                    return true;
                }
            }
        }
        return false;
    }

    bool requiredClaims(const ConfigNode& n, const std::string& path,
                        std::vector<std::pair<std::string, std::optional<std::string>>>& out) {
        if (n.isList()) {
            std::vector<std::string> names;
            if (!ctx_.convert(n, path, names)) {
                return false;
            }
            for (auto& name : names) {
                out.emplace_back(std::move(name), std::nullopt);
            }
            return true;
        }
        if (n.isMap()) {
            for (size_t i = 0; i < n.size(); ++i) {
                std::string v;
                if (!ctx_.convert(n.item(i), childPath(path, n.keyAt(i)), v)) {
                    return false;
                }
                out.emplace_back(n.keyAt(i), std::move(v));
            }
            return true;
        }
        ctx_.error(n, path,
                   "expected a list of claim names or a map of claim → required value");
        return false;
    }

    bool forwardClaims(const ConfigNode& n, const std::string& path,
                       std::vector<std::pair<std::string, std::string>>& out) {
        if (!n.isMap()) {
            ctx_.error(n, path, "expected a map of claim → header name, e.g. {sub: X-User-Id}");
            return false;
        }
        bool ok = true;
        for (size_t i = 0; i < n.size(); ++i) {
            std::string header;
            std::string p = childPath(path, n.keyAt(i));
            if (!ctx_.convert(n.item(i), p, header)) {
                ok = false;
                continue;
            }
            if (!isToken(header)) {
                ctx_.error(n.item(i), p, quoted(header) + " is not a valid header name");
                ok = false;
                continue;
            }
            out.emplace_back(n.keyAt(i), std::move(header));
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
        const ConfigNode* keys = r.get("keys");
        if (keys != nullptr) {
            if (!keys->isList()) {
                // Do not echo the value: it is probably a key.
                ctx_.error(*keys, r.path("keys"),
                           "expected a list of keys, e.g. [\"key1\", {key: \"key2\", name: "
                           "partner}]");
                ok = false;
            } else {
                for (size_t i = 0; i < keys->size(); ++i) {
                    ok = apiKeyEntry(keys->item(i), indexPath(r.path("keys"), i), k.keys) && ok;
                }
            }
        }
        ok = r.opt("keys_file", k.keys_file) && ok;
        if (ok && !k.keys_file.empty()) {
            ok = readKeysFile(k.keys_file, r.markOf("keys_file"), r.path("keys_file"),
                              k.file_keys);
        }
        if (keys == nullptr && k.keys_file.empty()) {
            ctx_.error(node.mark(), r.path("keys"), "missing required key \"keys\" (or keys_file)");
            ok = false;
        } else if (ok && k.keys.empty() && k.file_keys.empty()) {
            ctx_.warn(node.mark(), r.path("keys"), "no keys: every request will be rejected");
        }
        ok = readHeaderName(r, "header", k.header) && ok;
        ok = r.opt("query", k.query) && ok;
        if (ok && k.query && !isToken(*k.query)) {
            ctx_.error(r.markOf("query"), r.path("query"), "must be a valid parameter name");
            ok = false;
        }
        ok = r.opt("consumer_header", k.consumer_header) && ok;
        if (ok && !k.consumer_header.empty() && !isToken(k.consumer_header)) {
            ctx_.error(r.markOf("consumer_header"), r.path("consumer_header"),
                       "not a valid header name");
            ok = false;
        }
        ok = r.opt("forward_key", k.forward_key) && ok;
        if (ok) {
            out = std::move(k);
        }
        return ok;
    }

    /// A key as API clients send it: visible ASCII, no spaces (it travels in a header field).
    static bool validKey(std::string_view s) {
        return !s.empty() && s.size() <= 1024 &&
               std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    }

    bool apiKeyEntry(const ConfigNode& n, const std::string& path,
                     std::vector<core::ApiKeyConfig::Key>& out) {
        core::ApiKeyConfig::Key k;
        if (n.isMap()) {
            MapReader e(ctx_, &n, path);
            bool ok = e.req("key", k.key);
            ok = e.opt("name", k.name) && ok;
            if (!ok) {
                return false;
            }
        } else if (!ctx_.convert(n, path, k.key)) {
            return false;
        }
        if (!validKey(k.key)) {
            ctx_.error(n, path,
                       "an API key must be 1-1024 visible ASCII characters without spaces");
            return false;
        }
        if (!k.name.empty() && !validKey(k.name)) {
            ctx_.error(n, path, "a consumer name must be visible ASCII without spaces");
            return false;
        }
        out.push_back(std::move(k));
        return true;
    }

    bool readKeysFile(const std::string& file, core::SourceMark mark, const std::string& path,
                      std::vector<core::ApiKeyConfig::Key>& out) {
        std::string text;
        if (!readSmallFile(file, text)) {
            ctx_.error(mark, path, "cannot read " + quoted(file) + ": " + std::strerror(errno));
            return false;
        }
        size_t line_no = 0;
        size_t at = 0;
        while (at < text.size()) {
            size_t nl = text.find('\n', at);
            std::string_view line(text.data() + at,
                                  (nl == std::string::npos ? text.size() : nl) - at);
            at = nl == std::string::npos ? text.size() : nl + 1;
            ++line_no;
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ' ||
                                     line.back() == '\t')) {
                line.remove_suffix(1);
            }
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
                line.remove_prefix(1);
            }
            if (line.empty() || line.front() == '#') {
                continue;
            }
            size_t sp = line.find_first_of(" \t");
            core::ApiKeyConfig::Key k;
            k.key = std::string(line.substr(0, sp));
            if (sp != std::string_view::npos) {
                std::string_view name = line.substr(sp);
                while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) {
                    name.remove_prefix(1);
                }
                k.name = std::string(name);
            }
            if (!validKey(k.key) || (!k.name.empty() && !validKey(k.name))) {
                // Never the line itself: it holds a key.
                ctx_.error(mark, path,
                           quoted(file) + " line " + std::to_string(line_no) +
                               ": expected \"KEY\" or \"KEY NAME\" (visible ASCII)");
                return false;
            }
            out.push_back(std::move(k));
        }
        return true;
    }

    bool decodeBasic(const ConfigNode& node, const std::string& path,
                     std::optional<core::BasicAuthConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::BasicAuthConfig b;
        bool ok = r.req("htpasswd_file", b.htpasswd_file);
        ok = r.opt("realm", b.realm) && ok;
        if (ok && (b.realm.empty() ||
                   std::any_of(b.realm.begin(), b.realm.end(), [](char c) {
                       return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
                              c == 0x7f;
                   }))) {
            ctx_.error(r.markOf("realm"), r.path("realm"),
                       "a realm is non-empty printable text without '\"' or '\\'");
            ok = false;
        }
        ok = r.opt("consumer_header", b.consumer_header) && ok;
        if (ok && !b.consumer_header.empty() && !isToken(b.consumer_header)) {
            ctx_.error(r.markOf("consumer_header"), r.path("consumer_header"),
                       "not a valid header name");
            ok = false;
        }
        if (ok) {
            auto users = loadHtpasswd(b.htpasswd_file);
            if (!users.ok()) {
                ctx_.error(r.markOf("htpasswd_file"), r.path("htpasswd_file"),
                           users.error().msg);
                ok = false;
            } else if (users.value().empty()) {
                ctx_.warn(r.markOf("htpasswd_file"), r.path("htpasswd_file"),
                          "no users: every request will be rejected");
            }
        }
        if (ok) {
            out = std::move(b);
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
