"""The device check of the listener: `authenticate(mn, pw)` run in a thread, one lookup per (MN, PW)
at a time however many packets wait for it, its answers reused for `auth_cache_s`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .answers import normalized
from .config import Authenticate, IngestConfig, Metrics

log = logging.getLogger("gridloop.ingest")


class DeviceCheck:
    """Part of `IngestServer` (which sets these attributes up)."""

    config: IngestConfig
    _authenticate: Authenticate
    _m: Metrics
    _cache: dict[tuple[str, str], tuple[str, float]]
    _inflight: dict[tuple[str, str], asyncio.Future]
    _throttle: Callable[[str], int | None]

    async def _check(self, mn: str, pw: str) -> str | None:
        key = (mn, pw)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        future = self._inflight.get(key)
        if future is None:  # one lookup per (MN, PW) at a time, however many packets wait for it
            self._m.auth_lookups += 1
            future = asyncio.ensure_future(asyncio.to_thread(self._authenticate, mn, pw))
            self._inflight[key] = future
            future.add_done_callback(lambda f: self._settle(key, f))
        try:
            return normalized(await asyncio.shield(future))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._m.auth_errors += 1
            left_out = self._throttle("auth_error")
            if left_out is not None:
                log.error("device check failed", extra={"mn": mn[:64], "error": repr(exc),
                                                        "similar_not_logged": left_out})
            return None

    def _settle(self, key: tuple[str, str], future: asyncio.Future) -> None:
        self._inflight.pop(key, None)
        if future.cancelled() or future.exception() is not None or self.config.auth_cache_s <= 0:
            return
        if len(self._cache) >= 50_000:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= 50_000:
                self._cache.clear()
        self._cache[key] = (normalized(future.result()), time.monotonic() + self.config.auth_cache_s)
