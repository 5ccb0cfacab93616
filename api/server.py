"""Gunicorn embedded as a library, so that `gridloop run` and `gridloop web` need no config files.
The all-in-one mode runs one gthread worker whose process also hosts the scheduler and the
in-process job runner (the embedded default: SQLite, no Redis)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from .settings import Settings

if TYPE_CHECKING:
    from engine.scheduler import Scheduler

log = logging.getLogger(__name__)


class GridLoopServer(BaseApplication):
    def __init__(self, settings: Settings, *, all_in_one: bool) -> None:
        self.settings = settings
        self.all_in_one = all_in_one
        self._scheduler: Scheduler | None = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": f"{s.host}:{s.port}",
            "workers": 1 if self.all_in_one else s.web_workers,
            "worker_class": "gthread",
            "threads": 8,
            "timeout": 60,
            "graceful_timeout": 20,
            "accesslog": None,
            "post_worker_init": self._post_worker_init if self.all_in_one else None,
            "worker_exit": self._worker_exit if self.all_in_one else None,
        }
        for key, value in options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self):
        """The app built as wsgi.py builds it (create_app → wiring.make_runtime), in the worker."""
        from . import create_app

        app = create_app(self.settings)
        self.runtime = app.extensions["gridloop"]
        return app

    def _post_worker_init(self, worker) -> None:
        from engine.queues import InProcessJobQueue
        from engine.scheduler import Scheduler

        from .wiring import chores

        rt = self.runtime
        jobs = InProcessJobQueue(rt, threads=self.settings.job_threads)

        self._scheduler = scheduler = Scheduler(rt, jobs, housekeeping=chores(rt, self.settings))
        rt.on_wakeup = scheduler.wake
        scheduler.start()
        log.info("embedded scheduler and job runner started", extra={"job_threads": self.settings.job_threads})

    def _worker_exit(self, server, worker) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
