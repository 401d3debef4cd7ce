#!/usr/bin/python3
"""Tests ferry_client.py against a running ferryd.

    /usr/bin/python3 test_ferry_client.py ipc:///path/to/ferryd.sock

Exits 0 when every test passes. The daemon should be fresh or idle: the tests submit a few ops
and expect to be the only writer while they run.
"""

import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferry_client import FerryClient, FerryError, FerryTimeout  # noqa: E402

ENDPOINT = None
ID = re.compile(r"^[0-9a-f]{64}$")


class FerryClientTest(unittest.TestCase):
    def setUp(self):
        self.ferry = FerryClient(ENDPOINT, timeout_ms=10000)
        self.node = self.ferry.status()["node"]

    def tearDown(self):
        self.ferry.close()

    def wait_for(self, condition, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.005)
        return False

    def test_status_describes_the_node(self):
        status = self.ferry.status()
        self.assertTrue(ID.match(status["node"]["id"]))
        self.assertIn(status["node"]["role"], ("station", "relay", "hub"))
        for field in ("ops", "feeds", "last_arrival", "uptime_ms", "hlc"):
            self.assertIsInstance(status[field], int, field)
        self.assertIsInstance(status["version"], str)
        self.assertEqual(status["ipc"]["errors"].keys() >= {"bad_request", "not_found"}, True)

    def test_records_merge_set_inc_and_add(self):
        key = "HH-%d" % time.time_ns()
        first = self.ferry.submit("household.create", key,
                                  {"set": {"label": "Chen"}, "add": {"members": ["陈晓玲"]}})
        second = self.ferry.submit("household.update", key,
                                   {"set": {"label": "Chen Xiaoling"}, "inc": {"visits": 2}})
        record = self.ferry.get(key)
        self.assertEqual(record["fields"], {"label": "Chen Xiaoling"})
        self.assertEqual(record["counters"], {"visits": 2})
        self.assertEqual(record["sets"], {"members": ["陈晓玲"]})
        self.assertEqual(record["heads"], [second["id"]])  # it named the first as its dep
        self.assertEqual(record["ops"], 2)
        self.assertEqual(record["conflicts"], [])
        self.assertNotEqual(first["id"], second["id"])
        self.assertEqual(self.ferry.conflicts(), [])
        with self.assertRaises(FerryError) as missing:
            self.ferry.get(key + "-none")
        self.assertEqual(missing.exception.code, "not_found")
        with self.assertRaises(FerryError) as bad:
            self.ferry.submit("household.update", key, {"inc": {"visits": "two"}})
        self.assertEqual(bad.exception.code, "bad_request")
        self.assertRegex(self.ferry.status()["digest"], ID)

    def test_submit_then_op_track_and_pull(self):
        before = self.ferry.status()
        body = {"service": "household-registration", "applicant": "陈晓玲",
                "fee": 12.5, "documents": ["id-card", "photo"], "address": {"lot": 17}}
        dep = "ab" * 32
        filed = self.ferry.submit("case.submit", "HN-2026-0001", body,
                                  author="agent-7", deps=[dep])
        self.assertTrue(ID.match(filed["id"]))
        self.assertEqual(filed["channel"], "station/" + self.node["name"])
        self.assertGreaterEqual(filed["seq"], 1)
        self.assertGreater(filed["hlc"], 0)

        op = self.ferry.op(filed["id"])
        self.assertEqual(op["id"], filed["id"])
        self.assertEqual(op["origin"], self.node["id"])
        self.assertEqual(op["channel"], filed["channel"])
        self.assertEqual(op["seq"], filed["seq"])
        self.assertEqual(op["kind"], "case.submit")
        self.assertEqual(op["key"], "HN-2026-0001")
        self.assertEqual(op["author"], "agent-7")
        self.assertEqual(op["deps"], [dep])
        self.assertEqual(op["body"], body)
        self.assertEqual(op["hlc"], filed["hlc"])

        tracked = self.ferry.track(filed["id"])
        self.assertEqual(tracked["state"], "stored")
        self.assertEqual(tracked["stored_at"], op["stored_at"])

        page = self.ferry.pull(before["last_arrival"])
        self.assertEqual([o["id"] for o in page["ops"]], [filed["id"]])
        self.assertEqual(page["next"], op["arrival"])
        self.assertEqual(self.ferry.pull(page["next"])["ops"], [])

    def test_a_waiting_pull_returns_when_an_op_arrives(self):
        after = self.ferry.status()["last_arrival"]
        result = {}

        def follower():
            with FerryClient(ENDPOINT, timeout_ms=10000) as other:
                started = time.monotonic()
                result["page"] = other.pull(after, wait_ms=10000, channels=["desk/permits"])
                result["waited"] = time.monotonic() - started

        thread = threading.Thread(target=follower)
        thread.start()
        self.assertTrue(self.wait_for(lambda: self.ferry.status()["ipc"]["pulls_waiting"] == 1))
        self.ferry.submit("case.note", "HN-2026-0001", {"note": "other channel"})
        filed = self.ferry.submit("permit.issue", "P-1", {"boat": "Huaniao 7"},
                                  channel="desk/permits")
        thread.join(15)
        self.assertFalse(thread.is_alive())
        self.assertEqual([o["id"] for o in result["page"]["ops"]], [filed["id"]])
        self.assertLess(result["waited"], 5.0)

    def test_an_expired_wait_returns_no_ops(self):
        after = self.ferry.status()["last_arrival"]
        started = time.monotonic()
        page = self.ferry.pull(after, wait_ms=200)
        self.assertGreaterEqual(time.monotonic() - started, 0.19)
        self.assertEqual(page["ops"], [])
        self.assertEqual(page["next"], after)

    def test_errors_carry_the_documented_code(self):
        for call in (lambda: self.ferry.op("e" * 64), lambda: self.ferry.track("e" * 64)):
            with self.assertRaises(FerryError) as caught:
                call()
            self.assertEqual(caught.exception.code, "not_found")
            self.assertTrue(caught.exception.message)
        with self.assertRaises(FerryError) as caught:
            self.ferry.submit("case.submit", "HN-1", {"x": 1}, channel="ferry/peers")
        self.assertEqual(caught.exception.code, "bad_request")
        with self.assertRaises(FerryError) as caught:
            self.ferry.pull(0, limit=0)
        self.assertEqual(caught.exception.code, "bad_request")
        # The client still works after errors.
        self.assertIn("node", self.ferry.status())

    def test_a_timeout_reopens_the_socket(self):
        with FerryClient("ipc:///nonexistent/ferryd.sock", timeout_ms=100) as nobody:
            with self.assertRaises(FerryTimeout):
                nobody.status()
            with self.assertRaises(FerryTimeout):
                nobody.status()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: test_ferry_client.py ENDPOINT")
    ENDPOINT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
