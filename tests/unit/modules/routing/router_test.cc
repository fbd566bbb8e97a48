// SPDX-License-Identifier: Apache-2.0
// Tests for Router: route selection tables, compile errors and warnings, captures, rewrites, and a
// differential test against a brute-force reference matcher.
#include "modules/routing/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "modules/routing/path_normalize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace photon::mod::routing {
namespace {

RouteSpec route(std::string id, std::string path, std::string host = "",
                std::vector<std::string> methods = {}) {
    RouteSpec r;
    r.id = std::move(id);
    r.path = std::move(path);
    r.host = std::move(host);
    r.methods = std::move(methods);
    return r;
}

Router compileOrDie(const std::vector<RouteSpec>& routes,
                    std::vector<std::string>* warnings = nullptr) {
    auto r = Router::compile(routes, warnings);
    if (!r.ok()) {
        ADD_FAILURE() << "compile failed: " << r.error().msg;
        std::abort();
    }
    return std::move(r).value();
}

std::string allowString(const Router& r, uint64_t mask) {
    char buf[512];
    const size_t n = r.formatAllow(mask, buf, sizeof(buf));
    return std::string(buf, n);
}

// "<route id>", "404", "405 <Allow>", or "400" when the raw path fails normalisation.
std::string outcome(const Router& r, const std::string& method, const std::string& host,
                    const std::string& raw_path) {
    std::string norm(raw_path.size() + 1, '\0');
    size_t len = 0;
    if (normalizePath(raw_path, norm.data(), norm.size(), len) != NormalizeResult::Ok) {
        return "400";
    }
    norm.resize(len);
    const Match m = r.match(method, host, norm);
    switch (m.status) {
        case MatchStatus::Found:
            return std::string(r.routeId(m.route));
        case MatchStatus::NotFound:
            return "404";
        case MatchStatus::MethodNotAllowed:
            return "405 " + allowString(r, m.allow);
    }
    return "?";
}

struct Req {
    std::string method;
    std::string host;
    std::string path;
    std::string expect;
};

struct Scenario {
    std::string name;
    std::vector<RouteSpec> routes;
    std::vector<Req> reqs;
    bool order_independent;  // also run with the routes in reverse config order
};

const std::string kAllowExample = "405 GET, HEAD, POST, PUT, DELETE, OPTIONS";

// The original's example config; most of these resolved to the catch-all there.
Scenario scenarioExampleConfig() {
    return Scenario{
        "example_config",
        {
            route("web_home", "/", "", {"GET"}),
            route("assets", "/assets/**"),
            route("api", "/api/**", "api.example.com", {"GET", "POST", "PUT", "DELETE"}),
            route("health", "/health"),
            route("websocket_chat", "/ws/chat/**", "", {"GET"}),
            route("websocket_api", "/ws/api/**", "", {"GET"}),
            route("web_catchall", "/**", "", {"GET", "POST", "PUT", "DELETE", "OPTIONS"}),
        },
        {
            {"GET", "", "/", "web_home"},
            {"HEAD", "", "/", "web_home"},
            {"POST", "", "/", "web_catchall"},
            {"OPTIONS", "", "/", "web_catchall"},
            {"PATCH", "", "/", kAllowExample},
            {"GET", "api.example.com", "/api/users", "api"},
            {"GET", "api.example.com:8080", "/api/users", "api"},
            {"GET", "API.Example.COM", "/api/users", "api"},
            {"GET", "api.example.com.", "/api/users", "api"},
            {"GET", "", "/api/users", "web_catchall"},
            {"GET", "evil.com", "/api/users", "web_catchall"},
            {"GET", "api.example.com.evil.com", "/api/users", "web_catchall"},
            {"GET", "xapi.example.com", "/api/users", "web_catchall"},
            {"GET", "api.example.com", "/api", "web_catchall"},
            {"GET", "api.example.com", "/api/", "api"},
            {"GET", "api.example.com", "/apiary", "web_catchall"},
            {"GET", "api.example.com", "/api/v1/users/42", "api"},
            {"POST", "api.example.com", "/api/users", "api"},
            {"PUT", "api.example.com", "/api/users/1", "api"},
            {"DELETE", "api.example.com", "/api/users/1", "api"},
            {"HEAD", "api.example.com", "/api/users", "api"},
            {"OPTIONS", "api.example.com", "/api/users", "web_catchall"},
            {"PATCH", "api.example.com", "/api/users", kAllowExample},
            {"PATCH", "", "/api/users", kAllowExample},
            {"GET", "", "/assets/x.css", "assets"},
            {"GET", "", "/assets/", "assets"},
            {"GET", "", "/assets/img/logo.png", "assets"},
            {"GET", "", "/assets", "web_catchall"},
            {"PATCH", "", "/assets/x.css", "assets"},
            {"GET", "", "/assetsx/y", "web_catchall"},
            {"GET", "api.example.com", "/assets/a.js", "assets"},
            {"GET", "", "/health", "health"},
            {"POST", "", "/health", "health"},
            {"GET", "", "/health/", "web_catchall"},
            {"GET", "", "/healthz", "web_catchall"},
            {"GET", "api.example.com", "/health", "health"},
            {"GET", "", "/ws/chat/room1", "websocket_chat"},
            {"GET", "", "/ws/chat/", "websocket_chat"},
            {"GET", "", "/ws/chat", "web_catchall"},
            {"POST", "", "/ws/chat/room1", "web_catchall"},
            {"PATCH", "", "/ws/chat/room1", kAllowExample},
            {"GET", "", "/ws/api/stream", "websocket_api"},
            {"GET", "", "/ws/other", "web_catchall"},
            {"GET", "api.example.com", "/", "web_home"},
            {"GET", "", "/index.html", "web_catchall"},
            {"GET", "", "/a/b/c/d", "web_catchall"},
            {"GET", "api.example.com", "/api/../health", "health"},
            {"GET", "", "/assets/../api/x", "web_catchall"},
            {"GET", "api.example.com", "/api/%2e%2e/health", "health"},
            {"GET", "api.example.com", "//api//users", "api"},
            {"GET", "api.example.com", "/%61pi/users", "api"},
            {"GET", "api.example.com", "/api/..%2fadmin", "400"},
            {"GET", "", "/assets/%2e%2e/%2e%2e/etc/passwd", "400"},
        },
        true};
}

Scenario scenarioPathPrecedence() {
    return Scenario{
        "path_precedence",
        {
            route("exact_users", "/api/users"),
            route("param_user", "/api/users/{id}"),
            route("star_users_items", "/api/users/*/items"),
            route("users_any", "/api/users/**"),
            route("api_star", "/api/*"),
            route("api_any", "/api/**"),
            route("api_v_glob", "/api/v*"),
            route("re_users", "^/api/users/[0-9]+$"),
            route("static_js", "/static/*.js"),
            route("static_any", "/static/**"),
            route("static_app", "/static/app*"),
            route("items_star_star", "/i/*/*"),
            route("items_star_lit", "/i/*/x"),
            route("catch", "/**"),
        },
        {
            {"GET", "", "/api/users", "exact_users"},
            {"GET", "", "/api/users/42", "param_user"},
            {"GET", "", "/api/users/", "users_any"},
            {"GET", "", "/api/users/42/items", "star_users_items"},
            {"GET", "", "/api/users//items", "param_user"},  // normalises to /api/users/items
            {"GET", "", "/api/users/42/orders", "users_any"},
            {"GET", "", "/api/users/42/items/7", "users_any"},
            {"GET", "", "/api/orders", "api_star"},
            {"GET", "", "/api/v1", "api_v_glob"},
            {"GET", "", "/api/v", "api_v_glob"},
            {"GET", "", "/api/x/y", "api_any"},
            {"GET", "", "/api/", "api_star"},
            {"GET", "", "/api", "catch"},
            {"GET", "", "/apiary", "catch"},
            {"GET", "", "/static/app.js", "static_app"},
            {"GET", "", "/static/main.js", "static_js"},
            {"GET", "", "/static/main.css", "static_any"},
            {"GET", "", "/static/js/x.js", "static_any"},
            {"GET", "", "/static/app", "static_app"},
            {"GET", "", "/static/", "static_any"},
            {"GET", "", "/i/a/x", "items_star_lit"},
            {"GET", "", "/i/a/y", "items_star_star"},
            {"GET", "", "/i/a", "catch"},
            {"GET", "", "/other", "catch"},
            {"GET", "", "/", "catch"},
        },
        true};
}

Scenario scenarioRegexRoutes() {
    return Scenario{"regex_routes",
                    {
                        route("re_num", "^/items/([0-9]+)$"),
                        route("re_v", "^/v[0-9]+/.*$"),
                        route("glob_items", "/items/*", "", {"POST"}),
                        route("re_host", "^/h/(.*)$", "^(www|api)\\.example\\.com$"),
                        route("re_ci", "^/CaSe$"),
                        route("re_quant", "^/qu?x{1,2}$"),
                        route("re_alt", "^/alt|^/other$"),
                        route("catch", "/**", "", {"GET"}),
                    },
                    {
                        {"GET", "", "/items/123", "re_num"},
                        {"POST", "", "/items/123", "glob_items"},
                        {"GET", "", "/items/abc", "catch"},
                        {"PUT", "", "/items/abc", "405 GET, HEAD, POST"},
                        {"PUT", "", "/items/12", "re_num"},
                        {"GET", "", "/items/12/", "catch"},
                        {"GET", "", "/v2/anything/else", "re_v"},
                        {"GET", "", "/v2/", "re_v"},
                        {"GET", "", "/v/x", "catch"},
                        {"GET", "www.example.com", "/h/x", "re_host"},
                        {"GET", "WWW.EXAMPLE.COM:443", "/h/x", "re_host"},
                        {"PUT", "api.example.com", "/h/a/b", "re_host"},
                        {"GET", "other.example.com", "/h/x", "catch"},
                        {"GET", "", "/h/x", "catch"},
                        {"GET", "", "/CaSe", "re_ci"},
                        {"GET", "", "/case", "catch"},
                        {"GET", "", "/qx", "re_quant"},
                        {"GET", "", "/quxx", "re_quant"},
                        {"GET", "", "/quux", "catch"},
                        {"GET", "", "/other", "re_alt"},
                        {"GET", "", "/alt/anything", "re_alt"},
                    },
                    true};
}

Scenario scenarioHosts() {
    return Scenario{"hosts",
                    {
                        route("exact", "/x", "api.example.com"),
                        route("wild", "/x", "*.example.com"),
                        route("wild2", "/x", "*.b.example.com"),
                        route("re", "/x", "^.*\\.example\\.org$"),
                        route("glob", "/x", "api-*.example.net"),
                        route("v6", "/x", "[::1]"),
                        route("upper", "/x", "UPPER.Example.Net"),
                        route("any", "/x"),
                        route("only_host", "/only", "only.example.com"),
                    },
                    {
                        {"GET", "api.example.com", "/x", "exact"},
                        {"GET", "API.EXAMPLE.COM", "/x", "exact"},
                        {"GET", "api.example.com:8443", "/x", "exact"},
                        {"GET", "api.example.com:", "/x", "exact"},
                        {"GET", "api.example.com.", "/x", "exact"},
                        {"GET", " api.example.com\t", "/x", "exact"},
                        {"GET", "www.example.com", "/x", "wild"},
                        {"GET", "b.example.com", "/x", "wild"},
                        {"GET", "a.b.example.com", "/x", "wild2"},
                        {"GET", "x.y.b.example.com", "/x", "wild2"},
                        {"GET", "x.y.c.example.com", "/x", "wild"},
                        {"GET", "example.com", "/x", "any"},
                        {"GET", ".example.com", "/x", "any"},
                        {"GET", "foo.example.org", "/x", "re"},
                        {"GET", "FOO.Example.ORG:80", "/x", "re"},
                        {"GET", "example.org", "/x", "any"},
                        {"GET", "api-eu.example.net", "/x", "glob"},
                        {"GET", "api-a.b.example.net", "/x", "glob"},
                        {"GET", "api-.example.net", "/x", "any"},
                        {"GET", "upper.example.net", "/x", "upper"},
                        {"GET", "[::1]:8080", "/x", "v6"},
                        {"GET", "[::1]", "/x", "v6"},
                        {"GET", "[0:0::1]", "/x", "any"},
                        {"GET", "::1", "/x", "any"},
                        {"GET", "", "/x", "any"},
                        {"GET", "api.example.com:abc", "/x", "any"},
                        {"GET", "api.example.com:80:90", "/x", "any"},
                        {"GET", "[::1", "/x", "any"},
                        {"GET", "[::1]x", "/x", "any"},
                        {"GET", "[zz::1]", "/x", "any"},
                        {"GET", "api.example.com/evil", "/x", "any"},
                        {"GET", "user@api.example.com", "/x", "any"},
                        {"GET", "api.example.com\r\n", "/x", "any"},
                        {"GET", std::string(300, 'a') + ".example.com", "/x", "any"},
                        {"GET", "only.example.com", "/only", "only_host"},
                        {"GET", "ONLY.example.com:1", "/only", "only_host"},
                        {"GET", "other.com", "/only", "404"},
                        {"GET", "", "/only", "404"},
                        {"GET", "only.example.com.evil", "/only", "404"},
                    },
                    true};
}

Scenario scenarioMethods() {
    return Scenario{"methods",
                    {
                        route("get", "/m", "", {"GET"}),
                        route("post", "/m", "", {"post"}),
                        route("purge", "/m", "", {"PURGE"}),
                        route("any", "/a"),
                        route("head_only", "/h", "", {"HEAD"}),
                        route("opts", "/o", "", {"Options", "DELETE"}),
                    },
                    {
                        {"GET", "", "/m", "get"},
                        {"get", "", "/m", "get"},
                        {"HEAD", "", "/m", "get"},
                        {"head", "", "/m", "get"},
                        {"POST", "", "/m", "post"},
                        {"Post", "", "/m", "post"},
                        {"PURGE", "", "/m", "purge"},
                        {"purge", "", "/m", "purge"},
                        {"PUT", "", "/m", "405 GET, HEAD, POST, PURGE"},
                        {"BREW", "", "/m", "405 GET, HEAD, POST, PURGE"},
                        {"", "", "/m", "405 GET, HEAD, POST, PURGE"},
                        {"GET", "", "/a", "any"},
                        {"BREW", "", "/a", "any"},
                        {"PURGE", "", "/a", "any"},
                        {"HEAD", "", "/h", "head_only"},
                        {"GET", "", "/h", "405 HEAD"},
                        {"OPTIONS", "", "/o", "opts"},
                        {"delete", "", "/o", "opts"},
                        {"GET", "", "/o", "405 DELETE, OPTIONS"},
                        {"GET", "", "/none", "404"},
                        {"BREW", "", "/none", "404"},
                    },
                    true};
}

Scenario scenarioPartialSegmentGlobs() {
    return Scenario{"partial_segment_globs",
                    {
                        route("js", "/static/*.js"),
                        route("css", "/static/*.css"),
                        route("v", "/v?/x"),
                        route("lower", "/f/[a-z]*"),
                        route("digits", "/n/[0-9][0-9]"),
                        route("notdig", "/n/[^0-9]*"),
                        route("mixed", "/img/*-[0-9]*.png"),
                        route("star_mid", "/a/*/c"),
                        route("enc", "/caf%c3%a9/*"),
                        route("tilde", "/%7Euser/*"),
                    },
                    {
                        {"GET", "", "/static/app.js", "js"},
                        {"GET", "", "/static/.js", "js"},
                        {"GET", "", "/static/app.jsx", "404"},
                        {"GET", "", "/static/a/b.js", "404"},
                        {"GET", "", "/static/x.css", "css"},
                        {"GET", "", "/v1/x", "v"},
                        {"GET", "", "/vv/x", "v"},
                        {"GET", "", "/v12/x", "404"},
                        {"GET", "", "/v/x", "404"},
                        {"GET", "", "/f/abc", "lower"},
                        {"GET", "", "/f/a", "lower"},
                        {"GET", "", "/f/Abc", "404"},
                        {"GET", "", "/f/", "404"},
                        {"GET", "", "/n/42", "digits"},
                        {"GET", "", "/n/4", "404"},
                        {"GET", "", "/n/420", "404"},
                        {"GET", "", "/n/x4", "notdig"},
                        {"GET", "", "/img/cat-01.png", "mixed"},
                        {"GET", "", "/img/a-b-9.png", "mixed"},
                        {"GET", "", "/img/cat.png", "404"},
                        {"GET", "", "/a/b/c", "star_mid"},
                        {"GET", "", "/a//c", "404"},
                        {"GET", "", "/a/b/d", "404"},
                        {"GET", "", "/a/b/c/", "404"},
                        {"GET", "", "/caf%C3%A9/x", "enc"},
                        {"GET", "", "/caf%c3%a9/x", "enc"},
                        {"GET", "", "/~user/x", "tilde"},
                        {"GET", "", "/%7euser/x", "tilde"},
                    },
                    true};
}

Scenario scenarioDoubleStar() {
    return Scenario{"double_star",
                    {
                        route("api", "/api/**"),
                        route("mid", "/files/**/meta"),
                        route("root", "/r/**"),
                        route("exact_api", "/api"),
                        route("param_tail", "/p/{id}/**"),
                    },
                    {
                        {"GET", "", "/api", "exact_api"},
                        {"GET", "", "/api/", "api"},
                        {"GET", "", "/api/x", "api"},
                        {"GET", "", "/api/x/y/z", "api"},
                        {"GET", "", "/api/x/y/z/", "api"},
                        {"GET", "", "/apiary", "404"},
                        {"GET", "", "/apix/y", "404"},
                        {"GET", "", "/files/a/meta", "mid"},
                        {"GET", "", "/files/a/b/c/meta", "mid"},
                        {"GET", "", "/files/meta", "404"},
                        {"GET", "", "/files/a/meta/x", "404"},
                        {"GET", "", "/files/meta/meta", "mid"},
                        {"GET", "", "/files/a/metas", "404"},
                        {"GET", "", "/r", "404"},
                        {"GET", "", "/r/", "root"},
                        {"GET", "", "/p/1/x", "param_tail"},
                        {"GET", "", "/p/1/", "param_tail"},
                        {"GET", "", "/p/1", "404"},
                        {"GET", "", "/p//x", "404"},
                    },
                    true};
}

Scenario scenarioCatchAllNeverShadows() {
    return Scenario{"catch_all_never_shadows",
                    {
                        route("catch", "/**"),
                        route("specific", "/x/y"),
                        route("re", "^/re$"),
                        route("star", "/q*"),
                        route("re_vs_glob", "^/q1$"),
                    },
                    {
                        {"GET", "", "/x/y", "specific"},
                        {"GET", "", "/re", "re"},
                        {"GET", "", "/q", "star"},
                        {"GET", "", "/q1", "star"},  // any glob but "/**" outranks a regex
                        {"GET", "", "/", "catch"},
                        {"GET", "", "/a/b", "catch"},
                        {"GET", "", "/x/y/z", "catch"},
                    },
                    true};
}

Scenario scenarioHostBeforePath() {
    return Scenario{"host_before_path",
                    {
                        route("host_catch", "/**", "api.example.com"),
                        route("exact_users", "/users"),
                        route("wild_users", "/users", "*.example.com"),
                        route("wild_catch", "/**", "*.example.com", {"POST"}),
                    },
                    {
                        {"GET", "api.example.com", "/users", "host_catch"},
                        {"GET", "www.example.com", "/users", "wild_users"},
                        {"POST", "www.example.com", "/x", "wild_catch"},
                        {"GET", "www.example.com", "/x", "405 POST"},
                        {"GET", "", "/users", "exact_users"},
                        {"GET", "api.example.com", "/x", "host_catch"},
                        {"GET", "other.org", "/x", "404"},
                        {"GET", "other.org", "/users", "exact_users"},
                    },
                    true};
}

Scenario scenarioTiesByConfigOrder() {
    return Scenario{"ties_by_config_order",
                    {
                        route("first", "/t/{a}"),
                        route("second", "/t/*"),
                        route("third", "/t/{b}", "", {"GET"}),
                        route("dup1", "/d", "", {"GET"}),
                        route("dup2", "/d", "", {"GET", "POST"}),
                        route("q1", "/q/a?"),
                        route("q2", "/q/a*"),
                    },
                    {
                        {"GET", "", "/t/x", "first"},
                        {"GET", "", "/t/", "second"},
                        {"GET", "", "/d", "dup1"},
                        {"HEAD", "", "/d", "dup1"},
                        {"POST", "", "/d", "dup2"},
                        {"PUT", "", "/d", "405 GET, HEAD, POST"},
                        {"GET", "", "/q/ab", "q1"},
                        {"GET", "", "/q/abc", "q2"},
                    },
                    false};
}

Scenario scenarioNormalisationCannotBypassAccessRules() {
    return Scenario{"normalisation_cannot_bypass_access_rules",
                    {
                        route("admin", "/admin/**"),
                        route("public", "/public/**"),
                        route("catch", "/**", "", {"GET"}),
                    },
                    {
                        {"GET", "", "/public/x", "public"},
                        {"GET", "", "/public/../admin/x", "admin"},
                        {"GET", "", "/public/%2e%2e/admin/x", "admin"},
                        {"GET", "", "/public/%2E%2E/admin/x", "admin"},
                        {"GET", "", "/public/.%2e/admin/x", "admin"},
                        {"GET", "", "/public/./../admin/x", "admin"},
                        {"GET", "", "//admin/x", "admin"},
                        {"GET", "", "/./admin/x", "admin"},
                        {"GET", "", "///admin///x", "admin"},
                        {"GET", "", "/%61dmin/x", "admin"},
                        {"GET", "", "/adm%69n/x", "admin"},
                        {"GET", "", "/admin/%2e", "admin"},
                        {"GET", "", "/public/..%2fadmin/x", "400"},
                        {"GET", "", "/public/%2fadmin", "400"},
                        {"GET", "", "/public/%2Fadmin", "400"},
                        {"GET", "", "/admin%2Fx", "400"},
                        {"GET", "", "/public/%c0%ae%c0%ae/admin", "public"},
                        {"GET", "", "/public/%252e%252e/admin", "public"},
                        {"GET", "", "/../admin", "400"},
                        {"GET", "", "/public/../../admin", "400"},
                        {"GET", "", "/public/x%00", "400"},
                        {"GET", "", "/public/x%zz", "400"},
                        {"GET", "", "/public/x%", "400"},
                        {"GET", "", "/Admin/x", "catch"},
                        {"GET", "", "/admin", "catch"},
                        {"POST", "", "/admin", "405 GET, HEAD"},
                    },
                    true};
}

std::vector<Scenario> scenarios() {
    std::vector<Scenario> s;
    s.push_back(scenarioExampleConfig());
    s.push_back(scenarioPathPrecedence());
    s.push_back(scenarioRegexRoutes());
    s.push_back(scenarioHosts());
    s.push_back(scenarioMethods());
    s.push_back(scenarioPartialSegmentGlobs());
    s.push_back(scenarioDoubleStar());
    s.push_back(scenarioCatchAllNeverShadows());
    s.push_back(scenarioHostBeforePath());
    s.push_back(scenarioTiesByConfigOrder());
    s.push_back(scenarioNormalisationCannotBypassAccessRules());
    return s;
}

TEST(RouterTest, SelectsTheDocumentedRouteForEveryTableCase) {
    size_t checked = 0;
    for (const Scenario& sc : scenarios()) {
        std::vector<std::vector<RouteSpec>> orders = {sc.routes};
        if (sc.order_independent) {
            orders.emplace_back(sc.routes.rbegin(), sc.routes.rend());
        }
        for (size_t o = 0; o < orders.size(); ++o) {
            const Router r = compileOrDie(orders[o]);
            for (const Req& q : sc.reqs) {
                SCOPED_TRACE(sc.name + (o == 0 ? "" : " (reversed)") + ": " + q.method +
                             " host=\"" + q.host + "\" " + q.path);
                EXPECT_EQ(outcome(r, q.method, q.host, q.path), q.expect);
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 400u);
}

TEST(RouterTest, NonOriginPathIsNotFound) {
    const Router r = compileOrDie({route("all", "/**"), route("re", "^.*$")});
    EXPECT_EQ(r.match("GET", "", "").status, MatchStatus::NotFound);
    EXPECT_EQ(r.match("GET", "", "*").status, MatchStatus::NotFound);
    EXPECT_EQ(r.match("GET", "", "/").status, MatchStatus::Found);
}

TEST(RouterTest, EmptyRouteTableFindsNothing) {
    const Router r = compileOrDie({});
    EXPECT_EQ(r.match("GET", "a.com", "/").status, MatchStatus::NotFound);
    EXPECT_EQ(r.routeCount(), 0u);
}

// ---- compile errors and warnings ------------------------------------------------------------

struct BadRoute {
    RouteSpec spec;
    std::string prefix;   // expected start of the message
    std::string excerpt;  // expected somewhere in the message
};

TEST(RouterTest, RejectsInvalidRoutesNamingThem) {
    auto withRewrite = [](std::string path, std::string rw) {
        RouteSpec r = route("r", std::move(path));
        r.rewrite = std::move(rw);
        return r;
    };
    auto withStrip = [](std::string path, std::string sp) {
        RouteSpec r = route("r", std::move(path));
        r.strip_prefix = std::move(sp);
        return r;
    };
    RouteSpec both = route("r", "/a/**");
    both.strip_prefix = "/a";
    both.rewrite = "/b";
    const std::vector<BadRoute> bad = {
        {route("r", ""), "routes[1].path: ", "must not be empty"},
        {route("r", "api/**"), "routes[1].path: ", "must start with '/'"},
        {route("r", "/a//b"), "routes[1].path: ", "empty segment"},
        {route("r", "/a/../b"), "routes[1].path: ", "'.' and '..' segments"},
        {route("r", "/a/./b"), "routes[1].path: ", "'.' and '..' segments"},
        {route("r", "/a/%2e%2e/b"), "routes[1].path: ", "'.' and '..' segments"},
        {route("r", "/a%2Fb"), "routes[1].path: ", "can never match"},
        {route("r", "/a%00"), "routes[1].path: ", "can never match"},
        {route("r", "/a%zz"), "routes[1].path: ", "invalid percent escape at byte 2"},
        {route("r", "/a b"), "routes[1].path: ", "invalid character"},
        {route("r", "/api**"), "routes[1].path: ", "'**' must be a whole segment"},
        {route("r", "/a/**x"), "routes[1].path: ", "'**' must be a whole segment"},
        {route("r", "/a/**/b/**"), "routes[1].path: ", "at most one '**'"},
        {route("r", "/f/[a-z"), "routes[1].path: ", "unterminated '['"},
        {route("r", "/f/[z-a]"), "routes[1].path: ", "reversed range"},
        {route("r", "/f/[[:alpha:]]"), "routes[1].path: ", "POSIX"},
        {route("r", "/f/a]"), "routes[1].path: ", "unmatched ']'"},
        {route("r", "/u/{1d}"), "routes[1].path: ", "invalid parameter name \"1d\""},
        {route("r", "/u/{}"), "routes[1].path: ", "invalid parameter name"},
        {route("r", "/u/{id}/{id}"), "routes[1].path: ", "duplicate parameter name \"id\""},
        {route("r", "/u/x{id}"), "routes[1].path: ", "whole segment"},
        {route("r", "/u/{a}{b}"), "routes[1].path: ", "whole segment"},
        {route("r", "/u/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"), "routes[1].path: ", "more than 8"},
        {route("r", "/" + std::string(4100, 'a')), "routes[1].path: ", "longer than 4095"},
        {route("r", "^/a($"), "routes[1].path: invalid regex \"^/a($\" at offset ",
         "missing closing parenthesis"},
        {route("r", "^/a[$"), "routes[1].path: invalid regex", "offset"},
        {route("r", "/x", "^(a$"), "routes[1].host: invalid regex", "missing closing"},
        {route("r", "/x", "a:b:c"), "routes[1].host: ", "brackets"},
        {route("r", "/x", "api.example.com:http"), "routes[1].host: ", "invalid port"},
        {route("r", "/x", "[::1]:x"), "routes[1].host: ", "after the IPv6 literal"},
        {route("r", "/x", "[::g]"), "routes[1].host: ", "invalid IPv6 literal"},
        {route("r", "/x", "a/b"), "routes[1].host: ", "invalid character"},
        {route("r", "/x",
               "b\xc3\xbc"
               "cher.de"),
         "routes[1].host: ", "punycode"},
        {route("r", "/x", "*.[a.com"), "routes[1].host: ", "unterminated '['"},
        {route("r", "/x", "", {"GE T"}), "routes[1].methods: ", "invalid method \"GE T\""},
        {route("r", "/x", "", {""}), "routes[1].methods: ", "invalid method"},
        {both, "routes[1]: ", "mutually exclusive"},
        {withStrip("/a/**", "/a/*"), "routes[1].strip_prefix: ", "literal"},
        {withStrip("/a/**", "api"), "routes[1].strip_prefix: ", "invalid path prefix"},
        {withStrip("/a/**", "/../a"), "routes[1].strip_prefix: ", "escapes_root"},
        {withRewrite("/u/{id}", "v2"), "routes[1].rewrite: ", "must start with '/'"},
        {withRewrite("/u/{id}", "/v2/{nope}"), "routes[1].rewrite: ", "unknown capture \"nope\""},
        {withRewrite("/u/{id}", "/v2/$2"), "routes[1].rewrite: ", "$2 does not exist"},
        {withRewrite("/u/{id}", "/v2/$0"), "routes[1].rewrite: ", "$0 does not exist"},
        {withRewrite("/u/{id}", "/v2/$"), "routes[1].rewrite: ", "'$' must be followed"},
        {withRewrite("/u/{id}", "/v2/{id"), "routes[1].rewrite: ", "unterminated '{'"},
        {withRewrite("/u/{id}", "/v2/}"), "routes[1].rewrite: ", "unmatched '}'"},
        {withRewrite("/u/{id}", "/v2/ x"), "routes[1].rewrite: ", "invalid character"},
        {withRewrite("/u/{id}", "/v2?a=1"), "routes[1].rewrite: ", "'?' or '#'"},
        {withRewrite("/u/{id}", "/v2#f"), "routes[1].rewrite: ", "'?' or '#'"},
        {withRewrite("^/u/([0-9]+)$", "/v2/$2"), "routes[1].rewrite: ", "$2 does not exist"},
        {withRewrite("^/u/(?<n>[0-9]+)$", "/v2/{m}"),
         "routes[1].rewrite: ", "unknown capture \"m\""},
    };
    for (const BadRoute& b : bad) {
        SCOPED_TRACE("path=\"" + b.spec.path + "\" host=\"" + b.spec.host + "\"");
        auto r = Router::compile({route("ok", "/ok"), b.spec}, nullptr);
        ASSERT_FALSE(r.ok());
        const std::string& msg = r.error().msg;
        EXPECT_EQ(msg.rfind(b.prefix, 0), 0u) << msg;
        EXPECT_NE(msg.find(b.excerpt), std::string::npos) << msg;
    }
}

bool anyContains(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) {
        return s.find(a) != std::string::npos && s.find(b) != std::string::npos;
    });
}

TEST(RouterTest, WarnsAboutRoutesThatCanNeverWin) {
    std::vector<std::string> w;
    compileOrDie(
        {
            route("orig", "/a/{x}", "api.example.com", {"GET", "POST"}),
            route("dup", "/a/{y}", "API.example.com", {"post"}),
            route("g", "/b", "", {"GET"}),
            route("p", "/b", "", {"POST"}),
            route("gp", "/b", "", {"GET", "POST"}),
            route("other_host", "/a/{x}", "www.example.com", {"GET"}),
            route("more_methods", "/a/{x}", "api.example.com"),
            route("re1", "^/r$"),
            route("re2", "^/r$", "", {"GET"}),
        },
        &w);
    ASSERT_EQ(w.size(), 3u) << ::testing::PrintToString(w);
    EXPECT_TRUE(anyContains(w, "routes[1] (\"dup\"): can never win", "routes[0] (\"orig\")"));
    EXPECT_TRUE(anyContains(w, "routes[4] (\"gp\"): can never win", "earlier routes"));
    EXPECT_TRUE(anyContains(w, "routes[8] (\"re2\")", "routes[7] (\"re1\")"));
}

TEST(RouterTest, DoesNotWarnAboutDistinctRoutes) {
    std::vector<std::string> w;
    compileOrDie({route("e", "/a/*", "", {"GET"}), route("a", "/a/*"), route("b", "/a/{x}"),
                  route("c", "/a/**"), route("d", "/a/*", "x.com")},
                 &w);
    EXPECT_TRUE(w.empty()) << ::testing::PrintToString(w);
}

TEST(RouterTest, WarnsWhenAHostPatternCarriesAPort) {
    std::vector<std::string> w;
    const Router r = compileOrDie({route("p", "/x", "localhost:8080")}, &w);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].rfind("routes[0].host: port \"8080\" ignored", 0), 0u) << w[0];
    EXPECT_EQ(outcome(r, "GET", "localhost:9090", "/x"), "p");
    EXPECT_EQ(outcome(r, "GET", "localhost", "/x"), "p");
}

// ---- captures ---------------------------------------------------------------------------------

TEST(RouterTest, CapturesNamedSegmentsAsViewsIntoThePath) {
    const Router r = compileOrDie({route("post", "/users/{id}/posts/{post_id}"),
                                   route("file", "/files/**/{name}"), route("none", "/plain/*")});
    const std::string path = "/users/42/posts/abc-7";
    const Match m = r.match("GET", "", path);
    ASSERT_EQ(m.status, MatchStatus::Found);
    EXPECT_EQ(r.routeId(m.route), "post");
    ASSERT_EQ(m.capture_count, 2);
    EXPECT_EQ(m.captures[0], "42");
    EXPECT_EQ(m.captures[1], "abc-7");
    EXPECT_EQ(r.captureName(m.route, 0), "id");
    EXPECT_EQ(r.captureName(m.route, 1), "post_id");
    EXPECT_EQ(r.captureName(m.route, 2), "");
    EXPECT_GE(m.captures[0].data(), path.data());
    EXPECT_LE(m.captures[1].data() + m.captures[1].size(), path.data() + path.size());

    const Match f = r.match("GET", "", "/files/a/b/c.txt");
    ASSERT_EQ(f.status, MatchStatus::Found);
    EXPECT_EQ(r.routeId(f.route), "file");
    ASSERT_EQ(f.capture_count, 1);
    EXPECT_EQ(f.captures[0], "c.txt");

    const Match n = r.match("GET", "", "/plain/x");
    ASSERT_EQ(n.status, MatchStatus::Found);
    EXPECT_EQ(n.capture_count, 0);
    EXPECT_EQ(r.match("GET", "", "/users//posts/x").status, MatchStatus::NotFound);
}

TEST(RouterTest, CapturesRegexGroupsWithNames) {
    const Router r =
        compileOrDie({route("blog", "^/blog/(?<year>[0-9]{4})/(?:x/)?(?<slug>[^/]+)(/amp)?$"),
                      route("many", "^/m/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$")});
    const Match m = r.match("GET", "", "/blog/2024/x/hello");
    ASSERT_EQ(m.status, MatchStatus::Found);
    ASSERT_EQ(m.capture_count, 3);
    EXPECT_EQ(m.captures[0], "2024");
    EXPECT_EQ(m.captures[1], "hello");
    EXPECT_EQ(m.captures[2], "");  // unset optional group
    EXPECT_EQ(r.captureName(m.route, 0), "year");
    EXPECT_EQ(r.captureName(m.route, 1), "slug");
    EXPECT_EQ(r.captureName(m.route, 2), "");

    const Match many = r.match("GET", "", "/m/abcdefghij");
    ASSERT_EQ(many.status, MatchStatus::Found);
    ASSERT_EQ(many.capture_count, kMaxCaptures);
    EXPECT_EQ(many.captures[7], "h");
}

// ---- forwarded path ---------------------------------------------------------------------------

std::string forwarded(const Router& r, const std::string& path, size_t cap = 256) {
    const Match m = r.match("GET", "", path);
    std::string out(cap, '\0');
    const size_t n = r.rewritePath(m, path, out.data(), out.size());
    return n == 0 ? "<none>" : out.substr(0, n);
}

TEST(RouterTest, StripsPrefixOnlyAtSegmentBoundaries) {
    RouteSpec api = route("api", "/api/**");
    api.strip_prefix = "/api";
    RouteSpec slash = route("slash", "/s/**");
    slash.strip_prefix = "/s/";
    RouteSpec any = route("any", "/**");
    any.strip_prefix = "/api";
    RouteSpec root = route("root", "/root/**");
    root.strip_prefix = "/";
    RouteSpec enc = route("enc", "/%7Eu/**");
    enc.strip_prefix = "/%7eu";
    const Router r = compileOrDie({api, slash, any, root, enc});
    EXPECT_EQ(forwarded(r, "/api/users"), "/users");
    EXPECT_EQ(forwarded(r, "/api/users/1/"), "/users/1/");
    EXPECT_EQ(forwarded(r, "/api/"), "/");
    EXPECT_EQ(forwarded(r, "/s/x"), "/x");
    EXPECT_EQ(forwarded(r, "/api"), "/");           // via the catch-all's prefix
    EXPECT_EQ(forwarded(r, "/apiary"), "/apiary");  // not at a boundary: unchanged
    EXPECT_EQ(forwarded(r, "/other/x"), "/other/x");
    EXPECT_EQ(forwarded(r, "/root/x"), "/root/x");
    EXPECT_EQ(forwarded(r, "/~u/x"), "/x");
}

TEST(RouterTest, RewritesFromTemplates) {
    RouteSpec user = route("user", "/users/{id}/posts/{post}");
    user.rewrite = "/v2/posts/{post}/by/$1";
    RouteSpec old = route("old", "^/old/(.*)$");
    old.rewrite = "/new/$1";
    RouteSpec named = route("named", "^/n/(?<id>[0-9]+)$");
    named.rewrite = "/items/{id}/$$";
    RouteSpec dots = route("dots", "^/x(.*)$");
    dots.rewrite = "/$1";
    RouteSpec dots2 = route("dots2", "^/y(.*)$");
    dots2.rewrite = "/a/$1";
    RouteSpec enc = route("enc", "/e/{v}");
    enc.rewrite = "/%7e/{v}";
    const Router r = compileOrDie({user, old, named, dots, dots2, enc});
    EXPECT_EQ(forwarded(r, "/users/7/posts/99"), "/v2/posts/99/by/7");
    EXPECT_EQ(forwarded(r, "/old/a/b/"), "/new/a/b/");
    EXPECT_EQ(forwarded(r, "/old/"), "/new/");
    EXPECT_EQ(forwarded(r, "/n/42"), "/items/42/$");
    EXPECT_EQ(forwarded(r, "/x.."), "<none>");  // "/.." would climb above the root
    EXPECT_EQ(forwarded(r, "/y.."), "/");       // "/a/.." normalises to "/"
    EXPECT_EQ(forwarded(r, "/e/x"), "/~/x");
}

// Found by route_fuzz (UBSan): an unset regex group is a null view, which the rewrite passed to
// memcpy; an unset group contributes nothing.
TEST(RouterTest, RewriteTreatsAnUnsetGroupAsEmpty) {
    RouteSpec opt = route("opt", "^/a(x)?/(y)?$");
    opt.rewrite = "/b$1/c$2";
    const Router r = compileOrDie({opt});
    EXPECT_EQ(forwarded(r, "/a/"), "/b/c");
    EXPECT_EQ(forwarded(r, "/ax/y"), "/bx/cy");
}

TEST(RouterTest, RewriteReportsTooSmallBuffersAndMisses) {
    RouteSpec user = route("user", "/users/{id}");
    user.rewrite = "/v2/users/{id}";
    const Router r = compileOrDie({user, route("plain", "/plain/**")});
    EXPECT_EQ(forwarded(r, "/users/12345", 14), "<none>");
    EXPECT_EQ(forwarded(r, "/users/12345", 15), "/v2/users/12345");
    EXPECT_EQ(forwarded(r, "/plain/abc", 9), "<none>");
    EXPECT_EQ(forwarded(r, "/plain/abc", 10), "/plain/abc");
    EXPECT_EQ(forwarded(r, "/nothing"), "<none>");
}

// ---- misc API ---------------------------------------------------------------------------------

TEST(RouterTest, FormatsAllowInStandardOrderThenConfigOrder) {
    const Router r = compileOrDie({route("a", "/a", "", {"PURGE", "delete", "GET", "LINK"})});
    const Match m = r.match("POST", "", "/a");
    ASSERT_EQ(m.status, MatchStatus::MethodNotAllowed);
    EXPECT_EQ(allowString(r, m.allow), "GET, HEAD, DELETE, PURGE, LINK");
    EXPECT_EQ(allowString(r, 0), "");
    char small[8];
    EXPECT_EQ(r.formatAllow(m.allow, small, sizeof(small)), 0u);
    std::string big(r.maxAllowLength(), '\0');
    const size_t n = r.formatAllow(~uint64_t{0}, big.data(), big.size());
    EXPECT_EQ(n, r.maxAllowLength());
    EXPECT_EQ(big, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE, PURGE, LINK");
}

TEST(RouterTest, CanonicalisesHostHeaders) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"Example.COM", "example.com"},
        {"example.com:8080", "example.com"},
        {"example.com:", "example.com"},
        {"example.com.", "example.com"},
        {"example.com.:80", "example.com"},
        {"  example.com\t", "example.com"},
        {"[::1]:8080", "::1"},
        {"[2001:DB8::1]", "2001:db8::1"},
        {"[::ffff:1.2.3.4]", "::ffff:1.2.3.4"},
        {"127.0.0.1:80", "127.0.0.1"},
        {"", ""},
        {"   ", ""},
        {":80", ""},
        {".", ""},
        {"a:b", ""},
        {"a:1:2", ""},
        {"[::1", ""},
        {"[::1]:", "::1"},
        {"[::1]a", ""},
        {"[]", ""},
        {"[fe80::1%25eth0]", ""},
        {"a b", ""},
        {"a/b", ""},
        {"a@b", ""},
        {"caf\xc3\xa9.com", ""},
        {std::string(kMaxHostLength, 'a'), std::string(kMaxHostLength, 'a')},
        {std::string(kMaxHostLength + 1, 'a'), ""},
        {std::string(kMaxHostLength, 'a') + ".", std::string(kMaxHostLength, 'a')},
        {std::string(kMaxHostLength, 'a') + ".:80", std::string(kMaxHostLength, 'a')},
        {std::string(kMaxHostLength, 'a') + "..", ""},
        {std::string(kMaxHostLength + 1, 'a') + ":80", ""},
    };
    char buf[kHostBufferSize];
    for (const auto& [in, want] : cases) {
        SCOPED_TRACE("host=\"" + in + "\"");
        EXPECT_EQ(canonicalHost(in, buf), want);
    }
}

TEST(RouterTest, IsMovableAndUsableThroughUniquePtr) {
    Router a = compileOrDie({route("x", "/x")});
    auto holder = std::make_unique<Router>(std::move(a));
    EXPECT_EQ(outcome(*holder, "GET", "", "/x"), "x");
    Router b = compileOrDie({route("y", "/y")});
    *holder = std::move(b);
    EXPECT_EQ(outcome(*holder, "GET", "", "/x"), "404");
    EXPECT_EQ(outcome(*holder, "GET", "", "/y"), "y");
    auto next = std::make_unique<Router>(compileOrDie({route("z", "/x")}));
    holder.swap(next);
    EXPECT_EQ(outcome(*holder, "GET", "", "/x"), "z");
}

TEST(RouterTest, ResolvesLargeTablesCorrectly) {
    std::vector<RouteSpec> routes;
    for (int i = 0; i < 5000; ++i) {
        const std::string svc = "svc" + std::to_string(i);
        routes.push_back(route(svc + "_item", "/v1/" + svc + "/items/{id}", "", {"GET"}));
        routes.push_back(route(svc + "_host", "/v1/" + svc + "/**", svc + ".example.com"));
    }
    routes.push_back(route("catch", "/**"));
    const Router r = compileOrDie(routes);
    for (int i = 0; i < 5000; i += 97) {
        const std::string svc = "svc" + std::to_string(i);
        EXPECT_EQ(outcome(r, "GET", "", "/v1/" + svc + "/items/9"), svc + "_item");
        EXPECT_EQ(outcome(r, "GET", svc + ".example.com", "/v1/" + svc + "/items/9"),
                  svc + "_host");
        EXPECT_EQ(outcome(r, "POST", "", "/v1/" + svc + "/items/9"), "catch");
    }
}

TEST(RouterTest, SurvivesPathologicalInputs) {
    const Router r = compileOrDie(
        {route("mid", "/a/**/z"), route("glob", "/g/a*a*a*a*a*b"), route("re", "^/re/(a|aa)+$")});
    std::string deep = "/a";
    for (int i = 0; i < 3000; ++i) {
        deep += "/x";
    }
    EXPECT_EQ(outcome(r, "GET", "", deep), "404");
    EXPECT_EQ(outcome(r, "GET", "", deep + "/z"), "mid");
    EXPECT_EQ(outcome(r, "GET", "", "/g/" + std::string(2000, 'a')), "404");
    // Catastrophic backtracking hits the PCRE2 match limit and counts as no match.
    EXPECT_EQ(outcome(r, "GET", "", "/re/" + std::string(40, 'a') + "c"), "404");
    EXPECT_EQ(outcome(r, "GET", "", "/re/aaa"), "re");
}

// ---- differential test against a brute-force reference ----------------------------------------

// Reference semantics, written independently of the router: a path glob is the original's
// glob-to-regex translation ('**' = any string, '*' = any run without '/', '?' = one non-'/' byte,
// '[...]' = a set, '{name}' = a non-empty run without '/'), applied to the whole path.
bool refGlob(const std::string& p, size_t i, const std::string& s, size_t j,
             std::vector<std::string>& caps) {
    if (i == p.size()) {
        return j == s.size();
    }
    if (p.compare(i, 2, "**") == 0) {
        for (size_t k = j; k <= s.size(); ++k) {
            if (refGlob(p, i + 2, s, k, caps)) {
                return true;
            }
        }
        return false;
    }
    const char c = p[i];
    if (c == '*') {
        for (size_t k = j;; ++k) {
            if (refGlob(p, i + 1, s, k, caps)) {
                return true;
            }
            if (k == s.size() || s[k] == '/') {
                return false;
            }
        }
    }
    if (c == '{') {
        const size_t close = p.find('}', i);
        for (size_t k = j + 1; k <= s.size() && s[k - 1] != '/'; ++k) {
            caps.push_back(s.substr(j, k - j));
            if (refGlob(p, close + 1, s, k, caps)) {
                return true;
            }
            caps.pop_back();
        }
        return false;
    }
    if (j == s.size()) {
        return false;
    }
    if (c == '?') {
        return s[j] != '/' && refGlob(p, i + 1, s, j + 1, caps);
    }
    if (c == '[') {
        if (s[j] == '/') {
            return false;
        }
        const size_t close = p.find(']', i + 2);
        const bool neg = p[i + 1] == '^';
        bool in = false;
        for (size_t k = i + 1 + (neg ? 1 : 0); k < close; ++k) {
            if (k + 2 < close && p[k + 1] == '-') {
                in |= s[j] >= p[k] && s[j] <= p[k + 2];
                k += 2;
            } else {
                in |= s[j] == p[k];
            }
        }
        return in != neg && refGlob(p, close + 1, s, j + 1, caps);
    }
    return c == s[j] && refGlob(p, i + 1, s, j + 1, caps);
}

bool refHostGlob(const std::string& p, size_t i, const std::string& h, size_t j) {
    if (i == p.size()) {
        return j == h.size();
    }
    if (p[i] == '*') {
        for (size_t k = j + 1; k <= h.size(); ++k) {
            if (refHostGlob(p, i + 1, h, k)) {
                return true;
            }
        }
        return false;
    }
    if (j == h.size()) {
        return false;
    }
    return (p[i] == '?' || p[i] == h[j]) && refHostGlob(p, i + 1, h, j + 1);
}

std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// Whole-subject regex match for the reference (std::regex trips GCC 12 warnings under ASan).
class RefRegex {
public:
    RefRegex(const std::string& pattern, bool caseless) {
        int err = 0;
        PCRE2_SIZE off = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              caseless ? PCRE2_CASELESS : 0, &err, &off, nullptr);
        EXPECT_NE(code_, nullptr) << pattern;
    }
    RefRegex(const RefRegex&) = delete;
    RefRegex& operator=(const RefRegex&) = delete;
    ~RefRegex() { pcre2_code_free(code_); }

    bool fullMatch(const std::string& s, std::vector<std::string>* caps) const {
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
        const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_JIT, md, nullptr);
        if (rc >= 0 && caps != nullptr) {
            uint32_t groups = 0;
            pcre2_pattern_info(code_, PCRE2_INFO_CAPTURECOUNT, &groups);
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
            for (uint32_t i = 1; i <= groups && i <= kMaxCaptures; ++i) {
                caps->push_back(ov[2 * i] == PCRE2_UNSET
                                    ? std::string()
                                    : s.substr(ov[2 * i], ov[2 * i + 1] - ov[2 * i]));
            }
        }
        pcre2_match_data_free(md);
        return rc >= 0;
    }

private:
    pcre2_code* code_ = nullptr;
};

struct RefRoute {
    RouteSpec spec;
    std::unique_ptr<RefRegex> path_re;
    std::unique_ptr<RefRegex> host_re;
    std::vector<std::string> methods;  // upper-case, HEAD added after GET
    std::tuple<int, int, int, int, int, int, size_t> rank;
};

bool isRegex(const std::string& s) { return s.size() >= 2 && s.front() == '^' && s.back() == '$'; }

RefRoute makeRef(const RouteSpec& spec, size_t index) {
    RefRoute r;
    r.spec = spec;
    for (const std::string& m : spec.methods) {
        std::string u = m;
        for (char& c : u) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        r.methods.push_back(u);
        if (u == "GET") {
            r.methods.push_back("HEAD");
        }
    }
    int host_class = 3;
    int host_lit = 0;
    if (isRegex(spec.host)) {
        host_class = 2;
        r.host_re = std::make_unique<RefRegex>(spec.host, true);
    } else if (spec.host.find_first_of("*?") != std::string::npos) {
        host_class = 1;
        host_lit = static_cast<int>(std::count_if(spec.host.begin(), spec.host.end(),
                                                  [](char c) { return c != '*' && c != '?'; }));
    } else if (!spec.host.empty()) {
        host_class = 0;
    }
    int path_class;
    int lead = 0;
    int literal = 0;
    int dstar = 0;
    const std::string& p = spec.path;
    if (isRegex(p)) {
        path_class = 2;
        r.path_re = std::make_unique<RefRegex>(p, false);
    } else if (p == "/**") {
        path_class = 3;
    } else if (p.find_first_of("*?[{") == std::string::npos) {
        path_class = 0;
    } else {
        path_class = 1;
        lead = static_cast<int>(p.find_first_of("*?[{"));
        int wild = 0;
        for (size_t i = 0; i < p.size(); ++i) {
            if (p[i] == '[') {
                const size_t close = p.find(']', i + 2);
                wild += static_cast<int>(close - i + 1);
                i = close;
            } else if (p[i] == '{') {
                const size_t close = p.find('}', i);
                wild += static_cast<int>(close - i + 1);
                i = close;
            } else if (p[i] == '*' || p[i] == '?') {
                ++wild;
            }
        }
        literal = static_cast<int>(p.size()) - wild;
        dstar = p.find("**") != std::string::npos ? 1 : 0;
    }
    r.rank = {host_class, host_class == 1 ? -host_lit : 0, path_class, -lead, -literal, dstar,
              index};
    return r;
}

std::string refCanonicalHost(const std::string& h) {
    if (h.empty()) {
        return "";
    }
    if (h[0] == '[') {
        return lower(h.substr(1, h.find(']') - 1));
    }
    return lower(h.substr(0, h.find(':')));
}

bool refHostMatch(const RefRoute& r, const std::string& host) {
    if (r.spec.host.empty()) {
        return true;
    }
    if (host.empty()) {
        return false;
    }
    if (r.host_re) {
        return r.host_re->fullMatch(host, nullptr);
    }
    std::string pat = lower(r.spec.host);
    if (pat.front() == '[') {
        pat = pat.substr(1, pat.size() - 2);
    }
    return refHostGlob(pat, 0, host, 0);
}

bool refPathMatch(const RefRoute& r, const std::string& path, std::vector<std::string>& caps) {
    caps.clear();
    if (r.path_re) {
        return r.path_re->fullMatch(path, &caps);
    }
    return refGlob(r.spec.path, 0, path, 0, caps);
}

std::string describe(const std::vector<RouteSpec>& routes) {
    std::string out;
    for (size_t i = 0; i < routes.size(); ++i) {
        out += "  [" + std::to_string(i) + "] " + routes[i].path + " host=\"" + routes[i].host +
               "\" methods=" + ::testing::PrintToString(routes[i].methods) + "\n";
    }
    return out;
}

TEST(RouterTest, AgreesWithBruteForceReferenceOnRandomTables) {
    std::mt19937_64 rng(0x5eed2024);
    auto pick = [&](const auto& v) -> const auto& { return v[rng() % v.size()]; };
    const std::vector<std::string> vocab = {"a",  "b",  "ab", "ba", "api",
                                            "v1", "v2", "x",  "12", "b1"};
    const std::vector<std::string> pat_segs = {"a",      "b",     "ab", "api", "v1",    "x",  "12",
                                               "*",      "?",     "a*", "*b",  "[ab]*", "?b", "v?",
                                               "[0-9]*", "[^a]?", "{}", "{}",  "**",    "**"};
    // Every third table is wide: many literal siblings (so that nodes switch to hashed lookup
    // and path-compressed edges), keys longer than 8 bytes, keys sharing their first 8 bytes.
    const std::vector<std::string> wide_lits = {
        "a", "b",     "ab",    "api",       "v1",        "x",        "12",
        "c", "items", "users", "abcdefgh1", "abcdefgh2", "abcdefgh", "long-segment-name"};
    std::vector<std::string> wide_pat_segs = wide_lits;
    wide_pat_segs.insert(wide_pat_segs.end(), {"*", "{}", "**", "a*", "abcdefgh?"});
    std::vector<std::string> wide_vocab = wide_lits;
    wide_vocab.insert(wide_vocab.end(), {"ba", "b1", "abcdefgh12", "abcdefg", "long-segment-nam"});
    const std::vector<std::string> regexes = {
        "^/a/([0-9]+)$", "^/(a|b)/.*$", "^/v[0-9]+/([^/]+)$",        "^/api(/.*)?$",
        "^/[ab]+$",      "^/x/(.*)/b$", "^/(?:ab|ba)/([a-z0-9]+)/?$"};
    const std::vector<std::string> route_hosts = {"",
                                                  "",
                                                  "",
                                                  "",
                                                  "api.example.com",
                                                  "*.example.com",
                                                  "*.y.example.com",
                                                  "^(api|www)\\.example\\.com$",
                                                  "API.Example.com",
                                                  "[::1]",
                                                  "w?w.example.com"};
    const std::vector<std::string> req_hosts = {"",
                                                "api.example.com",
                                                "API.EXAMPLE.COM:8080",
                                                "www.example.com",
                                                "a.y.example.com",
                                                "y.example.com",
                                                "other.org",
                                                "[::1]:80",
                                                "wxw.example.com"};
    const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    const std::vector<std::string> req_methods = {"GET",    "HEAD",  "POST",    "PUT",
                                                  "DELETE", "PATCH", "OPTIONS", "get"};

    size_t compared = 0;
    size_t found = 0;
    size_t not_allowed = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        const bool wide = iter % 3 == 0;
        std::vector<RouteSpec> routes;
        const size_t nroutes = 1 + rng() % (wide ? 120 : 24);
        for (size_t k = 0; k < nroutes; ++k) {
            RouteSpec r;
            r.id = "r" + std::to_string(k);
            const int kind = static_cast<int>(rng() % 10);
            if (kind == 0) {
                r.path = pick(regexes);
            } else if (kind == 1) {
                r.path = "/**";
            } else {
                const size_t nseg = rng() % 5;
                bool used_dstar = false;
                int params = 0;
                for (size_t i = 0; i < nseg; ++i) {
                    std::string seg = pick(wide ? wide_pat_segs : pat_segs);
                    if (seg == "**") {
                        if (used_dstar) {
                            seg = "*";
                        }
                        used_dstar = true;
                    }
                    if (seg == "{}") {
                        seg = "{p" + std::to_string(params++) + "}";
                    }
                    r.path += "/" + seg;
                }
                if (nseg == 0 || rng() % 6 == 0) {
                    r.path += "/";
                }
            }
            r.host = pick(route_hosts);
            if (rng() % 10 < 6) {
                const size_t nm = 1 + rng() % 3;
                for (size_t i = 0; i < nm; ++i) {
                    r.methods.push_back(pick(methods));
                }
            }
            routes.push_back(std::move(r));
        }
        auto compiled = Router::compile(routes, nullptr);
        ASSERT_TRUE(compiled.ok()) << compiled.error().msg << "\n" << describe(routes);
        const Router& router = compiled.value();
        std::vector<RefRoute> refs;
        for (size_t k = 0; k < routes.size(); ++k) {
            refs.push_back(makeRef(routes[k], k));
        }

        for (int q = 0; q < 40; ++q) {
            std::string path;
            const size_t depth = rng() % 5;
            for (size_t i = 0; i < depth; ++i) {
                path += "/" + pick(wide ? wide_vocab : vocab);
            }
            if (depth == 0 || rng() % 5 == 0) {
                path += "/";
            }
            const std::string& host = pick(req_hosts);
            const std::string& method = pick(req_methods);
            std::string umethod = method;
            for (char& c : umethod) {
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
            const std::string chost = refCanonicalHost(host);

            // Reference: best by rank among full matches; else the union of methods.
            const RefRoute* best = nullptr;
            std::vector<std::string> best_caps;
            bool any_path_host = false;
            std::vector<std::string> allow;
            for (const RefRoute& rr : refs) {
                std::vector<std::string> caps;
                if (!refHostMatch(rr, chost) || !refPathMatch(rr, path, caps)) {
                    continue;
                }
                any_path_host = true;
                const bool method_ok =
                    rr.methods.empty() ||
                    std::find(rr.methods.begin(), rr.methods.end(), umethod) != rr.methods.end();
                if (method_ok && (best == nullptr || rr.rank < best->rank)) {
                    best = &rr;
                    best_caps = caps;
                }
                allow.insert(allow.end(), rr.methods.begin(), rr.methods.end());
            }
            std::string want;
            if (best != nullptr) {
                want = best->spec.id;
                for (const std::string& c : best_caps) {
                    want += " [" + c + "]";
                }
            } else if (any_path_host) {
                want = "405";
                const char* order[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
                bool first = true;
                for (const char* m : order) {
                    if (std::find(allow.begin(), allow.end(), m) != allow.end()) {
                        want += first ? " " : ", ";
                        want += m;
                        first = false;
                    }
                }
            } else {
                want = "404";
            }

            const Match m = router.match(method, host, path);
            std::string got;
            if (m.status == MatchStatus::Found) {
                got = std::string(router.routeId(m.route));
                for (size_t i = 0; i < m.capture_count; ++i) {
                    got += " [" + std::string(m.captures[i]) + "]";
                }
                ++found;
            } else if (m.status == MatchStatus::MethodNotAllowed) {
                got = "405 " + allowString(router, m.allow);
                ++not_allowed;
            } else {
                got = "404";
            }
            ASSERT_EQ(got, want) << method << " host=\"" << host << "\" " << path << "\n"
                                 << describe(routes);
            ++compared;
        }
    }
    EXPECT_EQ(compared, 1500u * 40u);
    // The generator must exercise all three outcomes substantially.
    EXPECT_GT(found, compared / 4);
    EXPECT_GT(not_allowed, compared / 50);
}

}  // namespace
}  // namespace photon::mod::routing
