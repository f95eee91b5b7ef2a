"""A fault-injecting HTTP reverse proxy for S3 tests, stdlib only.

`FaultProxy` listens on loopback in front of an S3 endpoint (the moto server)
and forwards every request to it, except those a rule of its fault plan picks:

* ``"status"``: answer with an S3-style XML error (``503 SlowDown``,
  ``500 InternalError``, ...) without forwarding;
* ``"reset"``: read the request, then reset the connection (TCP RST) with no answer;
* ``"reset_upload"``: reset the connection halfway through the request body;
* ``"drop_response"``: forward the request (the server acts on it), then reset
  the connection instead of answering: the client cannot know it succeeded;
* ``"reset_download"``: forward, send the headers and half the response body,
  pause, then close the connection (a clean close after a pause, so the client
  reads all of that half: after a reset, or an early close, it may drop bytes
  it had received but not yet read);
* ``"slow"``: forward, then wait ``delay`` seconds before answering.

A rule matches by S3 operation (``PutObject``, ``UploadPart``,
``CompleteMultipartUpload``, ``GetObject``, ... see `s3_operation`), method
and a regex on the key, and fires ``times`` times (``None``: always), or on
every ``every``-th matching request. The proxy counts requests and the faults
it injected, by kind, under a lock: many client connections are served at
once, each on its own thread (HTTP/1.1 keep-alive, ``Expect: 100-continue``,
bodies with ``Content-Length`` or ``Transfer-Encoding: chunked``).
"""

from __future__ import annotations

import collections
import http.client
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ["FaultKind", "FaultProxy", "Rule", "s3_operation"]

FaultKind = Literal["status", "reset", "reset_upload", "drop_response", "reset_download", "slow"]
KINDS: tuple[FaultKind, ...] = (
    "status",
    "reset",
    "reset_upload",
    "drop_response",
    "reset_download",
    "slow",
)
# Headers that describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
# Seconds between the half body of a "reset_download" and closing the connection.
CUT_PAUSE = 0.05
ERROR_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
}


def s3_operation(method: str, target: str) -> str:
    """The S3 operation of a path-style request, e.g. ``PUT /b/k?partNumber=1&uploadId=x``."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    has_key = "/" in parts.path.strip("/")
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPart"
        return "PutObject" if has_key else "CreateBucket"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "DeleteObjects" if "delete" in query else "Post"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "GET":
        if not has_key:
            return "ListMultipartUploads" if "uploads" in query else "ListObjects"
        return "ListParts" if "uploadId" in query else "GetObject"
    return method


@dataclass
class Rule:
    """One line of the fault plan; see the module docstring for the kinds."""

    kind: FaultKind
    op: str | None = None
    method: str | None = None
    key: str | None = None
    times: int | None = 1
    every: int | None = None
    status: int = 503
    code: str = "SlowDown"
    delay: float = 0.0
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, op: str, path: str) -> bool:
        return (
            (self.op is None or self.op == op)
            and (self.method is None or self.method == method)
            and (self.key is None or re.search(self.key, path) is not None)
        )

    def fires(self) -> bool:
        """Count one matching request; whether the fault applies to it."""
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.every is not None and self.seen % self.every:
            return False
        self.fired += 1
        return True


@dataclass
class Event:
    """One request the proxy saw: its operation, path, ``Range`` and the fault, if any."""

    method: str
    op: str
    path: str
    range: str | None
    fault: FaultKind | None


@dataclass
class _State:
    rules: list[Rule] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue answered by the base class
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: pytest treats nothing here as a failure

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # -- request ---------------------------------------------------------------
    def _read_body(self, limit: int | None = None) -> bytes:
        """The request body (``limit``: stop after about that many bytes)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                total += size
                if limit is not None and total >= limit:
                    return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit))

    def _body_length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def _pick(self, op: str) -> Rule | None:
        state = self.server.state
        with state.lock:
            rule = next(
                (
                    r
                    for r in state.rules
                    if r.matches(self.command, op, self.path) and r.fires()  # first that fires
                ),
                None,
            )
            kind = rule.kind if rule is not None else None
            state.events.append(Event(self.command, op, self.path, self.headers.get("Range"), kind))
        return rule

    # -- faults ----------------------------------------------------------------
    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        self.close_connection = True
        sock = self.connection
        try:
            self.wfile.flush()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _send_error_xml(self, rule: Rule) -> None:
        message = ERROR_MESSAGES.get(rule.code, "Injected fault.")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{rule.code}</Code><Message>{message}</Message>"
            "<RequestId>fault-proxy</RequestId><HostId>fault-proxy</HostId></Error>"
        ).encode()
        self.send_response_only(rule.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- forwarding ------------------------------------------------------------
    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        host, port = self.server.upstream
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()  # http.client undoes a chunked response
            headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP
            ]
            return response.status, response.reason, headers, data
        finally:
            conn.close()

    def _answer(
        self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes, cut: bool
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            # HEAD keeps the object's length; any other answer gets the body's own.
            if name.lower() != "content-length" or self.command == "HEAD":
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if cut else data)
        else:
            self.end_headers()
        if cut:
            self.close_connection = True
            self.server.stopping.wait(CUT_PAUSE)
            self.connection.shutdown(socket.SHUT_WR)

    def _proxy(self) -> None:
        op = s3_operation(self.command, self.path)
        rule = self._pick(op)
        kind = rule.kind if rule is not None else None
        try:
            if kind == "reset_upload":
                self._read_body(limit=max(1, self._body_length() // 2))
                self._reset()
                return
            body = self._read_body()
            if rule is not None and kind == "status":
                self._send_error_xml(rule)
                return
            if kind == "reset":
                self._reset()
                return
            status, reason, headers, data = self._forward(body)
            if kind == "drop_response":
                self._reset()
                return
            if rule is not None and kind == "slow" and self.server.stopping.wait(rule.delay):
                self._reset()
                return
            self._answer(status, reason, headers, data, cut=kind == "reset_download" and bool(data))
        except (ConnectionError, TimeoutError, BrokenPipeError):
            # The client gave up (its own timeout) while we waited: nothing to answer.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: tuple[str, int], state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.state = state
        self.stopping = threading.Event()


class FaultProxy:
    """A reverse proxy on ``127.0.0.1`` in front of ``upstream`` with a fault plan.

    Example::

        with FaultProxy("http://127.0.0.1:5000") as proxy:
            proxy.add("status", op="PutObject", times=2)  # the next two PUTs get 503
            ...  # a client with endpoint_url=proxy.url
            assert proxy.faults["status"] == 2
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self._state = _State()
        self._server = _Server((parts.hostname, parts.port or 80), self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        """The proxy's endpoint URL, for ``endpoint_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()  # wakes slow answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the plan --------------------------------------------------------------
    def add(
        self,
        kind: FaultKind,
        op: str | None = None,
        *,
        method: str | None = None,
        key: str | None = None,
        times: int | None = 1,
        every: int | None = None,
        status: int = 503,
        code: str = "SlowDown",
        delay: float = 0.0,
    ) -> Rule:
        """Add a rule; rules are tried in the order added, the first that fires wins.

        Args:
            kind: what to do to a matching request (see the module docstring).
            op: an S3 operation name (`s3_operation`), or ``None`` for any.
            method: an HTTP method, or ``None`` for any.
            key: a regex searched in the request path, or ``None`` for any.
            times: how many faults this rule injects (``None``: no limit).
            every: fault only every ``every``-th matching request.
            status: the HTTP status of a ``"status"`` fault.
            code: the S3 error code of a ``"status"`` fault.
            delay: seconds a ``"slow"`` answer waits.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        rule = Rule(kind, op, method, key, times, every, status, code, delay)
        with self._state.lock:
            self._state.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forward everything from now on (counters are kept)."""
        with self._state.lock:
            self._state.rules.clear()

    # -- counters --------------------------------------------------------------
    @property
    def events(self) -> list[Event]:
        """Every request seen so far, in arrival order."""
        with self._state.lock:
            return list(self._state.events)

    @property
    def requests(self) -> int:
        """Requests seen so far."""
        return len(self.events)

    @property
    def faults(self) -> collections.Counter[str]:
        """Faults injected so far, by kind."""
        return collections.Counter(e.fault for e in self.events if e.fault is not None)

    def served(self, op: str) -> int:
        """Requests of operation ``op`` seen so far (faulted or not)."""
        return sum(1 for e in self.events if e.op == op)
