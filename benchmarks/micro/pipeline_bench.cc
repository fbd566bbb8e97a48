// SPDX-License-Identifier: Apache-2.0
// The request pipeline: walking a route's handler chain, and each CORS and transform step, on a
// socket-less request (no I/O).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "modules/cors/cors.h"
#include "modules/transform/transform.h"
#include "worker/http_conn.h"
#include "worker/module.h"
#include "worker/phases.h"
#include "worker/proxy.h"

namespace {

using namespace photon;
using worker::Request;
using worker::Verdict;

class NullHost final : public worker::RequestHost {
public:
    void proxy(Request&) override {}
    void sendHead(Request&) override {}
    void resumed(Request&) override {}
};

Verdict next(Request&, const void*) { return Verdict::Next; }

// A parsed request and an empty response head, reset for every iteration.
struct Fixture {
    std::string text =
        "GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench\r\n"
        "Accept: */*\r\nOrigin: https://app.example.com\r\nX-Debug: 1\r\n\r\n";
    core::http::RequestHead head;
    core::http::ResponseHead resp;
    worker::RequestMeta meta;
    worker::RouteRt route;
    Request req;
    NullHost host;

    Fixture() {
        std::memcpy(meta.id, "req-0000000000000001-00000001", 29);
        meta.id_len = 29;
        std::memcpy(meta.method, "GET", 3);
        meta.method_len = 3;
        route.id = "users";
        req.host_ = &host;
        req.head = &head;
        req.resp = &resp;
        req.meta = &meta;
        req.route = &route;
        req.client_ip = "192.0.2.7";
    }
    void reparse() {
        size_t hint = 0;
        core::http::Limits lim;
        core::http::parseRequest(text.data(), text.size(), lim, head, hint);
    }
    void resetRequest() {
        req.reset();
        req.clearSlots();
        resp.headers.count = 0;
    }
};

// Walking the Route..Proxy part of a chain of N handlers that each say Next.
void BM_Pipeline_ChainWalk(benchmark::State& state) {
    Fixture f;
    worker::RouteChainBuilder b;
    for (int i = 0; i < state.range(0); ++i) {
        b.add(i % 2 ? worker::Phase::Access : worker::Phase::Proxy, next, nullptr,
              static_cast<uint16_t>(i % 4));
    }
    worker::Chain chain = b.build();
    for (auto _ : state) {
        f.req.reset();
        f.req.chain = &chain;
        worker::runAfterRoute(f.req);
        benchmark::DoNotOptimize(f.req);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pipeline_ChainWalk)->Arg(0)->Arg(2)->Arg(4)->Arg(8);

core::CorsConfig corsConfig() {
    core::CorsConfig c;
    c.allowed_origins = {"https://admin.example.com", "https://app.example.com"};
    c.allowed_methods = {"GET", "POST"};
    c.allowed_headers = {"Content-Type"};
    return c;
}

// CORS on an actual request from an allowed origin: the Access check and the response grants.
void BM_Pipeline_CorsActualRequest(benchmark::State& state) {
    Fixture f;
    f.reparse();
    mod::cors::CorsConf conf = mod::cors::CorsConf::compile(corsConfig());
    for (auto _ : state) {
        f.resetRequest();
        mod::cors::accessHandler(f.req, &conf);
        mod::cors::headerHandler(f.req, &conf);
        benchmark::DoNotOptimize(f.resp.headers.count);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pipeline_CorsActualRequest);

mod::transform::TransformConf transformConf(int op) {
    core::TransformConfig c;
    switch (op) {
        case 0:
            c.request_headers.remove = {"X-Debug"};
            break;
        case 1:
            c.request_headers.set = {{"Accept", "application/json"}};
            break;
        case 2:
            c.request_headers.add = {{"X-Env", "prod"}};
            break;
        case 3:
            c.request_headers.add = {{"X-Trace", "${request_id}/${route_id}"}};
            break;
        default:
            c.request_headers.remove = {"X-Debug"};
            c.request_headers.set = {{"X-Route", "${route_id}"}};
            c.request_headers.add = {{"X-Env", "prod"}};
            break;
    }
    auto k = mod::transform::TransformConf::compile(c);
    mod::transform::TransformConf conf = std::move(k.value());
    return conf;
}

// One request transform on a 5-field request: -1 only restores the fields (the baseline to
// subtract), 0 remove, 1 set, 2 add (constant), 3 add with two variables, 4 the three together
// (remove, set with a variable, add).
void BM_Pipeline_RequestTransform(benchmark::State& state) {
    Fixture f;
    f.reparse();
    const size_t n = f.head.headers.count;
    std::array<core::http::HeaderField, 8> saved;
    std::copy_n(f.head.headers.items.begin(), n, saved.begin());
    int op = static_cast<int>(state.range(0));
    mod::transform::TransformConf conf = transformConf(op < 0 ? 0 : op);
    conf.index();
    for (auto _ : state) {
        std::copy_n(saved.begin(), n, f.head.headers.items.begin());
        f.head.headers.count = static_cast<uint16_t>(n);
        f.req.reset();
        if (op >= 0) {
            mod::transform::requestHandler(f.req, &conf);
        }
        benchmark::DoNotOptimize(f.head.headers);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pipeline_RequestTransform)->DenseRange(-1, 4);

// The response transform with the built-in-like additions: add two constant fields.
void BM_Pipeline_ResponseTransform(benchmark::State& state) {
    Fixture f;
    core::TransformConfig c;
    c.response_headers.add = {{"X-Served-By", "photon"}, {"X-Rid", "${request_id}"}};
    auto k = mod::transform::TransformConf::compile(c);
    mod::transform::TransformConf conf = std::move(k.value());
    conf.index();
    for (auto _ : state) {
        f.resp.headers.count = 0;
        f.req.reset();
        mod::transform::responseHandler(f.req, &conf);
        benchmark::DoNotOptimize(f.resp.headers);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pipeline_ResponseTransform);

}  // namespace
