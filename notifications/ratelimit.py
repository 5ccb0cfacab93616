"""A sliding-window rate limiter in Redis that delays rather than drops.

`acquire(key)` either records one send and answers 0.0, or records nothing and answers how many
seconds to wait until a slot frees up. Check and record are one Lua script, so concurrent workers
never both take the last slot. Several windows can apply at once (WeChat Work allows a member 30
messages a minute *and* 1000 an hour per app)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence

from redis import Redis

# KEYS[1]: sorted set of send times (ms) for one key.
# ARGV: now_ms, member, longest window ms, then (limit, window_ms) pairs.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local longest = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local wait = 0
for i = 4, #ARGV, 2 do
  local limit = tonumber(ARGV[i])
  local window = tonumber(ARGV[i + 1])
  local floor = string.format('(%d', now - window)
  local count = redis.call('ZCOUNT', KEYS[1], floor, '+inf')
  if count >= limit then
    -- the slot frees when the (count - limit + 1)-th oldest send in the window leaves it
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], floor, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], longest)
return 0
"""

WECHAT_WORK_MEMBER_LIMITS: tuple[tuple[int, float], ...] = ((30, 60.0), (1000, 3600.0))


class RateLimiter:
    """`limits` are (max sends, window seconds) pairs; `clock` answers epoch seconds and is shared
    by every process using the same keys (so use wall-clock time, not a monotonic clock)."""

    def __init__(
        self,
        redis: Redis,
        limits: Sequence[tuple[int, float]],
        *,
        prefix: str = "gridloop:ratelimit:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not limits or any(n < 1 or w <= 0 for n, w in limits):
            raise ValueError("limits must be (count >= 1, window > 0) pairs")
        self.redis = redis
        self.limits = [(int(n), math.ceil(w * 1000)) for n, w in limits]
        self.prefix = prefix
        self.clock = clock
        self._acquire = redis.register_script(_ACQUIRE)

    def acquire(self, key: str) -> float:
        """Record one send under `key` and answer 0.0, or answer the seconds to wait (nothing recorded)."""
        now_ms = int(self.clock() * 1000)
        longest = max(w for _, w in self.limits)
        args: list[int | str] = [now_ms, uuid.uuid4().hex, longest]
        for limit, window in self.limits:
            args += [limit, window]
        wait_ms = int(self._acquire(keys=[self.prefix + key], args=args))
        return wait_ms / 1000.0
