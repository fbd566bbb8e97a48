// SPDX-License-Identifier: Apache-2.0
// YAML front end (yaml-cpp): YAML 1.2 core-schema typing of plain scalars, tags, `<<` merge
// keys and source marks.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

#include "master/config_loader.h"

namespace photon::master {

namespace {

using core::ConfigNode;
using core::SourceMark;
using Kind = ConfigNode::ScalarKind;

constexpr int kMaxDepth = 64;
// Aliases let a few bytes stand for an exponential number of nodes ("billion laughs"); the tree
// we build copies every one of them. Without aliases a document has fewer nodes than bytes, so
// this budget only stops documents that expand far beyond their size.
constexpr size_t kNodeBudgetBase = 100'000;
constexpr size_t kNodeBudgetPerByte = 4;

bool allOf(std::string_view s, bool (*pred)(char)) {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (!pred(c)) {
            return false;
        }
    }
    return true;
}

bool isDec(char c) { return c >= '0' && c <= '9'; }
bool isOct(char c) { return c >= '0' && c <= '7'; }
bool isHex(char c) { return isDec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool isYamlInt(std::string_view s) {
    if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
        return allOf(s.substr(2), isOct);
    }
    if (s.size() > 2 && s[0] == '0' && s[1] == 'x') {
        return allOf(s.substr(2), isHex);
    }
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        s.remove_prefix(1);
    }
    return allOf(s, isDec);
}

bool isYamlFloat(std::string_view s) {
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        s.remove_prefix(1);
    }
    if (s == ".inf" || s == ".Inf" || s == ".INF" || s == ".nan" || s == ".NaN" || s == ".NAN") {
        return true;
    }
    size_t i = 0;
    size_t digits = 0;
    while (i < s.size() && isDec(s[i])) {
        ++i;
        ++digits;
    }
    if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && isDec(s[i])) {
            ++i;
            ++digits;
        }
    }
    if (digits == 0) {
        return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
            ++i;
        }
        if (i == s.size()) {
            return false;
        }
        while (i < s.size() && isDec(s[i])) {
            ++i;
        }
    }
    return i == s.size();
}

// Kind of an untagged plain scalar under the YAML 1.2 core schema. Returns false for null.
bool resolvePlain(std::string_view s, Kind& kind) {
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
        return false;
    }
    if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
        kind = Kind::Bool;
    } else if (isYamlInt(s)) {
        kind = Kind::Int;
    } else if (isYamlFloat(s)) {
        kind = Kind::Float;
    } else {
        kind = Kind::String;
    }
    return true;
}

class YamlBuilder {
public:
    YamlBuilder(const std::string& display_name, std::vector<Diagnostic>& errors, size_t max_nodes)
        : file_(std::make_shared<const std::string>(display_name)),
          errors_(errors),
          max_nodes_(max_nodes) {}

    SourceMark mark(const YAML::Mark& m) const {
        if (m.is_null()) {
            return SourceMark(file_, 0, 0);
        }
        return SourceMark(file_, m.line + 1, m.column + 1);
    }

    void error(const SourceMark& m, std::string msg, std::string path = {}) {
        Diagnostic d;
        d.path = std::move(path);
        d.severity = Diagnostic::Severity::Error;
        d.file = *file_;
        d.line = m.line();
        d.column = m.column();
        d.message = std::move(msg);
        errors_.push_back(std::move(d));
        failed_ = true;
    }

    bool failed() const { return failed_; }

    // `fallback` locates nodes whose own mark yaml-cpp leaves unset or misplaced (empty values).
    ConfigNode build(const YAML::Node& n, const SourceMark& fallback, int depth) {
        if (depth > kMaxDepth) {
            error(fallback, "YAML document is nested too deeply (limit " +
                                std::to_string(kMaxDepth) + " levels)");
            return ConfigNode::null(fallback);
        }
        if (++nodes_ > max_nodes_) {
            if (nodes_ == max_nodes_ + 1) {
                error(fallback, "YAML document expands to more than " + std::to_string(max_nodes_) +
                                    " nodes through its aliases");
            }
            return ConfigNode::null(fallback);
        }
        SourceMark m = mark(n.Mark());
        if (m.line() == 0) {
            m = fallback;
        }
        const std::string& tag = n.Tag();
        switch (n.Type()) {
            case YAML::NodeType::Undefined:
            case YAML::NodeType::Null:
                // yaml-cpp places an empty value's mark on the next token; use the key's.
                return ConfigNode::null(fallback);
            case YAML::NodeType::Scalar:
                return buildScalar(n.Scalar(), tag, m);
            case YAML::NodeType::Sequence: {
                ConfigNode list = ConfigNode::list(m);
                setLocalTag(list, tag);
                size_t index = 0;
                for (const auto& item : n) {
                    size_t saved = path_.size();
                    path_ += "[" + std::to_string(index++) + "]";
                    list.append(
                        build(item, mark(item.Mark()).line() ? mark(item.Mark()) : m, depth + 1));
                    path_.resize(saved);
                }
                return list;
            }
            case YAML::NodeType::Map: {
                ConfigNode map = ConfigNode::map(m);
                setLocalTag(map, tag);
                std::vector<ConfigNode> merges;  // values of `<<` merge keys
                for (auto it = n.begin(); it != n.end(); ++it) {
                    // Copies: the iterator hands out a temporary proxy.
                    const YAML::Node key = it->first;
                    const YAML::Node value_node = it->second;
                    SourceMark km = mark(key.Mark());
                    if (km.line() == 0) {
                        km = m;
                    }
                    if (!key.IsScalar()) {
                        error(km, key.IsNull() ? "a map key must not be empty"
                                               : "a map key must be a plain string, not a "
                                                 "list or map");
                        continue;
                    }
                    std::string k = key.Scalar();
                    size_t saved = path_.size();
                    path_ += (path_.empty() ? "" : ".") + k;
                    ConfigNode value = build(value_node, km, depth + 1);
                    std::string key_path = path_;
                    path_.resize(saved);
                    if (k == "<<" && key.Tag() == "?") {
                        collectMerge(value, km, merges);
                        continue;
                    }
                    size_t first = map.indexOf(k);
                    if (first < map.size()) {
                        error(km,
                              "duplicate key '" + k + "' (first defined at line " +
                                  std::to_string(map.keyMarkAt(first).line()) + ")",
                              key_path);
                        continue;
                    }
                    map.insert(std::move(k), km, std::move(value));
                }
                // YAML merge keys: merged entries never override keys written in the map
                // itself, and earlier merge sources win over later ones.
                for (const ConfigNode& src : merges) {
                    for (size_t i = 0; i < src.size(); ++i) {
                        map.insert(src.keyAt(i), src.keyMarkAt(i), src.item(i));
                    }
                }
                return map;
            }
        }
        return ConfigNode::null(m);
    }

private:
    // `<<: *anchor` or `<<: [*a, *b]`: remembers the map(s) to merge in.
    void collectMerge(const ConfigNode& value, const SourceMark& km,
                      std::vector<ConfigNode>& merges) {
        if (value.isMap()) {
            merges.push_back(value);
            return;
        }
        if (value.isList() && std::all_of(value.items().begin(), value.items().end(),
                                          [](const ConfigNode& v) { return v.isMap(); })) {
            for (const ConfigNode& v : value.items()) {
                merges.push_back(v);
            }
            return;
        }
        error(km, "a '<<' merge key needs a map or a list of maps (e.g. '<<: *defaults')");
    }

    static void setLocalTag(ConfigNode& node, const std::string& tag) {
        if (tag.size() > 1 && tag[0] == '!' && tag[1] != '!') {
            node.setTag(tag);
        }
    }

    ConfigNode buildScalar(const std::string& text, const std::string& tag, const SourceMark& m) {
        static const std::string kCore = "tag:yaml.org,2002:";
        if (tag == "!") {  // quoted or block scalar: always a string
            return ConfigNode::scalar(text, Kind::String, m);
        }
        if (tag.compare(0, kCore.size(), kCore) == 0) {
            std::string t = tag.substr(kCore.size());
            if (t == "str") {
                return ConfigNode::scalar(text, Kind::String, m);
            }
            if (t == "null") {
                return ConfigNode::null(m);
            }
            Kind k = Kind::String;
            if (!resolvePlain(text, k)) {
                return ConfigNode::null(m);
            }
            if ((t == "int" && k != Kind::Int) || (t == "bool" && k != Kind::Bool) ||
                (t == "float" && k != Kind::Float && k != Kind::Int)) {
                error(m, "'" + text + "' is not a valid !!" + t);
                return ConfigNode::null(m);
            }
            return ConfigNode::scalar(text, t == "float" ? Kind::Float : k, m);
        }
        Kind k = Kind::String;
        if (tag == "?") {
            if (!resolvePlain(text, k)) {
                return ConfigNode::null(m);
            }
            return ConfigNode::scalar(text, k, m);
        }
        // A local tag such as `!header X-API-Key`: keep the tag, the value is its text.
        ConfigNode node = ConfigNode::scalar(text, Kind::String, m);
        setLocalTag(node, tag);
        return node;
    }

    std::shared_ptr<const std::string> file_;
    std::vector<Diagnostic>& errors_;
    std::string path_;  // key path of the node being built, for messages
    bool failed_ = false;
    size_t nodes_ = 0;  // nodes built so far, aliases counted at every use
    size_t max_nodes_;
};

}  // namespace

std::optional<core::ConfigNode> parseYamlDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors) {
    YamlBuilder builder(display_name, errors, kNodeBudgetBase + kNodeBudgetPerByte * text.size());
    try {
        YAML::Node doc = YAML::Load(std::string(text));
        SourceMark start = builder.mark(YAML::Mark());
        ConfigNode root = builder.build(doc, SourceMark(start), 0);
        if (builder.failed()) {
            return std::nullopt;
        }
        return root;
    } catch (const YAML::Exception& e) {
        builder.error(builder.mark(e.mark), "YAML syntax error: " + e.msg);
    } catch (const std::exception& e) {
        builder.error(SourceMark(), std::string("cannot parse YAML: ") + e.what());
    }
    return std::nullopt;
}

}  // namespace photon::master
