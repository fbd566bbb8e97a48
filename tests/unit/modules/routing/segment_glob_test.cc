// SPDX-License-Identifier: Apache-2.0
// Tests for SegmentGlob: one-segment glob parsing and matching.
#include "modules/routing/segment_glob.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace photon::mod::routing {
namespace {

struct GlobCase {
    std::string pattern;
    std::string segment;
    bool match;
};

TEST(SegmentGlobTest, MatchesTable) {
    const std::vector<GlobCase> cases = {
        {"*", "", true},
        {"*", "anything.at-all", true},
        {"*.js", "app.js", true},
        {"*.js", ".js", true},
        {"*.js", "app.jsx", false},
        {"*.js", "app.js.map", false},
        {"app*", "app", true},
        {"app*", "application", true},
        {"app*", "ap", false},
        {"a*b*c", "abc", true},
        {"a*b*c", "aXbYc", true},
        {"a*b*c", "aXbYcZ", false},
        {"a*b*c", "abcbc", true},
        {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {"v?", "v1", true},
        {"v?", "v", false},
        {"v?", "v12", false},
        {"??", "ab", true},
        {"?*", "", false},
        {"?*", "x", true},
        {"[a-z]*", "abc", true},
        {"[a-z]*", "Abc", false},
        {"[a-z]*", "", false},
        {"[^0-9]*", "x1", true},
        {"[^0-9]*", "1x", false},
        {"[]a]", "]", true},
        {"[]a]", "a", true},
        {"[]a]", "b", false},
        {"[^]a]", "b", true},
        {"[^]a]", "]", false},
        {"[a-cx-z]", "y", true},
        {"[a-cx-z]", "d", false},
        {"[\\d]+", "7+", true},
        {"[\\d]", "x", false},
        {"[\\w]", "_", true},
        {"[\\w]", "-", false},
        {"[\\]]", "]", true},
        {"[a\\-z]", "-", true},
        {"[a\\-z]", "b", false},
        {"file[0-9][0-9].txt", "file42.txt", true},
        {"file[0-9][0-9].txt", "file4.txt", false},
        {"a\\b", "a\\b", true},
        {"%C3%A9*", "%C3%A9t%C3%A9", true},
        {"x.y", "x.y", true},
        {"x.y", "xzy", false},
        {"a*a", "a", false},
        {"a*a", "aa", true},
        {"ab*ba", "aba", false},
        {"ab*ba", "abba", true},
        {"ab*ba", "abXba", true},
        {"x*", "x", true},
        {"x*", "yx", false},
        {"*x?", "abxy", true},
        {"*x?", "abyx", false},
        {"a*?", "a", false},
        {"a*?", "ab", true},
    };
    for (const GlobCase& c : cases) {
        SCOPED_TRACE("pattern=\"" + c.pattern + "\" segment=\"" + c.segment + "\"");
        auto g = SegmentGlob::parse(c.pattern);
        ASSERT_TRUE(g.ok()) << g.error().msg;
        EXPECT_EQ(g->matches(c.segment), c.match);
    }
}

TEST(SegmentGlobTest, NegatedSetNeverMatchesSlash) {
    auto g = SegmentGlob::parse("a[^x]b");
    ASSERT_TRUE(g.ok());
    EXPECT_FALSE(g->matches("a/b"));
    EXPECT_TRUE(g->matches("a-b"));
}

TEST(SegmentGlobTest, RejectsInvalidPatterns) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", "empty"},
        {"a**", "'**' must be a whole segment"},
        {"**x", "'**' must be a whole segment"},
        {"[abc", "unterminated '['"},
        {"[", "unterminated '['"},
        {"[]", "unterminated '['"},
        {"[z-a]", "reversed range"},
        {"[[:alpha:]]", "POSIX classes"},
        {"{id}", "whole segment"},
        {"a{b", "whole segment"},
        {"a}", "whole segment"},
        {"a]", "unmatched ']'"},
        {"a/b", "'/'"},
        {"[a\\", "unterminated '['"},
    };
    for (const auto& [pattern, msg] : bad) {
        SCOPED_TRACE("pattern=\"" + pattern + "\"");
        auto g = SegmentGlob::parse(pattern);
        ASSERT_FALSE(g.ok());
        EXPECT_NE(g.error().msg.find(msg), std::string::npos) << g.error().msg;
    }
}

TEST(SegmentGlobTest, CountsLiteralBytes) {
    auto g = SegmentGlob::parse("app-*.min.[jt]s");
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->leadingLiteral(), 4u);  // "app-"
    EXPECT_EQ(g->literalBytes(), 10u);   // "app-" ".min." "s"
    EXPECT_EQ(g->source(), "app-*.min.[jt]s");
    auto q = SegmentGlob::parse("?x");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->leadingLiteral(), 0u);
    EXPECT_EQ(q->literalBytes(), 1u);
}

// Straightforward recursive matcher over the pattern text ('*', '?', simple '[...]' sets).
bool naiveGlob(const std::string& p, size_t i, const std::string& s, size_t j) {
    if (i == p.size()) {
        return j == s.size();
    }
    if (p[i] == '*') {
        for (size_t k = j; k <= s.size(); ++k) {
            if (naiveGlob(p, i + 1, s, k)) {
                return true;
            }
        }
        return false;
    }
    if (j == s.size()) {
        return false;
    }
    if (p[i] == '?') {
        return naiveGlob(p, i + 1, s, j + 1);
    }
    if (p[i] == '[') {
        const size_t close = p.find(']', i + 1);
        const bool in = p.find(s[j], i + 1) < close;
        return in && naiveGlob(p, close + 1, s, j + 1);
    }
    return p[i] == s[j] && naiveGlob(p, i + 1, s, j + 1);
}

TEST(SegmentGlobTest, AgreesWithNaiveMatcherOnRandomInput) {
    std::mt19937_64 rng(7);
    const std::vector<std::string> atoms = {"a", "b", "ab", "*", "*", "?", "[ab]", "[c]"};
    int matched = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string pattern;
        const size_t n = 1 + rng() % 5;
        for (size_t i = 0; i < n; ++i) {
            const std::string& a = atoms[rng() % atoms.size()];
            if (a == "*" && !pattern.empty() && pattern.back() == '*') {
                continue;
            }
            pattern += a;
        }
        std::string seg;
        const size_t len = rng() % 7;
        for (size_t i = 0; i < len; ++i) {
            seg.push_back("abc"[rng() % 3]);
        }
        auto g = SegmentGlob::parse(pattern);
        ASSERT_TRUE(g.ok()) << pattern;
        const bool want = naiveGlob(pattern, 0, seg, 0);
        ASSERT_EQ(g->matches(seg), want)
            << "pattern=\"" << pattern << "\" segment=\"" << seg << "\"";
        matched += want;
    }
    EXPECT_GT(matched, 1000);
}

}  // namespace
}  // namespace photon::mod::routing
