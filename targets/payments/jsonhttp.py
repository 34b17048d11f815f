"""What the provider and the reference service share: a quiet HTTP/1.1 handler that answers JSON, and the
threaded server it runs in."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients and proxies expect

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request would drown the node's log

    def reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def charge_request(self, id_field: str) -> tuple[str, str, int] | None:
        """A POST /charges body's (id, account, amount), or None once it has answered 404 or 400."""
        if self.path != "/charges":
            self.reply(404, {"error": "not found"})
            return None
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            return str(body[id_field]), str(body["account"]), int(body["amount"])
        except (ValueError, KeyError, TypeError) as e:
            self.reply(400, {"error": f"bad charge: {e}"})
            return None


class JsonServer(ThreadingHTTPServer):
    """A thread per connection, with a production server's listen backlog. socketserver's default of 5 made
    a paused service unreachable for the rest of a run once its clients queued more connections than that
    (`--in-flight 4`, pause-long): the kernel dropped their handshakes, and the retries, which time out
    together, overflowed it again."""

    request_queue_size = 1024
    daemon_threads = True
