"""A small Python client for ferryd's local IPC, written from docs/ipc.md alone.

Station software files government transactions with the node's ferryd and follows what arrives
over one ZeroMQ REQ socket on the same machine. Each request is one msgpack map; each reply is
one msgpack map with "ok". Failures raise FerryError with the documented code ("bad_request",
"unknown_command", "too_large", "not_found", "busy", "storage_full", "storage_error",
"internal"); branch on .code, show .message to people.

Needs Debian's python3-zmq and python3-msgpack.

    from ferry_client import FerryClient, FerryError

    with FerryClient("ipc:///var/lib/ferry/huaniao/ferryd.sock") as ferry:
        filed = ferry.submit("case.submit", "HN-2026-0001",
                             {"service": "household-registration", "applicant": "陈晓玲"})
        print(filed["id"], filed["seq"])

A client object holds one socket and is for one thread.
"""

import msgpack
import zmq

__all__ = ["FerryClient", "FerryError", "FerryTimeout"]


class FerryError(Exception):
    """An error reply from ferryd: code is the documented code, message is for people."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class FerryTimeout(FerryError):
    """No reply within the timeout. ferryd may or may not have acted on the request: after a
    timed-out submit, look for the op (pull, or track by id if you have it) before filing again."""

    def __init__(self, message):
        super().__init__("timeout", message)


class FerryClient:
    """A synchronous client of one ferryd.

    endpoint: the daemon's [ipc] endpoint, by default ipc://<data_dir>/ferryd.sock.
    timeout_ms: how long to wait for a reply (a waiting pull waits wait_ms longer).
    """

    def __init__(self, endpoint, timeout_ms=5000, context=None):
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_ms)
        self._context = context or zmq.Context.instance()
        self._socket = None
        self._open()

    # -- connection -----------------------------------------------------------------------------

    def _open(self):
        sock = self._context.socket(zmq.REQ)
        # Never block on close, and never let an unanswered request linger.
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._socket = sock

    def close(self):
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, request, extra_wait_ms=0):
        if self._socket is None:
            self._open()
        self._socket.send(msgpack.packb(request, use_bin_type=True))
        timeout = self.timeout_ms + int(extra_wait_ms)
        if not self._socket.poll(timeout, zmq.POLLIN):
            # A REQ socket that missed its reply is stuck: close it and open a new one.
            self.close()
            self._open()
            raise FerryTimeout("no reply from %s within %d ms" % (self.endpoint, timeout))
        reply = msgpack.unpackb(self._socket.recv(), raw=False)
        if not isinstance(reply, dict) or "ok" not in reply:
            raise FerryError("internal", "reply is not a ferry reply map: %r" % (reply,))
        if not reply["ok"]:
            error = reply.get("error") or {}
            raise FerryError(error.get("code", "internal"), error.get("message", ""))
        del reply["ok"]
        return reply

    # -- commands -------------------------------------------------------------------------------

    def submit(self, kind, key, body, channel=None, author=None, deps=None):
        """Files a transaction. The reply comes only once the op is durable on the node.

        kind: e.g. "case.submit" (1-64 bytes); key: the record it changes, e.g. a case number
        (1-256 bytes); body: a dict (string keys, nesting at most 16 deep); channel: defaults to
        station/<node name>; author: the agent filing it for a citizen; deps: op ids (hex) of the
        record heads the writer had seen, at most 32.
        Returns {"id", "seq", "hlc", "channel"}.
        """
        if not isinstance(body, dict):
            raise TypeError("body must be a dict")
        request = {"cmd": "submit", "kind": kind, "key": key, "body": body}
        if channel is not None:
            request["channel"] = channel
        if author is not None:
            request["author"] = author
        if deps is not None:
            request["deps"] = list(deps)
        return self._call(request)

    def op(self, op_id):
        """The op with this id, as a dict: id, origin, channel, seq, prev, hlc, kind, key, deps,
        author, body, arrival, stored_at. Raises FerryError("not_found") for an unknown id."""
        return self._call({"cmd": "op", "id": op_id})["op"]

    def track(self, op_id):
        """Where an op is: {"state": "stored", "stored_at": ms since the epoch}."""
        return self._call({"cmd": "track", "id": op_id})

    def pull(self, after, limit=None, wait_ms=None, channels=None):
        """Ops that arrived after the cursor `after` (start with 0), oldest first.

        Returns {"ops": [op, ...], "next": cursor}: pass next as after in the following pull, and
        store it only after acting on the ops. With wait_ms, waits that long for a matching op
        when there is none yet (an expired wait returns ops == []). channels: only ops of these.
        """
        request = {"cmd": "pull", "after": int(after)}
        if limit is not None:
            request["limit"] = int(limit)
        if wait_ms is not None:
            request["wait_ms"] = int(wait_ms)
        if channels is not None:
            request["channels"] = list(channels)
        return self._call(request, extra_wait_ms=wait_ms or 0)

    def follow(self, after=0, wait_ms=10000, channels=None, limit=None):
        """Yields (op, next) for every op that arrives after `after`, forever, waiting wait_ms at a
        time. Persist `next` once you have acted on the op to resume there after a restart."""
        while True:
            page = self.pull(after, limit=limit, wait_ms=wait_ms, channels=channels)
            for op in page["ops"]:
                yield op, op["arrival"]
            after = page["next"]

    def get(self, key, channel=None):
        """The record `key` (in `channel`, default station/<node name>) merged from its ops:
        {"channel", "key", "fields", "counters", "sets", "heads", "conflicts", "ops",
        "updated_hlc"}. Bodies change records through "set" (fields), "inc" (counters) and
        "add"/"del" (sets). Raises FerryError("not_found") for a record with no op."""
        request = {"cmd": "get", "key": key}
        if channel is not None:
            request["channel"] = channel
        return self._call(request)["record"]

    def conflicts(self, limit=None):
        """Records with concurrent writes of one field: [{"channel", "key", "fields"}, ...]."""
        request = {"cmd": "conflicts"}
        if limit is not None:
            request["limit"] = int(limit)
        return self._call(request)["conflicts"]

    def status(self):
        """The node at a glance: node {name, id, role}, ops, feeds, last_arrival, uptime_ms,
        version, hlc, digest, channels {channel: digest}, digest_current (false while the
        digests lag the newest ops), pending, ipc {requests, errors,
        submit_queue, pulls_waiting, disconnects, unsent_replies}."""
        return self._call({"cmd": "status"})
