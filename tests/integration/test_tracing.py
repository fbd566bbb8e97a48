# SPDX-License-Identifier: Apache-2.0
"""W3C Trace Context (`server.trace_context`, `server.trace_sampled`).

A valid incoming traceparent is carried on with the gateway's own span id (trace id and flags
kept, tracestate forwarded); a request without one (or with an invalid one, or two) starts a
trace with random ids and the configured sampled flag, and an orphaned tracestate is dropped.
The trace id is in the access log next to the request id. `trace_context: off` forwards the
client's fields untouched.
"""

import json
import os
import re

from harness import IntegrationTest, base_config, free_port, http_request, wait_until

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = "00-%s-%s-01" % (TRACE, PARENT)


class TracingTest(IntegrationTest):
    def start(self, **server):
        b1 = self.backend()
        port = free_port()
        cfg = base_config(port, [b1])
        cfg["server"].update(server)
        self.photon(cfg)
        return port

    def upstream_fields(self, port, headers=None):
        r = http_request(port, "GET", "/echo", headers=headers)
        self.assertEqual(r.status, 200)
        fields = json.loads(r.body)["headers"]
        return ([v for n, v in fields if n.lower() == "traceparent"],
                [v for n, v in fields if n.lower() == "tracestate"])

    def test_valid_traceparent_gets_a_new_span_and_keeps_the_rest(self):
        port = self.start()
        tps, states = self.upstream_fields(
            port, [("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE,rojo=00f067")])
        self.assertEqual(len(tps), 1)
        m = TP.match(tps[0])
        self.assertIsNotNone(m, tps[0])
        self.assertEqual(m.group(1), TRACE)
        self.assertNotEqual(m.group(2), PARENT)
        self.assertNotEqual(m.group(2), "0" * 16)
        self.assertEqual(m.group(3), "01")
        self.assertEqual(states, ["congo=t61rcWkgMzE,rojo=00f067"])
        # Unsampled stays unsampled.
        tps, _ = self.upstream_fields(port, [("traceparent", VALID[:-2] + "00")])
        self.assertEqual(TP.match(tps[0]).group(3), "00")

    def test_later_version_is_carried_on_as_version_00(self):
        port = self.start()
        tps, _ = self.upstream_fields(port, [("traceparent", "cc" + VALID[2:] + "-future")])
        m = TP.match(tps[0])
        self.assertEqual(m.group(1), TRACE)

    def test_no_traceparent_starts_a_trace(self):
        port = self.start()
        seen = set()
        for _ in range(3):
            tps, states = self.upstream_fields(port)
            self.assertEqual(len(tps), 1)
            m = TP.match(tps[0])
            self.assertIsNotNone(m, tps[0])
            self.assertNotEqual(m.group(1), "0" * 32)
            self.assertEqual(m.group(3), "00")
            self.assertEqual(states, [])
            seen.add(m.group(1))
        self.assertEqual(len(seen), 3)

    def test_trace_sampled_sets_the_flag_of_new_traces(self):
        port = self.start(trace_sampled=True)
        tps, _ = self.upstream_fields(port)
        self.assertEqual(TP.match(tps[0]).group(3), "01")

    def test_invalid_or_repeated_traceparent_restarts_the_trace(self):
        port = self.start()
        for bad in (VALID.upper(), "00-%s-%s-01" % ("0" * 32, PARENT), VALID + "-x",
                    "ff" + VALID[2:], "garbage"):
            tps, states = self.upstream_fields(
                port, [("traceparent", bad), ("tracestate", "rojo=1")])
            self.assertEqual(len(tps), 1, bad)
            m = TP.match(tps[0])
            self.assertIsNotNone(m, (bad, tps))
            self.assertNotEqual(m.group(1), TRACE, bad)
            self.assertEqual(states, [], bad)  # it belonged to a trace we did not continue
        tps, _ = self.upstream_fields(port, [("traceparent", VALID), ("traceparent", VALID)])
        self.assertEqual(len(tps), 1)
        self.assertNotEqual(TP.match(tps[0]).group(1), TRACE)

    def test_off_forwards_the_clients_fields_untouched(self):
        port = self.start(trace_context="off")
        tps, states = self.upstream_fields(port)
        self.assertEqual((tps, states), ([], []))
        tps, states = self.upstream_fields(port, [("traceparent", "garbage"),
                                                  ("tracestate", "a=b")])
        self.assertEqual((tps, states), (["garbage"], ["a=b"]))

    def test_trace_id_in_the_access_log(self):
        log = os.path.join(self.tmpdir, "access.log")
        port = self.start(access_log=log)
        tps, _ = self.upstream_fields(port, [("traceparent", VALID), ("x-request-id", "rid-1")])
        self.upstream_fields(port, [("x-request-id", "rid-2")])
        new_trace = None

        def lines():
            if not os.path.exists(log):
                return []
            with open(log) as f:
                return [json.loads(x) for x in f if x.strip()]

        wait_until(lambda: len(lines()) >= 2, timeout=10, msg="access log lines")
        by_id = {e["request_id"]: e for e in lines()}
        self.assertEqual(by_id["rid-1"]["trace_id"], TRACE)
        new_trace = by_id["rid-2"]["trace_id"]
        self.assertRegex(new_trace, r"^[0-9a-f]{32}$")
        self.assertNotEqual(new_trace, TRACE)
        # A request no route took still has a trace id to correlate its log line.
        self.assertTrue(all(re.match(r"^[0-9a-f]{32}$", e["trace_id"]) for e in lines()))
        self.assertTrue(all(e["refused_by"] == "" for e in lines()))

    def test_bad_trace_context_value_is_a_config_error(self):
        from harness import run_photon, write_config
        cfg = base_config(free_port(), ["127.0.0.1:1"])
        cfg["server"]["trace_context"] = "sometimes"
        path = write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn("trace_context", err + out)
