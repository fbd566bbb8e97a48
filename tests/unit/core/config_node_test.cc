// SPDX-License-Identifier: Apache-2.0
// Tests for the format-neutral ConfigNode tree (core/config_node.h).
#include "core/config_node.h"

#include <gtest/gtest.h>

namespace photon::core {
namespace {

using Kind = ConfigNode::ScalarKind;

SourceMark at(int line, int column) {
    static auto file = std::make_shared<const std::string>("test.yaml");
    return SourceMark(file, line, column);
}

TEST(ConfigNodeTest, DefaultNodeIsNullWithoutLocation) {
    ConfigNode n;
    EXPECT_TRUE(n.isNull());
    EXPECT_EQ(n.mark().line(), 0);
    EXPECT_EQ(n.mark().file(), "");
    EXPECT_EQ(n.size(), 0u);
}

TEST(ConfigNodeTest, ScalarKeepsTextKindAndMark) {
    ConfigNode n = ConfigNode::scalar("8080", Kind::Int, at(3, 9));
    EXPECT_TRUE(n.isScalar());
    EXPECT_EQ(n.text(), "8080");
    EXPECT_EQ(n.scalarKind(), Kind::Int);
    EXPECT_EQ(n.mark().file(), "test.yaml");
    EXPECT_EQ(n.mark().line(), 3);
    EXPECT_EQ(n.mark().column(), 9);
    n.setScalar("9090", Kind::Untyped);
    EXPECT_EQ(n.text(), "9090");
    EXPECT_EQ(n.scalarKind(), Kind::Untyped);
}

TEST(ConfigNodeTest, MapKeepsDocumentOrderAndKeyMarks) {
    ConfigNode m = ConfigNode::map(at(1, 1));
    EXPECT_TRUE(m.insert("zeta", at(1, 1), ConfigNode::scalar("1", Kind::Int, at(1, 7))));
    EXPECT_TRUE(m.insert("alpha", at(2, 1), ConfigNode::scalar("x", Kind::String, at(2, 8))));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.keyAt(0), "zeta");
    EXPECT_EQ(m.keyAt(1), "alpha");
    EXPECT_EQ(m.keyMarkAt(1).line(), 2);
    EXPECT_EQ(m.item(1).text(), "x");
    ASSERT_NE(m.find("alpha"), nullptr);
    EXPECT_EQ(m.find("alpha")->text(), "x");
    EXPECT_EQ(m.indexOf("zeta"), 0u);
}

TEST(ConfigNodeTest, MapRejectsDuplicateKeys) {
    ConfigNode m = ConfigNode::map(at(1, 1));
    EXPECT_TRUE(m.insert("a", at(1, 1), ConfigNode::scalar("1", Kind::Int, at(1, 4))));
    EXPECT_FALSE(m.insert("a", at(2, 1), ConfigNode::scalar("2", Kind::Int, at(2, 4))));
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m.find("a")->text(), "1");
}

TEST(ConfigNodeTest, FindOnMissingKeyOrNonMapReturnsNull) {
    ConfigNode m = ConfigNode::map(at(1, 1));
    EXPECT_EQ(m.find("nope"), nullptr);
    EXPECT_EQ(m.indexOf("nope"), m.size());
    ConfigNode l = ConfigNode::list(at(1, 1));
    l.append(ConfigNode::scalar("a", Kind::String, at(1, 2)));
    EXPECT_EQ(l.find("a"), nullptr);
    EXPECT_EQ(l.indexOf("a"), l.size());
}

TEST(ConfigNodeTest, ListAppendsInOrderAndCopiesDeeply) {
    ConfigNode l = ConfigNode::list(at(1, 1));
    l.append(ConfigNode::scalar("a", Kind::String, at(1, 2)));
    l.append(ConfigNode::null(at(1, 5)));
    ConfigNode copy = l;
    copy.item(0).setScalar("changed", Kind::String);
    EXPECT_EQ(l.item(0).text(), "a");
    EXPECT_EQ(copy.item(0).text(), "changed");
    EXPECT_TRUE(l.item(1).isNull());
    EXPECT_EQ(l.items().size(), 2u);
}

TEST(ConfigNodeTest, TagIsKeptPerNode) {
    ConfigNode n = ConfigNode::scalar("X-API-Key", Kind::String, at(4, 10));
    EXPECT_EQ(n.tag(), "");
    n.setTag("!header");
    EXPECT_EQ(n.tag(), "!header");
}

TEST(ConfigNodeTest, DescribeNamesTypeAndValue) {
    EXPECT_EQ(ConfigNode::null(at(1, 1)).describe(), "null");
    EXPECT_EQ(ConfigNode::list(at(1, 1)).describe(), "a list");
    EXPECT_EQ(ConfigNode::map(at(1, 1)).describe(), "a map");
    EXPECT_EQ(ConfigNode::scalar("5", Kind::Int, at(1, 1)).describe(), "the integer 5");
    EXPECT_EQ(ConfigNode::scalar("true", Kind::Bool, at(1, 1)).describe(), "the boolean true");
    EXPECT_EQ(ConfigNode::scalar("1.5", Kind::Float, at(1, 1)).describe(), "the number 1.5");
    EXPECT_EQ(ConfigNode::scalar("x", Kind::String, at(1, 1)).describe(), "the string 'x'");
    std::string long_text(100, 'a');
    EXPECT_EQ(ConfigNode::scalar(long_text, Kind::String, at(1, 1)).describe().size(),
              std::string("the string ''").size() + 40);
}

}  // namespace
}  // namespace photon::core
