"""HTTP plumbing: one threaded server on 127.0.0.1 for every gateway, with injected faults."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import http_api, json_api, soap_api, xml_api
from .faults import Fault, Faults, garble
from .rules import Refused
from .state import RequestRecord, State, TooManyRequests
from .wire import Reply, Request, Route, scrub

logger = logging.getLogger("django_smsclub.emulator")

ROUTES: dict[str, Route] = {
    **http_api.ROUTES,
    **xml_api.ROUTES,
    **json_api.ROUTES,
    **soap_api.ROUTES,
}
#: Paths whose route depends on the request (the SOAP endpoint names its operation inside).
DISPATCH = soap_api.DISPATCH
#: Request bodies larger than this are refused unread.
MAX_BODY = 4 * 1024 * 1024
HOST = "127.0.0.1"

#: What ``socketserver`` hands a server: a connected socket over TCP (always, here), a
#: ``(data, socket)`` pair over UDP.
_Request = socket.socket | tuple[bytes, socket.socket]


class EmulatorServer(ThreadingHTTPServer):
    """Serves :data:`ROUTES` from ``state``; ``faults`` decide how each request misbehaves."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, state: State, faults: Faults):
        self.state = state
        self.faults = faults
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, port), Handler)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        logger.debug("emulator: connection from %s failed", client_address, exc_info=True)

    def stop(self) -> None:
        """Stop accepting, cut short injected delays, and close every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        received, arrived = self.server.state.now(), time.monotonic()
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(self.command, url.path, url.query, body, headers)
        route = ROUTES.get(url.path)
        if route is None and url.path in DISPATCH:
            route = DISPATCH[url.path](request)
        if route is None:
            self._finish(request, None, _not_found(url.path), {}, None, received)
            return
        state = self.server.state
        params = scrub(route.log_params(request), state.secrets())
        decision = self.server.faults.decide(route.gateway, route.op, url.path)
        if decision.delay and self.server.stopping.wait(decision.delay):
            self.close_connection = True
            return
        reply: Reply | None = None
        if decision.kind == "http_500":
            reply = _server_error(route)
        elif decision.kind == "refuse" and decision.fault is not None:
            reply = refusal(route, decision.fault)
        elif decision.kind != "drop_before":
            # The provider's rate limit counts a request when it arrives, before the delay.
            with state.arriving(arrived):
                reply = self._handle(route, request)
            if decision.kind == "drop_after":
                reply = None
            elif decision.kind == "garbled" and decision.fault is not None:
                reply.body = garble(reply.body, decision.fault.rng)
        self._finish(request, route, reply, params, decision.label, received)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._write(Reply(411, "text/plain", b"Length Required"))
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._write(Reply(413, "text/plain", b"Request Entity Too Large"))
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self, route: Route, request: Request) -> Reply:
        try:
            return route.handle(self.server.state, request)
        except TooManyRequests:
            return too_many_requests(route)
        except Exception:
            logger.exception("emulator: %s %s failed", request.method, request.path)
            return _server_error(route)

    def _finish(
        self,
        request: Request,
        route: Route | None,
        reply: Reply | None,
        params: dict[str, object],
        fault: str | None,
        received: float | None = None,
    ) -> None:
        state = self.server.state
        state.record(
            RequestRecord(
                time=state.now(),
                method=request.method,
                path=request.path,
                gateway=route.gateway if route else None,
                op=route.op if route else None,
                status_code=reply.status if reply else None,
                fault=fault,
                params=params,
                received=received,
            )
        )
        if reply is None:
            self.close_connection = True
            return
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True


def _not_found(path: str) -> Reply:
    if path.startswith(("/sms/", "/v2/")):
        return json_api.error(404, "Page not found.")
    return Reply(404, "text/html; charset=utf-8", b"<h1>404 Not Found</h1>")


def refusal(route: Route, fault: Fault) -> Reply:
    """The whole request refused in ``route``'s gateway's own shape, as ``fault`` says."""
    if route.gateway == "json":
        return json_api.error(fault.status, fault.text, http_200=fault.http_200)
    refused = Refused("auth", message=fault.text)
    refused.language = fault.language
    if route.gateway == "xml":
        return xml_api.refusal(str(refused))
    if route.gateway == "soap":
        return soap_api.fault("Client", str(refused))
    return http_api.refusal(str(refused))


def too_many_requests(route: Route) -> Reply:
    """The reply to a request over the account's :attr:`State.rate_limit`: HTTP 429 with
    ``Retry-After: 1`` (a Yii2 error object on JSON)."""
    if route.gateway == "json":
        return json_api.error(429, "Rate limit exceeded.", {"Retry-After": "1"})
    return Reply(429, "text/plain; charset=utf-8", b"Too Many Requests", {"Retry-After": "1"})


def _server_error(route: Route) -> Reply:
    if route.gateway == "json":
        return json_api.error(500, "Internal server error.")
    return Reply(500, "text/html; charset=utf-8", b"<h1>500 Internal Server Error</h1>")
