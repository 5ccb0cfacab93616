"""A fake enforcement system on loopback that speaks the push protocol: checks the signature,
remembers idempotency keys, and answers what the test scripts it to."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from integrations.enforcement import signature


class FakeEnforcement:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.script: deque[int] = deque()  # statuses to answer next; empty: 200
        self.received: list[dict] = []
        self.tickets: dict[str, str] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts, sig = self.headers.get("X-GridLoop-Timestamp", ""), self.headers.get("X-GridLoop-Signature", "")
                if sig != signature(outer.secret, ts, body):
                    return self._send(401, {"error": "bad signature"})
                status = outer.script.popleft() if outer.script else 200
                if status != 200:
                    return self._send(status, {"error": "scripted"})
                case = json.loads(body)
                key = self.headers["Idempotency-Key"]
                outer.received.append(case)
                ticket = outer.tickets.setdefault(key, f"ZF-{len(outer.tickets) + 1:04d}")
                self._send(200, {"ticket": ticket})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cases"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEnforcement:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
