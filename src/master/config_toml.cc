// SPDX-License-Identifier: Apache-2.0
// TOML front end (toml++ 3.3). The only translation unit that includes toml++ (it is heavy).
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <sstream>
#include <string>

#include "master/config_loader.h"

namespace photon::master {

namespace {

using core::ConfigNode;
using core::SourceMark;
using Kind = ConfigNode::ScalarKind;

class TomlBuilder {
public:
    explicit TomlBuilder(const std::string& display_name)
        : file_(std::make_shared<const std::string>(display_name)) {}

    SourceMark mark(const toml::source_region& r) const {
        return SourceMark(file_, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column));
    }

    ConfigNode build(const toml::node& n, const SourceMark& fallback) {
        SourceMark m = mark(n.source());
        if (m.line() == 0) {
            m = fallback;
        }
        if (const toml::table* t = n.as_table()) {
            // toml++ keeps tables sorted by key; restore document order from the key positions
            // so that maps read the same in all formats (backends and header lists are ordered).
            struct Entry {
                const toml::key* key;
                const toml::node* value;
            };
            std::vector<Entry> entries;
            for (auto&& [k, v] : *t) {
                entries.push_back({&k, &v});
            }
            std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
                const auto& pa = a.key->source().begin;
                const auto& pb = b.key->source().begin;
                return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
            });
            ConfigNode map = ConfigNode::map(m);
            for (const Entry& e : entries) {
                SourceMark km = mark(e.key->source());
                if (km.line() == 0) {
                    km = m;
                }
                map.insert(std::string(e.key->str()), km, build(*e.value, km));
            }
            return map;
        }
        if (const toml::array* a = n.as_array()) {
            ConfigNode list = ConfigNode::list(m);
            for (const toml::node& item : *a) {
                list.append(build(item, m));
            }
            return list;
        }
        if (const auto* s = n.as_string()) {
            return ConfigNode::scalar(s->get(), Kind::String, m);
        }
        if (const auto* i = n.as_integer()) {
            return ConfigNode::scalar(std::to_string(i->get()), Kind::Int, m);
        }
        if (const auto* f = n.as_floating_point()) {
            char buf[64];
            auto res = std::to_chars(buf, buf + sizeof(buf), f->get());
            return ConfigNode::scalar(std::string(buf, res.ptr), Kind::Float, m);
        }
        if (const auto* b = n.as_boolean()) {
            return ConfigNode::scalar(b->get() ? "true" : "false", Kind::Bool, m);
        }
        // Dates and times: no key takes them; keep the text so the type error can show it.
        std::ostringstream os;
        n.visit([&os](const auto& v) { os << v; });
        return ConfigNode::scalar(os.str(), Kind::String, m);
    }

private:
    std::shared_ptr<const std::string> file_;
};

}  // namespace

std::optional<core::ConfigNode> parseTomlDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors) {
    try {
        toml::table doc = toml::parse(text, std::string_view(display_name));
        TomlBuilder builder(display_name);
        return builder.build(doc,
                             SourceMark(std::make_shared<const std::string>(display_name), 1, 1));
    } catch (const toml::parse_error& e) {
        Diagnostic d;
        d.file = display_name;
        d.line = static_cast<int>(e.source().begin.line);
        d.column = static_cast<int>(e.source().begin.column);
        d.message = "TOML syntax error: " + std::string(e.description());
        errors.push_back(std::move(d));
    } catch (const std::exception& e) {
        Diagnostic d;
        d.file = display_name;
        d.message = std::string("cannot parse TOML: ") + e.what();
        errors.push_back(std::move(d));
    }
    return std::nullopt;
}

}  // namespace photon::master
