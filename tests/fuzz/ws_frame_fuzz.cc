// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the WebSocket frame scanner: arbitrary bytes in both directions, fed
// whole and in arbitrary splits. Checks that consumed bytes never exceed the input, that
// splitting the input never changes what is consumed or found, and that an error is sticky.
// fuzz-sources: src/modules/websocket/frame.cc
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "modules/websocket/frame.h"

using photon::mod::websocket::FrameScanner;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    FrameScanner::Options o;
    o.from_client = (data[0] & 1) != 0;
    o.extensions = (data[0] & 2) != 0;
    o.max_message = (data[0] & 4) != 0 ? 0 : static_cast<uint64_t>(data[1]) * 97;
    size_t split = data[0] >> 3;  // piece size for the second pass (0: byte by byte)
    const uint8_t* p = data + 2;
    size_t n = size - 2;

    FrameScanner whole(o);
    auto r = whole.scan(p, n);
    FUZZ_CHECK(r.consumed <= n);

    // The same bytes in pieces, the unconsumed tail carried over as a relay's buffer does.
    FrameScanner parts(o);
    size_t done = 0, held = 0, messages = 0;
    uint16_t err = 0;
    size_t piece = split == 0 ? 1 : split;
    while (done + held < n && err == 0) {
        size_t avail = std::min(n, done + held + piece) - done;
        auto q = parts.scan(p + done, avail);
        FUZZ_CHECK(q.consumed <= avail);
        done += q.consumed;
        held = avail - q.consumed;
        messages += q.messages;
        err = q.error;
    }
    FUZZ_CHECK(done == r.consumed);
    FUZZ_CHECK(err == r.error);
    FUZZ_CHECK(messages == r.messages);
    if (r.error != 0) {
        auto again = whole.scan(p, n);
        FUZZ_CHECK(again.error == r.error && again.consumed == 0);
    }
    return 0;
}
