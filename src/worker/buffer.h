// SPDX-License-Identifier: Apache-2.0
// Fixed-capacity byte buffers recycled through a per-worker free list (no per-request malloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace photon::worker {

/// A contiguous buffer: [0, rpos) consumed, [rpos, wpos) pending data, [wpos, cap) free space.
/// Owned by one connection at a time; returned to its BufferPool when released.
struct Buffer {
    char* data = nullptr;
    uint32_t cap = 0;
    uint32_t rpos = 0;
    uint32_t wpos = 0;
    bool overflowed = false;  // an append since clear() did not fit whole

    size_t size() const { return wpos - rpos; }
    bool empty() const { return wpos == rpos; }
    size_t space() const { return cap - wpos; }
    char* readPtr() { return data + rpos; }
    const char* readPtr() const { return data + rpos; }
    char* writePtr() { return data + wpos; }
    void consume(size_t n) {
        rpos += static_cast<uint32_t>(n);
        if (rpos == wpos) {
            rpos = wpos = 0;
        }
    }
    void produce(size_t n) { wpos += static_cast<uint32_t>(n); }
    /// Accounts for `n` bytes a receive wrote at offset `off` (where the free space began when
    /// it was set up). If the data was consumed or compacted meanwhile (both only move the end
    /// of the data down), the bytes are moved to follow it.
    void produceAt(uint32_t off, size_t n) {
        if (off != wpos) {
            std::memmove(data + wpos, data + off, n);
        }
        wpos += static_cast<uint32_t>(n);
    }
    void clear() {
        rpos = wpos = 0;
        overflowed = false;
    }
    /// Moves pending data to the front so the free space is contiguous at the end.
    void compact() {
        if (rpos > 0) {
            size_t n = size();
            if (n) {
                std::memmove(data, data + rpos, n);
            }
            rpos = 0;
            wpos = static_cast<uint32_t>(n);
        }
    }
    /// Appends a string literal (its size known at compile time, so the copy is inlined).
    template <size_t N>
    void appendLit(const char (&s)[N]) {
        constexpr size_t n = N - 1;
        if (n <= space()) {
            std::memcpy(data + wpos, s, n);
            wpos += static_cast<uint32_t>(n);
        } else {
            append(s, n);
        }
    }
    /// Appends what fits; returns the number of bytes copied.
    size_t append(const void* p, size_t n) {
        if (n > space()) {
            overflowed = true;
            n = space();
        }
        if (n == 0) {
            return 0;  // p may be null for an empty view
        }
        std::memcpy(data + wpos, p, n);
        wpos += static_cast<uint32_t>(n);
        return n;
    }
};

/// Copies n bytes like memcpy, with the short lengths of header names and values (up to 32
/// bytes) done inline by two overlapping moves instead of a library call.
inline void copyShort(char* d, const char* s, size_t n) {
    if (n >= 16 && n <= 32) {
        char a[16], b[16];
        std::memcpy(a, s, 16);
        std::memcpy(b, s + n - 16, 16);
        std::memcpy(d, a, 16);
        std::memcpy(d + n - 16, b, 16);
    } else if (n >= 8 && n < 16) {
        uint64_t a, b;
        std::memcpy(&a, s, 8);
        std::memcpy(&b, s + n - 8, 8);
        std::memcpy(d, &a, 8);
        std::memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        std::memcpy(&a, s, 4);
        std::memcpy(&b, s + n - 4, 4);
        std::memcpy(d, &a, 4);
        std::memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; ++i) {
            d[i] = s[i];
        }
    } else {
        std::memcpy(d, s, n);
    }
}

/// A per-worker free list of equally sized buffers. Not thread-safe (one loop per process).
class BufferPool {
public:
    explicit BufferPool(uint32_t buf_size) : size_(buf_size) {}
    ~BufferPool() {
        for (char* p : free_) {
            delete[] p;
        }
    }
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    /// Gives `b` storage of bufSize() bytes if it has none. Never fails (OOM is fatal).
    void acquire(Buffer& b) {
        if (b.data) {
            return;
        }
        if (free_.empty()) {
            b.data = new char[size_];
        } else {
            b.data = free_.back();
            free_.pop_back();
        }
        b.cap = size_;
        b.rpos = b.wpos = 0;
    }
    /// Returns storage to the pool (keeps at most kMaxFree buffers cached).
    void release(Buffer& b) {
        if (!b.data) {
            return;
        }
        if (free_.size() < kMaxFree) {
            free_.push_back(b.data);
        } else {
            delete[] b.data;
        }
        b = Buffer{};
    }
    uint32_t bufSize() const { return size_; }

private:
    static constexpr size_t kMaxFree = 1024;
    uint32_t size_;
    std::vector<char*> free_;
};

}  // namespace photon::worker
