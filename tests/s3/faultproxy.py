"""A threaded HTTP proxy on loopback that sits between boto3 and an S3 server and fails a
chosen fraction of requests: a 500 or 503 answer (half of them after the server has done the
work, which is the ambiguous case a retry must handle), a connection reset halfway through
the response body, or a delay. The Host header is passed through, so signatures still match.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from snapfs.store.retry import RetryPolicy

FAULT_KINDS = ("500", "503", "reset", "delay")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "content-length"}
)  # fmt: skip
_OWN_HEADERS = frozenset({"server", "date"})  # send_response writes its own
_S3_ERRORS = {
    "500": (500, "InternalError"),
    "503": (503, "SlowDown"),
    "501": (501, "NotImplemented"),
}


def fast_retry(attempts: int = 10) -> RetryPolicy:
    """A retry policy that waits milliseconds, for clients behind the proxy."""
    return RetryPolicy(attempts=attempts, base_delay=0.001, max_delay=0.01)


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    delay: float = 0.5
    seed: int = 1
    refuse_conditional: bool = False  # answer If-None-Match with 501, as old servers do
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def choose(self) -> tuple[str | None, bool]:
        """The fault for the next request (None: pass it through) and, for an error answer,
        whether the server sees the request first."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None, False
            return self._rng.choice(self.kinds), self._rng.random() < 0.5


class FaultProxy:
    """Forwards to ``127.0.0.1:upstream_port``; ``counts`` tallies requests and faults,
    ``requests`` lists them."""

    def __init__(self, upstream_port: int, plan: FaultPlan | None = None) -> None:
        self.upstream_port = upstream_port
        self.plan = plan or FaultPlan()
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []  # (method, path and query), in order
        self._counts_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, what: str) -> None:
        with self._counts_lock:
            self.counts[what] += 1

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


_KINDS = ("config", "data", "forgotten", "index", "keys", "locks", "snapshots")


def _kind(path: str) -> str:
    """Which sort of repository object a request names: "index", "data", ... or "other"."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    for part in reversed(parts):
        if part in _KINDS:
            return part
    return "other"


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.proxy = proxy
    return Handler


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's pool expects
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_request(self) -> None:
        body = self._read_body()
        self.proxy.count("requests")
        with self.proxy._counts_lock:
            self.proxy.requests.append((self.command, self.path))
        self.proxy.count(self.command)
        self.proxy.count(f"{self.command} {_kind(self.path)}")
        if self.proxy.plan.refuse_conditional and "If-None-Match" in self.headers:
            self._send_error("501")
            return
        fault, after = self.proxy.plan.choose()
        if fault:
            self.proxy.count(fault)
        if fault == "delay":
            time.sleep(self.proxy.plan.delay)
        if fault in _S3_ERRORS and not after:
            self._send_error(fault)
            return
        status, headers, data = self._forward(body)
        if fault in _S3_ERRORS:
            self._send_error(fault)
        elif fault == "reset":
            self._send_then_reset(status, headers, data)
        else:
            self._send(status, headers, data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_request

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):  # a kept-alive upstream connection may have gone stale
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    "127.0.0.1", self.proxy.upstream_port, timeout=120
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    return 502, [], b""
        raise AssertionError("unreachable")

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        length = len(data)
        for name, value in headers:
            if name.lower() == "content-length" and self.command == "HEAD":
                length = int(value)  # HEAD tells the size of a body it does not send
            elif name.lower() not in _HOP_BY_HOP | _OWN_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, fault: str) -> None:
        status, code = _S3_ERRORS[fault]
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by faultproxy</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_then_reset(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        """Headers promising the whole body, half of it, then RST (SO_LINGER 0). A response
        without a body is cut before anything is sent: the server did the work, the client
        cannot know."""
        if data and self.command != "HEAD":
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP | _OWN_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the socket was reset on purpose
        if self._upstream is not None:
            self._upstream.close()
