// SPDX-License-Identifier: Apache-2.0
// Request id generation.
#include "modules/requestid/request_id.h"

#include <cstring>

namespace photon::mod::requestid {

namespace {
constexpr char kHex[] = "0123456789abcdef";
}

void Generator::init(uint64_t start_ns, unsigned slot) {
    uint64_t v = (start_ns & ~uint64_t{0xff}) | (slot & 0xffu);
    std::memcpy(prefix_, "req-", 4);
    for (int i = 15; i >= 0; --i) {
        prefix_[4 + i] = kHex[v & 0xf];
        v >>= 4;
    }
    prefix_[20] = '-';
    counter_ = 0;
}

size_t Generator::next(char* out) {
    std::memcpy(out, prefix_, sizeof prefix_);
    uint64_t c = counter_++;
    // At least 8 hex digits (the original's shape), more once the counter needs them.
    int digits = 8;
    while (digits < 16 && (c >> (4 * digits)) != 0) {
        ++digits;
    }
    char* p = out + sizeof prefix_;
    for (int i = digits - 1; i >= 0; --i) {
        p[i] = kHex[c & 0xf];
        c >>= 4;
    }
    return sizeof prefix_ + static_cast<size_t>(digits);
}

bool isSaneIncoming(std::string_view id) {
    if (id.empty() || id.size() > kIncomingMax) {
        return false;
    }
    for (unsigned char c : id) {
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

}  // namespace photon::mod::requestid
