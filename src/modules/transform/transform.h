// SPDX-License-Identifier: Apache-2.0
// Header transforms: request headers rewritten at the start of Proxy, response headers (upstream
// and gateway replies alike) in HeaderFilter. Values may use the gateway's variables.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "worker/module.h"

namespace photon::mod::transform {

/// The gateway variables a value may use (PHOTON-SPEC decision 11).
enum class Var : uint8_t {
    RequestId,  // ${request_id}
    ClientIp,   // ${client_ip}
    RouteId,    // ${route_id}
    Host,       // ${host}: the request's Host
    Path,       // ${path}: the normalised request path, no query
    Method,     // ${method}
    Upstream,   // ${upstream}: address of the upstream that answered (response side only)
    PathParam,  // ${path.NAME}: a route's {NAME} segment
    JwtClaim,   // ${jwt.CLAIM}: a claim of the verified token (empty until auth provides it)
    TlsProtocol,       // ${tls_protocol}: "TLSv1.3" (empty on plain HTTP)
    TlsCipher,         // ${tls_cipher}
    TlsSni,            // ${tls_sni}: the server name the client sent
    TlsClientSubject,  // ${tls_client_subject}: the verified client certificate's subject
    TlsClientVerify,   // ${tls_client_verify}: SUCCESS or NONE (empty on plain HTTP)
};

/// Whether `name` (the text between "${" and "}") names a gateway variable.
bool isGatewayVariable(std::string_view name);

/// Most literal runs and variables in one value.
inline constexpr size_t kMaxParts = 16;

/// A value compiled into literal text and variables.
struct Template {
    struct Part {
        bool literal = true;
        Var var = Var::RequestId;
        std::string text;  // literal text, or the NAME of path.NAME / jwt.CLAIM
    };
    std::vector<Part> parts;
    bool constant = true;  // no variables: `text` is the whole value
    bool single = false;   // exactly one variable and nothing else
    std::string text;

    /// Compiles a value as the loader left it: "${name}" gateway variables, "$${" a literal
    /// "${". Errors name the problem ("unknown variable ${x}").
    static core::Result<Template> compile(std::string_view value, bool response_side);
};

struct Op {
    std::string name;
    Template value;
    bool is_host = false;  // request side `set` of Host: it changes the upstream Host
    std::string line;      // "Name: value\r\n" for a constant value, else "Name: "
};

/// One side (request or response) compiled: remove, then set, then add.
struct Side {
    std::vector<std::string> remove;
    std::vector<Op> set;
    std::vector<Op> add;
    bool host_set = false;  // request side: a `set` of Host (changes the upstream Host)
    // Names removed before set/add run: `remove`, then the names `set` replaces (Host on the
    // request side excepted), so that one pass over the fields does both.
    std::vector<std::string_view> drop;
    std::vector<const Op*> appended;  // set then add, Host excepted: the fields added
    uint64_t drop_len_mask = 0;
    // Response side: a set or remove of X-Gateway (the connection then does not add its own).
    bool owns_gateway = false;
    // Request side: an added or set X-Forwarded-Proto / -Host (replaces the gateway's).
    bool sets_forwarded_proto = false;
    bool sets_forwarded_host = false;
    bool empty() const { return remove.empty() && set.empty() && add.empty(); }
};

/// A compiled `transform` instance.
struct TransformConf : worker::ModuleConf {
    Side request;
    Side response;
    bool response_needs_request = false;  // response values use ${host}/${path.NAME}
    bool uses_path_params = false;        // some value uses ${path.NAME}
    uint16_t slot = 0;

    static core::Result<TransformConf> compile(const core::TransformConfig& c);
    /// Builds the views of Side::drop; call once the object is at its final address (the views
    /// point into its own strings).
    void index();
};

/// Proxy-phase handler (request side): records the edits (worker::HeadEdits) that the
/// connection applies while it writes the upstream head. Answers 431 when the arena is full (a
/// head that no longer fits the buffer is refused with 431 by the connection).
worker::Verdict requestHandler(worker::Request& req, const void* conf);
/// Access-phase handler for response values that need request data later (${host},
/// ${path.NAME}): copies it into the arena.
worker::Verdict captureHandler(worker::Request& req, const void* conf);
/// HeaderFilter handler (response side).
worker::Verdict responseHandler(worker::Request& req, const void* conf);

}  // namespace photon::mod::transform
