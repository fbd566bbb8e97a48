// SPDX-License-Identifier: Apache-2.0
// ConfigNode: the format-neutral configuration tree that the YAML, JSON and TOML front ends build.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace photon::core {

/// Where a node (or a map key) was written. Lines and columns are 1-based; 0 means unknown.
/// The file name is shared by every node of one document.
class SourceMark {
public:
    SourceMark() = default;
    SourceMark(std::shared_ptr<const std::string> file, int line, int column)
        : file_(std::move(file)), line_(line), column_(column) {}

    const std::string& file() const;  // "" when unknown
    int line() const { return line_; }
    int column() const { return column_; }

private:
    std::shared_ptr<const std::string> file_;
    int line_ = 0;
    int column_ = 0;
};

/// One node of a parsed configuration document: null, scalar, list or map.
///
/// Scalars keep their source text plus a ScalarKind that records how the document typed it, so
/// the typed loader can tell `port: 8080` (Int) from `port: "8080"` (String) the same way in all
/// three formats. Maps keep their keys in document order (the TOML front end restores the order
/// its library loses) and allow no duplicate keys. Nodes are plain values: copying copies the
/// subtree. Built and read by the master only; not thread-safe to mutate concurrently.
class ConfigNode {
public:
    enum class Type { Null, Scalar, List, Map };

    /// How the source typed a scalar.
    ///  String  — quoted, or a plain YAML scalar that is not null/bool/number; TOML/JSON strings.
    ///  Int     — an integer literal. Text is the literal as written (YAML may use 0x/0o/+);
    ///            the TOML front end writes the value in decimal.
    ///  Float   — a floating-point literal (text as written; TOML: shortest round-trip form).
    ///  Bool    — true/false (text "true"/"false" for JSON/TOML; YAML keeps its spelling).
    ///  Untyped — produced by environment substitution: the text's type is decided by the key's
    ///            schema, so `port: ${PORT}` with PORT=8080 reads as an integer.
    enum class ScalarKind { String, Int, Float, Bool, Untyped };

    ConfigNode() = default;  // a Null node without location

    static ConfigNode null(SourceMark mark);
    static ConfigNode scalar(std::string text, ScalarKind kind, SourceMark mark);
    static ConfigNode list(SourceMark mark);
    static ConfigNode map(SourceMark mark);

    Type type() const { return type_; }
    bool isNull() const { return type_ == Type::Null; }
    bool isScalar() const { return type_ == Type::Scalar; }
    bool isList() const { return type_ == Type::List; }
    bool isMap() const { return type_ == Type::Map; }
    const SourceMark& mark() const { return mark_; }

    /// Scalar text (empty for non-scalars) and its kind (String for non-scalars).
    const std::string& text() const { return text_; }
    ScalarKind scalarKind() const { return kind_; }
    void setScalar(std::string text, ScalarKind kind);

    /// A YAML local tag such as "!header" on any node ("" when none); JSON and TOML never set one.
    const std::string& tag() const { return tag_; }
    void setTag(std::string tag) { tag_ = std::move(tag); }

    /// Number of list items or map entries; 0 for null and scalars.
    size_t size() const { return children_.size(); }

    /// List items / map values in order. For a map, item(i) is the value of keyAt(i).
    const ConfigNode& item(size_t i) const { return children_[i]; }
    ConfigNode& item(size_t i) { return children_[i]; }
    const std::vector<ConfigNode>& items() const { return children_; }

    /// Map keys in document order and where each key was written.
    const std::string& keyAt(size_t i) const { return keys_[i]; }
    const SourceMark& keyMarkAt(size_t i) const { return key_marks_[i]; }

    /// Map lookup by exact key; nullptr when absent or when this is not a map. Linear: config
    /// maps are small and lookups happen only at load time.
    const ConfigNode* find(std::string_view key) const;
    /// Index of `key` in a map, or size() when absent.
    size_t indexOf(std::string_view key) const;

    /// Appends to a list. Precondition: isList().
    void append(ConfigNode value);
    /// Adds a map entry. Precondition: isMap(). Returns false (and changes nothing) if the key is
    /// already present; front ends turn that into a "duplicate key" error.
    bool insert(std::string key, SourceMark key_mark, ConfigNode value);

    /// Short description for error messages: "a map", "a list", "null", "the string 'x'",
    /// "the integer 5", "the boolean true", "the number 1.5".
    std::string describe() const;

private:
    Type type_ = Type::Null;
    ScalarKind kind_ = ScalarKind::String;
    std::string text_;
    std::string tag_;
    SourceMark mark_;
    std::vector<ConfigNode> children_;   // list items or map values
    std::vector<std::string> keys_;      // map keys, parallel to children_
    std::vector<SourceMark> key_marks_;  // parallel to keys_
};

}  // namespace photon::core
