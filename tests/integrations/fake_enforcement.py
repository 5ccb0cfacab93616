"""A fake enforcement system on loopback that speaks the push protocol: checks the signature,
remembers idempotency keys, and answers what the test scripts it to."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from integrations.enforcement import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class FakeEnforcement:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        # answers to give next, each a status or (status, JSON body); empty: 200 with the key's ticket
        self.script: deque[int | tuple[int, dict]] = deque()
        self.hold_s = 0.0  # wait this long before answering (a slow system)
        self.received: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.tickets: dict[str, str] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.headers.append(dict(self.headers))
                key = self.headers.get(IDEMPOTENCY_HEADER, "")
                if not verify(outer.secret, key, self.headers.get(TIMESTAMP_HEADER, ""),
                              self.headers.get(SIGNATURE_HEADER, ""), body):
                    return self._send(401, {"error": "bad signature"})
                if outer.hold_s:
                    time.sleep(outer.hold_s)
                scripted = outer.script.popleft() if outer.script else 200
                status, payload = scripted if isinstance(scripted, tuple) else (scripted, {"error": "scripted"})
                if status != 200:
                    return self._send(status, payload)
                outer.received.append(json.loads(body))
                ticket = outer.tickets.setdefault(key, f"ZF-{len(outer.tickets) + 1:04d}")
                self._send(200, {"ticket": ticket})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (a timeout test)
                    pass

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/cases"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeEnforcement:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
