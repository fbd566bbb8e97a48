// SPDX-License-Identifier: Apache-2.0
#include "modules/websocket/frame.h"

#include <algorithm>
#include <cstring>

namespace photon::mod::websocket {

namespace {
constexpr uint8_t kOpContinuation = 0x0;
constexpr uint8_t kOpText = 0x1;
constexpr uint8_t kOpBinary = 0x2;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kOpPing = 0x9;
constexpr uint8_t kOpPong = 0xA;
}  // namespace

FrameScanner::Result FrameScanner::scan(const uint8_t* buf, size_t n) {
    Result r;
    if (error_ != 0) {
        r.error = error_;
        return r;
    }
    size_t i = 0;
    while (i < n) {
        if (payload_left_ != 0) {
            uint64_t k = std::min<uint64_t>(payload_left_, n - i);
            i += static_cast<size_t>(k);
            payload_left_ -= k;
            if (payload_left_ == 0 && ends_message_) {
                ends_message_ = false;
                ++r.messages;
            }
            continue;
        }
        if (n - i < 2) {
            break;
        }
        uint8_t b0 = buf[i], b1 = buf[i + 1];
        bool fin = (b0 & 0x80) != 0;
        uint8_t rsv = b0 & 0x70;
        uint8_t op = b0 & 0x0F;
        bool masked = (b1 & 0x80) != 0;
        uint8_t len7 = b1 & 0x7F;
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        size_t head = 2 + ext + (masked ? 4 : 0);
        if (n - i < head) {
            break;  // the rest of the header comes with the next read
        }
        uint64_t len = len7;
        if (len7 == 126) {
            len = static_cast<uint64_t>(buf[i + 2]) << 8 | buf[i + 3];
        } else if (len7 == 127) {
            len = 0;
            for (size_t k = 0; k < 8; ++k) {
                len = len << 8 | buf[i + 2 + k];
            }
        }
        uint16_t err = 0;
        if (masked != opt_.from_client) {
            err = kCloseProtocolError;  // clients mask every frame, servers none (§5.1)
        } else if (rsv != 0 && !opt_.extensions) {
            err = kCloseProtocolError;
        } else if ((len7 == 126 && len < 126) || (len7 == 127 && len <= 0xFFFF) ||
                   (len >> 63) != 0) {
            err = kCloseProtocolError;  // not the minimal length encoding, or the top bit set
        } else if ((op & 0x8) != 0) {
            if (op != kOpClose && op != kOpPing && op != kOpPong) {
                err = kCloseProtocolError;  // reserved control opcode
            } else if (!fin || len > 125 || (op == kOpClose && len == 1)) {
                err = kCloseProtocolError;
            }
        } else if (op != kOpContinuation && op != kOpText && op != kOpBinary) {
            err = kCloseProtocolError;  // reserved data opcode
        } else if ((op == kOpContinuation) != in_message_) {
            err = kCloseProtocolError;  // a continuation with nothing to continue, or a new
                                        // message inside a fragmented one
        } else {
            if (op != kOpContinuation) {
                message_size_ = 0;
            }
            if (opt_.max_message != 0 && len > opt_.max_message - message_size_) {
                err = kCloseTooBig;
            } else {
                message_size_ += len;
                in_message_ = !fin;
                ends_message_ = fin;
            }
        }
        if (err != 0) {
            error_ = err;
            r.error = err;
            break;
        }
        i += head;
        payload_left_ = len;
        if (len == 0 && ends_message_) {
            ends_message_ = false;
            ++r.messages;
        }
    }
    r.consumed = i;
    return r;
}

size_t writeClose(uint8_t* out, uint16_t code, const uint8_t* mask) {
    out[0] = 0x80 | kOpClose;
    uint8_t c[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code & 0xFF)};
    if (mask == nullptr) {
        out[1] = 2;
        out[2] = c[0];
        out[3] = c[1];
        return 4;
    }
    out[1] = 0x80 | 2;
    std::memcpy(out + 2, mask, 4);
    out[6] = c[0] ^ mask[0];
    out[7] = c[1] ^ mask[1];
    return 8;
}

}  // namespace photon::mod::websocket
