// SPDX-License-Identifier: Apache-2.0
// The phase engine: runs a route's handler chain phase by phase, with suspension and the single
// error path (every reply, upstream or gateway-generated, goes through HeaderFilter and Log).
#pragma once

#include "worker/request.h"

namespace photon::worker {

/// After the Route phase's built-in steps matched a route: runs the route's Route, Access,
/// CacheLookup and Proxy handlers, then the built-in proxy step (RequestHost::proxy). A
/// handler that answers (Respond) skips straight to HeaderFilter; one that suspends stops here
/// until it calls Request::resume().
void runAfterRoute(Request& req);

/// Runs HeaderFilter for the gateway reply in hand (set with respond/fail), then sends it through
/// RequestHost::sendHead. A filter that cannot build the head (it no longer fits) leaves the
/// reply without the filters' fields.
void runHeaderFilter(Request& req);

/// Runs HeaderFilter for the upstream's head in req.resp; the caller writes it. False when a
/// filter refused it (req then holds a gateway error, which the caller sends after releasing the
/// upstream); nothing is sent from here.
bool filterUpstreamHead(Request& req);

/// Runs the Log phase's handlers (the connection writes the access log after them).
void runLog(Request& req);

/// Continues the pipeline at handler `pos` of `phase` (engine internal; resume() uses it).
void runFrom(Request& req, Phase phase, uint16_t pos);

}  // namespace photon::worker
