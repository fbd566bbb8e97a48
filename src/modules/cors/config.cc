// SPDX-License-Identifier: Apache-2.0
// Validation of the cors middleware's keys.
#include "modules/cors/config.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <tuple>

namespace photon::mod::cors {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

// "scheme://host[:port]" or "scheme://*.domain[:port]": no path, query, userinfo or blanks.
bool validOrigin(const std::string& o) {
    size_t sep = o.find("://");
    if (sep == std::string::npos || sep == 0) {
        return false;
    }
    for (size_t i = 0; i < sep; ++i) {
        char c = o[i];
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    std::string rest = o.substr(sep + 3);
    if (rest.rfind("*.", 0) == 0) {
        rest = rest.substr(2);
    }
    if (rest.empty() || rest.find_first_of("/@?#* \t") != std::string::npos) {
        return false;
    }
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos && rest.front() != '[') {
        std::string port = rest.substr(colon + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
            return false;
        }
        rest = rest.substr(0, colon);
    }
    return !rest.empty();
}

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decodeCors(const ConfigNode& node, const std::string& path,
                    std::optional<core::CorsConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        core::CorsConfig c;
        bool ok = r.req("allowed_origins", c.allowed_origins);
        ok = r.req("allowed_methods", c.allowed_methods) && ok;
        ok = r.req("allowed_headers", c.allowed_headers) && ok;
        ok = r.opt("max_age", c.max_age) && ok;
        ok = r.opt("expose_headers", c.expose_headers) && ok;
        ok = r.opt("allow_credentials", c.allow_credentials) && ok;
        for (size_t i = 0; ok && i < c.allowed_origins.size(); ++i) {
            const std::string& o = c.allowed_origins[i];
            if (o != "*" && !validOrigin(o)) {
                ctx_.error(r.node()->find("allowed_origins")->item(i),
                           indexPath(r.path("allowed_origins"), i),
                           "invalid origin " + quoted(o) +
                               " (expected \"*\", scheme://host[:port] or "
                               "scheme://*.domain[:port], without a path)");
                ok = false;
            }
        }
        for (size_t i = 0; ok && i < c.expose_headers.size(); ++i) {
            if (!isToken(c.expose_headers[i])) {
                ctx_.error(r.node()->find("expose_headers")->item(i),
                           indexPath(r.path("expose_headers"), i),
                           "invalid header name " + quoted(c.expose_headers[i]));
                ok = false;
            }
        }
        if (ok && c.allow_credentials &&
            std::find(c.allowed_origins.begin(), c.allowed_origins.end(), "*") !=
                c.allowed_origins.end()) {
            ctx_.error(r.markOf("allow_credentials"), r.path("allow_credentials"),
                       "allow_credentials cannot be used with \"*\" in allowed_origins (browsers "
                       "refuse credentials with a wildcard origin): list the origins");
            ok = false;
        }
        if (ok && c.allowed_methods.empty()) {
            ctx_.warn(r.markOf("allowed_methods"), r.path("allowed_methods"),
                      "empty: every preflight will be refused");
        }
        for (size_t i = 0; ok && i < c.allowed_methods.size(); ++i) {
            if (!isToken(c.allowed_methods[i])) {
                ctx_.error(r.node()->find("allowed_methods")->item(i),
                           indexPath(r.path("allowed_methods"), i),
                           "invalid method " + quoted(c.allowed_methods[i]));
                ok = false;
            }
        }
        for (size_t i = 0; ok && i < c.allowed_headers.size(); ++i) {
            if (c.allowed_headers[i] != "*" && !isToken(c.allowed_headers[i])) {
                ctx_.error(r.node()->find("allowed_headers")->item(i),
                           indexPath(r.path("allowed_headers"), i),
                           "invalid header name " + quoted(c.allowed_headers[i]));
                ok = false;
            }
        }
        if (ok) {
            out = std::move(c);
        }
    }

private:
    Ctx& ctx_;
};

}  // namespace

void decodeCors(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                std::optional<core::CorsConfig>& out) {
    Decoder(ctx).decodeCors(node, path, out);
}

}  // namespace photon::mod::cors
