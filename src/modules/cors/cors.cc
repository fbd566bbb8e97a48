// SPDX-License-Identifier: Apache-2.0
// CORS handlers.
#include "modules/cors/cors.h"

#include <cstring>

#include "core/http_parser.h"

namespace photon::mod::cors {

namespace {

using core::http::equalsIgnoreCase;
using worker::Request;
using worker::Verdict;

// Per-request state (in the request's arena).
struct State {
    std::string_view origin;       // the request's Origin, copied (allowed origins only)
    std::string_view req_headers;  // preflight: Access-Control-Request-Headers, copied
    bool preflight = false;
    bool allowed = false;  // false: a CORS request from an origin that is not allowed
};

using core::http::trimOws;

bool endsWithIgnoreCase(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           equalsIgnoreCase(s.substr(s.size() - suffix.size()), suffix);
}

// The parts of a serialised origin "scheme://host[:port]". False for anything else ("null",
// paths, userinfo).
bool splitOrigin(std::string_view o, std::string_view& scheme, std::string_view& host,
                 std::string_view& port) {
    size_t sep = o.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        return false;
    }
    scheme = o.substr(0, sep);
    std::string_view rest = o.substr(sep + 3);
    if (rest.empty() || rest.find_first_of("/@?# ") != std::string_view::npos) {
        return false;
    }
    port = {};
    if (rest.front() == '[') {
        size_t rb = rest.find(']');
        if (rb == std::string_view::npos) {
            return false;
        }
        host = rest.substr(0, rb + 1);
        rest.remove_prefix(rb + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return false;
            }
            port = rest.substr(1);
        }
    } else {
        size_t colon = rest.find(':');
        host = rest.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = rest.substr(colon + 1);
        }
    }
    return !host.empty();
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) {
        if (!out.empty()) {
            out += ", ";
        }
        out += x;
    }
    return out;
}

// Access-Control-* fields an upstream may send: replaced on routes that use cors.
constexpr std::string_view kCorsFields[] = {
    "access-control-allow-origin",   "access-control-allow-credentials",
    "access-control-expose-headers", "access-control-allow-methods",
    "access-control-allow-headers",  "access-control-max-age"};

bool isCorsField(std::string_view n) {
    if (n.size() < 21 || (n[0] | 0x20) != 'a') {
        return false;  // every Access-Control-* response field is longer than 20
    }
    for (std::string_view f : kCorsFields) {
        if (equalsIgnoreCase(n, f)) {
            return true;
        }
    }
    return false;
}

// One pass over the response's fields: drops the upstream's Access-Control-* fields and returns
// the index of its Vary field (or -1).
int scrubFields(core::http::HeaderList& h) {
    int vary = -1;
    size_t w = 0;
    size_t n = h.count;
    for (size_t r = 0; r < n; ++r) {
        std::string_view name = h.items[r].name;
        if (isCorsField(name)) {
            continue;
        }
        if (w != r) {
            h.items[w] = h.items[r];
        }
        if (vary < 0 && name.size() == 4 && equalsIgnoreCase(name, "vary")) {
            vary = static_cast<int>(w);
        }
        ++w;
    }
    h.count = static_cast<uint16_t>(w);
    return vary;
}

// Adds "Origin" to the response's Vary (one field: the upstream's value, then Origin).
void appendVary(Request& req, core::http::HeaderList& h, int vary) {
    if (vary >= 0) {
        core::http::HeaderField& f = h.items[static_cast<size_t>(vary)];
        std::string_view v = f.value;
        if (v == "*") {
            return;  // already varies on everything
        }
        if (v.empty()) {
            f.value = "Origin";
            f.line_len = 0;
            return;
        }
        char* p = req.alloc(v.size() + 8);
        if (p != nullptr) {
            std::memcpy(p, v.data(), v.size());
            std::memcpy(p + v.size(), ", Origin", 8);
            f.value = std::string_view(p, v.size() + 8);
            f.line_len = 0;  // written out as "name: value" now
            return;
        }
    }
    worker::addHeader(h, "Vary", "Origin");
}

}  // namespace

CorsConf CorsConf::compile(const core::CorsConfig& c) {
    CorsConf k;
    for (const auto& o : c.allowed_origins) {
        OriginRule r;
        if (o == "*") {
            r.any = true;
            k.any_origin = true;
        } else {
            std::string_view scheme, host, port;
            splitOrigin(o, scheme, host, port);  // validated at load
            r.scheme = lower(scheme);
            if (host.size() > 2 && host.substr(0, 2) == "*.") {
                r.wildcard = true;
                host.remove_prefix(2);
            }
            r.host = lower(host);
            r.port = std::string(port);
            if (!r.wildcard) {
                r.exact = r.scheme + "://" + r.host + (r.port.empty() ? "" : ":" + r.port);
            }
        }
        k.origins.push_back(std::move(r));
    }
    k.methods = c.allowed_methods;
    for (const auto& h : c.allowed_headers) {
        if (h == "*") {
            k.any_header = true;
        } else {
            k.headers.push_back(lower(h));
        }
    }
    k.credentials = c.allow_credentials;
    k.allow_methods = join(c.allowed_methods);
    if (!k.any_header) {
        k.allow_headers = join(c.allowed_headers);
    }
    k.expose_headers = join(c.expose_headers);
    if (c.max_age) {
        k.max_age =
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*c.max_age).count());
    }
    return k;
}

bool CorsConf::originAllowed(std::string_view origin) const {
    return matchOrigin(origin) != nullptr;
}

const std::string* CorsConf::matchOrigin(std::string_view origin) const {
    if (any_origin) {
        return &empty_;
    }
    // Exact rules first, without taking the origin apart: the scheme compared exactly
    // (browsers serialise it in lower case), the rest case-insensitively.
    bool wildcards = false;
    for (const OriginRule& r : origins) {
        if (r.wildcard) {
            wildcards = true;
            continue;
        }
        // Browsers send origins in lower case (scheme and host), so the comparison is one
        // case-insensitive compare of the whole value.
        if (origin.size() == r.exact.size() && equalsIgnoreCase(origin, r.exact)) {
            return &r.exact;
        }
    }
    if (!wildcards) {
        return nullptr;
    }
    std::string_view scheme, host, port;
    if (!splitOrigin(origin, scheme, host, port)) {
        return nullptr;
    }
    for (const OriginRule& r : origins) {
        if (!r.wildcard) {
            continue;
        }
        // Scheme compared exactly (browsers serialise it in lower case), host case-insensitively.
        if (scheme != r.scheme || port != r.port) {
            continue;
        }
        if (host.size() > r.host.size() + 1 && endsWithIgnoreCase(host, r.host) &&
            host[host.size() - r.host.size() - 1] == '.') {
            return &empty_;
        }
    }
    return nullptr;
}

bool CorsConf::methodAllowed(std::string_view method) const {
    for (const auto& m : methods) {
        if (m == method) {
            return true;
        }
    }
    return false;
}

bool CorsConf::headersAllowed(std::string_view requested) const {
    if (any_header) {
        return true;
    }
    while (!requested.empty()) {
        size_t comma = requested.find(',');
        std::string_view name = trimOws(requested.substr(0, comma));
        requested =
            comma == std::string_view::npos ? std::string_view() : requested.substr(comma + 1);
        if (name.empty()) {
            continue;
        }
        bool ok = false;
        for (const auto& h : headers) {
            if (equalsIgnoreCase(name, h)) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

Verdict accessHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const CorsConf*>(conf);
    const core::http::HeaderField* origin = req.head->headers.find("origin");
    if (origin == nullptr) {
        return Verdict::Next;  // not a CORS request: untouched
    }
    const core::http::HeaderField* acrm = nullptr;
    if (req.head->method_id == core::http::Method::Options) {
        acrm = req.head->headers.find("access-control-request-method");
    }
    const std::string* rule = c.matchOrigin(origin->value);
    bool allowed = rule != nullptr;
    if (!allowed && req.websocket) {
        // WebSocket has no preflight and browsers let any page open one: the Origin check is
        // what stops another site from using the user's cookies on this endpoint.
        return req.fail(403, "WebSocket upgrade rejected: origin not allowed");
    }
    if (acrm == nullptr) {
        auto* st = static_cast<State*>(static_cast<void*>(req.alloc(sizeof(State))));
        if (st != nullptr) {
            *st = State{};
            st->allowed = allowed;
            if (allowed) {
                // An exact rule equals the origin (case aside): its text is the answer, with no
                // copy; otherwise the origin is copied, as the request head will not outlive
                // the response head.
                st->origin = !rule->empty() ? std::string_view(*rule)
                             : c.any_origin ? std::string_view()  // answered with "*"
                                            : req.copy(origin->value);
            }
            req.slot(c.slot) = st;
        }
        return Verdict::Next;
    }
    // A preflight: answered here, before rate limiting and authentication (browsers send no
    // credentials with it).
    if (!allowed) {
        return req.fail(403, "CORS preflight rejected: origin not allowed");
    }
    if (!c.methodAllowed(acrm->value)) {
        return req.fail(403, "CORS preflight rejected: method not allowed");
    }
    std::string_view requested;
    for (const auto& h : req.head->headers) {
        if (equalsIgnoreCase(h.name, "access-control-request-headers")) {
            if (!c.headersAllowed(h.value)) {
                return req.fail(403, "CORS preflight rejected: header not allowed");
            }
            if (requested.empty()) {
                requested = h.value;
            }
        }
    }
    auto* st = static_cast<State*>(static_cast<void*>(req.alloc(sizeof(State))));
    if (st == nullptr) {
        return req.fail(431, "request header too large");
    }
    *st = State{};
    st->preflight = true;
    st->allowed = true;
    st->origin = !rule->empty() ? std::string_view(*rule) : req.copy(origin->value);
    if (c.any_header) {
        st->req_headers = req.copy(requested);
    }
    req.slot(c.slot) = st;
    return req.respond(204);
}

Verdict headerHandler(Request& req, const void* conf) {
    const auto& c = *static_cast<const CorsConf*>(conf);
    auto* st = static_cast<State*>(req.slot(c.slot));
    if (st == nullptr) {
        return Verdict::Next;  // no Origin: not a CORS request, left alone
    }
    core::http::HeaderList& h = req.responseHeaders();
    if (!st->allowed) {
        scrubFields(h);  // the gateway decides CORS on this route, not the upstream
        return Verdict::Next;
    }
    std::string_view allow_origin =
        c.any_origin && !c.credentials ? std::string_view("*") : st->origin;
    if (st->preflight && req.local() && req.replyStatus() == 204) {
        worker::addHeader(h, "Access-Control-Allow-Origin", allow_origin);
        worker::addHeader(h, "Access-Control-Allow-Methods", c.allow_methods);
        if (c.any_header) {
            if (!st->req_headers.empty()) {
                worker::addHeader(h, "Access-Control-Allow-Headers", st->req_headers);
            }
        } else if (!c.allow_headers.empty()) {
            worker::addHeader(h, "Access-Control-Allow-Headers", c.allow_headers);
        }
        if (!c.max_age.empty()) {
            worker::addHeader(h, "Access-Control-Max-Age", c.max_age);
        }
        if (c.credentials) {
            worker::addHeader(h, "Access-Control-Allow-Credentials", "true");
        }
        worker::addHeader(h, "Vary",
                          "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
        return Verdict::Next;
    }
    int vary = scrubFields(h);
    worker::addHeader(h, "Access-Control-Allow-Origin", allow_origin);
    if (c.credentials) {
        worker::addHeader(h, "Access-Control-Allow-Credentials", "true");
    }
    if (!c.expose_headers.empty()) {
        worker::addHeader(h, "Access-Control-Expose-Headers", c.expose_headers);
    }
    appendVary(req, h, vary);
    return Verdict::Next;
}

}  // namespace photon::mod::cors
