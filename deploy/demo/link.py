"""A TCP link on loopback that the demo can cut and heal, without root.

It listens on 127.0.0.1 and forwards every connection to a target port on a thread of its own.
cut() closes every connection through it and refuses new ones until heal(): to the island and
the relay it looks like their link went down. Bounded: at most LINKS_MAX connections at once.

With netns=NAME (root only) the forwarding thread joins that network namespace before it
connects anywhere, so a port of this machine's loopback leads to 127.0.0.1:target inside the
namespace: how `demo.sh --netns` shows the hub's monitor, which runs in the hub's namespace.
"""

import ctypes
import os
import selectors
import socket
import threading

CLONE_NEWNET = 0x40000000

LINKS_MAX = 64
CHUNK = 65536


class Link:
    def __init__(self, target_port, listen_port=0, netns=None):
        self.target_port = target_port
        self.netns = netns
        self.netns_error = None
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", listen_port))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._pairs = {}  # socket -> its other end
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def endpoint(self):
        return "tcp://127.0.0.1:%d" % self.port

    def cut(self):
        self._cut.set()

    def heal(self):
        self._cut.clear()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._close_all()
        self.listener.close()

    def _close_all(self):
        for s in list(self._pairs):
            s.close()
        self._pairs.clear()

    def _drop(self, sel, s):
        other = self._pairs.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            self._pairs.pop(x, None)
            x.close()

    def _join_netns(self):
        """Moves this thread (only) into the namespace; sockets it makes afterwards live there."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/" + self.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, "setns %s: %s" % (self.netns, os.strerror(err)))
        finally:
            os.close(fd)

    def _run(self):
        if self.netns is not None:
            try:
                self._join_netns()
            except OSError as e:
                self.netns_error = e
                return
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            if self._cut.is_set() and self._pairs:
                for s in list(self._pairs):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                self._close_all()
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                if s is self.listener:
                    try:
                        client, _ = self.listener.accept()
                    except OSError:
                        continue
                    if self._cut.is_set() or len(self._pairs) >= 2 * LINKS_MAX:
                        client.close()  # a cut link: the connection drops at once
                        continue
                    try:
                        server = socket.create_connection(("127.0.0.1", self.target_port), 5)
                    except OSError:
                        client.close()
                        continue
                    for x in (client, server):
                        x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        x.setblocking(True)
                    self._pairs[client] = server
                    self._pairs[server] = client
                    sel.register(client, selectors.EVENT_READ)
                    sel.register(server, selectors.EVENT_READ)
                    continue
                if s not in self._pairs:
                    continue
                try:
                    data = s.recv(CHUNK)
                except OSError:
                    data = b""
                if not data:
                    self._drop(sel, s)
                    continue
                try:
                    self._pairs[s].sendall(data)
                except OSError:
                    self._drop(sel, s)
        sel.close()
