// SPDX-License-Identifier: Apache-2.0
// Tests for SegmentGlob: one-segment glob parsing and matching.
#include "modules/routing/segment_glob.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace photon::mod::routing
