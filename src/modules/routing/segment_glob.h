// SPDX-License-Identifier: Apache-2.0
// SegmentGlob: a compiled glob confined to one path segment ("*.js", "v?", "[a-z]*").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace photon::mod::routing {

/// A glob that matches exactly one path segment (the bytes between two slashes):
///   - `*`      any run of bytes, possibly empty;
///   - `?`      exactly one byte;
///   - `[...]`  one byte from a set: members, ranges `a-z`, negation `[^...]`, a `]` placed first
///              is a member, `\x` escapes x, `\d` = digits, `\w` = [A-Za-z0-9_];
///   - anything else matches itself, case-sensitively (a backslash outside a set is literal).
/// Built on the master at config load; matches() is allocation-free, lock-free and const, so it
/// can be called from any process and thread.
class SegmentGlob {
public:
    /// Parses one segment of a path pattern. `text` must not contain '/'. Rejects `**`, '{' and
    /// '}', an unterminated set, a reversed range, POSIX classes (`[[:alpha:]]`) and empty text.
    /// The error message describes the problem without naming the route.
    static core::Result<SegmentGlob> parse(std::string_view text);

    /// True when the whole of `segment` matches. Worst case O(|segment| * tokens).
    bool matches(std::string_view segment) const noexcept;

    /// Bytes of literal text before the first wildcard token.
    size_t leadingLiteral() const { return leading_literal_; }
    /// Bytes of literal text in total.
    size_t literalBytes() const { return literal_bytes_; }
    /// The pattern text as given to parse().
    const std::string& source() const { return source_; }

private:
    enum class Kind : uint8_t { Literal, AnyByte, Star, Set };
    struct Token {
        Kind kind;
        uint32_t index;  // Literal: offset into literals_; Set: index into sets_
        uint32_t len;    // Literal: byte count
    };
    using ByteSet = std::array<uint64_t, 4>;

    bool stepMatches(const Token& t, std::string_view seg, size_t at) const noexcept;
    bool matchCore(std::string_view seg) const noexcept;

    std::vector<Token> tokens_;
    std::string literals_;
    std::vector<ByteSet> sets_;
    std::string source_;
    size_t leading_literal_ = 0;
    size_t literal_bytes_ = 0;
    // Precomputed shortcut: a literal prefix and (after the last '*') a literal suffix are
    // compared directly; tokens_[core_begin_, core_end_) match what lies between them.
    size_t min_len_ = 0;
    uint32_t prefix_len_ = 0;  // literal bytes at literals_[0]
    uint32_t suffix_off_ = 0;  // literal bytes at literals_[suffix_off_]
    uint32_t suffix_len_ = 0;
    uint32_t core_begin_ = 0;
    uint32_t core_end_ = 0;
    bool core_is_star_ = false;
};

}  // namespace photon::mod::routing
