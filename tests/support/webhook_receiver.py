"""A webhook receiver on 127.0.0.1 that checks every request's signature the way docs/webhooks.rst
tells receivers to, written out here (not through django_smsclub's own helper)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    at: float
    json: Any = field(default=None)

    @property
    def event_id(self) -> str:
        return self.headers.get("X-SMSClub-Event-Id", "")


class WebhookReceiver:
    """Answers each POST with the next of ``statuses`` (the last one repeats; 200 when empty),
    after ``delay`` seconds; records every request with whether its signature holds."""

    def __init__(self, secret: str, *, tolerance: int = 300):
        self.secret = secret
        self.tolerance = tolerance
        self.statuses: list[int] = []
        #: Called with each request before ``statuses``: a status to answer with, or None.
        self.status_for: Any = None
        self.delay = 0.0
        self.reply_body = b"ok"
        self.reply_headers: dict[str, str] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._answered = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = dict(self.headers)
                request = Received(
                    self.path, headers, body, receiver.signature_holds(headers, body), time.time()
                )
                with contextlib.suppress(ValueError):
                    request.json = json.loads(body)
                with receiver._lock:
                    receiver.received.append(request)
                    status = receiver.status_for and receiver.status_for(request)
                    status = status or receiver._next_status()
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    for name, value in receiver.reply_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(receiver.reply_body)))
                    self.end_headers()
                    self.wfile.write(receiver.reply_body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sms"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()

    def signature_holds(self, headers: dict[str, str], body: bytes) -> bool:
        """The documented recipe: ``t`` within the window, ``v1`` the hex HMAC-SHA256 of
        ``f"{t}."`` and the body, keyed by the secret, compared in constant time."""
        header = headers.get("X-SMSClub-Signature", "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        if not parts.get("t", "").isdigit() or "v1" not in parts:
            return False
        if abs(time.time() - int(parts["t"])) > self.tolerance:
            return False
        if headers.get("X-SMSClub-Timestamp") != parts["t"]:
            return False
        expected = hmac.new(
            self.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} requests"
            time.sleep(0.02)
        return list(self.received)

    def events(self) -> list[Any]:
        return [r.json for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_status(self) -> int:
        if not self.statuses:
            return 200
        index = min(self._answered, len(self.statuses) - 1)
        self._answered += 1
        return self.statuses[index]
