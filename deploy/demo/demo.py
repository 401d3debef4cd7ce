#!/usr/bin/python3
"""ferry's main job on one machine: a city hub, a township relay and three island stations.

Run through ./deploy/demo.sh, which installs what is missing and builds first. This script starts
real ferryd processes on loopback in a temporary directory, enrols them with `ferryctl trust`,
files realistic transactions through the station-software simulator (simulator.py), cuts one
island off, shows its backlog growing while it keeps acknowledging locally, heals the link,
waits until the replicas converge (equal digests), has the hub approve an application and issue
a certificate, and shows both arriving back on the island with the hub's receipt. Then it prints
the monitor URL and a summary, and keeps the nodes running until Ctrl-C (--once: exits).

Without root everything runs on loopback and the island is cut off by closing its link, a TCP
forwarder (link.py). As root with --netns every node runs in its own network namespace of the
network lab (deploy/lab/lab.sh, prefix "fdemo"): the island's link is a veth pair made a slow,
lossy satellite link, and the cut drops every packet on it, both ways, until the heal. The lab
is torn down at exit.

Exit status: 0 when everything converged and the decision reached the island; 1 otherwise (the
temporary directory with every node's log is kept and named).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
sys.path.insert(0, HERE)

from ferry_client import FerryClient, FerryError  # noqa: E402
from link import Link  # noqa: E402
import simulator  # noqa: E402

ISLANDS = ["huaniao", "shengshan", "dongji"]  # 花鸟, 嵊山, 东极
CUT_ISLAND = "huaniao"
LAB_PREFIX = "fdemo"
LAB_PORT = 7470
HUB_MONITOR_PORT = 7480
LAB_TIMEOUT_S = 120
CONVERGE_TIMEOUT_S = 120
STEP_TIMEOUT_S = 60
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30


class DemoFailed(Exception):
    pass


def say(text=""):
    print(text, flush=True)


def step(text):
    say("\n== " + text)


def wait_for(what, check, timeout_s, interval_s=0.1):
    """Polls check() until it returns a true value (returned), or fails after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (FerryError, OSError, ValueError, KeyError) as e:
            last_error = e
        time.sleep(interval_s)
    raise DemoFailed("timed out after %d s waiting for %s%s" % (
        timeout_s, what, " (last error: %s)" % last_error if last_error else ""))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    """Whether a listener could bind the port (as ferryd's monitor does, with SO_REUSEADDR: a
    connection left in TIME_WAIT by an earlier demo does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def set_key(text, section, key, value):
    """Sets `key = value` in [section] of a config written by ferryctl init."""
    pattern = re.compile(r"(\[%s\][^\[]*?)^%s = .*$" % (re.escape(section), re.escape(key)),
                         re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + "%s = %s" % (key, value), text, count=1)
    header = "[%s]\n" % section
    if header not in text:
        return text + "\n" + header + "%s = %s\n" % (key, value)
    return text.replace(header, header + "%s = %s\n" % (key, value), 1)


class Node:
    """One ferryd: its directory, config, process and IPC client."""

    def __init__(self, demo, name, role):
        self.demo = demo
        self.name = name
        self.role = role
        self.dir = os.path.join(demo.tmp, name)
        self.config = os.path.join(self.dir, "ferry.toml")
        self.log = os.path.join(demo.tmp, name + ".log")
        self.process = None
        self.key = None
        self.listen = None
        self.netns = None  # a lab node (hub, relay, islandK) under --netns
        self._client = None

    def ctl(self, *args, json_out=False):
        argv = [self.demo.ferryctl]
        if json_out:
            argv.append("--json")
        argv += ["--config", self.config] + list(args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise DemoFailed("ferryctl %s on %s: %s" % (" ".join(args), self.name,
                                                       done.stderr.strip() or done.stdout))
        return json.loads(done.stdout) if json_out else done.stdout

    def init(self, listen=None, upstream=None, upstream_key=None, authority=None, monitor=None):
        argv = [self.demo.ferryctl, "init", "--dir", self.dir, "--name", self.name,
                "--role", self.role]
        if listen:
            argv += ["--listen", listen]
            self.listen = listen
        if upstream:
            argv += ["--upstream", upstream, "--upstream-key", upstream_key]
        if authority:
            argv += ["--authority", authority]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise DemoFailed("ferryctl init %s: %s" % (self.name, done.stderr.strip()))
        with open(self.config) as f:
            text = f.read()
        # A lively demo: quick heartbeats, reconnects, receipts and status reports.
        for key, value in [("heartbeat_interval_ms", "500"), ("heartbeat_timeout_ms", "2000"),
                           ("reconnect_min_ms", "100"), ("reconnect_max_ms", "1000"),
                           ("receipt_interval_ms", "500")]:
            text = set_key(text, "replication", key, value)
        for key, value in [("listen", '"%s"' % (monitor or "127.0.0.1:0")),
                           ("refresh_ms", "500"), ("status_interval_ms", "1000"),
                           ("status_keepalive_ms", "10000")]:
            text = set_key(text, "monitor", key, value)
        with open(self.config, "w") as f:
            f.write(text)
        self.key = self.ctl("id", json_out=True)["public_key"]

    def start(self):
        log = open(self.log, "ab")
        argv = [self.demo.ferryd, "--config", self.config]
        if self.netns is not None:
            # `ip netns exec` enters the namespace and execs ferryd: the pid stays ferryd's.
            argv = ["ip", "netns", "exec", Lab.namespace(self.netns)] + argv
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for("%s to answer" % self.name, lambda: self.client().status(), START_TIMEOUT_S)
        if self.process.poll() is not None:
            raise DemoFailed("ferryd %s exited with %d; see %s" % (
                self.name, self.process.returncode, self.log))

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self):
        if self._client is None:
            self._client = FerryClient("ipc://%s/ferryd.sock" % self.dir, timeout_ms=10000)
        return self._client

    def monitor_url(self):
        if self is self.demo.hub and self.demo.monitor_link is not None:
            return "http://127.0.0.1:%d/" % self.demo.monitor_link.port
        with open(os.path.join(self.dir, "monitor.url")) as f:
            return f.read().strip()

    def digest(self, channel):
        """The channel's digest, or None while the node has none or its digests lag its ops."""
        status = self.client().status()
        if not status.get("digest_current", False):
            return None
        return status.get("channels", {}).get(channel)

    def upstream_backlog(self):
        for peer in self.ctl("peers", json_out=True):
            if peer.get("upstream"):
                return peer["backlog"], peer["connected"]
        return None, False


class Lab:
    """The network lab (deploy/lab/lab.sh): one namespace per node, veth links, real cuts."""

    def __init__(self, islands, helper):
        self.script = os.path.join(ROOT, "deploy", "lab", "lab.sh")
        self.argv = [self.script, "--prefix", LAB_PREFIX, "--islands", str(islands)]
        if helper:
            self.argv += ["--helper", helper]

    def run(self, *args):
        done = subprocess.run(self.argv + list(args), capture_output=True, text=True,
                              timeout=LAB_TIMEOUT_S)
        if done.returncode != 0:
            raise DemoFailed("lab.sh %s: %s" % (" ".join(args), done.stderr.strip() or
                                               done.stdout.strip()))
        return done.stdout

    @staticmethod
    def namespace(node):
        return "%s-%s" % (LAB_PREFIX, node)


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


class Demo:
    def __init__(self, build_dir, once, keep, netns):
        self.ferryd = os.path.join(build_dir, "daemon", "ferryd")
        self.ferryctl = os.path.join(build_dir, "ctl", "ferryctl")
        for tool in (self.ferryd, self.ferryctl):
            if not os.access(tool, os.X_OK):
                raise DemoFailed("%s is not built (run ./deploy/demo.sh)" % tool)
        self.once = once
        self.keep = keep
        self.lab = None
        self.monitor_link = None
        if netns:
            if os.geteuid() != 0:
                raise DemoFailed("--netns needs root (network namespaces, nft, tc)")
            helper = os.path.join(build_dir, "deploy", "lab", "nfq_delay")
            self.lab = Lab(len(ISLANDS), helper if os.access(helper, os.X_OK) else None)
        self.tmp = tempfile.mkdtemp(prefix="ferry-demo-")
        self.nodes = []
        self.link = None
        self.facts = {}

    def stop_all(self):
        for node in reversed(self.nodes):
            node.stop()
        for link in (self.link, self.monitor_link):
            if link is not None:
                link.close()
        if self.lab is not None:
            try:
                self.lab.run("down")
            except (DemoFailed, subprocess.TimeoutExpired) as e:
                say("tearing the lab down failed: %s (run deploy/lab/lab.sh --prefix %s down)"
                    % (e, LAB_PREFIX))

    # ---- the story ----

    def set_up(self):
        step("Setting up a city hub, a township relay and three island stations in " + self.tmp)
        if self.lab is not None:
            self.set_up_lab()
        else:
            self.set_up_loopback()
        self.nodes = [self.hub, self.relay] + list(self.islands.values())
        self.hub.start()
        if self.monitor_link is not None and self.monitor_link.netns_error is not None:
            raise DemoFailed("the monitor's forwarder: %s" % self.monitor_link.netns_error)
        say("hub      %s  key %s…" % (self.hub.listen, self.hub.key[:16]))
        step("Enrolling the relay and the islands at the hub (ferryctl trust add)")
        self.hub.ctl("trust", "add", "township", self.relay.key, "--role", "relay")
        for name, island in self.islands.items():
            self.hub.ctl("trust", "add", name, island.key)
        say(self.hub.ctl("trust", "list").rstrip())
        self.relay.start()
        for island in self.islands.values():
            island.start()
        say("relay    %s" % self.relay.listen)
        for name, island in self.islands.items():
            say("island   %-10s key %s…" % (name, island.key[:16]))

    def set_up_loopback(self):
        hub_port, relay_port = free_port(), free_port()
        hub_monitor = "127.0.0.1:%d" % (HUB_MONITOR_PORT if port_free(HUB_MONITOR_PORT)
                                        else free_port())
        self.hub = Node(self, "city-hub", "hub")
        self.hub.init(listen="tcp://127.0.0.1:%d" % hub_port, monitor=hub_monitor)
        self.relay = Node(self, "township", "relay")
        self.relay.init(listen="tcp://127.0.0.1:%d" % relay_port,
                        upstream=self.hub.listen, upstream_key=self.hub.key,
                        authority=self.hub.key)
        # The island that will be cut off reaches the relay through a link the demo can cut.
        self.link = Link(relay_port)
        self.islands = {}
        for name in ISLANDS:
            island = Node(self, name, "station")
            via = self.link.endpoint() if name == CUT_ISLAND else self.relay.listen
            island.init(upstream=via, upstream_key=self.relay.key, authority=self.hub.key)
            self.islands[name] = island

    def set_up_lab(self):
        """Each node in its own namespace; island K reaches the relay over relay-islandK."""
        self.lab.run("down")  # what an earlier, killed demo may have left
        self.lab.run("up")
        say("network lab %s-*: hub 10.213.0.1, relay 10.213.0.2, islands 10.213.K.2" %
            LAB_PREFIX)
        self.hub = Node(self, "city-hub", "hub")
        self.hub.netns = "hub"
        # Every node's monitor listens on the loopback of its own namespace; the hub's is
        # brought out to this machine's loopback by a forwarder that joins the hub's namespace.
        self.hub.init(listen="tcp://10.213.0.1:%d" % LAB_PORT,
                      monitor="127.0.0.1:%d" % HUB_MONITOR_PORT)
        self.monitor_link = Link(HUB_MONITOR_PORT, netns=Lab.namespace("hub"),
                                 listen_port=HUB_MONITOR_PORT if port_free(HUB_MONITOR_PORT)
                                 else 0)
        self.relay = Node(self, "township", "relay")
        self.relay.netns = "relay"
        self.relay.init(listen="tcp://0.0.0.0:%d" % LAB_PORT,
                        upstream=self.hub.listen, upstream_key=self.hub.key,
                        authority=self.hub.key)
        self.islands = {}
        for k, name in enumerate(ISLANDS, start=1):
            island = Node(self, name, "station")
            island.netns = "island%d" % k
            island.init(upstream="tcp://10.213.%d.1:%d" % (k, LAB_PORT),
                        upstream_key=self.relay.key, authority=self.hub.key)
            self.islands[name] = island
        self.cut_link = "relay-island%d" % (ISLANDS.index(CUT_ISLAND) + 1)
        # A satellite link: slow and lossy, delayed too when the lab's helper is built.
        impair = ["--loss", "2", "--rate", "1mbit"]
        if "--helper" in self.lab.argv:
            impair += ["--delay", "60", "--jitter", "20"]
        self.lab.run("impair", self.cut_link, *impair)
        say("%s's link (%s): %s" % (CUT_ISLAND, self.cut_link, " ".join(impair)))

    def cut(self):
        if self.lab is not None:
            self.lab.run("cut", self.cut_link)
        else:
            self.link.cut()

    def heal(self):
        if self.lab is not None:
            self.lab.run("heal", self.cut_link)
        else:
            self.link.heal()

    def converged(self, channels=None):
        """Every island's channel, and broadcast, hold the same ops at the island, relay, hub."""
        for name, island in self.islands.items():
            channel = "station/" + name
            digests = {n.name: n.digest(channel) for n in (island, self.relay, self.hub)}
            if None in digests.values() or len(set(digests.values())) != 1:
                return False
        return True

    def file_transactions(self):
        step("Station software files transactions at each island")
        self.filed = {}
        for name, island in self.islands.items():
            self.filed[name] = simulator.file_day(island.client(), name, count=40, seed=len(name))
            kinds = {}
            for f in self.filed[name]:
                kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
            say("%-10s %d acknowledged: %s" % (name, len(self.filed[name]), ", ".join(
                "%d %s" % (n, k) for k, n in sorted(kinds.items()))))
        started = time.monotonic()
        wait_for("the replicas to converge", self.converged, CONVERGE_TIMEOUT_S, 0.2)
        say("every replica holds the same ops (digests equal) after %.1f s" %
            (time.monotonic() - started))

    def cut_and_heal(self):
        island = self.islands[CUT_ISLAND]
        step("Cutting %s off: its link to the township goes down" % CUT_ISLAND)
        self.cut()
        wait_for("%s to notice the cut" % CUT_ISLAND,
                 lambda: not island.upstream_backlog()[1], STEP_TIMEOUT_S, 0.2)
        say("%s: link down; it keeps serving citizens and acknowledging locally" % CUT_ISLAND)
        for round_no in range(3):
            filed = simulator.file_day(island.client(), CUT_ISLAND, count=10,
                                       seed=100 + round_no, start=1000 + 10 * round_no)
            self.filed[CUT_ISLAND] += filed
            backlog, _ = island.upstream_backlog()
            say("  %d more acknowledged at %s; its backlog to send: %d ops" % (
                len(filed), CUT_ISLAND, backlog))
        self.facts["backlog_at_heal"] = backlog
        url = self.hub.monitor_url()
        row = wait_for("the hub to see %s offline" % CUT_ISLAND, lambda: next(
            (s for s in http_json(url + "api/stations")["stations"]
             if s["name"] == CUT_ISLAND and not s["online"]), None), STEP_TIMEOUT_S, 0.2)
        say("hub monitor: %s online=%s, last seen %.1f s ago" % (
            CUT_ISLAND, row["online"], (time.time() * 1000 - row["last_seen_ms"]) / 1000))
        step("Healing the link")
        started = time.monotonic()
        self.heal()
        wait_for("the replicas to converge after the heal", self.converged,
                 CONVERGE_TIMEOUT_S, 0.1)
        self.facts["converge_s"] = time.monotonic() - started
        say("converged %.1f s after the heal: %s's %d ops are at the hub, digests equal" % (
            self.facts["converge_s"], CUT_ISLAND, len(self.filed[CUT_ISLAND])))

    def decide(self):
        island = self.islands[CUT_ISLAND]
        application = next(f for f in self.filed[CUT_ISLAND] if f["kind"] == "application.file")
        channel = "station/" + CUT_ISLAND
        step("The hub approves %s and issues a certificate" % application["key"])
        hub = self.hub.client()
        approval = hub.submit("application.decide", application["key"],
                              {"set": {"status": "approved", "decided_by": "city hall"}},
                              channel=channel, author="officer:lin")
        number = "CERT-%s-0001" % CUT_ISLAND.upper()
        certificate = hub.submit("certificate.issue", "certificate/" + number,
                                 {"set": {"number": number, "for": application["key"],
                                          "service": application["service"],
                                          "status": "issued"}},
                                 channel=channel, author="officer:lin")
        say("hub: approval %s…, certificate %s…" % (approval["id"][:16], certificate["id"][:16]))
        step("Both arrive back on %s (pull), and its application is delivered (track)" %
             CUT_ISLAND)
        c = island.client()
        wanted = {approval["id"]: "approval", certificate["id"]: "certificate"}
        seen = {}
        cursor = self.island_cursor

        def arrived():
            nonlocal cursor
            page = c.pull(cursor, wait_ms=500, channels=[channel])
            cursor = page["next"]
            for op in page["ops"]:
                if op["id"] in wanted:
                    seen[op["id"]] = op
            return len(seen) == len(wanted)

        wait_for("the decision to reach %s" % CUT_ISLAND, arrived, STEP_TIMEOUT_S, 0)
        for op_id, op in seen.items():
            say("  pulled %-11s %s %s by %s" % (wanted[op_id], op["kind"], op["key"],
                                                 op.get("author")))
        record = c.get(application["key"])
        say("  record %s: status=%s" % (application["key"], record["fields"].get("status")))
        if record["fields"].get("status") != "approved":
            raise DemoFailed("the approval did not fold into the island's record")
        tracked = wait_for("%s's application to be delivered" % CUT_ISLAND, lambda: (
            lambda t: t if t["state"] == "delivered" else None)(c.track(application["id"])),
            STEP_TIMEOUT_S, 0.2)
        say("  track %s…: %s, receipt %s… from the hub" % (
            application["id"][:16], tracked["state"], tracked["delivered"]["receipt"][:16]))
        self.facts["decision"] = True

    def summary(self):
        step("Summary")
        url = self.hub.monitor_url()

        def settled():
            rows = http_json(url + "api/stations")["stations"]
            ok = len(rows) == len(self.islands) + 1 and all(
                s["online"] and s["backlog_up"] == 0 and s["backlog_down"] == 0 for s in rows)
            return rows if ok else None

        stations = wait_for("the hub's monitor to show every node online with no backlog",
                            settled, STEP_TIMEOUT_S, 0.2)
        say("%-10s %-8s %-8s %8s %8s %8s" % ("node", "role", "online", "ops", "up", "down"))
        for s in stations:
            say("%-10s %-8s %-8s %8d %8s %8s" % (s["name"], s["role"], s["online"], s["ops_held"],
                                                s["backlog_up"], s["backlog_down"]))
        hub_status = self.hub.client().status()
        say("hub: %d ops in %d feeds, digest %s…" % (hub_status["ops"], hub_status["feeds"],
                                                     hub_status["digest"][:16]))
        say("%s: backlog %d at the heal, converged %.1f s after it; decision delivered" % (
            CUT_ISLAND, self.facts["backlog_at_heal"], self.facts["converge_s"]))
        say("\nMonitor (dashboard, /api/stations, /metrics): %s" % url)
        say("Terminal view:  %s monitor --config %s" % (self.ferryctl, self.hub.config))
        say("Logs and data:  %s%s" % (self.tmp, " (removed at exit; --keep keeps them)"
                                      if self.once and not self.keep else ""))

    def run(self):
        self.set_up()
        self.file_transactions()
        self.island_cursor = self.islands[CUT_ISLAND].client().status()["last_arrival"]
        self.cut_and_heal()
        self.decide()
        self.summary()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True, help="where ferryd and ferryctl were built")
    parser.add_argument("--once", action="store_true", help="exit after the summary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--netns", action="store_true",
                        help="root: every node in its own network namespace, real cuts")
    args = parser.parse_args()
    demo = None
    failed = False
    finished = False

    def on_term(*_):
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C: nodes, links, lab

    signal.signal(signal.SIGTERM, on_term)
    try:
        demo = Demo(args.build_dir, args.once, args.keep, args.netns)
        demo.run()
        finished = True
        if not args.once:
            say("\nThe nodes keep running; Ctrl-C stops them.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("\nstopping")
        failed = not finished  # interrupted before the summary: the story is not complete
    except (DemoFailed, FerryError, OSError) as e:
        failed = True
        say("\nDEMO FAILED: %s" % e)
    finally:
        if demo is not None:
            demo.stop_all()
            if failed or args.keep:
                say("logs and data kept in %s" % demo.tmp)
            else:
                shutil.rmtree(demo.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
