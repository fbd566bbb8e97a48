// SPDX-License-Identifier: Apache-2.0
// Validation of the transform middleware's keys.
#include "modules/transform/config.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "core/http_parser.h"
#include "modules/transform/transform.h"

namespace photon::mod::transform {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decodeTransform(const ConfigNode& node, const std::string& path,
                         std::optional<core::TransformConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        core::TransformConfig t;
        bool ok = true;
        if (const ConfigNode* v = r.get("request_headers")) {
            ok = decodeHeaderTransform(*v, r.path("request_headers"), t.request_headers) && ok;
        }
        if (const ConfigNode* v = r.get("response_headers")) {
            ok = decodeHeaderTransform(*v, r.path("response_headers"), t.response_headers) && ok;
        }
        if (ok) {
            out = std::move(t);
        }
    }

    bool decodeHeaderTransform(const ConfigNode& node, const std::string& path,
                               core::HeaderTransformConfig& h) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        bool ok = true;
        bool response =
            path.size() >= 16 && path.compare(path.size() - 16, 16, "response_headers") == 0;
        if (const ConfigNode* v = r.get("add")) {
            ok = decodeHeaderMap(*v, r.path("add"), h.add) && ok;
            ok = checkOps(*v, r.path("add"), h.add, "add", response) && ok;
        }
        if (const ConfigNode* v = r.get("remove")) {
            if (ctx_.convert(*v, r.path("remove"), h.remove)) {
                for (size_t i = 0; i < h.remove.size(); ++i) {
                    if (!isToken(h.remove[i])) {
                        ctx_.error(v->item(i), indexPath(r.path("remove"), i),
                                   "invalid header name " + quoted(h.remove[i]));
                        ok = false;
                    }
                }
            } else {
                ok = false;
            }
        }
        if (const ConfigNode* v = r.get("set")) {
            ok = decodeHeaderMap(*v, r.path("set"), h.set) && ok;
            ok = checkOps(*v, r.path("set"), h.set, "set", response) && ok;
        }
        for (size_t i = 0; i < h.remove.size(); ++i) {
            if (const char* why = protectedName(h.remove[i], "remove")) {
                ctx_.error(r.node()->find("remove")->item(i), indexPath(r.path("remove"), i), why);
                ok = false;
            }
        }
        return ok;
    }

    // Names a transform may not touch: the framing and hop-by-hop fields the gateway owns,
    // X-Forwarded-For (appended to, decision 7) and X-Request-ID (decision 6). Host may only be
    // set (it names the upstream's virtual host).
    static const char* protectedName(const std::string& name, std::string_view op) {
        using core::http::equalsIgnoreCase;
        if (core::http::isHopByHopName(name) || equalsIgnoreCase(name, "content-length")) {
            return "hop-by-hop and framing headers (Connection, Keep-Alive, TE, Trailer, "
                   "Transfer-Encoding, Upgrade, Proxy-*, Content-Length) cannot be changed by a "
                   "transform";
        }
        if (equalsIgnoreCase(name, "x-forwarded-for")) {
            return "X-Forwarded-For is maintained by the gateway (the client address is "
                   "appended) and cannot be changed by a transform";
        }
        if (equalsIgnoreCase(name, "x-request-id")) {
            return "X-Request-ID is set by the gateway (server.request_id) and cannot be changed "
                   "by a transform";
        }
        if (op != "set" && equalsIgnoreCase(name, "host")) {
            return "Host can only be set (replaced), not added or removed";
        }
        return nullptr;
    }

    bool checkOps(const ConfigNode& node, const std::string& path, const core::HeaderList& ops,
                  std::string_view op, bool response) {
        bool ok = true;
        for (const auto& [name, value] : ops) {
            const ConfigNode* v = node.find(name);
            const ConfigNode& at = v != nullptr ? *v : node;
            if (const char* why = protectedName(name, op)) {
                ctx_.error(at, childPath(path, name), why);
                ok = false;
                continue;
            }
            auto t = Template::compile(value, response);
            if (!t.ok()) {
                ctx_.error(at, childPath(path, name), t.error().msg);
                ok = false;
            }
        }
        return ok;
    }

    bool decodeHeaderMap(const ConfigNode& node, const std::string& path, core::HeaderList& out) {
        if (!node.isMap()) {
            ctx_.error(node, path,
                       "expected a map of header name to value, got " + node.describe());
            return false;
        }
        bool ok = true;
        for (size_t i = 0; i < node.size(); ++i) {
            const std::string& name = node.keyAt(i);
            std::string p = childPath(path, name);
            std::string value;
            if (!isToken(name)) {
                ctx_.error(node.keyMarkAt(i), p, "invalid header name " + quoted(name));
                ok = false;
                continue;
            }
            if (node.item(i).isNull()) {
                value.clear();
            } else if (!ctx_.convert(node.item(i), p, value)) {
                ok = false;
                continue;
            }
            if (hasControlChars(value)) {
                ctx_.error(node.item(i), p,
                           "header value contains control characters (CR, LF or NUL)");
                ok = false;
                continue;
            }
            out.emplace_back(name, std::move(value));
        }
        return ok;
    }

private:
    Ctx& ctx_;
};

}  // namespace

void decodeTransform(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                     std::optional<core::TransformConfig>& out) {
    Decoder(ctx).decodeTransform(node, path, out);
}

}  // namespace photon::mod::transform
