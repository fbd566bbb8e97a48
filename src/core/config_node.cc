// SPDX-License-Identifier: Apache-2.0
// ConfigNode construction and lookup.
#include "core/config_node.h"

namespace photon::core {

const std::string& SourceMark::file() const {
    static const std::string kEmpty;
    return file_ ? *file_ : kEmpty;
}

ConfigNode ConfigNode::null(SourceMark mark) {
    ConfigNode n;
    n.mark_ = std::move(mark);
    return n;
}

ConfigNode ConfigNode::scalar(std::string text, ScalarKind kind, SourceMark mark) {
    ConfigNode n;
    n.type_ = Type::Scalar;
    n.text_ = std::move(text);
    n.kind_ = kind;
    n.mark_ = std::move(mark);
    return n;
}

ConfigNode ConfigNode::list(SourceMark mark) {
    ConfigNode n;
    n.type_ = Type::List;
    n.mark_ = std::move(mark);
    return n;
}

ConfigNode ConfigNode::map(SourceMark mark) {
    ConfigNode n;
    n.type_ = Type::Map;
    n.mark_ = std::move(mark);
    return n;
}

void ConfigNode::setScalar(std::string text, ScalarKind kind) {
    type_ = Type::Scalar;
    text_ = std::move(text);
    kind_ = kind;
}

const ConfigNode* ConfigNode::find(std::string_view key) const {
    size_t i = indexOf(key);
    return i < keys_.size() ? &children_[i] : nullptr;
}

size_t ConfigNode::indexOf(std::string_view key) const {
    if (type_ != Type::Map) {
        return children_.size();
    }
    for (size_t i = 0; i < keys_.size(); ++i) {
        if (keys_[i] == key) {
            return i;
        }
    }
    return children_.size();
}

void ConfigNode::append(ConfigNode value) { children_.push_back(std::move(value)); }

bool ConfigNode::insert(std::string key, SourceMark key_mark, ConfigNode value) {
    if (indexOf(key) < keys_.size()) {
        return false;
    }
    keys_.push_back(std::move(key));
    key_marks_.push_back(std::move(key_mark));
    children_.push_back(std::move(value));
    return true;
}

std::string ConfigNode::describe() const {
    switch (type_) {
        case Type::Null:
            return "null";
        case Type::List:
            return "a list";
        case Type::Map:
            return "a map";
        case Type::Scalar:
            break;
    }
    std::string shown = text_.size() > 40 ? text_.substr(0, 37) + "..." : text_;
    switch (kind_) {
        case ScalarKind::Int:
            return "the integer " + shown;
        case ScalarKind::Float:
            return "the number " + shown;
        case ScalarKind::Bool:
            return "the boolean " + shown;
        case ScalarKind::String:
        case ScalarKind::Untyped:
            break;
    }
    return "the string '" + shown + "'";
}

}  // namespace photon::core
