"""Plumbing of `python -m bench.notify`: the fake Twilio server (tests/notifications/fakes.py) run
in a process of its own that records when each notification's send request arrived."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
from typing import Any

# -- the fake provider -----------------------------------------------------------------------------

def _fake_main(conn, account_sid: str, auth_token: str) -> None:
    """The child: FakeTwilio on loopback; every accepted message is recorded with time.time() at
    its arrival under the notification id taken from its StatusCallback URL."""
    from urllib.parse import parse_qsl, urlsplit

    from tests.notifications.fakes import FakeTwilio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; ^C goes to the whole group

    class Recording(FakeTwilio):
        def __init__(self) -> None:
            super().__init__(account_sid, auth_token)
            self.arrivals: dict[str, list[float]] = {}
            self.other = 0

        def handle(self, request):  # called under self.lock, after the body was read
            at = time.time()
            reply = super().handle(request)
            if reply.status == 201:
                callback = request.form.get("StatusCallback", "")
                nid = dict(parse_qsl(urlsplit(callback).query)).get("notification_id")
                if nid:
                    self.arrivals.setdefault(nid, []).append(at)
                else:
                    self.other += 1
            return reply

    with Recording() as fake:
        conn.send(fake.url)
        while True:
            cmd = conn.recv()
            if cmd == "distinct":
                with fake.lock:
                    conn.send(len(fake.arrivals))
            elif cmd == "take":
                with fake.lock:
                    conn.send({"arrivals": fake.arrivals, "other": fake.other, "requests": len(fake.received)})
                    fake.arrivals, fake.other = {}, 0
                    fake.received.clear()
                    fake.messages.clear()
            else:
                conn.send(None)
                return


class FakeProvider:
    """The fake Twilio in a child process (its HTTP threads do not share our GIL)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_fake_main, args=(child, account_sid, auth_token), name="fake-twilio",
                                 daemon=True)
        self._proc.start()
        if not self._conn.poll(30):
            self.close()
            raise RuntimeError("the fake Twilio server did not start")
        self.url: str = self._conn.recv()

    def _ask(self, cmd: str) -> Any:
        self._conn.send(cmd)
        if not self._conn.poll(30):
            raise RuntimeError(f"the fake Twilio server did not answer {cmd!r}")
        return self._conn.recv()

    def distinct(self) -> int:
        """How many notifications have arrived at least once."""
        return self._ask("distinct")

    def take(self) -> dict[str, Any]:
        """Arrivals by notification id (and requests without one) since the last take; resets."""
        return self._ask("take")

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(Exception):
                self._conn.send("stop")
                self._conn.poll(5)
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
