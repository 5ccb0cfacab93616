"""A real GridLoop on a loopback port for the browser tests and the console bench: the app as
`gridloop run` builds it (bundled models, demo city and its cases, the embedded scheduler and job
runner), served by werkzeug in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

from werkzeug.serving import make_server

from api import accounts, create_app
from api.settings import Settings
from api.wiring import chores, prepare_database

PASSWORD = "console-test-password"


class LiveServer:
    """`with LiveServer(tmp) as srv:` — srv.url is the origin; srv.runtime the engine behind it."""

    def __init__(self, directory: Path, database_url: str | None = None, **settings) -> None:
        """`settings`: further Settings fields (e.g. enforcement_url and enforcement_secret)."""
        self.settings = Settings(database_url=database_url or f"sqlite:///{directory / 'gridloop.db'}",
                                 secret_key="console-tests", seed_demo=True, deploy_bundled=True,
                                 storage_dir=str(directory / "uploads"), admin_password=PASSWORD,
                                 log_json=False, **settings)
        self.app = create_app(self.settings)
        self.runtime = self.app.extensions["gridloop"]
        self._server = None
        self._thread: threading.Thread | None = None
        self._scheduler = None

    def __enter__(self) -> LiveServer:
        from engine.queues import InProcessJobQueue
        from engine.scheduler import Scheduler

        prepare_database(self.runtime, self.settings)
        jobs = InProcessJobQueue(self.runtime, threads=1)
        self._scheduler = Scheduler(self.runtime, jobs, housekeeping=chores(self.runtime, self.settings))
        self.runtime.on_wakeup = self._scheduler.wake
        self._scheduler.start()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._scheduler is not None:
            self._scheduler.stop()
        self.runtime.db.dispose()

    def user(self, username: str, roles: list[str], scope: str | None) -> str:
        """A login for the console; returns its password."""
        accounts.create_user(self.runtime.db, self.runtime.clock.now(), username=username, password=PASSWORD,
                             roles=roles, scope=scope, hash_method="pbkdf2:sha256:1000")
        return PASSWORD

    def api_key(self, name: str = "monitoring") -> str:
        return accounts.create_api_key(self.runtime.db, self.runtime.clock.now(), name=name, roles=["system"])
