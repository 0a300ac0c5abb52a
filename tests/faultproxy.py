"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the moto S3 server.

GETs of objects fail at a given rate with a 503 SlowDown, a connection reset before any answer,
or a body cut short at a random byte (full Content-Length announced, a seeded random prefix
sent), or a *stall*: headers and half the body, then nothing while the connection stays open
(a frozen endpoint; bounded by ``stall_s``). ``outage()`` stops answering
altogether for a while, like an S3 endpoint that goes away and comes back. Randomness comes from
a seeded RNG; every loop is bounded.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.0, seed: int = 0,
                 kinds=("503", "reset", "truncate"), truncate_min: int = 2,
                 stall_s: float = 30.0):
        self.upstream = urlparse(upstream)
        self.rate, self.kinds, self.truncate_min = rate, kinds, truncate_min
        self.stall_s = stall_s
        self.gets: list[tuple[str, str | None]] = []  # (path, Range header) of object GETs
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected = {k: 0 for k in kinds}
        self.requests = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()

    def _fault(self, method: str, path: str) -> str | None:
        is_object = method == "GET" and path.split("?")[0].count("/") >= 2
        with self.lock:
            self.requests += 1
            if is_object:
                self.gets.append((path, None))
            if is_object and self.rate and self.rng.random() < self.rate:
                kind = self.rng.choice(self.kinds)
                self.injected[kind] += 1
                return kind
        return None

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._fault(self.command, self.path)
                if proxy.gets and proxy.gets[-1] == (self.path, None):
                    proxy.gets[-1] = (self.path, self.headers.get("Range"))
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "503":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                  timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream.hostname}:{proxy.upstream.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # a HEAD answer has no body but announces the object's length
                length = resp.getheader("Content-Length") if self.command == "HEAD" else len(data)
                self.send_header("Content-Length", str(length or 0))
                self.end_headers()
                if fault == "truncate" and len(data) >= proxy.truncate_min:
                    with proxy.lock:
                        cut = proxy.rng.randint(1, len(data) - 1)
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    # the bytes before a break arrive before the break itself, as on a network
                    time.sleep(0.05)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "stall" and len(data) >= 2:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    deadline = time.monotonic() + proxy.stall_s
                    while time.monotonic() < deadline and proxy.server is not None:
                        time.sleep(0.05)  # frozen: the connection stays open, no bytes
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def outage(self, seconds: float) -> threading.Thread:
        """Stop answering (connections refused) for ``seconds``, then come back, in the background."""
        def run():
            self.stop()
            time.sleep(seconds)
            self.start()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def read_through_one_failure(reader, proxy: FaultProxy, *, after: int, key) -> tuple[list, list]:
    """Read ``reader`` to its end; after ``after`` items every object GET is cut short until a
    read has failed for good (SourceError: the reader runs with max_attempts=1), then the store
    is healthy again and reading goes on. Returns (``key`` of every item, the reader's cursor
    at each failure)."""
    from xtok_stream.errors import SourceError

    got, failures = [], []
    while True:
        if len(got) == after and not failures:
            proxy.rate, proxy.kinds, proxy.truncate_min = 1.0, ("truncate",), 2
            proxy.injected.setdefault("truncate", 0)
        try:
            item = next(reader)
        except StopIteration:
            return got, failures
        except SourceError:
            failures.append(reader.state_dict())
            proxy.rate = 0.0
            if len(failures) > 3:
                raise
            continue
        got.append(key(item))
