// SPDX-License-Identifier: Apache-2.0
// SegmentGlob parsing and the single-backtrack-point matcher.
#include "modules/routing/segment_glob.h"

#include <cstring>

namespace photon::mod::routing {

namespace {

void setBit(std::array<uint64_t, 4>& s, unsigned char c) { s[c >> 6] |= uint64_t{1} << (c & 63); }

bool hasBit(const std::array<uint64_t, 4>& s, unsigned char c) {
    return (s[c >> 6] >> (c & 63)) & 1;
}

void addRange(std::array<uint64_t, 4>& s, unsigned char lo, unsigned char hi) {
    for (unsigned c = lo; c <= hi; ++c) {
        setBit(s, static_cast<unsigned char>(c));
    }
}

}  // namespace

core::Result<SegmentGlob> SegmentGlob::parse(std::string_view text) {
    SegmentGlob g;
    g.source_ = std::string(text);
    if (text.empty()) {
        return core::fail("empty glob segment");
    }
    bool seen_wildcard = false;
    size_t i = 0;
    auto pushLiteral = [&](char c) {
        if (!g.tokens_.empty() && g.tokens_.back().kind == Kind::Literal) {
            g.tokens_.back().len++;
        } else {
            g.tokens_.push_back(Token{Kind::Literal, static_cast<uint32_t>(g.literals_.size()), 1});
        }
        g.literals_.push_back(c);
        g.literal_bytes_++;
        if (!seen_wildcard) {
            g.leading_literal_++;
        }
    };
    while (i < text.size()) {
        const char c = text[i];
        if (c == '/') {
            return core::fail("'/' inside a glob segment");
        }
        if (c == '{' || c == '}') {
            return core::fail("'{name}' must be a whole segment");
        }
        if (c == '*') {
            if (i + 1 < text.size() && text[i + 1] == '*') {
                return core::fail(
                    "'**' must be a whole segment (\"/a/**\"); use a ^...$ regex "
                    "for anything else");
            }
            seen_wildcard = true;
            g.tokens_.push_back(Token{Kind::Star, 0, 0});
            ++i;
            continue;
        }
        if (c == '?') {
            seen_wildcard = true;
            g.tokens_.push_back(Token{Kind::AnyByte, 0, 1});
            ++i;
            continue;
        }
        if (c == '[') {
            ByteSet set{};
            size_t j = i + 1;
            bool negate = false;
            if (j < text.size() && text[j] == '^') {
                negate = true;
                ++j;
            }
            bool first = true;
            bool closed = false;
            while (j < text.size()) {
                unsigned char lo = static_cast<unsigned char>(text[j]);
                if (lo == ']' && !first) {
                    closed = true;
                    ++j;
                    break;
                }
                first = false;
                if (lo == '[' && j + 1 < text.size() && text[j + 1] == ':') {
                    return core::fail(
                        "POSIX classes like [[:alpha:]] are not supported in "
                        "globs; use a range such as [a-zA-Z]");
                }
                if (lo == '\\') {
                    if (j + 1 >= text.size()) {
                        break;
                    }
                    const char e = text[j + 1];
                    j += 2;
                    if (e == 'd') {
                        addRange(set, '0', '9');
                        continue;
                    }
                    if (e == 'w') {
                        addRange(set, '0', '9');
                        addRange(set, 'a', 'z');
                        addRange(set, 'A', 'Z');
                        setBit(set, '_');
                        continue;
                    }
                    lo = static_cast<unsigned char>(e);
                } else {
                    ++j;
                }
                if (j + 1 < text.size() && text[j] == '-' && text[j + 1] != ']') {
                    unsigned char hi = static_cast<unsigned char>(text[j + 1]);
                    j += 2;
                    if (hi == '\\') {
                        if (j >= text.size()) {
                            break;
                        }
                        hi = static_cast<unsigned char>(text[j]);
                        ++j;
                    }
                    if (hi < lo) {
                        return core::fail("reversed range in '[...]'");
                    }
                    addRange(set, lo, hi);
                } else {
                    setBit(set, lo);
                }
            }
            if (!closed) {
                return core::fail("unterminated '[' in glob");
            }
            if (negate) {
                for (auto& w : set) {
                    w = ~w;
                }
            }
            // A segment never contains '/' and a normalised path never contains NUL.
            set[0] &= ~((uint64_t{1} << '/') | 1u);
            seen_wildcard = true;
            g.tokens_.push_back(Token{Kind::Set, static_cast<uint32_t>(g.sets_.size()), 1});
            g.sets_.push_back(set);
            i = j;
            continue;
        }
        if (c == ']') {
            return core::fail("unmatched ']' in glob");
        }
        pushLiteral(c);
        ++i;
    }
    bool has_star = false;
    for (const Token& t : g.tokens_) {
        has_star |= t.kind == Kind::Star;
        g.min_len_ += t.kind == Kind::Star ? 0 : t.len;
    }
    g.core_begin_ = 0;
    g.core_end_ = static_cast<uint32_t>(g.tokens_.size());
    if (has_star) {
        if (g.tokens_.front().kind == Kind::Literal) {
            g.prefix_len_ = g.tokens_.front().len;
            g.core_begin_ = 1;
        }
        if (g.tokens_.back().kind == Kind::Literal) {
            g.suffix_off_ = g.tokens_.back().index;
            g.suffix_len_ = g.tokens_.back().len;
            g.core_end_--;
        }
        g.core_is_star_ =
            g.core_end_ == g.core_begin_ + 1 && g.tokens_[g.core_begin_].kind == Kind::Star;
    }
    return g;
}

bool SegmentGlob::stepMatches(const Token& t, std::string_view seg, size_t at) const noexcept {
    switch (t.kind) {
        case Kind::Literal:
            return seg.size() - at >= t.len &&
                   std::memcmp(seg.data() + at, literals_.data() + t.index, t.len) == 0;
        case Kind::AnyByte:
            return at < seg.size();
        case Kind::Set:
            return at < seg.size() && hasBit(sets_[t.index], static_cast<unsigned char>(seg[at]));
        case Kind::Star:
            return true;
    }
    return false;
}

bool SegmentGlob::matches(std::string_view seg) const noexcept {
    if (seg.size() < min_len_) {
        return false;
    }
    if (prefix_len_ != 0 && std::memcmp(seg.data(), literals_.data(), prefix_len_) != 0) {
        return false;
    }
    if (suffix_len_ != 0 && std::memcmp(seg.data() + seg.size() - suffix_len_,
                                        literals_.data() + suffix_off_, suffix_len_) != 0) {
        return false;
    }
    if (core_is_star_) {
        return true;
    }
    return matchCore(seg.substr(prefix_len_, seg.size() - prefix_len_ - suffix_len_));
}

// Classic glob matching: on a mismatch, let the most recent '*' swallow one more byte. This is
// complete because every other token has a fixed width.
bool SegmentGlob::matchCore(std::string_view seg) const noexcept {
    constexpr size_t kNone = static_cast<size_t>(-1);
    const size_t nt = core_end_;
    size_t ti = core_begin_;
    size_t si = 0;
    size_t star_ti = kNone;
    size_t star_si = 0;
    for (;;) {
        if (ti < nt) {
            const Token& t = tokens_[ti];
            if (t.kind == Kind::Star) {
                star_ti = ti;
                star_si = si;
                ++ti;
                continue;
            }
            if (si <= seg.size() && stepMatches(t, seg, si)) {
                si += t.len;
                ++ti;
                continue;
            }
        } else if (si == seg.size()) {
            return true;
        }
        if (star_ti == kNone || star_si >= seg.size()) {
            return false;
        }
        si = ++star_si;
        ti = star_ti + 1;
    }
}

}  // namespace photon::mod::routing
