// SPDX-License-Identifier: Apache-2.0
// Header transform handlers and value templates.
#include "modules/transform/transform.h"

#include <cstring>
#include <new>

#include "worker/http_conn.h"
#include "worker/proxy.h"

namespace photon::mod::transform {

namespace {

using worker::Request;
using worker::Verdict;

// Request data a response template needs after the request head is gone.
struct Saved {
    std::string_view host;
    std::string_view captures[mod::routing::kMaxCaptures];
    std::string_view capture_names[mod::routing::kMaxCaptures];
    uint8_t capture_count = 0;
};

std::string_view pathParam(const Request& req, const Saved* saved, std::string_view name) {
    if (saved != nullptr) {
        for (size_t i = 0; i < saved->capture_count; ++i) {
            if (saved->capture_names[i] == name) {
                return saved->captures[i];
            }
        }
        return {};
    }
    if (req.router == nullptr || req.match.status != mod::routing::MatchStatus::Found) {
        return {};
    }
    for (size_t i = 0; i < req.match.capture_count; ++i) {
        if (req.router->captureName(req.match.route, i) == name) {
            return req.match.captures[i].view();
        }
    }
    return {};
}

std::string_view variable(const Request& req, const Template::Part& p, const Saved* saved) {
    switch (p.var) {
        case Var::RequestId:
            return {req.meta->id, req.meta->id_len};
        case Var::ClientIp:
            return req.client_ip;
        case Var::RouteId:
            return req.route != nullptr ? std::string_view(req.route->id) : std::string_view();
        case Var::Host:
            if (saved != nullptr) {
                return saved->host;
            }
            return req.head != nullptr ? req.head->host : std::string_view();
        case Var::Path:
            return {req.meta->path, req.meta->path_len};
        case Var::Method:
            return {req.meta->method, req.meta->method_len};
        case Var::Upstream:
            return req.upstream;
        case Var::PathParam:
            return pathParam(req, saved, p.text);
        case Var::TlsProtocol:
            return req.tls != nullptr ? req.tls->protocol : std::string_view();
        case Var::TlsCipher:
            return req.tls != nullptr ? req.tls->cipher : std::string_view();
        case Var::TlsSni:
            return req.tls != nullptr ? req.tls->sni : std::string_view();
        case Var::TlsClientSubject:
            return req.tls != nullptr ? req.tls->client_subject : std::string_view();
        case Var::TlsClientVerify:
            return req.tls != nullptr ? req.tls->client_verify : std::string_view();
        case Var::JwtClaim:
            // Published by auth for a verified JWT; empty without one (or without the claim).
            for (uint16_t i = 0; i < req.claim_count; ++i) {
                if (req.claims[i].name == p.text) {
                    return req.claims[i].value;
                }
            }
            return {};
    }
    return {};
}

bool expandWith(Request& req, const Template& t, const Saved* saved, std::string_view& out);

// The response side, on the response's field list (the request side is applied by the head
// writer, see requestHandler).
bool applyResponse(Request& req, core::http::HeaderList& h, const Side& side, const Saved* saved) {
    if (!side.drop.empty()) {
        worker::removeHeaders(h, side.drop.data(), side.drop.size(), side.drop_len_mask);
    }
    for (const Op& op : side.set) {
        std::string_view v = op.value.text;
        if (!op.value.constant && !expandWith(req, op.value, saved, v)) {
            return false;
        }
        if (!worker::addHeader(h, op.name, v)) {
            return false;
        }
    }
    for (const Op& op : side.add) {
        std::string_view v = op.value.text;
        if ((!op.value.constant && !expandWith(req, op.value, saved, v)) ||
            !worker::addHeader(h, op.name, v)) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool isGatewayVariable(std::string_view name) {
    static constexpr std::string_view kPlain[] = {
        "request_id",   "client_ip",  "route_id", "host",
        "path",         "method",     "upstream", "tls_protocol",
        "tls_cipher",   "tls_sni",    "tls_client_subject",
        "tls_client_verify"};
    for (std::string_view k : kPlain) {
        if (name == k) {
            return true;
        }
    }
    for (std::string_view prefix : {std::string_view("path."), std::string_view("jwt.")}) {
        if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix) {
            return true;
        }
    }
    return false;
}

core::Result<Template> Template::compile(std::string_view value, bool response_side) {
    Template t;
    std::string lit;
    auto flush = [&] {
        if (!lit.empty()) {
            Part p;
            p.text = std::move(lit);
            t.parts.push_back(std::move(p));
            lit.clear();
        }
    };
    size_t i = 0;
    while (i < value.size()) {
        if (value.compare(i, 3, "$${") == 0) {
            lit += "${";
            i += 3;
            continue;
        }
        if (value.compare(i, 2, "${") != 0) {
            lit += value[i++];
            continue;
        }
        size_t close = value.find('}', i + 2);
        if (close == std::string_view::npos) {
            return core::Error{"unterminated '${' (write '$${' for a literal '${')"};
        }
        std::string_view name = value.substr(i + 2, close - i - 2);
        Part p;
        p.literal = false;
        if (name == "request_id") {
            p.var = Var::RequestId;
        } else if (name == "client_ip") {
            p.var = Var::ClientIp;
        } else if (name == "route_id") {
            p.var = Var::RouteId;
        } else if (name == "host") {
            p.var = Var::Host;
        } else if (name == "path") {
            p.var = Var::Path;
        } else if (name == "method") {
            p.var = Var::Method;
        } else if (name == "upstream") {
            if (!response_side) {
                return core::Error{
                    "${upstream} is only known for responses (use it in response_headers)"};
            }
            p.var = Var::Upstream;
        } else if (name == "tls_protocol") {
            p.var = Var::TlsProtocol;
        } else if (name == "tls_cipher") {
            p.var = Var::TlsCipher;
        } else if (name == "tls_sni") {
            p.var = Var::TlsSni;
        } else if (name == "tls_client_subject") {
            p.var = Var::TlsClientSubject;
        } else if (name == "tls_client_verify") {
            p.var = Var::TlsClientVerify;
        } else if (name.size() > 5 && name.substr(0, 5) == "path.") {
            p.var = Var::PathParam;
            p.text = std::string(name.substr(5));
        } else if (name.size() > 4 && name.substr(0, 4) == "jwt.") {
            p.var = Var::JwtClaim;
            p.text = std::string(name.substr(4));
        } else {
            return core::Error{"unknown variable '${" + std::string(name) +
                               "}' (variables: request_id, client_ip, route_id, host, path, "
                               "method, upstream, path.NAME, jwt.CLAIM, tls_protocol, "
                               "tls_cipher, tls_sni, tls_client_subject, tls_client_verify)"};
        }
        flush();
        t.parts.push_back(std::move(p));
        t.constant = false;
        i = close + 1;
    }
    flush();
    if (t.parts.size() > kMaxParts) {
        return core::Error{"too many variables in one value (at most " +
                           std::to_string(kMaxParts / 2) + ")"};
    }
    if (t.constant) {
        for (const auto& p : t.parts) {
            t.text += p.text;
        }
    }
    t.single = !t.constant && t.parts.size() == 1;
    return t;
}

core::Result<TransformConf> TransformConf::compile(const core::TransformConfig& c) {
    TransformConf k;
    for (int side = 0; side < 2; ++side) {
        const core::HeaderTransformConfig& src = side == 0 ? c.request_headers : c.response_headers;
        Side& dst = side == 0 ? k.request : k.response;
        dst.remove = src.remove;
        for (auto [list, out] : {std::pair{&src.set, &dst.set}, std::pair{&src.add, &dst.add}}) {
            for (const auto& [name, value] : *list) {
                auto t = Template::compile(value, side == 1);
                if (!t.ok()) {
                    return core::Error{name + ": " + t.error().msg};
                }
                for (const auto& p : t.value().parts) {
                    if (side == 1 && !p.literal &&
                        (p.var == Var::Host || p.var == Var::PathParam)) {
                        k.response_needs_request = true;
                    }
                    if (!p.literal && p.var == Var::PathParam) {
                        k.uses_path_params = true;
                    }
                }
                if (side == 0 && list == &src.set && name.size() == 4 &&
                    core::http::equalsIgnoreCase(name, "host")) {
                    dst.host_set = true;
                }
                bool is_host = side == 0 && list == &src.set && name.size() == 4 &&
                               core::http::equalsIgnoreCase(name, "host");
                out->push_back(Op{name, std::move(t.value()), is_host, {}});
            }
        }
    }
    return k;
}

void TransformConf::index() {
    for (Side* side : {&request, &response}) {
        side->drop.clear();
        side->appended.clear();
        for (auto* list : {&side->set, &side->add}) {
            for (Op& op : *list) {
                op.line =
                    op.value.constant ? op.name + ": " + op.value.text + "\r\n" : op.name + ": ";
                if (!op.is_host) {
                    side->appended.push_back(&op);
                }
            }
        }
        for (const auto& n : side->remove) {
            side->drop.emplace_back(n);
        }
        for (const Op& op : side->set) {
            if (!(side == &request && side->host_set && op.name.size() == 4 &&
                  core::http::equalsIgnoreCase(op.name, "host"))) {
                side->drop.emplace_back(op.name);
            }
        }
        side->drop_len_mask = worker::nameLengthMask(side->drop.data(), side->drop.size());
    }
    for (const auto* list : {&request.set, &request.add}) {
        for (const Op& op : *list) {
            request.sets_forwarded_proto =
                request.sets_forwarded_proto ||
                core::http::equalsIgnoreCase(op.name, "x-forwarded-proto");
            request.sets_forwarded_host = request.sets_forwarded_host ||
                                          core::http::equalsIgnoreCase(op.name, "x-forwarded-host");
        }
    }
    response.owns_gateway = false;
    for (std::string_view n : response.drop) {
        response.owns_gateway =
            response.owns_gateway || core::http::equalsIgnoreCase(n, "x-gateway");
    }
}

namespace {

bool expandWith(Request& req, const Template& t, const Saved* saved, std::string_view& out) {
    if (t.constant) {
        out = t.text;
        return true;
    }
    if (t.parts.size() == 1) {
        // A lone variable: its value already lives as long as the request (the request id and
        // the method and path copies in the request's metadata, the route id and upstream
        // address in the configuration, the client address in the connection, the host and path
        // parameters in the arena or, before the Proxy phase ends, in the request head).
        out = variable(req, t.parts[0], saved);
        return true;
    }
    size_t n = 0;
    std::string_view vals[kMaxParts];
    size_t nv = 0;
    for (const auto& p : t.parts) {
        std::string_view v = p.literal ? std::string_view(p.text) : variable(req, p, saved);
        if (nv < std::size(vals)) {
            vals[nv++] = v;
        }
        n += v.size();
    }
    char* buf = req.alloc(n == 0 ? 1 : n);
    if (buf == nullptr) {
        return false;
    }
    size_t at = 0;
    for (size_t i = 0; i < nv; ++i) {
        if (!vals[i].empty()) {
            std::memcpy(buf + at, vals[i].data(), vals[i].size());
            at += vals[i].size();
        }
    }
    out = std::string_view(buf, at);
    return true;
}

}  // namespace

Verdict captureHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const TransformConf*>(conf);
    auto* s = static_cast<Saved*>(static_cast<void*>(req.alloc(sizeof(Saved))));
    if (s == nullptr) {
        // Never fall back to the request head later: its bytes are gone by then.
        return req.fail(431, "request header too large");
    }
    *s = Saved{};
    s->host = req.copy(req.head->host);
    if (c.uses_path_params && req.router != nullptr &&
        req.match.status == mod::routing::MatchStatus::Found) {
        for (size_t i = 0; i < req.match.capture_count && i < mod::routing::kMaxCaptures; ++i) {
            s->capture_names[i] = req.router->captureName(req.match.route, i);
            s->captures[i] = req.copy(req.match.captures[i].view());
        }
        s->capture_count = req.match.capture_count;
    }
    req.slot(c.slot) = s;
    return Verdict::Next;
}

Verdict requestHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const TransformConf*>(conf);
    const Side& side = c.request;
    // The edits are applied by the connection while it writes the upstream head (one pass over
    // the client's fields); values point into the configuration or the arena.
    using Field = worker::HeadEdits::Field;
    static_assert(sizeof(worker::HeadEdits) % alignof(Field) == 0);
    const size_t n = side.appended.size();
    char* mem = req.alloc(sizeof(worker::HeadEdits) + sizeof(Field) * n);
    if (mem == nullptr) {
        return req.fail(431, "request header too large");
    }
    auto* e = reinterpret_cast<worker::HeadEdits*>(mem);
    auto* fields = reinterpret_cast<Field*>(mem + sizeof(worker::HeadEdits));
    new (e) worker::HeadEdits;
    e->drop = side.drop.data();
    e->drop_count = side.drop.size();
    e->drop_mask = side.drop_len_mask;
    e->sets_forwarded_proto = side.sets_forwarded_proto;
    e->sets_forwarded_host = side.sets_forwarded_host;
    if (side.host_set) {
        for (const Op& op : side.set) {
            std::string_view v = op.value.text;
            if (op.is_host) {
                if (!op.value.constant && !expandWith(req, op.value, nullptr, v)) {
                    return req.fail(431, "request header too large");
                }
                req.host_override = v;  // the upstream head's Host comes from here
            }
        }
    }
    for (size_t i = 0; i < n; ++i) {
        const Op& op = *side.appended[i];
        if (op.value.constant) {
            new (&fields[i]) Field{op.line, op.value.text, true};  // the whole line at once
            continue;
        }
        std::string_view v;
        if (op.value.single) {
            v = variable(req, op.value.parts[0], nullptr);  // lives as long as the request
        } else if (!expandWith(req, op.value, nullptr, v)) {
            return req.fail(431, "request header too large");
        }
        new (&fields[i]) Field{op.line, v, false};
    }
    e->add = fields;
    e->add_count = static_cast<uint16_t>(n);
    req.addUpstreamEdits(e);
    return Verdict::Next;
}

Verdict responseHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const TransformConf*>(conf);
    const Saved* saved = static_cast<const Saved*>(req.slot(c.slot));
    req.own_gateway_field = req.own_gateway_field || c.response.owns_gateway;
    if (!applyResponse(req, req.responseHeaders(), c.response, saved)) {
        // The arena or the field list is full: never a truncated head (502).
        return req.fail(502, "response header too large");
    }
    return Verdict::Next;
}

}  // namespace photon::mod::transform
