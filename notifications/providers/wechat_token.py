"""Access tokens for the WeChat APIs (WeChat Work and the Official Account), cached in Redis when
one is given (shared by every worker), else in-process, and replaced when the API says the token
is expired or invalid."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis import Redis

from .base import RetriableError

# errcodes meaning "this access token is no good": 40001 invalid credential, 40014 invalid token,
# 42001 expired. Seen on a business call they trigger one refresh and one retry.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})


class TokenStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def put(self, key: str, token: str, ttl: float) -> None: ...

    def discard(self, key: str, token: str) -> None:
        """Forget `token`, but only if it is still the stored one (another worker may have
        already stored a fresh token)."""
        ...


class MemoryTokenStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            token, expires_at = self._tokens.get(key, (None, 0.0))
            return token if token is not None and self.clock() < expires_at else None

    def put(self, key: str, token: str, ttl: float) -> None:
        with self._lock:
            self._tokens[key] = (token, self.clock() + ttl)

    def discard(self, key: str, token: str) -> None:
        with self._lock:
            if self._tokens.get(key, (None, 0.0))[0] == token:
                del self._tokens[key]


_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    def __init__(self, redis: Redis, prefix: str = "gridloop:wechat-token:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._discard = redis.register_script(_COMPARE_AND_DELETE)

    def get(self, key: str) -> str | None:
        value = self.redis.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def put(self, key: str, token: str, ttl: float) -> None:
        self.redis.set(self.prefix + key, token, px=max(1, int(ttl * 1000)))

    def discard(self, key: str, token: str) -> None:
        self._discard(keys=[self.prefix + key], args=[token])


# fetch(force_refresh) -> (access_token, expires_in seconds); raises RetriableError/PermanentError
Fetch = Callable[[bool], tuple[str, float]]


class AccessTokens:
    """The current token for one app (`key`), fetched on a miss and kept until `margin` seconds
    before WeChat's expiry."""

    def __init__(self, key: str, fetch: Fetch, store: TokenStore | None = None, margin: float = 300.0) -> None:
        self.key = key
        self.fetch = fetch
        self.store = store or MemoryTokenStore()
        self.margin = margin
        self._lock = threading.Lock()

    def current(self) -> str:
        token = self.store.get(self.key)
        if token:
            return token
        with self._lock:  # one fetch per process at a time
            return self.store.get(self.key) or self._fetch_and_store(force=False)

    def replace(self, stale: str) -> str:
        """A new token after the API rejected `stale`."""
        self.store.discard(self.key, stale)
        with self._lock:
            token = self.store.get(self.key) or self._fetch_and_store(force=False)
            # a token service that still hands out the rejected token must be forced
            return self._fetch_and_store(force=True) if token == stale else token

    def _fetch_and_store(self, *, force: bool) -> str:
        token, expires_in = self.fetch(force)
        self.store.put(self.key, token, max(1.0, expires_in - self.margin))
        return token


def call_with_token(tokens: AccessTokens, request: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run `request(access_token)`; on a token errcode replace the token and run it once more."""
    token = tokens.current()
    body = request(token)
    if body.get("errcode") in TOKEN_ERRCODES:
        body = request(tokens.replace(token))
        if body.get("errcode") in TOKEN_ERRCODES:
            raise RetriableError("access token rejected twice in a row", code=body.get("errcode"))
    return body
