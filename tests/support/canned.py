"""An HTTP server that answers every request with canned bytes, for gateways reading replies
the emulator never sends."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CannedServer:
    """Answers every request with ``reply`` (bytes, content type, status); records bodies."""

    def __init__(self):
        self.reply = (b"", "text/html", 200)
        #: Extra reply headers (say Retry-After).
        self.headers: dict[str, str] = {}
        self.bodies: list[bytes] = []
        #: (method, path with query, headers) of each request, in order.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                canned.bodies.append(self.rfile.read(length))
                canned.requests.append((self.command, self.path, dict(self.headers)))
                body, content_type, status = canned.reply
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
