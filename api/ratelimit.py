"""A fixed-window request counter for public endpoints: at most `limit` hits per key in each window
of `window_s` seconds; the next hit is refused with the seconds until the window turns.

With Redis (GRIDLOOP_REDIS_URL) every web process shares the counts (INCR + EXPIRE on one key per
window); without it the counts live in this process. If Redis is unreachable the request is let
through and logged: a citizen's report is worth more than a perfect limit."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    limit: int
    window_s: int

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """"120/60" = 120 requests per 60 s; "" or "0" = no limit."""
        text = text.strip()
        if text in ("", "0"):
            return None
        count, _, window = text.partition("/")
        rate = cls(int(count), int(window or 60))
        if rate.limit < 1 or rate.window_s < 1:
            raise ValueError(f"a rate is <count>/<seconds>, both positive: {text!r}")
        return rate


class FixedWindowLimiter:
    def __init__(self, rate: Rate, *, redis=None, prefix: str = "gridloop:ratelimit:",
                 clock: Callable[[], float] = time.time) -> None:
        self.rate, self.redis, self.prefix, self.clock = rate, redis, prefix, clock
        self._counts: dict[str, tuple[int, int]] = {}  # key → (window number, hits)
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one request under `key`: 0 if allowed, else the seconds to wait (Retry-After)."""
        now = self.clock()
        number = int(now // self.rate.window_s)
        count = self._redis_hit(key, number) if self.redis is not None else self._local_hit(key, number)
        if count is None or count <= self.rate.limit:
            return 0
        return max(1, math.ceil((number + 1) * self.rate.window_s - now))

    def blocked(self, key: str) -> int:
        """Like `hit` but counting nothing: the seconds to wait if `key` used up this window, else 0."""
        now = self.clock()
        number = int(now // self.rate.window_s)
        if self.redis is not None:
            try:
                count = int(self.redis.get(f"{self.prefix}{key}:{number}") or 0)
            except Exception as exc:
                log.warning("rate limit store unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
                return 0
        else:
            with self._lock:
                seen, count = self._counts.get(key, (number, 0))
                count = count if seen == number else 0
        return max(1, math.ceil((number + 1) * self.rate.window_s - now)) if count >= self.rate.limit else 0

    def _redis_hit(self, key: str, number: int) -> int | None:
        name = f"{self.prefix}{key}:{number}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, self.rate.window_s + 1)
            count, _ = pipe.execute()
            return int(count)
        except Exception as exc:  # any Redis failure: let the request through
            log.warning("rate limit store unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None

    def _local_hit(self, key: str, number: int) -> int:
        with self._lock:
            if len(self._counts) > 100_000:  # forget finished windows rather than grow without bound
                self._counts = {k: v for k, v in self._counts.items() if v[0] == number}
            seen, count = self._counts.get(key, (number, 0))
            count = count + 1 if seen == number else 1
            self._counts[key] = (number, count)
            return count


def shared_redis(app):
    """The Redis client every limiter of this app shares (made once from GRIDLOOP_REDIS_URL, with
    short timeouts); None without Redis: counts are per process."""
    redis = app.config.get("GRIDLOOP_REDIS")
    settings = app.config["GRIDLOOP_SETTINGS"]
    if redis is None and settings.redis_url:
        from redis import Redis

        redis = app.config["GRIDLOOP_REDIS"] = Redis.from_url(settings.redis_url, socket_timeout=0.5,
                                                              socket_connect_timeout=0.5)
    return redis


def client_ip(request, proxy_hops: int) -> str:
    """The client's address: with `proxy_hops` trusted reverse proxies in front, the address that far
    from the end of X-Forwarded-For (what a client writes there itself is not trusted)."""
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    if proxy_hops and forwarded:
        return forwarded[max(0, len(forwarded) - proxy_hops)]
    return request.remote_addr or "unknown"
