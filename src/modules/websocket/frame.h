// SPDX-License-Identifier: Apache-2.0
// RFC 6455 frame headers, read in place: the relay checks frames without copying or unmasking
// their payloads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace photon::mod::websocket {

/// Close codes the gateway sends (RFC 6455 §7.4.1).
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseTooBig = 1009;

/// Walks the frames of one direction of an upgraded connection, a buffer at a time. It reads
/// each frame header whole (2 to 14 bytes), checks it, then counts the payload bytes that
/// follow without looking at them. Bytes it has passed over may be forwarded; a header that is
/// not complete yet is left for the next call.
class FrameScanner {
public:
    struct Options {
        bool from_client = true;   // client frames must be masked, server frames must not
        bool extensions = false;   // an extension was negotiated: RSV bits may be set
        uint64_t max_message = 0;  // largest message (all its fragments' payloads); 0 = no limit
    };
    struct Result {
        size_t consumed = 0;    // bytes that may be forwarded (they end before any bad header)
        uint16_t error = 0;     // 0, or the close code of the violation found at `consumed`
        uint32_t messages = 0;  // data messages whose last byte lies in the consumed bytes
    };

    FrameScanner() = default;
    explicit FrameScanner(const Options& o) : opt_(o) {}

    /// Scans buf[0, n). Once it reported an error it reports the same error again.
    Result scan(const uint8_t* buf, size_t n);

    /// Between two frames: everything scanned so far ends with a whole frame, so a frame of
    /// the gateway's own may follow it on the wire.
    bool atBoundary() const { return payload_left_ == 0; }
    /// Payload bytes of the current frame not scanned yet.
    uint64_t payloadLeft() const { return payload_left_; }

private:
    Options opt_;
    uint64_t payload_left_ = 0;  // of the frame being passed over
    uint64_t message_size_ = 0;  // payload bytes of the data message in progress
    bool in_message_ = false;    // a fragmented data message is in progress (no FIN yet)
    bool ends_message_ = false;  // the frame being passed over is a message's last
    uint16_t error_ = 0;
};

/// Writes a close frame with `code` (no reason) into out[0..8): unmasked (to a client, 4 bytes)
/// or masked with `mask` (to a server, 8 bytes). Returns its length.
size_t writeClose(uint8_t* out, uint16_t code, const uint8_t* mask);

}  // namespace photon::mod::websocket
