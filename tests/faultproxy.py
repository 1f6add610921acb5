"""A fault-injecting HTTP proxy in front of a real S3 API (moto's server), for tests.

Every request is forwarded to the upstream server unchanged, except that a seeded
fraction of them is answered with an S3 error instead:

    503 SlowDown        before forwarding (the request never reached the store)
    500 InternalError   before forwarding
    500 InternalError   after forwarding ("lost"): the store applied the request (a PUT
                        stored the object, a DELETE removed it) but the client is told
                        it failed, so a retry must be idempotent

Faults hit every kind of request alike: GET (reads and LIST, which is a GET on the
bucket), PUT, HEAD, DELETE, POST.  With ``first_of_each`` the first request of every
operation is faulted too, so each operation is seen failing at least once whatever the
thread interleaving.  ``script(op, kinds)`` queues exact faults for the next requests of one
operation (e.g. three SlowDowns in a row, or a 403 ``denied``).  ``FaultProxy.faults``
counts faults per (kind, op), ``requests`` requests per op; ``puts`` records the path
and headers of every PUT (to check, say, that each write asked for encryption).

    with FaultProxy(moto_endpoint, fraction=0.15, seed=7) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
"""

from __future__ import annotations

import http.client
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "expect", "content-length"}
KINDS = ("slowdown", "internal", "lost")
ANSWERS = {"slowdown": (503, "SlowDown", "Please reduce your request rate."),
           "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
           "lost": (500, "InternalError", "We encountered an internal error. Please try again."),
           "denied": (403, "AccessDenied", "Access Denied")}


def _error_xml(code: str, message: str, n: int) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault-{n}</RequestId></Error>").encode()


def operation(method: str, path: str) -> str:
    """A coarse S3 operation name for counting: LIST is a GET on the bucket with a query."""
    parts = urlsplit(path)
    key_part = parts.path.strip("/").split("/", 1)
    if method == "GET" and (len(key_part) == 1 or "list-type" in parts.query):
        return "LIST"
    return method


class FaultProxy:
    def __init__(self, upstream: str, fraction: float = 0.15, seed: int = 0,
                 kinds: tuple[str, ...] = KINDS, first_of_each: bool = False):
        up = urlsplit(upstream)
        self.upstream = (up.hostname, up.port)
        self.fraction, self.kinds, self.first_of_each = fraction, kinds, first_of_each
        self.scripted: dict[str, list[str]] = {}
        self.puts: list[tuple[str, dict[str, str]]] = []
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: Counter = Counter()     # per operation
        self.faults: Counter = Counter()       # per (kind, operation)
        self.enabled = True
        self._server: ThreadingHTTPServer | None = None

    # -- life cycle --
    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):      # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if self.command == "HEAD":
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _fault(self, kind: str, n: int) -> None:
                status, code, msg = ANSWERS[kind]
                self._reply(status, [("Content-Type", "application/xml"),
                                     ("x-amz-request-id", f"fault-{n}")], _error_xml(code, msg, n))

            def _handle(self) -> None:
                body = self._body()
                op = operation(self.command, self.path)
                with proxy.lock:
                    proxy.requests[op] += 1
                    if self.command == "PUT":
                        proxy.puts.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    n = sum(proxy.requests.values())
                    kind = None
                    if proxy.scripted.get(op):
                        kind = proxy.scripted[op].pop(0)
                    elif proxy.enabled and (proxy.rng.random() < proxy.fraction or (
                            proxy.first_of_each and proxy.requests[op] == 1)):
                        kind = proxy.rng.choice(proxy.kinds)
                    if kind:
                        proxy.faults[(kind, op)] += 1
                if kind in ("slowdown", "internal", "denied"):
                    self._fault(kind, n)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                    if self.command == "HEAD" and resp.getheader("Content-Length"):
                        out_headers.append(("Content-Length", resp.getheader("Content-Length")))
                finally:
                    conn.close()
                if kind == "lost":
                    self._fault(kind, n)
                    return
                self._reply(resp.status, out_headers, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, op: str, kinds: list[str]) -> None:
        """Answer the next ``len(kinds)`` requests of ``op`` with these faults, in order."""
        with self.lock:
            self.scripted.setdefault(op, []).extend(kinds)

    def faulted_operations(self) -> set[str]:
        return {op for (_, op), n in self.faults.items() if n}
