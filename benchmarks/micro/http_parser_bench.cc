// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of the HTTP/1.1 head parser and chunked decoder (the proxy's per-request cost).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "../../tests/fixtures/http_samples.h"
#include "core/http_parser.h"

namespace {

using namespace photon::core::http;

// A typical browser navigation request, about 400 bytes.
const std::string kBrowserGet =
    "GET /products/list?category=books&page=2 HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "Connection: keep-alive\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Referer: https://shop.example.com/\r\n"
    "Cookie: session=9f8e7d6c5b4a; theme=dark\r\n"
    "\r\n";

using photon::testdata::kApiResponse;

// Parses a ~400-byte browser GET that arrived in one read.
void BM_HttpParse_BrowserGet(benchmark::State& state) {
    auto head = std::make_unique<RequestHead>();
    const Limits lim;
    for (auto _ : state) {
        size_t hint = 0;
        ParseStatus st = parseRequest(kBrowserGet.data(), kBrowserGet.size(), lim, *head, hint);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(head->head_length);
    }
    if (head->head_length != kBrowserGet.size()) {
        state.SkipWithError("parse failed");
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserGet.size()));
}
BENCHMARK(BM_HttpParse_BrowserGet);

// Parses a 10-field upstream API response that arrived in one read.
void BM_HttpParse_ApiResponse(benchmark::State& state) {
    auto head = std::make_unique<ResponseHead>();
    const Limits lim;
    for (auto _ : state) {
        size_t hint = 0;
        ParseStatus st =
            parseResponse(kApiResponse.data(), kApiResponse.size(), lim, *head, hint, false);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(head->head_length);
    }
    if (head->head_length != kApiResponse.size()) {
        state.SkipWithError("parse failed");
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kApiResponse.size()));
}
BENCHMARK(BM_HttpParse_ApiResponse);

// Parses a request with N extra 40-byte fields: cost per field.
void BM_HttpParse_HeaderCount(benchmark::State& state) {
    std::string req = "GET /x HTTP/1.1\r\nHost: h\r\n";
    for (int64_t i = 0; i < state.range(0); ++i) {
        req += "X-Field-" + std::to_string(i) + ": some-typical-value-0123456789\r\n";
    }
    req += "\r\n";
    auto head = std::make_unique<RequestHead>();
    Limits lim;
    lim.max_headers = static_cast<uint32_t>(kMaxHeaders);
    for (auto _ : state) {
        size_t hint = 0;
        ParseStatus st = parseRequest(req.data(), req.size(), lim, *head, hint);
        benchmark::DoNotOptimize(st);
    }
    if (head->head_length != req.size()) {
        state.SkipWithError("parse failed");
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(req.size()));
}
BENCHMARK(BM_HttpParse_HeaderCount)->Arg(4)->Arg(16)->Arg(64)->Arg(120);

// The browser GET delivered in reads of N bytes (slowloris-style trickle costs stay linear).
void BM_HttpParse_BrowserGetInReads(benchmark::State& state) {
    auto head = std::make_unique<RequestHead>();
    const Limits lim;
    const size_t step = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        size_t hint = 0;
        ParseStatus st = ParseStatus::Incomplete;
        for (size_t n = step; st == ParseStatus::Incomplete; n += step) {
            size_t len = n < kBrowserGet.size() ? n : kBrowserGet.size();
            st = parseRequest(kBrowserGet.data(), len, lim, *head, hint);
        }
        benchmark::DoNotOptimize(st);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpParse_BrowserGetInReads)->Arg(1)->Arg(64)->Arg(512);

// Decodes a 16 KiB chunked body made of 1 KiB chunks, counting payload only.
void BM_HttpParse_ChunkedBody(benchmark::State& state) {
    std::string body;
    for (int i = 0; i < 16; ++i) {
        body += "400\r\n" + std::string(1024, 'x') + "\r\n";
    }
    body += "0\r\n\r\n";
    for (auto _ : state) {
        ChunkedDecoder d;
        auto r = d.feed(body.data(), body.size());
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_HttpParse_ChunkedBody);

}  // namespace
