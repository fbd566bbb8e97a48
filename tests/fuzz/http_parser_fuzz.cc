// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the HTTP/1.1 parser: request, response and chunked decoding invariants.
// Chunked bodies are decoded whole and in input-driven splits: both must give the same status,
// length and payload bytes.
// fuzz-sources: src/core/http_parser.cc
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "core/http_parser.h"
#include "fuzz_check.h"

using namespace photon::core::http;

namespace {

// The first input byte picks the limits, so small limits (and their edge cases) are reached.
Limits pickLimits(uint8_t sel) {
    Limits lim;
    switch (sel % 4) {
        case 0:
            break;
        case 1:
            lim.max_request_line = 32;
            lim.max_header_bytes = 128;
            lim.max_headers = 4;
            break;
        case 2:
            lim.max_request_line = 16;
            lim.max_header_bytes = 4096;
            lim.max_headers = 1000;  // above kMaxHeaders
            break;
        default:
            lim.max_request_line = 200;
            lim.max_header_bytes = 64;
            lim.max_headers = 2;
            break;
    }
    return lim;
}

bool inside(std::string_view v, const char* lo, const char* hi) {
    if (v.empty()) {
        return true;
    }
    return v.data() >= lo && v.data() + v.size() <= hi;
}

void checkHeaders(const HeaderList& hl, const char* lo, const char* hi) {
    FUZZ_CHECK(hl.size() <= kMaxHeaders);
    for (const HeaderField& f : hl) {
        FUZZ_CHECK(!f.name.empty());
        FUZZ_CHECK(inside(f.name, lo, hi));
        FUZZ_CHECK(inside(f.value, lo, hi));
        FUZZ_CHECK(f.value.empty() || (f.value.front() != ' ' && f.value.back() != ' '));
        FUZZ_CHECK(hl.find(f.name) != nullptr);
    }
}

void checkRequest(ParseStatus st, const RequestHead& h, const uint8_t* data, size_t len) {
    const char* lo = reinterpret_cast<const char*>(data);
    if (st == ParseStatus::Complete) {
        FUZZ_CHECK(h.head_length > 0 && h.head_length <= len);
        const char* hi = lo + h.head_length;
        FUZZ_CHECK(h.error.status == 0);
        FUZZ_CHECK(!h.method.empty() && inside(h.method, lo, hi));
        FUZZ_CHECK(!h.target.empty() && inside(h.target, lo, hi));
        FUZZ_CHECK(inside(h.query, lo, hi));
        FUZZ_CHECK(inside(h.host, lo, hi));
        FUZZ_CHECK(h.path == "/" || inside(h.path, lo, hi));
        FUZZ_CHECK(h.framing != BodyFraming::UntilClose);
        FUZZ_CHECK((h.framing == BodyFraming::ContentLength) == (h.content_length > 0));
        FUZZ_CHECK(!h.upgrade || h.version == Version::Http11);
        // The head ends with an empty line.
        FUZZ_CHECK(h.head_length >= 4 && std::memcmp(hi - 4, "\r\n\r\n", 4) == 0);
        checkHeaders(h.headers, lo, hi);
    } else if (st == ParseStatus::Error) {
        uint16_t s = h.error.status;
        FUZZ_CHECK(s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
        FUZZ_CHECK(!h.error.reason.empty());
    }
}

void checkResponse(ParseStatus st, const ResponseHead& h, const uint8_t* data, size_t len) {
    const char* lo = reinterpret_cast<const char*>(data);
    if (st == ParseStatus::Complete) {
        FUZZ_CHECK(h.head_length > 0 && h.head_length <= len);
        const char* hi = lo + h.head_length;
        FUZZ_CHECK(h.status >= 100 && h.status <= 599);
        FUZZ_CHECK(inside(h.reason, lo, hi));
        FUZZ_CHECK(h.framing != BodyFraming::UntilClose || !h.keep_alive);
        FUZZ_CHECK(!(h.interim && h.switching_protocols));
        checkHeaders(h.headers, lo, hi);
    } else if (st == ParseStatus::Error) {
        FUZZ_CHECK(h.error.status == 502);
        FUZZ_CHECK(!h.error.reason.empty());
    }
}

// Feeds data as a growing buffer; the step sizes come from the input itself.
template <typename Head, typename Fn>
ParseStatus feedGrowing(const uint8_t* data, size_t len, Head& h, Fn parse, size_t step) {
    size_t hint = 0;
    ParseStatus st = ParseStatus::Incomplete;
    size_t n = 0;
    for (;;) {
        st = parse(reinterpret_cast<const char*>(data), n, h, hint);
        if (st != ParseStatus::Incomplete || n == len) {
            return st;
        }
        n = len - n < step ? len : n + step;
        step = step * 2 + 1 > 64 ? 1 : step * 2 + 1;
    }
}

// Results of a one-shot and an incremental parse of the same bytes must agree.
void checkConsistent(ParseStatus whole, ParseStatus inc, size_t whole_len, size_t inc_len) {
    if (whole == ParseStatus::Complete || inc == ParseStatus::Complete) {
        FUZZ_CHECK(whole == inc);
        FUZZ_CHECK(whole_len == inc_len);
    }
    if (whole == ParseStatus::Incomplete) {
        FUZZ_CHECK(inc == ParseStatus::Incomplete);
    }
    if (inc == ParseStatus::Error) {
        FUZZ_CHECK(whole == ParseStatus::Error);
    }
}

RequestHead g_req_a;
RequestHead g_req_b;
ResponseHead g_resp_a;
ResponseHead g_resp_b;

struct PayloadCheck {
    const char* lo;
    const char* hi;
    uint64_t total;
    uint64_t hash;  // FNV-1a of the payload bytes, so that split feeds must decode the same bytes
};

void onPayload(void* ctx, const char* p, size_t n) {
    auto* c = static_cast<PayloadCheck*>(ctx);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(p >= c->lo && p + n <= c->hi);
    c->total += n;
    for (size_t i = 0; i < n; ++i) {
        c->hash = (c->hash ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ULL;
    }
}

constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

void fuzzChunked(const uint8_t* data, size_t len, uint8_t sel) {
    ChunkedLimits lim;
    if (sel & 4) {
        lim.max_chunk_size = 4096;
        lim.max_chunk_line = 8;
        lim.max_trailer_bytes = 16;
    }
    const char* p = reinterpret_cast<const char*>(data);
    ChunkedDecoder whole(lim);
    PayloadCheck wc{p, p + len, 0, kFnvBasis};
    auto r = whole.feed(p, len, &onPayload, &wc);
    FUZZ_CHECK(r.consumed <= len);
    FUZZ_CHECK(wc.total == whole.payloadBytes());
    FUZZ_CHECK(r.status != ChunkedDecoder::Status::NeedMore || r.consumed == len);
    FUZZ_CHECK((r.status == ChunkedDecoder::Status::Error) == whole.failed());
    FUZZ_CHECK(!whole.failed() || !whole.error().reason.empty());

    ChunkedDecoder pieces(lim);
    PayloadCheck pc{p, p + len, 0, kFnvBasis};
    size_t off = 0;
    size_t step = 1 + (sel >> 4);
    ChunkedDecoder::Status st = ChunkedDecoder::Status::NeedMore;
    while (off < len && st == ChunkedDecoder::Status::NeedMore) {
        size_t n = len - off < step ? len - off : step;
        auto s = pieces.feed(p + off, n, &onPayload, &pc);
        FUZZ_CHECK(s.consumed <= n);
        off += s.consumed;
        st = s.status;
        if (st == ChunkedDecoder::Status::NeedMore) {
            FUZZ_CHECK(s.consumed == n);
        }
        step = step * 3 % 17 + 1;
    }
    FUZZ_CHECK(st == r.status);
    FUZZ_CHECK(off == r.consumed);
    FUZZ_CHECK(pieces.payloadBytes() == whole.payloadBytes());
    FUZZ_CHECK(pc.total == wc.total);
    FUZZ_CHECK(pc.hash == wc.hash);
    FUZZ_CHECK(pieces.error().status == whole.error().status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const uint8_t sel = data[0];
    const uint8_t* in = data + 1;
    const size_t len = size - 1;
    const char* buf = reinterpret_cast<const char*>(in);
    const Limits lim = pickLimits(sel);
    const size_t step = 1 + (sel >> 5);

    size_t hint = 0;
    ParseStatus rw = parseRequest(buf, len, lim, g_req_a, hint);
    checkRequest(rw, g_req_a, in, len);
    auto req = [&lim](const char* b, size_t n, RequestHead& h, size_t& sh) {
        return parseRequest(b, n, lim, h, sh);
    };
    ParseStatus ri = feedGrowing(in, len, g_req_b, req, step);
    checkRequest(ri, g_req_b, in, len);
    checkConsistent(rw, ri, g_req_a.head_length, g_req_b.head_length);
    if (rw == ParseStatus::Complete) {
        FUZZ_CHECK(g_req_a.method == g_req_b.method && g_req_a.target == g_req_b.target);
        FUZZ_CHECK(g_req_a.headers.size() == g_req_b.headers.size());
        FUZZ_CHECK(g_req_a.framing == g_req_b.framing);
        FUZZ_CHECK(g_req_a.content_length == g_req_b.content_length);
        FUZZ_CHECK(g_req_a.keep_alive == g_req_b.keep_alive);
        FUZZ_CHECK(g_req_a.host == g_req_b.host);
    }

    const bool was_head = (sel & 8) != 0;
    hint = 0;
    ParseStatus sw = parseResponse(buf, len, lim, g_resp_a, hint, was_head);
    checkResponse(sw, g_resp_a, in, len);
    auto resp = [&lim, was_head](const char* b, size_t n, ResponseHead& h, size_t& sh) {
        return parseResponse(b, n, lim, h, sh, was_head);
    };
    ParseStatus si = feedGrowing(in, len, g_resp_b, resp, step);
    checkResponse(si, g_resp_b, in, len);
    checkConsistent(sw, si, g_resp_a.head_length, g_resp_b.head_length);
    if (sw == ParseStatus::Complete) {
        FUZZ_CHECK(g_resp_a.status == g_resp_b.status);
        FUZZ_CHECK(g_resp_a.framing == g_resp_b.framing);
        FUZZ_CHECK(g_resp_a.headers.size() == g_resp_b.headers.size());
    }

    fuzzChunked(in, len, sel);
    // A chunked body usually follows a head: decode what comes after a complete one too.
    if (rw == ParseStatus::Complete && g_req_a.framing == BodyFraming::Chunked) {
        fuzzChunked(in + g_req_a.head_length, len - g_req_a.head_length, sel);
    }
    return 0;
}
